//! The processes chat shell: pre-forked worker processes accept on the
//! shared listening socket and run the async shell ([`super::tokio`]) on a
//! single thread each; the one [`Core`] lives in the parent ("the hub
//! process"), which each worker reaches over its own Unix socket.
//!
//! Link: [`crate::frame`]s, as the task engine's workers are spoken to.
//! Up (worker → hub): [`Up::Connect`], [`Up::Events`] (a read's worth of
//! lines), [`Up::Close`], [`Up::Gone`]. Down (hub → worker):
//! [`Down::Deliver`] (one line and every recipient of it on that worker:
//! a channel message crosses each socket once, not once per member) and
//! [`Down::Close`], and [`Down::Released`] (the answer to a Gone: the
//! connection's slot is free, so the worker may let its client see the
//! close). The hub handles one worker's frame at a time under its
//! lock and queues what it routes, per worker, in that order, so every
//! recipient sees lines in the hub's order whatever worker holds it.
//!
//! A connection's id carries its worker's number in its top bits, which is
//! how the hub routes. A worker that dies is replaced (as the echo
//! server's are); its clients are gone ("Server worker died") and their
//! channels see them quit.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::conn::{Budget, Conn, Pushed};
use super::core::{Core, Router};
use super::{Backend, ChatConfig, ConnSettings, Released, push_within_budget};
use crate::chat::{ClientId, Hub, Line, LineEvent};
use crate::engine::Interrupt;
use crate::frame::{self, read_frame};
use crate::server::ServerConfig;
use crate::server::processes::{WorkerSettings, spawn_worker, supervise};

/// The service name of chat worker processes (`trident __serve-worker chat`).
pub const NAME: &str = "chat";
/// Bits of a [`ClientId`] below the worker's number.
const WORKER_SHIFT: u32 = 40;
/// Bytes that may wait to cross one hub-worker socket, either way. Beyond
/// it the other end is not keeping up: the hub cuts that worker (it is
/// replaced; its clients quit "Server worker died"), a worker cuts the
/// connection whose lines would not fit.
const LINK_CAP: usize = 64 << 20;

/// Worker to hub.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Up {
    Connect { id: ClientId, ip: IpAddr },
    Events { id: ClientId, events: Vec<LineEvent> },
    Close { id: ClientId, reason: String },
    Gone { id: ClientId, reason: String },
}

/// Hub to worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Down {
    Deliver { to: Vec<ClientId>, line: String },
    Close { id: ClientId },
    Released { id: ClientId },
}

fn worker_of(id: ClientId) -> u64 {
    id.0 >> WORKER_SHIFT
}

/// Appends `message` to `into` as one frame.
fn encode<T: Serialize>(message: &T, into: &mut Vec<u8>) {
    // Neither serialising these enums nor writing to a Vec can fail.
    let _ = frame::encode(message, into);
}

/// One worker as the hub sees it: where its frames go.
#[derive(Debug)]
struct Link {
    tx: crossbeam_channel::Sender<Vec<u8>>,
    /// Bytes sent to the writer thread and not yet written (≤ [`LINK_CAP`]).
    pending: Arc<Budget>,
    /// The socket, to cut a worker that does not keep up.
    socket: UnixStream,
    worker: u64,
}

impl Link {
    /// Queues `bytes` for the worker; a worker that has [`LINK_CAP`]
    /// waiting already is cut instead (its reader thread then sees the
    /// end of its socket and the worker's clients leave).
    fn send(&self, bytes: Vec<u8>) {
        let len = bytes.len();
        if !self.pending.reserve(len) {
            if self.socket.shutdown(std::net::Shutdown::Both).is_ok() {
                eprintln!(
                    "trident: chat worker {} is not keeping up ({LINK_CAP} bytes waiting); cutting it",
                    self.worker
                );
            }
            return;
        }
        let _ = self.tx.send(bytes);
    }
}

#[derive(Debug)]
struct HubState {
    core: Core,
    links: HashMap<u64, Link>,
    stopping: bool,
}

/// The hub process's state, shared by the per-worker reader threads.
#[derive(Debug)]
struct HubShared(Mutex<HubState>);

