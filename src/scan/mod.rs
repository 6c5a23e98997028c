//! What a port scan is: targets × ports → one [`ProbeTask`] each, run on any
//! engine, results streamed into a [`Report`].
//!
//! - [`target`]: addresses, CIDR blocks, ranges, host names;
//! - [`ports`]: port specifications and the built-in top-ports list;
//! - [`probe`]: one connect probe and nmap's state/reason semantics;
//! - [`report`]: the output formats.
//!
//! This module only builds the task stream and consumes outcomes; how the
//! probes run concurrently is the engine's business.

pub mod ports;
pub mod probe;
pub mod report;
pub mod target;
pub mod top_ports;

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{self, EngineConfig, EngineKind, Interrupt, TaskOutcome};
use crate::output::AtomicFile;
pub use ports::PortList;
pub use probe::{PortState, ProbeResult, ProbeTask, Reason};
pub use report::{Counts, Format, Report, Summary};
pub use target::{Family, TargetError, TargetSet};

/// A validated scan request.
#[derive(Clone, Debug)]
pub struct ScanConfig {
    /// Addresses to scan (host names already resolved).
    pub targets: TargetSet,
    /// Targets that were skipped (unresolvable), reported with the results.
    pub skipped: Vec<TargetError>,
    /// Ports to probe on every address.
    pub ports: PortList,
    /// Which engine, how many probes in flight.
    pub engine: EngineConfig,
    /// How long one connect attempt may take.
    pub timeout: Duration,
    /// Extra attempts for a probe that got no answer.
    pub retries: u8,
    /// Output format.
    pub format: Format,
    /// Write the results here instead of stdout (atomically).
    pub output: Option<PathBuf>,
    /// List only open ports.
    pub open_only: bool,
    /// Draw a progress bar on stderr (only honoured on a terminal).
    pub progress: bool,
    /// Say more on stderr.
    pub verbose: bool,
}

/// How a scan ended.
#[derive(Clone, Debug)]
pub struct ScanOutcome {
    /// The summary that was printed.
    pub summary: Summary,
}

/// The task stream: every address, every port, address-major.
fn tasks(config: &ScanConfig) -> impl Iterator<Item = ProbeTask> + '_ {
    config.targets.blocks.iter().enumerate().flat_map(move |(block, b)| {
        let block = u32::try_from(block).unwrap_or(u32::MAX);
        (0..b.count).flat_map(move |i| {
            let ip = b.nth(i);
            config.ports.as_slice().iter().map(move |&port| ProbeTask {
                block,
                ip,
                port,
                timeout: config.timeout,
                retries: config.retries,
            })
        })
    })
}

/// File descriptors one in-flight task costs on each engine (processes: the
/// two pipe ends the parent holds per worker).
fn fds_per_slot(kind: EngineKind) -> usize {
    match kind {
        EngineKind::Processes => 3,
        EngineKind::Threads | EngineKind::Async => 1,
    }
}

/// Runs the scan, writing results as configured. Ctrl-C (via `interrupt`)
/// stops new probes; what was found is still written.
pub fn run(config: &ScanConfig, interrupt: &Interrupt) -> anyhow::Result<ScanOutcome> {
    let mut engine = config.engine.clone();
    let fd_limit = crate::sys::raise_nofile_limit();
    let budget = (fd_limit.saturating_sub(64) as usize / fds_per_slot(engine.kind)).max(1);
    if engine.concurrency > budget {
        if config.verbose {
            eprintln!("trident: concurrency {} lowered to {budget} (open-file limit {fd_limit})", engine.concurrency);
        }
        engine.concurrency = budget;
    }
    for skipped in &config.skipped {
        eprintln!("trident: skipping target: {skipped}");
    }
    let hosts = u64::try_from(config.targets.len()).unwrap_or(u64::MAX);
    let total = hosts.saturating_mul(config.ports.len() as u64);
    if config.verbose {
        eprintln!(
            "trident: scanning {hosts} address(es) x {} port(s) with {} (concurrency {}, timeout {:?}, retries {})",
            config.ports.len(),
            engine.kind,
            engine.concurrency,
            config.timeout,
            config.retries
        );
    }

    let (sink, atomic) = match &config.output {
        Some(path) => {
            let file = AtomicFile::create(path)?;
            (Sink::File(BufWriter::new(file.file()?)), Some(file))
        }
        None => (Sink::Stdout(BufWriter::new(io::stdout())), None),
    };
    let mut report = Report::new(config.format, config.open_only, sink);
    let bar = progress_bar(config.progress, total);
    let hosts_by_block: Vec<Option<Arc<str>>> = config.targets.blocks.iter().map(|b| b.host.clone()).collect();

    let started = Instant::now();
    let mut write_error: Option<io::Error> = None;
    let mut failed = 0u64;
    let mut open = 0u64;
    let stats = engine::run_tasks(&engine, tasks(config), interrupt, |outcome| match outcome {
        TaskOutcome::Done(result) => {
            if result.state == PortState::Open {
                open += 1;
                bar.set_message(format!("{open} open"));
            }
            bar.inc(1);
            if write_error.is_some() {
                return;
            }
            let host = hosts_by_block.get(result.block as usize).and_then(Option::as_ref);
            if let Err(e) = report.record(host, result) {
                // A closed pipe (`| head`) or a full disk: stop probing.
                write_error = Some(e);
                interrupt.trigger();
            }
        }
        TaskOutcome::Failed { task, reason } => {
            bar.inc(1);
            failed += 1;
            eprintln!("trident: probe of {} port {} failed: {reason}", task.ip, task.port);
        }
    })?;
    bar.finish_and_clear();

    if let Some(e) = write_error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Ok(ScanOutcome { summary: Summary { interrupted: false, ..Summary::default() } });
        }
        return Err(e).context("cannot write the results");
    }
    let summary = Summary {
        engine: engine.kind.name(),
        concurrency: engine.concurrency,
        hosts,
        ports_per_host: config.ports.len() as u64,
        counts: report.counts(),
        failed_probes: failed,
        interrupted: stats.interrupted,
        elapsed: started.elapsed(),
    };
    match report.finish(&summary, &config.skipped) {
        Ok(Sink::File(w)) => {
            w.into_inner().map_err(io::IntoInnerError::into_error).context("cannot write the results")?;
            if let Some(file) = atomic {
                file.commit()?;
            }
        }
        Ok(Sink::Stdout(_)) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e).context("cannot write the results"),
    }
    Ok(ScanOutcome { summary })
}

fn progress_bar(wanted: bool, total: u64) -> ProgressBar {
    if !wanted || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10));
    let style =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {human_pos}/{human_len} ports  {msg}  {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message("0 open");
    bar
}

/// Where results go: stdout or the temporary file behind `-o`.
enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File(BufWriter<File>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(w) => w.write(buf),
            Sink::File(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(w) => w.flush(),
            Sink::File(w) => w.flush(),
        }
    }
}
