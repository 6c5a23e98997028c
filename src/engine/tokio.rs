//! The async engine: tasks as futures on a tokio runtime.
//!
//! Tasks run on runtime threads, never merely polled by the calling thread,
//! so the work really spreads over the cores: by default on "lanes" (a
//! current-thread runtime per core, see `run_lanes`), where a task is
//! polled once where the lane takes it and spawned into the lane's
//! [`JoinSet`] only if still pending; with `--max-rate` or a current-thread
//! runtime, every task is spawned into one [`JoinSet`]. Runtimes are built
//! per run and dropped at its end, so nothing keeps running afterwards.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::FutureExt;

use ::tokio::runtime::{Builder, Runtime};
use ::tokio::task::JoinSet;

use super::slot::Slots;
use super::{
    AsyncRuntime, Ctx, EngineConfig, EngineError, Interrupt, Pacer, RunStats, Task, TaskOutcome, panic_message,
};

/// How often the dispatcher wakes up to look at the interrupt flag.
const TICK: Duration = Duration::from_millis(50);

/// Builds the runtime flavour the config asks for.
pub fn runtime(flavour: AsyncRuntime) -> std::io::Result<Runtime> {
    match flavour {
        AsyncRuntime::CurrentThread => Builder::new_current_thread().enable_all().build(),
        AsyncRuntime::MultiThread => Builder::new_multi_thread().enable_all().build(),
    }
}

pub(super) fn run<T, I, F>(
    config: &EngineConfig,
    tasks: I,
    interrupt: &Interrupt,
    on_output: F,
) -> Result<RunStats, EngineError>
where
    T: Task,
    I: Iterator<Item = T>,
    F: FnMut(TaskOutcome<T>),
{
    let lanes = std::thread::available_parallelism().map_or(1, usize::from).min(config.concurrency).max(1);
    if config.async_runtime == AsyncRuntime::MultiThread && config.max_rate.is_none() {
        return run_lanes(config, tasks, interrupt, on_output, lanes);
    }
    run_one(config, tasks, interrupt, on_output)
}

/// One runtime (current-thread, or a work-stealing pool when pacing with
/// `--max-rate`), a future spawned per task.
fn run_one<T, I, F>(
    config: &EngineConfig,
    mut tasks: I,
    interrupt: &Interrupt,
    mut on_output: F,
) -> Result<RunStats, EngineError>
where
    T: Task,
    I: Iterator<Item = T>,
    F: FnMut(TaskOutcome<T>),
{
    let rt = runtime(config.async_runtime).map_err(|source| EngineError::Start { engine: "async", source })?;
    let mut stats = RunStats::default();
    let mut pacer = Pacer::for_run(config);
    let slots = Slots::new(config.concurrency);
    let ctx = Ctx::new(interrupt);
    rt.block_on(async {
        let mut set: JoinSet<Guarded<T>> = JoinSet::new();
        let mut tick = ::tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(::tokio::time::MissedTickBehavior::Delay);
        let mut exhausted = false;
        // The next task and the time its start is booked for by `--max-rate`:
        // its wait is one arm of the select below, so outcomes keep being
        // taken (and streamed) while starts are paced, not only after
        // every slot has been filled.
        let mut pending: Option<(T, ::tokio::time::Instant)> = None;
        loop {
            // At least once a TICK: in-flight tasks learn of a Ctrl-C.
            ctx.wake_if_cancelled();
            while !exhausted && slots.can_start(set.len()) {
                if interrupt.is_set() {
                    stats.interrupted = true;
                    exhausted = true;
                    // Taken from the iterator already: it runs, as any
                    // in-flight task does.
                    if let Some((task, _)) = pending.take() {
                        set.spawn(slots.scope_async(guarded(task, ctx.clone())));
                        stats.runners_started += 1;
                    }
                    break;
                }
                // No clock read for a start that need not wait.
                let (task, at) = match pending.take() {
                    Some((task, at)) => (task, Some(at)),
                    None => match tasks.next() {
                        Some(task) => {
                            let wait = pacer.book();
                            (task, (!wait.is_zero()).then(|| ::tokio::time::Instant::now() + wait))
                        }
                        None => {
                            exhausted = true;
                            break;
                        }
                    },
                };
                if let Some(at) = at.filter(|at| *at > ::tokio::time::Instant::now()) {
                    pending = Some((task, at));
                    break;
                }
                set.spawn(slots.scope_async(guarded(task, ctx.clone())));
                stats.runners_started += 1;
            }
            if set.is_empty() && pending.is_none() {
                break;
            }
            // With every slot taken, a booked start waits for a slot too.
            let due = pending.as_ref().map(|(_, at)| *at).filter(|_| slots.can_start(set.len()));
            let first = ::tokio::select! {
                joined = set.join_next(), if !set.is_empty() => joined,
                () = ::tokio::time::sleep_until(due.unwrap_or_else(::tokio::time::Instant::now)), if due.is_some() => continue,
                _ = tick.tick() => continue,
                _ = slots.released() => continue,
            };
            // Take everything that is ready before refilling.
            let mut next = first;
            while let Some(joined) = next {
                let Some(outcome) = outcome_of(joined) else {
                    next = set.try_join_next();
                    continue;
                };
                match outcome {
                    TaskOutcome::Done(_) => stats.done += 1,
                    TaskOutcome::Failed { .. } => stats.failed += 1,
                }
                on_output(outcome);
                next = set.try_join_next();
            }
        }
    });
    // In-flight futures have all completed; nothing left to wait for.
    rt.shutdown_background();
    Ok(stats)
}

