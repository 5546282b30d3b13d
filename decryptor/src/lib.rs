//! decryptor
#![forbid(unsafe_code)]
