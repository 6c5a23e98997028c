//! Files that appear under their final name only when complete: written to a
//! temporary name in the same directory, fsynced, then renamed. Also what
//! every report shares about text a peer chose ([`escaped`]).

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

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
