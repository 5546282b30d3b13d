//! Zero-copy views of the FreeBSD netdump wire protocol, the kernel dump header and the EKCD key blob.
#![no_std]
#![forbid(unsafe_code)]
