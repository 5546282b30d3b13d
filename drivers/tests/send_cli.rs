//! `sealdump-send`'s command line: the clap definition is consistent, `--help` documents the contract, and
//! usage errors are one line with exit status 2.
#![cfg(feature = "std")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;

#[test]
fn clap_definition_is_consistent() {
    sealdump_drivers::hosted::cli_command().debug_assert();
}

#[test]
fn help_documents_the_contract_and_examples() {
    let out = Command::cargo_bin("sealdump-send")
        .unwrap()
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--to",
        "--recipient",
        "--provision",
        "--plain",
        "--client-port",
        "--path",
        "--payload-size",
        "--window",
        "--aead",
        "Examples:",
        "/proc/vmcore",
        "Exit status",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
    // The demo and benchmark helper stays out of the user's way.
    assert!(!help.contains("--synthetic"));
}

#[test]
fn synthetic_writes_the_requested_size() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dump");
    Command::cargo_bin("sealdump-send")
        .unwrap()
        .arg("--synthetic")
        .arg(&out)
        .args(["--synthetic-size", "3"])
        .assert()
        .success();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 3 << 20);
}

#[test]
fn bad_provisioning_files_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump");
    std::fs::write(&dump, [0u8; 4096]).unwrap();
    let key_pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n-----END PUBLIC KEY-----";
    let cases = [
        ("version = 2\nreceiver = [\"127.0.0.1\"]\n".to_string(), "version"),
        (
            "version = 1\nreceiver = [\"127.0.0.1\"]\n".to_string(),
            "0 recipients",
        ),
        (
            format!(
                "version = 1\nreceiver = [\"127.0.0.1\"]\n[[recipient]]\nkey_id = \"0000000000000000\"\npublic_key = \"\"\"{key_pem}\"\"\"\n"
            ),
            "does not match",
        ),
    ];
    for (text, expect) in cases {
        let provision = tmp.path().join("provision.toml");
        std::fs::write(&provision, text).unwrap();
        let out = Command::cargo_bin("sealdump-send")
            .unwrap()
            .arg("--provision")
            .arg(&provision)
            .arg(&dump)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.starts_with("sealdump-send: error: ") && err.contains(expect),
            "{expect}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
