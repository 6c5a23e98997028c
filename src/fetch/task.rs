//! One download as an engine [`Task`]: [`FetchTask`] in, [`FetchResult`]
//! out. Every engine uses one HTTP/1.1 client, hyper's (`http`): the async
//! engine on its runtime, the blocking ones (threads, processes) step by
//! step on a current-thread runtime of the thread that downloads
//! (`http::block_on`), so the limits on what a server sends, and what
//! counts as a whole body, are the same everywhere. Everything that decides
//! something — what a status means, where a redirect may go, when to retry,
//! how the file is written — is shared too, so the engines differ only in
//! how they wait.
//!
//! Connections are pooled per thread (a pool thread, a worker process, a
//! lane of the async engine), so HTTP/1.1 connections are kept alive and
//! reused per host. A finished
//! body is synced and renamed by the committer thread (`commit`), in
//! batches with other downloads' files.
//! Redirects are followed here, not by the clients, so that the same rules
//! hold on every engine: http/https only, at most [`MAX_REDIRECTS`], and the
//! file name always comes from the original URL — or, with
//! `--content-disposition`, from the `Content-Disposition` header of the
//! first response whose body is saved (the one after the redirects).
//! Credentials from the URL go to its origin only (see `auth`).
//!
//! With `-s K` (or a part file a split download left), the download goes
//! through `ranged` instead: K ranged parts at once into the same part
//! file. Everything else is shared.
//!
//! HTTPS certificates are checked (system roots) unless `--insecure`; a
//! certificate that cannot be verified ends the download at once. Response
//! heads are bounded ([`MAX_HEADER_FIELDS`], [`MAX_HEADER_BYTES`]); a larger
//! one ends it too: another attempt would get the same.

mod ranged;

use std::error::Error as StdError;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use super::auth::{Credentials, without_password, without_userinfo};
use super::commit::{self, CommitRequest, Finish, SaveRequest};
use super::http;
use super::name::{name_from_disposition, name_from_url};
use super::retry::{Backoff, StatusClass, classify_status, parse_retry_after};
use super::store::{Collision, Committed, PartFile, Validators};
use crate::engine::{Ctx, Task};

/// Redirects followed at most, per attempt.
pub const MAX_REDIRECTS: u32 = 10;
/// Sent with every request.
const USER_AGENT: &str = concat!("trident/", env!("CARGO_PKG_VERSION"));
/// Response header fields accepted at most (hyper stops at 100 too).
pub const MAX_HEADER_FIELDS: usize = 100;
/// Response header bytes accepted at most: names, values, and 4 bytes of
/// `": "` and CRLF per field. hyper alone would take a head as large as its
/// read buffer (see `http`), which holds this much and no more.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The async side gathers a body (or the rest of one) up to this long in
/// memory and writes it at once.
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
            error: Some(reason),
            elapsed_ms: 0,
        }
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

// ---------------------------------------------------------------------------
// What the engines share.

/// Why an attempt did not end with a saved file.
#[derive(Debug)]
enum Failure {
    /// Worth another attempt (after at least `after`, if the server said).
    Retry { reason: String, after: Option<Duration> },
    /// Final.
    Fatal { status: Status, reason: String },
    /// `--max-time` ran out: final, but what came is kept like a retry's
    /// (with `-c`, for a later run).
    OutOfTime(String),
}

fn retry(reason: impl Into<String>) -> Failure {
    Failure::Retry { reason: reason.into(), after: None }
}

fn fatal(status: Status, reason: impl Into<String>) -> Failure {
    Failure::Fatal { status, reason: reason.into() }
}

fn local(what: &str, e: &std::io::Error) -> Failure {
    fatal(Status::LocalError, format!("{what}: {e}"))
}

/// The parts of a response head that decide what happens next.
#[derive(Debug)]
struct Head {
    status: u16,
    location: Option<String>,
    retry_after: Option<String>,
    content_length: Option<u64>,
    etag: Option<String>,
    last_modified: Option<String>,
    content_range: Option<String>,
    content_disposition: Option<String>,
    /// Header fields in the response.
    fields: usize,
    /// Their size: names, values and 4 bytes each.
    header_bytes: usize,
}

impl Head {
    /// What a whole body (200) can be resumed with, if anything: a strong
    /// ETag or Last-Modified.
    fn validators(&self) -> Option<Validators> {
        let etag = self.etag.as_deref().map(str::trim).filter(|e| e.starts_with('"') && e.len() >= 2);
        let v = Validators {
            etag: etag.map(String::from),
            last_modified: self.last_modified.clone(),
            total: self.content_length,
        };
        v.if_range().is_some().then_some(v)
    }
}

/// A request that continues a part file: `Range: bytes=OFFSET-` with
/// `If-Range`.
#[derive(Debug, Clone)]
struct Resume {
    offset: u64,
    validators: Validators,
}

impl Resume {
    fn range(&self) -> String {
        format!("bytes={}-", self.offset)
    }

    fn if_range(&self) -> &str {
        self.validators.if_range().unwrap_or_default()
    }
}

enum Next {
    /// A whole body, written from zero.
    Body {
        expected: Option<u64>,
    },
    /// The rest of the body after the resume offset, `total` bytes in all.
    Rest {
        total: u64,
    },
    /// The part file cannot be continued: start over without `Range`.
    Restart,
    Redirect(Url),
}

/// Fails a response whose head is larger than allowed.
fn check_head(head: &Head) -> Result<(), Failure> {
    if head.fields > MAX_HEADER_FIELDS || head.header_bytes > MAX_HEADER_BYTES {
        return Err(fatal(
            Status::Failed,
            format!(
                "response header too large: {} fields, {} bytes (at most {MAX_HEADER_FIELDS} fields, {} KiB)",
                head.fields,
                head.header_bytes,
                MAX_HEADER_BYTES / 1024
            ),
        ));
    }
    Ok(())
}

/// Parses `bytes FIRST-LAST/TOTAL`.
fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.trim();
    let rest = v.get(..6).filter(|u| u.eq_ignore_ascii_case("bytes "))?;
    let (range, total) = v[rest.len()..].trim().split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// Whether a 206 to `resume` continues the part file exactly: the range
/// starts at the offset and runs to the end of a body of the known length,
/// with the same validator. `Ok(total)`, or why to start over.
fn check_partial(head: &Head, resume: &Resume) -> Result<u64, String> {
    check_range(head, resume.offset, None, Some(&resume.validators))
}

