//! What a download is: URLs → one [`FetchTask`] each, run on any engine,
//! results streamed into a report (`trident fetch`).
//!
//! - [`args`]: command-line syntax, validated into a [`FetchConfig`];
//! - [`task`]: one download, blocking (ureq) and async (reqwest);
//! - [`name`]: file names from URLs, sanitised, numbered on collision;
//! - [`store`]: `.part` files, fsync, rename without clobbering;
//! - [`retry`]: which failures are retried, backoff, `Retry-After`;
//! - [`report`]: text and JSON output, the exit code.
//!
//! Retries happen inside the task (unlike the scan's retry rounds): a
//! download's retry depends only on its own history (its attempts, the
//! server's `Retry-After`), and a retry reuses the task's connection pool.

pub mod args;
pub mod name;
pub mod report;
pub mod retry;
pub mod store;
pub mod task;

use std::cell::RefCell;
use std::fmt;
use std::io::{self, BufRead, BufWriter};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

pub use args::FetchArgs;
pub use report::{Format, Summary};
pub use task::{FetchOptions, FetchResult, FetchTask, Status};

use crate::engine::{self, EngineConfig, EngineKind, Interrupt, TaskOutcome};
use crate::error::Exit;

/// A validated fetch request.
#[derive(Debug)]
pub struct FetchConfig {
    /// URLs from the command line (already checked).
    pub urls: Vec<String>,
    /// More URLs, read lazily (`-i`).
    pub input: Option<Input>,
    /// Where files are saved.
    pub dir: PathBuf,
    /// Which engine, how many downloads at once.
    pub engine: EngineConfig,
    /// Retries, timeouts, checksum, collisions.
    pub options: FetchOptions,
    /// Output format.
    pub format: Format,
    /// No warnings on stderr.
    pub quiet: bool,
}

/// A URL list being read line by line.
pub struct Input {
    name: String,
    reader: Box<dyn BufRead + Send>,
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Input {
    /// A list called `name` (for messages) read from `reader`.
    pub fn new(name: &str, reader: Box<dyn BufRead + Send>) -> Self {
        Input { name: name.to_string(), reader }
    }
}

/// The URLs of an [`Input`]: one per line, blank lines and `#` comments
/// skipped; a read error ends the list and is kept in `error`.
struct InputUrls<'a> {
    input: Input,
    line: Vec<u8>,
    error: &'a RefCell<Option<String>>,
}

impl Iterator for InputUrls<'_> {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        loop {
            self.line.clear();
            match self.input.reader.read_until(b'\n', &mut self.line) {
                Ok(0) => return None,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&self.line);
                    let url = text.trim();
                    if url.is_empty() || url.starts_with('#') {
                        continue;
                    }
                    return Some(url.to_string());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    *self.error.borrow_mut() = Some(format!("cannot read URL list {}: {e}", self.input.name));
                    return None;
                }
            }
        }
    }
}

/// Runs the downloads, printing results as they end. Ctrl-C (through
/// `interrupt`) stops new downloads and in-flight ones in this process;
/// what was saved is complete.
pub fn run(config: FetchConfig, interrupt: &Interrupt) -> anyhow::Result<Summary> {
    let started = Instant::now();
    task::set_cancel_flag(interrupt.flag());
    if config.engine.kind == EngineKind::Async {
        task::new_async_run();
    }
    let input_error = RefCell::new(None);
    let from_input = config.input.map(|input| InputUrls { input, line: Vec::new(), error: &input_error });
    let urls = config.urls.into_iter().chain(from_input.into_iter().flatten());
    let (dir, options) = (&config.dir, &config.options);
    let tasks = urls.enumerate().map(|(index, url)| FetchTask {
        index: index as u64,
        url,
        dir: dir.clone(),
        options: options.clone(),
    });

    let mut summary = Summary::new(config.engine.kind.name(), config.engine.concurrency);
    let mut report = report::Report::new(config.format, BufWriter::new(io::stdout()));
    let mut write_error = None;
    let stats = engine::run_tasks(&config.engine, tasks, interrupt, |outcome| {
        let result = match outcome {
            TaskOutcome::Done(result) => result,
            TaskOutcome::Failed { task, reason } => {
                let mut result = FetchResult::engine_failure(&task, reason);
                if interrupt.is_set() {
                    // A worker process stopped because of Ctrl-C.
                    result.status = Status::Interrupted;
                }
                result
            }
        };
        summary.add(&result);
        if write_error.is_none()
            && let Err(e) = report.record(result)
        {
            // A closed pipe or a full disk: stop starting downloads.
            write_error = Some(e);
            interrupt.trigger();
        }
    })?;
    if let Err(e) = store::sync_dir(&config.dir)
        && !config.quiet
    {
        eprintln!("trident: warning: cannot sync {}: {e}", config.dir.display());
    }
    summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(e) = write_error {
        return Err(e).context("cannot write the report");
    }
    if stats.interrupted {
        summary.interrupted = true;
        summary.raise(Status::Interrupted.exit_code());
    }
    if let Some(e) = input_error.into_inner() {
        eprintln!("trident: {e}");
        summary.raise(Status::BadUrl.exit_code());
    }
    report.finish(&summary).context("cannot write the report")?;
    Ok(summary)
}

/// The process exit status for a fetch exit code (see `Status::exit_code`).
pub fn exit_status(code: u8) -> Exit {
    match code {
        0 => Exit::Success,
        2 => Exit::BadInput,
        3 => Exit::ChecksumMismatch,
        4 => Exit::LocalError,
        130 => Exit::Interrupted,
        _ => Exit::Failure,
    }
}
