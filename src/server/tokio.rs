//! The async engine: a tokio task per connection. Also the event loop of
//! each worker process of the processes engine (on a current-thread
//! runtime).
//!
//! [`serve`] is the accept loop and the stop of every async server: on
//! stop, every connection task sees its [`Stop`] and says its last words;
//! those still running after the grace period are cut (aborted). Echo's
//! connections are [`serve_protocol`]'s; chat's shell has its own
//! connection task on the same accept loop.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Admitted, Closed, ConnLimits, FLUSH_TIMEOUT, Flow, Protocol, Slot, TICK};
use crate::engine::Interrupt;

/// A connection task's view of the server's stop.
#[derive(Clone, Debug)]
pub(crate) struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves once the server stops.
    pub async fn stopped(&mut self) {
        // An error means the sender is gone: that is a stop too.
        let _ = self.0.wait_for(|&s| s).await;
    }

    /// A stop that never comes, for tests (dropping the sender stops it).
    #[cfg(test)]
    pub fn new() -> (watch::Sender<bool>, Stop) {
        let (tx, rx) = watch::channel(false);
        (tx, Stop(rx))
    }
}

/// Accepts on `listener` until `interrupt` is set, a task per connection:
/// `accept(stream, peer, stop)` returns the connection's task, or `None`
/// to drop it. Runs on a new runtime of `threads` threads (1: the calling
/// thread); `start` runs first, inside it (to spawn helper tasks), `tick`
/// every [`TICK`], and `stopping` once the loop ends, before the
/// connections are told to stop.
#[allow(clippy::too_many_arguments)]
pub(crate) fn serve<F: Future<Output = ()> + Send + 'static>(
    listener: std::net::TcpListener,
    threads: usize,
    grace: Duration,
    interrupt: &Interrupt,
    start: impl FnOnce(),
    tick: impl FnMut(),
    accept: impl FnMut(TcpStream, SocketAddr, Stop) -> Option<F>,
    stopping: impl FnOnce(),
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = runtime(threads)?;
    let interrupt = interrupt.clone();
    let result = runtime.block_on(async move {
        start();
        let listener = TcpListener::from_std(listener)?;
        accept_loop(listener, &interrupt, grace, tick, accept, stopping).await;
        Ok(())
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// Serves `P` on `listener` until `interrupt` is set (see [`serve`]).
pub(crate) fn serve_protocol<P: Protocol>(
    listener: std::net::TcpListener,
    protocol: Arc<P::Config>,
    limits: ConnLimits,
    threads: usize,
    grace: Duration,
    interrupt: &Interrupt,
) -> io::Result<()> {
    let admitted = Admitted::default();
    let accept = move |stream, peer, stop| {
        let Some(slot) = admitted.take(limits.max_connections) else {
            P::refused(&protocol, peer);
            return None;
        };
        Some(connection::<P>(stream, peer, Arc::clone(&protocol), limits.idle_timeout, slot, stop))
    };
    serve(listener, threads, grace, interrupt, || {}, || {}, accept, || {})
}

/// A server's runtime: `threads` = 1 runs everything on the calling
/// thread; more builds a multi-thread runtime.
fn runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
}

async fn accept_loop<F: Future<Output = ()> + Send + 'static>(
    listener: TcpListener,
    interrupt: &Interrupt,
    grace: Duration,
    mut tick: impl FnMut(),
    mut accept: impl FnMut(TcpStream, SocketAddr, Stop) -> Option<F>,
    stopping: impl FnOnce(),
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Some(task) = accept(stream, peer, Stop(stop_rx.clone())) {
                        connections.spawn(task);
                    }
                }
                Err(e) => accept_failed(&e).await,
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => report_panic(joined),
            _ = ticker.tick() => {
                if interrupt.is_set() { break }
                tick();
            }
        }
    }
    drop(listener);
    stopping();
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
        while let Some(joined) = connections.join_next().await {
            report_panic(joined);
        }
    })
    .await;
    if drained.is_err() {
        eprintln!("trident: {} connection(s) did not close in time; cutting them", connections.len());
        connections.shutdown().await;
    }
}

fn report_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            eprintln!("trident: a connection task panicked; that connection is closed");
        }
    }
}

/// EMFILE and friends: wait a little instead of spinning; a connection
/// aborted before it was accepted is nobody's business.
async fn accept_failed(e: &io::Error) {
    if e.kind() != io::ErrorKind::ConnectionAborted {
        eprintln!("trident: accept: {e}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits `idle` (forever if None).
async fn idle_for(idle: Option<Duration>) {
    match idle {
        Some(idle) => tokio::time::sleep(idle).await,
        None => std::future::pending().await,
    }
}

async fn connection<P: Protocol>(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: Arc<P::Config>,
    idle: Option<Duration>,
    slot: Slot,
    mut stop: Stop,
) {
    let _ = stream.set_nodelay(true);
    let mut out = Vec::new();
    let mut sent = 0;
    let mut proto = P::connect(&config, peer, &mut out);
    let mut buf = vec![0u8; P::read_size(&config).max(1)];
    let mut closing = false;
    let how = 'conn: loop {
        // Flush what the protocol produced; `write` is cancel-safe, so a
        // stop in the middle leaves `sent` exact.
        while sent < out.len() {
            tokio::select! {
                written = stream.write(&out[sent..]) => match written {
                    Ok(0) => break 'conn Closed::Reset,
                    Ok(n) => sent += n,
                    Err(e) => break 'conn Closed::from_error(e),
                },
                () = stop.stopped() => break 'conn Closed::Shutdown,
                () = idle_for(idle) => break 'conn Closed::Idle,
            }
        }
        out.clear();
        sent = 0;
        if closing {
            break Closed::ByProtocol;
        }
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) => break Closed::Eof,
                Ok(n) => closing = proto.receive(buf.get(..n).unwrap_or_default(), &mut out) == Flow::Close,
                Err(e) => break Closed::from_error(e),
            },
            () = stop.stopped() => break Closed::Shutdown,
            () = idle_for(idle) => break Closed::Idle,
        }
    };
    if matches!(how, Closed::Shutdown) {
        proto.shutdown(&mut out);
        if sent < out.len() {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, stream.write_all(&out[sent..])).await;
        }
    }
    if matches!(how, Closed::Eof | Closed::ByProtocol | Closed::Shutdown) {
        let _ = stream.shutdown().await;
    }
    // The slot is free before the log says the connection is closed.
    drop(slot);
    proto.closed(how);
}
