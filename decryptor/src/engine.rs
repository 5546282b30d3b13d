//! The parallel record engine: authenticates and decrypts independent records with positional reads and writes,
//! in bounded memory (a batch of record buffers), optionally streaming the plaintext in order.
//!
//! It knows nothing of the sealed format: a [`RecordOpener`] decrypts one record in place.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use indicatif::ProgressBar;
use rayon::prelude::*;

/// Decrypts one record (ciphertext ‖ 16-byte tag) in place.
pub trait RecordOpener: Sync {
    /// Authenticates and decrypts record `index`; returns the plaintext length, or `None` if it is not authentic
    /// (the record's bytes are then unspecified: the engine never uses them).
    fn open_record(&self, index: u64, record: &mut [u8]) -> Option<usize>;
}

/// Authentication tag length of every record.
pub const TAG_LEN: u64 = 16;

/// Where the records lie in the stored stream and where their plaintext goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Plaintext bytes per chunk.
    pub chunk_size: u64,
    /// Number of data records to process.
    pub records: u64,
    /// Stored length (ciphertext + tag) of the last record; the others are `chunk_size + 16`.
    pub last_record_len: u64,
}

impl Layout {
    /// A complete stream of `plaintext_len` bytes cut in `chunk_size` chunks.
    pub fn for_plaintext(chunk_size: u64, plaintext_len: u64) -> Self {
        let records = plaintext_len.div_ceil(chunk_size);
        let last_plain = plaintext_len - records.saturating_sub(1) * chunk_size;
        Layout {
            chunk_size,
            records,
            last_record_len: if records == 0 { 0 } else { last_plain + TAG_LEN },
        }
    }

    /// Stored size of a full record.
    pub fn record_size(&self) -> u64 {
        self.chunk_size + TAG_LEN
    }

    /// Offset and stored length of record `index`.
    pub fn record_range(&self, index: u64) -> (u64, u64) {
        let len = if index + 1 == self.records {
            self.last_record_len
        } else {
            self.record_size()
        };
        (index * self.record_size(), len)
    }

    /// Plaintext byte range `[start, end)` of record `index`.
    pub fn plaintext_range(&self, index: u64) -> (u64, u64) {
        let (_, len) = self.record_range(index);
        let start = index * self.chunk_size;
        (start, start + len.saturating_sub(TAG_LEN))
    }

    /// Total plaintext length.
    pub fn plaintext_len(&self) -> u64 {
        if self.records == 0 {
            0
        } else {
            self.plaintext_range(self.records - 1).1
        }
    }

    /// Stored length of all data records.
    pub fn stored_len(&self) -> u64 {
        if self.records == 0 {
            0
        } else {
            (self.records - 1) * self.record_size() + self.last_record_len
        }
    }
}

/// Where plaintext goes.
#[derive(Debug)]
pub enum Sink<'a, W: Write> {
    /// Nowhere (`--verify`).
    Discard,
    /// Positional writes into a file already sized to the plaintext and reading as zeros (holes): zero pages of
    /// the plaintext and failed records are not written.
    File(&'a File),
    /// In order to a stream (`-o -`); failed chunks are zero-filled when `keep_going`.
    Stream(&'a mut W),
}

/// An I/O failure, saying which side failed.
#[derive(Debug)]
pub enum EngineError {
    /// Reading the stored stream.
    Read(io::Error),
    /// Writing the plaintext.
    Write(io::Error),
}

/// The result of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Indices of records that failed authentication, ascending.
    pub failed: Vec<u64>,
    /// Records processed (all of them unless stopped at the first failure).
    pub processed: u64,
}

/// Record buffers a run may hold: ~64 MiB, whatever the thread count.
fn buffer_cap(record_size: u64) -> usize {
    usize::try_from((64 << 20) / record_size.max(1)).unwrap_or(usize::MAX)
}

/// Records per batch of the ordered stream: enough to keep every thread busy between the ordered flushes, within
/// the buffer cap.
fn batch_len(threads: usize, record_size: u64) -> usize {
    threads.saturating_mul(16).min(buffer_cap(record_size)).max(1)
}

