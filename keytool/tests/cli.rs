//! Golden tests of the `sealdump-keytool` binary: real files in temp dirs, exact stdout/stderr, exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::cargo_bin_cmd;
use predicates::prelude::*;
use sealdump_keytool::provision::Provisioning;

fn keytool(dir: &Path) -> assert_cmd::Command {
    let mut cmd = cargo_bin_cmd!("sealdump-keytool");
    cmd.current_dir(dir).env_remove("SEALDUMP_PASSPHRASE");
    cmd
}

fn stdout_of(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

fn openssl_fingerprint(path: &Path, passin: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "pkey",
        "-in",
        path.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ]);
    if let Some(p) = passin {
        cmd.args(["-passin", p]);
    }
    let out = cmd.output().expect("openssl on PATH");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(&out.stdout))
}

#[test]
fn gen_writes_a_0600_key_and_a_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let id = stdout_of(keytool(dir.path()).args(["gen", "analyst"]));
    assert!(id.len() == 17 && id.ends_with('\n'), "{id:?}");
    let id = id.trim_end();
    let key = dir.path().join("analyst.key");
    let public = dir.path().join("analyst.pub");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n")
    );
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n")
    );

    let fp_pub = stdout_of(keytool(dir.path()).args(["fingerprint", "analyst.pub"]));
    let fp_key = stdout_of(keytool(dir.path()).args(["fingerprint", "analyst.key"]));
    assert_eq!(fp_pub, fp_key);
    let sha = openssl_fingerprint(&key, None);
    assert_eq!(fp_pub, format!("{id}  {sha}\n"));
    assert_eq!(&sha[..16], id);

    // `pub` prints exactly the .pub file.
    let pem = stdout_of(keytool(dir.path()).args(["pub", "analyst.key"]));
    assert_eq!(pem, std::fs::read_to_string(&public).unwrap());

    let inspect = stdout_of(keytool(dir.path()).args(["inspect", "analyst.key"]));
    assert_eq!(
        inspect,
        format!(
            "file:        analyst.key\ntype:        X25519 private key\nalgorithm:   X25519\nbits:        253\n\
             key id:      {id}\nfingerprint: {sha}\nencrypted:   no\n"
        )
    );
    let inspect = stdout_of(keytool(dir.path()).args(["inspect", "analyst.pub"]));
    assert!(inspect.contains("type:        X25519 public key\n") && !inspect.contains("encrypted"));
}