/// Whether a 206 carries exactly `[start, end)` (to the end of the body
/// when `end` is `None`), and, given `v`, of the body it describes (same
/// length and validator). `Ok(total)`, or why not.
fn check_range(head: &Head, start: u64, end: Option<u64>, v: Option<&Validators>) -> Result<u64, String> {
    let cr = head.content_range.as_deref().unwrap_or("");
    let Some((first, last, total)) = parse_content_range(cr) else {
        return Err(format!("HTTP 206 with Content-Range {cr:?}"));
    };
    let length_ok =
        head.content_length.is_none_or(|len| Some(len) == last.checked_add(1).and_then(|n| n.checked_sub(first)));
    let end_ok = last.checked_add(1) == Some(end.unwrap_or(total)) && last < total;
    if first != start || !end_ok || v.and_then(|v| v.total).is_some_and(|t| t != total) || !length_ok {
        let asked = match end {
            Some(end) => format!("bytes={start}-{}", end.saturating_sub(1)),
            None => format!("bytes={start}-"),
        };
        return Err(format!("HTTP 206 with Content-Range {cr:?} to Range: {asked}"));
    }
    let Some(v) = v else { return Ok(total) };
    let changed = match (&v.etag, &head.etag, &head.last_modified) {
        (Some(ours), Some(theirs), _) => ours != theirs.trim(),
        (None, _, Some(theirs)) => v.last_modified.as_deref() != Some(theirs.as_str()),
        _ => false,
    };
    if changed {
        return Err("HTTP 206 with another validator: the file changed".into());
    }
    Ok(total)
}

fn status_text(code: u16) -> String {
    let reason = hyper::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason());
    match reason {
        Some(r) => format!("HTTP {code} {r}"),
        None => format!("HTTP {code}"),
    }
}

/// What to do with a response to a request for `current` (with `Range`
/// and `If-Range` when `resume`).
fn decide(head: &Head, current: &Url, hops: &mut u32, resume: Option<&Resume>) -> Result<Next, Failure> {
    check_head(head)?;
    if let Some(resume) = resume {
        match head.status {
            206 => return Ok(check_partial(head, resume).map_or(Next::Restart, |total| Next::Rest { total })),
            416 => return Ok(Next::Restart),
            _ => {}
        }
    }
    match classify_status(head.status) {
        StatusClass::Success if head.status == 206 => {
            Err(fatal(Status::Failed, "HTTP 206 Partial Content to a request without Range"))
        }
        StatusClass::Success => Ok(Next::Body { expected: head.content_length }),
        StatusClass::Redirect => {
            let location = head
                .location
                .as_deref()
                .ok_or_else(|| fatal(Status::Failed, format!("{} without Location", status_text(head.status))))?;
            *hops += 1;
            if *hops > MAX_REDIRECTS {
                return Err(fatal(Status::Failed, format!("more than {MAX_REDIRECTS} redirects")));
            }
            // User info in Location is ignored: credentials come from the
            // URL given only (see `auth`).
            let next = current
                .join(location)
                .map(|next| without_userinfo(&next))
                .map_err(|e| fatal(Status::Failed, format!("redirect to an invalid URL {location:?}: {e}")))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(fatal(
                    Status::Failed,
                    format!("redirect to {}: refused (only http and https are followed)", next.scheme()),
                ));
            }
            Ok(Next::Redirect(next))
        }
        StatusClass::Retryable => Err(Failure::Retry {
            reason: status_text(head.status),
            after: head.retry_after.as_deref().and_then(|v| parse_retry_after(v, SystemTime::now())),
        }),
        StatusClass::Fatal => Err(fatal(Status::Failed, status_text(head.status))),
    }
}

/// After a failed attempt: wait and retry, or end with this result.
enum Then {
    Retry(Duration),
    End(FetchResult),
}

/// A download in progress: everything but the client.
struct Download {
    task: FetchTask,
    /// The run's stop request.
    ctx: Ctx,
    started: Instant,
    /// The URL given, without user info.
    url: Url,
    /// The URL's user info, for its origin only.
    credentials: Option<Credentials>,
    /// Ranged parts are not used for this download (the server's ranges
    /// proved unusable).
    no_split: bool,
    /// Times a split download started over because a part showed the file
    /// had changed.
    split_restarts: u32,
    name: String,
    /// With `--content-disposition`: the name the header of the first saved
    /// response gave (`Some(None)`: it gave none, the URL's name stays).
    disposition: Option<Option<String>>,
    part: Option<PartFile>,
    /// A small whole body being received in memory instead (see
    /// [`SMALL_BODY`]); becomes the part file if its attempt fails.
    small: Option<SmallBody>,
    /// The async side's checkpoint in flight on the committer thread.
    checkpoint: Option<commit::InFlight>,
    /// An earlier run's part file was looked for.
    looked_for_part: bool,
    backoff: Backoff,
    attempts: u32,
    http_status: Option<u16>,
}

/// How long a download may wait for the network: each wait at most the
/// timeout, all of them within what is left of `--max-time`.
#[derive(Debug, Clone)]
struct Waits {
    timeout: Duration,
    /// When `--max-time` runs out.
    deadline: Option<Instant>,
    max_time: Duration,
    /// The run's stop request: every wait ends at once on Ctrl-C.
    ctx: Ctx,
}

impl Waits {
    /// `f` within the timeout (a retryable failure, `late` says which)
    /// and the deadline (final: [`Failure::OutOfTime`]), or `Interrupted`
    /// as soon as Ctrl-C is seen.
    async fn within<T>(&self, late: impl FnOnce(Duration) -> String, f: impl Future<Output = T>) -> Result<T, Failure> {
        let left = self.deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let (limit, by_deadline) = match left {
            Some(left) if left <= self.timeout => (left, true),
            _ => (self.timeout, false),
        };
        // Looked at here too: on the blocking engines a body that keeps
        // coming is read without the wait ever being pending (see
        // `http::Stepped`), and a timer that is never polled pending
        // never fires.
        if by_deadline && limit.is_zero() {
            return Err(self.out_of_time());
        }
        if self.ctx.cancelled() {
            return Err(fatal(Status::Interrupted, "interrupted"));
        }
        // `biased`: Ctrl-C is only waited for (registered) when `f` has
        // nothing yet, not for every piece of a body that is ready.
        let timed = tokio::select! {
            biased;
            timed = tokio::time::timeout(limit, f) => timed,
            () = self.ctx.interrupted() => return Err(fatal(Status::Interrupted, "interrupted")),
        };
        match timed {
            Ok(out) => Ok(out),
            Err(_) if by_deadline => Err(self.out_of_time()),
            Err(_) => Err(retry(late(self.timeout))),
        }
    }

