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

use super::conn::Conn;
use super::session::{End, Handling, Input, Session, read_error, received, take, write_error};
use super::{Backend, ChatConfig, ConnSettings, Local};
use crate::chat::ClientId;
use crate::engine::Interrupt;
use crate::server::tokio::Stop;
use crate::server::wire::Wire;
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
    settings: Arc<ConnSettings>,
    config: &ServerConfig,
    interrupt: &Interrupt,
) -> io::Result<()> {
    let backend = Arc::new(Local::new(chat, false));
    let expiring = Arc::clone(&backend);
    let tick = move || expiring.expire(Instant::now());
    let stopping = Arc::clone(&backend);
    // Everyone leaves at once: nobody's quit is broadcast.
    let stopping = move || stopping.stop();
    let mut next = 0u64;
    let accept = move |stream, peer, stop| {
        next += 1;
        Some(connection(stream, peer, ClientId(next), Arc::clone(&backend), Arc::clone(&settings), stop))
    };
    crate::server::tokio::serve(listener, config.workers, config.grace, interrupt, || {}, tick, accept, stopping)
}

/// One connection, from accept to close. A panic in its handling ends
/// this connection only: the core is told it left, like any other end.
pub(crate) async fn connection<B: Backend>(
    stream: TcpStream,
    peer: SocketAddr,
    id: ClientId,
    backend: Arc<B>,
    settings: Arc<ConnSettings>,
    stop: Stop,
) {
    // A panic once the core was told it left is contained there.
    let served = AssertUnwindSafe(serve_connection(stream, peer, id, &*backend, &settings, stop)).catch_unwind().await;
    if served.is_err() {
        super::contained_panic(peer);
        super::leave(&*backend, id, super::INTERNAL_ERROR, peer);
    }
}

/// Serves one connection, until the core is told it left and its last
/// words are sent.
async fn serve_connection<B: Backend>(
    stream: TcpStream,
    peer: SocketAddr,
    id: ClientId,
    backend: &B,
    settings: &ConnSettings,
    mut stop: Stop,
) {
    let _ = stream.set_nodelay(true);
    let mut wire = match Wire::new(settings.tls.as_ref()) {
        Ok(wire) => wire,
        Err(e) => {
            eprintln!("trident: cannot serve {peer}: {e}");
            return;
        }
    };
    let conn = Arc::new(Conn::for_task(id, settings.limits.sendq, Arc::clone(&settings.budget)));
    backend.open(&conn, peer.ip());
    let mut session = Session::new(&settings.limits, Instant::now());
    let mut out: Vec<u8> = Vec::new();
    let mut sent = 0;
    let mut handling = Handling::new(id, backend, &conn, settings);
    let end = loop {
        if sent == out.len() {
            sent = 0;
            // Written: free the buffer (an idle connection holds none; the
            // queue allocates anew for the next batch).
            out = Vec::new();
            let status = take(&mut wire, &conn, &mut out);
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
                    Ok(n) => received(&mut wire, buf.get(..n).unwrap_or_default(), &mut out, &mut session, now),
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
    // Its slot is free before the client can see the end (a client that
    // reconnects once it has is admitted). A core in another process
    // answers within a round trip; a stopping server admits nobody.
    let released = super::leave(backend, id, end.reason(), peer);
    let mut stream = stream;
    let last_words = async move {
        if let Some(released) = released
            && !matches!(end, End::Stop)
        {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, released).await;
        }
        match &end {
            End::Stop => {
                // What was queued, then the last words; bounded in time.
                take(&mut wire, &conn, &mut out);
                wire.last_words(settings.farewell.as_bytes(), &mut out);
                let _ = tokio::time::timeout(FLUSH_TIMEOUT, stream.write_all(&out[sent..])).await;
                let _ = stream.shutdown().await;
            }
            End::Closed => {
                let mut bye = Vec::new();
                wire.last_words(b"", &mut bye);
                if !bye.is_empty() {
                    let _ = tokio::time::timeout(FLUSH_TIMEOUT, stream.write_all(&bye)).await;
                }
                let _ = stream.shutdown().await;
            }
            End::Gone(_) => {}
        }
    };
    // On the heap: only a connection that ends holds it, not every idle
    // task. A panic there is contained here: the core knows it left.
    if AssertUnwindSafe(Box::pin(last_words)).catch_unwind().await.is_err() {
        super::contained_panic(peer);
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
            let config = ChatConfig {
                hub: crate::chat::HubConfig::default(),
                limits: Limits::default(),
                tls: None,
                log: Default::default(),
                store: None,
            };
            let backend = Arc::new(Local::new(&config, false));
            let settings = Arc::new(ConnSettings::new(&config).expect("settings"));
            let (_stop, stop) = Stop::new();
            let task = connection(stream, addr, ClientId(1), backend, settings, stop);
            let size = std::mem::size_of_val(&task);
            // 1,432 bytes in a debug build; an unboxed TLS session made it ~1 KiB more.
            assert!(size <= 1536, "a connection task is {size} bytes");
        });
    }
}
