//! The threads chat shell: an OS thread per connection (small stack) on a
//! non-blocking socket, the core behind one mutex.
//!
//! A thread sleeps in `ppoll` on its socket (readable; writable too while
//! its queue holds bytes the socket did not take) until its session's next
//! deadline. Whoever routes a line to it writes it straight to the socket,
//! without blocking, after unlocking the core: no thread switch per
//! delivery. Only when the socket is full, or the connection must close,
//! is the owner thread woken, by a signal ([`WAKE_SIGNAL`]) that stays
//! blocked except inside `ppoll`, so a wake-up can never be lost between
//! a look at the queue and the sleep.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::conn::{Conn, WAKE_SIGNAL};
use super::session::{End, Handling, Input, Session, read_error, received, take, write_error};
use super::{Backend, ChatConfig, ConnSettings, Local};
use crate::chat::ClientId;
use crate::engine::Interrupt;
use crate::server::threads::Registered;
use crate::server::wire::Wire;
use crate::server::{FLUSH_TIMEOUT, ServerConfig};

extern "C" fn on_wake(_: libc::c_int) {}

/// Installs the wake-up signal's (empty) handler, without SA_RESTART so
/// that `ppoll` returns.
pub(crate) fn install_wake_handler() -> io::Result<()> {
    // SAFETY: a zeroed sigaction with a valid handler and an empty mask.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_wake as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(WAKE_SIGNAL, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Blocks the wake-up signal in this thread; the mask to sleep with (the
/// previous one, without it).
fn block_wake_signal() -> libc::sigset_t {
    // SAFETY: sigset operations on local, initialised sets.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, WAKE_SIGNAL);
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut previous);
        libc::sigdelset(&mut previous, WAKE_SIGNAL);
        previous
    }
}

/// A connection thread's send queue is its handle: stopping nudges the
/// thread, cutting shuts its socket down.
impl crate::server::threads::Handle for Arc<Conn> {
    fn stop(&self) {
        self.nudge();
    }

    fn cut(&self) {
        Conn::cut(self);
    }
}

/// Serves on `listener` until `interrupt` is set.
pub(crate) fn serve(
    listener: TcpListener,
    chat: &ChatConfig,
    settings: Arc<ConnSettings>,
    config: &ServerConfig,
    interrupt: &Interrupt,
) -> io::Result<()> {
    install_wake_handler()?;
    let backend = Arc::new(Local::new(chat, true));
    let tick = || backend.expire(Instant::now());
    let start = |stream: TcpStream, peer: SocketAddr, id: u64| {
        let id = ClientId(id);
        // TLS: only the owner thread can encrypt, so routers do not write
        // directly.
        let direct = settings.tls.is_none();
        let conn = Arc::new(Conn::for_thread(
            id,
            settings.limits.sendq,
            stream.as_raw_fd(),
            direct,
            Arc::clone(&settings.budget),
        ));
        let (backend, settings, handle) = (Arc::clone(&backend), Arc::clone(&settings), Arc::clone(&conn));
        let body = move |registered: Registered<Arc<Conn>>| {
            connection(stream, peer, conn, &*backend, &settings, registered.stopping_flag());
        };
        Some((handle, body))
    };
    crate::server::threads::serve(listener, config, interrupt, tick, start, || backend.stop())
}

/// Writes what the non-blocking socket takes of `out`, removing it.
fn send_some(mut stream: &TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    let mut sent = 0;
    while sent < out.len() {
        match stream.write(&out[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    out.drain(..sent);
    if out.is_empty() {
        *out = Vec::new();
    }
    Ok(())
}

/// Sleeps until `fd` has `events`, a wake-up signal, or `deadline`; the
/// events that happened (0: timeout or signal).
fn wait(fd: i32, events: libc::c_short, deadline: Instant, mask: &libc::sigset_t) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    let left = deadline.saturating_duration_since(Instant::now());
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
    };
    // SAFETY: one valid pollfd; valid timespec and signal mask.
    match unsafe { libc::ppoll(&mut pfd, 1, &ts, mask) } {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) }
        }
        _ => Ok(pfd.revents),
    }
}

