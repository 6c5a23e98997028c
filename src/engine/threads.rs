//! The threads engine: a bounded pool of OS threads, plus [`JoinGuard`].
//!
//! The pool is scoped (`std::thread::scope`): no thread outlives
//! [`run`](fn@run). Threads are started lazily, only when every existing one
//! is busy, so a 10-task run does not start 512 threads. Tasks travel to
//! the pool over a rendezvous channel and outcomes come back over another;
//! the calling thread multiplexes both with `select!`, which is what lets
//! results stream out while tasks are still being handed in.
//!
//! [`JoinGuard`] is the chapter's "run a function in a thread and always
//! join it" helper (its `@thread` decorator and `RunInThread` context
//! manager) done the Rust way: the join happens in `Drop`, so it cannot be
//! forgotten, and a panic in the thread is re-raised in the joiner instead
//! of vanishing.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{bounded, select, unbounded};

use super::slot::Slots;
use super::{Ctx, EngineConfig, EngineError, Interrupt, Pacer, RunStats, Task, TaskOutcome, panic_message};

/// How often the dispatcher wakes up to look at the interrupt flag.
const TICK: Duration = Duration::from_millis(50);

pub(super) fn run<T, I, F>(
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
    let mut stats = RunStats::default();
    let (task_tx, task_rx) = bounded::<T>(0);
    let (out_tx, out_rx) = unbounded::<TaskOutcome<T>>();

    let mut pacer = Pacer::for_run(config);
    let slots = Slots::new(config.concurrency);
    let ctx = Ctx::new(interrupt);
    thread::scope(|scope| {
        let mut in_flight = 0usize;
        let mut spawned = 0usize;
        let mut pending = tasks.next();
        let mut booked = false;
        loop {
            // Every pass, at least once a TICK: in-flight tasks waiting on
            // the network learn of a Ctrl-C at once.
            ctx.wake_if_cancelled();
            if interrupt.is_set() && pending.is_some() {
                pending = None;
                stats.interrupted = true;
            }
            let Some(task) = pending.take() else {
                if in_flight == 0 {
                    break;
                }
                if let Ok(outcome) = out_rx.recv_timeout(TICK) {
                    in_flight -= 1;
                    record(&mut stats, &outcome);
                    on_output(outcome);
                }
                continue;
            };
            if !booked {
                // Wait for the task's start slot, taking in outcomes meanwhile.
                let deadline = std::time::Instant::now() + pacer.book();
                while let Some(left) =
                    deadline.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero())
                {
                    if let Ok(outcome) = out_rx.recv_timeout(left) {
                        in_flight -= 1;
                        record(&mut stats, &outcome);
                        on_output(outcome);
                    }
                }
                booked = true;
            }
            if !slots.can_start(in_flight) {
                // Every place taken: wait for an outcome or a released place.
                select! {
                    recv(out_rx) -> outcome => if let Ok(outcome) = outcome {
                        in_flight -= 1;
                        record(&mut stats, &outcome);
                        on_output(outcome);
                    },
                    recv(slots.released_rx()) -> _ => {}
                    default(TICK) => {}
                }
                pending = Some(task);
                continue;
            }
            if in_flight >= spawned && spawned < slots.most() {
                let task_rx = task_rx.clone();
                let out_tx = out_tx.clone();
                let slots = Arc::clone(&slots);
                let ctx = ctx.clone();
                thread::Builder::new()
                    .name(format!("trident-pool-{spawned}"))
                    .stack_size(config.thread_stack)
                    .spawn_scoped(scope, move || worker(&task_rx, &out_tx, &slots, &ctx))
                    .map_err(|source| EngineError::Start { engine: "threads", source })?;
                spawned += 1;
                stats.runners_started += 1;
            }
            select! {
                send(task_tx, task) -> sent => {
                    // Only fails when every worker is gone, which cannot
                    // happen while we hold a receiver clone... except that
                    // workers never drop theirs early, so this is unreachable
                    // in practice; keep the task rather than lose it.
                    match sent {
                        Ok(()) => { in_flight += 1; pending = tasks.next(); booked = false; }
                        Err(e) => pending = Some(e.into_inner()),
                    }
                }
                recv(out_rx) -> outcome => {
                    if let Ok(outcome) = outcome {
                        in_flight -= 1;
                        record(&mut stats, &outcome);
                        on_output(outcome);
                    }
                    pending = Some(task);
                }
                default(TICK) => pending = Some(task),
            }
        }
        // Closing the task channel lets every worker return; the scope joins them.
        drop(task_tx);
        Ok(stats)
    })
}

fn record<T: Task>(stats: &mut RunStats, outcome: &TaskOutcome<T>) {
    match outcome {
        TaskOutcome::Done(_) => stats.done += 1,
        TaskOutcome::Failed { .. } => stats.failed += 1,
    }
}

