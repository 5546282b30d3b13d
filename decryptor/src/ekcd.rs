//! FreeBSD `dumpon -k` (EKCD) dumps, decrypted exactly as `decryptcore(8)` does (spec freebsd-netdump §4.5):
//! RSA-OAEP-SHA1 with a PKCS#1 v1.5 fallback unwraps a 64-byte key, of which the first 32 bytes key AES-256-CBC
//! (no padding, iv[0..16]) or legacy ChaCha20 (nonce iv[0..8], 64-bit counter from 0) over the whole file.
//! EKCD has no authentication: a modified dump decrypts to modified plaintext without any error.

use std::fs::File;
use std::io::{BufWriter, Read, Write};

use rsa::traits::PublicKeyParts;
use sealdump_crypto::ekcd::{Aes256CbcDecryptor, ChaCha20Legacy};
use sealdump_crypto::keys::PrivateKey;
use sealdump_crypto::rsa_wrap;
use sealdump_wire::ekcd::{Cipher, Repr};
use zeroize::Zeroizing;

use crate::cli::KeyArgs;
use crate::error::{Error, Result};
use crate::job::{Job, Mode, Target};
use crate::keyload::{self, LoadedKey};
use crate::output::OutputFile;
use crate::progress;

/// The warning printed for every EKCD dump.
pub const UNAUTHENTICATED_WARNING: &str = "warning: FreeBSD EKCD dumps are not authenticated: a modified dump decrypts to modified data without any error";

/// Parses a FreeBSD key blob.
pub fn parse_blob<'a>(job_blob: &std::path::Path, blob: &'a [u8]) -> Result<Repr<'a>> {
    Repr::parse(blob).map_err(|e| Error::KeyBlob {
        path: job_blob.to_path_buf(),
        message: format!("neither a seal header nor a FreeBSD EKCD key blob ({e})"),
    })
}

/// Name of the cipher as dumpon(8) spells it.
pub fn cipher_name(c: Cipher) -> &'static str {
    match c {
        Cipher::Aes256Cbc => "aes-256-cbc",
        Cipher::ChaCha20 => "chacha20",
        _ => "none",
    }
}

/// The symmetric key (first 32 of the 64 unwrapped bytes) and the index of the key that unwrapped it.
pub fn unwrap_key(repr: &Repr<'_>, keys: &[LoadedKey]) -> Result<(Zeroizing<[u8; 32]>, usize)> {
    let need = repr.encrypted_key.len();
    let mut tried = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let PrivateKey::Rsa(rsa_key) = &k.key else {
            tried.push(format!("{} (not RSA)", k.path.display()));
            continue;
        };
        // decryptcore requires RSA_size == kdk_encryptedkeysize.
        if rsa_key.size() != need {
            tried.push(format!(
                "{} (RSA-{}, needs RSA-{})",
                k.path.display(),
                rsa_key.size() * 8,
                need * 8
            ));
            continue;
        }
        match rsa_wrap::ekcd_unwrap(rsa_key, repr.encrypted_key) {
            Ok(full) => {
                let mut key = Zeroizing::new([0u8; 32]);
                key.copy_from_slice(&full[..32]);
                return Ok((key, i));
            }
            Err(e) => tried.push(format!("{} ({e})", k.path.display())),
        }
    }
    if keys.is_empty() {
        return Err(Error::Usage(format!(
            "no private key given (--key or --key-dir); this FreeBSD dump needs an RSA-{} key",
            need * 8
        )));
    }
    Err(Error::EkcdWrongKey(tried.join("; ")))
}

#[allow(clippy::large_enum_variant)] // one per run, on the stack: no reason to box
enum Decryptor {
    Aes(Aes256CbcDecryptor),
    ChaCha(ChaCha20Legacy),
}

