//! The processes engine: N pre-forked worker processes accepting on one
//! listening socket.
//!
//! The parent binds the socket (a bad `--listen` or a busy port is one
//! error before anything starts; port 0 is resolved once) and re-runs this
//! binary N times as `trident __serve-worker SERVICE SETTINGS`
//! ([`WorkerSettings`], JSON). Each worker inherits the descriptor (rather
//! than binding its own with SO_REUSEPORT: one accept queue, so a
//! connection waits for whichever worker is free and none is lost with a
//! dying one) and serves what it accepts on a single-threaded event loop
//! ([`super::tokio`]). A service with a shared core (chat's hub) keeps it
//! in the parent and gives each worker a link to it.
//!
//! The parent accepts nothing: it watches its workers ([`supervise`]),
//! replaces one that dies unless they keep dying, and stops them by closing
//! their stdin (the control pipe). Workers die with the parent
//! (`PR_SET_PDEATHSIG`), ignore the terminal's SIGINT, stop gracefully on
//! their own SIGTERM, and the [`Workers`] guard kills and reaps whoever is
//! left on every exit path.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Protocol, ServerConfig, TICK};
use crate::engine::Interrupt;
use crate::engine::processes::WORKER_EXE_ENV;

/// The hidden subcommand a server worker process is started with.
pub const WORKER_SUBCOMMAND: &str = "__serve-worker";
/// More deaths than this within [`DEATH_WINDOW`] stop the server.
const MAX_DEATHS: usize = 8;
const DEATH_WINDOW: Duration = Duration::from_secs(10);

/// Recent worker deaths: a server whose workers keep dying stops rather
/// than restarting them forever.
#[derive(Debug, Default)]
struct Deaths(VecDeque<Instant>);

impl Deaths {
    /// One more death; an error once more than [`MAX_DEATHS`] happened
    /// within [`DEATH_WINDOW`].
    fn record(&mut self, status: std::process::ExitStatus) -> anyhow::Result<()> {
        let now = Instant::now();
        self.0.push_back(now);
        while self.0.front().is_some_and(|t| now.duration_since(*t) > DEATH_WINDOW) {
            self.0.pop_front();
        }
        if self.0.len() > MAX_DEATHS {
            anyhow::bail!(
                "server worker processes keep dying ({} in {}s; last: {status})",
                self.0.len(),
                DEATH_WINDOW.as_secs()
            );
        }
        Ok(())
    }
}

/// The worker processes; dropping it stops (stdin EOF), waits for, kills
/// if needed and reaps all of them.
#[derive(Debug)]
pub(crate) struct Workers {
    children: Vec<Child>,
    grace: Duration,
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            drop(child.stdin.take()); // EOF: stop
        }
        // Workers give their connections `grace`, plus the flush.
        let deadline = Instant::now() + self.grace + Duration::from_millis(1500);
        for child in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        eprintln!("trident: server worker process {} did not stop; killing it", child.id());
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(5)),
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

/// What a server worker process is started with: `trident __serve-worker
/// SERVICE SETTINGS`, the settings as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerSettings {
    /// The inherited listening socket.
    pub listener: RawFd,
    /// The inherited link to the parent's shared core, if the service has one.
    pub link: Option<RawFd>,
    /// This worker's number (never reused within a server).
    pub number: u64,
    /// How many workers share the server's limits.
    pub workers: usize,
    /// Grace period for connections on shutdown.
    pub grace: Duration,
    /// The service's config, JSON.
    pub config: String,
}

