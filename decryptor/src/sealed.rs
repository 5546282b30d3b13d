//! Sealed dumps (format v1, DESIGN §4): find the stanza for a given key, unwrap, authenticate the header, read the
//! trailer at EOF, then decrypt the chunks in parallel.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sealdump_crypto::error::Error as CryptoError;
use sealdump_crypto::seal::{self, ChunkOpener, HeaderView, Trailer, TrailerStatus};

use crate::cli::KeyArgs;
use crate::engine::{self, EngineError, Layout, RecordOpener, Sink, TAG_LEN};
use crate::error::{Error, Result};
use crate::job::{Job, Mode, Target};
use crate::keyload::{self, LoadedKey, key_id_hex};
use crate::output::OutputFile;
use crate::progress;

/// Trailer record length on disk.
pub const TRAILER_RECORD_LEN: u64 = seal::TRAILER_PLAINTEXT_LEN as u64 + TAG_LEN;

struct Opener<'a>(&'a ChunkOpener);

impl RecordOpener for Opener<'_> {
    fn open_record(&self, index: u64, record: &mut [u8]) -> Option<usize> {
        // The engine discards a record that fails, so the accel backend need not keep a copy to restore it.
        self.0.open_chunk_or_wipe(index, record).ok()
    }
}

/// Whether `blob` starts like a seal header, allowing for a damaged magic (a couple of flipped bits),
/// so a tampered header is reported as such rather than as an unknown FreeBSD key blob.
pub fn looks_sealed(blob: &[u8]) -> bool {
    let Some(head) = blob.get(..seal::MAGIC.len()) else {
        return false;
    };
    let flipped: u32 = head
        .iter()
        .zip(seal::MAGIC.iter())
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    flipped <= 2
}

/// Describes a crypto error in the header's terms.
fn header_error(e: CryptoError) -> Error {
    let what = match e {
        CryptoError::BadMagic => "bad magic".to_owned(),
        CryptoError::HeaderMac => "header MAC does not verify (header edited or damaged)".to_owned(),
        other => other.to_string(),
    };
    Error::HeaderTampered(what)
}

/// The header opened with one of the given keys.
#[derive(Debug)]
pub struct Opened {
    /// The chunk opener (header MAC verified, metadata decrypted).
    pub opener: ChunkOpener,
    /// Index into the given keys of the key that opened it.
    pub key: usize,
}

/// Picks the stanza whose key id matches a given key, unwraps it and checks the header MAC.
pub fn open_header(view: &HeaderView<'_>, keys: &[LoadedKey]) -> Result<Opened> {
    let mut unwrap_failure = None;
    for stanza in view.stanzas() {
        for (i, k) in keys.iter().enumerate().filter(|(_, k)| k.key_id == stanza.key_id) {
            match k.key.unwrap_stanza(&stanza, view) {
                Ok(dk) => {
                    let opener = view.open(&dk).map_err(header_error)?;
                    return Ok(Opened { opener, key: i });
                }
                Err(e) => {
                    unwrap_failure = Some((key_id_hex(&stanza.key_id), k.path.display().to_string(), e))
                }
            }
        }
    }
    if let Some((id, path, e)) = unwrap_failure {
        // The key id matched, so the key is right: the stanza (or the dump id it is bound to) was altered.
        return Err(Error::HeaderTampered(format!(
            "the stanza for key id {id} does not unwrap with {path}: {e}"
        )));
    }
    Err(wrong_key(view, keys))
}

fn wrong_key(view: &HeaderView<'_>, keys: &[LoadedKey]) -> Error {
    let present: Vec<String> = view.stanzas().map(|s| key_id_hex(&s.key_id)).collect();
    let given: Vec<String> = keys
        .iter()
        .map(|k| format!("{} ({})", key_id_hex(&k.key_id), k.path.display()))
        .collect();
    Error::WrongKey {
        present: if present.is_empty() {
            "none".into()
        } else {
            present.join(", ")
        },
        given: if given.is_empty() {
            "none".into()
        } else {
            given.join(", ")
        },
    }
}

/// What the end of the stream says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailerState {
    /// An authentic trailer consistent with the stream.
    Authentic(Trailer),
    /// No authentic trailer; `data_end` is where the data records are assumed to end.
    Missing { data_end: u64 },
}

