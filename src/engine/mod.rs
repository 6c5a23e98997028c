//! How work runs concurrently: the engine layer.
//!
//! A batch job (a port scan, a set of downloads) is a stream of independent
//! [`Task`]s. Each task type says how to run itself blocking (used by the
//! threads and processes engines) and async (used by the tokio engine), and
//! is serialisable so a worker process can receive it over a pipe.
//! [`run_tasks`] runs such a stream on the engine chosen by [`EngineConfig`]
//! and hands every outcome to a callback on the calling thread, as tasks
//! finish.
//!
//! This module knows nothing about ports or URLs: the workloads (`scan/`, ...)
//! define task types, the engines only move them around. The three engines
//! share one meaning of `concurrency`: the maximum number of tasks in flight
//! (threads, worker processes, or futures).

pub mod processes;
mod slot;
pub mod threads;
pub mod tokio;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use slot::release_slot;
pub use threads::JoinGuard;

/// One unit of independent work that any engine can run.
///
/// `Clone` lets an engine keep a copy so that a task whose runner died (a
/// panic, a crashed worker process) is reported or retried, never lost.
pub trait Task: Serialize + DeserializeOwned + Clone + Send + 'static {
    /// What running the task produces; travels back from worker processes.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// The name `trident __worker NAME` uses to pick this task type.
    const NAME: &'static str;

    /// Runs the task on the current thread, blocking it (threads, processes).
    fn run_blocking(self, ctx: &Ctx) -> Self::Output;

    /// Runs the task as a future on a tokio runtime (async engine).
    ///
    /// The engine may poll the future once where it takes the task (inside
    /// the runtime, with a no-op waker) and spawn it only if that poll
    /// leaves it pending, so a task that completes at once costs no tokio
    /// task. Any future that honours the `Future` contract (wake the waker
    /// of the latest poll) works; it must not rely on running in a spawned
    /// task (`tokio::task::id`, task-locals) during its first poll.
    fn run_async(self, ctx: Ctx) -> impl Future<Output = Self::Output> + Send + 'static;
}

/// What an engine gives every task it runs: the run's stop request, which
/// a task that can stop early and keep what it did looks at. On every
/// engine the engine itself sees the stop (its dispatcher's tick looks at
/// the [`Interrupt`], a worker process's watcher gets the parent's wake
/// byte) and wakes [`Ctx::interrupted`], so a task waiting on a silent
/// peer stops at once rather than at its next timeout.
///
/// A clone is one `Arc`; two clones are of the same run ([`Ctx::same_run`]),
/// which lets a workload keep per-thread caches (connection pools) for one
/// run only.
#[derive(Clone, Debug)]
pub struct Ctx(Arc<Stop>);

#[derive(Debug)]
struct Stop {
    /// The run's [`Interrupt`] flag.
    flag: Arc<AtomicBool>,
    /// Set once the waiters were woken.
    woken: AtomicBool,
    /// Wakes every [`Ctx::interrupted`] once the flag is seen set.
    wake: ::tokio::sync::Notify,
}

impl Ctx {
    /// A context whose stop request is `interrupt`.
    pub fn new(interrupt: &Interrupt) -> Self {
        Ctx(Arc::new(Stop {
            flag: interrupt.flag(),
            woken: AtomicBool::new(false),
            wake: ::tokio::sync::Notify::new(),
        }))
    }

    /// Whether the run was asked to stop (Ctrl-C, or a consumer that wants
    /// no more results).
    pub fn cancelled(&self) -> bool {
        self.0.flag.load(Ordering::Relaxed)
    }

    /// Resolves once the run is asked to stop. Registered before the flag
    /// is read, so a wake-up between the two is not lost.
    pub async fn interrupted(&self) {
        let notified = self.0.wake.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if self.cancelled() {
            return;
        }
        notified.await;
    }

    /// Wakes every [`Ctx::interrupted`] once the stop was requested (the
    /// flag is set by signal handlers, which cannot wake a future); `true`
    /// once that is done. Called by the engines as they look at the flag.
    pub(crate) fn wake_if_cancelled(&self) -> bool {
        if !self.cancelled() {
            return false;
        }
        if !self.0.woken.load(Ordering::Relaxed) && !self.0.woken.swap(true, Ordering::SeqCst) {
            self.0.wake.notify_waiters();
        }
        true
    }