    fn out_of_time(&self) -> Failure {
        Failure::OutOfTime(format!("--max-time {:?} reached", self.max_time))
    }
}

impl Download {
    /// Validates the URL and picks the name; `Err` is already the result.
    fn prepare(mut task: FetchTask, ctx: &Ctx) -> Result<Self, Box<FetchResult>> {
        // Reports and state files never show the URL's password.
        let shown = without_password(&task.url);
        let early = |status, name, error| {
            Box::new(FetchResult {
                index: task.index,
                url: shown.clone(),
                status,
                name,
                bytes: 0,
                sha256: None,
                http_status: None,
                attempts: 0,
                resumed_from: 0,
                error,
                elapsed_ms: 0,
            })
        };
        let url = match check_url(&task.url) {
            Ok(url) => url,
            Err(why) => return Err(early(Status::BadUrl, None, Some(why))),
        };
        let name = task.name.clone().unwrap_or_else(|| name_from_url(&url));
        // An explicit name (out=) wins over the header.
        let by_header = task.options.content_disposition && task.name.is_none();
        // With the name still to come from the header, --no-clobber is
        // decided when the file is committed.
        if !by_header
            && task.options.collision == Collision::NoClobber
            && std::fs::symlink_metadata(task.dir.join(&name)).is_ok()
        {
            return Err(early(Status::Skipped, Some(name), None));
        }
        let started = Instant::now();
        task.url = shown;
        Ok(Download {
            backoff: Backoff::new(task.options.retries, task.options.retry_wait, started, task.options.retry_max_time),
            task,
            ctx: ctx.clone(),
            started,
            credentials: Credentials::from_url(&url),
            url: without_userinfo(&url),
            no_split: false,
            split_restarts: 0,
            name,
            disposition: (!by_header).then_some(None),
            part: None,
            small: None,
            checkpoint: None,
            looked_for_part: false,
            attempts: 0,
            http_status: None,
        })
    }

