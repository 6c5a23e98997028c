//! Running a scan: calibration, the main round, retry rounds, reporting.
//!
//! 1. **Calibration**: the first few probes of the order are sent with a
//!    short timeout (50 ms, then 250 ms) until one answers, so the RTT
//!    estimate exists before thousands of probes are launched; otherwise
//!    every probe in the first wave would wait the 1 s initial timeout on a
//!    filtered port. Calibration answers are real results; silent
//!    calibration probes go back to the front of the main round.
//! 2. **Round 0** probes the whole space (this shard of it) in permuted
//!    order, each probe with the current timeout of its target.
//! 3. **Retry rounds** re-probe only the ports that stayed silent, for as
//!    long as the retry policy asks given every answer so far (see
//!    `timing`).
//!
//! Answers are reported as they arrive; ports silent after the last round
//! are reported `filtered/no-response`. Every round is one `run_tasks`
//! call, so the rounds run on whichever engine was chosen.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::timing::Evidence;
use super::{
    Order, PortState, ProbeResult, ProbeTask, Reason, Report, ScanConfig, ScanOutcome, Space, Summary, Timing,
};
use crate::engine::{self, EngineConfig, EngineKind, Interrupt, RunStats, TaskOutcome};
use crate::output::AtomicFile;

/// Probes per calibration step, and the timeouts tried in turn.
const CALIBRATION_PROBES: usize = 16;
const CALIBRATION_TIMEOUTS: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(250)];

/// File descriptors one in-flight task costs on each engine (processes: the
/// two pipe ends the parent holds per worker).
fn fds_per_slot(kind: EngineKind) -> usize {
    match kind {
        EngineKind::Processes => 3,
        EngineKind::Threads | EngineKind::Async => 1,
    }
}

/// A probe target: (block, address, port).
type Probe = (u32, IpAddr, u16);

/// The scan's mutable state. Everything is behind `Cell`/`RefCell` because
/// two closures use it during a round, on the same thread: the task
/// iterator (reads the timing) and the outcome callback (updates it all).
struct Scanner<'c> {
    config: &'c ScanConfig,
    report: RefCell<Report<Sink>>,
    timing: RefCell<Timing>,
    /// Every answer so far, by probe number (drives the retry policy).
    evidence: RefCell<Evidence>,
    silent: RefCell<Vec<Probe>>,
    bar: ProgressBar,
    hosts_by_block: Vec<Option<Arc<str>>>,
    write_error: RefCell<Option<io::Error>>,
    failed: Cell<u64>,
    open: Cell<u64>,
    recovered: Cell<usize>,
}

impl Scanner<'_> {
    fn task(&self, (block, ip, port): Probe, retry: u8, timeout: Option<Duration>) -> ProbeTask {
        let timeout = timeout.unwrap_or_else(|| self.timing.borrow().timeout(ip));
        ProbeTask { block, ip, port, timeout, retry, banner: self.config.banner }
    }

    /// Runs one round of `probes` on the engine.
    fn round(
        &self,
        engine: &EngineConfig,
        interrupt: &Interrupt,
        probes: impl Iterator<Item = Probe>,
        retry: u8,
        timeout: Option<Duration>,
    ) -> anyhow::Result<RunStats> {
        let tasks = probes.map(|p| self.task(p, retry, timeout));
        Ok(engine::run_tasks(engine, tasks, interrupt, |outcome| self.take(outcome, retry, interrupt))?)
    }

    fn take(&self, outcome: TaskOutcome<ProbeTask>, retry: u8, interrupt: &Interrupt) {
        let result = match outcome {
            TaskOutcome::Done(result) => result,
            TaskOutcome::Failed { task, reason } => {
                self.bar.inc(1);
                self.failed.set(self.failed.get() + 1);
                eprintln!("trident: probe of {} port {} failed: {reason}", task.ip, task.port);
                return;
            }
        };
        if result.is_silent() {
            self.silent.borrow_mut().push((result.block, result.ip, result.port));
            return;
        }
        if let Some(rtt) = result.rtt_us {
            self.timing.borrow_mut().observe(result.ip, Duration::from_micros(rtt));
        }
        self.evidence.borrow_mut().count(result.tries, result.state == PortState::Open);
        if retry > 0 {
            self.recovered.set(self.recovered.get() + 1);
        }
        self.record(result, interrupt);
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
    /// something answers; returns the silent ones for round 0.
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
            self.round(&small, interrupt, batch.into_iter(), 0, Some(timeout))?;
            requeue.append(&mut self.silent.borrow_mut());
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

/// Runs the scan, writing results as configured. Ctrl-C (via `interrupt`)
/// stops new probes; what was found is still written.
pub fn run(config: &ScanConfig, interrupt: &Interrupt) -> anyhow::Result<ScanOutcome> {
    let mut engine = config.engine.clone();
    // Probes on this process's threads may share a source port; worker
    // processes each picking one could meet in a simultaneous open.
    super::connect::share_source_port(engine.kind != EngineKind::Processes);
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
    let scanner = Scanner {
        config,
        report: RefCell::new(Report::new(config.format, config.open_only, sink)),
        timing: RefCell::new(Timing::new(config.timing)),
        evidence: RefCell::new(Evidence::default()),
        silent: RefCell::new(Vec::new()),
        bar: progress_bar(config.progress, space.total.div_ceil(config.shard.count)),
        hosts_by_block: config.targets.blocks.iter().map(|b| b.host.clone()).collect(),
        write_error: RefCell::new(None),
        failed: Cell::new(0),
        open: Cell::new(0),
        recovered: Cell::new(0),
    };

    let started = Instant::now();
    let mut order = Order::new(space.total, config.seed, config.shard).map(|i| space.locate(i));
    let requeued = scanner.calibrate(&engine, interrupt, &mut order)?;
    let mut stats = scanner.round(&engine, interrupt, requeued.into_iter().chain(order), 0, None)?;
    let mut retry_rounds = 0u8;
    let mut recovered_last = None;
    while !stats.interrupted && !interrupt.is_set() {
        let silent = scanner.silent.borrow().len();
        let tries = u32::from(retry_rounds) + 1;
        if silent == 0 || !config.timing.retries.wants(tries, &scanner.evidence.borrow()) {
            break;
        }
        retry_rounds += 1;
        if config.verbose {
            eprintln!(
                "trident: {:.3}s: retry round {retry_rounds}: {silent} silent port(s){}; {}",
                started.elapsed().as_secs_f64(),
                recovered_last.map(|r| format!(", the last retry recovered {r}")).unwrap_or_default(),
                scanner.timing.borrow().describe()
            );
        }
        let batch = std::mem::take(&mut *scanner.silent.borrow_mut());
        scanner.recovered.set(0);
        stats = scanner.round(&engine, interrupt, batch.into_iter(), retry_rounds, None)?;
        recovered_last = Some(scanner.recovered.get());
    }
    let interrupted = (stats.interrupted || interrupt.is_set()) && scanner.write_error.borrow().is_none();

    // What is still silent after the last round is filtered.
    for (block, ip, port) in std::mem::take(&mut *scanner.silent.borrow_mut()) {
        let result = ProbeResult {
            block,
            ip,
            port,
            state: PortState::Filtered,
            reason: Reason::NoResponse,
            rtt_us: None,
            tries: u32::from(retry_rounds) + 1,
            error: None,
            banner: None,
        };
        scanner.record(result, interrupt);
    }
    scanner.bar.finish_and_clear();

    if let Some(e) = scanner.write_error.take() {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Ok(ScanOutcome { summary: Summary::default() });
        }
        return Err(e).context("cannot write the results");
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
