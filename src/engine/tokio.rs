//! The async engine: tasks as futures on a tokio runtime.
//!
//! Every task is spawned onto the runtime (not merely polled by the calling
//! thread), so a multi-thread runtime really spreads them over the cores; a
//! [`JoinSet`] bounds how many are in flight. The runtime is built per run
//! and dropped at its end, so nothing keeps running afterwards.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;

use ::tokio::runtime::{Builder, Runtime};
use ::tokio::task::JoinSet;

use super::{AsyncRuntime, EngineConfig, EngineError, Interrupt, Pacer, RunStats, Task, TaskOutcome, panic_message};

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
    let mut pacer = Pacer::new(config.max_rate);
    rt.block_on(async {
        // Each future catches its own panic and hands its task back, so a
        // failure is reported with the task it concerns.
        let mut set: JoinSet<Result<T::Output, (T, String)>> = JoinSet::new();
        let mut tick = ::tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(::tokio::time::MissedTickBehavior::Delay);
        let mut exhausted = false;
        loop {
            while !exhausted && set.len() < config.concurrency {
                if interrupt.is_set() {
                    stats.interrupted = true;
                    exhausted = true;
                    break;
                }
                match tasks.next() {
                    Some(task) => {
                        let wait = pacer.book();
                        if !wait.is_zero() {
                            ::tokio::time::sleep(wait).await;
                        }
                        let copy = task.clone();
                        set.spawn(async move {
                            AssertUnwindSafe(task.run_async()).catch_unwind().await.map_err(|payload| {
                                (copy, format!("task panicked: {}", panic_message(payload.as_ref())))
                            })
                        });
                        stats.runners_started += 1;
                    }
                    None => exhausted = true,
                }
            }
            if set.is_empty() {
                break;
            }
            let first = ::tokio::select! {
                joined = set.join_next() => joined,
                _ = tick.tick() => continue,
            };
            // Take everything that is ready before refilling.
            let mut next = first;
            while let Some(joined) = next {
                let outcome = match joined {
                    Ok(Ok(output)) => TaskOutcome::Done(output),
                    Ok(Err((task, reason))) => TaskOutcome::Failed { task, reason },
                    // Only cancellation is left (panics are caught above),
                    // and nothing cancels these tasks while they are in the set.
                    Err(_) => {
                        next = set.try_join_next();
                        continue;
                    }
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