/// Reads and authenticates the trailer at the end of a `stream_len`-byte stream; returns its state and the layout
/// of the data records (for a missing trailer, the best guess for salvage).
pub fn read_trailer(
    input: &File,
    path: &Path,
    opener: &ChunkOpener,
    stream_len: u64,
) -> Result<(TrailerState, Layout)> {
    let chunk_size = opener.chunk_size() as u64;
    let record_size = chunk_size + TAG_LEN;
    let position = opener.trailer_position(stream_len);
    if let Some((index, offset)) = position
        && offset.checked_add(TRAILER_RECORD_LEN) == Some(stream_len)
    {
        let mut record = [0u8; TRAILER_RECORD_LEN as usize];
        input
            .read_exact_at(&mut record, offset)
            .map_err(Error::io(path))?;
        if let Ok(trailer) = opener.open_trailer(index, &record) {
            let layout = Layout::for_plaintext(chunk_size, trailer.total_len);
            if trailer.chunk_count != index || layout.records != index || layout.stored_len() != offset {
                return Err(Error::TrailerMismatch {
                    chunks: trailer.chunk_count,
                    total: trailer.total_len,
                    len: stream_len,
                });
            }
            return Ok((TrailerState::Authentic(trailer), layout));
        }
    }
    // No authentic trailer. Either the trailer alone is damaged (data ends 48 bytes before EOF) or the stream was
    // cut somewhere, possibly inside the trailer (data ends 0..47 bytes before EOF). Prefer the reading under which
    // the last data record authenticates; otherwise assume every byte up to EOF is data.
    let candidates = (0..=TRAILER_RECORD_LEN)
        .rev()
        .filter_map(|k| stream_len.checked_sub(k))
        .filter_map(|end| layout_of_data(chunk_size, end));
    let fallback = layout_of_data(chunk_size, stream_len).unwrap_or_else(|| {
        let full = stream_len / record_size;
        Layout {
            chunk_size,
            records: full,
            last_record_len: record_size,
        }
    });
    let mut chosen = fallback;
    for layout in candidates {
        if last_record_opens(input, path, opener, &layout)? {
            chosen = layout;
            break;
        }
    }
    Ok((
        TrailerState::Missing {
            data_end: chosen.stored_len(),
        },
        chosen,
    ))
}

/// The layout of data records filling exactly `data_end` bytes, if a valid stream can have that length.
fn layout_of_data(chunk_size: u64, data_end: u64) -> Option<Layout> {
    let record_size = chunk_size + TAG_LEN;
    let full = data_end / record_size;
    match data_end % record_size {
        0 if full == 0 => Some(Layout {
            chunk_size,
            records: 0,
            last_record_len: 0,
        }),
        0 => Some(Layout {
            chunk_size,
            records: full,
            last_record_len: record_size,
        }),
        rest if rest > TAG_LEN => Some(Layout {
            chunk_size,
            records: full + 1,
            last_record_len: rest,
        }),
        _ => None,
    }
}

fn last_record_opens(input: &File, path: &Path, opener: &ChunkOpener, layout: &Layout) -> Result<bool> {
    let Some(last) = layout.records.checked_sub(1) else {
        return Ok(true);
    };
    let (offset, len) = layout.record_range(last);
    let mut record = vec![0u8; usize::try_from(len).unwrap_or(0)];
    input
        .read_exact_at(&mut record, offset)
        .map_err(Error::io(path))?;
    Ok(opener.open_chunk(last, &mut record).is_ok())
}

fn chunk_failed(layout: &Layout, index: u64, others: u64) -> Error {
    let (ct_start, ct_len) = layout.record_range(index);
    let (pt_start, pt_end) = layout.plaintext_range(index);
    Error::ChunkFailed {
        index,
        ct_start,
        ct_end: ct_start + ct_len,
        pt_start,
        pt_end,
        others,
    }
}

fn engine_error(job: &Job, e: EngineError) -> Error {
    match e {
        EngineError::Read(source) => Error::Io {
            path: job.dump.clone(),
            source,
        },
        EngineError::Write(source) => Error::Io {
            path: match &job.target {
                Target::File(p) => p.clone(),
                _ => "<stdout>".into(),
            },
            source,
        },
    }
}

