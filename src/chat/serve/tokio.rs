//! The async chat shell: a tokio task per connection. Also the event loop
//! of each worker process of the processes engine (with a backend that
//! talks to the parent).
//!
//! A connection task waits for whichever comes first: bytes to read (a
//! readiness wait, then a `try_read` into a per-thread buffer, so an idle
//! connection holds no read buffer), its send queue's wake-up, the socket
//! becoming writable while a write is pending, its session's next
//! deadline (keep-alive, flood release), or the server's stop.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::conn::{Conn, Status};
use super::session::{Due, Session};
use super::tls::{Opened, Tls};
use super::{Backend, ChatConfig, Local, Shell};
use crate::chat::{ClientId, Line};
use crate::engine::Interrupt;
use crate::server::tokio::Stop;
use crate::server::{FLUSH_TIMEOUT, ServerConfig};

/// One read's most bytes.
const READ_SIZE: usize = 16 * 1024;

thread_local! {
    /// The read buffer of every connection on this thread.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_SIZE]);
}

/// The async engine: a runtime of `config.workers` threads (1: current
/// thread), a task per connection, the core behind a mutex.
pub(crate) fn serve(
    listener: std::net::TcpListener,
    chat: &ChatConfig,
    shell: Arc<Shell>,
    config: &ServerConfig,
    interrupt: &Interrupt,
) -> io::Result<()> {
    let backend = Arc::new(Local::new(chat, false));
    let expiring = Arc::clone(&backend);
    let tick = move || expiring.expire(Instant::now());
    let mut next = 0u64;
    let accept = move |stream, peer, stop| {
        next += 1;
        Some(connection(stream, peer, ClientId(next), Arc::clone(&backend), Arc::clone(&shell), stop))
    };
    crate::server::tokio::serve(listener, config.workers, config.grace, interrupt, || {}, tick, accept)
}

/// How a connection task ends.
enum End {
    /// The core closed it (QUIT, ERROR sent) or cut it (send queue).
    Closed,
    /// The peer went away or the socket failed; the reason its channels see.
    Gone(String),
    /// The server is stopping.
    Stop,
}

/// One connection, from accept to close. A panic in its handling ends
/// this connection only: the core is told it left, like any other end.
pub(crate) async fn connection<B: Backend>(
    stream: TcpStream,
    peer: SocketAddr,
    id: ClientId,
    backend: Arc<B>,
    shell: Arc<Shell>,
    stop: Stop,
) {
    let served = AssertUnwindSafe(serve_connection(stream, peer, id, &*backend, &shell, stop)).catch_unwind().await;
    let reason = served.unwrap_or_else(|_| {
        super::contained_panic(peer);
        Some(super::INTERNAL_ERROR.into())
    });
    if let Some(reason) = reason {
        super::leave(&*backend, id, &reason, peer);
    }
}

