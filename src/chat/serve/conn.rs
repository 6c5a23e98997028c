//! One connection's send queue, shared between whoever routes lines to it
//! and the connection's own task or thread that writes them.
//!
//! Lines are appended under a small per-connection lock, so the order in
//! which the hub produced them is the order they are written; whoever
//! writes takes everything queued at once (one `write` for many lines: the
//! coalescing that makes fan-out cheap). The queue is bounded in bytes:
//! a line that would exceed [`Limits::sendq`](super::Limits::sendq) marks
//! the connection *overflowed*; it is cut without flushing and the hub
//! closes it with "SendQ exceeded", so a client that stops reading never
//! holds anyone else up. All the queues of a process also share a
//! [`Budget`] ([`Limits::sendq_total`](super::Limits::sendq_total)): a line
//! that would exceed it is refused ([`Pushed::OverBudget`]) and the router
//! cuts the connection with the longest queue ([`longest`]) before trying
//! again, so many slow readers together cannot exhaust memory either.
//!
//! How the owner is woken depends on the engine ([`Wake`]): a tokio
//! [`Notify`] (async, and the workers of the processes engine), or, for a
//! connection thread, a direct non-blocking write by the router plus a
//! signal to the owner thread only when the socket is full (threads).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::chat::ClientId;

/// A connection's send queue and how to wake its owner.
#[derive(Debug)]
pub(crate) struct Conn {
    pub id: ClientId,
    queue: Mutex<Queue>,
    wake: Wake,
    budget: Arc<Budget>,
}

/// Bytes queued and their cap: across every connection of a process, or
/// on one hub-worker link.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget { used: AtomicUsize::new(0), limit }
    }

    /// Takes `n` bytes of the budget, unless that would exceed it.
    pub fn reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Takes `n` bytes even past the cap (what must be sent whatever the
    /// backlog; later reservations see it).
    pub fn force(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    /// Gives `n` bytes back.
    pub fn release(&self, n: usize) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| Some(used.saturating_sub(n)));
    }

    /// Bytes queued now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// The connection among `conns` with the most bytes queued (the one to cut
/// when the budget is exhausted), if any has some.
pub(crate) fn longest<'a>(conns: impl IntoIterator<Item = &'a Arc<Conn>>) -> Option<&'a Arc<Conn>> {
    conns.into_iter().map(|c| (c.queued(), c)).filter(|(n, _)| *n > 0).max_by_key(|(n, _)| *n).map(|(_, c)| c)
}

/// How a connection's owner learns there is work.
#[derive(Debug)]
pub(crate) enum Wake {
    /// A tokio task waiting on `notified()`.
    Task(Notify),
    /// A connection thread: routers write to `fd` themselves (non-blocking,
    /// if `direct`) and signal the thread (`pthread_t` in `owner`, 0 until
    /// it has started) only when the socket is full or the queue must be
    /// closed. Not `direct` (TLS: only the owner can encrypt): routers
    /// signal the owner when the queue stops being empty.
    Thread { fd: RawFd, owner: AtomicU64, direct: bool },
}

#[derive(Debug, Default)]
struct Queue {
    buf: Vec<u8>,
    limit: usize,
    /// Close once `buf` is flushed.
    closing: bool,
    /// The limit was exceeded: cut the connection, send nothing more.
    overflowed: bool,
    /// The socket failed: nothing can be sent any more.
    broken: bool,
    /// The owner thread has finished: no more signals, no more writes.
    owner_gone: bool,
    /// A signal was sent and the owner has not looked at the queue since.
    signalled: bool,
}

/// What the owner finds when it takes the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    pub closing: bool,
    pub overflowed: bool,
    pub broken: bool,
}

/// The result of [`Conn::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued; `first` if the queue was empty (the owner needs waking).
    Queued { first: bool },
    /// This line overflowed the queue: the connection must be closed.
    Overflow,
    /// The process's budget has no room for it: nothing was queued; cut
    /// the longest queue and try again.
    OverBudget,
    /// The connection is already closing, overflowed or broken: dropped.
    Dropped,
}

/// The signal that wakes a connection thread blocked in `ppoll`.
pub(crate) const WAKE_SIGNAL: libc::c_int = libc::SIGUSR2;

impl Conn {
    /// A connection served by a tokio task.
    pub fn for_task(id: ClientId, limit: usize, budget: Arc<Budget>) -> Conn {
        Conn { id, queue: Mutex::new(Queue { limit, ..Queue::default() }), wake: Wake::Task(Notify::new()), budget }
    }