/// Workers of a positional run, one record buffer each, within the buffer cap (1024 threads at 1 MiB chunks
/// would otherwise hold 1 GiB); the pool's other threads sit the run out.
fn positional_workers(threads: usize, record_size: u64) -> usize {
    threads.min(buffer_cap(record_size)).max(1)
}

enum Slot {
    Ok(usize),
    Failed,
}

/// Processes every record of `layout` from `input` on the current rayon pool.
///
/// With `keep_going` false it stops early after a failed record; `failed` then holds only the lowest failed index
/// (every record before it was processed). With it true every record is processed, `failed` lists every failed
/// record and failed ones are zero-filled in a stream sink (a file sink leaves their range as it was: holes).
pub fn run<W: Write + Send>(
    input: &File,
    layout: &Layout,
    opener: &dyn RecordOpener,
    sink: Sink<'_, W>,
    keep_going: bool,
    progress: &ProgressBar,
) -> Result<Outcome, EngineError> {
    let record_size = usize::try_from(layout.record_size())
        .map_err(|_| EngineError::Read(io::ErrorKind::InvalidInput.into()))?;
    let workers = positional_workers(rayon::current_num_threads(), layout.record_size());
    let out = match sink {
        Sink::Stream(w) => return run_ordered(input, layout, opener, w, record_size, keep_going, progress),
        Sink::File(out) => Some(out),
        Sink::Discard => None,
    };
    run_positional(
        input,
        layout,
        opener,
        out,
        record_size,
        workers,
        keep_going,
        progress,
    )
}

