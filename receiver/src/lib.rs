//! receiver
#![forbid(unsafe_code)]
