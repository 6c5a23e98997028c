//! A split download (`-s K`): one file fetched as up to K ranged parts at
//! once, written at their offsets into the same `NAME.part`.
//!
//! The first request asks `Range: bytes=0-`. A 206 for the whole body,
//! with a strong validator and at least two minimum split sizes long,
//! starts the split: that response feeds the first part (its connection is
//! dropped when the part is done), and the other parts are asked for with
//! `Range: bytes=A-B` and `If-Range`. Anything else falls back to one
//! stream: a 200 (no range support) is saved as it comes; a 206 for a body
//! too small to split, or without a validator, too; a 206 that does not
//! describe the whole body (or a 416) starts over with a plain request, as
//! with `-s 1`.
//!
//! A part file a split download left (its state lists ranges) is continued
//! by asking for its gaps only, each with `If-Range`. A part that shows the
//! file changed (a 200 or another validator) starts the download over, and
//! a second time makes it one stream. A part that fails (cut, timeout,
//! 5xx) gives its rest back for the next idle worker; when no worker is
//! left, the attempt fails and is retried like any other, continuing from
//! what was written. The first request and its answer are the attempt's
//! (`attempt`, `answer`); here the workers share the rest. A worker's loop
//! is one async function on every engine: on the blocking ones worker 0 runs
//! in the download's own runtime step and the others on threads of their
//! own (each with its runtime, reading its socket with blocking `recv`s),
//! on async they are futures of the download's task. The bookkeeping is
//! `split::Plan` behind a mutex.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use url::Url;

use super::answer::{
    Asked, Failure, Head, Next, check_head, check_range, decide, fatal, local, piece_range, retry, status_text,
};
use super::attempt::{Boxed, Shell, commit, drain, next_chunk, no_runtime, request, request_headers};
use super::download::{Download, Waits, checkpoint_failed};
use super::{FetchResult, Status};
use crate::fetch::auth::Credentials;
use crate::fetch::commit as committer;
use crate::fetch::http;
use crate::fetch::split::{Pace, Plan, RangeSet, Span};
use crate::fetch::store::{CHECKPOINT_BYTES, PartFile, SharedPart, Validators};

/// Stack of a part's worker thread (as a pool thread's).
const WORKER_STACK: usize = crate::fetch::FETCH_THREAD_STACK;

impl Download {
    pub(super) fn workers(&self) -> usize {
        self.task.options.split.max(1) as usize
    }

    /// Workers that start at once: all with `--split-probe 0`, else one
    /// until its connection shows that the network holds it back.
    pub(super) fn open_at_start(&self) -> usize {
        if self.task.options.split_probe.is_zero() { self.workers() } else { 1 }
    }

    /// What to ask first: the first gap of a part file that can be
    /// continued (its plan, with that gap claimed by worker 0), or all.
    pub(super) fn split_start(&self) -> (Asked, Option<(Plan, Span)>) {
        if let Some((done, validators)) = self.part.as_ref().and_then(PartFile::split_point) {
            let total = validators.total.unwrap_or(0);
            let mut plan =
                Plan::new(total, done, self.workers(), self.open_at_start(), self.task.options.min_split_size);
            if let Some(span) = plan.claim(0) {
                return (Asked::Piece { span, validators }, Some((plan, span)));
            }
        }
        (Asked::Fresh, None)
    }

    /// A fresh split: an empty part file for the body, and its plan with
    /// the first piece (from 0) claimed by worker 0.
    pub(super) fn begin_split(
        &mut self,
        head: &Head,
        total: u64,
        validators: Validators,
    ) -> Result<(Plan, Span), Failure> {
        self.name_from_head(head);
        let mut part = self.empty_part()?;
        part.begin_split(validators);
        self.part = Some(part);
        let (workers, open) = (self.workers(), self.open_at_start());
        let mut plan = Plan::new(total, RangeSet::default(), workers, open, self.task.options.min_split_size);
        let span = plan.claim(0).ok_or_else(|| fatal(Status::Failed, "nothing to download"))?;
        Ok((plan, span))
    }

