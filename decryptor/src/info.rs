//! `sealdump-decryptor info`: what a dump is, who can open it, and (with a matching key) what it holds.

use std::fs::File;
use std::path::Path;

use sealdump_crypto::seal::{HeaderView, StanzaKind, TrailerStatus};
use serde_json::{Value, json};

use crate::cli::{InfoArgs, KeyArgs};
use crate::ekcd;
use crate::error::{Error, Result};
use crate::job::key_blob_path;
use crate::keyload::{self, key_id_hex};
use crate::sealed::{self, TrailerState};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn stanza_kind(kind: StanzaKind) -> &'static str {
    match kind {
        StanzaKind::X25519Hpke => "x25519-hpke",
        StanzaKind::RsaOaepSha256 => "rsa-oaep-sha256",
    }
}

/// Runs `info`.
pub fn run(args: &InfoArgs) -> Result<()> {
    let blob_path = key_blob_path(&args.dump, args.keys.keyfile.as_deref())?;
    let blob = crate::read_key_blob(&blob_path)?;
    let stream_len = std::fs::metadata(&args.dump)
        .map_err(Error::io(&args.dump))?
        .len();
    let (report, problem) = if sealed::looks_sealed(&blob) {
        sealed_info(&args.dump, &blob, &args.keys, stream_len)?
    } else {
        (ekcd_info(&blob_path, &blob, &args.keys, stream_len)?, None)
    };
    if args.json {
        println!("{report}");
    } else {
        print_text(&report);
    }
    match problem {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Describes a sealed dump; the error, if any, is what makes it not authentic (reported after the description).
fn sealed_info(
    dump: &Path,
    blob: &[u8],
    key_args: &KeyArgs,
    stream_len: u64,
) -> Result<(Value, Option<Error>)> {
    let view = HeaderView::parse(blob).map_err(|e| Error::HeaderTampered(e.to_string()))?;
    let keys = &keyload::load_keys(key_args)?;
    let recipients: Vec<Value> = view
        .stanzas()
        .map(|s| {
            let matching: Vec<String> =
                keys.iter().filter(|k| k.key_id == s.key_id).map(|k| k.path.display().to_string()).collect();
            json!({"type": stanza_kind(s.kind), "key_id": key_id_hex(&s.key_id), "given_key": matching.first()})
        })
        .collect();
    let mut report = json!({
        "format": "sealed v1",
        "header_len": view.header_len(),
        "aead": view.aead().name(),
        "chunk_size": view.chunk_size(),
        "chunk_shift": view.chunk_shift(),
        "compression": view.compression(),
        "dump_id": hex::encode(view.dump_id()),
        "time": view.time(),
        "recipients": recipients,
        "stream_len": stream_len,
        "given_keys": keys.iter().map(|k| json!({"path": k.path.display().to_string(), "key_id": key_id_hex(&k.key_id)})).collect::<Vec<_>>(),
    });
    let mut problem = None;
    if keys.is_empty() {
        report["header"] = json!("not checked (no key given)");
        return Ok((report, None));
    }
    match sealed::open_header(&view, keys) {
        Ok(opened) => {
            report["header"] = json!("authentic");
            report["opened_with"] = json!(keys.get(opened.key).map(|k| k.path.display().to_string()));
            let m = opened.opener.metadata();
            report["metadata"] = json!({
                "hostname": text(m.hostname()),
                "kernel_version": text(m.kernel_version()),
                "panic_string": text(m.panic_string()),
                "architecture": text(m.architecture()),
                "expected_length": m.expected_length(),
                "host_uuid": hex::encode(m.host_uuid()),
            });
            let input = File::open(dump).map_err(Error::io(dump))?;
            let (trailer, layout) = sealed::read_trailer(&input, dump, &opened.opener, stream_len)?;
            report["chunks"] = json!(layout.records);
            match trailer {
                TrailerState::Authentic(t) => {
                    report["trailer"] = json!(if t.status == TrailerStatus::Complete {
                        "complete"
                    } else {
                        "aborted"
                    });
                    report["plaintext_len"] = json!(t.total_len);
                    if t.status == TrailerStatus::Aborted {
                        problem = Some(Error::Aborted {
                            total: t.total_len,
                            written: false,
                        });
                    }
                }
                TrailerState::Missing { .. } => {
                    report["trailer"] = json!("missing or not authentic (truncated?)");
                    problem = Some(Error::Truncated {
                        len: stream_len,
                        salvageable: true,
                    });
                }
            }
        }
        Err(e @ Error::WrongKey { .. }) => {
            report["header"] = json!("not checked (no given key is a recipient)");
            eprintln!("note: {e}");
        }
        Err(e) => {
            report["header"] = json!(format!("NOT authentic: {e}"));
            problem = Some(e);
        }
    }
    Ok((report, problem))
}

fn ekcd_info(blob_path: &Path, blob: &[u8], key_args: &KeyArgs, stream_len: u64) -> Result<Value> {
    let repr = ekcd::parse_blob(blob_path, blob)?;
    let keys = &keyload::load_keys(key_args)?;
    let mut report = json!({
        "format": "FreeBSD EKCD (unauthenticated)",
        "cipher": ekcd::cipher_name(repr.cipher),
        "iv": hex::encode(repr.iv),
        "encrypted_key_len": repr.encrypted_key.len(),
        "needs_key": format!("RSA-{}", repr.encrypted_key.len() * 8),
        "stream_len": stream_len,
    });
    if !keys.is_empty() {
        report["opened_with"] = match ekcd::unwrap_key(&repr, keys) {
            Ok((_, i)) => json!(keys.get(i).map(|k| k.path.display().to_string())),
            Err(e) => json!(format!("none: {e}")),
        };
    }
    Ok(report)
}

/// Text order of the report's fields (JSON objects are sorted by key).
const TEXT_ORDER: &[&str] = &[
    "format",
    "cipher",
    "aead",
    "chunk_size",
    "chunk_shift",
    "compression",
    "header_len",
    "dump_id",
    "time",
    "iv",
    "encrypted_key_len",
    "needs_key",
    "recipients",
    "given_keys",
    "header",
    "opened_with",
    "metadata",
    "stream_len",
    "chunks",
    "plaintext_len",
    "trailer",
];

fn print_text(report: &Value) {
    let Some(map) = report.as_object() else { return };
    let ordered = TEXT_ORDER
        .iter()
        .filter_map(|k| map.get_key_value(*k))
        .chain(map.iter().filter(|(k, _)| !TEXT_ORDER.contains(&k.as_str())));
    for (key, value) in ordered {
        match value {
            Value::Array(items) => {
                println!("{key}:");
                for item in items {
                    println!("  {}", flat(item));
                }
            }
            Value::Object(_) => {
                println!("{key}:");
                if let Some(inner) = value.as_object() {
                    for (k, v) in inner {
                        println!("  {k}: {}", flat(v));
                    }
                }
            }
            other => println!("{key}: {}", flat(other)),
        }
    }
}

fn flat(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", flat(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}
