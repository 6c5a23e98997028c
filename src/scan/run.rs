//! Running a scan: calibration, then every probe in rounds per window.
//!
//! 1. **Calibration**: the first few probes of the order are sent with a
//!    short timeout (50 ms, then 250 ms) until one answers, so the RTT
//!    estimate exists before thousands of probes are launched; otherwise
//!    every probe in the first wave would wait the 1 s initial timeout on a
//!    filtered port. Calibration answers are real results; silent
//!    calibration probes go back to the front of the order.
//! 2. **Rounds per window** (`rounds.rs`): the permuted order is cut into
//!    windows of a few thousand probes; each window's silent ports are
//!    probed again, ahead of new probes, for as long as the retry policy
//!    asks given every answer so far (see `timing`), then reported
//!    `filtered/no-response`. All of it is one stream of tasks on the
//!    chosen engine; when the order is exhausted, the last windows' retry
//!    batches run as further streams.
//!
//! Memory is bounded by the concurrency and the window, not the target:
//! only the windows in progress hold silent probes, and the report keeps
//! what its format prints (see `report`).

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::host_clock::HostClock;
use super::outputs::Outputs;
use super::rounds::{Probe, Rounds, window_size};
use super::{Order, PortState, ProbeResult, ProbeTask, Reason, ScanConfig, ScanOutcome, Space, Summary, Timing};
use crate::engine::{self, EngineConfig, Interrupt, RunStats, TaskOutcome};

/// Probes per calibration step, and the timeouts tried in turn.
const CALIBRATION_PROBES: usize = 16;
const CALIBRATION_TIMEOUTS: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(250)];

/// The scan's mutable state. Everything is behind `Cell`/`RefCell` because
/// two closures use it during a stream, on the same thread: the task
/// iterator (reads the timing, hands out probes) and the outcome callback
/// (updates it all).
struct Scanner<'c> {
    config: &'c ScanConfig,
    report: RefCell<Outputs>,
    timing: RefCell<Timing>,
    rounds: RefCell<Rounds>,
    bar: ProgressBar,
    hosts_by_block: Vec<Option<Arc<str>>>,
    write_error: RefCell<Option<io::Error>>,
    failed: Cell<u64>,
    open: Cell<u64>,
    /// Probes handed to the engine (retries included), for `--min-rate`.
    sent: Cell<u64>,
}

