//! The input file of `trident fetch -i FILE|-`: the subset of aria2's
//! input-file format that matters, read lazily.
//!
//! ```text
//! # a comment
//! http://a.example/f.iso<TAB>http://mirror.example/f.iso
//!   out=debian.iso
//!   dir=isos
//!   checksum=sha-256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! http://b.example/other.bin
//! ```
//!
//! - one entry per URL line; TAB-separated URLs on one line are mirrors of
//!   the same file, tried in order when one fails (see `entry`);
//! - indented `NAME=VALUE` lines are options of the URL above them: `out=`
//!   (the file name, sanitised like a name from a URL: only its last path
//!   component is kept), `dir=` (a path beneath `-d DIR`: an absolute one
//!   or one with `..` is a bad line, a symlink on the way fails the
//!   download, see `beneath`) and
//!   `checksum=sha-256=HEX` (aria2's spelling; `sha256=` too);
//! - a URL without a scheme (`host:port/path`) is http://, as on the
//!   command line;
//! - blank lines and lines starting with `#` (after white space) are
//!   skipped; an indented line that is not `NAME=VALUE` is a URL line (so
//!   `  http://x/y  ` is still a URL, as before);
//! - a bad line (invalid URL, unknown or invalid option, an option without
//!   a URL, not UTF-8, longer than [`MAX_LINE`]) is reported with its line
//!   number and its entry skipped; the rest of the file is still read.
//!
//! [`Entries`] is an iterator over any [`BufRead`]: one line (at most
//! [`MAX_LINE`] bytes) and one entry are held at a time, so a list of a
//! million URLs starts at once, with bounded memory. An entry is complete
//! when the next URL line (or the end) is read, since option lines may
//! follow it.

use std::io::{self, BufRead};
use std::path::PathBuf;

use super::beneath;
use super::name::sanitize;
use super::task::{check_url, with_default_scheme};

/// Longest line accepted, in bytes; a longer one is a bad line (skipped
/// without being held in memory).
pub const MAX_LINE: usize = 64 * 1024;

/// One file to download, as the input file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Line number (1-based) of the URL line.
    pub line: u64,
    /// The URL, then its mirrors, in the order they are tried (all checked).
    pub urls: Vec<String>,
    /// `out=`: the file name, already sanitised.
    pub out: Option<String>,
    /// `dir=`: where to save it, as written (relative to `-d DIR`).
    pub dir: Option<PathBuf>,
    /// `checksum=sha-256=HEX`: the expected SHA-256.
    pub sha256: Option<[u8; 32]>,
}

/// A line that could not be used; its entry (if any) is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// Line number (1-based); 0 for an error reading the input itself.
    pub line: u64,
    /// The line, trimmed (lossy UTF-8, cut to 200 bytes).
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// What the reader makes of one line.
#[derive(Debug)]
enum Line {
    Skip,
    Url(u64, String),
    Option(u64, String, String),
    Bad(BadLine),
}

/// The entries of an input file, read one line at a time.
#[derive(Debug)]
pub struct Entries<R> {
    reader: R,
    line_no: u64,
    buf: Vec<u8>,
    /// A line read past the end of the previous entry.
    held: Option<Line>,
    /// After a read error: nothing more is read.
    failed: bool,
}

impl<R: BufRead> Entries<R> {
    /// Entries read from `reader`.
    pub fn new(reader: R) -> Self {
        Entries { reader, line_no: 0, buf: Vec::new(), held: None, failed: false }
    }

    /// The next line, classified; `None` at the end of the input.
    fn read_line(&mut self) -> Option<Line> {
        if let Some(line) = self.held.take() {
            return Some(line);
        }
        if self.failed {
            return None;
        }
        self.buf.clear();
        let read = io::Read::take(&mut self.reader, MAX_LINE as u64 + 1).read_until(b'\n', &mut self.buf);
        match read {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => return Some(self.read_failed(&e)),
        }
        self.line_no += 1;
        let n = self.line_no;
        if self.buf.len() > MAX_LINE && self.buf.last() != Some(&b'\n') {
            let text = excerpt(&self.buf);
            if let Err(e) = skip_line(&mut self.reader) {
                return Some(self.read_failed(&e));
            }
            return Some(Line::Bad(BadLine { line: n, text, reason: format!("longer than {MAX_LINE} bytes") }));
        }
        let Ok(text) = std::str::from_utf8(&self.buf) else {
            return Some(Line::Bad(BadLine { line: n, text: excerpt(&self.buf), reason: "not UTF-8".into() }));
        };
        Some(classify(n, text))
    }

