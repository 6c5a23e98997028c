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
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{Ctx, EngineConfig, EngineError, Interrupt, Pacer, RunStats, Task, TaskOutcome};
use crate::frame::{frame, read_frame, whole_frames, write_frame};

/// The hidden subcommand a worker process is started with.
pub const WORKER_SUBCOMMAND: &str = "__worker";
/// Environment variable that overrides which executable is started as a
/// worker (default: this very executable).
pub const WORKER_EXE_ENV: &str = "TRIDENT_WORKER_EXE";
/// Environment variable telling a worker its parent's pid (see [`serve`]).
const WORKER_PARENT_ENV: &str = "TRIDENT_WORKER_PARENT";
/// A task is run at most this many times before it is reported as failed.
const MAX_ATTEMPTS: u8 = 2;
/// This many workers in a row dying without finishing a task ends the run.
const MAX_CONSECUTIVE_CRASHES: u32 = 8;
/// After an interrupt, how long in-flight tasks get before their workers are killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(50);

fn invalid(e: postcard::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The worker side: serves tasks of type `T` from stdin until it closes.
///
/// First it becomes its parent's worker: it dies with the parent
/// (`PR_SET_PDEATHSIG`; it exits at once if the dispatcher, whose pid the
/// parent passed, died before the prctl) and ignores the terminal's Ctrl-C,
/// which reaches the whole foreground group (the parent decides when its
/// workers stop). Done here rather than between fork and exec, so that the
/// parent can start workers with `posix_spawn`.
pub fn serve<T: Task>() -> io::Result<()> {
    if let Some(parent) = std::env::var(WORKER_PARENT_ENV).ok().and_then(|p: String| p.parse::<u32>().ok()) {
        // SAFETY: getppid and kill(pid, 0) have no preconditions.
        let (ppid, parent_alive) = unsafe {
            let alive = libc::kill(parent as libc::pid_t, 0) == 0
                || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            (libc::getppid() as u32, alive)
        };
        // Started through a wrapper that did not exec (TRIDENT_WORKER_EXE):
        // tied to the wrapper, as the wrapper was before. Orphaned: gone.
        if ppid != parent && !parent_alive {
            std::process::exit(1);
        }
        // SAFETY: prctl, getppid, signal and _exit, on our own process,
        // which has one thread.
        unsafe { crate::sys::become_worker_of(ppid)? };
    }
    // The parent's SIGTERM after a Ctrl-C: the task in flight may stop
    // and say so (see `Ctx`), rather than be killed once the grace period
    // is over. A byte comes on `wake` once the flag is set, so a watcher
    // blocks on it to wake the task's waits, instead of polling the flag.
    let interrupt = Interrupt::new();
    signal_hook::flag::register(signal_hook::consts::SIGTERM, interrupt.flag())?;
    let (mut wake, rung) = std::os::unix::net::UnixStream::pair()?;
    // A signal handler must never block on a full buffer.
    rung.set_nonblocking(true)?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, rung)?;
    let ctx = Ctx::new(&interrupt);
    let watcher = ctx.clone();
    // Without the watcher, a stop is still seen between pieces of work
    // and after each wait's timeout.
    let _ = thread::Builder::new().name("worker-stop".into()).stack_size(64 * 1024).spawn(move || {
        let mut byte = [0u8; 1];
        while !watcher.wake_if_cancelled() {
            match wake.read(&mut byte) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    while let Some(frame) = read_frame(&mut input)? {
        let (id, task): (u64, T) = postcard::from_bytes(&frame).map_err(invalid)?;
        let out = task.run_blocking(&ctx);
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
    stdin: Option<ChildStdin>,
    /// Its outputs, read without blocking; `None` once it is gone.
    stdout: Option<ChildStdout>,
    /// Bytes read from `stdout` that do not make a whole frame yet.
    unread: Vec<u8>,
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
    /// Reused for every `poll`.
    pollfds: Vec<libc::pollfd>,
}

impl<T: Task> Pool<T> {
    /// Starts a worker with `posix_spawn` (`std` uses it when no `pre_exec`
    /// is set): the parent's memory is neither copied nor write-protected,
    /// as a `fork` would do it (32 forks of the dispatcher cost ~20 ms of
    /// CPU in copy-on-write faults alone). What used to be done between
    /// fork and exec the worker does first thing (see [`serve`]).
    fn spawn_worker(&mut self) -> io::Result<usize> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg(WORKER_SUBCOMMAND)
            .arg(T::NAME)
            .env(WORKER_PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("worker started without pipes"));
        };
        if let Err(e) = set_nonblocking(&stdout) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let index = self.workers.len();
        self.workers.push(Worker {
            child,
            stdin: Some(stdin),
            stdout: Some(stdout),
            unread: Vec::new(),
            busy: None,
            alive: true,
        });
        Ok(index)
    }

    /// SIGTERM to every busy worker: its task may stop early (see
    /// [`Ctx`]); one that does not is killed after
    /// [`INTERRUPT_GRACE`].
    fn ask_busy_to_stop(&self) {
        for w in self.workers.iter().filter(|w| w.alive && w.busy.is_some()) {
            if let Ok(pid) = libc::pid_t::try_from(w.child.id()) {
                // SAFETY: kill(2) on our own child, not yet waited for
                // (`alive`), so its pid is not reused.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
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

    /// Sends `job` to worker `index`, as one `write` when it fits. A failed
    /// write means the worker is dying; reading its end reports it and the
    /// task is requeued from there.
    fn assign(&mut self, index: usize, job: Assigned<T>) {
        let worker = &mut self.workers[index];
        let sent = postcard::to_stdvec(&(job.id, &job.task)).map_err(invalid).and_then(|bytes| {
            let stdin = worker.stdin.as_mut().ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
            stdin.write_all(&frame(&bytes)?)
        });
        worker.busy = Some(job);
        if sent.is_err() {
            worker.stdin = None;
        }
    }

    /// Waits up to `timeout` for outputs, then takes every whole frame the
    /// workers have written, and notes the workers that are gone: one
    /// `poll` for all of them on this thread, instead of a reader thread
    /// each handing frames over a channel (a thread wake-up more per task,
    /// and a dispatcher that spun in `sched_yield` waiting for them).
    fn wait_events(&mut self, timeout: Duration, events: &mut Vec<Event<T::Output>>) {
        self.pollfds.clear();
        let mut owners = Vec::with_capacity(self.workers.len());
        for (i, w) in self.workers.iter().enumerate() {
            if let Some(stdout) = &w.stdout {
                self.pollfds.push(libc::pollfd { fd: stdout.as_raw_fd(), events: libc::POLLIN, revents: 0 });
                owners.push(i);
            }
        }
        if self.pollfds.is_empty() {
            thread::sleep(timeout);
            return;
        }
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        let nfds = libc::nfds_t::try_from(self.pollfds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: pollfds is a valid array of nfds entries for the call.
        let ready = unsafe { libc::poll(self.pollfds.as_mut_ptr(), nfds, ms) };
        if ready <= 0 {
            return; // timeout, or EINTR: the caller looks at the flag and waits again
        }
        for (k, &i) in owners.iter().enumerate() {
            if self.pollfds[k].revents != 0 {
                self.read_worker(i, events);
            }
        }
    }

    /// Reads what worker `i` wrote; its whole frames become events. End of
    /// stream, a read error or a frame that does not decode: it is gone.
    fn read_worker(&mut self, i: usize, events: &mut Vec<Event<T::Output>>) {
        let w = &mut self.workers[i];
        let Some(stdout) = w.stdout.as_mut() else { return };
        let mut chunk = [0u8; 16 * 1024];
        let end = loop {
            match stdout.read(&mut chunk) {
                Ok(0) => break Some(None),
                Ok(n) => w.unread.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Some(Some(e.to_string())),
            }
        };
        let mut bad = None;
        let used = whole_frames(&w.unread, |payload| match postcard::from_bytes::<(u64, T::Output)>(payload) {
            Ok((id, output)) => {
                events.push(Event::Output { worker: i, id, output });
                true
            }
            Err(e) => {
                bad = Some(format!("undecodable output: {e}"));
                false
            }
        });
        let used = used.unwrap_or_else(|e| {
            bad = Some(e.to_string());
            0
        });
        w.unread.drain(..used);
        let error = match (bad, end) {
            (Some(bad), _) => {
                // It is still running but can no longer be understood.
                let _ = w.child.kill();
                Some(bad)
            }
            (None, Some(error)) => error,
            (None, None) => return,
        };
        w.stdout = None;
        events.push(Event::Gone { worker: i, error });
    }
}

fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; no memory passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
    }
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
    let mut pool = Pool::<T> { exe: worker_exe().map_err(start_err)?, workers: Vec::new(), pollfds: Vec::new() };
    let mut events: Vec<Event<T::Output>> = Vec::new();
    let mut stats = RunStats::default();
    let mut retries: VecDeque<Assigned<T>> = VecDeque::new();
    let mut next_id = 0u64;
    let mut exhausted = false;
    let mut interrupted_at: Option<Instant> = None;
    let mut consecutive_crashes = 0u32;
    let mut pacer = Pacer::for_run(config);
    // A task whose start `--max-rate` booked for later: the wait is spent
    // in `wait_events`, taking outcomes in, not asleep before handing out.
    let mut paced: Option<(Assigned<T>, Instant)> = None;

    loop {
        if interrupt.is_set() && interrupted_at.is_none() {
            interrupted_at = Some(Instant::now());
            stats.interrupted = true;
            pool.ask_busy_to_stop();
        }
        // Hand out work while there is a free (or startable) worker.
        while interrupted_at.is_none() {
            let slot = pool.idle_worker();
            if slot.is_none() && pool.live() >= config.concurrency {
                break;
            }
            let job = match retries.pop_front() {
                Some(job) => job,
                None => match paced.take() {
                    Some((job, at)) if at > Instant::now() => {
                        paced = Some((job, at));
                        break;
                    }
                    Some((job, _)) => job,
                    None if exhausted => break,
                    None => match tasks.next() {
                        Some(task) => {
                            let wait = pacer.book();
                            next_id += 1;
                            let job = Assigned { id: next_id, task, attempts: 0 };
                            if !wait.is_zero() {
                                paced = Some((job, Instant::now() + wait));
                                break;
                            }
                            job
                        }
                        None => {
                            exhausted = true;
                            break;
                        }
                    },
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

        // Until the paced start is due (rounded up: poll counts whole ms).
        let wait = paced.as_ref().map_or(TICK, |(_, at)| {
            let left = at.saturating_duration_since(Instant::now());
            Duration::from_millis(u64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)).min(TICK)
        });
        pool.wait_events(wait, &mut events);
        for event in events.drain(..) {
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
    }
    for job in retries {
        stats.failed += 1;
        on_output(TaskOutcome::Failed { task: job.task, reason: "interrupted before its retry".into() });
    }
    if let Some((job, _)) = paced {
        stats.failed += 1;
        on_output(TaskOutcome::Failed { task: job.task, reason: "interrupted before it started".into() });
    }
    drop(pool);
    Ok(stats)
}
