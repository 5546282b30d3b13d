//! Golden command-line behaviour: usage errors exit 2 with one clear line; help shows the contract forms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_fails, bin, with_key, x25519_key};
use predicates::prelude::*;

#[test]
fn help_lists_the_contract_options_and_examples() {
    bin()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--key <PRIVATE_KEY>"))
        .stdout(predicate::str::contains("--keyfile <KEY_BLOB>"))
        .stdout(predicate::str::contains("--verify"))
        .stdout(predicate::str::contains("--salvage"))
        .stdout(predicate::str::contains("--key-dir <DIR>"))
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains("info"));
    bin()
        .args(["info", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("<DUMP>"));
}

#[test]
fn cli_command_is_valid() {
    sealdump_decryptor::cli_command().debug_assert();
}

#[test]
fn missing_dump_is_a_usage_error() {
    bin().assert().code(2).stderr(predicate::str::contains("<DUMP>"));
}

#[test]
fn verify_and_salvage_conflict() {
    bin()
        .args(["--verify", "--salvage", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn verify_with_output_conflicts() {
    bin().args(["--verify", "-o", "out", "x"]).assert().code(2);
}

#[test]
fn zero_threads_is_refused() {
    bin().args(["--threads", "0", "x"]).assert().code(2);
}

#[test]
fn key_blob_name_cannot_be_derived() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("core.bin");
    std::fs::write(&dump, b"x").unwrap();
    bin().arg(&dump).assert().code(2).stderr(
        predicate::str::contains("cannot find the key blob").and(predicate::str::contains("--keyfile")),
    );
}

#[test]
fn missing_key_blob_is_an_environment_error() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("vmcore_encrypted.h.0");
    std::fs::write(&dump, b"x").unwrap();
    bin()
        .arg(&dump)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("key.h.0").and(predicate::str::contains("No such file")));
}

#[test]
fn output_cannot_be_derived_without_o() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("core.bin");
    let blob = dir.path().join("blob");
    std::fs::write(&dump, b"x").unwrap();
    std::fs::write(&blob, b"x").unwrap();
    assert_fails(bin().arg("--keyfile").arg(&blob).arg(&dump), 2, &["give -o OUT"]);
}

#[test]
fn json_with_stdout_output_is_refused() {
    bin()
        .args(["--json", "-o", "-", "vmcore_encrypted.h.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--json"));
}

#[test]
fn a_dump_passed_as_keyfile_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("vmcore_encrypted.h.0");
    std::fs::write(&big, vec![0u8; 200_000]).unwrap();
    let out = dir.path().join("out");
    assert_fails(
        bin().arg("--keyfile").arg(&big).arg("-o").arg(&out).arg(&big),
        1,
        &["too large for a key blob"],
    );
}

#[test]
fn unknown_key_blob_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("vmcore_encrypted.h.0");
    std::fs::write(&dump, b"x").unwrap();
    std::fs::write(
        dir.path().join("key.h.0"),
        b"hello, this is not a key blob at all",
    )
    .unwrap();
    let (key, _) = x25519_key(dir.path(), "a", 1);
    assert_fails(
        &mut with_key(&key, &[], &dump),
        1,
        &["neither a seal header nor a FreeBSD EKCD key blob"],
    );
}

#[test]
fn output_may_not_be_the_dump_itself() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("vmcore_encrypted.h.0");
    std::fs::write(&dump, b"x").unwrap();
    std::fs::write(dir.path().join("key.h.0"), b"x").unwrap();
    assert_fails(
        bin().arg("--force").arg("-o").arg(&dump).arg(&dump),
        2,
        &["output would overwrite the dump"],
    );
    assert_eq!(std::fs::read(&dump).unwrap(), b"x");
}

#[test]
fn too_many_threads_is_refused() {
    bin().args(["--threads", "5000", "x"]).assert().code(2);
}
