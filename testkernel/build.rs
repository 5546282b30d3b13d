//! Hands the linker script to the linker and bakes the run configuration (receiver port, recipient key) into the
//! image: the kernel has no file system or command line to read them from at panic time.
use std::{env, fs, path::PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let script = manifest_dir.join("linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");

    // Receiver UDP port on the host (reached as 10.0.2.2 through QEMU user networking).
    println!("cargo:rerun-if-env-changed=SEALDUMP_TK_PORT");
    let port: u16 = match env::var("SEALDUMP_TK_PORT") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SEALDUMP_TK_PORT is not a port: {text:?}")),
        Err(_) => 20023,
    };

    // Recipient X25519 public key: a file with 32 raw bytes or 64 hex digits. Unset: a plain (unsealed) dump.
    println!("cargo:rerun-if-env-changed=SEALDUMP_TK_RECIPIENT");
    let recipient = match env::var_os("SEALDUMP_TK_RECIPIENT") {
        Some(path) => {
            println!("cargo:rerun-if-changed={}", PathBuf::from(&path).display());
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("reading SEALDUMP_TK_RECIPIENT: {e}"));
            Some(parse_key(&bytes))
        }
        None => None,
    };

    // Size of the memory the kernel fills and dumps, in MiB.
    println!("cargo:rerun-if-env-changed=SEALDUMP_TK_DUMP_MIB");
    let dump_mib: usize = match env::var("SEALDUMP_TK_DUMP_MIB") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SEALDUMP_TK_DUMP_MIB is not a number: {text:?}")),
        Err(_) => 32,
    };

    // Seconds without ack progress before client-core gives up (exit status 39).
    println!("cargo:rerun-if-env-changed=SEALDUMP_TK_GIVE_UP_SECS");
    let give_up_secs: u64 = match env::var("SEALDUMP_TK_GIVE_UP_SECS") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SEALDUMP_TK_GIVE_UP_SECS is not a number: {text:?}")),
        Err(_) => 30,
    };

    let mut out = String::new();
    out.push_str(&format!("pub const GIVE_UP_SECS: u64 = {give_up_secs};\n"));
    out.push_str(&format!("pub const RECEIVER_PORT: u16 = {port};\n"));
    out.push_str(&format!(
        "pub const DUMP_BYTES: usize = {dump_mib} * 1024 * 1024;\n"
    ));
    match recipient {
        Some(key) => out.push_str(&format!(
            "pub const RECIPIENT_X25519: Option<[u8; 32]> = Some({key:?});\n"
        )),
        None => out.push_str("pub const RECIPIENT_X25519: Option<[u8; 32]> = None;\n"),
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    fs::write(out_dir.join("config.rs"), out).unwrap_or_else(|e| panic!("writing config.rs: {e}"));
}

fn parse_key(bytes: &[u8]) -> [u8; 32] {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return raw;
    }
    let text = String::from_utf8_lossy(bytes);
    let hex: Vec<u8> = text.trim().bytes().collect();
    assert!(
        hex.len() == 64,
        "SEALDUMP_TK_RECIPIENT must hold 32 raw bytes or 64 hex digits"
    );
    let mut key = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let digits = std::str::from_utf8(pair).unwrap_or("zz");
        key[i] =
            u8::from_str_radix(digits, 16).unwrap_or_else(|_| panic!("bad hex in SEALDUMP_TK_RECIPIENT"));
    }
    key
}
