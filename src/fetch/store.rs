//! Writing a download so that a file under its final name is always
//! complete: the body goes to `NAME.part` (created, never reused: an
//! existing entry of that name, file or symlink, is left alone and
//! `NAME.part.1`... is used), is synced to disk, verified, and only then
//! renamed to its final name without replacing anything (unless told to).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::name::numbered;

/// What to do when the final name is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Collision {
    /// Keep the existing file; save as `name.1.ext`, `name.2.ext`...
    #[default]
    Number,
    /// Replace the existing entry (a symlink is replaced, not followed).
    Overwrite,
    /// Keep the existing file and skip the download.
    NoClobber,
}

/// Alternative names tried for a `.part` file or a taken final name.
const MAX_NUMBER: u32 = 1000;

/// Where a finished download ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Saved under this name in the directory.
    Saved(String),
    /// `--no-clobber` and the name was taken: nothing was written.
    Skipped(String),
}

/// A download's body on its way to the disk, with its running length and
/// SHA-256. Dropped without [`commit`](PartFile::commit), it removes its file.
#[derive(Debug)]
pub struct PartFile {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    written: u64,
    committed: bool,
}

/// Opens a new file that did not exist; never follows a symlink.
fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o644)
        .open(path)
}

impl PartFile {
    /// Creates `DIR/NAME.part` (or the first free `NAME.part.N`).
    pub fn create(dir: &Path, name: &str) -> io::Result<Self> {
        let base = format!("{name}.part");
        for n in 0..MAX_NUMBER {
            let candidate = if n == 0 { base.clone() } else { format!("{base}.{n}") };
            let path = dir.join(&candidate);
            match create_new(&path) {
                Ok(file) => return Ok(PartFile { file, path, hasher: Sha256::new(), written: 0, committed: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{base} and {MAX_NUMBER} alternatives exist")))
    }

    /// Forgets what was written (a new attempt starts from zero).
    pub fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }

    /// Appends a piece of the body.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.file.write_all(chunk)?;
        self.hasher.update(chunk);
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The SHA-256 of what was written so far.
    pub fn sha256(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }

    /// The `.part` file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the data to disk (before any rename makes it visible).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    /// Moves the synced file to `DIR/NAME` following `policy`.
    pub fn commit(mut self, dir: &Path, name: &str, policy: Collision) -> io::Result<Committed> {
        let result = match policy {
            Collision::Overwrite => std::fs::rename(&self.path, dir.join(name)).map(|()| Committed::Saved(name.into())),
            Collision::NoClobber => match rename_noreplace(&self.path, &dir.join(name)) {
                Ok(()) => Ok(Committed::Saved(name.into())),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Committed::Skipped(name.into())),
                Err(e) => Err(e),
            },
            Collision::Number => self.commit_numbered(dir, name),
        };
        if matches!(result, Ok(Committed::Saved(_))) {
            self.committed = true;
        }
        result
    }

    fn commit_numbered(&self, dir: &Path, name: &str) -> io::Result<Committed> {
        for n in 0..MAX_NUMBER {
            let candidate = numbered(name, n);
            match rename_noreplace(&self.path, &dir.join(&candidate)) {
                Ok(()) => return Ok(Committed::Saved(candidate)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{name} and {MAX_NUMBER} numbered alternatives exist"),
        ))
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Renames `from` to `to` unless `to` exists (as anything, a dangling
/// symlink included): `AlreadyExists` then. `renameat2(RENAME_NOREPLACE)`,
/// or link + unlink on file systems without it.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (cfrom, cto) = (c_path(from)?, c_path(to)?);
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(libc::AT_FDCWD, cfrom.as_ptr(), libc::AT_FDCWD, cto.as_ptr(), libc::RENAME_NOREPLACE)
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP) => {
            // link(2) fails with EEXIST if `to` exists and never follows it.
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        _ => Err(err),
    }
}

/// Makes the directory's entries (the renames) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
        v.sort();
        v
    }

    fn part(dir: &Path, name: &str, body: &[u8]) -> PartFile {
        let mut p = PartFile::create(dir, name).expect("part file");
        p.write(body).expect("write");
        p.sync().expect("sync");
        p
    }

    #[test]
    fn numbered_collisions_keep_existing_files() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join("x.bin"), b"old").expect("write");
        let c = part(d.path(), "x.bin", b"new1").commit(d.path(), "x.bin", Collision::Number).expect("commit");
        assert_eq!(c, Committed::Saved("x.1.bin".into()));
        let c = part(d.path(), "x.bin", b"new2").commit(d.path(), "x.bin", Collision::Number).expect("commit");
        assert_eq!(c, Committed::Saved("x.2.bin".into()));
        assert_eq!(names(d.path()), ["x.1.bin", "x.2.bin", "x.bin"]);
        assert_eq!(fs::read(d.path().join("x.bin")).expect("read"), b"old");
        assert_eq!(fs::read(d.path().join("x.2.bin")).expect("read"), b"new2");
    }

    #[test]
    fn no_clobber_skips_and_overwrite_replaces() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join("x"), b"old").expect("write");
        let c = part(d.path(), "x", b"new").commit(d.path(), "x", Collision::NoClobber).expect("commit");
        assert_eq!(c, Committed::Skipped("x".into()));
        assert_eq!(names(d.path()), ["x"], "the part file is gone");
        let c = part(d.path(), "x", b"new").commit(d.path(), "x", Collision::Overwrite).expect("commit");
        assert_eq!(c, Committed::Saved("x".into()));
        assert_eq!(fs::read(d.path().join("x")).expect("read"), b"new");
        assert_eq!(names(d.path()), ["x"]);
    }

    #[test]
    fn planted_symlinks_are_never_followed() {
        let d = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let victim = outside.path().join("victim");
        fs::write(&victim, b"precious").expect("write");
        std::os::unix::fs::symlink(&victim, d.path().join("x.part")).expect("symlink");
        std::os::unix::fs::symlink(&victim, d.path().join("x")).expect("symlink");
        let p = part(d.path(), "x", b"data");
        assert_eq!(p.path(), d.path().join("x.part.1"));
        assert_eq!(p.commit(d.path(), "x", Collision::Number).expect("commit"), Committed::Saved("x.1".into()));
        let p = part(d.path(), "x", b"data");
        assert_eq!(p.commit(d.path(), "x", Collision::Overwrite).expect("commit"), Committed::Saved("x".into()));
        assert_eq!(fs::read(&victim).expect("read"), b"precious");
        assert!(!fs::symlink_metadata(d.path().join("x")).expect("meta").file_type().is_symlink());
        assert_eq!(names(d.path()), ["x", "x.1", "x.part"]);
    }

    #[test]
    fn dropped_part_files_disappear_and_reset_starts_over() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut p = part(d.path(), "y", b"abc");
        p.reset().expect("reset");
        p.write(b"z").expect("write");
        assert_eq!((p.written(), fs::read(p.path()).expect("read")), (1, b"z".to_vec()));
        assert_eq!(p.sha256(), <[u8; 32]>::from(Sha256::digest(b"z")));
        drop(p);
        assert!(names(d.path()).is_empty());
    }
}
