//! A task handing back its place in the engine's concurrency before it
//! ends: [`release_slot`].
//!
//! Some tasks end with a step that waits without doing the task's own work:
//! a download waits for the committer to sync and rename its file (see
//! `fetch/commit.rs`), which takes longer the more the disk is flushing and
//! batches better the more files wait together. While it waits, the next
//! task can start: the task calls [`release_slot`], and the engine counts it
//! no longer against `concurrency` (`-j`), only against a second bound of
//! [`FINISHING`] x `concurrency` tasks finishing at once — so at most
//! 4 x `concurrency` tasks exist, at most `concurrency` of them doing their
//! main work. Three per place because the committer's batches must cover a
//! disk flush: 2,000 x 16 KiB at -j 32 on a file system whose flush is
//! slow took 0.152 s with one finishing per place, 0.123 s with three
//! (peak RSS 12.5 -> 15.4 MiB), 0.128-0.136 s with seven (20-21 MiB).
//!
//! Honoured by the threads engine and the async engine's one-runtime path
//! (current-thread, `--max-rate`); elsewhere (async lanes, worker
//! processes, which run one task each) it does nothing and the task keeps
//! its place until it ends.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};
use futures_util::FutureExt;

/// Frees the calling task's place in the concurrency of the engine running
/// it (see the module docs); the first call counts, later ones do nothing,
/// and so does a call outside a task of an engine that honours it.
pub fn release_slot() {
    if TASK_SLOT.try_with(|token| token.release()).is_ok() {
        return;
    }
    THREAD_SLOT.with(|token| {
        if let Some(token) = token.borrow().as_ref() {
            token.release();
        }
    });
}

::tokio::task_local! {
    static TASK_SLOT: Arc<Token>;
}

thread_local! {
    static THREAD_SLOT: RefCell<Option<Arc<Token>>> = const { RefCell::new(None) };
}

/// Tasks that may be finishing at once, per place in `concurrency`.
pub(super) const FINISHING: usize = 3;

/// One run's count of tasks in flight that released their place, and the
/// dispatcher's wake-up when one does: a tokio `Notify` for the async
/// engine, a channel of one message for the threads engine's `select!`
/// (a wake-up, not a count: the dispatcher reads the count after it).
#[derive(Debug)]
pub(super) struct Slots {
    concurrency: usize,
    released: AtomicUsize,
    notify: ::tokio::sync::Notify,
    tx: Sender<()>,
    rx: Receiver<()>,
}

/// One task's claim: whether it released its place yet.
#[derive(Debug)]
struct Token {
    slots: Arc<Slots>,
    released: AtomicBool,
}

impl Token {
    fn release(&self) {
        if !self.released.swap(true, Ordering::SeqCst) {
            self.slots.released.fetch_add(1, Ordering::SeqCst);
            self.slots.notify.notify_one();
            let _ = self.slots.tx.try_send(());
        }
    }

    /// The task ended: a released place stops counting.
    fn finish(&self) {
        if self.released.load(Ordering::SeqCst) {
            self.slots.released.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Slots {
    pub(super) fn new(concurrency: usize) -> Arc<Self> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        Arc::new(Slots {
            concurrency: concurrency.max(1),
            released: AtomicUsize::new(0),
            notify: Default::default(),
            tx,
            rx,
        })
    }

    /// Whether another task may start with `in_flight` tasks not ended.
    pub(super) fn can_start(&self, in_flight: usize) -> bool {
        let released = self.released.load(Ordering::SeqCst).min(in_flight);
        in_flight - released < self.concurrency && in_flight < self.most()
    }

    /// Most tasks that can exist at once (threads the pool may need).
    pub(super) fn most(&self) -> usize {
        (1 + FINISHING) * self.concurrency
    }

    /// Ready when a task released its place (maybe before this was called).
    pub(super) async fn released(&self) {
        self.notify.notified().await;
    }

    /// Receives a message when a task released its place.
    pub(super) fn released_rx(&self) -> &Receiver<()> {
        &self.rx
    }

    /// `future` as a task of this run: [`release_slot`] inside it counts.
    pub(super) fn scope_async<F: Future + Send>(
        self: &Arc<Self>,
        future: F,
    ) -> impl Future<Output = F::Output> + Send + use<F> {
        let token = Arc::new(Token { slots: Arc::clone(self), released: AtomicBool::new(false) });
        TASK_SLOT.scope(Arc::clone(&token), future).map(move |out| {
            token.finish();
            out
        })
    }

    /// `f` run as a task of this run on this thread: [`release_slot`]
    /// inside it counts.
    pub(super) fn scope_blocking<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        let token = Arc::new(Token { slots: Arc::clone(self), released: AtomicBool::new(false) });
        THREAD_SLOT.with(|slot| *slot.borrow_mut() = Some(Arc::clone(&token)));
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                THREAD_SLOT.with(|slot| slot.borrow_mut().take());
            }
        }
        let reset = Reset;
        let out = f();
        drop(reset);
        token.finish();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_places_let_more_start_up_to_the_finishing_bound() {
        let slots = Slots::new(2);
        assert!(slots.can_start(1) && !slots.can_start(2));
        let inner = Arc::clone(&slots);
        slots.scope_blocking(|| {
            release_slot();
            release_slot(); // once only
            assert_eq!(inner.released.load(Ordering::SeqCst), 1);
            assert!(inner.can_start(2) && !inner.can_start(3));
            assert!(inner.released_rx().try_recv().is_ok());
        });
        // Releases nobody waited for leave one wake-up, not one each.
        for _ in 0..3 {
            slots.scope_blocking(release_slot);
        }
        assert!(slots.released_rx().try_recv().is_ok());
        assert!(slots.released_rx().try_recv().is_err());
        assert_eq!(slots.released.load(Ordering::SeqCst), 0, "an ended task no longer counts");
        // At most (1 + FINISHING) x concurrency, however many released.
        let most = slots.most();
        assert_eq!(most, 8);
        slots.released.store(most, Ordering::SeqCst);
        assert!(slots.can_start(most - 1) && !slots.can_start(most));
        // Outside a task: nothing happens.
        release_slot();
    }

    #[test]
    fn async_tasks_release_through_their_scope() {
        let rt = ::tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let slots = Slots::new(1);
        let inner = Arc::clone(&slots);
        rt.block_on(slots.scope_async(async move {
            assert!(!inner.can_start(1));
            release_slot();
            let woken = ::tokio::time::timeout(std::time::Duration::from_secs(5), inner.released()).await;
            assert!(woken.is_ok(), "a release wakes the dispatcher");
            assert!(inner.can_start(1));
        }));
        assert_eq!(slots.released.load(Ordering::SeqCst), 0);
    }
}
