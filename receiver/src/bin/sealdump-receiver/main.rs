//! `sealdump-receiver`: netdumpd-compatible receiver daemon.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use sealdump_receiver::cli::{Cli, LogFormat};
use sealdump_receiver::server::Server;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALDUMP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match cli.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sealdump-receiver: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sealdump-receiver: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let server = match Server::bind(settings.server.clone()).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sealdump-receiver: cannot bind {}: {e}", settings.server.bind);
                return ExitCode::from(2);
            }
        };
        // The pid file exists before the address is announced, so whoever reads the line can rely on it.
        if let Some(pidfile) = &settings.pidfile
            && let Err(e) = std::fs::write(pidfile, format!("{}\n", std::process::id()))
        {
            eprintln!("sealdump-receiver: cannot write {}: {e}", pidfile.display());
            return ExitCode::from(2);
        }
        match server.local_addr() {
            Ok(addr) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "listening on {addr}");
                let _ = out.flush();
            }
            Err(e) => {
                eprintln!("sealdump-receiver: {e}");
                return ExitCode::from(2);
            }
        }
        if let Some(addr) = server.metrics_addr() {
            tracing::info!(%addr, "metrics endpoint");
        }
        tracing::info!(dump_dir = %settings.server.store.dump_dir.display(), "waiting for clients");
        let result = server.run(shutdown_signal()).await;
        if let Some(pidfile) = &settings.pidfile {
            let _ = std::fs::remove_file(pidfile);
        }
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sealdump-receiver: {e}");
                ExitCode::from(2)
            }
        }
    })
}
