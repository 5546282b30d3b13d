//! Where things are: the key blob beside a stored core, and the default output name.
//!
//! netdumpd and sealdump-receiver store `vmcore_encrypted.<host>.N` with `key.<host>.N`; savecore(8) stores
//! `vmcore_encrypted.N` with `key.N`. Both map by replacing the `vmcore_encrypted` prefix of the file name.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

const ENCRYPTED_PREFIX: &str = "vmcore_encrypted";

fn replace_prefix(dump: &Path, with: &str) -> Option<PathBuf> {
    let name = dump.file_name()?.to_str()?;
    let rest = name.strip_prefix(ENCRYPTED_PREFIX)?;
    // Only `vmcore_encrypted` itself or `vmcore_encrypted.<suffix>`: not `vmcore_encryptedX`.
    if !(rest.is_empty() || rest.starts_with('.')) {
        return None;
    }
    let mut new_name = OsString::from(with);
    new_name.push(rest);
    Some(dump.with_file_name(new_name))
}

/// The key blob stored beside `dump` (`vmcore_encrypted.<host>.N` → `key.<host>.N`), if the name allows it.
pub fn key_blob_beside(dump: &Path) -> Option<PathBuf> {
    replace_prefix(dump, "key")
}

/// The default output for `dump` (`vmcore_encrypted.<host>.N` → `vmcore.<host>.N`), if the name allows it.
pub fn default_output(dump: &Path) -> Option<PathBuf> {
    replace_prefix(dump, "vmcore")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netdumpd_and_savecore_names() {
        let d = Path::new("/var/crash/vmcore_encrypted.web1.example.0");
        assert_eq!(
            key_blob_beside(d).as_deref(),
            Some(Path::new("/var/crash/key.web1.example.0"))
        );
        assert_eq!(
            default_output(d).as_deref(),
            Some(Path::new("/var/crash/vmcore.web1.example.0"))
        );
        let d = Path::new("vmcore_encrypted.3");
        assert_eq!(key_blob_beside(d).as_deref(), Some(Path::new("key.3")));
        assert_eq!(default_output(d).as_deref(), Some(Path::new("vmcore.3")));
    }

    #[test]
    fn other_names_have_no_default() {
        assert_eq!(key_blob_beside(Path::new("dump.bin")), None);
        assert_eq!(default_output(Path::new("vmcore_encryptedx.0")), None);
        assert_eq!(default_output(Path::new("/tmp/")), None);
        // Only the file name is rewritten, never a directory.
        assert_eq!(default_output(Path::new("vmcore_encrypted.1/core")), None);
    }
}
