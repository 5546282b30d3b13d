//! keytool
#![forbid(unsafe_code)]