    /// A continued split: the gap asked for is coming.
    pub(super) fn continue_split(&mut self, head: &Head) -> Result<(), Failure> {
        self.name_from_head(head);
        let part = self.part.as_mut().ok_or_else(|| fatal(Status::LocalError, "no .part file"))?;
        let kept = part.split_point().map_or(0, |(done, _)| done.bytes());
        part.continued_at(kept);
        Ok(())
    }

    /// The workers' shared state for `plan`, parts asked for at `url`.
    fn split_run(&self, plan: Plan, url: Url) -> Result<Run, Failure> {
        let part = self.part.as_ref().ok_or_else(|| fatal(Status::LocalError, "no .part file"))?;
        let shared = part.shared().map_err(|e| local("cannot share the .part file", &e))?;
        let synced = part.split_point().map_or(0, |(done, _)| done.bytes());
        Ok(Run {
            workers: self.workers(),
            probe: self.task.options.split_probe,
            waits: self.waits(),
            open: AtomicBool::new(self.open_at_start() == self.workers()),
            closed: AtomicBool::new(false),
            opened: tokio::sync::Notify::new(),
            validators: shared.validators().clone(),
            part: Arc::new(shared),
            authorization: self.credentials.clone(),
            url,
            plan: Mutex::new(plan),
            stop: AtomicBool::new(false),
            end: Mutex::new(End::default()),
            pending: Mutex::new(None),
            synced: AtomicU64::new(synced),
        })
    }

    /// After the workers: `Ok(true)` when every byte is written, `Ok(false)`
    /// to start over, or why the attempt failed. The part file learns what
    /// was written (a failed attempt's checkpoint records it).
    fn end_run(&mut self, run: Run) -> Result<bool, Failure> {
        let plan = run.plan.into_inner().unwrap_or_else(PoisonError::into_inner);
        let end = run.end.into_inner().unwrap_or_else(PoisonError::into_inner);
        let part = self.part.as_mut().ok_or_else(|| fatal(Status::LocalError, "no .part file"))?;
        part.end_split(plan.done().clone(), run.synced.load(Ordering::SeqCst));
        if plan.complete() {
            return Ok(true);
        }
        if let Some(failure) = end.fatal {
            return Err(failure);
        }
        if end.restart.is_some() {
            self.split_restarts += 1;
            return Ok(false);
        }
        Err(retry(end.retry.unwrap_or_else(|| "parts of the body are missing".into())))
    }

    /// After a part showed the file changed (the part file is emptied by
    /// the caller): split again, but not a second time.
    pub(super) fn split_again(&mut self) {
        if self.split_restarts > 1 {
            self.no_split = true;
        }
    }
}

/// Why a worker stopped before its part was done.
#[derive(Debug)]
enum PieceFailure {
    /// Its rest waits for another worker (or the next attempt).
    Retry(String),
    /// The file changed: every worker stops, the download starts over.
    Restart(String),
    /// Every worker stops, the attempt ends with this.
    Fatal(Failure),
}

impl From<Failure> for PieceFailure {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Retry { reason, .. } => PieceFailure::Retry(reason),
            f @ (Failure::Fatal { .. } | Failure::OutOfTime(_)) => PieceFailure::Fatal(f),
        }
    }
}

/// How the workers ended, the most serious first.
#[derive(Debug, Default)]
struct End {
    fatal: Option<Failure>,
    restart: Option<String>,
    retry: Option<String>,
}

enum PieceNext {
    Body,
    Redirect(Url),
}

/// A checkpoint's ranges, and where the committer answers.
type Saving = (RangeSet, committer::InFlight);

/// What the workers of one split attempt share.
struct Run {
    plan: Mutex<Plan>,
    /// Workers, worker 0 first (it has the first response).
    workers: usize,
    /// `--split-probe`.
    probe: Duration,
    /// The download's limits on waiting for the network.
    waits: Waits,
    /// Every worker may work (else only worker 0 does, until it opens).
    open: AtomicBool,
    /// Worker 0 ended before opening: the others have nothing to do.
    closed: AtomicBool,
    /// Wakes the async workers waiting for `open` or `closed`.
    opened: tokio::sync::Notify,
    part: Arc<SharedPart>,
    validators: Validators,
    authorization: Option<Credentials>,
    /// Where parts are asked for (the first request's final URL).
    url: Url,
    stop: AtomicBool,
    end: Mutex<End>,
    /// The checkpoint the committer is making (one at a time; its lock
    /// also keeps two workers from starting one together).
    pending: Mutex<Option<Saving>>,
    /// Bytes the state file records.
    synced: AtomicU64,
}

