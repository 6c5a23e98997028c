//! How connections are served: the server layer.
//!
//! The counterpart of [`crate::engine`] for long-lived connections: the
//! accept loop, admission, the stop (grace period, then cut) and the
//! supervision of worker processes, written once per engine and used by
//! every service:
//!
//! - **async** ([`tokio`]): a tokio task per connection on a multi-thread
//!   runtime (`--workers` threads, default one per core);
//! - **threads** ([`threads`]): an OS thread per connection with a small
//!   stack, the accept loop on the calling thread;
//! - **processes** ([`processes`]): `--workers` pre-forked worker processes (this
//!   binary re-run as `trident __serve-worker SERVICE SETTINGS`) that
//!   inherit the one listening socket and accept on it, each running the
//!   async engine on one thread.
//!
//! A service whose connections are independent is a [`Protocol`]: sans-IO,
//! handed the bytes read from one connection, it appends the bytes to send
//! (or asks to close), so it answers only its sender; echo is one. The
//! chat server (`chat::serve`) adds a shared core that routes lines into
//! every connection's send queue, with its own connection loops on the
//! same accept loops.
//!
//! Every engine stops the same way on Ctrl-C/SIGTERM ([`Interrupt`]): stop
//! accepting, give every connection its last words, flush them for a
//! bounded time, close, and return within [`ServerConfig::grace`] plus a
//! little.

pub mod processes;
pub mod threads;
pub mod tokio;
pub(crate) mod wire;

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{EngineKind, Interrupt};

/// How often accept loops look at the [`Interrupt`] flag.
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// How long last words ([`Protocol::shutdown`]) may take to be sent.
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// What a protocol wants after handling some input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep the connection open and read on.
    Continue,
    /// Send what was produced, then close the connection.
    Close,
}

/// Limits a protocol asks the server layer to hold every connection to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections served at once (per worker process: its share); one
    /// more is accepted and closed at once. None: no limit.
    pub max_connections: Option<usize>,
    /// A connection that sends nothing (or takes nothing we send) for
    /// this long is closed ([`Closed::Idle`]). None: never.
    pub idle_timeout: Option<Duration>,
}

impl ConnLimits {
    /// This limit for one of `workers` worker processes: a share of the
    /// connections (at least one).
    pub fn share(self, workers: usize) -> ConnLimits {
        let max_connections = self.max_connections.map(|n| (n / workers.max(1)).max(1));
        ConnLimits { max_connections, ..self }
    }
}

/// The connections admitted under [`ConnLimits::max_connections`]: a
/// connection's [`Slot`] is given back before its close is logged (so a
/// client that saw it logged can connect again at once), apart from the
/// engine's own count of live connections, which waits for that line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Admitted(Arc<AtomicUsize>);

impl Admitted {
    /// A slot, unless `max` are taken already (one accept loop takes them).
    pub fn take(&self, max: Option<usize>) -> Option<Slot> {
        if max.is_some_and(|max| self.0.load(Ordering::Acquire) >= max) {
            return None;
        }
        self.0.fetch_add(1, Ordering::AcqRel);
        Some(Slot(Arc::clone(&self.0)))
    }
}

/// A connection's place under the cap; given back on drop (also when its
/// task or thread panics or is cut).
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a connection ended, told to [`Protocol::closed`].
#[derive(Debug)]
pub enum Closed {
    /// The peer closed its side (end of stream).
    Eof,
    /// The peer reset the connection (ECONNRESET, EPIPE...): an abrupt disconnect.
    Reset,
    /// The protocol returned [`Flow::Close`].
    ByProtocol,
    /// The server is shutting down.
    Shutdown,
    /// Nothing moved for [`ConnLimits::idle_timeout`].
    Idle,
    /// Any other I/O error.
    Error(io::Error),
}

impl Closed {
    /// Classifies a read or write error.
    pub(crate) fn from_error(e: io::Error) -> Closed {
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
                Closed::Reset
            }
            _ => Closed::Error(e),
        }
    }
}