impl HubShared {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One frame to a worker, before encoding: a line and its recipients
/// there, or (no line) a close.
type Pending = (Option<Line>, Vec<ClientId>);

/// Routes to workers: per worker, the frames of one core call.
#[derive(Default)]
struct RemoteRouter {
    frames: HashMap<u64, Vec<Pending>>,
}

impl Router for RemoteRouter {
    fn deliver(&mut self, to: ClientId, line: &Line) -> bool {
        let frames = self.frames.entry(worker_of(to)).or_default();
        match frames.last_mut() {
            Some((Some(last), ids)) if Arc::ptr_eq(last, line) => ids.push(to),
            _ => frames.push((Some(Arc::clone(line)), vec![to])),
        }
        true
    }

    fn close(&mut self, id: ClientId) {
        self.frames.entry(worker_of(id)).or_default().push((None, vec![id]));
    }
}

impl RemoteRouter {
    /// Sends what was routed (called under the hub lock: order is kept).
    fn send(self, links: &HashMap<u64, Link>) {
        for (worker, frames) in self.frames {
            let Some(link) = links.get(&worker) else { continue };
            let mut bytes = Vec::new();
            for (line, to) in frames {
                match line {
                    Some(line) => encode(&Down::Deliver { to, line: line.to_string() }, &mut bytes),
                    None => {
                        for id in to {
                            encode(&Down::Close { id }, &mut bytes);
                        }
                    }
                }
            }
            link.send(bytes);
        }
    }
}

impl Up {
    fn id(&self) -> ClientId {
        match self {
            Up::Connect { id, .. } | Up::Events { id, .. } | Up::Close { id, .. } | Up::Gone { id, .. } => *id,
        }
    }
}

impl HubShared {
    /// Handles one frame from a worker. A panic while handling it is
    /// contained to the connection it concerns (the worker's reader
    /// thread, and every other client of that worker, carry on): that
    /// connection is released in the core and its worker told to close it.
    fn handle(&self, up: Up) {
        let id = up.id();
        let gone = matches!(up, Up::Gone { .. });
        let handled = panic::catch_unwind(AssertUnwindSafe(|| self.handle_frame(up))).is_ok();
        if !handled {
            self.contain(id);
        }
        if gone {
            // Whatever happened, the connection is released.
            let mut bytes = Vec::new();
            encode(&Down::Released { id }, &mut bytes);
            if let Some(link) = self.lock().links.get(&worker_of(id)) {
                link.send(bytes);
            }
        }
    }

    /// Releases `id` after a panic while handling its frame, and tells its
    /// worker to close it.
    fn contain(&self, id: ClientId) {
        eprintln!("trident: a panic while serving chat client {} was contained; that connection is closed", id.0);
        let released = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut state = self.lock();
            let mut router = RemoteRouter::default();
            let HubState { core, links, stopping } = &mut *state;
            core.gone(id, super::INTERNAL_ERROR, &mut router);
            router.close(id);
            if !*stopping {
                router.send(links);
            }
        }));
        if released.is_err() {
            eprintln!("trident: chat client {} could not be released after a panic", id.0);
        }
    }

    fn handle_frame(&self, up: Up) {
        let mut state = self.lock();
        let mut router = RemoteRouter::default();
        let HubState { core, links, stopping } = &mut *state;
        match up {
            Up::Connect { id, ip } => core.connect(id, ip, Instant::now(), &mut router),
            Up::Events { id, events } => core.events(id, events, &mut router),
            Up::Close { id, reason } => core.close(id, &reason, &mut router),
            Up::Gone { id, reason } => core.gone(id, &reason, &mut router),
        }
        if !*stopping {
            router.send(links);
        }
    }

    /// A worker's link ended: its clients are gone.
    fn worker_lost(&self, worker: u64) {
        let mut state = self.lock();
        state.links.remove(&worker);
        let mut router = RemoteRouter::default();
        let HubState { core, links, stopping } = &mut *state;
        for id in core.ids(|id| worker_of(id) == worker) {
            core.gone(id, "Server worker died", &mut router);
        }
        if !*stopping {
            router.send(links);
        }
    }

    fn expire(&self) {
        let mut state = self.lock();
        let mut router = RemoteRouter::default();
        let HubState { core, links, .. } = &mut *state;
        core.expire(Instant::now(), &mut router);
        router.send(links);
    }
}