    /// Whether `other` is a context of the same run (and the same lane).
    pub fn same_run(&self, other: &Ctx) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Which engine runs the tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// A bounded pool of OS threads, each running one blocking task at a time.
    Threads,
    /// A pool of worker processes (this binary re-run as `trident __worker`).
    Processes,
    /// Futures on a tokio runtime, a bounded number in flight.
    Async,
}

impl EngineKind {
    /// Every engine, in the order reports list them.
    pub const ALL: [EngineKind; 3] = [EngineKind::Threads, EngineKind::Processes, EngineKind::Async];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Threads => "threads",
            EngineKind::Processes => "processes",
            EngineKind::Async => "async",
        }
    }

    /// Tasks in flight when `--concurrency` is not given. Threads and
    /// processes cost a stack or a whole process each, futures a few hundred
    /// bytes, hence the spread.
    pub fn default_concurrency(self) -> usize {
        match self {
            EngineKind::Threads => 512,
            EngineKind::Processes => 64,
            EngineKind::Async => 4096,
        }
    }

    /// Whether tasks run inside this process (threads, async) rather than
    /// each in a worker process of its own: what a task shares with the
    /// others in flight (a source port, a cache) depends on it.
    pub fn tasks_share_process(self) -> bool {
        match self {
            EngineKind::Threads | EngineKind::Async => true,
            EngineKind::Processes => false,
        }
    }

    /// File descriptors this process holds per task in flight, for a task
    /// that holds one (a socket): that one on threads and async; on
    /// processes the socket is the worker's, and this process holds the
    /// worker's pipe ends instead. Divides the open-file limit into a
    /// concurrency that fits.
    pub fn fds_per_task(self) -> usize {
        match self {
            EngineKind::Processes => 3,
            EngineKind::Threads | EngineKind::Async => 1,
        }
    }

    /// Whether a server on this engine has a set number of workers (worker
    /// processes; the async runtime's threads), rather than a thread per
    /// connection (threads).
    pub fn serves_with_workers(self) -> bool {
        match self {
            EngineKind::Processes | EngineKind::Async => true,
            EngineKind::Threads => false,
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "threads" | "thread" => Ok(EngineKind::Threads),
            "processes" | "process" => Ok(EngineKind::Processes),
            "async" | "tokio" => Ok(EngineKind::Async),
            _ => Err(format!("unknown engine {s:?} (expected threads, processes or async)")),
        }
    }
}

/// Which tokio runtime flavour the async engine builds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AsyncRuntime {
    /// Everything on the calling thread.
    CurrentThread,
    /// A work-stealing pool with one thread per core.
    #[default]
    MultiThread,
}

/// Validated engine options, shared by every workload.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Which engine runs the tasks.
    pub kind: EngineKind,
    /// Maximum number of tasks in flight; always at least 1.
    pub concurrency: usize,
    /// Runtime flavour for [`EngineKind::Async`].
    pub async_runtime: AsyncRuntime,
    /// Stack size of pool threads (threads engine), in bytes.
    pub thread_stack: usize,
    /// At most this many task starts per second (`--max-rate`), if set.
    pub max_rate: Option<f64>,
    /// When the next start is due, shared by every run of this config and
    /// its clones: a scan's calibration, main and retry streams are runs of
    /// their own, and the rate (or `--scan-delay`) holds across them.
    pub schedule: PaceSchedule,
}