/// Tasks handed to a lane at once, and outcomes handed back at most.
const BATCH: usize = 64;

/// What a lane reports: its number, how many of its tasks ended (also any
/// that produced no outcome), and their outcomes.
type Reported<T> = (usize, usize, Vec<TaskOutcome<T>>);

/// The multi-thread flavour as "lanes": one current-thread runtime per
/// core, each with its share of the concurrency, fed batches of tasks by
/// this thread (which keeps the task iterator and calls `on_output`, so
/// neither needs to be `Send`). A probe that completes on its first poll
/// costs no cross-thread wake-up, and the only traffic between threads is
/// one message per batch — a work-stealing pool pays both per task.
fn run_lanes<T, I, F>(
    config: &EngineConfig,
    mut tasks: I,
    interrupt: &Interrupt,
    mut on_output: F,
    lanes: usize,
) -> Result<RunStats, EngineError>
where
    T: Task,
    I: Iterator<Item = T>,
    F: FnMut(TaskOutcome<T>),
{
    let share = |lane: usize| config.concurrency / lanes + usize::from(lane < config.concurrency % lanes);
    let mut stats = RunStats::default();
    let (report_tx, report_rx) = crossbeam_channel::unbounded::<Reported<T>>();
    std::thread::scope(|scope| -> Result<(), EngineError> {
        let mut feeds = Vec::with_capacity(lanes);
        // A context per lane: a task's clone of it stays on its lane's core.
        let ctxs: Vec<Ctx> = (0..lanes).map(|_| Ctx::new(interrupt)).collect();
        for (lane, ctx) in ctxs.iter().enumerate() {
            let rt = Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| EngineError::Start { engine: "async", source })?;
            let (feed_tx, feed_rx) = ::tokio::sync::mpsc::unbounded_channel::<Vec<T>>();
            let report_tx = report_tx.clone();
            let ctx = ctx.clone();
            std::thread::Builder::new()
                .name(format!("trident-lane-{lane}"))
                .spawn_scoped(scope, move || {
                    rt.block_on(lane_loop(lane, feed_rx, report_tx, ctx));
                    rt.shutdown_background();
                })
                .map_err(|source| EngineError::Start { engine: "async", source })?;
            feeds.push(Some(feed_tx));
        }
        drop(report_tx);
        let mut in_flight = vec![0usize; lanes];
        let mut exhausted = false;
        loop {
            // At least once a TICK: in-flight tasks learn of a Ctrl-C.
            for ctx in &ctxs {
                ctx.wake_if_cancelled();
            }
            // Top every lane up to its share.
            for lane in 0..lanes {
                while !exhausted && in_flight[lane] < share(lane) {
                    if interrupt.is_set() {
                        stats.interrupted = true;
                        exhausted = true;
                        break;
                    }
                    let room = (share(lane) - in_flight[lane]).min(BATCH);
                    let batch: Vec<T> = tasks.by_ref().take(room).collect();
                    if batch.len() < room {
                        exhausted = true;
                    }
                    if batch.is_empty() {
                        break;
                    }
                    in_flight[lane] += batch.len();
                    stats.runners_started += batch.len() as u64;
                    if let Some(feed) = &feeds[lane] {
                        // A lane only ends when its feed is closed.
                        let _ = feed.send(batch);
                    }
                }
            }
            if exhausted {
                // No more work: lanes finish what they have, then end.
                for feed in &mut feeds {
                    feed.take();
                }
            }
            if in_flight.iter().all(|&n| n == 0) {
                break;
            }
            let (lane, ended, outcomes) = match report_rx.recv_timeout(TICK) {
                Ok(report) => report,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            };
            in_flight[lane] -= ended;
            for outcome in outcomes {
                match outcome {
                    TaskOutcome::Done(_) => stats.done += 1,
                    TaskOutcome::Failed { .. } => stats.failed += 1,
                }
                on_output(outcome);
            }
        }
        for feed in &mut feeds {
            feed.take();
        }
        Ok(())
    })?;
    Ok(stats)
}