fn worker<T: Task>(
    tasks: &crossbeam_channel::Receiver<T>,
    out: &crossbeam_channel::Sender<TaskOutcome<T>>,
    slots: &Arc<Slots>,
    ctx: &Ctx,
) {
    for task in tasks {
        let copy = task.clone();
        let ran = slots.scope_blocking(|| panic::catch_unwind(AssertUnwindSafe(|| task.run_blocking(ctx))));
        let outcome = match ran {
            Ok(output) => TaskOutcome::Done(output),
            Err(payload) => TaskOutcome::Failed {
                task: copy,
                reason: format!("task panicked: {}", panic_message(payload.as_ref())),
            },
        };
        if out.send(outcome).is_err() {
            return;
        }
    }
}

/// A thread that is always joined: on [`JoinGuard::join`], or when the guard
/// is dropped. A panic in the thread is propagated to whoever joins it.
///
/// This is the chapter's `@thread` decorator and `RunInThread` context
/// manager in one type: spawning returns the guard (the decorator's return
/// value), and the end of the guard's scope is the `with` block's exit.
///
/// ```
/// use trident::engine::JoinGuard;
///
/// let guard = JoinGuard::spawn(|| (1..=10).sum::<u32>());
/// // ... the calling thread goes on with other work here ...
/// assert_eq!(guard.join(), 55);
/// ```
///
/// Dropping the guard joins too, so the thread never outlives its scope:
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use trident::engine::JoinGuard;
///
/// let finished = Arc::new(AtomicBool::new(false));
/// {
///     let finished = Arc::clone(&finished);
///     let _guard = JoinGuard::spawn(move || {
///         std::thread::sleep(std::time::Duration::from_millis(20));
///         finished.store(true, Ordering::SeqCst);
///     });
/// } // joined here
/// assert!(finished.load(Ordering::SeqCst));
/// ```
///
/// A panic inside the thread reaches the joiner:
///
/// ```should_panic
/// use trident::engine::JoinGuard;
///
/// let guard = JoinGuard::spawn(|| panic!("boom"));
/// guard.join(); // panics with "boom"
/// ```
#[derive(Debug)]
#[must_use = "dropping the guard immediately joins the thread, which makes it synchronous"]
pub struct JoinGuard<T> {
    /// `None` only after the thread has been joined.
    handle: Option<thread::JoinHandle<T>>,
}

impl<T: Send + 'static> JoinGuard<T> {
    /// Starts `f` on a new thread.
    ///
    /// # Panics
    /// If the OS cannot create a thread (as [`std::thread::spawn`] does).
    pub fn spawn<F>(f: F) -> Self
    where
        F: FnOnce() -> T + Send + 'static,
    {
        JoinGuard { handle: Some(thread::spawn(f)) }
    }

    /// Waits for the thread and returns what it returned.
    ///
    /// # Panics
    /// Re-raises the thread's panic, with its original payload.
    pub fn join(mut self) -> T {
        let handle = self.handle.take().expect("a JoinGuard is joined at most once");
        match handle.join() {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Whether the thread has finished (joining will not block).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(thread::JoinHandle::is_finished)
    }
}

impl<T> Drop for JoinGuard<T> {
    fn drop(&mut self) {
        let Some(handle) = self.handle.take() else { return };
        if let Err(payload) = handle.join() {
            // Unwinding already? A second panic would abort: keep the first.
            if !thread::panicking() {
                panic::resume_unwind(payload);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[test]
    fn join_returns_value() {
        assert_eq!(JoinGuard::spawn(|| 6 * 7).join(), 42);
    }

    #[test]
    fn drop_joins_before_returning() {
        let counter = Arc::new(AtomicUsize::new(0));
        for _ in 0..4 {
            let counter = Arc::clone(&counter);
            let _g = JoinGuard::spawn(move || {
                thread::sleep(Duration::from_millis(5));
                counter.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(counter.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn panic_propagates_through_join_with_payload() {
        let caught = panic::catch_unwind(|| JoinGuard::spawn(|| panic!("worker exploded")).join());
        let payload = caught.expect_err("join must re-raise the panic");
        assert_eq!(panic_message(payload.as_ref()), "worker exploded");
    }

    #[test]
    fn panic_propagates_through_drop() {
        let caught = panic::catch_unwind(|| {
            let _g = JoinGuard::spawn(|| panic!("dropped guard"));
        });
        let payload = caught.expect_err("drop must re-raise the panic");
        assert_eq!(panic_message(payload.as_ref()), "dropped guard");
    }

    #[test]
    fn shared_counter_under_lock_is_exact() {
        // The chapter's Lock example: two threads, 100,000 increments each.
        let shared = Arc::new(Mutex::new(0u64));
        let guards: Vec<_> = (0..2)
            .map(|_| {
                let shared = Arc::clone(&shared);
                JoinGuard::spawn(move || {
                    for _ in 0..100_000 {
                        *shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
                    }
                })
            })
            .collect();
        drop(guards);
        assert_eq!(*shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner), 200_000);
    }
}