    fn read_failed(&mut self, e: &io::Error) -> Line {
        self.failed = true;
        Line::Bad(BadLine { line: self.line_no, text: String::new(), reason: format!("cannot read further: {e}") })
    }
}

/// Reads up to and including the next newline, holding nothing.
fn skip_line(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(());
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let len = available.len();
                reader.consume(len);
            }
        }
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
    text.trim().to_string()
}

/// Blank, comment, option (`  NAME=VALUE`) or URL line.
fn classify(n: u64, raw: &str) -> Line {
    let text = raw.trim();
    if text.is_empty() || text.starts_with('#') {
        return Line::Skip;
    }
    let indented = raw.starts_with([' ', '\t']);
    if indented && let Some((key, value)) = text.split_once('=') {
        let key = key.trim();
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Line::Option(n, key.to_string(), value.trim().to_string());
        }
    }
    Line::Url(n, text.to_string())
}

/// The entry of URL line `n`: every URL (mirror) must be downloadable.
fn entry(n: u64, text: &str) -> Result<Entry, BadLine> {
    let bad = |reason: String| BadLine { line: n, text: text.to_string(), reason };
    let mut urls = Vec::new();
    for url in text.split('\t').map(str::trim).filter(|u| !u.is_empty()) {
        let url = with_default_scheme(url);
        check_url(&url).map_err(bad)?;
        urls.push(url.into_owned());
    }
    Ok(Entry { line: n, urls, out: None, dir: None, sha256: None })
}

/// Applies option line `n` to `entry`.
fn apply(entry: &mut Entry, n: u64, key: &str, value: &str) -> Result<(), BadLine> {
    let bad = |reason: String| BadLine { line: n, text: format!("{key}={value}"), reason };
    let twice = || bad(format!("{key}= given twice for the URL on line {}", entry.line));
    match key {
        "out" => {
            if entry.out.is_some() {
                return Err(twice());
            }
            let name = sanitize(value).ok_or_else(|| bad(format!("out={value:?} leaves no usable file name")))?;
            entry.out = Some(name);
        }
        "dir" => {
            if entry.dir.is_some() {
                return Err(twice());
            }
            if value.is_empty() || value.contains('\0') {
                return Err(bad("dir= needs a directory".into()));
            }
            let dir = PathBuf::from(value);
            if let Some(why) = beneath::static_problem(&dir) {
                return Err(bad(format!("dir={value}: {why} (dir= is a path beneath it)")));
            }
            entry.dir = Some(dir);
        }
        "checksum" => {
            if entry.sha256.is_some() {
                return Err(twice());
            }
            let digest = parse_checksum(value)
                .map_err(|_| bad(format!("invalid checksum={value} (expected sha-256=64 hex digits)")))?;
            entry.sha256 = Some(digest);
        }
        _ => return Err(bad(format!("unsupported option {key}= (supported: out=, dir=, checksum=)"))),
    }
    Ok(())
}

impl<R: BufRead> Iterator for Entries<R> {
    type Item = Result<Entry, BadLine>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (n, text) = match self.read_line()? {
                Line::Skip => continue,
                Line::Bad(bad) => return Some(Err(bad)),
                Line::Option(n, key, value) => {
                    let reason = "an option line without a URL line above it".to_string();
                    return Some(Err(BadLine { line: n, text: format!("{key}={value}"), reason }));
                }
                Line::Url(n, text) => (n, text),
            };
            let mut result = entry(n, &text);
            // The entry's option lines; the first error wins, the rest of
            // them are still consumed (they belong to the skipped entry).
            loop {
                match self.read_line() {
                    None => break,
                    Some(Line::Skip) => {}
                    Some(Line::Option(n, key, value)) => {
                        if let Ok(entry) = &mut result
                            && let Err(bad) = apply(entry, n, &key, &value)
                        {
                            result = Err(bad);
                        }
                    }
                    Some(other) => {
                        self.held = Some(other);
                        break;
                    }
                }
            }
            return Some(result);
        }
    }
}

