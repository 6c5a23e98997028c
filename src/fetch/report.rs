//! What `trident fetch` prints: a line per file as it ends (text), or one
//! JSON document at the end (`-f json`), and the exit code that sums it up.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use serde::Serialize;

use super::auth::{redact_passwords, without_password};
use super::task::{FetchResult, Status};
use crate::error::Exit;
use crate::output::{Escapes, escaped};

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// A line per file as it ends, then a summary line.
    #[default]
    Text,
    /// One document: `{"files": [...], "summary": {...}}`, files in input order.
    Json,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            _ => Err(format!("unknown format {s:?} (expected text or json)")),
        }
    }
}

/// Totals of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Engine name.
    pub engine: String,
    /// Downloads in flight at most.
    pub concurrency: usize,
    /// URLs read.
    pub urls: u64,
    /// Results per status name (every status present, zeros included).
    pub counts: BTreeMap<&'static str, u64>,
    /// Bytes saved.
    pub bytes: u64,
    /// Wall time of the run.
    pub elapsed_ms: u64,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// Downloads that left a part file for a rerun to resume.
    pub partial_files: u64,
    /// What a rerun must add to skip the files saved in this run rather
    /// than save them again under numbered names (`--no-clobber` unless
    /// the run had a collision policy of its own).
    #[serde(skip)]
    pub rerun_adds: Option<&'static str>,
    /// The process's exit code (see `trident fetch --help`).
    pub exit_code: u8,
}

/// Every status, in report order.
const STATUSES: [Status; 7] = [
    Status::Done,
    Status::Skipped,
    Status::Failed,
    Status::BadUrl,
    Status::ChecksumMismatch,
    Status::LocalError,
    Status::Interrupted,
];

impl Summary {
    /// An empty summary for a run on `engine`.
    pub fn new(engine: &str, concurrency: usize) -> Self {
        Summary {
            engine: engine.to_string(),
            concurrency,
            counts: STATUSES.iter().map(|s| (s.name(), 0)).collect(),
            ..Summary::default()
        }
    }

    /// Counts one result; the exit code is the most severe one seen.
    pub fn add(&mut self, r: &FetchResult) {
        self.urls += 1;
        *self.counts.entry(r.status.name()).or_default() += 1;
        if r.status == Status::Done {
            self.bytes += r.bytes;
        }
        if r.partial_bytes > 0 {
            self.partial_files += 1;
        }
        self.raise(r.status.exit_code());
    }

    /// The process exit status (see `Status::exit_code`).
    pub fn exit(&self) -> Exit {
        match self.exit_code {
            0 => Exit::Success,
            2 => Exit::BadInput,
            3 => Exit::ChecksumMismatch,
            4 => Exit::LocalError,
            130 => Exit::Interrupted,
            _ => Exit::Failure,
        }
    }

    /// Raises the exit code to `code` if that is more severe (codes are
    /// numbered by severity: 130 > 4 > 3 > 2 > 1 > 0).
    pub fn raise(&mut self, code: u8) {
        self.exit_code = self.exit_code.max(code);
    }

    fn line(&self) -> String {
        let done = self.counts.get("done").copied().unwrap_or(0);
        let mut text = format!(
            "Fetched {done} of {} URL{} ({}) in {:.2} s with {} (-j {})",
            self.urls,
            if self.urls == 1 { "" } else { "s" },
            human_bytes(self.bytes),
            self.elapsed_ms as f64 / 1000.0,
            self.engine,
            self.concurrency,
        );
        let others: Vec<String> =
            self.counts.iter().filter(|(k, v)| **k != "done" && **v > 0).map(|(k, v)| format!("{v} {k}")).collect();
        if !others.is_empty() {
            text.push_str(": ");
            text.push_str(&others.join(", "));
        }
        if self.interrupted {
            text.push_str("; interrupted, later URLs not started");
        }
        if let Some(hint) = self.rerun_hint() {
            text.push_str("; ");
            text.push_str(&hint);
        }
        text
    }

