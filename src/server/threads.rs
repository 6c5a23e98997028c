//! The threads server: one OS thread per connection (small stacks), the
//! accept loop on the calling thread.
//!
//! Shutdown: the accept loop stops, then every connection's socket is
//! `shutdown(SHUT_RD)` through a registered clone, which wakes the thread
//! blocked in `read`; it sees the stop flag, sends the protocol's last
//! words and closes. Whoever is still there after the grace period is cut
//! with `shutdown(SHUT_RDWR)` (which also fails a blocked `write`).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::{Closed, FLUSH_TIMEOUT, Flow, Protocol, ServerConfig, TICK};
use crate::engine::Interrupt;

/// The live connections, for shutdown.
#[derive(Debug, Default)]
struct Registry {
    /// A clone of each connection's socket, until its thread has ended
    /// (logged included): shutdown waits for this map to empty.
    sockets: Mutex<HashMap<u64, TcpStream>>,
    changed: Condvar,
    stopping: AtomicBool,
    /// Connections counted against the cap: released ([`Slot`]) before a
    /// connection's thread logs its close, so a client that saw the close
    /// logged can connect again at once.
    admitted: AtomicUsize,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Waits until no connection is left or `deadline`; whether none is left.
    fn wait_empty(&self, deadline: Instant) -> bool {
        let mut sockets = self.lock();
        while !sockets.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            sockets = self.changed.wait_timeout(sockets, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

/// A connection's place under the cap; released on drop, also by panic.
struct Slot(Arc<Registry>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Removes a connection from the registry when its thread ends, also by panic.
struct Registered(Arc<Registry>, u64);

impl Drop for Registered {
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
pub(crate) fn accept(listener: &TcpListener) -> io::Result<Option<(TcpStream, SocketAddr)>> {
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

/// Serves `P` on `listener` until `interrupt` is set.
pub(crate) fn serve<P: Protocol>(
    listener: TcpListener,
    protocol: Arc<P::Config>,
    config: &ServerConfig,
    interrupt: &Interrupt,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let registry = Arc::new(Registry::default());
    let limits = P::limits(&protocol);
    let mut next_id = 0u64;
    while !interrupt.is_set() {
        let Some((stream, peer)) = accept(&listener)? else { continue };
        if limits.max_connections.is_some_and(|max| registry.admitted.load(Ordering::SeqCst) >= max) {
            // No thread for it: the cap is what bounds the threads.
            P::refused(&protocol, peer);
            drop(stream);
            continue;
        }
        next_id += 1;
        let id = next_id;
        let timeouts =
            stream.set_read_timeout(limits.idle_timeout).and_then(|()| stream.set_write_timeout(limits.idle_timeout));
        let clone = match stream.set_nonblocking(false).and(timeouts).and_then(|()| stream.try_clone()) {
            Ok(clone) => clone,
            Err(e) => {
                eprintln!("trident: cannot serve {peer}: {e}");
                continue;
            }
        };
        registry.lock().insert(id, clone);
        registry.admitted.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(Arc::clone(&registry));
        let guard = Registered(Arc::clone(&registry), id);
        let protocol = Arc::clone(&protocol);
        let started = thread::Builder::new()
            .name(format!("trident-conn-{id}"))
            .stack_size(config.thread_stack)
            .spawn(move || connection::<P>(stream, peer, &protocol, slot, guard));
        if let Err(e) = started {
            // The closure (stream and guard) was dropped: the peer sees a close.
            eprintln!("trident: cannot start a thread for {peer}: {e}");
        }
    }
    drop(listener);
    registry.stopping.store(true, Ordering::SeqCst);
    for socket in registry.lock().values() {
        let _ = socket.shutdown(Shutdown::Read);
    }
    if !registry.wait_empty(Instant::now() + config.grace) {
        let left = registry.lock();
        eprintln!("trident: {} connection(s) did not close in time; cutting them", left.len());
        for socket in left.values() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        drop(left);
        registry.wait_empty(Instant::now() + Duration::from_millis(500));
    }
    Ok(())
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
    registry: Registered,
) {
    let _ = stream.set_nodelay(true);
    let stopping = || registry.0.stopping();
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
            // A read woken by the shutdown also returns 0.
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
    // registry entry goes after it, so a shutdown waits for that last line.
    drop(slot);
    proto.closed(how);
    drop(registry);
}
