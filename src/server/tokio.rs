//! The async server: a tokio task per connection. Also the event loop of
//! each worker process of the processes engine (on a current-thread
//! runtime).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Closed, ConnLimits, FLUSH_TIMEOUT, Flow, Protocol, TICK};
use crate::engine::Interrupt;

/// Serves `P` on `listener` until `interrupt` is set. `threads` = 1 runs
/// everything on the calling thread; more builds a multi-thread runtime.
pub(crate) fn serve<P: Protocol>(
    listener: std::net::TcpListener,
    protocol: Arc<P::Config>,
    limits: ConnLimits,
    threads: usize,
    grace: Duration,
    interrupt: &Interrupt,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = runtime(threads)?;
    let interrupt = interrupt.clone();
    let result = runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        accept_loop::<P>(listener, protocol, limits, &interrupt, grace).await;
        Ok(())
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// A server's runtime: `threads` = 1 runs everything on the calling
/// thread; more builds a multi-thread runtime.
pub(crate) fn runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
}

async fn accept_loop<P: Protocol>(
    listener: TcpListener,
    protocol: Arc<P::Config>,
    limits: ConnLimits,
    interrupt: &Interrupt,
    grace: Duration,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    // Connections being served (the JoinSet also counts finished tasks
    // not yet joined).
    let live = Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if limits.max_connections.is_some_and(|max| live.load(Ordering::Acquire) >= max) {
                        P::refused(&protocol, peer);
                        drop(stream);
                        continue;
                    }
                    let slot = Slot::take(&live);
                    let task = connection::<P>(stream, peer, Arc::clone(&protocol), limits.idle_timeout, slot, stop_rx.clone());
                    connections.spawn(task);
                }
                Err(e) => accept_failed(&e).await,
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => report_panic(joined),
            _ = tick.tick() => if interrupt.is_set() { break },
        }
    }
    drop(listener);
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
pub(crate) async fn accept_failed(e: &io::Error) {
    if e.kind() != io::ErrorKind::ConnectionAborted {
        eprintln!("trident: accept: {e}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: that is a stop too.
    let _ = stop.wait_for(|&s| s).await;
}

/// A connection's place in the count of live ones, given back on drop
/// (also when its task panics or is cut).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(live: &Arc<AtomicUsize>) -> Slot {
        live.fetch_add(1, Ordering::AcqRel);
        Slot(Arc::clone(live))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
    mut stop: watch::Receiver<bool>,
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
                () = stopped(&mut stop) => break 'conn Closed::Shutdown,
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
            () = stopped(&mut stop) => break Closed::Shutdown,
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