    /// How to go on after Ctrl-C or with part files kept: the command to
    /// run again and what it will do.
    fn rerun_hint(&self) -> Option<String> {
        let parts = self.partial_files;
        if parts == 0 && !self.interrupted {
            return None;
        }
        let saved = self.counts.get("done").copied().unwrap_or(0);
        let how = match self.rerun_adds {
            Some(flag) if saved > 0 => format!("rerun the same command with {flag}"),
            _ => "rerun the same command".to_string(),
        };
        let what = match (parts, self.interrupted) {
            (0, _) => "to fetch the rest".to_string(),
            (n, interrupted) => format!(
                "to resume {n} partial file{}{}",
                if n == 1 { "" } else { "s" },
                if interrupted { " and fetch the rest" } else { "" }
            ),
        };
        Some(format!("{how} {what}"))
    }
}

/// `1.5 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The colour of a status in the text lines.
fn status_style(status: Status) -> anstyle::Style {
    use anstyle::AnsiColor;
    match status {
        Status::Done => AnsiColor::Green.on_default().bold(),
        Status::Skipped => anstyle::Style::new().dimmed(),
        Status::Interrupted => AnsiColor::Yellow.on_default(),
        Status::Failed | Status::BadUrl | Status::ChecksumMismatch | Status::LocalError => crate::term::ERROR,
    }
}

/// Writes results as they come.
#[derive(Debug)]
pub struct Report<W: Write> {
    format: Format,
    out: W,
    kept: Vec<FetchResult>,
    /// Text: each line's status in colour (a terminal).
    colour: bool,
}

impl<W: Write> Report<W> {
    /// A report in `format` written to `out`.
    pub fn new(format: Format, out: W) -> Self {
        Report { format, out, kept: Vec::new(), colour: false }
    }

    /// Text lines show their status in colour (for a terminal): done green,
    /// interrupted yellow, the failures red.
    pub fn coloured(mut self, on: bool) -> Self {
        self.colour = on && self.format == Format::Text;
        self
    }

    /// One file's result.
    pub fn record(&mut self, mut r: FetchResult) -> io::Result<()> {
        // No password is ever printed, whatever produced the text (a bad
        // line, an HTTP client's error).
        r.url = without_password(&r.url);
        if let Some(error) = &mut r.error
            && let Cow::Owned(clean) = redact_passwords(error)
        {
            *error = clean;
        }
        match self.format {
            Format::Text => {
                let line = match (r.status, &r.name) {
                    (Status::Done, Some(name)) => {
                        let mut line = format!("done      {name}  {} bytes  ", r.bytes);
                        if r.resumed_from > 0 {
                            line.push_str(&format!("resumed from {}  ", r.resumed_from));
                        }
                        // The digest only when one was computed (--sha256, a checksum).
                        if let Some(sha256) = &r.sha256 {
                            line.push_str(&format!("sha256:{sha256}  "));
                        }
                        line + &r.url
                    }
                    (Status::Skipped, Some(name)) => format!("skipped   {name}  (exists)  {}", r.url),
                    (status, _) => {
                        let mut line = format!(
                            "{:<9} {}: {}",
                            status.name(),
                            r.url,
                            r.error.as_deref().unwrap_or("unknown error")
                        );
                        if r.partial_bytes > 0 {
                            line.push_str(&format!(" ({} bytes kept: a rerun resumes)", r.partial_bytes));
                        }
                        line
                    }
                };
                // A bad line's text, an error quoting a server: nothing
                // they hold may drive the terminal (JSON escapes on its own).
                let line = escaped(&line, Escapes::Backslash);
                // The status word leads the line; escaping left it as it was.
                let (word, rest) = line.split_at(line.find(' ').unwrap_or(line.len()));
                writeln!(self.out, "{}{rest}", crate::term::paint(self.colour, status_style(r.status), word))?;
                self.out.flush()
            }
            Format::Json => {
                self.kept.push(r);
                Ok(())
            }
        }
    }

