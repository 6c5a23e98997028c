//! What a port scan is: targets × ports → one [`ProbeTask`] each, run on any
//! engine, results streamed into a [`Report`].
//!
//! - [`target`]: addresses, CIDR blocks, ranges, host names;
//! - [`ports`]: port specifications and the built-in top-ports list;
//! - [`probe`]: one connect probe and nmap's state/reason semantics;
//! - [`timing`]: adaptive timeouts and retry rounds;
//! - [`order`]: the permuted probe order and shards;
//! - [`report`]: the output formats ([`nmap_format`]: nmap's grep and XML);
//! - [`services`]: service names of ports (`/etc/services`).
//!
//! This module only builds the task stream and consumes outcomes; how the
//! probes run concurrently is the engine's business.

pub mod nmap_format;
pub mod order;
pub mod ports;
pub mod probe;
pub mod report;
pub mod services;
pub mod target;
pub mod timing;
pub mod top_ports;

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{self, EngineConfig, EngineKind, Interrupt, TaskOutcome};
use crate::error::BadInput;
use crate::output::AtomicFile;
pub use order::{Order, Shard};
pub use ports::PortList;
pub use probe::{PortState, ProbeResult, ProbeTask, Reason};
pub use report::{Counts, Format, Report, Summary};
pub use target::{Family, TargetError, TargetSet};
pub use timing::{Retries, Timing, TimingConfig};

/// A validated scan request.
#[derive(Clone, Debug)]
pub struct ScanConfig {
    /// Addresses to scan (host names already resolved).
    pub targets: TargetSet,
    /// Targets that were skipped (unresolvable), reported with the results.
    pub skipped: Vec<TargetError>,
    /// Ports to probe on every address.
    pub ports: PortList,
    /// Which engine, how many probes in flight, how fast.
    pub engine: EngineConfig,
    /// Timeouts and retries.
    pub timing: TimingConfig,
    /// Key of the probe order (same seed, same order: needed for shards).
    pub seed: u64,
    /// The part of the (address × port) space this run scans.
    pub shard: Shard,
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

/// The (address × port) space, indexed `0..total` host-major, so that a
/// permutation of indices is a permutation of probes.
struct Space<'a> {
    targets: &'a TargetSet,
    ports: &'a [u16],
    /// Global index of each block's first address.
    block_starts: Vec<u64>,
    total: u64,
}

impl<'a> Space<'a> {
    /// Largest space a scan may have (the permutation works below 2^62).
    const LIMIT: u64 = 1 << 62;

    fn new(targets: &'a TargetSet, ports: &'a PortList) -> Result<Self, BadInput> {
        let too_big =
            || BadInput(format!("the scan is too large: more than 2^62 probes ({} ports per address)", ports.len()));
        let mut block_starts = Vec::with_capacity(targets.blocks.len());
        let mut hosts: u64 = 0;
        for b in &targets.blocks {
            block_starts.push(hosts);
            hosts = u64::try_from(b.count).ok().and_then(|c| hosts.checked_add(c)).ok_or_else(too_big)?;
        }
        let total = hosts.checked_mul(ports.len() as u64).filter(|t| *t < Self::LIMIT).ok_or_else(too_big)?;
        Ok(Space { targets, ports: ports.as_slice(), block_starts, total })
    }

    fn hosts(&self) -> u64 {
        self.total / self.ports.len().max(1) as u64
    }

    /// The probe with global index `i`: (block, address, port).
    fn locate(&self, i: u64) -> (u32, IpAddr, u16) {
        let per_host = self.ports.len() as u64;
        let (host, port) = (i / per_host, self.ports[(i % per_host) as usize]);
        let block = self.block_starts.partition_point(|&start| start <= host) - 1;
        let ip = self.targets.blocks[block].nth(u128::from(host - self.block_starts[block]));
        (u32::try_from(block).unwrap_or(u32::MAX), ip, port)
    }
}

/// File descriptors one in-flight task costs on each engine (processes: the
/// two pipe ends the parent holds per worker).
fn fds_per_slot(kind: EngineKind) -> usize {
    match kind {
        EngineKind::Processes => 3,
        EngineKind::Threads | EngineKind::Async => 1,
    }
}

/// A port that has not answered yet: probed again in the next round.
#[derive(Clone, Copy, Debug)]
struct Silent {
    block: u32,
    ip: IpAddr,
    port: u16,
}