/// Starts worker number `worker`: a socket pair, a reader and a writer
/// thread for the hub's end, the process on the other end.
fn start_worker(hub: &Arc<HubShared>, settings: &WorkerSettings) -> anyhow::Result<std::process::Child> {
    let worker = settings.number;
    let (ours, theirs) = UnixStream::pair()?;
    let settings = WorkerSettings { link: Some(theirs.as_raw_fd()), ..settings.clone() };
    let child = spawn_worker(NAME, &settings)?;
    drop(theirs);
    // Unbounded as a channel, bounded in bytes by `Link::send`.
    let (tx, rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let pending = Arc::new(Budget::new(LINK_CAP));
    hub.lock().links.insert(worker, Link { tx, pending: Arc::clone(&pending), socket: ours.try_clone()?, worker });
    let mut writer = ours.try_clone()?;
    thread::Builder::new().name(format!("trident-hub-w{worker}")).spawn(move || {
        for bytes in rx {
            if writer.write_all(&bytes).is_err() {
                break;
            }
            pending.release(bytes.len());
        }
    })?;
    let hub = Arc::clone(hub);
    let mut reader = io::BufReader::with_capacity(64 * 1024, ours);
    thread::Builder::new().name(format!("trident-hub-r{worker}")).spawn(move || {
        while let Ok(Some(frame)) = read_frame(&mut reader) {
            match postcard::from_bytes::<Up>(&frame) {
                Ok(up) => hub.handle(up),
                Err(e) => {
                    eprintln!("trident: chat worker {worker} sent a bad frame ({e}); dropping it");
                    break;
                }
            }
        }
        let _ = reader.get_ref().shutdown(std::net::Shutdown::Both);
        hub.worker_lost(worker);
    })?;
    Ok(child)
}

/// The parent: the hub, and `config.workers` workers, until `interrupt`.
pub(crate) fn serve(
    listener: TcpListener,
    chat: &ChatConfig,
    config: &ServerConfig,
    interrupt: &Interrupt,
) -> anyhow::Result<()> {
    let hub_core = Core::new(Hub::new(chat.hub.clone(), super::core::unix_now()), chat.limits.clone())
        .with_log(chat.log)
        .with_history(chat.history_sink());
    let hub = Arc::new(HubShared(Mutex::new(HubState { core: hub_core, links: HashMap::new(), stopping: false })));
    // Each worker holds its own send queues: each gets its share of the
    // budget (at least one line).
    let mut chat = chat.clone();
    let workers = config.workers.max(1);
    chat.limits.sendq_total = (chat.limits.sendq_total / workers).max(crate::chat::MAX_LINE);
    let settings = WorkerSettings {
        listener: listener.as_raw_fd(),
        link: None,
        number: 0,
        workers,
        grace: config.grace,
        config: serde_json::to_string(&chat)?,
    };
    let start = |number| start_worker(&hub, &WorkerSettings { number, ..settings.clone() });
    let workers = supervise(config, interrupt, start, || hub.expire())?;
    hub.lock().stopping = true;
    drop(listener);
    drop(workers);
    Ok(())
}

/// A worker's way to the hub: frames to the writer task, and its own
/// connections' send queues for what the hub sends back.
#[derive(Debug)]
struct RemoteBackend {
    tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes sent to the link task and not yet written to the hub.
    pending: Arc<Budget>,
    conns: Mutex<HashMap<ClientId, Arc<Conn>>>,
    /// Connections gone and not yet released by the hub: whom to tell.
    releasing: Mutex<HashMap<ClientId, tokio::sync::oneshot::Sender<()>>>,
}

impl RemoteBackend {
    /// Queues `up` for the hub. Every frame but a connection's lines is
    /// always sent (a few per connection: the hub's books depend on them);
    /// lines that would take the queue past [`LINK_CAP`] are refused
    /// (false) and their connection is cut.
    fn send(&self, up: &Up) -> bool {
        let mut bytes = Vec::new();
        encode(up, &mut bytes);
        let len = bytes.len();
        if let Up::Events { id, .. } = up {
            if !self.pending.reserve(len) {
                if let Some(conn) = self.conns().get(id) {
                    conn.overflow();
                }
                return false;
            }
        } else {
            self.pending.force(len);
        }
        let _ = self.tx.send(bytes);
        true
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<ClientId, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the hub sent.
    fn down(&self, down: Down) {
        match down {
            Down::Deliver { to, line } => {
                let mut overflowed = Vec::new();
                {
                    let conns = self.conns();
                    for id in to {
                        if let Some(conn) = conns.get(&id)
                            && push_within_budget(conn, line.as_bytes(), conns.values(), &mut overflowed)
                                == Pushed::Overflow
                        {
                            overflowed.push(id);
                        }
                    }
                }
                for id in overflowed {
                    self.send(&Up::Close { id, reason: "SendQ exceeded".into() });
                }
            }
            Down::Close { id } => {
                if let Some(conn) = self.conns().get(&id) {
                    conn.close_after_flush();
                }
            }
            Down::Released { id } => {
                let waiting = self.releasing.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                if let Some(waiting) = waiting {
                    let _ = waiting.send(());
                }
            }
        }
    }
}

impl Backend for RemoteBackend {
    fn open(&self, conn: &Arc<Conn>, ip: IpAddr) {
        self.conns().insert(conn.id, Arc::clone(conn));
        self.send(&Up::Connect { id: conn.id, ip });
    }

    fn events(&self, id: ClientId, events: &mut Vec<LineEvent>) {
        self.send(&Up::Events { id, events: std::mem::take(events) });
    }

    fn close(&self, id: ClientId, reason: &str) {
        self.send(&Up::Close { id, reason: reason.into() });
    }

    fn gone(&self, id: ClientId, reason: &str) -> Released {
        self.conns().remove(&id);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.releasing.lock().unwrap_or_else(PoisonError::into_inner).insert(id, tx);
        self.send(&Up::Gone { id, reason: reason.into() });
        Some(rx)
    }
}

/// The worker side: the async shell on one thread, the core over the link.
pub fn worker(settings: &WorkerSettings) -> anyhow::Result<()> {
    let chat: ChatConfig =
        serde_json::from_str(&settings.config).map_err(|e| anyhow::anyhow!("bad chat config for a worker: {e}"))?;
    let hub_fd = settings.link.ok_or_else(|| anyhow::anyhow!("a chat worker needs a link to the hub"))?;
    // SAFETY: fcntl(F_GETFD) on any integer only reads descriptor flags.
    if unsafe { libc::fcntl(hub_fd, libc::F_GETFD) } < 0 {
        anyhow::bail!(
            "descriptor {hub_fd} is not open (chat workers are started by `trident chat serve -e processes`)"
        );
    }
    let (listener, interrupt) = crate::server::processes::worker_start(settings)?;
    // SAFETY: the descriptor is open and was inherited for this purpose only.
    let hub = unsafe { UnixStream::from_raw_fd(hub_fd) };
    hub.set_nonblocking(true)?;
    // Unbounded as a channel, bounded in bytes by `RemoteBackend::send`.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let pending = Arc::new(Budget::new(LINK_CAP));
    let backend = Arc::new(RemoteBackend {
        tx,
        pending: Arc::clone(&pending),
        conns: Mutex::new(HashMap::new()),
        releasing: Mutex::new(HashMap::new()),
    });
    let conn_settings = Arc::new(ConnSettings::new(&chat)?);
    let worker = settings.number;
    let mut next = 0u64;
    let link_backend = Arc::clone(&backend);
    let link_interrupt = interrupt.clone();
    let start = move || match tokio::net::UnixStream::from_std(hub) {
        Ok(hub) => {
            tokio::spawn(link(hub, rx, pending, link_backend, link_interrupt));
        }
        Err(e) => {
            eprintln!("trident: chat worker: hub socket: {e}");
            link_interrupt.trigger();
        }
    };
    let accept = move |stream, peer, stop| {
        next += 1;
        let id = ClientId((worker << WORKER_SHIFT) | next);
        Some(super::tokio::connection(stream, peer, id, Arc::clone(&backend), Arc::clone(&conn_settings), stop))
    };
    // The hub, not a worker, knows when the server stops (it then
    // broadcasts nothing).
    crate::server::tokio::serve(listener, 1, settings.grace, &interrupt, start, || {}, accept, || {})?;
    Ok(())
}

/// Carries frames both ways between this worker and the hub; a lost hub
/// stops the worker.
async fn link(
    hub: tokio::net::UnixStream,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    pending: Arc<Budget>,
    backend: Arc<RemoteBackend>,
    interrupt: Interrupt,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut read_half, mut write_half) = hub.into_split();
    let writer = async move {
        let mut batch = Vec::new();
        while let Some(bytes) = rx.recv().await {
            batch.clear();
            batch.extend_from_slice(&bytes);
            while let Ok(more) = rx.try_recv() {
                batch.extend_from_slice(&more);
                if batch.len() > 256 * 1024 {
                    break;
                }
            }
            if write_half.write_all(&batch).await.is_err() {
                break;
            }
            pending.release(batch.len());
        }
    };
    let reader = async {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match read_half.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let used = frame::whole_frames(&buf, |payload| {
                match postcard::from_bytes::<Down>(payload) {
                    // A panic there ends nothing but that delivery: this
                    // reader serves every client of the worker.
                    Ok(down) => {
                        if panic::catch_unwind(AssertUnwindSafe(|| backend.down(down))).is_err() {
                            eprintln!(
                                "trident: chat worker: a panic while delivering a frame from the hub was contained"
                            );
                        }
                    }
                    Err(e) => eprintln!("trident: chat worker: bad frame from the hub ({e})"),
                }
                true
            });
            let at = match used {
                Ok(at) => at,
                Err(e) => {
                    // Never sent by a hub: the stream is lost, and waiting
                    // for the frame would buffer without bound.
                    eprintln!("trident: chat worker: {e} from the hub; giving up");
                    return;
                }
            };
            buf.drain(..at);
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
    // The hub is gone: nothing works any more.
    interrupt.trigger();
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_panic_in_the_hub_is_contained_to_its_client_and_the_reader_goes_on() {
        let limits = super::super::Limits { max_per_ip: 1, ..Default::default() };
        let core = Core::new(Hub::new(crate::chat::HubConfig::default(), 0), limits);
        let hub = HubShared(Mutex::new(HubState { core, links: HashMap::new(), stopping: false }));
        let (ours, theirs) = UnixStream::pair().expect("pair");
        let (tx, rx) = crossbeam_channel::unbounded();
        let link = Link { tx, pending: Arc::new(Budget::new(LINK_CAP)), socket: ours, worker: 1 };
        hub.lock().links.insert(1, link);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let id = ClientId((1 << WORKER_SHIFT) | 1);
        hub.handle(Up::Connect { id, ip });
        let lines = ["NICK a", "USER a 0 * :a", "JOIN #x", super::super::core::INJECTED_FAULT];
        hub.handle(Up::Events { id, events: lines.iter().map(|l| LineEvent::Line((*l).into())).collect() });
        // Released: the address's only slot is free again, #x is gone,
        // and the worker was told to close the connection.
        assert!(hub.lock().core.is_empty(), "{:?}", hub.lock().core);
        let closes: Vec<Down> = rx
            .try_iter()
            .flat_map(|bytes: Vec<u8>| {
                let mut frames = Vec::new();
                let mut reader = &bytes[..];
                while let Ok(Some(frame)) = read_frame(&mut reader) {
                    frames.push(postcard::from_bytes::<Down>(&frame).expect("a frame"));
                }
                frames
            })
            .filter(|d| matches!(d, Down::Close { .. }))
            .collect();
        assert!(matches!(closes.as_slice(), [Down::Close { id: closed }] if *closed == id), "{closes:?}");
        let next = ClientId((1 << WORKER_SHIFT) | 2);
        hub.handle(Up::Connect { id: next, ip });
        assert!(!hub.lock().core.is_empty(), "the next client is admitted");
        drop(theirs);
    }

    #[test]
    fn a_worker_that_lets_its_link_fill_is_cut_and_nothing_more_is_queued() {
        let (ours, mut theirs) = UnixStream::pair().expect("pair");
        let (tx, rx) = crossbeam_channel::unbounded();
        let pending = Arc::new(Budget::new(LINK_CAP));
        let link = Link { tx, pending: Arc::clone(&pending), socket: ours, worker: 1 };
        link.send(vec![0; 1000]);
        assert_eq!(pending.used(), 1000);
        // Nobody writes: the bytes pile up to the cap.
        pending.force(LINK_CAP - 10 - 1000);
        link.send(vec![0; 11]);
        assert_eq!(rx.len(), 1, "the frame past the cap was not queued");
        let mut buf = [0u8; 1];
        assert_eq!(theirs.read(&mut buf).expect("read"), 0, "the worker's socket was cut");
    }
}
