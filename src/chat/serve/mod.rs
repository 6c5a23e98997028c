//! `trident chat serve`: the chat hub ([`crate::chat::hub`]) served on any
//! of the three engines.
//!
//! Unlike the echo server, a chat connection is not alone: a line from one
//! client is delivered to many others, so the shell around the sans-IO
//! core has three parts, shared by the engines (the accept loops, the
//! stop, worker supervision and the wire, plain or TLS, are the server
//! layer's, [`crate::server`]):
//! - [`core::Core`]: the one [`Hub`] of the server, plus admission
//!   (max clients, per-IP limit) and registration timeouts; it routes the
//!   hub's outbox through a [`core::Router`], and keeps the log ([`log`]);
//! - [`conn::Conn`]: each connection's bounded send queue, written in order
//!   and coalesced by the connection's owner;
//! - [`session::Session`]: each connection's line reader, flood bucket and
//!   keep-alive clock, and [`session::Handling`], what a connection loop
//!   does with them.
//!
//! Engines differ only in who owns what:
//! - **async** ([`tokio`]): a task per connection; the core behind a mutex
//!   ([`Local`]), locked for one read's worth of lines;
//! - **threads** ([`threads`]): a thread per connection (small stack) on a
//!   non-blocking socket; routing writes straight to the recipients'
//!   sockets and signals a thread only when its socket is full;
//! - **processes** ([`processes`]): pre-forked workers accept on the
//!   shared listening socket and run the async shell; the core lives in the
//!   parent, which every worker reaches over a Unix socket, so a line from
//!   a client of worker 1 reaches members on worker 3 in the hub's order.

pub(crate) mod conn;
pub(crate) mod core;
pub mod log;
pub mod processes;
pub(crate) mod session;
pub(crate) mod threads;
pub(crate) mod tokio;

#[cfg(test)]
mod panic_tests;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::conn::{Budget, Conn, Pushed};
use self::core::{Core, Router};
use crate::chat::store::{HistorySink, Store, WriterConfig};
use crate::chat::{ClientId, Hub, HubConfig, Line, LineEvent};
use crate::engine::{EngineKind, Interrupt};
use crate::server::ServerConfig;

/// Where a chat server listens by default (IRC's port).
pub const DEFAULT_ADDR: &str = "127.0.0.1:6667";

/// The limits of a chat server; every one has a flag.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Limits {
    /// Connections at once; more get an ERROR line and are closed.
    pub max_clients: usize,
    /// Connections at once from one address.
    pub max_per_ip: usize,
    /// Bytes queued for one client that is not reading; beyond it the
    /// client is disconnected ("SendQ exceeded").
    pub sendq: usize,
    /// Bytes queued for all clients of a process together; beyond it the
    /// client with the longest queue is disconnected ("SendQ exceeded").
    /// The processes engine gives each worker its share.
    pub sendq_total: usize,
    /// Lines a client may send at once before the rate applies.
    pub flood_burst: u32,
    /// Lines per second after the burst; 0 turns flood control off.
    pub flood_rate: f64,
    /// Lines that may wait for the rate; more is "Excess Flood".
    pub flood_queue: usize,
    /// Time to complete registration (NICK + USER) after connecting.
    pub registration_timeout: Duration,
    /// Silence after which the server sends PING.
    pub ping_interval: Duration,
    /// Time to answer (anything) after the server's PING.
    pub ping_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: 10_000,
            max_per_ip: 8,
            sendq: 1 << 20,
            sendq_total: 128 << 20,
            flood_burst: 20,
            flood_rate: 10.0,
            flood_queue: 100,
            registration_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(120),
            ping_timeout: Duration::from_secs(60),
        }
    }
}

/// Everything a chat server (and each of its worker processes) needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChatConfig {
    /// The hub's settings (names, password, MOTD).
    pub hub: HubConfig,
    /// The limits.
    pub limits: Limits,
    /// TLS: a PEM certificate chain and its private key; every connection
    /// on the listening socket is then TLS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// What the server logs on stderr (by the core: the parent's, with
    /// worker processes).
    #[serde(default)]
    pub log: log::LogSettings,
    /// Accounts and history in a data directory (`--data`); none: nothing
    /// is stored.
    #[serde(default)]
    pub store: Option<StoreSettings>,
}

/// Where and how a server stores its history (`--data DIR`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreSettings {
    /// The data directory.
    pub dir: std::path::PathBuf,
    /// How the history writer batches.
    pub writer: WriterConfig,
    /// The running writer's queue, set by [`serve`] once it has opened
    /// the store (the core, in whichever process holds it, pushes to it).
    #[serde(skip)]
    pub(crate) sink: Option<HistorySink>,
}

impl ChatConfig {
    /// The running history writer's queue, if any.
    pub(crate) fn history_sink(&self) -> Option<HistorySink> {
        self.store.as_ref().and_then(|s| s.sink.clone())
    }
}

