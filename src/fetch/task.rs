//! One download: [`FetchTask`] in, [`FetchResult`] out, the same on every
//! engine (`entry::EntryTask` is the engines' task that runs it). The
//! download's logic is written once:
//!
//! - `answer`: what a response means (status, redirect policy, resume and
//!   split validation, head limits), without I/O;
//! - `download`: a download's state between requests and the steps that
//!   change it (part file or small body, checkpoints, backoff, commit);
//! - `attempt`: the attempt loop, one async function for every engine;
//! - `ranged`: a split download's workers (`-s K`).
//!
//! The engines differ only in how the download's thread may wait
//! (`attempt::Shell`): the async engine polls the download as the task's
//! future; a blocking engine's thread (threads, processes) runs it on its
//! own current-thread runtime (`http::block_on`). Both use one HTTP/1.1
//! client, hyper's (`http`), so the limits on what a server sends, and
//! what counts as a whole body, are the same everywhere. Connections are
//! pooled per thread and run, so HTTP/1.1 connections are kept alive and
//! reused per host. Redirects are followed here, not by the client, so
//! that the same rules hold on every engine; the file name comes from the
//! original URL or, with `--content-disposition`, from the header of the
//! first response whose body is saved. Credentials from the URL go to its
//! origin only (see `auth`). Ctrl-C comes through the engine's [`Ctx`].

mod answer;
mod attempt;
mod download;
mod ranged;

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use self::attempt::Shell;
use self::download::Download;
use super::auth::without_password;
use super::http;
pub use super::http::{MAX_HEADER_BYTES, MAX_HEADER_FIELDS};
use super::store::Collision;
use crate::engine::Ctx;

/// Redirects followed at most, per attempt.
pub const MAX_REDIRECTS: u32 = 10;
/// Sent with every request.
const USER_AGENT: &str = concat!("trident/", env!("CARGO_PKG_VERSION"));
/// A short rest of a body (up to this long, its length known) is gathered
/// in memory and written at once.
const GATHER_MAX: u64 = 64 * 1024;
/// A whole body this long at most, with nothing kept from before, is
/// received in memory and handed to the committer, which creates, writes,
/// syncs and renames its file (see `commit::SaveRequest`).
const SMALL_BODY: u64 = 64 * 1024;
/// Default `--min-split-size`.
pub const DEFAULT_MIN_SPLIT: u64 = 1 << 20;

/// How every download of a run behaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchOptions {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Connect timeout, and longest wait for the response or between two
    /// reads of the body.
    pub timeout: Duration,
    /// Backoff before the first retry (doubling after each).
    pub retry_wait: Duration,
    /// No retry starts later than this after the download's first attempt.
    pub retry_max_time: Duration,
    /// Expected SHA-256 of the file (`--checksum sha256=HEX`, or an input
    /// file's `checksum=`).
    pub sha256: Option<[u8; 32]>,
    /// `--sha256`: report the SHA-256 of every file saved. Without it (and
    /// without an expected one) no digest is computed at all.
    pub report_sha256: bool,
    /// What to do when the file name is taken.
    pub collision: Collision,
    /// `-c`: keep a resumable `.part` also when the download fails for
    /// good (it is always kept when interrupted), for a later run.
    pub keep_partial: bool,
    /// `--content-disposition`: name the file after the header of the
    /// response that is saved, when it gives a usable name (the `.part`
    /// file is still named after the URL).
    pub content_disposition: bool,
    /// `-s`: ranged parts of one file fetched at once (1: one stream).
    pub split: u32,
    /// `--min-split-size`: no part is cut smaller than this.
    pub min_split_size: u64,
    /// How long a split download watches its first connection before it
    /// opens the other parts (when it waited for data half of that time);
    /// zero: all parts at once.
    pub split_probe: Duration,
    /// `--insecure`: TLS certificates are not checked.
    pub insecure: bool,
    /// `--max-time`: the whole download (every attempt and the waits
    /// between them) ends after this long; `None`: no limit.
    pub max_time: Option<Duration>,
    /// `--max-filesize`: a file longer than this is refused by its
    /// length (Content-Length, or a 206's Content-Range) or stopped once
    /// its body grows past it; `None`: no limit.
    pub max_filesize: Option<u64>,
}

impl FetchOptions {
    /// Whether the body's SHA-256 is computed: to report it, or to check it.
    pub fn digest(&self) -> bool {
        self.report_sha256 || self.sha256.is_some()
    }
}