/// Parses `sha256=HEX` (algorithm name case-insensitive, 64 hex digits).
pub fn parse_checksum(s: &str) -> Result<[u8; 32], String> {
    let bad = |why: &str| format!("invalid --checksum {s:?}: {why} (expected sha256=64 hex digits)");
    let (algo, hex) = s.split_once('=').ok_or_else(|| bad("no '='"))?;
    if !algo.eq_ignore_ascii_case("sha256") && !algo.eq_ignore_ascii_case("sha-256") {
        return Err(bad("unsupported algorithm"));
    }
    let hex = hex.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("not 64 hex digits"));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad("not hex"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        let hex = HEX;
        let d = parse_checksum(&format!("sha256={hex}")).expect("valid");
        assert_eq!((d[0], d[31]), (0x9f, 0x08));
        assert_eq!(parse_checksum(&format!("SHA-256={}", hex.to_uppercase())), Ok(d));
        for bad in ["", "sha256", "md5=abc", &format!("sha256={}", &hex[1..]), &format!("sha256={}g", &hex[1..])] {
            assert!(parse_checksum(bad).is_err(), "{bad}");
        }
    }

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn parse(text: &str) -> Vec<Result<Entry, BadLine>> {
        Entries::new(text.as_bytes()).collect()
    }

    fn url(line: u64, urls: &[&str]) -> Entry {
        Entry { line, urls: urls.iter().map(|u| u.to_string()).collect(), out: None, dir: None, sha256: None }
    }

    /// (line number, reason fragment) of a bad line.
    fn bad(r: &Result<Entry, BadLine>) -> (u64, String) {
        match r {
            Err(b) => (b.line, b.reason.clone()),
            Ok(e) => panic!("expected a bad line, got {e:?}"),
        }
    }

    #[test]
    fn entries_table() {
        let digest = parse_checksum(&format!("sha256={HEX}")).expect("digest");
        let with = |mut e: Entry, f: &dyn Fn(&mut Entry)| {
            f(&mut e);
            e
        };
        let cases: Vec<(String, Vec<Entry>)> = vec![
            ("".into(), vec![]),
            ("# only a comment\n\n   \n".into(), vec![]),
            ("http://a/x\nhttp://b/y".into(), vec![url(1, &["http://a/x"]), url(2, &["http://b/y"])]),
            ("http://a/x\r\n".into(), vec![url(1, &["http://a/x"])]),
            // Indented text that is not NAME=VALUE is a URL, as before.
            ("   http://a/x   \n".into(), vec![url(1, &["http://a/x"])]),
            ("\thttp://a/x?q=1\n".into(), vec![url(1, &["http://a/x?q=1"])]),
            (
                "http://a/x\thttp://b/x\t\thttps://c/x\n".into(),
                vec![url(1, &["http://a/x", "http://b/x", "https://c/x"])],
            ),
            (
                format!(
                    "# c\nhttp://a/x\n  out=y.bin\n\t# a comment among options\n\tdir=sub\n checksum=sha-256={HEX}\nhttp://b/z\n"
                ),
                vec![
                    with(url(2, &["http://a/x"]), &|e| {
                        e.out = Some("y.bin".into());
                        e.dir = Some("sub".into());
                        e.sha256 = Some(digest);
                    }),
                    url(7, &["http://b/z"]),
                ],
            ),
            // out= is sanitised like any other name.
            (
                "http://a/x\n  out=../../etc/passwd\n".into(),
                vec![with(url(1, &["http://a/x"]), &|e| e.out = Some("passwd".into()))],
            ),
            // Never one of the tool's own names.
            (
                "http://a/x\n  out=y.part.state\n".into(),
                vec![with(url(1, &["http://a/x"]), &|e| e.out = Some("y.part.state_".into()))],
            ),
            (
                "http://a/x\n  out=.hidden\n".into(),
                vec![with(url(1, &["http://a/x"]), &|e| e.out = Some("hidden".into()))],
            ),
            (
                format!("http://a/x\n  checksum=SHA256={HEX}\n"),
                vec![with(url(1, &["http://a/x"]), &|e| e.sha256 = Some(digest))],
            ),
        ];
        for (text, want) in cases {
            let got: Vec<Entry> =
                parse(&text).into_iter().map(|r| r.unwrap_or_else(|b| panic!("{text:?}: {b:?}"))).collect();
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn bad_lines_table() {
        // (input, [(line, reason fragment)], good entries' first URLs)
        type Case<'a> = (&'a str, &'a [(u64, &'a str)], &'a [&'a str]);
        let cases: [Case<'_>; 15] = [
            ("http://a/x\n  dir=/abs/path\nhttp://a/ok\n", &[(2, "absolute path leaves")], &["http://a/ok"]),
            ("http://a/x\n  dir=../up\n", &[(2, ".. component leaves")], &[]),
            ("http://a/x\n  dir=a/../../b\n", &[(2, ".. component leaves")], &[]),
            ("not a url\nhttp://a/ok\n", &[(1, "invalid URL")], &["http://a/ok"]),
            ("ftp://a/x\nhttp://a/ok\n", &[(1, "unsupported URL")], &["http://a/ok"]),
            ("http://a/x\tfile:///etc/passwd\n  out=y\nhttp://a/ok\n", &[(1, "unsupported URL")], &["http://a/ok"]),
            ("  out=y\nhttp://a/ok\n", &[(1, "without a URL line")], &["http://a/ok"]),
            ("http://a/x\n  split=5\nhttp://a/ok\n", &[(2, "unsupported option split=")], &["http://a/ok"]),
            ("http://a/x\n  out=..\n", &[(2, "no usable file name")], &[]),
            ("http://a/x\n  out=a\n  out=b\n", &[(3, "given twice")], &[]),
            ("http://a/x\n  checksum=md5=abc\n", &[(2, "invalid checksum")], &[]),
            ("http://a/x\n  checksum=sha-256=1234\n", &[(2, "invalid checksum")], &[]),
            ("http://a/x\n  dir=\n", &[(2, "needs a directory")], &[]),
            // The first bad option line is reported; the entry is skipped once.
            ("http://a/x\n  bogus=1\n  out=..\nhttp://a/ok", &[(2, "unsupported option")], &["http://a/ok"]),
            ("http://a/\u{0}x\n", &[], &["http://a/%00x"]),
        ];
        for (text, want_bad, want_ok) in cases {
            let results = parse(text);
            let got_bad: Vec<(u64, String)> = results.iter().filter(|r| r.is_err()).map(bad).collect();
            assert_eq!(got_bad.len(), want_bad.len(), "{text:?}: {got_bad:?}");
            for ((line, reason), (want_line, fragment)) in got_bad.iter().zip(want_bad) {
                assert_eq!(line, want_line, "{text:?}");
                assert!(reason.contains(fragment), "{text:?}: {reason:?} lacks {fragment:?}");
            }
            let ok: Vec<String> = results.iter().filter_map(|r| r.as_ref().ok()).map(|e| e.urls[0].clone()).collect();
            let ok_parsed: Vec<String> =
                ok.iter().map(|u| url::Url::parse(u).map(|u| u.to_string()).unwrap_or_default()).collect();
            assert_eq!(ok_parsed, want_ok, "{text:?}");
        }
    }

    #[test]
    fn invalid_utf8_and_overlong_lines_are_skipped_with_their_numbers() {
        let mut text = b"http://a/1\n\xff\xfe\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        text.extend(b"\nhttp://a/4\n");
        let results: Vec<_> = Entries::new(&text[..]).collect();
        assert_eq!(results.len(), 4, "{results:?}");
        assert_eq!(results[0], Ok(url(1, &["http://a/1"])));
        assert_eq!(bad(&results[1]), (2, "not UTF-8".into()));
        assert_eq!(bad(&results[2]).0, 3);
        assert!(bad(&results[2]).1.contains("longer than"));
        assert_eq!(results[3], Ok(url(4, &["http://a/4"])));
    }

    #[test]
    fn a_read_error_ends_the_list_after_a_bad_line() {
        struct Failing(u32);
        impl io::Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0 += 1;
                if self.0 == 1 {
                    let line = b"http://a/1\n";
                    buf[..line.len()].copy_from_slice(line);
                    return Ok(line.len());
                }
                Err(io::Error::other("disk on fire"))
            }
        }
        let results: Vec<_> = Entries::new(io::BufReader::new(Failing(0))).collect();
        assert_eq!(results.len(), 2, "{results:?}");
        assert_eq!(results[0], Ok(url(1, &["http://a/1"])));
        assert!(bad(&results[1]).1.contains("disk on fire"));
    }

    #[test]
    fn reading_is_lazy() {
        // An endless list: the first entries come out without reading it all.
        let endless = io::BufReader::new(Endless(0));
        let first: Vec<_> = Entries::new(endless).take(3).collect();
        assert_eq!(first, [Ok(url(1, &["http://a/0"])), Ok(url(2, &["http://a/1"])), Ok(url(3, &["http://a/2"]))]);
    }

    /// `http://a/N\n` forever.
    struct Endless(u64);
    impl io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let line = format!("http://a/{}\n", self.0);
            if buf.len() < line.len() {
                return Ok(0);
            }
            self.0 += 1;
            buf[..line.len()].copy_from_slice(line.as_bytes());
            Ok(line.len())
        }
    }
}