/// What every connection of a process is served with: the limits, the
/// server's own lines, TLS, and the send queues' shared budget.
#[derive(Debug)]
pub(crate) struct ConnSettings {
    pub limits: Limits,
    /// The server's `PING :name` line.
    pub ping: Line,
    /// The server's last words, `ERROR :Server shutting down`.
    pub farewell: Line,
    /// TLS settings, when connections are TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The bytes every send queue of this process holds, against
    /// [`Limits::sendq_total`].
    pub budget: Arc<Budget>,
}

impl ConnSettings {
    pub fn new(config: &ChatConfig) -> anyhow::Result<ConnSettings> {
        let hub = Hub::new(config.hub.clone(), 0);
        let tls = match &config.tls {
            Some((cert, key)) => Some(crate::server::wire::server_config(cert, key)?),
            None => None,
        };
        Ok(ConnSettings {
            limits: config.limits.clone(),
            ping: hub.ping_line(),
            farewell: hub.shutdown_line(),
            tls,
            budget: Arc::new(Budget::new(config.limits.sendq_total)),
        })
    }
}

/// What a connection's shell tells the core; the core is in this process
/// ([`Local`]) or in the parent ([`processes`]).
pub(crate) trait Backend: Send + Sync + 'static {
    /// A new connection, whose send queue is `conn`.
    fn open(&self, conn: &Arc<Conn>, ip: IpAddr);
    /// Line events from `id`, in order (drained).
    fn events(&self, id: ClientId, events: &mut Vec<LineEvent>);
    /// The shell closes `id` (flood, ping timeout).
    fn close(&self, id: ClientId, reason: &str);
    /// `id`'s connection has ended; its admission slot is free once what
    /// this returns resolves.
    fn gone(&self, id: ClientId, reason: &str) -> Released;
}

/// Resolves once the core has released a connection that ended (its
/// admission slot is free); None: released already, the core being in
/// this process. Until then, the close must not be visible to the client.
pub(crate) type Released = Option<::tokio::sync::oneshot::Receiver<()>>;

/// The core in this process, behind one mutex (async and threads engines).
#[derive(Debug)]
pub(crate) struct Local {
    state: Mutex<LocalState>,
    /// Threads engine: routing writes to sockets itself (after unlocking).
    direct: bool,
}

#[derive(Debug)]
struct LocalState {
    core: Core,
    conns: HashMap<ClientId, Arc<Conn>>,
    /// Shutting down: connections leave without quits being broadcast.
    stopping: bool,
}

/// Routes to connections of this process.
struct LocalRouter<'a> {
    conns: &'a HashMap<ClientId, Arc<Conn>>,
    direct: bool,
    /// Queues that were empty and must be written (direct mode).
    touched: Vec<Arc<Conn>>,
    /// Connections cut for the process's send-queue budget.
    cut: Vec<ClientId>,
}

impl<'a> LocalRouter<'a> {
    fn new(conns: &'a HashMap<ClientId, Arc<Conn>>, direct: bool) -> Self {
        LocalRouter { conns, direct, touched: Vec::new(), cut: Vec::new() }
    }
}

/// Pushes `line` to `conn`; when the process's budget is exhausted, cuts
/// the longest queue among `conns` (recorded in `cut`) and tries again.
pub(crate) fn push_within_budget<'a>(
    conn: &Conn,
    line: &[u8],
    conns: impl Iterator<Item = &'a Arc<Conn>> + Clone,
    cut: &mut Vec<ClientId>,
) -> Pushed {
    loop {
        let pushed = conn.push(line);
        if pushed != Pushed::OverBudget {
            return pushed;
        }
        let Some(longest) = conn::longest(conns.clone()) else { return Pushed::Dropped };
        longest.overflow();
        if longest.id == conn.id {
            return Pushed::Overflow;
        }
        cut.push(longest.id);
    }
}

impl Router for LocalRouter<'_> {
    fn deliver(&mut self, to: ClientId, line: &Line) -> bool {
        let Some(conn) = self.conns.get(&to) else { return true };
        match push_within_budget(conn, line.as_bytes(), self.conns.values(), &mut self.cut) {
            Pushed::Queued { first: true } if self.direct => {
                self.touched.push(Arc::clone(conn));
                true
            }
            Pushed::Overflow => false,
            _ => true,
        }
    }

    fn overflowed(&mut self) -> Vec<ClientId> {
        std::mem::take(&mut self.cut)
    }

    fn close(&mut self, id: ClientId) {
        if let Some(conn) = self.conns.get(&id) {
            conn.close_after_flush();
        }
    }
}