/// Positional writes (or none). Every worker claims the next record from a shared counter, so the workers stay
/// within a few records of each other (one readahead window, neighbouring output pages) with no barrier to wait
/// at, and reuses one record buffer, which stays in its cache.
#[allow(clippy::too_many_arguments)]
fn run_positional(
    input: &File,
    layout: &Layout,
    opener: &dyn RecordOpener,
    out: Option<&File>,
    record_size: usize,
    workers: usize,
    keep_going: bool,
    progress: &ProgressBar,
) -> Result<Outcome, EngineError> {
    let next = AtomicU64::new(0);
    // Lowest failed index so far. Indices are claimed in ascending order, so without keep_going a worker stops
    // at the first claim past it, and every record before the lowest failure is still processed.
    let lowest_failure = AtomicU64::new(u64::MAX);
    let io_failed = AtomicBool::new(false);
    let open_one = |index: u64, buf: &mut Vec<u8>| -> Result<bool, EngineError> {
        let (offset, len) = layout.record_range(index);
        let record = buf
            .get_mut(..len as usize)
            .ok_or_else(|| EngineError::Read(io::ErrorKind::InvalidInput.into()))?;
        input.read_exact_at(record, offset).map_err(EngineError::Read)?;
        let Some(n) = opener.open_record(index, record) else {
            return Ok(false);
        };
        if let Some(out) = out {
            write_nonzero_pages_at(out, &record[..n], index * layout.chunk_size)
                .map_err(EngineError::Write)?;
        }
        progress.inc(n as u64);
        Ok(true)
    };
    let results = rayon::broadcast(|context| -> Result<(Vec<u64>, u64), EngineError> {
        if context.index() >= workers {
            return Ok((Vec::new(), 0));
        }
        let mut buf = vec![0u8; record_size];
        let mut failed = Vec::new();
        let mut processed = 0u64;
        while !io_failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= layout.records || (!keep_going && index > lowest_failure.load(Ordering::Relaxed)) {
                break;
            }
            match open_one(index, &mut buf) {
                Ok(true) => {}
                Ok(false) => {
                    failed.push(index);
                    lowest_failure.fetch_min(index, Ordering::Relaxed);
                }
                Err(e) => {
                    io_failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            processed += 1;
        }
        Ok((failed, processed))
    });
    let mut outcome = Outcome::default();
    for result in results {
        let (failed, processed) = result?;
        outcome.failed.extend(failed);
        outcome.processed += processed;
    }
    outcome.failed.sort_unstable();
    if !keep_going {
        outcome.failed.truncate(1);
    }
    Ok(outcome)
}

/// In order to a stream: a batch of records is opened in parallel, then written out in index order.
fn run_ordered<W: Write + Send>(
    input: &File,
    layout: &Layout,
    opener: &dyn RecordOpener,
    w: &mut W,
    record_size: usize,
    keep_going: bool,
    progress: &ProgressBar,
) -> Result<Outcome, EngineError> {
    let threads = rayon::current_num_threads();
    let batch = batch_len(threads, layout.record_size());
    let mut buffers: Vec<Vec<u8>> = (0..batch.min(usize::try_from(layout.records).unwrap_or(usize::MAX)))
        .map(|_| vec![0u8; record_size])
        .collect();
    let mut outcome = Outcome::default();

    let mut first = 0u64;
    while first < layout.records {
        let count = usize::try_from((layout.records - first).min(batch as u64)).unwrap_or(batch);
        let slots: Vec<Result<Slot, EngineError>> = buffers[..count]
            .par_iter_mut()
            .enumerate()
            .map(|(k, buf)| {
                let index = first + k as u64;
                let (offset, len) = layout.record_range(index);
                let record = &mut buf[..len as usize];
                input.read_exact_at(record, offset).map_err(EngineError::Read)?;
                let slot = match opener.open_record(index, record) {
                    Some(n) => {
                        progress.inc(n as u64);
                        Slot::Ok(n)
                    }
                    None => Slot::Failed,
                };
                Ok(slot)
            })
            .collect();

        let mut batch_failed = false;
        for (k, slot) in slots.into_iter().enumerate() {
            let index = first + k as u64;
            match slot? {
                Slot::Ok(n) => {
                    if keep_going || !batch_failed {
                        w.write_all(&buffers[k][..n]).map_err(EngineError::Write)?;
                    }
                }
                Slot::Failed => {
                    batch_failed = true;
                    outcome.failed.push(index);
                    if keep_going {
                        let (start, end) = layout.plaintext_range(index);
                        write_zeros(&mut *w, end - start).map_err(EngineError::Write)?;
                    }
                }
            }
        }
        outcome.processed = first + count as u64;
        if batch_failed && !keep_going {
            outcome.failed.truncate(1);
            break;
        }
        first += count as u64;
    }
    w.flush().map_err(EngineError::Write)?;
    Ok(outcome)
}

/// Granule of the zero test. Records start at multiples of the chunk size (4 KiB or more), so these are the file
/// system's pages.
const PAGE: usize = 4096;

/// Writes `data` at `offset`, leaving out the 4 KiB pages that are all zeros: the file sink already reads as zeros
/// there (a hole). Crash dumps hold many zero pages; each one skipped saves a page allocation and copy in the
/// kernel (the larger part of a decrypt's CPU) and a block on disk.
fn write_nonzero_pages_at(out: &File, data: &[u8], offset: u64) -> io::Result<()> {
    let mut run_start = None;
    for (k, page) in data.chunks(PAGE).enumerate() {
        let at = k * PAGE;
        match (is_zero(page), run_start) {
            (true, Some(start)) => {
                out.write_all_at(&data[start..at], offset + start as u64)?;
                run_start = None;
            }
            (false, None) => run_start = Some(at),
            _ => {}
        }
    }
    if let Some(start) = run_start {
        out.write_all_at(&data[start..], offset + start as u64)?;
    }
    Ok(())
}

fn is_zero(bytes: &[u8]) -> bool {
    // Data pages almost always differ from zero in their first bytes, so the whole-page test (which vectorises,
    // having no early exit) runs on likely-zero pages only.
    let (head, rest) = bytes.split_at(bytes.len().min(16));
    head.iter().all(|&b| b == 0) && rest.iter().fold(0, |acc, &b| acc | b) == 0
}

fn write_zeros(w: &mut dyn Write, mut len: u64) -> io::Result<()> {
    let zeros = [0u8; 8192];
    while len > 0 {
        let n = len.min(zeros.len() as u64) as usize;
        w.write_all(&zeros[..n])?;
        len -= n as u64;
    }
    Ok(())
}

/// Coalesces ascending failed record indices into plaintext ranges `[start, end)`.
pub fn missing_ranges(layout: &Layout, failed: &[u64]) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &index in failed {
        let (start, end) = layout.plaintext_range(index);
        match ranges.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => ranges.push((start, end)),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A toy record format: plaintext XOR 0x5a, tag = 16 copies of (index as u8 ^ sum of plaintext bytes).
    struct Toy;
    fn toy_tag(index: u64, plain: &[u8]) -> u8 {
        plain.iter().fold(index as u8, |a, b| a.wrapping_add(*b))
    }
    impl RecordOpener for Toy {
        fn open_record(&self, index: u64, record: &mut [u8]) -> Option<usize> {
            let n = record.len().checked_sub(16)?;
            let (body, tag) = record.split_at_mut(n);
            body.iter_mut().for_each(|b| *b ^= 0x5a);
            (tag.iter().all(|t| *t == toy_tag(index, body))).then_some(n)
        }
    }
    fn toy_stream(plain: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, c) in plain.chunks(chunk).enumerate() {
            out.extend(c.iter().map(|b| b ^ 0x5a));
            out.extend([toy_tag(i as u64, c); 16]);
        }
        out
    }

    fn setup(len: usize, chunk: usize) -> (tempfile::NamedTempFile, Vec<u8>, Layout) {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        let stream = toy_stream(&plain, chunk);
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &stream).unwrap();
        (f, plain, Layout::for_plaintext(chunk as u64, len as u64))
    }

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap()
    }

    #[test]
    fn batch_memory_is_bounded() {
        let record = (1u64 << 20) + 16;
        for threads in [1usize, 2, 64, 1024] {
            let b = batch_len(threads, record);
            assert!(b >= 1 && b as u64 * record <= 64 << 20, "{threads} threads: {b}");
        }
        assert_eq!(batch_len(2, 4112), 32);
        for threads in [1usize, 2, 64, 1024] {
            let w = positional_workers(threads, record);
            assert!(
                w >= 1 && w <= threads && w as u64 * record <= 64 << 20,
                "{threads} threads: {w}"
            );
        }
        assert_eq!(positional_workers(1024, 65_552), 1023);
        assert_eq!(positional_workers(2, 65_552), 2);
    }

    #[test]
    fn layout_arithmetic() {
        let l = Layout::for_plaintext(4096, 10_000);
        assert_eq!(l.records, 3);
        assert_eq!(l.record_range(2), (2 * 4112, 10_000 - 8192 + 16));
        assert_eq!(l.plaintext_range(2), (8192, 10_000));
        assert_eq!(l.plaintext_len(), 10_000);
        assert_eq!(l.stored_len(), 2 * 4112 + 1808 + 16);
        let l = Layout::for_plaintext(4096, 8192);
        assert_eq!((l.records, l.last_record_len), (2, 4112));
        assert_eq!(Layout::for_plaintext(4096, 0).stored_len(), 0);
    }

    /// `run` of the toy opener over `input` into the file `out` on a pool of `threads`, not stopping at failures.
    fn decrypt_to_file(threads: usize, input: &File, layout: &Layout, out: &File) -> Outcome {
        pool(threads)
            .install(|| {
                run::<Vec<u8>>(
                    input,
                    layout,
                    &Toy,
                    Sink::File(out),
                    false,
                    &ProgressBar::hidden(),
                )
            })
            .unwrap()
    }

    #[test]
    fn file_and_stream_sinks_match_plaintext() {
        for threads in [1, 3] {
            let (input, plain, layout) = setup(100_003, 1000);
            let out = tempfile::tempfile().unwrap();
            out.set_len(layout.plaintext_len()).unwrap();
            let input_file = File::open(input.path()).unwrap();
            let o = decrypt_to_file(threads, &input_file, &layout, &out);
            assert!(o.failed.is_empty());
            let mut got = vec![0u8; plain.len()];
            out.read_exact_at(&mut got, 0).unwrap();
            assert_eq!(got, plain);

            let mut streamed = Vec::new();
            pool(threads)
                .install(|| {
                    run(
                        &input_file,
                        &layout,
                        &Toy,
                        Sink::Stream(&mut streamed),
                        false,
                        &ProgressBar::hidden(),
                    )
                })
                .unwrap();
            assert_eq!(streamed, plain);
        }
    }

    #[test]
    fn failures_stop_or_are_zero_filled() {
        let (input, plain, layout) = setup(50_000, 1000);
        // Corrupt records 3, 4 and 40.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(input.path())
            .unwrap();
        for i in [3u64, 4, 40] {
            f.write_all_at(&[0xff], i * 1016 + 5).unwrap();
        }
        let input_file = File::open(input.path()).unwrap();
        let mut streamed = Vec::new();
        let o = pool(2)
            .install(|| {
                run(
                    &input_file,
                    &layout,
                    &Toy,
                    Sink::Stream(&mut streamed),
                    true,
                    &ProgressBar::hidden(),
                )
            })
            .unwrap();
        assert_eq!(o.failed, vec![3, 4, 40]);
        assert_eq!(
            missing_ranges(&layout, &o.failed),
            vec![(3000, 5000), (40_000, 41_000)]
        );
        let mut expect = plain.clone();
        expect[3000..5000].fill(0);
        expect[40_000..41_000].fill(0);
        assert_eq!(streamed, expect);

        let o = pool(2)
            .install(|| {
                run::<Vec<u8>>(
                    &input_file,
                    &layout,
                    &Toy,
                    Sink::Discard,
                    false,
                    &ProgressBar::hidden(),
                )
            })
            .unwrap();
        assert_eq!(o.failed, vec![3], "stops at the first failure, reports only it");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Any length, chunk size, thread count and set of damaged records: every sink and mode agrees with the
        /// model (authentic chunks byte-exact, damaged ones zero, the lowest damaged index reported first).
        #[test]
        fn engine_matches_model(
            len in 0usize..20_000,
            chunk in 17usize..3000,
            threads in 1usize..4,
            damage in proptest::collection::vec(0usize..40, 0..4),
        ) {
            let (input, plain, layout) = setup(len, chunk);
            let mut damaged: Vec<u64> =
                damage.iter().map(|&d| d as u64).filter(|&d| d < layout.records).collect();
            damaged.sort_unstable();
            damaged.dedup();
            let f = std::fs::OpenOptions::new().read(true).write(true).open(input.path()).unwrap();
            for &i in &damaged {
                // Flip (not overwrite) a tag byte, so the record is damaged whatever it held.
                let (offset, len) = layout.record_range(i);
                let mut b = [0u8];
                f.read_exact_at(&mut b, offset + len - 1).unwrap();
                f.write_all_at(&[b[0] ^ 0xa5], offset + len - 1).unwrap();
            }
            let input_file = File::open(input.path()).unwrap();
            let mut expect = plain.clone();
            for &i in &damaged {
                let (s, e) = layout.plaintext_range(i);
                expect[s as usize..e as usize].fill(0);
            }
            let p = pool(threads);
            let mut streamed = Vec::new();
            let o = p
                .install(|| run(&input_file, &layout, &Toy, Sink::Stream(&mut streamed), true, &ProgressBar::hidden()))
                .unwrap();
            proptest::prop_assert_eq!(&o.failed, &damaged);
            proptest::prop_assert_eq!(&streamed, &expect);

            let out = tempfile::tempfile().unwrap();
            out.set_len(layout.plaintext_len()).unwrap();
            p.install(|| run::<Vec<u8>>(&input_file, &layout, &Toy, Sink::File(&out), true, &ProgressBar::hidden()))
                .unwrap();
            let mut got = vec![0u8; plain.len()];
            out.read_exact_at(&mut got, 0).unwrap();
            proptest::prop_assert_eq!(&got, &expect);

            let o = p
                .install(|| run::<Vec<u8>>(&input_file, &layout, &Toy, Sink::Discard, false, &ProgressBar::hidden()))
                .unwrap();
            proptest::prop_assert_eq!(o.failed.first(), damaged.first());
            proptest::prop_assert!(o.failed.len() <= 1);
        }
    }

    #[test]
    fn zero_pages_are_left_as_holes_with_the_same_content() {
        // 8 KiB chunks; zero runs that cover whole pages, straddle chunk boundaries or are shorter than a page.
        let chunk = 8192;
        let mut plain: Vec<u8> = (0..40 * chunk).map(|i| (i % 251) as u8 | 1).collect();
        for (start, len) in [
            (0, 4096),
            (3 * chunk + 4096, 3 * chunk),
            (20 * chunk, 100),
            (30 * chunk, 10 * chunk),
        ] {
            plain[start..start + len].fill(0);
        }
        let stream = toy_stream(&plain, chunk);
        let input = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(input.path(), &stream).unwrap();
        let layout = Layout::for_plaintext(chunk as u64, plain.len() as u64);
        let input_file = File::open(input.path()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = File::create_new(dir.path().join("out")).unwrap();
        out.set_len(layout.plaintext_len()).unwrap();
        let o = decrypt_to_file(2, &input_file, &layout, &out);
        assert!(o.failed.is_empty());
        let mut got = vec![0u8; plain.len()];
        out.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(got, plain);

        // Where the file system keeps holes (a fresh sized file has no blocks), the zero pages took none.
        use std::os::unix::fs::MetadataExt;
        let probe = File::create_new(dir.path().join("probe")).unwrap();
        probe.set_len(1 << 20).unwrap();
        if probe.metadata().unwrap().blocks() == 0 {
            let zero_pages = 1 + 3 * 2 + 10 * 2;
            let allocated = out.metadata().unwrap().blocks() * 512;
            assert!(
                allocated <= (plain.len() - zero_pages * 4096) as u64,
                "{allocated} bytes allocated"
            );
        }
    }

    #[test]
    fn pool_threads_beyond_the_buffer_cap_sit_out() {
        let (input, plain, layout) = setup(30_000, 1000);
        let input_file = File::open(input.path()).unwrap();
        for workers in [1, 2] {
            let out = tempfile::tempfile().unwrap();
            out.set_len(layout.plaintext_len()).unwrap();
            let o = pool(4)
                .install(|| {
                    run_positional(
                        &input_file,
                        &layout,
                        &Toy,
                        Some(&out),
                        1016,
                        workers,
                        true,
                        &ProgressBar::hidden(),
                    )
                })
                .unwrap();
            assert_eq!((o.failed.len(), o.processed), (0, layout.records));
            let mut got = vec![0u8; plain.len()];
            out.read_exact_at(&mut got, 0).unwrap();
            assert_eq!(got, plain);
        }
    }

    #[test]
    fn unwritable_output_is_a_write_error_on_any_thread_count() {
        let (input, _plain, layout) = setup(100_000, 1000);
        let input_file = File::open(input.path()).unwrap();
        let out = tempfile::NamedTempFile::new().unwrap();
        let read_only = File::open(out.path()).unwrap();
        for threads in [1, 3] {
            let r = pool(threads).install(|| {
                run::<Vec<u8>>(
                    &input_file,
                    &layout,
                    &Toy,
                    Sink::File(&read_only),
                    true,
                    &ProgressBar::hidden(),
                )
            });
            assert!(matches!(r, Err(EngineError::Write(_))), "{threads} threads");
        }
    }

    #[test]
    fn short_input_is_a_read_error() {
        let (input, _plain, layout) = setup(10_000, 1000);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(input.path())
            .unwrap();
        f.set_len(layout.stored_len() - 1).unwrap();
        let input_file = File::open(input.path()).unwrap();
        let r = pool(1).install(|| {
            run::<Vec<u8>>(
                &input_file,
                &layout,
                &Toy,
                Sink::Discard,
                true,
                &ProgressBar::hidden(),
            )
        });
        assert!(matches!(r, Err(EngineError::Read(_))));
    }
}