impl Run {
    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    /// Opens every worker, `worker`'s rest and the waiting pieces cut for
    /// all of them; `false` if they were open already.
    fn open_all(&self, worker: usize) -> bool {
        let mut plan = self.plan();
        if self.open.swap(true, Ordering::SeqCst) {
            return false;
        }
        plan.spread(worker);
        drop(plan);
        self.opened.notify_waiters();
        true
    }

    /// Worker 0 has ended: workers still waiting to open never will.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.opened.notify_waiters();
    }

    /// Waits until the workers open (`true`) or worker 0 ended (`false`).
    async fn until_open(&self) -> bool {
        loop {
            let notified = self.opened.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_open() {
                return true;
            }
            if self.closed.load(Ordering::SeqCst) {
                return false;
            }
            notified.await;
        }
    }

    /// A watch on a connection that has waited `waited` so far, while the
    /// workers are not open.
    fn pace(&self, waited: Duration) -> Option<Pace> {
        (!self.is_open()).then(|| Pace::new(self.probe, Instant::now(), waited))
    }

    /// After a chunk of `worker`'s: opens every worker when the window of
    /// `pace` ended with the connection waiting at least half of it.
    /// `true` when this call opened them; the watch ends once they are.
    fn watch(&self, pace: &mut Option<Pace>, worker: usize, waited: Duration) -> bool {
        let Some(p) = pace.as_mut() else { return false };
        if self.is_open() {
            *pace = None;
            return false;
        }
        if !p.starved(Instant::now(), waited) {
            return false;
        }
        *pace = None;
        self.open_all(worker)
    }

    fn claim(&self, worker: usize) -> Option<Span> {
        if self.stopped() { None } else { self.plan().claim(worker) }
    }

    fn release(&self, worker: usize) {
        self.plan().release(worker);
    }

    fn fail(&self, failure: PieceFailure) {
        let mut end = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        match failure {
            PieceFailure::Retry(reason) => end.retry = Some(reason),
            PieceFailure::Restart(reason) => {
                end.restart.get_or_insert(reason);
                self.stop.store(true, Ordering::SeqCst);
            }
            PieceFailure::Fatal(f) => {
                end.fatal.get_or_insert(f);
                self.stop.store(true, Ordering::SeqCst);
            }
        }
    }

    /// The headers of a request for `span` at `url`.
    fn headers(&self, span: Span, url: &Url) -> Vec<(&'static str, String)> {
        let if_range = self.validators.if_range().unwrap_or_default();
        request_headers(
            Some((piece_range(span), Some(if_range))),
            self.authorization.as_ref().and_then(|c| c.for_url(url)),
        )
    }

    /// What the answer to a request for `span` means.
    fn check_piece(&self, head: &Head, span: Span, url: &Url, hops: &mut u32) -> Result<PieceNext, PieceFailure> {
        check_head(head)?;
        match head.status {
            206 => check_range(head, span.0, Some(span.1), Some(&self.validators))
                .map(|_| PieceNext::Body)
                .map_err(PieceFailure::Restart),
            200 => Err(PieceFailure::Restart("HTTP 200 to a ranged request with If-Range: the file changed".into())),
            416 => Err(PieceFailure::Restart("HTTP 416 to a range within the file: the file changed".into())),
            _ => match decide(head, url, hops)? {
                Next::Redirect(next) => Ok(PieceNext::Redirect(next)),
                _ => Err(PieceFailure::Restart(format!("{} to a ranged request", status_text(head.status)))),
            },
        }
    }

    /// Writes what `worker` read at its position: `Ok(true)` when all of
    /// it was the part's (the part may go on), and whether a checkpoint is
    /// due.
    fn write(&self, worker: usize, data: &[u8]) -> Result<(bool, bool), PieceFailure> {
        if self.waits.ctx.cancelled() {
            return Err(PieceFailure::Fatal(fatal(Status::Interrupted, "interrupted")));
        }
        let (offset, allowed) = self.plan().reserve(worker, data.len());
        if allowed == 0 {
            return Ok((false, false));
        }
        self.part
            .write_at(&data[..allowed], offset)
            .map_err(|e| PieceFailure::Fatal(local("cannot write the .part file", &e)))?;
        let due = self.plan().wrote(offset, allowed, CHECKPOINT_BYTES);
        Ok((allowed == data.len(), due))
    }

    /// Whether the body of `worker`'s part ended where it should.
    fn body_ended(&self, worker: usize) -> Result<(), PieceFailure> {
        if self.plan().part_done(worker) {
            Ok(())
        } else {
            Err(PieceFailure::Retry("a part's body ended early".into()))
        }
    }

    fn end_checkpoint(&self, done: &RangeSet, result: std::io::Result<()>) -> Result<(), PieceFailure> {
        if result.is_ok() {
            self.synced.fetch_max(done.bytes(), Ordering::SeqCst);
        }
        result.map_err(|e| PieceFailure::Fatal(checkpoint_failed(&e)))
    }

    /// Starts a checkpoint on the committer thread (as one stream does),
    /// unless one is in flight; the worker goes on reading (with one
    /// worker, waiting for each sync would stall the stream: on threads
    /// 4 x 256 MiB took 1.0 s instead of 0.65 s). The one before, if it
    /// ended, is taken note of first.
    fn start_checkpoint(&self) -> Result<(), PieceFailure> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, in_flight)) = pending.as_mut() {
            let Some(result) = in_flight.try_result() else { return Ok(()) };
            if let Some((done, _)) = pending.take() {
                self.end_checkpoint(&done, result)?;
            }
        }
        let done = self.plan().snapshot();
        let started = self.part.checkpoint(&done).and_then(committer::checkpoint);
        match started {
            Ok(in_flight) => *pending = Some((done, in_flight)),
            Err(e) => self.end_checkpoint(&done, Err(e))?,
        }
        Ok(())
    }

    /// Waits for the checkpoint in flight, if any; a failure ends the
    /// attempt.
    async fn settle_checkpoint(&self) {
        if let Some((done, mut in_flight)) = self.take_pending() {
            self.settled(&done, in_flight.result().await);
        }
    }

    fn take_pending(&self) -> Option<Saving> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn settled(&self, done: &RangeSet, result: std::io::Result<()>) {
        if let Err(f) = self.end_checkpoint(done, result) {
            self.fail(f);
        }
    }
}

