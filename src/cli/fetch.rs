//! `trident fetch`: its flags, turned into a [`FetchConfig`]; every bad
//! value is reported (exit 2) before any request.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{RuntimeArg, parse_duration, parse_duration_or_zero, parse_engine};
use crate::engine::{EngineConfig, EngineKind};
use crate::error::BadInput;
use crate::fetch::input::parse_checksum;
use crate::fetch::report::Format;
use crate::fetch::store::Collision;
use crate::fetch::task::{FetchOptions, check_url, with_default_scheme};
use crate::fetch::{FETCH_THREAD_STACK, FetchConfig, Input};

/// Downloads in flight when `-j` is not given, on every engine.
pub const DEFAULT_JOBS: u32 = 16;

/// `trident fetch --help` epilogue.
pub const FETCH_HELP: &str = "\
Examples:
  trident fetch https://example.org/a.iso https://example.org/b.iso -d downloads
  trident fetch -i urls.txt -j 32 -e threads -f json > results.json
  trident fetch https://example.org/a.iso --checksum sha256=9f86d0...
  trident fetch -i urls.txt --sha256 -f json > results.json

Files: the body is written to NAME.part in DIR, synced, checked (length
against Content-Length, --checksum), and only then renamed to NAME. A file
under its final name is always complete. NAME is the URL's last path
segment, percent-decoded, without /, \\, control characters or leading
dots (index.html when empty); it never leaves DIR and no symlink in DIR is
followed. A taken NAME becomes NAME.1.ext, NAME.2.ext... unless
--overwrite or --no-clobber. No digest is computed unless asked for:
--sha256 reports the SHA-256 of every file saved (text: sha256:HEX on its
line; JSON: \"sha256\", null without it), at a CPU cost of about 0.5 s per
GiB; --checksum and checksum= compute it to verify (and report) it.

--content-disposition: NAME comes from the Content-Disposition header of
the response whose body is saved (after redirects; not from a redirect):
filename*=UTF-8''... (RFC 8187, percent-decoded) before filename=\"...\"
(quoted-string escapes undone, not percent-decoded), sanitised as above;
the URL's name when the header is absent, unparsable or leaves nothing.
An out= name wins over it. The body is still written to URL-NAME.part, so
resume works as without the flag (a later run continues URL-NAME.part,
and the header of the response that continues it names the file), and
--no-clobber is only decided when the file is moved into place (after
the download).

Resume: a body sent with a strong ETag or Last-Modified is resumable.
NAME.part.state (JSON: URL, validator, length, bytes synced) is replaced
atomically every 4 MiB and when an attempt fails, after the data is synced.
A retry, or a later run for the same URL in DIR, continues NAME.part with
Range and If-Range; only a 206 whose Content-Range continues the file
exactly is appended; a 200, another validator or another Content-Range
start over from zero. An interrupted download keeps NAME.part and its
state (with -c, a failed one too); otherwise both are removed.

Split downloads (-s K): the first request asks for bytes=0-; when the
server answers 206 for the whole body with a strong ETag or Last-Modified
and the body is at least 2 x --min-split-size long, it can be fetched as up
to K ranged parts at once (none smaller than --min-split-size), each asked
with Range and If-Range and written at its offset in the same NAME.part.
The parts open when they can help: the first connection is watched in
windows of --split-probe, and once it waited for data at least half of a
window (the network, not this machine, holds it back), what it has left
is cut into K parts. A connection that always has data waiting stays one
stream, since more connections would only cost CPU. --split-probe 0 opens
all K parts at once.
The state file then lists the ranges synced, so a retry or a later run
(also after kill -9) fetches only what is missing, with as many parts. A
worker whose part is done takes half of the part with the most bytes left
(if both halves are at least --min-split-size). A part that fails gives
its rest to the next idle worker; a part that shows the file changed (200,
another validator) starts the download over, a second time as one stream.
A 200, a body too small or without a validator: one stream, as with -s 1.
A SHA-256 (--sha256, --checksum) is computed by reading the file once it is
complete.

Retries: connection errors, timeouts, truncated bodies, HTTP 408, 429 and
5xx, with exponential backoff and jitter (--retry-wait, doubling, at most
30 s), at least what Retry-After asks, and no retry later than
--retry-max-time after the first attempt. 403, 404 and other 4xx are not
retried, nor a TLS certificate that cannot be verified, nor a response
head over 100 fields or 64 KiB (exit 1 for all three).

Limits: --timeout ends one silent wait (connecting, the response, the
next piece of a body) and the attempt is retried; a server that sends a
byte now and then never hits it. --max-time DUR ends the whole download
(every attempt, and the waits between them) DUR after it started: exit 1,
error \"--max-time DUR reached\"; with -c what came is kept to continue.
--max-filesize SIZE refuses a file longer than SIZE before its body is
read when Content-Length (or a 206's Content-Range) says so, else stops
it as soon as the body grows past SIZE; nothing is kept (exit 1). On
every engine the response head is read into at most 64 KiB, a body cut
short (before its Content-Length, or inside a chunk) is never saved, and
a malformed chunk size ends the attempt.
Redirects: http and https only, at most 10; the name still comes from the
URL given. Credentials in the URL (https://user:pass@host/...) are sent as
Authorization: Basic to that URL's origin (scheme, host and port) only: a
redirect to another host or port, or from https to http, is followed
without them (user info in a Location is ignored). No cookies are sent.

HTTPS: rustls with the system's root certificates. A certificate that
cannot be verified fails the download at once (error \"TLS certificate
rejected\", exit 1). --insecure skips the check: DANGEROUS, anyone on
the path can then read and change the files; only for a host you control.

Input file (-i FILE, - for stdin; aria2's format, read as the downloads
go): one URL per line, # comments; TAB-separated URLs on one line are
mirrors of one file, tried in order when one fails (named after the
first); indented option lines apply to the URL above: out=NAME (sanitised
like any name), dir=DIR (beneath -d: no absolute path, no .., no symlink
on the way), checksum=sha-256=HEX. A bad line is reported as bad-url with
FILE:LINE and its entry skipped.

Output: a line per file on stdout as it ends (at once on a terminal;
into a pipe or a file within 100 ms), then a summary; -f json prints one
document at the end. If stdout is closed, no new download starts (exit 0,
silently, as for any closed output).

Exit status (the most severe wins, in this order):
  130  interrupted (Ctrl-C); the files already saved are complete
    4  a file could not be written in DIR (local error)
    3  checksum mismatch
    2  bad input: invalid options or URL, a DIR where files cannot be
       created (on the command line: nothing is downloaded; in an input
       file: that line is reported, the rest done)
    1  some downloads failed (HTTP error, network error, after the retries;
       a TLS certificate that cannot be verified or a response head too
       large, at once)
    0  every URL was saved (or skipped by --no-clobber)";

/// `trident fetch` options.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// http:// or https:// URLs to download (host[:port]/path without a
    /// scheme is http://, as curl and wget read it).
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,
    /// Read URLs from FILE, one per line (# comments); - for stdin.
    #[arg(short = 'i', long = "input-file", value_name = "FILE")]
    pub input_file: Option<PathBuf>,
    /// Save files in DIR (created if missing).
    #[arg(short = 'd', long = "dir", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Concurrency engine: threads, processes or async.
    #[arg(short = 'e', long, default_value = "async", value_parser = parse_engine)]
    pub engine: EngineKind,
    /// Async engine's runtime: current-thread or multi-thread. With
    /// current-thread one thread runs every download, as an event loop
    /// does: faster for many small files; multi-thread has a runtime thread
    /// per core: faster for a few large ones (4 x 256 MiB from loopback
    /// 1,543 against 1,158 MiB/s here).
    #[arg(long, value_enum, default_value_t = RuntimeArg::CurrentThread)]
    pub async_runtime: RuntimeArg,
    /// Files downloaded at once (threads, worker processes or futures); a
    /// finished one waiting for its file to be synced and renamed no longer
    /// counts (threads, async), up to 3 x N of those.
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = DEFAULT_JOBS,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub jobs: u32,
    /// Retries of a download after its first attempt (also --retry, as curl).
    #[arg(long, alias = "retry", value_name = "N", default_value_t = 5)]
    pub retries: u32,
    /// Backoff before the first retry; doubles after each (with jitter).
    #[arg(long, value_name = "DUR", default_value = "500ms", value_parser = parse_duration)]
    pub retry_wait: Duration,
    /// No retry starts later than this after a download's first attempt.
    #[arg(long, value_name = "DUR", default_value = "2m", value_parser = parse_duration)]
    pub retry_max_time: Duration,
    /// Connect timeout, and longest wait for a response or between two
    /// pieces of a body.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Expected digest of the file, e.g. sha256=9f86d0...; a mismatch is
    /// never saved (exit 3). Needs exactly one URL.
    #[arg(long, value_name = "ALGO=HEX")]
    pub checksum: Option<String>,
    /// Report the SHA-256 of every file saved. Text: sha256:HEX, JSON:
    /// "sha256" (null unless --sha256 or --checksum). Costs CPU: about
    /// 0.5 s per GiB.
    #[arg(long)]
    pub sha256: bool,
    /// Replace an existing file of the same name.
    #[arg(long, conflicts_with = "no_clobber")]
    pub overwrite: bool,
    /// Skip URLs whose file name exists in DIR.
    #[arg(long)]
    pub no_clobber: bool,
    /// Keep what a failed download got, for a later run to continue (as
    /// wget -c). A resumable NAME.part (and its state) is then kept also
    /// when a download fails for good (a .part of the same URL is always
    /// continued, and kept when interrupted).
    #[arg(short = 'c', long = "continue")]
    pub continue_: bool,
    /// Name files as the server's Content-Disposition header says. The
    /// header of the response that is saved counts (filename* preferred),
    /// sanitised like any name; the URL's name when it gives none.
    #[arg(long)]
    pub content_disposition: bool,
    /// Fetch each file as up to K ranged parts at once (as aria2 -s). Only
    /// when the server supports ranges and the file is large enough (see
    /// below).
    #[arg(short = 's', long = "split", value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub split: u32,
    /// No part of a split download is smaller than this (e.g. 512K, 1M, 4M).
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size)]
    pub min_split_size: u64,
    /// How long a split download watches its first stream before opening
    /// the other parts. A split download starts as one stream; its other
    /// parts open once its connection waited for data at least half of a
    /// window this long (checked every window). 0 opens all K parts at once, as aria2 does
    /// (see below).
    #[arg(long, value_name = "DUR", default_value = "250ms", value_parser = parse_duration_or_zero)]
    pub split_probe: Duration,
    /// Give up a download that is not done this long after it started.
    /// Retries and their waits are included (e.g. 90s, 10m); what came is
    /// kept with -c. --timeout still ends each silent wait sooner. Default:
    /// no limit.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_time: Option<Duration>,
    /// Refuse a file longer than SIZE (e.g. 100M, 4G). At once when its
    /// Content-Length (or Content-Range) says so, else as soon as its body
    /// grows past SIZE; nothing is kept. Default: no limit.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_filesize: Option<u64>,
    /// Do not verify TLS certificates. DANGEROUS: anyone on the path can
    /// read and change the downloads; only for a host you control.
    #[arg(long)]
    pub insecure: bool,
    /// Output: text (a line per file as it ends) or json (one document).
    #[arg(short = 'f', long, default_value = "text")]
    pub format: Format,
}

/// Parses a size: bytes, or a number with K, M or G (powers of 1024; `KiB`,
/// `MB`... are read the same), at least 1 KiB.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?} (expected e.g. 65536, 512K, 1M, 2G)");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: u64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(bad()),
    };
    let size = value.checked_mul(scale).ok_or_else(bad)?;
    if size < 1024 {
        return Err(format!("invalid size {s:?}: at least 1K"));
    }
    Ok(size)
}