    fn end(&self, status: Status, name: Option<String>, error: Option<String>) -> FetchResult {
        let (bytes, sha256) = match (&self.part, status) {
            (Some(p), Status::Done) => (p.written(), p.sha256().map(|d| hex(&d))),
            _ => (0, None),
        };
        FetchResult {
            index: self.task.index,
            url: self.task.url.clone(),
            status,
            name,
            bytes,
            sha256,
            http_status: self.http_status,
            attempts: self.attempts,
            resumed_from: self.part.as_ref().map_or(0, PartFile::resumed_from),
            error,
            elapsed_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The download's limits on waiting for the network.
    fn waits(&self) -> Waits {
        let max_time = self.task.options.max_time;
        Waits {
            timeout: self.task.options.timeout,
            deadline: max_time.and_then(|t| self.started.checked_add(t)),
            max_time: max_time.unwrap_or_default(),
            ctx: self.ctx.clone(),
        }
    }

    /// Refuses a file longer than `--max-filesize` by the length its
    /// response announces (before any of it is written).
    fn refuse_too_large(&self, head: &Head) -> Result<(), Failure> {
        let Some(max) = self.task.options.max_filesize else { return Ok(()) };
        let total = match head.status {
            206 => head.content_range.as_deref().and_then(parse_content_range).map(|(_, _, total)| total),
            200..=299 => head.content_length,
            _ => None,
        };
        match total {
            Some(total) if total > max => {
                Err(fatal(Status::Failed, format!("the file is {total} bytes, over --max-filesize {max}")))
            }
            _ => Ok(()),
        }
    }

    /// The `Authorization` value for a request to `url`, if any.
    fn authorization(&self, url: &Url) -> Option<&str> {
        self.credentials.as_ref().and_then(|c| c.for_url(url))
    }

    /// Whether this attempt fetches ranged parts: `-s` above 1, or a part
    /// file a split download left; not once the server's ranges failed.
    fn split_mode(&self) -> bool {
        !self.no_split && (self.task.options.split > 1 || self.part.as_ref().is_some_and(PartFile::is_split))
    }

    /// Where the next request starts, if the part file can be continued.
    fn resume_point(&self) -> Option<Resume> {
        let (offset, validators) = self.part.as_ref()?.resume_point()?;
        Some(Resume { offset, validators })
    }

    /// Forgets a part file that cannot be continued, after the checkpoint
    /// in flight, if any (blocking callers; async: [`restart_async`]).
    fn restart(&mut self) -> Result<(), Failure> {
        self.wait_checkpoint_blocking()?;
        match self.part.as_mut() {
            Some(p) => p.reset().map_err(|e| local("cannot truncate the .part file", &e)),
            None => Ok(()),
        }
    }

    /// Takes the file name from the first saved response's
    /// `Content-Disposition`, once, when asked to.
    fn name_from_head(&mut self, head: &Head) {
        if self.disposition.is_none() {
            self.disposition = Some(head.content_disposition.as_deref().and_then(name_from_disposition));
        }
    }

    /// The name the file is committed under.
    fn final_name(&self) -> String {
        self.disposition.clone().flatten().unwrap_or_else(|| self.name.clone())
    }

    /// The part file, emptied for a new whole body described by `head`.
    fn begin_body(&mut self, head: &Head) -> Result<&mut PartFile, Failure> {
        self.name_from_head(head);
        let mut part = self.empty_part()?;
        part.set_validators(head.validators());
        Ok(self.part.insert(part))
    }

    /// The part file emptied, or a new one.
    fn empty_part(&mut self) -> Result<PartFile, Failure> {
        match self.part.take() {
            Some(mut p) => {
                p.reset().map_err(|e| local("cannot truncate the .part file", &e))?;
                Ok(p)
            }
            None => PartFile::create(&self.task.dir, &self.name, &self.task.url, self.task.options.digest())
                .map_err(|e| local(&format!("cannot create {}.part in {}", self.name, self.task.dir.display()), &e)),
        }
    }

    /// Receives the whole body described by `head` in memory if it is small
    /// (`expected` at most [`SMALL_BODY`]) and no part file is being
    /// continued; `false`: use [`begin_body`](Self::begin_body).
    fn begin_small_body(&mut self, head: &Head, expected: Option<u64>) -> bool {
        let Some(len) = expected.filter(|&n| n <= SMALL_BODY) else { return false };
        if self.part.is_some() {
            return false;
        }
        self.name_from_head(head);
        let buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        self.small = Some(SmallBody { buf, validators: head.validators() });
        true
    }

    /// After a failed attempt: what a small body received so far becomes
    /// the part file (a retry or later run continues it, as with any
    /// other) if `keep`, else it is dropped.
    fn materialize(&mut self, keep: bool) -> Result<(), Failure> {
        let Some(small) = self.small.take().filter(|s| keep && !s.buf.is_empty()) else { return Ok(()) };
        let mut part = self.empty_part()?;
        part.set_validators(small.validators);
        part.write(&small.buf).map_err(|e| local("cannot write the .part file", &e))?;
        self.part = Some(part);
        Ok(())
    }

    /// Hands the verified body over to be written (a small one), synced and
    /// renamed to its final name (see `commit`): what to ask, the length and
    /// digest to report, and that name. From here the download waits for
    /// the disk, which is not downloading: its engine place goes to the
    /// next download ([`release_slot`](crate::engine::release_slot)).
    fn hand_over(&mut self) -> Result<(Finish, PartMeta, String), Failure> {
        let name = self.final_name();
        let options = &self.task.options;
        let (finish, meta) = match self.small.take() {
            Some(small) => {
                let sha256 = options.digest().then(|| hex(&<[u8; 32]>::from(Sha256::digest(&small.buf))));
                let meta = PartMeta { bytes: small.buf.len() as u64, sha256, resumed_from: 0 };
                let request = SaveRequest {
                    dir: self.task.dir.clone(),
                    part_name: self.name.clone(),
                    url: self.task.url.clone(),
                    body: small.buf,
                    name: name.clone(),
                    policy: options.collision,
                };
                (Finish::Save(request), meta)
            }
            None => {
                let part = self.part.take().ok_or_else(|| fatal(Status::LocalError, "no .part file"))?;
                let sha256 = part.sha256().map(|d| hex(&d));
                let meta = PartMeta { bytes: part.written(), sha256, resumed_from: part.resumed_from() };
                let request =
                    CommitRequest { part, dir: self.task.dir.clone(), name: name.clone(), policy: options.collision };
                (Finish::Commit(Box::new(request)), meta)
            }
        };
        crate::engine::release_slot();
        Ok((finish, meta, name))
    }

    /// The part file continues with the rest of the body (`head`: the 206).
    fn continue_body(&mut self, head: &Head, offset: u64) -> Result<(), Failure> {
        self.name_from_head(head);
        let part = self.part.as_mut().ok_or_else(|| fatal(Status::LocalError, "no .part file"))?;
        part.continued_at(offset);
        Ok(())
    }

    /// Syncs the part file and records its state (blocking), after the
    /// checkpoint in flight, if any.
    fn checkpoint(&mut self) -> Result<(), Failure> {
        self.wait_checkpoint_blocking()?;
        self.part.as_mut().map_or(Ok(()), PartFile::checkpoint).map_err(|e| checkpoint_failed(&e))
    }

    /// Appends a piece of the body; `true` when a checkpoint is due.
    fn write(&mut self, chunk: &[u8]) -> Result<bool, Failure> {
        if self.ctx.cancelled() {
            return Err(fatal(Status::Interrupted, "interrupted"));
        }
        if let Some(max) = self.task.options.max_filesize {
            let so_far = match (&self.small, &self.part) {
                (Some(small), _) => small.buf.len() as u64,
                (None, part) => part.as_ref().map_or(0, PartFile::written),
            };
            if so_far.saturating_add(chunk.len() as u64) > max {
                return Err(fatal(Status::Failed, format!("the body grew past --max-filesize {max} bytes")));
            }
        }
        if let Some(small) = self.small.as_mut() {
            small.buf.extend_from_slice(chunk);
            return Ok(false);
        }
        let part = self.part.as_mut().ok_or_else(|| fatal(Status::LocalError, "no .part file"))?;
        part.write(chunk).map_err(|e| local("cannot write the .part file", &e))
    }

    /// Checks length and checksum once the body has ended.
    fn verify(&self, expected: Option<u64>) -> Result<(), Failure> {
        let written = match (&self.small, &self.part) {
            (Some(small), _) => small.buf.len() as u64,
            (None, Some(part)) => part.written(),
            (None, None) => return Err(fatal(Status::LocalError, "no .part file")),
        };
        if let Some(len) = expected
            && written != len
        {
            return Err(retry(format!("body ended after {written} of {len} bytes")));
        }
        if let Some(want) = self.task.options.sha256 {
            let digest = match (&self.small, &self.part) {
                (Some(small), _) => Some(Sha256::digest(&small.buf).into()),
                (None, part) => part.as_ref().and_then(PartFile::sha256),
            };
            let got = digest.ok_or_else(|| fatal(Status::LocalError, "no SHA-256 computed to check"))?;
            if got != want {
                return Err(fatal(
                    Status::ChecksumMismatch,
                    format!("SHA-256 mismatch: got {}, expected {}", hex(&got), hex(&want)),
                ));
            }
        }
        Ok(())
    }

    /// What to do after a failed attempt: how long to wait, or the result.
    fn after_failure(&mut self, failure: Failure) -> Then {
        match failure {
            Failure::Fatal { status, reason } => Then::End(self.end(status, None, Some(reason))),
            Failure::OutOfTime(reason) => Then::End(self.end(Status::Failed, None, Some(reason))),
            Failure::Retry { reason, after } => match self.backoff.wait(self.attempts, after, Instant::now()) {
                Ok(wait)
                    if self
                        .waits()
                        .deadline
                        .is_some_and(|d| Instant::now().checked_add(wait).is_none_or(|t| t >= d)) =>
                {
                    let why = format!("{reason} (--max-time {:?} ends before the next attempt)", self.waits().max_time);
                    Then::End(self.end(Status::Failed, None, Some(why)))
                }
                Ok(wait) if !self.ctx.cancelled() => Then::Retry(wait),
                Ok(_) => {
                    Then::End(self.end(Status::Interrupted, None, Some(format!("interrupted; last error: {reason}"))))
                }
                Err(why) => Then::End(self.end(Status::Failed, None, Some(format!("{reason} ({why})")))),
            },
        }
    }

    fn interrupted(&mut self) -> FetchResult {
        if let Some(p) = self.part.as_mut() {
            p.keep();
        }
        self.end(Status::Interrupted, None, Some("interrupted".into()))
    }

    /// After a failed attempt, with its part file checkpointed if it was
    /// worth keeping (`kept`): wait for the next attempt, or end, leaving
    /// the part file for a later run if interrupted (or with `-c`).
    fn settle(&mut self, failure: Failure, kept: bool) -> Then {
        let then = self.after_failure(failure);
        if let (Then::End(result), Some(part)) = (&then, self.part.as_mut()) {
            let later = result.status == Status::Interrupted
                || (result.status == Status::Failed && self.task.options.keep_partial);
            if kept && later {
                part.keep();
            }
        }
        then
    }

    /// The result of a verified body whose part file was committed.
    fn committed(&mut self, outcome: Result<(Committed, PartMeta), Failure>) -> Result<FetchResult, Failure> {
        let (committed, meta) = outcome?;
        Ok(match committed {
            Committed::Saved(name) => FetchResult {
                bytes: meta.bytes,
                sha256: meta.sha256,
                resumed_from: meta.resumed_from,
                ..self.end(Status::Done, Some(name), None)
            },
            Committed::Skipped(name) => self.end(Status::Skipped, Some(name), None),
        })
    }
}

/// A small whole body received in memory (see [`SMALL_BODY`]).
#[derive(Debug)]
struct SmallBody {
    buf: Vec<u8>,
    /// Its validators: it can be continued if it becomes a part file.
    validators: Option<Validators>,
}

/// Length and digest (if computed) of a committed file (the part file is
/// gone by then).
struct PartMeta {
    bytes: u64,
    sha256: Option<String>,
    resumed_from: u64,
}

/// Whether the part file of a failed attempt is worth a checkpoint: the
/// next attempt or a later run may continue it.
fn worth_keeping(failure: &Failure) -> bool {
    matches!(
        failure,
        Failure::Retry { .. } | Failure::OutOfTime(_) | Failure::Fatal { status: Status::Interrupted, .. }
    )
}

fn checkpoint_failed(e: &std::io::Error) -> Failure {
    local("cannot save the download state", e)
}

fn commit_failed(name: &str, task: &FetchTask, e: &std::io::Error) -> Failure {
    local(&format!("cannot sync and move {name} into {}", task.dir.display()), e)
}

/// The verified body written (if small), synced and renamed (see
/// `commit`), waited for on this thread.
fn commit_blocking(dl: &mut Download) -> Result<FetchResult, Failure> {
    // The commit may be made on this thread: a checkpoint in flight on the
    // committer must not write its state after the rename.
    dl.wait_checkpoint_blocking()?;
    let (finish, meta, name) = dl.hand_over()?;
    let outcome = commit::finish_blocking(finish).map(|c| (c, meta)).map_err(|e| commit_failed(&name, &dl.task, &e));
    dl.committed(outcome)
}

/// Every error in `e`'s chain, those wrapped in an `io::Error` included
/// (its `source` skips the error it wraps).
fn error_sources<'a>(e: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(current) = next {
        out.push(current);
        if out.len() > 32 {
            break;
        }
        next = match current.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
    }
    out
}

