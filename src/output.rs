//! Output files ([`OutputFile`]): a regular file appears under its final
//! name only when complete (temporary name in the same directory, fsync,
//! rename); a device or FIFO is written into, never replaced. Also what
//! every report shares about text a peer chose ([`escaped`]).

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::error::BadInput;

/// Whether `c` is a bidirectional mark, override or isolate: not a control
/// character, yet it reorders what a terminal shows after it, so text a
/// peer chose shows it escaped like a control.
fn reorders_text(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether a terminal would act on `c` rather than show it: a control
/// character (C0, DEL, C1) or a bidirectional mark.
fn acts_on_terminal(c: char) -> bool {
    c.is_control() || reorders_text(c)
}

/// How [`escaped`] writes what a terminal would act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escapes {
    /// As irssi and weechat show a chat line: C0 controls and DEL in caret
    /// notation (`^[` for ESC, `^M` for CR), everything else `<U+XXXX>`.
    Caret,
    /// As a log or a JSON reader wants it: `\r`, `\n`, `\t`, other
    /// controls `\xNN`, bidirectional marks `\u{XXXX}` (scan banners,
    /// fetch's names and URLs).
    Backslash,
}

/// `text` a peer chose, with nothing a terminal would act on: an escape
/// sequence, an OSC 52 clipboard write, a CR that rewinds the line to forge
/// another, or a right-to-left override that makes `evil<RLO>txt.exe` show
/// as another name. Every report of trident shows peer text through this.
pub(crate) fn escaped(text: &str, escapes: Escapes) -> Cow<'_, str> {
    use std::fmt::Write as _;
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        // Writing into a String cannot fail.
        let _ = match (escapes, c) {
            (_, c) if !acts_on_terminal(c) => shown.write_char(c),
            (Escapes::Caret, '\u{0}'..='\u{1f}') => write!(shown, "^{}", char::from(c as u8 ^ 0x40)),
            (Escapes::Caret, '\u{7f}') => shown.write_str("^?"),
            (Escapes::Caret, c) => write!(shown, "<U+{:04X}>", c as u32),
            (Escapes::Backslash, '\r') => shown.write_str("\\r"),
            (Escapes::Backslash, '\n') => shown.write_str("\\n"),
            (Escapes::Backslash, '\t') => shown.write_str("\\t"),
            (Escapes::Backslash, c) if c.is_control() => write!(shown, "\\x{:02x}", c as u32),
            (Escapes::Backslash, c) => write!(shown, "\\u{{{:x}}}", c as u32),
        };
    }
    Cow::Owned(shown)
}

/// An output file the user named (`-o`), or one of trident's own files.
///
/// A regular file, or a path where nothing exists yet, is written under a
/// temporary name in the same directory, fsynced and renamed over the
/// target on [`commit`]: it appears only when complete. Anything else is
/// never replaced, since a rename would turn `/dev/null`, a FIFO or a
/// terminal into a regular file: a device, FIFO or socket is written into
/// as it is; a symbolic link is followed, and what it names is written by
/// the same rule (the link stays a link); a link to nothing is refused.
/// Errors name the path as the user gave it, never the temporary name.
///
/// [`commit`]: OutputFile::commit
#[derive(Debug)]
pub struct OutputFile {
    /// The path as given, for messages.
    target: PathBuf,
    /// Where the bytes end up: `target`, or what a link at `target` names.
    dest: PathBuf,
    /// The temporary name renamed to `dest` on commit; `None` when writing
    /// into a device, FIFO or socket directly.
    temp: Option<PathBuf>,
    file: Option<File>,
}