/// Downloads one URL into a directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchTask {
    /// Position in the input (results come back in completion order).
    pub index: u64,
    /// The URL as given.
    pub url: String,
    /// The download directory.
    #[serde(with = "path_bytes")]
    pub dir: PathBuf,
    /// Save under this (already sanitised) name instead of the URL's
    /// (`out=` in an input file, or mirrors named differently).
    pub name: Option<String>,
    /// Options shared by the run.
    pub options: FetchOptions,
}

/// How a download ended; each failure class has its own exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Saved under its final name, complete and verified.
    Done,
    /// `--no-clobber` and the name was taken: nothing downloaded.
    Skipped,
    /// HTTP error, network error, timeout, bad redirect: after the retries.
    Failed,
    /// The URL cannot be downloaded at all (syntax, scheme).
    BadUrl,
    /// The body did not match `--checksum`.
    ChecksumMismatch,
    /// The file could not be written in the directory.
    LocalError,
    /// Stopped by Ctrl-C.
    Interrupted,
}

impl Status {
    /// The exit code this outcome asks for (0 for success).
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Done | Status::Skipped => 0,
            Status::Failed => 1,
            Status::BadUrl => 2,
            Status::ChecksumMismatch => 3,
            Status::LocalError => 4,
            Status::Interrupted => 130,
        }
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::BadUrl => "bad-url",
            Status::ChecksumMismatch => "checksum-mismatch",
            Status::LocalError => "local-error",
            Status::Interrupted => "interrupted",
        }
    }
}

/// What became of one URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResult {
    /// Position in the input.
    pub index: u64,
    /// The URL as given.
    pub url: String,
    /// How it ended.
    pub status: Status,
    /// The file's final name in the directory (done), or the existing
    /// file's (skipped).
    pub name: Option<String>,
    /// Bytes saved.
    pub bytes: u64,
    /// SHA-256 of the saved file, lowercase hex: computed only with
    /// `--sha256` or a checksum to verify (`None` otherwise, and for any
    /// file not saved).
    pub sha256: Option<String>,
    /// The last HTTP status received.
    pub http_status: Option<u16>,
    /// Requests chains started (1 + retries).
    pub attempts: u32,
    /// Bytes not transferred by the last attempt: kept from an earlier
    /// attempt or run, the rest came as a 206 (0: a whole body).
    pub resumed_from: u64,
    /// Bytes kept in `NAME.part` (with its state file) when the download
    /// did not end (Ctrl-C, or a failure with `-c`): running the same
    /// command again resumes there (0: nothing kept).
    #[serde(default)]
    pub partial_bytes: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// Time from the first attempt to the end, in milliseconds.
    pub elapsed_ms: u64,
}

impl FetchResult {
    /// A result for a task that never ran to the end (engine failure).
    pub fn engine_failure(task: &FetchTask, reason: String) -> Self {
        FetchResult {
            index: task.index,
            url: without_password(&task.url),
            status: Status::Failed,
            name: None,
            bytes: 0,
            sha256: None,
            http_status: None,
            attempts: 0,
            resumed_from: 0,
            partial_bytes: 0,
            error: Some(reason),
            elapsed_ms: 0,
        }
    }
}

