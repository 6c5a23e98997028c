//! The threads engine: one OS thread per connection (small stacks), the
//! accept loop on the calling thread.
//!
//! [`serve`] is the accept loop and the stop of every threads server: it
//! registers a [`Handle`] per connection thread and, on stop, asks each to
//! stop (which wakes a thread blocked in `read` or `ppoll`), waits up to
//! the grace period for the threads to end, and cuts whoever is left. Echo
//! ([`serve_protocol`]) blocks in `read`/`write`; chat's shell has its own
//! connection loop on the same accept loop.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::{Admitted, Closed, FLUSH_TIMEOUT, Flow, Protocol, ServerConfig, Slot, TICK};
use crate::engine::Interrupt;

/// What the accept loop keeps of a connection thread, to stop it.
pub(crate) trait Handle: Send + 'static {
    /// The server is stopping: wake the thread (it then sees
    /// [`Registered::stopping`] and says its last words).
    fn stop(&self);
    /// The grace period is over: make the thread's blocked calls fail.
    fn cut(&self);
}

/// A clone of a blocking connection's socket.
impl Handle for TcpStream {
    fn stop(&self) {
        // Wakes a blocked `read` (it returns 0).
        let _ = self.shutdown(Shutdown::Read);
    }

    fn cut(&self) {
        // Also fails a blocked `write`.
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// The live connection threads, for the stop.
#[derive(Debug)]
struct Registry<H> {
    /// Each connection's handle, until its thread has ended (its close
    /// logged included): the stop waits for this map to empty.
    handles: Mutex<HashMap<u64, H>>,
    changed: Condvar,
    stopping: AtomicBool,
}

impl<H> Registry<H> {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, H>> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until no connection is left or `deadline`; whether none is left.
    fn wait_empty(&self, deadline: Instant) -> bool {
        let mut handles = self.lock();
        while !handles.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            handles = self.changed.wait_timeout(handles, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

/// A connection thread's entry in the registry: removed on drop (also by
/// panic), which is what the stop waits for.
pub(crate) struct Registered<H>(Arc<Registry<H>>, u64);

impl<H> Registered<H> {
    /// Whether the server is stopping.
    pub fn stopping(&self) -> bool {
        self.0.stopping.load(Ordering::SeqCst)
    }

    /// The flag behind [`Registered::stopping`].
    pub fn stopping_flag(&self) -> &AtomicBool {
        &self.0.stopping
    }
}

impl<H> Drop for Registered<H> {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
        self.0.changed.notify_all();
    }
}

/// Whether `fd` became readable within `timeout`.
fn readable(fd: i32, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, count 1.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}

/// Waits up to [`TICK`] for a connection on the non-blocking `listener`
/// and accepts it; `None` when there was none, or it failed in a way that
/// only concerns that connection (EMFILE and friends: after a short pause,
/// so as not to spin).
fn accept(listener: &TcpListener) -> io::Result<Option<(TcpStream, SocketAddr)>> {
    if !readable(listener.as_raw_fd(), TICK)? {
        return Ok(None);
    }
    match listener.accept() {
        Ok(accepted) => Ok(Some(accepted)),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => Ok(None),
        Err(e) => {
            eprintln!("trident: accept: {e}");
            thread::sleep(Duration::from_millis(10));
            Ok(None)
        }
    }
}

/// Accepts on `listener` until `interrupt` is set, a thread per
/// connection: `start(stream, peer, id)` returns the connection's handle
/// and its thread's body (which holds its registry entry until it is
/// done), or `None` to drop it. `tick` runs after every
/// accept or [`TICK`]; `stopping` runs once the loop ends, before the
/// connections are asked to stop.
pub(crate) fn serve<H: Handle, B: FnOnce(Registered<H>) + Send + 'static>(
    listener: TcpListener,
    config: &ServerConfig,
    interrupt: &Interrupt,
    mut tick: impl FnMut(),
    mut start: impl FnMut(TcpStream, SocketAddr, u64) -> Option<(H, B)>,
    stopping: impl FnOnce(),
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let registry =
        Arc::new(Registry { handles: Mutex::new(HashMap::new()), changed: Condvar::new(), stopping: false.into() });
    let mut next_id = 0u64;
    while !interrupt.is_set() {
        tick();
        let Some((stream, peer)) = accept(&listener)? else { continue };
        next_id += 1;
        let id = next_id;
        let Some((handle, body)) = start(stream, peer, id) else { continue };
        registry.lock().insert(id, handle);
        let registered = Registered(Arc::clone(&registry), id);
        let started = thread::Builder::new()
            .name(format!("trident-conn-{id}"))
            .stack_size(config.thread_stack)
            .spawn(move || body(registered));
        if let Err(e) = started {
            // The body (its stream and registry entry) was dropped: the
            // peer sees a close.
            eprintln!("trident: cannot start a thread for {peer}: {e}");
        }
    }
    drop(listener);
    registry.stopping.store(true, Ordering::SeqCst);
    stopping();
    for handle in registry.lock().values() {
        handle.stop();
    }
    if !registry.wait_empty(Instant::now() + config.grace) {
        let left = registry.lock();
        eprintln!("trident: {} connection(s) did not close in time; cutting them", left.len());
        for handle in left.values() {
            handle.cut();
        }
        drop(left);
        registry.wait_empty(Instant::now() + Duration::from_millis(500));
    }
    Ok(())
}

/// Serves `P` on `listener` until `interrupt` is set.
pub(crate) fn serve_protocol<P: Protocol>(
    listener: TcpListener,
    protocol: Arc<P::Config>,
    config: &ServerConfig,
    interrupt: &Interrupt,
) -> io::Result<()> {
    let limits = P::limits(&protocol);
    let admitted = Admitted::default();
    let start = |stream: TcpStream, peer: SocketAddr, _id: u64| {
        let Some(slot) = admitted.take(limits.max_connections) else {
            // No thread for it: the cap is what bounds the threads.
            P::refused(&protocol, peer);
            return None;
        };
        let timeouts =
            stream.set_read_timeout(limits.idle_timeout).and_then(|()| stream.set_write_timeout(limits.idle_timeout));
        let clone = match stream.set_nonblocking(false).and(timeouts).and_then(|()| stream.try_clone()) {
            Ok(clone) => clone,
            Err(e) => {
                eprintln!("trident: cannot serve {peer}: {e}");
                return None;
            }
        };
        let protocol = Arc::clone(&protocol);
        Some((clone, move |registered| connection::<P>(stream, peer, &protocol, slot, registered)))
    };
    serve(listener, config, interrupt, || {}, start, || {})
}

/// A read or write error; a timeout is the idle limit.
fn closed_by(e: io::Error) -> Closed {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Closed::Idle,
        _ => Closed::from_error(e),
    }
}

fn connection<P: Protocol>(
    stream: TcpStream,
    peer: SocketAddr,
    config: &Arc<P::Config>,
    slot: Slot,
    registered: Registered<TcpStream>,
) {
    let _ = stream.set_nodelay(true);
    let stopping = || registered.stopping();
    let mut out = Vec::new();
    let mut proto = P::connect(config, peer, &mut out);
    let mut buf = vec![0u8; P::read_size(config).max(1)];
    let mut closing = false;
    let how = loop {
        if stopping() {
            break Closed::Shutdown;
        }
        if !out.is_empty() {
            if let Err(e) = (&stream).write_all(&out) {
                // How much of `out` went is unknown: none of it is resent.
                out.clear();
                break if stopping() { Closed::Shutdown } else { closed_by(e) };
            }
            out.clear();
        }
        if closing {
            break Closed::ByProtocol;
        }
        match (&stream).read(&mut buf) {
            // A read woken by the stop also returns 0.
            Ok(0) => break if stopping() { Closed::Shutdown } else { Closed::Eof },
            Ok(n) => closing = proto.receive(buf.get(..n).unwrap_or_default(), &mut out) == Flow::Close,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break if stopping() { Closed::Shutdown } else { closed_by(e) },
        }
    };
    if matches!(how, Closed::Shutdown) {
        proto.shutdown(&mut out);
        if !out.is_empty() && stream.set_write_timeout(Some(FLUSH_TIMEOUT)).is_ok() {
            let _ = (&stream).write_all(&out);
        }
    }
    if matches!(how, Closed::Eof | Closed::ByProtocol | Closed::Shutdown) {
        let _ = stream.shutdown(Shutdown::Write);
    }
    // The slot is free before the log says the connection is closed; the
    // registry entry goes after it, so a stop waits for that last line.
    drop(slot);
    proto.closed(how);
    drop(registered);
}
