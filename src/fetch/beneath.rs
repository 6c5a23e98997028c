//! Directories an input file names (`dir=`), made and opened beneath the
//! download directory `-d DIR`, never outside it.
//!
//! What may leave DIR is refused in two places. When the input file is
//! read (see `input`), a `dir=` that is absolute or has a `..` component is
//! a bad line: nothing is downloaded for it. When its download starts,
//! [`make_beneath`] walks the relative path one component at a time from
//! DIR, each made if missing (`mkdirat`) and opened with `O_NOFOLLOW |
//! O_DIRECTORY` relative to its parent's descriptor: a component that is a
//! symbolic link (planted after the list was written, or pointing
//! anywhere) fails that download, as `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` would. DIR itself is the user's choice and is
//! followed as given.
//!
//! The download then uses the path, not the descriptors: a component
//! replaced by a symlink between this check and the download's own file
//! operations (a few milliseconds) would be followed. Only someone who can
//! write inside DIR can do that (a server names files, never directories:
//! its names are one component, see `name`), and the files themselves are
//! still created with `O_NOFOLLOW` and renamed without following.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// Why a `dir=` value is refused when read, if it is: absolute, or with a
/// `..` component.
pub fn static_problem(dir: &Path) -> Option<&'static str> {
    for c in dir.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return Some("an absolute path leaves -d DIR"),
            Component::ParentDir => return Some("a .. component leaves -d DIR"),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    None
}

/// Makes `base/sub` (`sub` relative, checked by [`static_problem`]) one
/// component at a time, refusing any that is a symbolic link; syncs each
/// directory an entry was added to, so that the new directories survive a
/// power loss with the files saved in them.
pub fn make_beneath(base: &Path, sub: &Path) -> io::Result<()> {
    if let Some(why) = static_problem(sub) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    }
    let mut dir = File::open(base)?;
    for c in sub.components() {
        let Component::Normal(name) = c else { continue };
        let cname = CString::new(name.as_bytes())?;
        // SAFETY: a directory descriptor we own and a NUL-terminated name.
        let made = unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), 0o777) } == 0;
        if !made {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::AlreadyExists {
                return Err(err);
            }
        }
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: as above; the descriptor returned is owned by the File.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), cname.as_ptr(), flags) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ELOOP) || err.raw_os_error() == Some(libc::ENOTDIR) {
                let what = if is_symlink(&dir, &cname) { "a symbolic link" } else { "not a directory" };
                let shown = name.to_string_lossy();
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{shown} is {what} (refused)")));
            }
            return Err(err);
        }
        if made {
            dir.sync_all()?;
        }
        // SAFETY: fd is a new descriptor nobody else owns.
        dir = unsafe { File::from_raw_fd(fd) };
    }
    Ok(())
}

/// Whether `name` in `dir` is a symbolic link.
fn is_symlink(dir: &File, name: &CString) -> bool {
    // SAFETY: stat is plain data; fstatat writes into it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a descriptor we own, a NUL-terminated name, a valid out pointer.
    let rc = unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_problems() {
        let cases = [
            ("sub", None),
            ("a/b/./c", None),
            ("./a", None),
            ("/abs", Some("absolute")),
            ("..", Some("..")),
            ("a/../b", Some("..")),
            ("a/..", Some("..")),
        ];
        for (dir, want) in cases {
            let got = static_problem(Path::new(dir));
            assert_eq!(got.is_some(), want.is_some(), "{dir}: {got:?}");
            if let (Some(got), Some(want)) = (got, want) {
                assert!(got.contains(want), "{dir}: {got}");
            }
        }
    }

    #[test]
    fn directories_are_made_beneath_and_symlinks_refused() {
        let top = tempfile::tempdir().expect("tempdir");
        let base = top.path().join("base");
        let outside = top.path().join("outside");
        std::fs::create_dir_all(&base).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        make_beneath(&base, Path::new("a/b/c")).expect("made");
        assert!(base.join("a/b/c").is_dir());
        make_beneath(&base, Path::new("a/b")).expect("exists already");
        std::os::unix::fs::symlink(&outside, base.join("a/link")).expect("symlink");
        for sub in ["a/link", "a/link/deeper"] {
            let e = make_beneath(&base, Path::new(sub)).expect_err(sub);
            assert!(e.to_string().contains("link is a symbolic link"), "{sub}: {e}");
        }
        std::fs::write(base.join("file"), b"x").expect("write");
        let e = make_beneath(&base, Path::new("file/x")).expect_err("a file");
        assert!(e.to_string().contains("not a directory"), "{e}");
        assert!(make_beneath(&base, Path::new("../outside/x")).is_err());
        assert_eq!(std::fs::read_dir(&outside).expect("dir").count(), 0, "nothing made outside");
    }
}