/// Serves one connection; the reason it ended (None if it never opened).
async fn serve_connection<B: Backend>(
    stream: TcpStream,
    peer: SocketAddr,
    id: ClientId,
    backend: &B,
    shell: &Shell,
    mut stop: Stop,
) -> Option<String> {
    let _ = stream.set_nodelay(true);
    let mut wire = match Wire::new(shell) {
        Ok(wire) => wire,
        Err(e) => {
            eprintln!("trident: cannot serve {peer}: {e}");
            return None;
        }
    };
    let conn = Arc::new(Conn::for_task(id, shell.limits.sendq, Arc::clone(&shell.budget)));
    backend.open(&conn, peer.ip());
    let mut session = Session::new(&shell.limits, Instant::now());
    let mut out: Vec<u8> = Vec::new();
    let mut sent = 0;
    let mut handling = Handling::new(id, backend, &conn, shell);
    let end = loop {
        if sent == out.len() {
            sent = 0;
            // Written: free the buffer (an idle connection holds none; the
            // queue allocates anew for the next batch).
            out = Vec::new();
            let status = wire.take(&conn, &mut out);
            if status.overflowed {
                break End::Closed;
            }
            if out.is_empty() && status.closing {
                break End::Closed;
            }
            // Closing (QUIT, a limit): nothing more is read from it.
            handling.closing |= status.closing;
        }
        let deadline = session.deadline();
        tokio::select! {
            biased;
            () = stop.stopped() => break End::Stop,
            () = conn.notified(), if out.is_empty() => {}
            writable = stream.writable(), if sent < out.len() => {
                if let Err(e) = writable {
                    break End::Gone(format!("Write error: {e}"));
                }
                match stream.try_write(&out[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => break End::Gone(write_error(&e)),
                }
            }
            readable = stream.readable(), if !handling.closing => {
                if let Err(e) = readable {
                    break End::Gone(format!("Read error: {e}"));
                }
                let now = Instant::now();
                let read = READ_BUF.with_borrow_mut(|buf| match stream.try_read(buf) {
                    Ok(0) => Input::Eof,
                    Ok(n) => wire.received(buf.get(..n).unwrap_or_default(), &mut out, &mut session, now),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Input::NotYet,
                    Err(e) => Input::Failed(read_error(&e)),
                });
                if let Some(reason) = handling.input(read, &mut session, now) {
                    break End::Gone(reason);
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => handling.clock(&mut session, Instant::now()),
        }
    };
    let mut stream = stream;
    match &end {
        End::Stop => {
            // What was queued, then the last words; bounded in time.
            wire.take(&conn, &mut out);
            wire.last_words(Some(&shell.farewell), &mut out);
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, stream.write_all(&out[sent..])).await;
            let _ = stream.shutdown().await;
        }
        End::Closed => {
            let mut bye = Vec::new();
            wire.last_words(None, &mut bye);
            if !bye.is_empty() {
                let _ = tokio::time::timeout(FLUSH_TIMEOUT, stream.write_all(&bye)).await;
            }
            let _ = stream.shutdown().await;
        }
        End::Gone(_) => {}
    }
    Some(match end {
        End::Gone(reason) => reason,
        End::Closed => "Connection closed".into(),
        End::Stop => "Server shutting down".into(),
    })
}

/// What one read brought.
pub(crate) enum Input {
    /// Bytes, fed to the session.
    Data,
    /// Nothing after all (a spurious readiness).
    NotYet,
    /// End of stream (or of the TLS session).
    Eof,
    /// The session refused them: too many lines waiting.
    Flood(String),
    /// The socket or the TLS session failed: the reason.
    Failed(String),
}

/// What a connection does with what it read and with its clock, the same
/// in both shells (tasks and threads).
pub(crate) struct Handling<'a, B: Backend> {
    pub id: ClientId,
    pub backend: &'a B,
    pub conn: &'a Conn,
    pub shell: &'a Shell,
    events: Vec<crate::chat::LineEvent>,
    /// The shell asked the core to close this connection: read no more.
    pub closing: bool,
}

impl<'a, B: Backend> Handling<'a, B> {
    pub fn new(id: ClientId, backend: &'a B, conn: &'a Conn, shell: &'a Shell) -> Self {
        Handling { id, backend, conn, shell, events: Vec::new(), closing: false }
    }

    /// Lines the flood bucket lets through now go to the core; none once
    /// the connection is closing (after its QUIT nothing more is read).
    fn pass(&mut self, session: &mut Session, now: Instant) {
        if self.closing {
            return;
        }
        session.ready(now, &mut self.events);
        if !self.events.is_empty() {
            self.backend.events(self.id, &mut self.events);
        }
        let status = self.conn.status();
        self.closing |= status.closing || status.overflowed;
    }

    fn close(&mut self, reason: &str) {
        self.closing = true;
        self.backend.close(self.id, reason);
    }

    /// One read's result; `Some(reason)` when the connection is gone.
    pub fn input(&mut self, input: Input, session: &mut Session, now: Instant) -> Option<String> {
        match input {
            Input::Data => self.pass(session, now),
            Input::NotYet => {}
            Input::Eof => return Some("Remote host closed the connection".into()),
            Input::Failed(reason) => return Some(reason),
            Input::Flood(reason) => self.close(&reason),
        }
        None
    }

    /// The session's deadline has come: held lines, keep-alive.
    pub fn clock(&mut self, session: &mut Session, now: Instant) {
        if session.holding() {
            self.pass(session, now);
        }
        match session.tick(now) {
            Due::Nothing => {}
            Due::Ping => {
                self.conn.push(self.shell.ping.as_bytes());
            }
            Due::Close(reason) => self.close(&reason),
        }
    }
}

/// The bytes on the wire: the queue's plaintext as it is, or through TLS.
pub(crate) struct Wire {
    /// Boxed: a TLS session is large, and a plain connection's task
    /// should not carry its size.
    tls: Option<Box<Tls>>,
    plain: Vec<u8>,
}

impl Wire {
    pub fn new(shell: &Shell) -> io::Result<Wire> {
        let tls = shell.tls.as_ref().map(|config| Tls::new(config).map(Box::new)).transpose()?;
        Ok(Wire { tls, plain: Vec::new() })
    }

    /// Whether this is a TLS connection.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Moves what `conn` has queued to `out`, as wire bytes.
    pub fn take(&mut self, conn: &Conn, out: &mut Vec<u8>) -> Status {
        match &mut self.tls {
            None => conn.take(out),
            Some(tls) => {
                let status = conn.take(&mut self.plain);
                tls.seal(&self.plain, out);
                self.plain = Vec::new();
                status
            }
        }
    }

    /// Wire bytes read: their plaintext goes to `session`; what TLS has to
    /// answer (handshake) is appended to `out`.
    pub fn received(&mut self, raw: &[u8], out: &mut Vec<u8>, session: &mut Session, now: Instant) -> Input {
        let data = match &mut self.tls {
            None => raw,
            Some(tls) => {
                let opened = tls.open(raw, &mut self.plain);
                tls.flush(out);
                match opened {
                    Ok(Opened::Data) => &self.plain[..],
                    Ok(Opened::Closed) => return Input::Eof,
                    Err(reason) => return Input::Failed(reason),
                }
            }
        };
        let read = match session.read(data, now) {
            Ok(()) => Input::Data,
            Err(flood) => Input::Flood(flood),
        };
        self.plain.clear();
        read
    }

    /// Appends `line` (if any) and, for TLS, the end of the session.
    pub fn last_words(&mut self, line: Option<&Line>, out: &mut Vec<u8>) {
        match &mut self.tls {
            None => out.extend_from_slice(line.map_or(&b""[..], |l| l.as_bytes())),
            Some(tls) => {
                tls.seal(line.map_or(&b""[..], |l| l.as_bytes()), out);
                tls.close(out);
            }
        }
    }
}

pub(crate) fn read_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "Read error: Connection reset by peer".into(),
        _ => format!("Read error: {e}"),
    }
}

pub(crate) fn write_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => "Write error: Connection reset by peer".into(),
        _ => format!("Write error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::serve::Limits;

    /// An idle connection costs its task: the future's size matters (the
    /// bench's goal is 4 KiB per idle connection, everything included).
    #[test]
    fn a_connection_task_stays_small() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let stream = TcpStream::connect(addr).await.expect("connect");
            let config = ChatConfig { hub: crate::chat::HubConfig::default(), limits: Limits::default(), tls: None };
            let backend = Arc::new(Local::new(&config, false));
            let shell = Arc::new(Shell::new(&config).expect("shell"));
            let (_stop, stop) = Stop::new();
            let task = connection(stream, addr, ClientId(1), backend, shell, stop);
            let size = std::mem::size_of_val(&task);
            // 1,312 bytes in a debug build; an unboxed TLS session made it ~1 KiB more.
            assert!(size <= 1536, "a connection task is {size} bytes");
        });
    }
}