/// When the next paced start of an [`EngineConfig`]'s runs is due (see
/// [`EngineConfig::schedule`]); clones share it.
#[derive(Clone, Debug, Default)]
pub struct PaceSchedule(Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl PaceSchedule {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<std::time::Instant>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl EngineConfig {
    /// The engine's defaults.
    pub fn new(kind: EngineKind) -> Self {
        EngineConfig {
            kind,
            concurrency: kind.default_concurrency(),
            async_runtime: AsyncRuntime::default(),
            thread_stack: 256 * 1024,
            max_rate: None,
            schedule: PaceSchedule::default(),
        }
    }

    /// The same config with another concurrency (clamped to at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }
}

/// A cooperative stop request, set by Ctrl-C or by a consumer that wants no
/// more results. Engines stop starting tasks once it is set and let the
/// in-flight ones finish.
#[derive(Clone, Debug, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every engine holding this flag to stop.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The shared flag, for signal handlers.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

/// Spaces task starts to honour `max_rate`. Slots are booked on a
/// schedule, so an oversleep (up to `CATCH_UP`) is made up by the next starts
/// instead of lowering the rate; an idle pause never builds up a burst
/// (the old code reset the schedule after every oversleep: `--max-rate
/// 5000` ran at ~1,300/s on tokio, whose sleeps end on a 1 ms tick). Waits shorter
/// than [`Pacer::SLACK`] are not slept (the schedule still advances): the
/// tokio timer rounds every sleep up to a millisecond, which capped
/// `--max-rate 1000000` at about 4,000 starts per second. Starts may
/// come up to `SLACK` early and catch up `CATCH_UP`, so a burst is at most
/// 11 ms worth of the rate.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Option<std::time::Duration>,
    next: std::time::Instant,
    /// The config's schedule: read when the run starts, written back when
    /// it ends (runs of one config never overlap).
    shared: Option<PaceSchedule>,
}

impl Pacer {
    /// The shortest wait worth sleeping.
    pub(crate) const SLACK: std::time::Duration = std::time::Duration::from_millis(1);
    /// How far behind the schedule starts still catch up (a loaded machine
    /// oversleeps by milliseconds); further behind, the schedule restarts.
    const CATCH_UP: std::time::Duration = std::time::Duration::from_millis(10);

    /// The longest wait between starts: a rate so low that its interval
    /// does not fit a `Duration` (1e-30 per second) must not panic, and
    /// waits a day, not forever.
    const MAX_INTERVAL: std::time::Duration = std::time::Duration::from_secs(86_400);

    pub(crate) fn new(max_rate: Option<f64>) -> Self {
        let interval = max_rate.filter(|r| *r > 0.0).map(|r| {
            std::time::Duration::try_from_secs_f64(1.0 / r).unwrap_or(Self::MAX_INTERVAL).min(Self::MAX_INTERVAL)
        });
        Pacer { interval, next: std::time::Instant::now(), shared: None }
    }

    /// The pacer of one run of `config`, going on from where its last run
    /// left the schedule.
    pub(crate) fn for_run(config: &EngineConfig) -> Self {
        let mut pacer = Self::new(config.max_rate);
        if pacer.interval.is_some() {
            let due = *config.schedule.lock();
            pacer.next = due.map_or(pacer.next, |due| due.max(pacer.next));
            pacer.shared = Some(config.schedule.clone());
        }
        pacer
    }

    /// Books the next start; returns how long to wait before it.
    pub(crate) fn book(&mut self) -> std::time::Duration {
        self.book_at(std::time::Instant::now())
    }

    /// [`Pacer::book`] at time `now` (tests give their own clock).
    fn book_at(&mut self, now: std::time::Instant) -> std::time::Duration {
        let Some(interval) = self.interval else { return std::time::Duration::ZERO };
        // Behind by a little (an oversleep): catch up. By more (idle): start afresh.
        if self.next + Self::CATCH_UP < now {
            self.next = now;
        }
        let wait = self.next.saturating_duration_since(now);
        self.next += interval;
        if wait < Self::SLACK { std::time::Duration::ZERO } else { wait }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            *shared.lock() = Some(self.next);
        }
    }
}

/// What became of one task.
#[derive(Debug)]
pub enum TaskOutcome<T: Task> {
    /// The task ran and produced its output.
    Done(T::Output),
    /// The task could not be run to the end: its thread panicked, or the
    /// worker process running it died twice. Never silent.
    Failed {
        /// The task that failed.
        task: T,
        /// Why, in words.
        reason: String,
    },
}

/// Counters about one [`run_tasks`] call.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunStats {
    /// Tasks that produced an output.
    pub done: u64,
    /// Tasks reported as [`TaskOutcome::Failed`].
    pub failed: u64,
    /// Threads, processes or futures started.
    pub runners_started: u64,
    /// Worker processes that died while running a task.
    pub worker_crashes: u64,
    /// Whether the run stopped early because of an [`Interrupt`].
    pub interrupted: bool,
}

/// Why an engine could not run at all (not: why one task failed).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The runtime, a thread or a worker process could not be created.
    #[error("cannot start the {engine} engine: {source}")]
    Start {
        /// Engine name.
        engine: &'static str,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// Worker processes keep dying before finishing anything.
    #[error("worker processes keep dying ({crashes} in a row without finishing a task); last: {last}")]
    WorkersFailing {
        /// Consecutive crashes.
        crashes: u32,
        /// How the last one ended.
        last: String,
    },
}