impl OutputFile {
    /// Opens `target` for writing as described on [`OutputFile`]. A path
    /// that cannot be written (no such directory, a directory, no
    /// permission, a dangling link) is bad input: nothing has started yet.
    pub fn create(target: &Path) -> Result<Self, BadInput> {
        let cannot = |why: &dyn std::fmt::Display| BadInput(format!("cannot write {}: {why}", target.display()));
        let is_link = fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink());
        // Follows links: /dev/stdout, a link to a pipe, is a pipe.
        let dest = match fs::metadata(target) {
            Ok(m) if m.is_dir() => return Err(cannot(&"is a directory")),
            Ok(m) if !m.is_file() => {
                let file = OpenOptions::new().write(true).open(target).map_err(|e| cannot(&e))?;
                let target = target.to_path_buf();
                return Ok(OutputFile { dest: target.clone(), target, temp: None, file: Some(file) });
            }
            Ok(_) if is_link => fs::canonicalize(target).map_err(|e| cannot(&e))?,
            Ok(_) => target.to_path_buf(),
            Err(e) if is_link => {
                return Err(cannot(&format_args!("a symbolic link to nothing that can be written ({e})")));
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(cannot(&e)),
            Err(_) => target.to_path_buf(),
        };
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest.file_name().ok_or_else(|| cannot(&"not a file name"))?;
        let temp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        let file = OpenOptions::new().write(true).create_new(true).open(&temp).map_err(|e| cannot(&e))?;
        Ok(OutputFile { target: target.to_path_buf(), dest, temp: Some(temp), file: Some(file) })
    }

    /// A handle to write through.
    pub fn file(&self) -> io::Result<File> {
        self.file.as_ref().ok_or_else(|| io::Error::other("already committed"))?.try_clone()
    }

    /// The path as the user gave it.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Flushes to disk and, for a regular file, moves it to its final name.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let file = self.file.take();
        let Some(temp) = self.temp.take() else { return Ok(()) };
        let done = file.map_or(Ok(()), |f| f.sync_all()).and_then(|()| fs::rename(&temp, &self.dest));
        if done.is_err() {
            let _ = fs::remove_file(&temp);
        }
        done.with_context(|| format!("cannot write {}", self.target.display()))
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if let Some(temp) = &self.temp {
            let _ = fs::remove_file(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_a_terminal_acts_on_is_shown_escaped() {
        use super::{Escapes, escaped};
        assert_eq!(escaped("plain é 日本", Escapes::Caret), "plain é 日本");
        assert_eq!(escaped("a\rb\tc\u{7f}\u{0}", Escapes::Caret), "a^Mb^Ic^?^@");
        assert_eq!(escaped("\u{85}\u{2067}x\u{200f}", Escapes::Caret), "<U+0085><U+2067>x<U+200F>");
        assert_eq!(escaped("plain é", Escapes::Backslash), "plain é");
        assert_eq!(escaped("a\u{1b}]0;t\u{7}b\nc\u{9b}\r\t", Escapes::Backslash), "a\\x1b]0;t\\x07b\\nc\\x9b\\r\\t");
        assert_eq!(
            escaped("evil\u{202e}txt.exe", Escapes::Backslash),
            "evil\\u{202e}txt.exe",
            "a right-to-left override"
        );
    }

    use super::*;
    use std::io::Write;

    #[test]
    fn appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.json");
        let f = OutputFile::create(&target).unwrap();
        f.file().unwrap().write_all(b"hello").unwrap();
        assert!(!target.exists());
        f.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"hello");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_uncommitted_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = OutputFile::create(&dir.path().join("x")).unwrap();
        drop(f);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn what_is_not_a_regular_file_is_written_into_never_replaced() {
        use std::os::unix::fs::{FileTypeExt, symlink};
        let dir = tempfile::tempdir().unwrap();
        // A FIFO, read by a thread: it stays a FIFO and gets the bytes.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        let f = OutputFile::create(&fifo).unwrap();
        f.file().unwrap().write_all(b"through").unwrap();
        f.commit().unwrap();
        assert_eq!(reader.join().unwrap(), b"through");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        // A device.
        let f = OutputFile::create(Path::new("/dev/null")).unwrap();
        f.file().unwrap().write_all(b"gone").unwrap();
        f.commit().unwrap();
        assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        // A link to a regular file: the file is replaced whole, the link stays.
        let real = dir.path().join("real.txt");
        fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.txt");
        symlink(&real, &link).unwrap();
        let f = OutputFile::create(&link).unwrap();
        f.file().unwrap().write_all(b"new").unwrap();
        f.commit().unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "no temporary file left: {names:?}");
    }

    #[test]
    fn unwritable_paths_are_bad_input_naming_the_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("missing/x"), &dangling).unwrap();
        for path in [dir.path().join("no/such/dir.json"), dir.path().to_path_buf(), dangling] {
            let BadInput(msg) = OutputFile::create(&path).unwrap_err();
            assert!(msg.starts_with(&format!("cannot write {}: ", path.display())), "{msg}");
            assert!(!msg.contains(".tmp-"), "{msg}");
        }
    }
}
