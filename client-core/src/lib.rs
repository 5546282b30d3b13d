//! The sans-I/O, allocation-free sealdump client.
#![no_std]
#![forbid(unsafe_code)]
