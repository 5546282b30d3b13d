//! What one decrypt / verify / salvage run is asked to do, resolved from the command line.

use std::path::{Path, PathBuf};

use crate::cli::DecryptArgs;
use crate::error::{Error, Result};
use crate::locate;

/// What to do with the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decrypt; any failure is an error and removes the output.
    Decrypt,
    /// Authenticate everything, write nothing.
    Verify,
    /// Write every authentic chunk, zero-fill the rest.
    Salvage,
}

/// Where the plaintext goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `--verify`.
    Nowhere,
    /// `-o -`.
    Stdout,
    /// A file.
    File(PathBuf),
}

/// A resolved run.
#[derive(Debug)]
pub struct Job {
    /// The stored core.
    pub dump: PathBuf,
    /// The key blob (seal header or FreeBSD key file).
    pub key_blob: PathBuf,
    /// Mode.
    pub mode: Mode,
    /// Output.
    pub target: Target,
    /// Overwrite an existing output.
    pub force: bool,
    /// JSON report on stdout.
    pub json: bool,
    /// Worker threads.
    pub threads: usize,
}

/// The key blob for `dump`: `--keyfile`, else the one beside it.
pub fn key_blob_path(dump: &Path, keyfile: Option<&Path>) -> Result<PathBuf> {
    match keyfile {
        Some(p) => Ok(p.to_path_buf()),
        None => locate::key_blob_beside(dump).ok_or_else(|| {
            Error::Usage(format!(
                "{}: cannot find the key blob: the name is not vmcore_encrypted[.<host>].N; give --keyfile",
                dump.display()
            ))
        }),
    }
}

impl Job {
    /// Resolves the command line into a job.
    pub fn from_args(args: &DecryptArgs) -> Result<Self> {
        let dump = args
            .dump
            .clone()
            .ok_or_else(|| Error::Usage("no DUMP given".into()))?;
        let key_blob = key_blob_path(&dump, args.keys.keyfile.as_deref())?;
        let mode = match (args.verify, args.salvage) {
            (true, _) => Mode::Verify,
            (false, true) => Mode::Salvage,
            (false, false) => Mode::Decrypt,
        };
        let target = if mode == Mode::Verify {
            Target::Nowhere
        } else {
            match &args.output {
                Some(p) if p.as_os_str() == "-" => Target::Stdout,
                Some(p) => Target::File(p.clone()),
                None => Target::File(locate::default_output(&dump).ok_or_else(|| {
                    Error::Usage(format!(
                        "{}: cannot derive the output name (not vmcore_encrypted[.<host>].N); give -o OUT",
                        dump.display()
                    ))
                })?),
            }
        };
        if args.json && target == Target::Stdout {
            return Err(Error::Usage(
                "--json and -o - both want stdout; write the output to a file".into(),
            ));
        }
        if let Target::File(out) = &target
            && same_file(out, &dump)
        {
            return Err(Error::Usage(format!(
                "{}: output would overwrite the dump",
                out.display()
            )));
        }
        let threads = match args.threads {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        };
        Ok(Job {
            dump,
            key_blob,
            mode,
            target,
            force: args.force,
            json: args.json,
            threads,
        })
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