/// Decrypts, verifies or salvages a sealed dump.
pub fn run(job: &Job, blob: &[u8], key_args: &KeyArgs) -> Result<()> {
    let view = HeaderView::parse(blob).map_err(header_error)?;
    let keys = &keyload::load_keys(key_args)?;
    if keys.is_empty() {
        return Err(Error::Usage(format!(
            "no private key given (--key or --key-dir); the dump is sealed to key id(s) {}",
            view.stanzas()
                .map(|s| key_id_hex(&s.key_id))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let Opened { opener, .. } = open_header(&view, keys)?;
    let input = File::open(&job.dump).map_err(Error::io(&job.dump))?;
    let stream_len = input.metadata().map_err(Error::io(&job.dump))?.len();
    let (trailer, layout) = read_trailer(&input, &job.dump, &opener, stream_len)?;
    let expected_len = opener.metadata().expected_length();

    if let TrailerState::Missing { .. } = trailer
        && job.mode != Mode::Salvage
    {
        return Err(Error::Truncated {
            len: stream_len,
            salvageable: true,
        });
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(job.threads)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {} threads: {e}", job.threads)))?;
    let bar = progress::bar(
        layout.plaintext_len(),
        match job.mode {
            Mode::Verify => "verifying",
            _ => "decrypting",
        },
    );
    let keep_going = job.mode != Mode::Decrypt;
    let opener_ref = Opener(&opener);

    let mut output = None;
    let outcome = match &job.target {
        Target::Nowhere => pool.install(|| {
            engine::run::<std::io::Stdout>(&input, &layout, &opener_ref, Sink::Discard, keep_going, &bar)
        }),
        Target::Stdout => {
            let mut lock = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
            pool.install(|| {
                engine::run(
                    &input,
                    &layout,
                    &opener_ref,
                    Sink::Stream(&mut lock),
                    keep_going,
                    &bar,
                )
            })
        }
        Target::File(path) => {
            let out = OutputFile::create(path, job.force, layout.plaintext_len())?;
            let r = pool.install(|| {
                engine::run::<std::io::Stdout>(
                    &input,
                    &layout,
                    &opener_ref,
                    Sink::File(out.file()),
                    keep_going,
                    &bar,
                )
            });
            output = Some(out);
            r
        }
    }
    .map_err(|e| engine_error(job, e))?;
    bar.finish_and_clear();

    let mut missing = engine::missing_ranges(&layout, &outcome.failed);
    let unknown_tail = matches!(trailer, TrailerState::Missing { .. });
    if unknown_tail && expected_len > layout.plaintext_len() {
        missing.push((layout.plaintext_len(), expected_len));
    }
    let missing_bytes: u64 = missing.iter().map(|(s, e)| e - s).sum();
    let aborted = matches!(trailer, TrailerState::Authentic(t) if t.status == TrailerStatus::Aborted);

    // Keep the output when everything written is authentic (complete, aborted) or when salvaging.
    let authentic = outcome.failed.is_empty();
    if let Some(out) = output
        && (authentic || job.mode == Mode::Salvage)
    {
        out.keep()?;
    }

    let trailer_word = match trailer {
        TrailerState::Authentic(t) if t.status == TrailerStatus::Complete => "complete",
        TrailerState::Authentic(_) => "aborted",
        TrailerState::Missing { .. } => "missing",
    };
    if job.mode == Mode::Salvage {
        for (s, e) in &missing {
            eprintln!("missing plaintext bytes {s}..{e} ({} bytes)", e - s);
        }
        if unknown_tail {
            eprintln!(
                "no authentic trailer: the dump may continue past byte {}{}",
                layout.plaintext_len(),
                if expected_len > 0 {
                    format!(" (its header announced {expected_len} bytes)")
                } else {
                    String::new()
                }
            );
        }
    }
    if job.json {
        let report = serde_json::json!({
            "format": "sealed",
            "mode": match job.mode { Mode::Decrypt => "decrypt", Mode::Verify => "verify", Mode::Salvage => "salvage" },
            "output": match &job.target { Target::File(p) => Some(p.display().to_string()), Target::Stdout => Some("-".into()), Target::Nowhere => None },
            "chunk_size": layout.chunk_size,
            "chunks": layout.records,
            "chunks_checked": outcome.processed,
            "plaintext_len": layout.plaintext_len(),
            "trailer": trailer_word,
            "failed_chunks": outcome.failed,
            "missing": missing.iter().map(|(s, e)| serde_json::json!({"start": s, "end": e})).collect::<Vec<_>>(),
            "missing_bytes": missing_bytes,
            "unknown_tail": unknown_tail,
            "authentic": authentic && !unknown_tail && !aborted,
        });
        println!("{report}");
    }

    if let Some(&first) = outcome.failed.first()
        && job.mode != Mode::Salvage
    {
        let others = if job.mode == Mode::Verify {
            outcome.failed.len() as u64 - 1
        } else {
            0
        };
        return Err(chunk_failed(&layout, first, others));
    }
    if job.mode == Mode::Salvage && (!missing.is_empty() || unknown_tail) {
        return Err(Error::Incomplete {
            missing_bytes,
            ranges: missing.len(),
            unknown_tail,
        });
    }
    if aborted {
        return Err(Error::Aborted {
            total: layout.plaintext_len(),
            written: !matches!(job.target, Target::Nowhere),
        });
    }
    if !job.json {
        match &job.target {
            Target::File(p) => eprintln!(
                "{}: {} bytes decrypted and authentic ({} chunks)",
                p.display(),
                layout.plaintext_len(),
                layout.records
            ),
            Target::Nowhere => eprintln!(
                "{}: authentic and complete: {} bytes in {} chunks",
                job.dump.display(),
                layout.plaintext_len(),
                layout.records
            ),
            Target::Stdout => {}
        }
    }
    let _ = std::io::stdout().flush();
    Ok(())
}
