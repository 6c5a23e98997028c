//! What a download is: URLs → one [`FetchTask`] each, run on any engine,
//! results streamed into a report (`trident fetch`).
//!
//! - [`task`]: one download, written once for every engine (the decisions
//!   without I/O, the state, one async attempt loop; `-s` split into
//!   ranged parts in `task/ranged.rs`);
//! - [`split`]: the bookkeeping of a split download (which ranges are done,
//!   waiting, being fetched), without I/O;
//! - [`http`]: the HTTP/1.1 client of every engine (hyper, a keep-alive
//!   pool per thread and run); `tls`: its rustls configuration;
//! - [`auth`]: credentials from the URL, sent to its origin only;
//! - [`name`]: file names from URLs, sanitised, numbered on collision;
//! - [`store`]: `.part` files, fsync, rename without clobbering;
//! - [`seal`]: the per-user key whose MAC a state file must carry to be
//!   trusted;
//! - [`commit`]: the committer thread, which syncs and renames finished
//!   downloads in batches (group commit) and runs async checkpoints;
//! - [`retry`]: which failures are retried, backoff, `Retry-After`;
//! - [`report`]: text and JSON output, the exit code;
//! - [`input`]: the `-i` input file (aria2's subset), read lazily;
//! - [`beneath`]: its `dir=` directories, made beneath `-d DIR` only;
//! - [`entry`]: the task the engines run: a download with its mirrors and
//!   input-file options, or a bad input line;
//! - [`progress`]: live lines on a terminal's stderr.
//!
//! Retries happen inside the task (unlike the scan's retry rounds): a
//! download's retry depends only on its own history (its attempts, the
//! server's `Retry-After`), and a retry reuses the task's connection pool.

pub mod auth;
pub mod beneath;
pub mod commit;
pub mod entry;
pub mod http;
pub mod input;
pub mod name;
pub mod progress;
pub mod report;
pub mod retry;
pub mod seal;
pub mod split;
pub mod store;
pub mod task;
mod tls;
pub mod unnamed;

use std::fmt;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

pub use entry::EntryTask;
pub use report::{Format, Summary};
pub use task::{FetchOptions, FetchResult, FetchTask, Status};

use crate::engine::{self, EngineConfig, Interrupt, TaskOutcome};
use store::Collision;

/// Stack of a threads-engine pool thread (and of a split download's part
/// thread, `task::ranged`): a download polls hyper's futures on it
/// (`http::block_on`), TLS handshakes included (boxed: see `http`).
pub const FETCH_THREAD_STACK: usize = 256 * 1024;

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

/// Runs the downloads, printing results as they end. Ctrl-C (through
/// `interrupt`) stops new downloads and in-flight ones in this process;
/// what was saved is complete.
pub fn run(config: FetchConfig, interrupt: &Interrupt) -> anyhow::Result<Summary> {
    let started = Instant::now();
    if config.options.insecure && !config.quiet {
        eprintln!("trident: warning: --insecure: TLS certificates are not checked");
    }
    let progress = progress::Progress::new(config.quiet);
    let base = FetchTask {
        index: 0,
        url: String::new(),
        dir: config.dir.clone(),
        name: None,
        options: config.options.clone(),
    };
    // Err: a command-line URL; Ok: an input-file entry (or bad line).
    let plain = config.urls.into_iter().map(Err);
    let from_input =
        config.input.map(|Input { name, reader }| input::Entries::new(reader).map(move |e| Ok((name.clone(), e))));
    let mut items = plain.chain(from_input.into_iter().flatten()).enumerate();
    // Lazily, one task per URL or input entry; the progress lines learn
    // what starts (the engines take a task when they start it).
    let tasks = std::iter::from_fn(|| {
        let Some((index, item)) = items.next() else {
            progress.input_done();
            return None;
        };
        let base = FetchTask { index: index as u64, ..base.clone() };
        let task = match item {
            Err(url) => EntryTask::plain(FetchTask { url, ..base }),
            Ok((list, entry)) => EntryTask::from_input(base, &list, entry),
        };
        progress.started(task.fetch.index, || (task.display_name(), task.part_paths()));
        Some(task)
    });

    let mut summary = Summary::new(config.engine.kind.name(), config.engine.concurrency);
    // A rerun with the default policy would save the files done in this
    // run again, under numbered names.
    summary.rerun_adds = (config.options.collision == Collision::Number).then_some("--no-clobber");
    let mut report = report::Report::new(config.format, report::Paced::stdout()).coloured(crate::term::color_stdout());
    let mut write_error = None;
    let stats = engine::run_tasks(&config.engine, tasks, interrupt, |outcome| {
        let result = match outcome {
            TaskOutcome::Done(result) => result,
            TaskOutcome::Failed { task, reason } => {
                let mut result = FetchResult::engine_failure(&task.fetch, reason);
                if interrupt.is_set() {
                    // A worker process stopped because of Ctrl-C.
                    result.status = Status::Interrupted;
                }
                result
            }
        };
        progress.ended(result.index, result.bytes);
        summary.add(&result);
        if write_error.is_none()
            && let Err(e) = progress.suspend(|| report.record(result))
        {
            // A closed pipe or a full disk: stop starting downloads.
            write_error = Some(e);
            interrupt.trigger();
        }
    })?;
    // Every name reported was synced with its directory before its result
    // came (see `commit`): nothing is left to sync here.
    progress.finish();
    summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(e) = write_error {
        return Err(e).context("cannot write the report");
    }
    if stats.interrupted {
        summary.interrupted = true;
        summary.raise(Status::Interrupted.exit_code());
    }
    report.finish(&summary).and_then(report::Paced::close).context("cannot write the report")?;
    Ok(summary)
}
