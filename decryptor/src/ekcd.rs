//! FreeBSD `dumpon -k` (EKCD) dumps, decrypted exactly as `decryptcore(8)` does (spec freebsd-netdump §4.5):
//! RSA-OAEP-SHA1 with a PKCS#1 v1.5 fallback unwraps a 64-byte key, of which the first 32 bytes key AES-256-CBC
//! (no padding, iv[0..16]) or legacy ChaCha20 (nonce iv[0..8], 64-bit counter from 0) over the whole file.
//! Segments of 1 MiB decrypt in parallel (CBC needs only the previous ciphertext block, ChaCha20 seeks), which
//! gives the same bytes as decryptcore's single pass.
//! EKCD has no authentication: a modified dump decrypts to modified plaintext without any error.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;

use chacha20::ChaCha20Legacy as ChaCha20LegacyCipher;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use rayon::prelude::*;
use rsa::traits::PublicKeyParts;
use sealdump_crypto::ekcd::Aes256CbcDecryptor;
use sealdump_crypto::keys::PrivateKey;
use sealdump_crypto::rsa_wrap;
use sealdump_wire::ekcd::{Cipher, Repr};
use zeroize::Zeroizing;

use crate::cli::KeyArgs;
use crate::engine::Sink;
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

/// Bytes per parallel work item: a multiple of the AES block and of the ChaCha20 block.
const SEGMENT: u64 = 1 << 20;

/// Decrypts any segment of the dump on its own: AES-CBC needs only the previous 16 ciphertext bytes as IV,
/// ChaCha20 seeks its keystream. So segments decrypt in parallel and the result equals one sequential pass.
enum SegmentCipher {
    Aes {
        key: Zeroizing<[u8; 32]>,
        iv: [u8; 16],
    },
    ChaCha {
        key: Zeroizing<[u8; 32]>,
        nonce: [u8; 8],
    },
}

impl SegmentCipher {
    /// `buf` is the 16 ciphertext bytes before the segment (unused for the first segment and for ChaCha20),
    /// then the segment; the segment is decrypted in place.
    fn decrypt(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let (before, segment) = buf.split_at_mut(16);
        match self {
            SegmentCipher::Aes { key, iv } => {
                let mut chain = *iv;
                if offset > 0 {
                    chain.copy_from_slice(before);
                }
                Aes256CbcDecryptor::new(key, &chain)
                    .decrypt_blocks(segment)
                    .map_err(|e| Error::Ekcd(format!("AES-256-CBC: {e}")))
            }
            SegmentCipher::ChaCha { key, nonce } => {
                let key: &[u8; 32] = key;
                let mut cipher = ChaCha20LegacyCipher::new(key.into(), nonce.into());
                cipher.seek(offset);
                cipher.apply_keystream(segment);
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
    let cipher = match repr.cipher {
        Cipher::Aes256Cbc => {
            let (key, _) = unwrap_key(&repr, &keyload::load_keys(key_args)?)?;
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&repr.iv[..16]);
            SegmentCipher::Aes { key, iv }
        }
        Cipher::ChaCha20 => {
            let (key, _) = unwrap_key(&repr, &keyload::load_keys(key_args)?)?;
            let mut nonce = [0u8; 8];
            nonce.copy_from_slice(&repr.iv[..8]);
            SegmentCipher::ChaCha { key, nonce }
        }
        Cipher::None => {
            return Err(Error::KeyBlob {
                path: job.key_blob.clone(),
                message: "the FreeBSD key blob says the dump is not encrypted".into(),
            });
        }
    };
    eprintln!("{UNAUTHENTICATED_WARNING}");

    let input = File::open(&job.dump).map_err(Error::io(&job.dump))?;
    let len = input.metadata().map_err(Error::io(&job.dump))?.len();
    if repr.cipher == Cipher::Aes256Cbc && len % 16 != 0 {
        return Err(Error::Ekcd(format!(
            "{}: {len} bytes is not a whole number of AES blocks: the dump is truncated or not AES-256-CBC",
            job.dump.display()
        )));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(job.threads)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {} threads: {e}", job.threads)))?;
    let bar = progress::bar(len, "decrypting");
    match &job.target {
        Target::File(path) => {
            let out = OutputFile::create(path, job.force, len)?;
            pool.install(|| {
                decrypt_all(
                    job,
                    &input,
                    len,
                    &cipher,
                    Sink::File::<std::io::Stdout>(out.file()),
                    &bar,
                )
            })?;
            bar.finish_and_clear();
            out.keep()?;
            eprintln!(
                "{}: {len} bytes decrypted (FreeBSD EKCD, unauthenticated)",
                path.display()
            );
        }
        Target::Stdout => {
            let mut writer = BufWriter::with_capacity(1 << 20, std::io::stdout());
            pool.install(|| decrypt_all(job, &input, len, &cipher, Sink::Stream(&mut writer), &bar))?;
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

/// Decrypts the whole dump in batches of segments on the current rayon pool (memory: a batch of 1 MiB buffers).
fn decrypt_all<W: Write + Send>(
    job: &Job,
    input: &File,
    len: u64,
    cipher: &SegmentCipher,
    mut sink: Sink<'_, W>,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    let segments = len.div_ceil(SEGMENT);
    // At most 64 MiB of buffers, whatever the thread count.
    let batch = rayon::current_num_threads().saturating_mul(4).clamp(1, 64);
    let mut buffers: Vec<Vec<u8>> = (0..batch.min(usize::try_from(segments).unwrap_or(usize::MAX)))
        .map(|_| vec![0u8; 16 + SEGMENT as usize])
        .collect();
    let file_sink = match &sink {
        Sink::File(f) => Some(*f),
        _ => None,
    };
    let mut first = 0u64;
    while first < segments {
        let count = usize::try_from((segments - first).min(batch as u64)).unwrap_or(batch);
        let results: Vec<Result<usize>> = buffers[..count]
            .par_iter_mut()
            .enumerate()
            .map(|(k, buf)| {
                let offset = (first + k as u64) * SEGMENT;
                let n = (len - offset).min(SEGMENT) as usize;
                let buf = &mut buf[..16 + n];
                // The 16 bytes before the segment (AES's chaining value) and the segment, in one read.
                let (read_at, read_into) = if offset >= 16 {
                    (offset - 16, &mut buf[..])
                } else {
                    (offset, &mut buf[16..])
                };
                input
                    .read_exact_at(read_into, read_at)
                    .map_err(Error::io(&job.dump))?;
                cipher.decrypt(offset, buf)?;
                if let Some(out) = file_sink {
                    out.write_all_at(&buf[16..], offset)
                        .map_err(Error::io(out_path(job)))?;
                }
                bar.inc(n as u64);
                Ok(n)
            })
            .collect();
        for (k, result) in results.into_iter().enumerate() {
            let n = result?;
            if let Sink::Stream(w) = &mut sink {
                w.write_all(&buffers[k][16..16 + n])
                    .map_err(Error::io(out_path(job)))?;
            }
        }
        first += count as u64;
    }
    Ok(())
}
