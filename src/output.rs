//! Files that appear under their final name only when complete: written to a
//! temporary name in the same directory, fsynced, then renamed. Also what
//! every report shares about text a peer chose ([`reorders_text`]).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Whether `c` is a bidirectional mark, override or isolate: not a control
/// character, yet it reorders what a terminal shows after it, so text a
/// peer chose shows it escaped like a control (chat, fetch reports).
pub(crate) fn reorders_text(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A file being written; invisible under its final name until [`commit`].
///
/// [`commit`]: AtomicFile::commit
#[derive(Debug)]
pub struct AtomicFile {
    temp: PathBuf,
    target: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Creates the temporary file next to `target`.
    pub fn create(target: &Path) -> anyhow::Result<Self> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target.file_name().with_context(|| format!("{} is not a file name", target.display()))?;
        let temp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .with_context(|| format!("cannot create {}", temp.display()))?;
        Ok(AtomicFile { temp, target: target.to_path_buf(), file: Some(file) })
    }

    /// A handle to write through.
    pub fn file(&self) -> io::Result<File> {
        self.file.as_ref().ok_or_else(|| io::Error::other("already committed"))?.try_clone()
    }

    /// Flushes to disk and moves the file to its final name.
    pub fn commit(mut self) -> anyhow::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all().with_context(|| format!("cannot sync {}", self.temp.display()))?;
        }
        fs::rename(&self.temp, &self.target)
            .with_context(|| format!("cannot rename {} to {}", self.temp.display(), self.target.display()))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.json");
        let f = AtomicFile::create(&target).unwrap();
        f.file().unwrap().write_all(b"hello").unwrap();
        assert!(!target.exists());
        f.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"hello");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_uncommitted_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = AtomicFile::create(&dir.path().join("x")).unwrap();
        drop(f);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
