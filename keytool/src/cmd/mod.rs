//! One module per subcommand.

pub mod fingerprint;
pub mod gen_key;
pub mod inspect;
pub mod provision;
pub mod pub_key;

/// Writes to the command's output, mapping failures to [`crate::Error::Output`].
pub(crate) fn emit(out: &mut dyn std::io::Write, text: &str) -> Result<(), crate::Error> {
    out.write_all(text.as_bytes()).map_err(crate::Error::Output)
}