/// What an error below HTTP (connecting, TLS, reading the head) means: a
/// certificate that cannot be verified or a head too large for the client
/// end the download (another attempt gets the same), the rest is retried.
fn transport_failure(e: &(dyn StdError + 'static), head_too_large: bool) -> Failure {
    let sources = error_sources(e);
    let certificate = sources.iter().find_map(|s| match s.downcast_ref::<rustls::Error>() {
        Some(tls @ rustls::Error::InvalidCertificate(_)) => Some(tls),
        _ => None,
    });
    if let Some(tls) = certificate {
        return fatal(
            Status::Failed,
            format!("TLS certificate rejected ({tls}); --insecure skips the check (dangerous)"),
        );
    }
    let text = error_chain(e);
    // hyper's error for a head over 100 fields or its read buffer; its
    // predicate (`is_parse_too_large`) exists only with its server feature.
    if head_too_large || text.contains("message head is too large") {
        return fatal(
            Status::Failed,
            format!(
                "response header too large: {text} (at most {MAX_HEADER_FIELDS} fields, {} KiB)",
                MAX_HEADER_BYTES / 1024
            ),
        );
    }
    retry(text)
}

fn error_chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

// ---------------------------------------------------------------------------
// Blocking: the async side's hyper client, on this thread's runtime.

/// Runs a step of a blocking download on this thread's runtime (see
/// `http::block_on`).
fn blocking<T>(f: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    http::block_on(f).map_err(|e| local("cannot start this thread's HTTP runtime", &e))?
}

/// `GET url`: the response head, within the download's [`Waits`].
async fn request(
    client: &http::Client,
    waits: &Waits,
    url: &Url,
    headers: &[(&'static str, String)],
) -> Result<http::Response, Failure> {
    let late = |t| format!("no response within {t:?}");
    waits.within(late, client.get(url, headers, USER_AGENT)).await?.map_err(|e| http_failure(&e))
}

/// The next piece of a body, within the download's [`Waits`]; `None` at
/// its end. A body that ends before its length or inside a chunk is an
/// error here.
async fn next_chunk(response: &mut http::Response, waits: &Waits) -> Result<Option<bytes::Bytes>, Failure> {
    let late = |t| format!("no data for {t:?} while reading the body");
    waits.within(late, response.chunk()).await?.map_err(|e| retry(format!("reading the body: {}", error_chain(&e))))
}

/// Reads a little of an unwanted body so the connection can be reused.
fn drain_blocking(r: http::Response, waits: &Waits) {
    let _ = http::block_on(drain_async(r, waits));
}

/// The request headers of a download's request for `url`.
fn request_headers(dl: &Download, url: &Url, resume: Option<&Resume>) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(r) = resume {
        headers.push(("Range", r.range()));
        headers.push(("If-Range", r.if_range().to_string()));
    }
    if let Some(auth) = dl.authorization(url) {
        headers.push(("Authorization", auth.to_string()));
    }
    headers
}

fn attempt_blocking(client: &http::Client, dl: &mut Download) -> Result<FetchResult, Failure> {
    if !dl.looked_for_part {
        dl.looked_for_part = true;
        dl.part = PartFile::resume(&dl.task.dir, &dl.name, &dl.task.url, dl.task.options.digest());
    }
    if dl.split_mode() {
        return ranged::attempt_blocking(client, dl);
    }
    let waits = dl.waits();
    let mut url = dl.url.clone();
    let mut hops = 0;
    loop {
        let resume = dl.resume_point();
        let headers = request_headers(dl, &url, resume.as_ref());
        let response = blocking(request(client, &waits, &url, &headers))?;
        let head = http_head(&response);
        dl.http_status = Some(head.status);
        dl.refuse_too_large(&head)?;
        let expected = match decide(&head, &url, &mut hops, resume.as_ref()) {
            Ok(Next::Redirect(next)) => {
                drain_blocking(response, &waits);
                url = next;
                continue;
            }
            Ok(Next::Restart) => {
                // Not drained: a wrong partial body can be long.
                drop(response);
                dl.restart()?;
                (url, hops) = (dl.url.clone(), 0);
                continue;
            }
            Ok(Next::Body { expected }) => {
                if !dl.begin_small_body(&head, expected) {
                    dl.begin_body(&head)?;
                }
                expected
            }
            Ok(Next::Rest { total }) => {
                dl.continue_body(&head, resume.as_ref().map_or(0, |r| r.offset))?;
                Some(total)
            }
            Err(failure) => {
                drain_blocking(response, &waits);
                return Err(failure);
            }
        };
        return save_body_blocking(dl, response, expected);
    }
}

/// Appends a body to the part file as it comes, then checks and commits.
fn save_body_blocking(
    dl: &mut Download,
    mut response: http::Response,
    expected: Option<u64>,
) -> Result<FetchResult, Failure> {
    let waits = dl.waits();
    // What was read is written as it comes, also when the body ends early,
    // so a retry continues after it. (Gathering hyper's pieces into 64 KiB
    // before each write, as with ureq, cost 64 KiB per download and saved
    // no CPU measurable on slow streams.)
    // The whole body is one step of this thread's runtime: a step per
    // piece entered and left the runtime (and boxed a future) each time.
    blocking(async {
        while let Some(chunk) = next_chunk(&mut response, &waits).await? {
            // Checkpoints are made by the committer while the download
            // goes on (inline, each `fdatasync` stalled the stream).
            dl.poll_checkpoint()?;
            if dl.write(&chunk)? {
                dl.start_checkpoint()?;
            }
        }
        Ok(())
    })?;
    dl.verify(expected)?;
    commit_blocking(dl)
}

/// `--insecure`: a rustls configuration that accepts any
/// certificate (signatures are still checked, the chain and name are not).
mod insecure {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct AcceptAny(WebPkiSupportedAlgorithms);

    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_schemes()
        }
    }

    pub(super) fn config() -> rustls::ClientConfig {
        let provider: CryptoProvider = rustls::crypto::ring::default_provider();
        let algorithms = provider.signature_verification_algorithms;
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(algorithms)))
            .with_no_client_auth()
    }
}