// ---------------------------------------------------------------------------
// The workers, on every engine.

/// Fetches the parts of a split attempt whose first response is `first`
/// (worker 0's, for `started`), parts asked for at `url`. `Ok(true)` when
/// every byte is written, `Ok(false)` to start over (the file changed), or
/// why the attempt failed.
#[inline(never)]
pub(super) fn fetch_parts<'a>(
    client: &'a http::Client,
    dl: &'a mut Download,
    (plan, span): (Plan, Span),
    url: Url,
    first: http::Response,
) -> Boxed<'a, Result<bool, Failure>> {
    Box::pin(async move {
        debug_assert!(span.0 < span.1);
        let run = Arc::new(dl.split_run(plan, url)?);
        match dl.shell {
            Shell::Async => {
                let mut first = Some(first);
                let workers = (0..run.workers).map(|id| worker_async(&run, client, id, first.take()));
                futures_util::future::join_all(workers).await;
            }
            Shell::Blocking => {
                // Worker 0 here, in this thread's runtime (its connection
                // belongs to it); the others on threads of their own once the
                // workers are open.
                let threads = Mutex::new(Vec::new());
                let start = || start_threads(&run, client, &threads);
                if run.is_open() {
                    start();
                }
                work(&run, client, 0, Some(first), &start).await;
                let threads = std::mem::take(&mut *threads.lock().unwrap_or_else(PoisonError::into_inner));
                for thread in threads {
                    if let Err(panic) = thread.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
            }
        }
        run.settle_checkpoint().await;
        let run = Arc::into_inner(run).ok_or_else(|| fatal(Status::LocalError, "a part's worker is still running"))?;
        dl.end_run(run)
    })
}