#[test]
fn gen_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let first = stdout_of(keytool(dir.path()).args(["gen", "k"]));
    let before = std::fs::read(dir.path().join("k.key")).unwrap();
    keytool(dir.path())
        .args(["gen", "k"])
        .assert()
        .code(2)
        .stdout("")
        .stderr("sealdump-keytool: error: k.key: already exists (use --force to overwrite)\n");
    assert_eq!(std::fs::read(dir.path().join("k.key")).unwrap(), before);

    // Only the .pub left over: still refused, and no .key is created.
    std::fs::remove_file(dir.path().join("k.key")).unwrap();
    keytool(dir.path())
        .args(["gen", "k"])
        .assert()
        .code(2)
        .stderr("sealdump-keytool: error: k.pub: already exists (use --force to overwrite)\n");
    assert!(!dir.path().join("k.key").exists());

    std::fs::set_permissions(dir.path().join("k.pub"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let second = stdout_of(keytool(dir.path()).args(["gen", "--force", "k"]));
    assert_ne!(first, second);
    assert_eq!(
        std::fs::metadata(dir.path().join("k.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn encrypted_rsa_key_needs_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pass"), "tr0ub4dor &3\n").unwrap();
    std::fs::write(dir.path().join("wrong"), "nope\n").unwrap();
    let id = stdout_of(keytool(dir.path()).args(["gen", "--rsa", "3072", "--passphrase-file", "pass", "r"]));
    let id = id.trim_end();
    let key = dir.path().join("r.key");
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    );
    // OpenSSL reads it with the passphrase and agrees on the fingerprint.
    let sha = openssl_fingerprint(&key, Some("pass:tr0ub4dor &3"));
    assert_eq!(&sha[..16], id);

    keytool(dir.path())
        .args(["pub", "r.key"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            "sealdump-keytool: error: r.key: the private key is encrypted: give its passphrase with \
             --passphrase-file FILE or SEALDUMP_PASSPHRASE\n",
        );
    keytool(dir.path())
        .args(["pub", "--passphrase-file", "wrong", "r.key"])
        .assert()
        .code(2)
        .stderr("sealdump-keytool: error: r.key: cannot decrypt the private key: wrong passphrase or damaged file\n");
    let from_file = stdout_of(keytool(dir.path()).args(["pub", "--passphrase-file", "pass", "r.key"]));
    let from_env = stdout_of(
        keytool(dir.path())
            .args(["pub", "r.key"])
            .env("SEALDUMP_PASSPHRASE", "tr0ub4dor &3"),
    );
    assert_eq!(from_file, from_env);
    assert_eq!(
        from_file,
        std::fs::read_to_string(dir.path().join("r.pub")).unwrap()
    );

    // inspect describes what it can without the passphrase, everything with it.
    let locked = stdout_of(keytool(dir.path()).args(["inspect", "r.key"]));
    assert_eq!(
        locked,
        "file:        r.key\ntype:        encrypted private key\nkey id:      unknown (give the passphrase to see it)\n\
         encrypted:   yes\n"
    );
    let open = stdout_of(keytool(dir.path()).args(["inspect", "--passphrase-file", "pass", "r.key"]));
    assert!(open.contains("type:        RSA-3072 private key\n"), "{open}");
    assert!(open.contains("bits:        3072\n"));
    assert!(open.contains(&format!("key id:      {id}\n")));
    assert!(open.ends_with("encrypted:   yes\n"));
    // The public key needs no passphrase.
    let fp = stdout_of(keytool(dir.path()).args(["fingerprint", "r.pub"]));
    assert_eq!(fp, format!("{id}  {sha}\n"));
}

#[test]
fn openssl_keys_work_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("o.pem");
    let status = Command::new("openssl")
        .args(["genpkey", "-algorithm", "X25519", "-out", key.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let sha = openssl_fingerprint(&key, None);
    let fp = stdout_of(keytool(dir.path()).args(["fingerprint", "o.pem"]));
    assert_eq!(fp, format!("{}  {sha}\n", &sha[..16]));
}

#[test]
fn bad_files_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk"), "hello\n").unwrap();
    std::fs::write(
        dir.path().join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    keytool(dir.path())
        .args(["fingerprint", "junk"])
        .assert()
        .code(2)
        .stdout("")
        .stderr("sealdump-keytool: error: junk: not a PEM key file (no -----BEGIN line)\n");
    keytool(dir.path())
        .args(["inspect", "cert.pem"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "sealdump-keytool: error: cert.pem: unsupported PEM type \"CERTIFICATE\"",
        ));
    keytool(dir.path())
        .args(["pub", "missing.key"])
        .assert()
        .code(2)
        .stderr("sealdump-keytool: error: missing.key: No such file or directory (os error 2)\n");
    stdout_of(keytool(dir.path()).args(["gen", "k"]));
    keytool(dir.path())
        .args(["pub", "k.pub"])
        .assert()
        .code(2)
        .stderr("sealdump-keytool: error: k.pub: this is a public key; a private key is needed\n");
    // Oversized key and passphrase files are refused while reading, with one line.
    std::fs::write(dir.path().join("huge"), vec![b'A'; 64 * 1024 + 1]).unwrap();
    keytool(dir.path())
        .args(["inspect", "huge"])
        .assert()
        .code(2)
        .stderr("sealdump-keytool: error: huge: more than 65536 bytes is too large for a key file\n");
    keytool(dir.path())
        .args(["gen", "--passphrase-file", "huge", "k2"])
        .assert()
        .code(2)
        .stderr("sealdump-keytool: error: huge: more than 65536 bytes is too large for a key file\n");
    assert!(!dir.path().join("k2").exists());
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["gen"][..],
        &["gen", "--rsa", "2048", "k"],
        &["provision", "--recipient", "a.pub"],
        &[
            "provision",
            "--receiver",
            "h",
            "--recipient",
            "a.pub",
            "--chunk-shift",
            "21",
        ],
        &["frobnicate"],
    ] {
        keytool(dir.path()).args(args).assert().code(2).stdout("");
    }
    assert!(!dir.path().join("k.key").exists());
}

#[test]
fn help_has_examples() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [
        &[][..],
        &["gen"],
        &["pub"],
        &["fingerprint"],
        &["inspect"],
        &["provision"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        keytool(dir.path()).args(&args).assert().success().stdout(
            predicate::str::contains("Examples:\n  sealdump-keytool ")
                .or(predicate::str::contains("Examples:\n  #")),
        );
    }
}

#[test]
fn provision_writes_the_contract_toml() {
    let dir = tempfile::tempdir().unwrap();
    let id_a = stdout_of(keytool(dir.path()).args(["gen", "a"]));
    let id_b = stdout_of(keytool(dir.path()).args(["gen", "b"]));
    let text = stdout_of(keytool(dir.path()).args([
        "provision",
        "--receiver",
        "192.0.2.10",
        "--receiver",
        "[2001:db8::7]:9000",
        "--recipient",
        "a.pub",
        "--recipient",
        "b.key",
        "--aead",
        "aes-256-gcm",
        "--chunk-shift",
        "14",
    ]));
    assert!(text.starts_with(
        "# sealdump provisioning file: holds no secret\nversion = 1\n\
         receiver = [\"192.0.2.10:20023\", \"[2001:db8::7]:9000\"]\nclient_port = 20024\n\
         aead = \"aes-256-gcm\"\nchunk_shift = 14\n\n[[recipient]]\n"
    ));
    assert!(text.contains(&format!(
        "key_id = \"{}\"\npublic_key = \"\"\"\n-----BEGIN PUBLIC KEY-----\n",
        id_a.trim()
    )));
    assert!(!text.contains("PRIVATE"));
    let p = Provisioning::from_toml(&text).unwrap();
    let ids: Vec<&str> = p.recipients.iter().map(|r| r.key_id.as_str()).collect();
    assert_eq!(ids, [id_a.trim(), id_b.trim()]);
    assert_eq!(p.public_keys().unwrap().len(), 2);

    // -o writes the same text, and is never replaced without --force.
    keytool(dir.path())
        .args([
            "provision",
            "--receiver",
            "h",
            "--recipient",
            "a.pub",
            "-o",
            "p.toml",
        ])
        .assert()
        .success()
        .stdout("");
    let written = std::fs::read_to_string(dir.path().join("p.toml")).unwrap();
    assert!(Provisioning::from_toml(&written).unwrap().receiver == ["h:20023"]);
    keytool(dir.path())
        .args([
            "provision",
            "--receiver",
            "h2",
            "--recipient",
            "a.pub",
            "-o",
            "p.toml",
        ])
        .assert()
        .code(2)
        .stderr("sealdump-keytool: error: p.toml: already exists (use --force to overwrite)\n");
    keytool(dir.path())
        .args([
            "provision",
            "--receiver",
            "h2",
            "--recipient",
            "a.pub",
            "-o",
            "p.toml",
            "--force",
        ])
        .assert()
        .success();
    assert!(
        std::fs::read_to_string(dir.path().join("p.toml"))
            .unwrap()
            .contains("\"h2:20023\"")
    );

    keytool(dir.path())
        .args(["provision", "--receiver", "bad host", "--recipient", "a.pub"])
        .assert()
        .code(2)
        .stderr("sealdump-keytool: error: provisioning: bad receiver address \"bad host\" (expected HOST[:PORT])\n");
    keytool(dir.path())
        .args([
            "provision",
            "--receiver",
            "h",
            "--recipient",
            "a.pub",
            "--recipient",
            "a.key",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is listed twice"));
}

#[test]
fn gen_encrypt_without_terminal_or_passphrase_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    keytool(dir.path())
        .args(["gen", "--encrypt", "k"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            "sealdump-keytool: error: --encrypt needs a passphrase: --passphrase-file FILE, SEALDUMP_PASSPHRASE \
             or a terminal\n",
        );
    assert!(!dir.path().join("k.key").exists());
    // With the passphrase in the environment, --encrypt uses it.
    stdout_of(
        keytool(dir.path())
            .args(["gen", "--encrypt", "k"])
            .env("SEALDUMP_PASSPHRASE", "env pass"),
    );
    let key = dir.path().join("k.key");
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    );
    openssl_fingerprint(&key, Some("pass:env pass"));
}