impl Decryptor {
    fn apply(&mut self, buf: &mut [u8]) -> Result<()> {
        match self {
            Decryptor::Aes(d) => d
                .decrypt_blocks(buf)
                .map_err(|e| Error::Ekcd(format!("AES-256-CBC: {e}"))),
            Decryptor::ChaCha(c) => {
                c.apply(buf);
                Ok(())
            }
        }
    }
}

/// Decrypts a FreeBSD EKCD dump.
pub fn run(job: &Job, blob: &[u8], key_args: &KeyArgs) -> Result<()> {
    let repr = parse_blob(&job.key_blob, blob)?;
    if job.mode == Mode::Verify {
        return Err(Error::Usage(
            "FreeBSD EKCD dumps carry no authentication: --verify cannot check anything; decrypt instead"
                .into(),
        ));
    }
    let mut decryptor = match repr.cipher {
        Cipher::Aes256Cbc | Cipher::ChaCha20 => {
            let (key, _) = unwrap_key(&repr, &keyload::load_keys(key_args)?)?;
            if repr.cipher == Cipher::Aes256Cbc {
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&repr.iv[..16]);
                Decryptor::Aes(Aes256CbcDecryptor::new(&key, &iv))
            } else {
                let mut nonce = [0u8; 8];
                nonce.copy_from_slice(&repr.iv[..8]);
                Decryptor::ChaCha(ChaCha20Legacy::new(&key, &nonce))
            }
        }
        _ => {
            return Err(Error::KeyBlob {
                path: job.key_blob.clone(),
                message: "the FreeBSD key blob says the dump is not encrypted".into(),
            });
        }
    };
    eprintln!("{UNAUTHENTICATED_WARNING}");

    let mut input = File::open(&job.dump).map_err(Error::io(&job.dump))?;
    let len = input.metadata().map_err(Error::io(&job.dump))?.len();
    if repr.cipher == Cipher::Aes256Cbc && len % 16 != 0 {
        return Err(Error::Ekcd(format!(
            "{}: {len} bytes is not a whole number of AES blocks: the dump is truncated or not AES-256-CBC",
            job.dump.display()
        )));
    }

    let bar = progress::bar(len, "decrypting");
    match &job.target {
        Target::File(path) => {
            let out = OutputFile::create(path, job.force, 0)?;
            let mut writer = BufWriter::with_capacity(1 << 20, out.file());
            copy_decrypt(job, &mut input, &mut writer, &mut decryptor, &bar)?;
            writer.flush().map_err(Error::io(path))?;
            drop(writer);
            bar.finish_and_clear();
            out.keep()?;
            eprintln!(
                "{}: {len} bytes decrypted (FreeBSD EKCD, unauthenticated)",
                path.display()
            );
        }
        Target::Stdout => {
            let mut writer = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            copy_decrypt(job, &mut input, &mut writer, &mut decryptor, &bar)?;
            writer.flush().map_err(Error::io("<stdout>"))?;
            bar.finish_and_clear();
        }
        // --verify was refused above.
        Target::Nowhere => return Err(Error::Usage("nothing to do".into())),
    }
    Ok(())
}

fn out_path(job: &Job) -> std::path::PathBuf {
    match &job.target {
        Target::File(p) => p.clone(),
        _ => "<stdout>".into(),
    }
}

fn copy_decrypt(
    job: &Job,
    input: &mut File,
    out: &mut dyn Write,
    decryptor: &mut Decryptor,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    // 1 MiB, a multiple of the AES block and the ChaCha20 block, so the streams continue across reads.
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = read_full(input, &mut buf).map_err(Error::io(&job.dump))?;
        if n == 0 {
            return Ok(());
        }
        decryptor.apply(&mut buf[..n])?;
        out.write_all(&buf[..n]).map_err(|source| Error::Io {
            path: out_path(job),
            source,
        })?;
        bar.inc(n as u64);
    }
}

/// Reads until `buf` is full or EOF, so only the last piece can be short.
fn read_full(input: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