    /// Ends the report with the summary; gives the output back.
    pub fn finish(mut self, summary: &Summary) -> io::Result<W> {
        match self.format {
            Format::Text => writeln!(self.out, "{}", summary.line())?,
            Format::Json => {
                self.kept.sort_by_key(|r| r.index);
                #[derive(Serialize)]
                struct Doc<'a> {
                    files: &'a [FetchResult],
                    summary: &'a Summary,
                }
                serde_json::to_writer_pretty(&mut self.out, &Doc { files: &self.kept, summary })?;
                writeln!(self.out)?;
            }
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// How long a result line may wait before it is written, when standard
/// output is not a terminal.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Standard output for the report. On a terminal every line is written
/// when its file ends. Into a pipe or a file, [`flush`](Write::flush) only
/// marks a line done: a flusher thread writes what has accumulated every
/// [`FLUSH_EVERY`], so a reader still sees each line within 100 ms, and
/// [`close`](Self::close) writes the rest. A line written at once is a
/// `write` that wakes the reader, once per file: 2,000 x 16 KiB at -j 32
/// (async, stdout piped to `cat`, medians of 19 in random order) took
/// 0.112 s that way, 0.109 s with the lines held back (CPU 0.105 ->
/// 0.100 s). A write error (a closed pipe) met by the flusher is
/// returned by the next write.
#[derive(Debug)]
pub struct Paced {
    shared: Arc<Mutex<Buffered>>,
    /// On a terminal: flush each line.
    live: bool,
    flusher: Option<(Sender<()>, JoinHandle<()>)>,
}

#[derive(Debug)]
struct Buffered {
    out: BufWriter<io::Stdout>,
    /// The flusher's write error, for the next writer to see.
    error: Option<io::Error>,
}

impl Buffered {
    fn flush(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => self.out.flush(),
        }
    }
}

impl Paced {
    /// The process's standard output, paced unless it is a terminal.
    pub fn stdout() -> Paced {
        let live = io::stdout().is_terminal();
        let shared =
            Arc::new(Mutex::new(Buffered { out: BufWriter::with_capacity(64 * 1024, io::stdout()), error: None }));
        let flusher = (!live).then(|| flusher(Arc::clone(&shared))).flatten();
        // Without a flusher thread, every line is written at once.
        let live = live || flusher.is_none();
        Paced { shared, live, flusher }
    }

    fn lock(&self) -> MutexGuard<'_, Buffered> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the flusher and writes what is left.
    pub fn close(mut self) -> io::Result<()> {
        self.stop();
        self.lock().flush()
    }

    fn stop(&mut self) {
        if let Some((stop, thread)) = self.flusher.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

/// A thread flushing `shared` every [`FLUSH_EVERY`] until its sender is
/// dropped (`None`: it could not be started).
fn flusher(shared: Arc<Mutex<Buffered>>) -> Option<(Sender<()>, JoinHandle<()>)> {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let run = move || {
        crate::sys::background_thread();
        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(FLUSH_EVERY) {
            let mut b = shared.lock().unwrap_or_else(PoisonError::into_inner);
            if b.error.is_none()
                && !b.out.buffer().is_empty()
                && let Err(e) = b.out.flush()
            {
                b.error = Some(e);
            }
        }
    };
    let thread = std::thread::Builder::new().name("trident-report".into()).stack_size(64 * 1024).spawn(run).ok()?;
    Some((stop, thread))
}

impl Write for Paced {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut b = self.lock();
        if let Some(e) = b.error.take() {
            return Err(e);
        }
        b.out.write(buf)
    }

    /// A line is done: written now on a terminal, else within
    /// [`FLUSH_EVERY`] (an earlier write error is returned now).
    fn flush(&mut self) -> io::Result<()> {
        let mut b = self.lock();
        if self.live {
            return b.flush();
        }
        b.error.take().map_or(Ok(()), Err)
    }
}

impl Drop for Paced {
    fn drop(&mut self) {
        self.stop();
        let _ = self.lock().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: Status, bytes: u64) -> FetchResult {
        FetchResult {
            index: 0,
            url: "http://h/x".into(),
            status,
            name: Some("x".into()),
            bytes,
            sha256: Some("ab".into()),
            http_status: Some(200),
            attempts: 1,
            resumed_from: 0,
            partial_bytes: 0,
            error: None,
            elapsed_ms: 1,
        }
    }