/// One connection's protocol state machine, sans-IO: the same code runs on
/// every engine. One value per connection; calls are never concurrent.
pub trait Protocol: Sized + Send + 'static {
    /// The name `trident __serve-worker NAME` uses to pick this service.
    const NAME: &'static str;

    /// Protocol-wide settings, shared by every connection; serialised (as
    /// JSON) on the command line of worker processes.
    type Config: Serialize + DeserializeOwned + Send + Sync + fmt::Debug + 'static;

    /// The limits every connection is held to.
    fn limits(config: &Self::Config) -> ConnLimits {
        let _ = config;
        ConnLimits::default()
    }

    /// One more connection than [`ConnLimits::max_connections`] came from
    /// `peer`; it is closed at once.
    fn refused(config: &Self::Config, peer: SocketAddr) {
        let _ = (config, peer);
    }

    /// The most bytes handed to [`Protocol::receive`] at once (one read).
    fn read_size(config: &Self::Config) -> usize {
        let _ = config;
        16 * 1024
    }

    /// A connection from `peer` was accepted; `out` is sent first.
    fn connect(config: &Arc<Self::Config>, peer: SocketAddr, out: &mut Vec<u8>) -> Self;

    /// `data` was read (one read, at most [`Protocol::read_size`] bytes);
    /// append what to send to `out`.
    fn receive(&mut self, data: &[u8], out: &mut Vec<u8>) -> Flow;

    /// The server is stopping: append last words to `out` (sent within
    /// about a second, then the connection is closed).
    fn shutdown(&mut self, out: &mut Vec<u8>) {
        let _ = out;
    }

    /// The connection is gone, and why.
    fn closed(self, how: Closed);
}

/// Validated server options.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Which engine serves the connections.
    pub kind: EngineKind,
    /// Where to listen; port 0 picks a free port (the bound address is printed).
    pub listen: SocketAddr,
    /// Worker processes (processes) or runtime threads (async); at least 1.
    /// Unused by threads (one thread per connection).
    pub workers: usize,
    /// Stack size of connection threads (threads), in bytes.
    pub thread_stack: usize,
    /// On shutdown, how long connections get to close before they are cut.
    pub grace: Duration,
}

impl ServerConfig {
    /// The defaults for `kind` listening on `listen`.
    pub fn new(kind: EngineKind, listen: SocketAddr) -> Self {
        ServerConfig {
            kind,
            listen,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            thread_stack: 128 * 1024,
            grace: Duration::from_secs(2),
        }
    }
}

/// `HOST:PORT` to socket addresses; bad input names the value.
pub fn resolve(addr: &str) -> Result<Vec<SocketAddr>, crate::error::BadInput> {
    let bad =
        |why: String| crate::error::BadInput(format!("invalid address {addr:?}: {why} (expected e.g. 127.0.0.1:8888)"));
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(|e| bad(e.to_string()))?.collect();
    if addrs.is_empty() {
        return Err(bad("it resolves to nothing".into()));
    }
    Ok(addrs)
}

/// Binds `addr` (SO_REUSEADDR, backlog 1024), close-on-exec.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol as IpProto, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(IpProto::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Serves `P` on the configured engine until `interrupt` is set, then shuts
/// down gracefully. Prints `Serving on ('ADDR', PORT)` on stderr once
/// listening (as the chapter's server does) and `Server shutting down.` at
/// the end.
pub fn serve<P: Protocol>(config: &ServerConfig, protocol: P::Config, interrupt: &Interrupt) -> anyhow::Result<()> {
    let listener = bind(config.listen).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr()?;
    eprintln!("Serving on {}", sockname(local));
    match config.kind {
        EngineKind::Async => {
            let limits = P::limits(&protocol);
            tokio::serve_protocol::<P>(listener, Arc::new(protocol), limits, config.workers, config.grace, interrupt)?
        }
        EngineKind::Threads => threads::serve_protocol::<P>(listener, Arc::new(protocol), config, interrupt)?,
        EngineKind::Processes => processes::serve::<P>(listener, &protocol, config, interrupt)?,
    }
    eprintln!("Server shutting down.");
    Ok(())
}

/// A socket address as Python prints `sock.getsockname()` / `peername`:
/// `('127.0.0.1', 8888)`, `('::1', 8888, 0, 0)`.
pub fn sockname(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("('{}', {})", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("('{}', {}, {}, {})", a.ip(), a.port(), a.flowinfo(), a.scope_id()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socknames_look_like_python() {
        assert_eq!(sockname("127.0.0.1:8888".parse().unwrap()), "('127.0.0.1', 8888)");
        assert_eq!(sockname("[::1]:8888".parse().unwrap()), "('::1', 8888, 0, 0)");
    }
}