/// Starts worker `settings.number` of `service`, with `settings`'
/// descriptors inherited (their close-on-exec flag cleared in the child
/// only).
pub(crate) fn spawn_worker(service: &str, settings: &WorkerSettings) -> anyhow::Result<Child> {
    let exe = worker_exe()?;
    let json = serde_json::to_string(settings)?;
    let fds: Vec<RawFd> = std::iter::once(settings.listener).chain(settings.link).collect();
    let parent = std::process::id();
    let mut cmd = Command::new(&exe);
    cmd.arg(WORKER_SUBCOMMAND)
        .arg(service)
        .arg(json)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: the closure runs between fork and exec and only calls
    // async-signal-safe functions (those of become_worker_of, and fcntl).
    unsafe {
        cmd.pre_exec(move || {
            crate::sys::become_worker_of(parent)?;
            // Let the sockets survive exec, in this child only.
            for &fd in &fds {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start a {service} worker process ({}): {e}", exe.display()))
}

/// Starts `config.workers` workers with `start(number)` and watches them
/// until `interrupt` is set: one that dies is reported and replaced by a
/// new number, unless they keep dying. `tick` runs every [`TICK`]. The
/// workers are stopped when the returned guard is dropped.
pub(crate) fn supervise(
    config: &ServerConfig,
    interrupt: &Interrupt,
    mut start: impl FnMut(u64) -> anyhow::Result<Child>,
    mut tick: impl FnMut(),
) -> anyhow::Result<Workers> {
    let mut workers = Workers { children: Vec::with_capacity(config.workers), grace: config.grace };
    let mut next = 0u64;
    for _ in 0..config.workers.max(1) {
        next += 1;
        workers.children.push(start(next)?);
    }
    let mut deaths = Deaths::default();
    while !interrupt.is_set() {
        thread::sleep(TICK);
        tick();
        for child in &mut workers.children {
            let Some(status) = child.try_wait()? else { continue };
            deaths.record(status)?;
            eprintln!("trident: server worker process {} exited ({status}); starting another", child.id());
            next += 1;
            *child = start(next)?;
        }
    }
    Ok(workers)
}

/// The parent side: starts `config.workers` workers on `listener` and
/// watches them until `interrupt` is set.
pub(crate) fn serve<P: Protocol>(
    listener: TcpListener,
    protocol: &P::Config,
    config: &ServerConfig,
    interrupt: &Interrupt,
) -> anyhow::Result<()> {
    let settings = WorkerSettings {
        listener: listener.as_raw_fd(),
        link: None,
        number: 0,
        workers: config.workers.max(1),
        grace: config.grace,
        config: serde_json::to_string(protocol)?,
    };
    let start = |number| spawn_worker(P::NAME, &WorkerSettings { number, ..settings.clone() });
    let workers = supervise(config, interrupt, start, || {})?;
    // The parent's copy of the socket is not needed any more; workers close
    // theirs when told to stop.
    drop(listener);
    drop(workers);
    Ok(())
}

/// The worker side's start: the inherited listening socket, and a stop
/// set when stdin (the parent's control pipe) closes or on SIGTERM.
pub(crate) fn worker_start(settings: &WorkerSettings) -> anyhow::Result<(TcpListener, Interrupt)> {
    let listener = inherited_listener(settings.listener)?;
    let interrupt = Interrupt::new();
    signal_hook::flag::register(signal_hook::consts::SIGTERM, interrupt.flag())?;
    stop_on_stdin_eof(&interrupt)?;
    Ok((listener, interrupt))
}

/// The worker side: serves `P` on the inherited listening socket until
/// stdin closes (the parent's stop) or SIGTERM.
pub fn worker<P: Protocol>(settings: &WorkerSettings) -> anyhow::Result<()> {
    let config: P::Config = serde_json::from_str(&settings.config)
        .map_err(|e| anyhow::anyhow!("bad {} config for a server worker: {e}", P::NAME))?;
    let (listener, interrupt) = worker_start(settings)?;
    let limits = P::limits(&config).share(settings.workers);
    super::tokio::serve_protocol::<P>(listener, Arc::new(config), limits, 1, settings.grace, &interrupt)?;
    Ok(())
}

/// Sets `interrupt` when stdin (the control pipe from the parent) ends.
fn stop_on_stdin_eof(interrupt: &Interrupt) -> io::Result<()> {
    let stop = interrupt.clone();
    thread::Builder::new().name("trident-control".into()).stack_size(64 * 1024).spawn(move || {
        // Anything but data (EOF, an error) means the parent is done with us.
        let mut buf = [0u8; 64];
        let mut stdin = io::stdin().lock();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        stop.trigger();
    })?;
    Ok(())
}

/// Takes ownership of descriptor `fd` after checking that it is an open
/// listening socket.
fn inherited_listener(fd: RawFd) -> anyhow::Result<TcpListener> {
    // SAFETY: fcntl(F_GETFD) on any integer only reads descriptor flags.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        anyhow::bail!(
            "descriptor {fd} is not open (server workers are started by `trident echo|chat serve -e processes`)"
        );
    }
    let mut listening: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `listening`.
    let rc =
        unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, (&raw mut listening).cast(), &mut len) };
    if rc != 0 || listening == 0 {
        anyhow::bail!("descriptor {fd} is not a listening socket");
    }
    // SAFETY: `fd` is open, inherited for this purpose, and owned by nobody else here.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}