    #[test]
    fn the_most_severe_exit_code_wins() {
        let mut s = Summary::new("threads", 4);
        assert_eq!(s.exit_code, 0);
        for (status, want) in [
            (Status::Done, 0),
            (Status::Skipped, 0),
            (Status::Failed, 1),
            (Status::ChecksumMismatch, 3),
            (Status::BadUrl, 3),
            (Status::LocalError, 4),
            (Status::Failed, 4),
            (Status::Interrupted, 130),
            (Status::Done, 130),
        ] {
            s.add(&result(status, 10));
            assert_eq!(s.exit_code, want, "after {status:?}");
        }
        assert_eq!((s.urls, s.bytes, s.counts["failed"], s.counts["done"]), (9, 20, 2, 2));
    }

    #[test]
    fn text_lines_and_summary() {
        let mut out = Vec::new();
        let mut report = Report::new(Format::Text, &mut out);
        report.record(result(Status::Done, 2048)).expect("write");
        report.record(FetchResult { sha256: None, ..result(Status::Done, 10) }).expect("write");
        let mut failed = result(Status::Failed, 0);
        failed.error = Some("HTTP 404 Not Found".into());
        report.record(failed.clone()).expect("write");
        let mut s = Summary::new("async", 8);
        s.add(&result(Status::Done, 2048));
        s.add(&failed);
        s.elapsed_ms = 1500;
        report.finish(&s).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "done      x  2048 bytes  sha256:ab  http://h/x\n\
             done      x  10 bytes  http://h/x\n\
             failed    http://h/x: HTTP 404 Not Found\n\
             Fetched 1 of 2 URLs (2.0 KiB) in 1.50 s with async (-j 8): 1 failed\n"
        );
    }

    #[test]
    fn resumed_and_kept_files_say_so_and_the_summary_says_how_to_go_on() {
        let mut out = Vec::new();
        let mut report = Report::new(Format::Text, &mut out);
        report.record(FetchResult { sha256: None, resumed_from: 1000, ..result(Status::Done, 3000) }).expect("write");
        let mut stopped =
            FetchResult { partial_bytes: 700, error: Some("interrupted".into()), ..result(Status::Interrupted, 0) };
        report.record(stopped.clone()).expect("write");
        let mut s = Summary::new("async", 8);
        s.add(&result(Status::Done, 3000));
        s.add(&stopped);
        s.interrupted = true;
        s.rerun_adds = Some("--no-clobber");
        report.finish(&s).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "done      x  3000 bytes  resumed from 1000  http://h/x\n\
             interrupted http://h/x: interrupted (700 bytes kept: a rerun resumes)\n\
             Fetched 1 of 2 URLs (2.9 KiB) in 0.00 s with async (-j 8): 1 interrupted; interrupted, later URLs \
             not started; rerun the same command with --no-clobber to resume 1 partial file and fetch the rest\n"
        );

        // Nothing saved: the same command as it was; -c after failures.
        let mut s = Summary::new("async", 8);
        stopped.status = Status::Failed;
        s.add(&stopped);
        s.add(&stopped);
        s.rerun_adds = Some("--no-clobber");
        assert!(s.line().ends_with(": 2 failed; rerun the same command to resume 2 partial files"), "{}", s.line());
        // Interrupted with nothing kept.
        let mut s = Summary::new("async", 8);
        s.interrupted = true;
        assert!(s.line().ends_with("; rerun the same command to fetch the rest"), "{}", s.line());
        assert_eq!(Summary::new("async", 8).rerun_hint(), None);
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(256 << 20), "256.0 MiB");
    }
}