/// Runs the scan, writing results as configured. Ctrl-C (via `interrupt`)
/// stops new probes; what was found is still written.
///
/// Round 0 probes the whole space (this shard of it) in permuted order;
/// each later round re-probes only the ports that stayed silent, with
/// timeouts from the RTTs measured so far, as long as the retry policy
/// asks for it (see [`timing`]). Answers are reported as they come; ports
/// still silent after the last round are reported `filtered/no-response`.
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
    let space = Space::new(&config.targets, &config.ports)?;
    let hosts = space.hosts();
    if config.verbose {
        eprintln!(
            "trident: scanning {hosts} address(es) x {} port(s) with {} (concurrency {}, shard {}, seed {})",
            config.ports.len(),
            engine.kind,
            engine.concurrency,
            config.shard,
            config.seed,
        );
    }

    let (sink, atomic) = match &config.output {
        Some(path) => {
            let file = AtomicFile::create(path)?;
            (Sink::File(BufWriter::new(file.file()?)), Some(file))
        }
        None => (Sink::Stdout(BufWriter::new(io::stdout())), None),
    };
    let report = RefCell::new(Report::new(config.format, config.open_only, sink));
    let bar = progress_bar(config.progress, space.total.div_ceil(config.shard.count));
    let hosts_by_block: Vec<Option<Arc<str>>> = config.targets.blocks.iter().map(|b| b.host.clone()).collect();
    let host_of = |block: u32| hosts_by_block.get(block as usize).and_then(Option::as_ref);
    let timing = RefCell::new(Timing::new(config.timing));

    let started = Instant::now();
    let mut write_error: Option<io::Error> = None;
    let mut failed = 0u64;
    let mut open = 0u64;
    let mut interrupted = false;
    let mut silent: Vec<Silent> = Vec::new();
    let mut retry_rounds = 0u8;
    let mut recovered_last: Option<usize> = None;

    loop {
        let round = retry_rounds;
        let batch = std::mem::take(&mut silent);
        let mut recovered = 0usize;
        let probe = |(block, ip, port): (u32, IpAddr, u16)| ProbeTask {
            block,
            ip,
            port,
            timeout: timing.borrow().timeout(ip),
            retry: round,
        };
        let on_output = |outcome: TaskOutcome<ProbeTask>| match outcome {
            TaskOutcome::Done(result) => {
                if result.is_silent() {
                    silent.push(Silent { block: result.block, ip: result.ip, port: result.port });
                    return;
                }
                if let Some(rtt) = result.rtt_us {
                    timing.borrow_mut().observe(result.ip, std::time::Duration::from_micros(rtt));
                }
                if round > 0 {
                    recovered += 1;
                }
                if result.state == PortState::Open {
                    open += 1;
                    bar.set_message(format!("{open} open"));
                }
                bar.inc(1);
                if write_error.is_none() {
                    if let Err(e) = report.borrow_mut().record(host_of(result.block), result) {
                        // A closed pipe (`| head`) or a full disk: stop probing.
                        write_error = Some(e);
                        interrupt.trigger();
                    }
                }
            }
            TaskOutcome::Failed { task, reason } => {
                bar.inc(1);
                failed += 1;
                eprintln!("trident: probe of {} port {} failed: {reason}", task.ip, task.port);
            }
        };
        let stats = if round == 0 {
            let tasks = Order::new(space.total, config.seed, config.shard).map(|i| probe(space.locate(i)));
            engine::run_tasks(&engine, tasks, interrupt, on_output)?
        } else {
            let tasks = batch.iter().map(|s| probe((s.block, s.ip, s.port)));
            engine::run_tasks(&engine, tasks, interrupt, on_output)?
        };
        if round > 0 {
            recovered_last = Some(recovered);
        }
        if stats.interrupted || interrupt.is_set() {
            interrupted = write_error.is_none();
            break;
        }
        if !config.timing.retries.another_round(retry_rounds, silent.len(), recovered_last) {
            break;
        }
        retry_rounds += 1;
        if config.verbose {
            eprintln!(
                "trident: retry round {retry_rounds}: {} silent port(s){}",
                silent.len(),
                recovered_last.map(|r| format!(", last round recovered {r}")).unwrap_or_default()
            );
        }
    }
    // What is still silent after the last round is filtered.
    let mut report = report.into_inner();
    for s in silent {
        bar.inc(1);
        let result = ProbeResult {
            block: s.block,
            ip: s.ip,
            port: s.port,
            state: PortState::Filtered,
            reason: Reason::NoResponse,
            rtt_us: None,
            tries: u32::from(retry_rounds) + 1,
            error: None,
        };
        if write_error.is_none() {
            if let Err(e) = report.record(host_of(s.block), result) {
                write_error = Some(e);
            }
        }
    }
    bar.finish_and_clear();

    if let Some(e) = write_error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Ok(ScanOutcome { summary: Summary::default() });
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
        interrupted,
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