impl Local {
    pub fn new(config: &ChatConfig, direct: bool) -> Local {
        let hub = Hub::new(config.hub.clone(), core::unix_now());
        Local {
            state: Mutex::new(LocalState {
                core: Core::new(hub, config.limits.clone()).with_log(config.log).with_history(config.history_sink()),
                conns: HashMap::new(),
                stopping: false,
            }),
            direct,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LocalState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the core with a router to this process's connections,
    /// then (direct mode) writes to the queues it filled, unlocked.
    fn with_core(&self, f: impl FnOnce(&mut Core, &mut LocalRouter<'_>)) {
        let touched = {
            let mut state = self.lock();
            let LocalState { core, conns, .. } = &mut *state;
            let mut router = LocalRouter::new(conns, self.direct);
            f(core, &mut router);
            router.touched
        };
        for conn in touched {
            conn.flush(false);
        }
    }

    /// Closes connections whose registration time is up.
    pub fn expire(&self, now: Instant) {
        self.with_core(|core, router| core.expire(now, router));
    }

    /// From now on, leaving connections broadcast nothing.
    pub fn stop(&self) {
        self.lock().stopping = true;
    }
}

impl Backend for Local {
    fn open(&self, conn: &Arc<Conn>, ip: IpAddr) {
        let id = conn.id;
        // The router must know the connection before the core talks to it
        // (nothing routes to `id` before the hub knows it).
        self.lock().conns.insert(id, Arc::clone(conn));
        self.with_core(|core, router| core.connect(id, ip, Instant::now(), router));
    }

    fn events(&self, id: ClientId, events: &mut Vec<LineEvent>) {
        self.with_core(|core, router| core.events(id, events.drain(..), router));
    }

    fn close(&self, id: ClientId, reason: &str) {
        self.with_core(|core, router| core.close(id, reason, router));
    }

    fn gone(&self, id: ClientId, reason: &str) -> Released {
        let touched = {
            let mut state = self.lock();
            state.conns.remove(&id);
            let LocalState { core, conns, stopping } = &mut *state;
            let mut router = LocalRouter::new(conns, self.direct);
            if *stopping {
                core.gone(id, reason, &mut Silent);
            } else {
                core.gone(id, reason, &mut router);
            }
            router.touched
        };
        for conn in touched {
            conn.flush(false);
        }
        None
    }
}

/// The reason a connection's channels see when its handling panicked.
pub(crate) const INTERNAL_ERROR: &str = "Internal error";

/// Logs, once per connection, that a panic in its handling was contained
/// (the panic hook has printed where): the connection is closed and its
/// slot, nick and channels are released as for any other end.
pub(crate) fn contained_panic(peer: SocketAddr) {
    eprintln!("trident: a panic while serving {peer} was contained; that connection is closed and released");
}

/// Tells the core `id` has left; a panic there (the core in a state it
/// should never reach) is contained and logged, so the shell that calls
/// this still ends cleanly.
pub(crate) fn leave(backend: &impl Backend, id: ClientId, reason: &str, peer: SocketAddr) -> Released {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| backend.gone(id, reason))).unwrap_or_else(|_| {
        contained_panic(peer);
        None
    })
}

/// A router that sends nothing (shutdown).
struct Silent;

impl Router for Silent {
    fn deliver(&mut self, _: ClientId, _: &Line) -> bool {
        true
    }
    fn close(&mut self, _: ClientId) {}
}

/// Serves the chat hub on the configured engine until `interrupt` is set,
/// then tells every client `ERROR :Server shutting down` and closes.
pub fn serve(config: &ServerConfig, chat: ChatConfig, interrupt: &Interrupt) -> anyhow::Result<()> {
    let listener =
        crate::server::bind(config.listen).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    crate::sys::raise_nofile_limit();
    // Bad certificate files are one error before anything starts. (Worker
    // processes build their own from the same config.)
    let settings = Arc::new(ConnSettings::new(&chat)?);
    let mut chat = chat;
    // The store is opened (and its writer started) before any client can
    // connect; an unusable data directory is one error before serving.
    let writer = match &mut chat.store {
        Some(store) => {
            let opened = Store::open(&store.dir).map_err(|e| anyhow::anyhow!("--data {}: {e}", store.dir.display()))?;
            let (sink, guard) = opened.writer(store.writer)?;
            store.sink = Some(sink);
            Some((opened, guard))
        }
        None => None,
    };
    let local = listener.local_addr()?;
    let tls = if chat.tls.is_some() { ", TLS" } else { "" };
    let data = chat.store.as_ref().map(|s| format!(", history in {}", s.dir.display())).unwrap_or_default();
    eprintln!("Serving IRC on {local} ({} engine{tls}{data})", config.kind);
    let served = match config.kind {
        EngineKind::Async => tokio::serve(listener, &chat, settings, config, interrupt).map_err(Into::into),
        EngineKind::Threads => threads::serve(listener, &chat, settings, config, interrupt).map_err(Into::into),
        EngineKind::Processes => processes::serve(listener, &chat, config, interrupt),
    };
    if let Some((store, guard)) = writer {
        // What the hub handled before the stop is committed.
        let stats = guard.finish();
        crate::term::explain(format_args!(
            "history: {} messages stored in {} batches, {} dropped, {} failed ({})",
            stats.committed,
            stats.batches,
            stats.dropped,
            stats.failed,
            store.path().display()
        ));
        if stats.dropped + stats.failed > 0 {
            eprintln!(
                "trident: {} messages were not stored in the history ({} dropped: the writer fell behind; {} failed)",
                stats.dropped + stats.failed,
                stats.dropped,
                stats.failed
            );
        }
    }
    served?;
    eprintln!("Server shutting down.");
    Ok(())
}