    /// A connection served by a thread on `fd` (non-blocking), written to
    /// by routers too if `direct`.
    pub fn for_thread(id: ClientId, limit: usize, fd: RawFd, direct: bool, budget: Arc<Budget>) -> Conn {
        Conn {
            id,
            queue: Mutex::new(Queue { limit, ..Queue::default() }),
            wake: Wake::Thread { fd, owner: AtomicU64::new(0), direct },
            budget,
        }
    }

    /// Bytes queued now.
    pub fn queued(&self) -> usize {
        self.lock().buf.len()
    }

    /// Empties the queue, giving its bytes back to the budget.
    fn drop_queue(&self, q: &mut Queue) {
        self.budget.release(q.buf.len());
        q.buf = Vec::new();
    }

    /// Cuts this connection as if its own queue had overflowed (the
    /// process's budget is exhausted and this queue is the longest).
    pub fn overflow(&self) {
        let mut q = self.lock();
        if !q.overflowed {
            q.overflowed = true;
            self.drop_queue(&mut q);
            self.alert(&mut q);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `line` (routers call this, in the hub's order).
    pub fn push(&self, line: &[u8]) -> Pushed {
        let mut q = self.lock();
        if q.closing || q.overflowed || q.broken || q.owner_gone {
            return Pushed::Dropped;
        }
        if q.buf.len().saturating_add(line.len()) > q.limit {
            q.overflowed = true;
            self.drop_queue(&mut q);
            self.alert(&mut q);
            return Pushed::Overflow;
        }
        if !self.budget.reserve(line.len()) {
            return Pushed::OverBudget;
        }
        let first = q.buf.is_empty();
        q.buf.extend_from_slice(line);
        if first && let Wake::Task(notify) = &self.wake {
            notify.notify_one();
        }
        Pushed::Queued { first }
    }

    /// Close once what is queued is written.
    pub fn close_after_flush(&self) {
        let mut q = self.lock();
        if !q.closing {
            q.closing = true;
            self.alert(&mut q);
        }
    }

    /// Wakes the owner (task: a permit; thread: a signal, once until it
    /// looks).
    fn alert(&self, q: &mut Queue) {
        match &self.wake {
            Wake::Task(notify) => notify.notify_one(),
            Wake::Thread { owner, .. } => {
                let thread = owner.load(Ordering::Acquire);
                if thread != 0 && !q.owner_gone && !q.signalled {
                    q.signalled = true;
                    // SAFETY: the owner thread is alive: it sets
                    // `owner_gone` under this lock before it ends.
                    unsafe { libc::pthread_kill(thread as libc::pthread_t, WAKE_SIGNAL) };
                }
            }
        }
    }

    /// Wakes the owner to look at the server's state (shutdown).
    pub fn nudge(&self) {
        let mut q = self.lock();
        q.signalled = false;
        self.alert(&mut q);
    }

    /// Cuts the connection now (shutdown grace over): the owner's blocked
    /// calls fail.
    pub fn cut(&self) {
        let mut q = self.lock();
        match &self.wake {
            Wake::Thread { fd, .. } if !q.owner_gone => {
                // SAFETY: `fd` is open while the owner is not gone (checked under the lock).
                unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
            }
            Wake::Thread { .. } => {}
            Wake::Task(_) => {
                q.broken = true;
                self.alert(&mut q);
            }
        }
    }

    /// Waits for a wake-up (tasks only).
    pub async fn notified(&self) {
        match &self.wake {
            Wake::Task(notify) => notify.notified().await,
            Wake::Thread { .. } => std::future::pending().await,
        }
    }

    /// Moves everything queued to the end of `into` (the owner writes it).
    pub fn take(&self, into: &mut Vec<u8>) -> Status {
        let mut q = self.lock();
        q.signalled = false;
        self.budget.release(q.buf.len());
        if into.is_empty() {
            // The queue starts again from no allocation.
            *into = std::mem::take(&mut q.buf);
        } else {
            into.append(&mut q.buf);
        }
        Status { closing: q.closing, overflowed: q.overflowed, broken: q.broken }
    }

    /// The owner thread records itself (threads engine), before its first
    /// look at the queue.
    pub fn set_owner(&self, thread: libc::pthread_t) {
        if let Wake::Thread { owner, .. } = &self.wake {
            #[allow(clippy::unnecessary_cast)] // pthread_t is not u64 everywhere
            owner.store(thread as u64, Ordering::Release);
        }
    }

    /// The owner thread is leaving: no more signals or direct writes.
    pub fn owner_gone(&self) {
        self.lock().owner_gone = true;
    }

    /// Threads engine: writes what is queued, without blocking; whatever
    /// the socket does not take stays queued and the owner thread is
    /// signalled to wait for the socket (unless `by_owner`). The status
    /// after the attempt.
    pub fn flush(&self, by_owner: bool) -> (Status, bool) {
        let Wake::Thread { fd, direct, .. } = &self.wake else { return (self.status(), false) };
        let mut q = self.lock();
        if !direct {
            // Only the owner writes (and it calls `take`, not this).
            if !q.buf.is_empty() {
                self.alert(&mut q);
            }
            let status = Status { closing: q.closing, overflowed: q.overflowed, broken: q.broken };
            return (status, false);
        }
        if by_owner {
            q.signalled = false;
        }
        if q.owner_gone || q.overflowed || q.broken {
            let status = Status { closing: q.closing, overflowed: q.overflowed, broken: q.broken };
            return (status, false);
        }
        let mut sent = 0;
        while sent < q.buf.len() {
            let rest = &q.buf[sent..];
            // SAFETY: `fd` is open while the owner is not gone (checked
            // above, under the lock the owner takes to leave); `rest` is valid.
            let n =
                unsafe { libc::send(*fd, rest.as_ptr().cast(), rest.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
            if n > 0 {
                sent += n as usize;
                continue;
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => break,
                _ => {
                    q.broken = true;
                    self.drop_queue(&mut q);
                    sent = 0;
                    if !by_owner {
                        self.alert(&mut q);
                    }
                    break;
                }
            }
        }
        q.buf.drain(..sent);
        self.budget.release(sent);
        let pending = !q.buf.is_empty();
        if pending && !by_owner {
            self.alert(&mut q);
        }
        if !pending {
            // An idle connection holds no buffer.
            q.buf = Vec::new();
        }
        (Status { closing: q.closing, overflowed: q.overflowed, broken: q.broken }, pending)
    }

    /// The queue's state, without taking anything.
    pub fn status(&self) -> Status {
        let q = self.lock();
        Status { closing: q.closing, overflowed: q.overflowed, broken: q.broken }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut q = self.lock();
        self.budget.release(q.buf.len());
        q.buf = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Arc<Budget> {
        Arc::new(Budget::new(usize::MAX))
    }

    #[test]
    fn the_queues_of_a_process_share_a_budget_and_give_it_back() {
        let budget = Arc::new(Budget::new(10));
        let a = Conn::for_task(ClientId(1), 8, Arc::clone(&budget));
        let b = Conn::for_task(ClientId(2), 8, Arc::clone(&budget));
        assert_eq!(a.push(b"123456"), Pushed::Queued { first: true });
        assert_eq!(b.push(b"1234"), Pushed::Queued { first: true });
        assert_eq!(b.push(b"5"), Pushed::OverBudget, "each is within its own limit, not both together");
        let conns = [Arc::new(a), Arc::new(b)];
        let longest = longest(&conns).expect("one has bytes");
        assert_eq!(longest.id, ClientId(1));
        longest.overflow();
        assert_eq!(budget.used(), 4);
        assert_eq!(conns[1].push(b"5"), Pushed::Queued { first: false });
        conns[1].take(&mut Vec::new());
        assert_eq!(budget.used(), 0);
        conns[0].push(b"x");
        conns[1].push(b"xyz");
        drop(conns);
        assert_eq!(budget.used(), 0, "a connection that ends gives its bytes back");
    }

    #[test]
    fn the_queue_is_bounded_and_an_overflow_drops_everything_after() {
        let conn = Conn::for_task(ClientId(1), 10, budget());
        assert_eq!(conn.push(b"12345"), Pushed::Queued { first: true });
        assert_eq!(conn.push(b"6789"), Pushed::Queued { first: false });
        assert_eq!(conn.push(b"ab"), Pushed::Overflow);
        assert_eq!(conn.push(b"c"), Pushed::Dropped);
        let mut out = Vec::new();
        let status = conn.take(&mut out);
        assert!(status.overflowed);
        assert!(out.is_empty(), "an overflowed queue is not flushed");
    }

    #[test]
    fn take_returns_lines_in_order_and_closing_after_them() {
        let conn = Conn::for_task(ClientId(1), 100, budget());
        conn.push(b"a\r\n");
        conn.push(b"b\r\n");
        conn.close_after_flush();
        assert_eq!(conn.push(b"late\r\n"), Pushed::Dropped);
        let mut out = Vec::new();
        let status = conn.take(&mut out);
        assert_eq!(out, b"a\r\nb\r\n");
        assert!(status.closing && !status.overflowed);
    }
}