/// `--insecure`, for both clients (see `http::tls_config`).
pub(super) fn insecure_config() -> rustls::ClientConfig {
    insecure::config()
}

/// Waits `wait` before a retry; `false` if Ctrl-C came first.
fn sleep_blocking(wait: Duration, ctx: &Ctx) -> bool {
    http::block_on(sleep_async(wait, ctx)).unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Async: hyper on tokio (see `http`).

/// An error before the body as a failure.
fn http_failure(e: &http::Error) -> Failure {
    transport_failure(e, false)
}

fn http_head(r: &http::Response) -> Head {
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
    let header_bytes = r.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    Head {
        status: r.status(),
        location: header("location"),
        retry_after: header("retry-after"),
        content_length: header("content-length").and_then(|v| v.trim().parse().ok()),
        etag: header("etag"),
        last_modified: header("last-modified"),
        content_range: header("content-range"),
        // Raw UTF-8 names are common: not only visible ASCII.
        content_disposition: r
            .headers()
            .get("content-disposition")
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .map(String::from),
        fields: r.headers().len(),
        header_bytes,
    }
}

/// Runs `f` on the part file on a blocking thread (fsync, rereading a
/// part file): the runtime's threads keep serving other downloads.
async fn on_part_blocking<T: Send + 'static>(
    dl: &mut Download,
    f: impl FnOnce(&mut PartFile) -> T + Send + 'static,
) -> Result<Option<T>, Failure> {
    let Some(mut part) = dl.part.take() else { return Ok(None) };
    let (part, out) = tokio::task::spawn_blocking(move || {
        let out = f(&mut part);
        (part, out)
    })
    .await
    .map_err(|e| fatal(Status::LocalError, format!("writing the .part file: {e}")))?;
    dl.part = Some(part);
    Ok(Some(out))
}

/// [`Download::restart`] for async callers: the part file truncated off
/// the runtime thread, after the checkpoint in flight, if any.
async fn restart_async(dl: &mut Download) -> Result<(), Failure> {
    dl.wait_checkpoint().await?;
    on_part_blocking(dl, PartFile::reset)
        .await?
        .unwrap_or(Ok(()))
        .map_err(|e| local("cannot truncate the .part file", &e))
}

/// A checkpoint of everything written, waited for (after a failed
/// attempt): the one in flight first, then one for the rest.
async fn checkpoint_async(dl: &mut Download) -> Result<(), Failure> {
    dl.wait_checkpoint().await?;
    dl.start_checkpoint()?;
    dl.wait_checkpoint().await
}

impl Download {
    /// Starts a checkpoint on the committer thread (see `commit`); the
    /// download goes on writing meanwhile.
    fn start_checkpoint(&mut self) -> Result<(), Failure> {
        let Some(part) = self.part.as_mut() else { return Ok(()) };
        let Some(job) = part.begin_checkpoint().map_err(|e| checkpoint_failed(&e))? else { return Ok(()) };
        match commit::checkpoint(job) {
            Ok(in_flight) => {
                self.checkpoint = Some(in_flight);
                Ok(())
            }
            Err(e) => {
                part.end_checkpoint(false);
                Err(checkpoint_failed(&e))
            }
        }
    }

    /// Takes note of a checkpoint that ended, without waiting.
    fn poll_checkpoint(&mut self) -> Result<(), Failure> {
        let Some(result) = self.checkpoint.as_mut().and_then(commit::InFlight::try_result) else { return Ok(()) };
        self.checkpoint_ended(result)
    }

    /// Waits for the checkpoint in flight, if any.
    async fn wait_checkpoint(&mut self) -> Result<(), Failure> {
        let Some(in_flight) = self.checkpoint.as_mut() else { return Ok(()) };
        let result = in_flight.result().await;
        self.checkpoint_ended(result)
    }