/// Runs `tasks` on the configured engine, calling `on_output` on this thread
/// for each outcome as soon as it is known (in completion order, not input
/// order). Returns once every task started has been reported, or early (with
/// `interrupted` set) after `interrupt` fires and the in-flight tasks end.
pub fn run_tasks<T, I, F>(
    config: &EngineConfig,
    tasks: I,
    interrupt: &Interrupt,
    on_output: F,
) -> Result<RunStats, EngineError>
where
    T: Task,
    I: IntoIterator<Item = T>,
    F: FnMut(TaskOutcome<T>),
{
    let tasks = tasks.into_iter();
    match config.kind {
        EngineKind::Threads => threads::run(config, tasks, interrupt, on_output),
        EngineKind::Processes => processes::run(config, tasks, interrupt, on_output),
        EngineKind::Async => tokio::run(config, tasks, interrupt, on_output),
    }
}

/// The text of a panic payload, for failure reports.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn the_pacer_sleeps_only_waits_a_timer_can_keep() {
        use std::time::Duration;
        // A clock of the test's own, standing still unless moved: the
        // schedule is checked, not how fast this machine runs the loop.
        let mut fast = Pacer::new(Some(1_000_000.0));
        let now = fast.next;
        assert!((0..500).all(|_| fast.book_at(now).is_zero()), "0.5 ms of a 1M/s schedule is not slept");
        let after: Vec<_> = (0..2_000).map(|_| fast.book_at(now)).collect();
        assert!(after.iter().any(|w| *w >= Pacer::SLACK), "but the schedule is kept: {:?}", after.last());
        assert_eq!(after.last().copied(), Some(Duration::from_micros(2_499)), "one start a microsecond");

        let mut slow = Pacer::new(Some(2.0));
        let start = slow.next;
        assert!(slow.book_at(start).is_zero());
        assert_eq!(slow.book_at(start), Duration::from_millis(500), "2 per second: half a second apart");
        // An oversleep of 5 ms is caught up: the next start is not delayed by it.
        assert_eq!(slow.book_at(start + Duration::from_millis(1_005)), Duration::ZERO);
        assert_eq!(slow.book_at(start + Duration::from_millis(1_005)), Duration::from_millis(495));
        // An idle pause (further behind than CATCH_UP) builds no burst.
        let later = start + Duration::from_secs(10);
        assert!(slow.book_at(later).is_zero());
        assert_eq!(slow.book_at(later), Duration::from_millis(500));

        let mut free = Pacer::new(None);
        assert!((0..10).all(|_| free.book_at(now).is_zero()));

        // Rates too low for a Duration wait a day, without a panic.
        for rate in [1e-30, f64::MIN_POSITIVE, 1e-6] {
            let mut crawl = Pacer::new(Some(rate));
            let start = crawl.next;
            assert!(crawl.book_at(start).is_zero());
            assert_eq!(crawl.book_at(start), Pacer::MAX_INTERVAL, "{rate}");
        }
    }

    #[test]
    fn runs_of_one_config_share_the_schedule() {
        let config = EngineConfig { max_rate: Some(2.0), ..EngineConfig::new(EngineKind::Threads) };
        let mut first = Pacer::for_run(&config);
        let start = first.next;
        assert!(first.book_at(start).is_zero());
        drop(first);
        // The next run (a clone, as a scan's calibration uses) starts where
        // the first left off: half a second after its start, not at once.
        let mut second = Pacer::for_run(&config.clone());
        assert_eq!(second.book_at(start), std::time::Duration::from_millis(500));
        // Without a rate nothing is shared or waited for.
        let free = EngineConfig::new(EngineKind::Threads);
        assert!(Pacer::for_run(&free).shared.is_none());
    }

    /// Squares a number; panics on 13 to exercise failure reporting.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Square(u64);

    impl Task for Square {
        type Output = u64;
        const NAME: &'static str = "test-square";
        fn run_blocking(self, _: &Ctx) -> u64 {
            assert!(self.0 != 13, "unlucky {}", self.0);
            std::thread::sleep(std::time::Duration::from_millis(1));
            self.0 * self.0
        }
        async fn run_async(self, _: Ctx) -> u64 {
            assert!(self.0 != 13, "unlucky {}", self.0);
            ::tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            self.0 * self.0
        }
    }

    /// The in-process engines (processes needs the trident binary; the
    /// integration tests cover it).
    fn in_process() -> Vec<EngineConfig> {
        vec![
            EngineConfig::new(EngineKind::Threads).with_concurrency(7),
            EngineConfig::new(EngineKind::Async).with_concurrency(7),
            EngineConfig { async_runtime: AsyncRuntime::CurrentThread, ..EngineConfig::new(EngineKind::Async) },
        ]
    }

    #[test]
    fn every_task_is_reported_once_and_panics_are_failures() {
        for config in in_process() {
            let mut done = Vec::new();
            let mut failed = Vec::new();
            let stats = run_tasks(&config, (0..100).map(Square), &Interrupt::new(), |o| match o {
                TaskOutcome::Done(v) => done.push(v),
                TaskOutcome::Failed { task, reason } => failed.push((task.0, reason)),
            })
            .unwrap();
            done.sort_unstable();
            let want: Vec<u64> = (0..100).filter(|&n| n != 13).map(|n| n * n).collect();
            assert_eq!(done, want, "{config:?}");
            assert_eq!(failed.len(), 1);
            assert_eq!(failed[0].0, 13);
            assert!(failed[0].1.contains("unlucky 13"), "{}", failed[0].1);
            assert_eq!((stats.done, stats.failed, stats.interrupted), (99, 1, false));
            assert!(stats.runners_started >= 1);
        }
    }

    #[test]
    fn concurrency_bounds_threads_started() {
        let config = EngineConfig::new(EngineKind::Threads).with_concurrency(3);
        let stats = run_tasks(&config, (0..50).map(Square), &Interrupt::new(), |_| {}).unwrap();
        assert!(stats.runners_started <= 3, "{stats:?}");
    }

    #[test]
    fn interrupt_stops_new_work() {
        for config in in_process() {
            let interrupt = Interrupt::new();
            let mut seen = 0;
            let stats = run_tasks(&config, (100..10_000).map(Square), &interrupt, |_| {
                seen += 1;
                if seen == 20 {
                    interrupt.trigger();
                }
            })
            .unwrap();
            assert!(stats.interrupted, "{config:?}");
            assert!(stats.done < 9_900 && stats.done >= 20, "{config:?}: {stats:?}");
            assert_eq!(stats.done, seen);
        }
    }

    /// Works 5 ms (counted in `WORKING`), then releases its place and
    /// finishes for 20 ms (counted in `FINISHING`).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct TwoPhase(u64);

    static WORKING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static FINISHING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static MOST: std::sync::Mutex<(usize, usize)> = std::sync::Mutex::new((0, 0));

    fn note(working: isize, finishing: isize) {
        let w = WORKING.fetch_add(working as usize, Ordering::SeqCst).wrapping_add(working as usize);
        let f = FINISHING.fetch_add(finishing as usize, Ordering::SeqCst).wrapping_add(finishing as usize);
        let mut most = MOST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *most = (most.0.max(w), most.1.max(w + f));
    }

    impl Task for TwoPhase {
        type Output = u64;
        const NAME: &'static str = "test-two-phase";
        fn run_blocking(self, _: &Ctx) -> u64 {
            note(1, 0);
            std::thread::sleep(std::time::Duration::from_millis(5));
            note(-1, 1);
            release_slot();
            std::thread::sleep(std::time::Duration::from_millis(20));
            note(0, -1);
            self.0
        }
        async fn run_async(self, _: Ctx) -> u64 {
            note(1, 0);
            ::tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            note(-1, 1);
            release_slot();
            ::tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            note(0, -1);
            self.0
        }
    }

    #[test]
    fn a_released_place_starts_the_next_task_within_the_finishing_bound() {
        let configs = [
            EngineConfig::new(EngineKind::Threads).with_concurrency(3),
            EngineConfig { async_runtime: AsyncRuntime::CurrentThread, ..EngineConfig::new(EngineKind::Async) }
                .with_concurrency(3),
        ];
        for config in configs {
            *MOST.lock().unwrap() = (0, 0);
            let mut done = 0;
            let stats = run_tasks(&config, (0..40).map(TwoPhase), &Interrupt::new(), |_| done += 1).unwrap();
            assert_eq!((stats.done, done), (40, 40), "{config:?}");
            let (working, existing) = *MOST.lock().unwrap();
            assert!(working <= 3, "{config:?}: {working} working at once");
            let most = (1 + slot::FINISHING) * 3;
            assert!(existing > 3 && existing <= most, "{config:?}: {existing} tasks at once");
            if config.kind == EngineKind::Threads {
                assert!(stats.runners_started <= most as u64, "{stats:?}");
            }
        }
    }

    #[test]
    fn engine_names_round_trip() {
        for kind in EngineKind::ALL {
            assert_eq!(kind.name().parse::<EngineKind>(), Ok(kind));
        }
        assert!("fibers".parse::<EngineKind>().unwrap_err().contains("threads, processes or async"));
    }
}
