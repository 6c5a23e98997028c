//! The group-commit writer: history appends batched into one SQLite
//! transaction per batch.
//!
//! The server's core pushes each stamped message to a [`HistorySink`]: a
//! bounded queue, pushed with `try_send`, so the hub's event loop never
//! waits for the disk; a full queue (the disk slower than the messages for
//! longer than the queue holds) drops the message from the history and
//! counts it ([`WriterStats::dropped`]); delivery to clients is never
//! held back. One thread takes the first message that arrives, gathers
//! what else arrives within [`WriterConfig::window`] (or until
//! [`WriterConfig::batch`] messages), and commits them together.
//!
//! The crash bound: a message pushed at time t is committed by t plus
//! the window, plus the commit in progress when it arrived, plus its own
//! commit. A `kill -9` of the server therefore loses at most the messages
//! of the last window and of the commit under way (and, if the writer had
//! fallen behind, what was queued: at most [`WriterConfig::queue`]
//! messages, each counted as dropped had the queue overflowed). The server
//! stopping normally ([`WriterGuard::finish`]) commits everything queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::history::{Stamped, insert};

/// How the writer batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterConfig {
    /// How long the first message of a batch waits for others.
    pub window: Duration,
    /// The most messages in one batch (committed at once when reached).
    pub batch: usize,
    /// The most messages waiting for the writer; more are dropped from
    /// the history (and counted).
    pub queue: usize,
    /// The most messages kept (0: no limit): the oldest beyond it are
    /// deleted as new ones come (every hundredth of it), so a busy or
    /// hostile chat cannot fill the disk.
    #[serde(default)]
    pub keep: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig { window: Duration::from_millis(50), batch: 1000, queue: 16_384, keep: 1_000_000 }
    }
}

/// What the writer has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterStats {
    /// Messages committed.
    pub committed: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Messages not stored because the queue was full (or the writer gone).
    pub dropped: u64,
    /// Messages not stored because their transaction failed.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    committed: AtomicU64,
    batches: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn stats(&self) -> WriterStats {
        WriterStats {
            committed: self.committed.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// Where the server pushes messages to store; cheap to clone.
#[derive(Clone, Debug)]
pub struct HistorySink {
    tx: Sender<Stamped>,
    counters: Arc<Counters>,
}

impl HistorySink {
    /// Queues `message` for the next batch without waiting; false (and
    /// counted as dropped) if the queue is full or the writer has stopped.
    pub fn push(&self, message: Stamped) -> bool {
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The writer's counts so far.
    pub fn stats(&self) -> WriterStats {
        self.counters.stats()
    }
}

/// Owns the writer thread; [`finish`](Self::finish) (or dropping it)
/// commits what is queued and stops it.
#[derive(Debug)]
pub struct WriterGuard {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl WriterGuard {
    /// Commits what is queued, stops the writer, and tells what it did.
    pub fn finish(mut self) -> WriterStats {
        self.stop_thread();
        self.counters.stats()
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// How often an idle writer looks at its stop flag.
const IDLE_TICK: Duration = Duration::from_millis(100);

/// At most one failure line on stderr per this long.
const ERROR_EVERY: Duration = Duration::from_secs(10);

/// Starts the writer thread on `conn`.
pub(crate) fn start(
    conn: rusqlite::Connection,
    config: WriterConfig,
) -> Result<(HistorySink, WriterGuard), StoreError> {
    let config = WriterConfig { batch: config.batch.max(1), queue: config.queue.max(1), ..config };
    let (tx, rx) = crossbeam_channel::bounded(config.queue);
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = Writer { conn, rx, config, counters: Arc::clone(&counters), last_error: None, since_prune: 0 };
    let thread = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("chat-history".into())
            .spawn(move || writer.run(&stop))
            .map_err(|e| StoreError::Dir("(writer thread)".into(), e))?
    };
    Ok((HistorySink { tx, counters: Arc::clone(&counters) }, WriterGuard { stop, thread: Some(thread), counters }))
}

struct Writer {
    conn: rusqlite::Connection,
    rx: Receiver<Stamped>,
    config: WriterConfig,
    counters: Arc<Counters>,
    /// When a failure was last told.
    last_error: Option<Instant>,
    /// Messages committed since the oldest were last deleted.
    since_prune: u64,
}

impl Writer {
    fn run(mut self, stop: &AtomicBool) {
        let mut batch = Vec::with_capacity(self.config.batch.min(4096));
        loop {
            match self.rx.recv_timeout(IDLE_TICK) {
                Ok(first) => batch.push(first),
                Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => continue,
                Err(_) => break,
            }
            let deadline = Instant::now() + self.config.window;
            while batch.len() < self.config.batch {
                match self.rx.recv_deadline(deadline) {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        // Stopping: what is queued still goes in, batch by batch.
        while let Ok(next) = self.rx.try_recv() {
            batch.push(next);
            if batch.len() >= self.config.batch {
                self.commit(&mut batch);
            }
        }
        self.commit(&mut batch);
    }

    fn commit(&mut self, batch: &mut Vec<Stamped>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        match insert(&mut self.conn, batch) {
            Ok(()) => {
                self.counters.committed.fetch_add(n, Ordering::Relaxed);
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                self.since_prune += n;
                if self.config.keep > 0 && self.since_prune >= (self.config.keep / 100).max(1) {
                    self.since_prune = 0;
                    if let Err(e) = prune(&self.conn, self.config.keep) {
                        self.tell(format_args!("the oldest messages could not be deleted: {e}"));
                    }
                }
            }
            Err(e) => {
                self.counters.failed.fetch_add(n, Ordering::Relaxed);
                self.tell(format_args!("{n} messages not stored: {e}"));
            }
        }
        batch.clear();
    }

    /// A failure on stderr, at most once per [`ERROR_EVERY`].
    fn tell(&mut self, what: std::fmt::Arguments<'_>) {
        if self.last_error.is_none_or(|t| t.elapsed() >= ERROR_EVERY) {
            self.last_error = Some(Instant::now());
            eprintln!("trident: chat history: {what}");
        }
    }
}

/// Deletes all but the newest `keep` messages (by storage order: `seq`
/// grows with every insert).
fn prune(conn: &rusqlite::Connection, keep: u64) -> rusqlite::Result<usize> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    conn.execute("DELETE FROM messages WHERE seq <= (SELECT MAX(seq) FROM messages) - ?1", [keep])
}