pub(crate) fn connection<B: Backend>(
    mut stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
    backend: &B,
    settings: &ConnSettings,
    stopping: &AtomicBool,
) {
    let mask = block_wake_signal();
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let wire = stream.set_nonblocking(true).and_then(|()| Wire::new(settings.tls.as_ref()));
    let mut wire = match wire {
        Ok(wire) => wire,
        Err(e) => {
            eprintln!("trident: cannot serve {peer}: {e}");
            // Nobody may shut `fd` down once it is closed.
            conn.owner_gone();
            return;
        }
    };
    let id = conn.id;
    // SAFETY: pthread_self has no preconditions.
    conn.set_owner(unsafe { libc::pthread_self() });
    // TLS: wire bytes the socket has not taken yet.
    let mut out = Vec::new();
    // A panic in this connection's handling ends this connection only:
    // `stream` and `conn` outlive it here, so the owner is marked gone
    // (no more signals or writes to `fd`) before the descriptor closes,
    // and the core is told it left, like any other end.
    let served = panic::catch_unwind(AssertUnwindSafe(|| {
        backend.open(&conn, peer.ip());
        serve_loop(&mut stream, fd, id, backend, settings, stopping, &conn, &mut wire, &mut out, &mask)
    }));
    let end = served.unwrap_or_else(|_| {
        super::contained_panic(peer);
        End::Gone(super::INTERNAL_ERROR.into())
    });
    // From here on nobody else writes to the socket.
    conn.owner_gone();
    // Its slot is free before the client can see the end (a client that
    // reconnects once it has is admitted): the core is in this process,
    // released by the time `leave` returns.
    let _released = super::leave(backend, id, end.reason(), peer);
    if !matches!(end, End::Gone(_)) {
        let _ = panic::catch_unwind(AssertUnwindSafe(|| {
            last_words(&mut stream, &end, &conn, &mut wire, &mut out, settings)
        }));
    }
}

/// A connection's loop: read, pass lines on, write, until it ends.
#[allow(clippy::too_many_arguments)]
fn serve_loop<B: Backend>(
    stream: &mut TcpStream,
    fd: i32,
    id: ClientId,
    backend: &B,
    settings: &ConnSettings,
    stopping: &AtomicBool,
    conn: &Conn,
    wire: &mut Wire,
    out: &mut Vec<u8>,
    mask: &libc::sigset_t,
) -> End {
    let tls = wire.is_tls();
    let mut session = Session::new(&settings.limits, Instant::now());
    let mut buf = [0u8; 4096];
    let mut handling = Handling::new(id, backend, conn, settings);
    loop {
        if stopping.load(Ordering::SeqCst) {
            break End::Stop;
        }
        let (status, pending) = if tls {
            let status = if out.is_empty() { take(wire, conn, out) } else { conn.status() };
            if let Err(e) = send_some(stream, out) {
                break End::Gone(write_error(&e));
            }
            (status, !out.is_empty())
        } else {
            conn.flush(true)
        };
        if status.overflowed || (status.closing && !pending) {
            break End::Closed;
        }
        if status.broken {
            break End::Gone("Write error: Connection reset by peer".into());
        }
        // Closing (QUIT, a limit): nothing more is read from it.
        handling.closing |= status.closing;
        let mut interest = 0;
        if !handling.closing {
            interest |= libc::POLLIN;
        }
        if pending {
            interest |= libc::POLLOUT;
        }
        let revents = match wait(fd, interest, session.deadline(), mask) {
            Ok(r) => r,
            Err(e) => break End::Gone(read_error(&e)),
        };
        let now = Instant::now();
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 && !handling.closing {
            let read = match stream.read(&mut buf) {
                Ok(0) => Input::Eof,
                Ok(n) => received(wire, buf.get(..n).unwrap_or_default(), out, &mut session, now),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Input::NotYet,
                Err(e) => Input::Failed(read_error(&e)),
            };
            if let Some(reason) = handling.input(read, &mut session, now) {
                break End::Gone(reason);
            }
        }
        if now >= session.deadline() {
            handling.clock(&mut session, now);
        }
    }
}

/// What a connection that did not just vanish is told last.
fn last_words(
    stream: &mut TcpStream,
    end: &End,
    conn: &Conn,
    wire: &mut Wire,
    out: &mut Vec<u8>,
    settings: &ConnSettings,
) {
    match end {
        End::Stop => {
            take(wire, conn, out);
            wire.last_words(settings.farewell.as_bytes(), out);
            if stream.set_nonblocking(false).is_ok() && stream.set_write_timeout(Some(FLUSH_TIMEOUT)).is_ok() {
                let _ = stream.write_all(out);
            }
            let _ = stream.shutdown(Shutdown::Write);
        }
        End::Closed => {
            let mut bye = Vec::new();
            wire.last_words(b"", &mut bye);
            if !bye.is_empty()
                && stream.set_nonblocking(false).is_ok()
                && stream.set_write_timeout(Some(FLUSH_TIMEOUT)).is_ok()
            {
                let _ = stream.write_all(&bye);
            }
            let _ = stream.shutdown(Shutdown::Write);
        }
        End::Gone(_) => {}
    }
}