    /// Waits for the checkpoint in flight, if any (blocking callers only:
    /// not on a runtime thread).
    fn wait_checkpoint_blocking(&mut self) -> Result<(), Failure> {
        let Some(in_flight) = self.checkpoint.take() else { return Ok(()) };
        let result = in_flight.result_blocking();
        self.checkpoint_ended(result)
    }

    fn checkpoint_ended(&mut self, result: std::io::Result<()>) -> Result<(), Failure> {
        self.checkpoint = None;
        if let Some(part) = self.part.as_mut() {
            part.end_checkpoint(result.is_ok());
        }
        result.map_err(|e| checkpoint_failed(&e))
    }
}

/// Reads at most 64 KiB of an unwanted body (a redirect's, an error's)
/// so its connection can be reused, for at most `timeout` in all (a body
/// that drips would otherwise hold the download for as long as it lasts),
/// and not past Ctrl-C.
async fn drain_async(mut r: http::Response, waits: &Waits) {
    let (timeout, ctx) = (waits.timeout, &waits.ctx);
    let started = Instant::now();
    let drain = async {
        let mut left = 64 * 1024usize;
        while let Ok(Some(chunk)) = r.chunk().await {
            left = left.saturating_sub(chunk.len());
            // The time is looked at here too: on the blocking engines a
            // body that drips may be read without ever being pending.
            if left == 0 || started.elapsed() >= timeout || ctx.cancelled() {
                break;
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(timeout, drain) => {}
        () = ctx.interrupted() => {}
    }
}

async fn attempt_async(client: &http::Client, dl: &mut Download) -> Result<FetchResult, Failure> {
    if !dl.looked_for_part {
        dl.looked_for_part = true;
        // Most downloads have no part file to continue: looking is one
        // lookup, done here; resuming one reads its state (and, for a
        // digest, its kept bytes), on a blocking thread.
        if PartFile::may_resume(&dl.task.dir, &dl.name) {
            let (dir, name, url) = (dl.task.dir.clone(), dl.name.clone(), dl.task.url.clone());
            let digest = dl.task.options.digest();
            dl.part =
                tokio::task::spawn_blocking(move || PartFile::resume(&dir, &name, &url, digest)).await.ok().flatten();
        }
    }
    if dl.split_mode() {
        return Box::pin(ranged::attempt_async(client, dl)).await;
    }
    let waits = dl.waits();
    let mut url = dl.url.clone();
    let mut hops = 0;
    loop {
        let resume = dl.resume_point();
        let headers = request_headers(dl, &url, resume.as_ref());
        let response = request(client, &waits, &url, &headers).await?;
        let head = http_head(&response);
        dl.http_status = Some(head.status);
        dl.refuse_too_large(&head)?;
        let expected = match decide(&head, &url, &mut hops, resume.as_ref()) {
            Ok(Next::Redirect(next)) => {
                drain_async(response, &waits).await;
                url = next;
                continue;
            }
            Ok(Next::Restart) => {
                drop(response);
                restart_async(dl).await?;
                (url, hops) = (dl.url.clone(), 0);
                continue;
            }
            Ok(Next::Body { expected }) => {
                if !dl.begin_small_body(&head, expected) {
                    dl.begin_body(&head)?;
                }
                expected
            }
            Ok(Next::Rest { total }) => {
                dl.continue_body(&head, resume.as_ref().map_or(0, |r| r.offset))?;
                Some(total)
            }
            Err(failure) => {
                drain_async(response, &waits).await;
                return Err(failure);
            }
        };
        return save_body_async(dl, response, expected).await;
    }
}

/// Appends a body to the part file as it comes, then checks and commits.
async fn save_body_async(
    dl: &mut Download,
    mut response: http::Response,
    expected: Option<u64>,
) -> Result<FetchResult, Failure> {
    let waits = dl.waits();
    // A short rest of a body is gathered and written at once: one `write`
    // instead of one per chunk hyper hands over (it reads 8 KiB at first).
    let written = dl.part.as_ref().map_or(0, PartFile::written);
    let mut gathered = expected
        .filter(|_| dl.small.is_none())
        .and_then(|n| n.checked_sub(written))
        .filter(|&rest| rest > 0 && rest <= GATHER_MAX)
        .and_then(|rest| usize::try_from(rest).ok())
        .map(Vec::with_capacity);
    let end = loop {
        match next_chunk(&mut response, &waits).await {
            Err(f) => break Err(f),
            Ok(None) => break Ok(()),
            Ok(Some(chunk)) => {
                if let Some(buf) = gathered.as_mut()
                    && buf.len() + chunk.len() <= buf.capacity()
                {
                    buf.extend_from_slice(&chunk);
                    continue;
                }
                if let Some(buf) = gathered.take() {
                    dl.write(&buf)?;
                }
                dl.poll_checkpoint()?;
                if dl.write(&chunk)? {
                    dl.start_checkpoint()?;
                }
            }
        }
    };
    // Also when the body was cut: a retry continues after what came.
    if let Some(buf) = gathered.take()
        && !buf.is_empty()
    {
        dl.write(&buf)?;
    }
    end?;
    dl.verify(expected)?;
    // A checkpoint still in flight is made before the commit (the
    // committer keeps the order).
    commit_async(dl).await
}

/// The verified body written (if small), synced and renamed by the
/// committer (see `commit`), with other downloads' files.
async fn commit_async(dl: &mut Download) -> Result<FetchResult, Failure> {
    let (finish, meta, name) = dl.hand_over()?;
    let outcome = commit::finish_async(finish).await.map(|c| (c, meta)).map_err(|e| commit_failed(&name, &dl.task, &e));
    dl.committed(outcome)
}

async fn sleep_async(wait: Duration, ctx: &Ctx) -> bool {
    if ctx.cancelled() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(wait) => !ctx.cancelled(),
        () = ctx.interrupted() => false,
    }
}

impl Task for FetchTask {
    type Output = FetchResult;
    const NAME: &'static str = "fetch";

    fn run_blocking(self, ctx: &Ctx) -> FetchResult {
        let mut dl = match Download::prepare(self, ctx) {
            Ok(dl) => dl,
            Err(result) => return *result,
        };
        let client =
            http::Client { timeout: dl.task.options.timeout, insecure: dl.task.options.insecure, run: dl.ctx.clone() };
        loop {
            if dl.ctx.cancelled() {
                return dl.interrupted();
            }
            dl.attempts += 1;
            let mut failure = match attempt_blocking(&client, &mut dl) {
                Ok(result) => return result,
                Err(f) => f,
            };
            // As on async: never leave a checkpoint in flight behind.
            let pending = dl.wait_checkpoint_blocking();
            let kept = worth_keeping(&failure);
            if let Err(f) = dl.materialize(kept) {
                failure = f;
            }
            if kept && let Err(f) = pending.and_then(|()| dl.checkpoint()) {
                failure = f;
            }
            match dl.settle(failure, kept) {
                Then::Retry(wait) if sleep_blocking(wait, &dl.ctx) => {}
                Then::Retry(_) => return dl.interrupted(),
                Then::End(result) => return result,
            }
        }
    }

    async fn run_async(self, ctx: Ctx) -> FetchResult {
        let mut dl = match Download::prepare(self, &ctx) {
            Ok(dl) => dl,
            Err(result) => return *result,
        };
        let client =
            http::Client { timeout: dl.task.options.timeout, insecure: dl.task.options.insecure, run: dl.ctx.clone() };
        loop {
            if dl.ctx.cancelled() {
                return dl.interrupted();
            }
            dl.attempts += 1;
            let mut failure = match attempt_async(&client, &mut dl).await {
                Ok(result) => return result,
                Err(f) => f,
            };
            // Never leave a checkpoint in flight behind: it would write a
            // state file for a part file reset or removed meanwhile.
            let pending = dl.wait_checkpoint().await;
            let kept = worth_keeping(&failure);
            if let Err(f) = dl.materialize(kept) {
                failure = f;
            }
            if kept
                && let Err(f) = async {
                    pending?;
                    checkpoint_async(&mut dl).await
                }
                .await
            {
                failure = f;
            }
            match dl.settle(failure, kept) {
                Then::Retry(wait) if sleep_async(wait, &dl.ctx).await => {}
                Then::Retry(_) => return dl.interrupted(),
                Then::End(result) => return result,
            }
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

    fn head(status: u16, location: Option<&str>) -> Head {
        Head {
            status,
            location: location.map(String::from),
            retry_after: None,
            content_length: Some(3),
            etag: None,
            last_modified: None,
            content_range: None,
            content_disposition: None,
            fields: 4,
            header_bytes: 100,
        }
    }

    #[test]
    fn redirect_rules() {
        let base = Url::parse("http://a.example/dir/file.bin").expect("url");
        let mut hops = 0;
        let Ok(Next::Redirect(next)) = decide(&head(302, Some("../other.bin")), &base, &mut hops, None) else {
            panic!("relative redirect followed")
        };
        assert_eq!((next.as_str(), hops), ("http://a.example/other.bin", 1));
        for bad in ["file:///etc/passwd", "ftp://a.example/x", "data:text/plain,hi", "javascript:alert(1)"] {
            let Err(Failure::Fatal { status, reason }) = decide(&head(301, Some(bad)), &base, &mut 0, None) else {
                panic!("{bad} refused")
            };
            assert_eq!(status, Status::Failed);
            assert!(reason.contains("refused"), "{reason}");
        }
        let mut hops = MAX_REDIRECTS;
        assert!(matches!(decide(&head(307, Some("/x")), &base, &mut hops, None), Err(Failure::Fatal { .. })));
        assert!(matches!(decide(&head(302, None), &base, &mut 0, None), Err(Failure::Fatal { .. })));
    }

    #[test]
    fn statuses_decide_retries() {
        let base = Url::parse("http://a.example/f").expect("url");
        assert!(matches!(decide(&head(200, None), &base, &mut 0, None), Ok(Next::Body { expected: Some(3) })));
        let mut h = head(503, None);
        h.retry_after = Some("2".into());
        let Err(Failure::Retry { reason, after }) = decide(&h, &base, &mut 0, None) else { panic!("503 retried") };
        assert_eq!((reason.as_str(), after), ("HTTP 503 Service Unavailable", Some(Duration::from_secs(2))));
        for code in [403, 404, 410, 206] {
            assert!(matches!(decide(&head(code, None), &base, &mut 0, None), Err(Failure::Fatal { .. })), "{code}");
        }
    }

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
    fn only_an_exact_partial_response_continues_a_part_file() {
        let v = Validators { etag: Some("\"e1\"".into()), last_modified: None, total: Some(1000) };
        let resume = Resume { offset: 400, validators: v };
        let partial = |cr: &str, len: Option<u64>, etag: Option<&str>| Head {
            status: 206,
            content_length: len,
            content_range: Some(cr.into()),
            etag: etag.map(String::from),
            ..head(206, None)
        };
        assert_eq!(check_partial(&partial("bytes 400-999/1000", Some(600), Some("\"e1\"")), &resume), Ok(1000));
        assert_eq!(check_partial(&partial("BYTES 400-999/1000", None, None), &resume), Ok(1000));
        for (cr, len, etag) in [
            ("bytes 0-999/1000", None, None),
            ("bytes 401-999/1000", None, None),
            ("bytes 400-998/1000", None, None),
            ("bytes 400-1099/1100", None, None),
            ("bytes 400-999/*", None, None),
            ("bytes 400-999/1000", Some(599), None),
            ("bytes 400-999/1000", None, Some("\"e2\"")),
            ("bytes 400-999/1000", None, Some("W/\"e1\"")),
            // A last byte at the end of u64: no overflow, refused.
            ("bytes 400-18446744073709551615/1000", Some(600), None),
            ("", None, None),
        ] {
            assert!(check_partial(&partial(cr, len, etag), &resume).is_err(), "{cr} {len:?} {etag:?}");
        }
        let base = Url::parse("http://a.example/f").expect("url");
        let h = partial("bytes 0-9/10", None, None);
        assert!(matches!(decide(&h, &base, &mut 0, Some(&resume)), Ok(Next::Restart)));
        assert!(matches!(decide(&head(416, None), &base, &mut 0, Some(&resume)), Ok(Next::Restart)));
        assert!(matches!(decide(&head(200, None), &base, &mut 0, Some(&resume)), Ok(Next::Body { .. })));
        let weak = Head { etag: Some("W/\"x\"".into()), ..head(200, None) };
        assert_eq!(weak.validators(), None, "a weak ETag alone does not allow resuming");
        let lm = Head { last_modified: Some("Sun, 06 Nov 1994 08:49:37 GMT".into()), ..weak };
        assert_eq!(
            lm.validators().and_then(|v| v.if_range().map(String::from)).as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
    }
}