/// One lane: runs the tasks it is fed, reports their outcomes in batches.
///
/// A task is polled once right where it is taken from its batch, and only
/// spawned if that poll leaves it pending: a probe answered at once (a
/// closed port on loopback, most of a full-range scan) then costs no tokio
/// task (no allocation in the owned-task list, no join handle, no wake-up),
/// which was a fifth of a loopback scan's CPU time. That first poll uses a
/// no-op waker, inside the lane's runtime; the spawned task polls the same
/// future again with its own waker, which the future contract requires
/// every future to accept (the last waker given is the one to wake).
async fn lane_loop<T: Task>(
    lane: usize,
    mut feed: ::tokio::sync::mpsc::UnboundedReceiver<Vec<T>>,
    report: crossbeam_channel::Sender<Reported<T>>,
    ctx: Ctx,
) {
    let mut set: JoinSet<Guarded<T>> = JoinSet::new();
    let mut outcomes = Vec::new();
    let mut ended = 0;
    let mut open = true;
    loop {
        ::tokio::select! {
            batch = feed.recv(), if open => match batch {
                Some(batch) => {
                    for task in batch {
                        if let Some(outcome) = start(task, &ctx, &mut set) {
                            outcomes.push(outcome);
                            ended += 1;
                        }
                    }
                    // Let the runtime poll its timers and I/O, and run the
                    // spawned tasks, before the next batch: otherwise a lane
                    // with batches queued would run thousands of first polls
                    // in a row (tokio yields only when the feed's budget runs
                    // out), and the pending probes' answers would wait for
                    // it — inflating their round-trip times, hence timeouts.
                    if !set.is_empty() {
                        ::tokio::task::yield_now().await;
                    }
                }
                None => open = false,
            },
            Some(first) = set.join_next(), if !set.is_empty() => {
                let mut next = Some(first);
                let mut joined_now = 0;
                while let Some(joined) = next {
                    ended += 1;
                    joined_now += 1;
                    outcomes.extend(outcome_of(joined));
                    next = if joined_now < BATCH { set.try_join_next() } else { None };
                }
            }
            else => return,
        }
        if ended > 0 {
            if report.send((lane, ended, std::mem::take(&mut outcomes))).is_err() {
                return;
            }
            ended = 0;
        }
    }
}

/// What a task's guarded future ends with: its output, or the task back
/// with the reason it panicked.
type Guarded<T> = Result<<T as Task>::Output, (T, String)>;

/// `task.run_async()` catching its own panic and handing a copy of the task
/// back, so a failure is reported with the task it concerns.
fn guarded<T: Task>(task: T, ctx: Ctx) -> impl Future<Output = Guarded<T>> + Send + 'static {
    let copy = task.clone();
    AssertUnwindSafe(task.run_async(ctx))
        .catch_unwind()
        .map(move |ran| ran.map_err(|payload| (copy, format!("task panicked: {}", panic_message(payload.as_ref())))))
}

fn outcome<T: Task>(ended: Guarded<T>) -> TaskOutcome<T> {
    match ended {
        Ok(output) => TaskOutcome::Done(output),
        Err((task, reason)) => TaskOutcome::Failed { task, reason },
    }
}

/// The outcome of a joined task; `None` only for a cancelled one (panics
/// are caught by [`guarded`], and nothing cancels a task in its set).
fn outcome_of<T: Task>(joined: Result<Guarded<T>, ::tokio::task::JoinError>) -> Option<TaskOutcome<T>> {
    joined.ok().map(outcome)
}

/// Polls a task once; its outcome if that was enough, otherwise the task
/// goes on as a spawned future in `set`.
fn start<T: Task>(task: T, ctx: &Ctx, set: &mut JoinSet<Guarded<T>>) -> Option<TaskOutcome<T>> {
    let mut future = Box::pin(guarded(task, ctx.clone()));
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(ended) => Some(outcome(ended)),
        Poll::Pending => {
            set.spawn(future);
            None
        }
    }
}