impl Scanner<'_> {
    fn task(&self, (block, ip, port): Probe, retry: u8, timeout: Option<Duration>) -> ProbeTask {
        let timeout = timeout.unwrap_or_else(|| self.timing.borrow().timeout(ip));
        self.sent.set(self.sent.get() + 1);
        ProbeTask { block, ip, port, timeout, retry, banner: self.config.banner, device: self.config.device }
    }

    /// Runs probes from `order` and ready retries on the engine until
    /// neither has one; outcomes go through the rounds.
    fn stream(
        &self,
        engine: &EngineConfig,
        interrupt: &Interrupt,
        order: &mut impl Iterator<Item = Probe>,
    ) -> anyhow::Result<RunStats> {
        let tasks = std::iter::from_fn(|| {
            let (probe, retry) = self.rounds.borrow_mut().next(order)?;
            self.report_finals(interrupt);
            Some(self.task(probe, retry, None))
        });
        let stats = engine::run_tasks(engine, tasks, interrupt, |outcome| {
            self.take(outcome, interrupt);
            self.report_finals(interrupt);
        })?;
        self.report_finals(interrupt);
        Ok(stats)
    }

    fn take(&self, outcome: TaskOutcome<ProbeTask>, interrupt: &Interrupt) {
        let result = match outcome {
            TaskOutcome::Done(result) => result,
            TaskOutcome::Failed { task, reason } => {
                self.rounds.borrow_mut().failed((task.block, task.ip, task.port));
                self.bar.inc(1);
                self.failed.set(self.failed.get() + 1);
                eprintln!("trident: probe of {} port {} failed: {reason}", task.ip, task.port);
                return;
            }
        };
        let probe = (result.block, result.ip, result.port);
        if result.is_silent() {
            self.rounds.borrow_mut().outcome(probe, result.tries, None);
            return;
        }
        if let Some(rtt) = result.rtt_us {
            self.timing.borrow_mut().observe(result.ip, Duration::from_micros(rtt));
        }
        self.rounds.borrow_mut().outcome(probe, result.tries, Some(result.state == PortState::Open));
        self.record(result, interrupt);
    }

    /// Reports the probes the rounds made final (silent on every try).
    fn report_finals(&self, interrupt: &Interrupt) {
        let finals: Vec<(Probe, u32)> = self.rounds.borrow_mut().take_finals().collect();
        for (probe, tries) in finals {
            self.record(filtered(probe, tries), interrupt);
        }
    }

    fn record(&self, result: ProbeResult, interrupt: &Interrupt) {
        if result.state == PortState::Open {
            self.open.set(self.open.get() + 1);
            self.bar.set_message(format!("{} open", self.open.get()));
        }
        self.bar.inc(1);
        if self.write_error.borrow().is_some() {
            return;
        }
        let host = self.hosts_by_block.get(result.block as usize).and_then(Option::as_ref);
        if let Err(e) = self.report.borrow_mut().record(host, result) {
            // A closed pipe (`| head`) or a full disk: stop probing.
            *self.write_error.borrow_mut() = Some(e);
            interrupt.trigger();
        }
    }

    /// Probes the first few ports of `order` with short timeouts until
    /// something answers; returns the silent ones, to probe again first.
    fn calibrate(
        &self,
        engine: &EngineConfig,
        interrupt: &Interrupt,
        order: &mut impl Iterator<Item = Probe>,
    ) -> anyhow::Result<Vec<Probe>> {
        let mut requeue = Vec::new();
        if self.config.timing.fixed.is_some() {
            return Ok(requeue);
        }
        let small = engine.clone().with_concurrency(CALIBRATION_PROBES);
        for timeout in CALIBRATION_TIMEOUTS {
            let batch: Vec<Probe> = order.by_ref().take(CALIBRATION_PROBES).collect();
            if batch.is_empty() || interrupt.is_set() {
                break;
            }
            let tasks = batch.into_iter().map(|p| self.task(p, 0, Some(timeout)));
            engine::run_tasks(&small, tasks, interrupt, |outcome| match outcome {
                TaskOutcome::Done(r) if r.is_silent() => requeue.push((r.block, r.ip, r.port)),
                TaskOutcome::Done(r) => {
                    if let Some(rtt) = r.rtt_us {
                        self.timing.borrow_mut().observe(r.ip, Duration::from_micros(rtt));
                    }
                    self.rounds.borrow_mut().count_calibration(r.tries, r.state == PortState::Open);
                    self.record(r, interrupt);
                }
                // Not answered: probed again in the main stream.
                TaskOutcome::Failed { task, .. } => requeue.push((task.block, task.ip, task.port)),
            })?;
            if self.open.get() > 0 || self.timing.borrow().has_samples() {
                break;
            }
        }
        if self.config.verbose {
            let t = self.timing.borrow();
            eprintln!("trident: calibrated: {}", t.describe());
        }
        Ok(requeue)
    }
}

/// A port silent on all its `tries` probes.
fn filtered((block, ip, port): Probe, tries: u32) -> ProbeResult {
    ProbeResult {
        block,
        ip,
        port,
        state: PortState::Filtered,
        reason: Reason::NoResponse,
        rtt_us: None,
        tries,
        error: None,
        banner: None,
    }
}

