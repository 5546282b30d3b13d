//! How the binary reports an error: one line on stderr, exit status from the error.

use std::process::ExitCode;

/// Prints `sealdump-keytool: error: <message>` and returns the exit status.
pub fn report(err: &sealdump_keytool::Error) -> ExitCode {
    eprintln!("sealdump-keytool: error: {err}");
    ExitCode::from(err.exit_code())
}