impl FetchArgs {
    /// Validates everything, creates DIR and opens the input file.
    pub fn into_config(mut self) -> Result<FetchConfig, BadInput> {
        for url in &mut self.urls {
            *url = with_default_scheme(url).into_owned();
            check_url(url).map_err(BadInput)?;
        }
        if self.urls.is_empty() && self.input_file.is_none() {
            return Err(BadInput("no URLs given (e.g. trident fetch http://host/file, or -i FILE)".into()));
        }
        let sha256 = match &self.checksum {
            Some(spec) => {
                if self.urls.len() != 1 || self.input_file.is_some() {
                    return Err(BadInput("--checksum applies to exactly one URL on the command line".into()));
                }
                Some(parse_checksum(spec).map_err(BadInput)?)
            }
            None => None,
        };
        let input = match &self.input_file {
            None => None,
            Some(path) if path.as_os_str() == "-" => Some(Input::new("stdin", Box::new(BufReader::new(io::stdin())))),
            Some(path) => {
                let file =
                    File::open(path).map_err(|e| BadInput(format!("cannot read URL list {}: {e}", path.display())))?;
                Some(Input::new(&path.display().to_string(), Box::new(BufReader::new(file)) as Box<dyn BufRead + Send>))
            }
        };
        match std::fs::metadata(&self.dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(BadInput(format!("{} is not a directory", self.dir.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir_all(&self.dir)
                .map_err(|e| BadInput(format!("cannot create directory {}: {e}", self.dir.display())))?,
            Err(e) => return Err(BadInput(format!("cannot use directory {}: {e}", self.dir.display()))),
        }
        crate::fetch::unnamed::check_writable(&self.dir)
            .map_err(|e| BadInput(format!("cannot write files in {}: {e}", self.dir.display())))?;
        let collision = match (self.overwrite, self.no_clobber) {
            (true, _) => Collision::Overwrite,
            (_, true) => Collision::NoClobber,
            _ => Collision::Number,
        };
        Ok(FetchConfig {
            urls: self.urls,
            input,
            dir: self.dir,
            engine: EngineConfig {
                async_runtime: self.async_runtime.into(),
                thread_stack: FETCH_THREAD_STACK,
                ..EngineConfig::new(self.engine)
            }
            .with_concurrency(self.jobs as usize),
            options: FetchOptions {
                retries: self.retries,
                timeout: self.timeout,
                retry_wait: self.retry_wait,
                retry_max_time: self.retry_max_time,
                sha256,
                report_sha256: self.sha256,
                collision,
                keep_partial: self.continue_,
                content_disposition: self.content_disposition,
                split: self.split,
                min_split_size: self.min_split_size,
                split_probe: self.split_probe,
                insecure: self.insecure,
                max_time: self.max_time,
                max_filesize: self.max_filesize,
            },
            format: self.format,
            quiet: crate::term::quiet(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::task::{DEFAULT_MIN_SPLIT, MAX_HEADER_BYTES, MAX_HEADER_FIELDS};

    #[test]
    fn sizes() {
        for (text, want) in
            [("1M", 1 << 20), ("512K", 512 << 10), ("65536", 65536), ("2GiB", 2 << 30), ("4 mb", 4 << 20)]
        {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        assert_eq!(parse_size("1M"), Ok(DEFAULT_MIN_SPLIT), "the default in --help");
        let limits = format!("head over {MAX_HEADER_FIELDS} fields or {} KiB", MAX_HEADER_BYTES / 1024);
        assert!(FETCH_HELP.contains(&limits), "--help states the header limits");
        for bad in ["", "M", "1T", "-1K", "1023", "1.5M", "99999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