/// Runs the scan, writing results as configured. Ctrl-C (via `interrupt`)
/// stops new probes; what was found is still written.
pub fn run(config: &ScanConfig, interrupt: &Interrupt) -> anyhow::Result<ScanOutcome> {
    let mut engine = config.engine.clone();
    // Probes on this process's threads may share a source port; worker
    // processes each picking one could meet in a simultaneous open.
    super::connect::share_source_port(engine.kind.tasks_share_process());
    if let Some(floor) = config.min_rate {
        // A probe holds its slot for its timeout at most: the fixed one, or
        // the adaptive one's start (answers usually make it much shorter).
        let needed = super::timing::concurrency_for_rate(floor, config.timing.fixed.unwrap_or(config.timing.initial));
        if engine.concurrency < needed {
            if config.verbose {
                eprintln!("trident: concurrency {} raised to {needed} for --min-rate {floor}", engine.concurrency);
            }
            engine.concurrency = needed;
        }
    }
    let fd_limit = crate::sys::raise_nofile_limit();
    let budget = (fd_limit.saturating_sub(64) as usize / engine.kind.fds_per_task()).max(1);
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
    let shard_total = space.total.div_ceil(config.shard.count);
    let window = window_size(engine.concurrency);
    if config.verbose {
        eprintln!(
            "trident: scanning {hosts} address(es) x {} port(s) with {} (concurrency {}, shard {}, seed {}, window {window})",
            config.ports.len(),
            engine.kind,
            engine.concurrency,
            config.shard,
            config.seed,
        );
    }

    let outputs = Outputs::open(config, shard_total, hosts)?;
    let scanner = Scanner {
        config,
        report: RefCell::new(outputs),
        timing: RefCell::new(Timing::new(config.timing)),
        rounds: RefCell::new(Rounds::new(window, shard_total, config.timing.retries)),
        bar: progress_bar(config.progress, shard_total),
        hosts_by_block: config.targets.blocks.iter().map(|b| b.host.clone()).collect(),
        write_error: RefCell::new(None),
        failed: Cell::new(0),
        open: Cell::new(0),
        sent: Cell::new(0),
    };

    let started = Instant::now();
    let per_host = config.ports.len().max(1) as u64;
    let mut clock = config.host_timeout.map(|limit| HostClock::new(limit, hosts));
    let mut order = Order::new(space.total, config.seed, config.shard)
        .filter(|i| clock.as_mut().is_none_or(|c| c.admits(i / per_host)))
        .map(|i| space.locate(i));
    let requeued = scanner.calibrate(&engine, interrupt, &mut order)?;
    let mut order = requeued.into_iter().chain(order);
    let mut stats = scanner.stream(&engine, interrupt, &mut order)?;
    // The order is done; the last windows' retries run as further streams.
    while !stats.interrupted && !interrupt.is_set() && scanner.rounds.borrow().has_queued() {
        stats = scanner.stream(&engine, interrupt, &mut order)?;
    }
    let interrupted = (stats.interrupted || interrupt.is_set()) && scanner.write_error.borrow().is_none();
    drop(order);
    if let (Some(clock), Some(limit)) = (&clock, config.host_timeout) {
        let (count, first) = clock.timed_out();
        if count > 0 {
            let named: Vec<String> = first.iter().map(|&h| space.locate(h * per_host).1.to_string()).collect();
            let more = if count > first.len() as u64 { ", ..." } else { "" };
            eprintln!(
                "trident: {count} address(es) ran out of --host-timeout {limit:?}, their other ports not probed: {}{more}",
                named.join(", ")
            );
        }
    }

    // What is still silent when the scan stops is filtered.
    let left = scanner.rounds.borrow_mut().abandon();
    for (probe, tries) in left {
        scanner.record(filtered(probe, tries), interrupt);
    }
    scanner.bar.finish_and_clear();
    if let Some(floor) = config.min_rate.filter(|_| !interrupted) {
        let shortfall = super::timing::rate_shortfall(floor, scanner.sent.get(), started.elapsed(), engine.concurrency);
        if let Some(why) = shortfall {
            eprintln!("trident: warning: {why}");
        }
    }
    if config.verbose {
        eprintln!(
            "trident: {:.3}s: done; at most {} silent probe(s) held at once; {}",
            started.elapsed().as_secs_f64(),
            scanner.rounds.borrow().peak_held,
            scanner.timing.borrow().describe()
        );
    }

    if let Some(e) = scanner.write_error.take() {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Ok(ScanOutcome { summary: Summary::default() });
        }
        return Err(e.into());
    }
    let report = scanner.report.into_inner();
    let summary = Summary {
        engine: engine.kind.name(),
        concurrency: engine.concurrency,
        hosts,
        ports_per_host: config.ports.len() as u64,
        counts: report.counts(),
        failed_probes: scanner.failed.get(),
        interrupted,
        elapsed: started.elapsed(),
    };
    report.finish(&summary, &config.skipped)?;
    Ok(ScanOutcome { summary })
}

/// `--list-targets`: prints the targets and the size of the scan (see
/// [`super::Plan`]) without sending a probe.
pub fn list_targets(config: &ScanConfig) -> anyhow::Result<ScanOutcome> {
    for skipped in &config.skipped {
        eprintln!("trident: skipping target: {skipped}");
    }
    let plan = super::Plan::new(&config.targets, &config.ports, config.shard);
    plan.write_listing(&config.targets, &mut io::stdout().lock())?;
    Ok(ScanOutcome { summary: Summary::default() })
}

fn progress_bar(wanted: bool, total: u64) -> ProgressBar {
    if !wanted || !crate::term::progress_wanted() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10));
    let style =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {human_pos}/{human_len} ports  {msg}  {rate}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("rate", crate::term::rate_key)
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message("0 open");
    bar
}
