//! The async engine: tasks as futures on a tokio runtime.
//!
//! Every task is spawned onto the runtime (not merely polled by the calling
//! thread), so a multi-thread runtime really spreads them over the cores; a
//! [`JoinSet`] bounds how many are in flight. The runtime is built per run
//! and dropped at its end, so nothing keeps running afterwards.

use std::time::Duration;

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
        let mut set: JoinSet<T::Output> = JoinSet::new();
        // The task behind each running future, to report it if it panics.
        let mut running = std::collections::HashMap::new();
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
                        let handle = set.spawn(task.run_async());
                        running.insert(handle.id(), copy);
                        stats.runners_started += 1;
                    }
                    None => exhausted = true,
                }
            }
            if set.is_empty() {
                break;
            }
            let joined = ::tokio::select! {
                joined = set.join_next_with_id() => joined,
                () = ::tokio::time::sleep(TICK) => continue,
            };
            let Some(joined) = joined else { break };
            let outcome = match joined {
                Ok((id, output)) => {
                    running.remove(&id);
                    TaskOutcome::Done(output)
                }
                Err(err) => {
                    let Some(task) = running.remove(&err.id()) else { continue };
                    let reason = if err.is_panic() {
                        format!("task panicked: {}", panic_message(err.into_panic().as_ref()))
                    } else {
                        "task was cancelled".to_string()
                    };
                    TaskOutcome::Failed { task, reason }
                }
            };
            match outcome {
                TaskOutcome::Done(_) => stats.done += 1,
                TaskOutcome::Failed { .. } => stats.failed += 1,
            }
            on_output(outcome);
        }
    });
    // In-flight futures have all completed; nothing left to wait for.
    rt.shutdown_background();
    Ok(stats)
}
