//! The processes engine: a pool of worker processes fed over pipes.
//!
//! The binary re-runs itself as `trident __worker TASK-NAME` (see
//! [`serve`]); each worker reads tasks from its stdin and writes outputs to
//! its stdout, one at a time, as length-prefixed postcard frames
//! (`u32` little-endian length, then the bytes). `concurrency` is the number
//! of worker processes, each running one task at a time: the chapter's
//! process-per-job model, with the process reused instead of re-forked.
//!
//! Safety nets, because processes can die in ways threads cannot:
//! - a worker that dies while running a task is reported on stderr and its
//!   task is retried once on another worker, then reported as failed;
//! - workers die with the parent (`PR_SET_PDEATHSIG`), ignore the
//!   terminal's Ctrl-C (the parent decides when they stop), and are always
//!   reaped, also on early return and panic (`Pool`'s `Drop`);
//! - a run of workers that die before finishing anything (a broken binary)
//!   ends the run with an error instead of forking forever.

use std::collections::VecDeque;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, unbounded};

use super::{EngineConfig, EngineError, Interrupt, Pacer, RunStats, Task, TaskOutcome};

/// The hidden subcommand a worker process is started with.
pub const WORKER_SUBCOMMAND: &str = "__worker";
/// Environment variable that overrides which executable is started as a
/// worker (default: this very executable).
pub const WORKER_EXE_ENV: &str = "TRIDENT_WORKER_EXE";
/// Largest frame accepted; anything bigger means a corrupt stream.
const MAX_FRAME: usize = 64 << 20;
/// A task is run at most this many times before it is reported as failed.
const MAX_ATTEMPTS: u8 = 2;
/// This many workers in a row dying without finishing a task ends the run.
const MAX_CONSECUTIVE_CRASHES: u32 = 8;
/// After an interrupt, how long in-flight tasks get before their workers are killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(50);

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len =
        u32::try_from(payload.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(payload)
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

fn invalid(e: postcard::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The worker side: serves tasks of type `T` from stdin until it closes.
pub fn serve<T: Task>() -> io::Result<()> {
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    while let Some(frame) = read_frame(&mut input)? {
        let (id, task): (u64, T) = postcard::from_bytes(&frame).map_err(invalid)?;
        let out = task.run_blocking();
        let bytes = postcard::to_stdvec(&(id, out)).map_err(invalid)?;
        write_frame(&mut output, &bytes)?;
        output.flush()?;
    }
    Ok(())
}

/// A task handed to a worker, with how many times it has been tried.
struct Assigned<T> {
    id: u64,
    task: T,
    attempts: u8,
}

struct Worker<T> {
    child: Child,
    /// `None` once closed: the worker then exits after its current task.
    stdin: Option<BufWriter<ChildStdin>>,
    busy: Option<Assigned<T>>,
    alive: bool,
}

enum Event<O> {
    Output { worker: usize, id: u64, output: O },
    Gone { worker: usize, error: Option<String> },
}

/// Owns the worker processes; its `Drop` makes sure none is left behind.
struct Pool<T: Task> {
    exe: PathBuf,
    workers: Vec<Worker<T>>,
    events_tx: Sender<Event<T::Output>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl<T: Task> Pool<T> {
    fn spawn_worker(&mut self) -> io::Result<usize> {
        let parent = std::process::id();
        let mut cmd = Command::new(&self.exe);
        cmd.arg(WORKER_SUBCOMMAND).arg(T::NAME).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        // SAFETY: the closure runs between fork and exec; become_worker_of
        // only calls async-signal-safe functions.
        unsafe {
            cmd.pre_exec(move || crate::sys::become_worker_of(parent));
        }
        let mut child = cmd.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("worker started without pipes"));
        };
        let index = self.workers.len();
        let events = self.events_tx.clone();
        let reader = thread::Builder::new()
            .name(format!("trident-worker-reader-{index}"))
            .stack_size(128 * 1024)
            .spawn(move || read_outputs::<T::Output>(index, stdout, &events));
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        self.readers.push(reader);
        self.workers.push(Worker { child, stdin: Some(BufWriter::new(stdin)), busy: None, alive: true });
        Ok(index)
    }

    fn live(&self) -> usize {
        self.workers.iter().filter(|w| w.alive).count()
    }

    fn busy(&self) -> usize {
        self.workers.iter().filter(|w| w.busy.is_some()).count()
    }

    fn idle_worker(&self) -> Option<usize> {
        self.workers.iter().position(|w| w.alive && w.busy.is_none() && w.stdin.is_some())
    }

    /// Sends `job` to worker `index`. A failed write means the worker is
    /// dying; its reader reports it and the task is requeued from there.
    fn assign(&mut self, index: usize, job: Assigned<T>) {
        let worker = &mut self.workers[index];
        let sent = postcard::to_stdvec(&(job.id, &job.task)).map_err(invalid).and_then(|bytes| {
            let stdin = worker.stdin.as_mut().ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
            write_frame(stdin, &bytes)?;
            stdin.flush()
        });
        worker.busy = Some(job);
        if sent.is_err() {
            worker.stdin = None;
        }
    }
}

impl<T: Task> Drop for Pool<T> {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.stdin = None; // EOF: idle workers exit on their own
            if w.busy.is_some() && w.alive {
                let _ = w.child.kill();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        for w in &mut self.workers {
            loop {
                match w.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = w.child.kill();
                        let _ = w.child.wait();
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(2)),
                }
            }
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

fn read_outputs<O: serde::de::DeserializeOwned>(
    worker: usize,
    stdout: std::process::ChildStdout,
    events: &Sender<Event<O>>,
) {
    let mut stdout = BufReader::new(stdout);
    let error = loop {
        match read_frame(&mut stdout) {
            Ok(Some(frame)) => match postcard::from_bytes::<(u64, O)>(&frame) {
                Ok((id, output)) => {
                    if events.send(Event::Output { worker, id, output }).is_err() {
                        return;
                    }
                }
                Err(e) => break Some(format!("undecodable output: {e}")),
            },
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    let _ = events.send(Event::Gone { worker, error });
}

fn worker_exe() -> io::Result<PathBuf> {
    match std::env::var_os(WORKER_EXE_ENV) {
        Some(exe) => Ok(PathBuf::from(exe)),
        None => std::env::current_exe(),
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
    let start_err = |source| EngineError::Start { engine: "processes", source };
    let (events_tx, events_rx) = unbounded::<Event<T::Output>>();
    let mut pool =
        Pool::<T> { exe: worker_exe().map_err(start_err)?, workers: Vec::new(), events_tx, readers: Vec::new() };
    let mut stats = RunStats::default();
    let mut retries: VecDeque<Assigned<T>> = VecDeque::new();
    let mut next_id = 0u64;
    let mut exhausted = false;
    let mut interrupted_at: Option<Instant> = None;
    let mut consecutive_crashes = 0u32;
    let mut pacer = Pacer::new(config.max_rate);

    loop {
        if interrupt.is_set() && interrupted_at.is_none() {
            interrupted_at = Some(Instant::now());
            stats.interrupted = true;
        }
        // Hand out work while there is a free (or startable) worker.
        while interrupted_at.is_none() {
            let slot = pool.idle_worker();
            if slot.is_none() && pool.live() >= config.concurrency {
                break;
            }
            let job = match retries.pop_front() {
                Some(job) => job,
                None if exhausted => break,
                None => match tasks.next() {
                    Some(task) => {
                        let wait = pacer.book();
                        if !wait.is_zero() {
                            thread::sleep(wait);
                        }
                        next_id += 1;
                        Assigned { id: next_id, task, attempts: 0 }
                    }
                    None => {
                        exhausted = true;
                        break;
                    }
                },
            };
            let index = match slot {
                Some(i) => i,
                None => match pool.spawn_worker() {
                    Ok(i) => {
                        stats.runners_started += 1;
                        i
                    }
                    Err(e) if pool.live() == 0 => return Err(start_err(e)),
                    Err(_) => {
                        // At the OS's process limit: make do with the workers we have.
                        retries.push_front(job);
                        break;
                    }
                },
            };
            pool.assign(index, Assigned { attempts: job.attempts + 1, ..job });
        }

        if pool.busy() == 0 && (interrupted_at.is_some() || (exhausted && retries.is_empty())) {
            break;
        }
        if let Some(at) = interrupted_at {
            if at.elapsed() > INTERRUPT_GRACE {
                for (i, w) in pool.workers.iter_mut().enumerate() {
                    if let Some(job) = w.busy.take() {
                        let _ = w.child.kill();
                        w.stdin = None;
                        stats.failed += 1;
                        on_output(TaskOutcome::Failed {
                            task: job.task,
                            reason: format!("interrupted (worker {i} stopped)"),
                        });
                    }
                }
                break;
            }
        }

        let event = match events_rx.recv_timeout(TICK) {
            Ok(event) => event,
            Err(_) => continue,
        };
        match event {
            Event::Output { worker, id, output } => {
                let w = &mut pool.workers[worker];
                if w.busy.as_ref().is_some_and(|job| job.id == id) {
                    w.busy = None;
                    consecutive_crashes = 0;
                    stats.done += 1;
                    on_output(TaskOutcome::Done(output));
                }
            }
            Event::Gone { worker, error } => {
                let w = &mut pool.workers[worker];
                w.alive = false;
                w.stdin = None;
                let status = match w.child.wait() {
                    Ok(status) => status.to_string(),
                    Err(e) => format!("unknown status ({e})"),
                };
                let how = match error {
                    Some(e) => format!("{status}; {e}"),
                    None => status,
                };
                let Some(job) = w.busy.take() else { continue };
                stats.worker_crashes += 1;
                consecutive_crashes += 1;
                let pid = w.child.id();
                if job.attempts < MAX_ATTEMPTS {
                    eprintln!("trident: worker process {pid} died ({how}); retrying its task on another worker");
                    retries.push_back(job);
                } else {
                    eprintln!(
                        "trident: worker process {pid} died ({how}); its task failed twice and is reported as failed"
                    );
                    stats.failed += 1;
                    on_output(TaskOutcome::Failed {
                        task: job.task,
                        reason: format!("worker process died twice (last: {how})"),
                    });
                }
                if consecutive_crashes >= MAX_CONSECUTIVE_CRASHES {
                    return Err(EngineError::WorkersFailing { crashes: consecutive_crashes, last: how });
                }
            }
        }
    }
    for job in retries {
        stats.failed += 1;
        on_output(TaskOutcome::Failed { task: job.task, reason: "interrupted before its retry".into() });
    }
    drop(pool);
    Ok(stats)
}