/// `host[:port]/path` or `host:port` without a scheme is an http:// URL,
/// as curl and wget read it (`127.0.0.1:8080/f.iso`, `example.com/f.iso`);
/// anything else is left as written, for [`check_url`] to judge. The
/// authority must look like a host name or address (an optional numeric
/// port), so that `mailto:x@y` or `file:/etc/passwd` still meet
/// "unsupported URL" rather than becoming requests to a host called
/// `mailto` or `file`.
pub fn with_default_scheme(s: &str) -> Cow<'_, str> {
    let t = s.trim();
    if t.contains("://") {
        return Cow::Borrowed(s);
    }
    let authority = t.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port, allowed): (&str, &str, fn(u8) -> bool) = match authority.strip_prefix('[') {
        // An IPv6 literal: [::1]:8080.
        Some(rest) => match rest.split_once(']') {
            Some((addr, port)) => (addr, port, |b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
            None => return Cow::Borrowed(s),
        },
        None => {
            let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            (host, port, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        }
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    // A bare word ("not-a-url", "help") is not taken for a host name: it
    // needs a path or a port to be read as one.
    let marked = !port.is_empty() || t.len() > authority.len();
    if marked && !host.is_empty() && host.bytes().all(allowed) && port_ok {
        Cow::Owned(format!("http://{t}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Parses a URL that can be downloaded: http or https, with a host.
pub fn check_url(s: &str) -> Result<Url, String> {
    match Url::parse(s.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        Ok(url) => {
            Err(format!("unsupported URL {:?} (only http:// and https:// URLs)", without_password(url.as_str())))
        }
        Err(e) => Err(format!("invalid URL {:?}: {e}", without_password(s))),
    }
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a download runs on each engine; the engines run it inside an input
/// entry (`entry::EntryTask`, the engines' task), which tries its mirrors.
impl FetchTask {
    /// On a blocking engine's thread: the whole download as one step of
    /// this thread's runtime (see `attempt`).
    pub fn run_blocking(self, ctx: &Ctx) -> FetchResult {
        let mut dl = match Download::prepare(self, ctx, Shell::Blocking) {
            Ok(dl) => dl,
            Err(result) => return *result,
        };
        match http::block_on(dl.run()) {
            Ok(result) => result,
            Err(e) => dl.end(Status::LocalError, None, Some(format!("cannot start this thread's HTTP runtime: {e}"))),
        }
    }

    /// On the async engine: the download as the task's future.
    pub async fn run_async(self, ctx: Ctx) -> FetchResult {
        match Download::prepare(self, &ctx, Shell::Async) {
            Ok(mut dl) => dl.run().await,
            Err(result) => *result,
        }
    }
}

/// Paths travel to worker processes as raw bytes: not every path is UTF-8.
mod path_bytes {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};

    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(path.as_os_str().as_bytes())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        let bytes: Vec<u8> = serde::de::Deserialize::deserialize(d)?;
        Ok(PathBuf::from(OsStr::from_bytes(&bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_survive_the_worker_codec_with_non_utf8_dirs() {
        use std::os::unix::ffi::OsStrExt;
        let task = FetchTask {
            index: 7,
            url: "http://127.0.0.1/x".into(),
            dir: PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/\xff\xfe")),
            name: Some("out.bin".into()),
            options: FetchOptions {
                retries: 3,
                timeout: Duration::from_millis(1500),
                retry_wait: Duration::from_millis(10),
                retry_max_time: Duration::from_secs(60),
                sha256: Some([7; 32]),
                report_sha256: true,
                collision: Collision::NoClobber,
                keep_partial: true,
                content_disposition: true,
                split: 4,
                min_split_size: 1 << 20,
                split_probe: Duration::ZERO,
                insecure: true,
                max_time: Some(Duration::from_secs(90)),
                max_filesize: Some(1 << 30),
            },
        };
        let bytes = postcard::to_stdvec(&task).expect("encode");
        let back: FetchTask = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!((back.index, back.url, back.dir, back.options), (task.index, task.url, task.dir, task.options));
    }

    #[test]
    fn a_url_without_a_scheme_is_http() {
        for (given, want) in [
            ("127.0.0.1:8080/f.iso", "http://127.0.0.1:8080/f.iso"),
            ("example.com/f.iso", "http://example.com/f.iso"),
            ("localhost:8080", "http://localhost:8080"),
            ("localhost", "localhost"),
            ("not-a-url", "not-a-url"),
            ("[::1]:8080/x?q=1", "http://[::1]:8080/x?q=1"),
            ("  h/x  ", "http://h/x"),
            // Left as written: a scheme, or not a host[:port].
            ("https://h/x", "https://h/x"),
            ("ftp://h/x", "ftp://h/x"),
            ("file:/etc/passwd", "file:/etc/passwd"),
            ("mailto:a@b", "mailto:a@b"),
            ("not a url", "not a url"),
            ("h:/x", "h:/x"),
            ("/x", "/x"),
            ("[zz]/x", "[zz]/x"),
        ] {
            assert_eq!(with_default_scheme(given), want, "{given:?}");
        }
        assert!(check_url(&with_default_scheme("127.0.0.1:8080/f")).is_ok());
        assert!(check_url(&with_default_scheme("file:/etc/passwd")).is_err_and(|e| e.starts_with("unsupported URL")));
        assert!(check_url(&with_default_scheme("not a url")).is_err_and(|e| e.starts_with("invalid URL")));
    }
}
