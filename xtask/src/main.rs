//! Project chores, run as `cargo xtask <task>`.
//!
//! `dist-docs [OUT_DIR]` writes, for every binary of the project, man pages (the command and each subcommand,
//! with clap_mangen) to `OUT_DIR/man/` and bash, zsh and fish completions (clap_complete) to
//! `OUT_DIR/completions/{bash,zsh,fish}/`. The default OUT_DIR is `target/dist` in the workspace.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use clap_complete::Shell;

/// Project chores.
#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    after_help = "Example:\n  cargo xtask dist-docs            # writes target/dist/{man,completions}"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Generate man pages and bash/zsh/fish completions for every binary.
    DistDocs {
        /// Output directory [default: target/dist in the workspace].
        out_dir: Option<PathBuf>,
    },
}

/// Every binary of the project with its full clap command.
fn binaries() -> Vec<(&'static str, clap::Command)> {
    vec![
        ("sealdump-keytool", sealdump_keytool::cli_command()),
        ("sealdump-receiver", sealdump_receiver::cli_command()),
        ("sealdump-decryptor", sealdump_decryptor::cli_command()),
        ("sealdump-send", sealdump_drivers::hosted::cli_command()),
    ]
}

const SHELLS: [(Shell, &str); 3] = [(Shell::Bash, "bash"), (Shell::Zsh, "zsh"), (Shell::Fish, "fish")];

/// Writes all man pages and completions under `out_dir`; returns the files written.
fn dist_docs(out_dir: &Path) -> Result<Vec<PathBuf>> {
    let man_dir = out_dir.join("man");
    std::fs::create_dir_all(&man_dir).with_context(|| format!("creating {}", man_dir.display()))?;
    let mut written = Vec::new();
    for (bin, cmd) in binaries() {
        let cmd = cmd.name(bin).bin_name(bin);
        let before: Vec<PathBuf> = list(&man_dir)?;
        clap_mangen::generate_to(cmd.clone(), &man_dir)
            .with_context(|| format!("man pages of {bin} in {}", man_dir.display()))?;
        written.extend(list(&man_dir)?.into_iter().filter(|p| !before.contains(p)));
        for (shell, name) in SHELLS {
            let dir = out_dir.join("completions").join(name);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut cmd = cmd.clone();
            let path = clap_complete::generate_to(shell, &mut cmd, bin, &dir)
                .with_context(|| format!("{name} completion of {bin} in {}", dir.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        out.push(entry?.path());
    }
    Ok(out)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::DistDocs { out_dir } => {
            let out_dir = out_dir.unwrap_or_else(|| workspace_root().join("target").join("dist"));
            dist_docs(&out_dir).map(|files| {
                println!("wrote {} files under {}", files.len(), out_dir.display());
            })
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn dist_docs_writes_man_pages_and_completions_for_every_binary() {
        let dir = tempfile::tempdir().unwrap();
        dist_docs(dir.path()).unwrap();
        for (bin, _) in binaries() {
            let page = std::fs::read_to_string(dir.path().join("man").join(format!("{bin}.1"))).unwrap();
            assert!(page.contains(".TH ") && page.contains(bin), "{bin}.1");
            for (file, shell) in [
                (format!("{bin}.bash"), "bash"),
                (format!("_{bin}"), "zsh"),
                (format!("{bin}.fish"), "fish"),
            ] {
                let text = std::fs::read_to_string(dir.path().join("completions").join(shell).join(&file))
                    .unwrap_or_else(|e| panic!("{shell}/{file}: {e}"));
                assert!(text.contains(bin), "{shell}/{file}");
            }
        }
        // Subcommands get their own pages, e.g. sealdump-keytool-gen.1.
        let gen_page = std::fs::read_to_string(dir.path().join("man/sealdump-keytool-gen.1")).unwrap();
        assert!(gen_page.contains("passphrase"));
        let bash =
            std::fs::read_to_string(dir.path().join("completions/bash/sealdump-keytool.bash")).unwrap();
        assert!(bash.contains("provision") && bash.contains("--recipient"));
    }
}