/// Workers 1 to K-1 on threads of their own, each running its loop on its
/// own runtime (fewer if threads cannot be started); once only.
fn start_threads(run: &Arc<Run>, client: &http::Client, threads: &Mutex<Vec<std::thread::JoinHandle<()>>>) {
    let mut threads = threads.lock().unwrap_or_else(PoisonError::into_inner);
    if !threads.is_empty() {
        return;
    }
    for id in 1..run.workers {
        let (run, client) = (Arc::clone(run), client.clone());
        let started =
            std::thread::Builder::new().name(format!("part-{id}")).stack_size(WORKER_STACK).spawn(move || {
                if let Err(e) = http::block_on(work(&run, &client, id, None, &|| {})) {
                    run.fail(PieceFailure::Fatal(no_runtime(&e)));
                }
            });
        match started {
            Ok(thread) => threads.push(thread),
            Err(_) => break,
        }
    }
}

/// A worker of the async shell: the others wait until worker 0 opens them.
async fn worker_async(run: &Run, client: &http::Client, id: usize, first: Option<http::Response>) {
    if id > 0 && !run.until_open().await {
        return;
    }
    work(run, client, id, first, &|| {}).await;
    if id == 0 {
        run.close();
    }
}

/// A worker's loop: claims pieces and fetches them until none is left or
/// the workers stop. `on_waiting`: see [`read_piece`].
async fn work(
    run: &Run,
    client: &http::Client,
    id: usize,
    mut first: Option<http::Response>,
    on_waiting: &(dyn Fn() + Sync),
) {
    loop {
        let response = match first.take() {
            Some(r) => r,
            None => {
                let Some(span) = run.claim(id) else { break };
                match request_piece(run, client, span).await {
                    Ok(r) => r,
                    Err(f) => {
                        run.release(id);
                        run.fail(f);
                        break;
                    }
                }
            }
        };
        let result = read_piece(run, id, response, on_waiting).await;
        run.release(id);
        if let Err(f) = result {
            run.fail(f);
            break;
        }
    }
}

/// Asks for `span` (following redirects): the response whose body is it.
async fn request_piece(run: &Run, client: &http::Client, span: Span) -> Result<http::Response, PieceFailure> {
    let mut url = run.url.clone();
    let mut hops = 0;
    loop {
        let headers = run.headers(span, &url);
        let response = request(client, &run.waits, &url, &headers).await?;
        let head = Head::of(&response);
        match run.check_piece(&head, span, &url, &mut hops) {
            Ok(PieceNext::Body) => return Ok(response),
            Ok(PieceNext::Redirect(next)) => {
                drain(response, &run.waits).await;
                url = next;
            }
            Err(f) => return Err(f),
        }
    }
}

/// Reads `id`'s part to its end. `on_waiting` runs each time the part's
/// connection is seen waiting for the network (the blocking shell starts
/// its other workers' threads then; the async one has them all running).
async fn read_piece(
    run: &Run,
    id: usize,
    mut response: http::Response,
    on_waiting: &(dyn Fn() + Sync),
) -> Result<(), PieceFailure> {
    let mut pace = run.pace(response.waited());
    loop {
        if run.stopped() {
            return Ok(());
        }
        let chunk = match next_chunk(&mut response, &run.waits).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return run.body_ended(id),
            Err(Failure::Retry { reason, .. }) => {
                return Err(PieceFailure::Retry(reason.replace("the body", "a part")));
            }
            Err(f) => return Err(f.into()),
        };
        let (more, due) = run.write(id, &chunk)?;
        if due {
            run.start_checkpoint()?;
        }
        if run.watch(&mut pace, id, response.waited()) {
            on_waiting();
        }
        if !more {
            // The part ends here (a later part starts): the rest of this
            // response is not read, and its connection not reused.
            return Ok(());
        }
    }
}

/// Every byte is written: cut to length (and digest, if wanted), check,
/// sync and rename.
pub(super) async fn finish(dl: &mut Download) -> Result<FetchResult, Failure> {
    dl.on_part(PartFile::complete_split)
        .await?
        .unwrap_or(Ok(()))
        .map_err(|e| local("cannot complete the .part file", &e))?;
    let total = dl.part.as_ref().and_then(PartFile::split_total);
    dl.verify(total)?;
    commit(dl).await
}
