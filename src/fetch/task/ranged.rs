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
//! what was written. Workers are scoped threads (threads and processes
//! engines) or futures of the download's task (async); the bookkeeping is
//! `split::Plan` behind a mutex.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Scope;
use std::time::Instant;

use super::*;
use crate::fetch::split::{Pace, Plan, RangeSet, Span, pieces_for};
use crate::fetch::store::{CHECKPOINT_BYTES, SharedPart};

/// Stack of a part's worker thread (as a pool thread's).
const WORKER_STACK: usize = crate::fetch::FETCH_THREAD_STACK;

/// What the first request of a split attempt asked for.
#[derive(Debug)]
enum Asked {
    /// `Range: bytes=0-`: a fresh download.
    Fresh,
    /// The first gap of a part file being continued, with `If-Range`.
    Piece { span: Span, validators: Validators },
}

impl Asked {
    fn range(&self) -> String {
        match self {
            Asked::Fresh => "bytes=0-".into(),
            Asked::Piece { span, .. } => piece_range(*span),
        }
    }
}

fn piece_range((start, end): Span) -> String {
    format!("bytes={start}-{}", end.saturating_sub(1))
}

/// What the answer to the first request means.
#[derive(Debug)]
enum First {
    Redirect(Url),
    /// One stream from zero: a 200, or a 206 for a whole body that is too
    /// small to split or has no validator.
    Whole {
        expected: Option<u64>,
    },
    /// Ranges are not usable: one plain request, as with `-s 1`.
    Plain,
    /// The part file cannot be continued: start over.
    Restart,
    /// A fresh body of `total` bytes, to split.
    Split {
        total: u64,
        validators: Validators,
    },
    /// The gap asked for is coming.
    Piece,
}

fn first(head: &Head, asked: &Asked, current: &Url, hops: &mut u32, options: &FetchOptions) -> Result<First, Failure> {
    check_head(head)?;
    match (head.status, asked) {
        (206, Asked::Fresh) => {
            let Ok(total) = check_range(head, 0, None, None) else { return Ok(First::Plain) };
            let validators = head.validators().map(|v| Validators { total: Some(total), ..v });
            Ok(match validators {
                Some(validators) if pieces_for(total, options.split as usize, options.min_split_size) > 1 => {
                    First::Split { total, validators }
                }
                _ => First::Whole { expected: Some(total) },
            })
        }
        (416, Asked::Fresh) => Ok(First::Plain),
        (206, Asked::Piece { span, validators }) => {
            Ok(match check_range(head, span.0, Some(span.1), Some(validators)) {
                Ok(_) => First::Piece,
                Err(_) => First::Restart,
            })
        }
        (416, Asked::Piece { .. }) => Ok(First::Restart),
        _ => Ok(match decide(head, current, hops, None)? {
            Next::Body { expected } => First::Whole { expected },
            Next::Redirect(next) => First::Redirect(next),
            Next::Rest { .. } | Next::Restart => First::Restart,
        }),
    }
}

impl Download {
    fn workers(&self) -> usize {
        self.task.options.split.max(1) as usize
    }

    /// Workers that start at once: all with `--split-probe 0`, else one
    /// until its connection shows that the network holds it back.
    fn open_at_start(&self) -> usize {
        if self.task.options.split_probe.is_zero() { self.workers() } else { 1 }
    }

    /// What to ask first: the first gap of a part file that can be
    /// continued (its plan, with that gap claimed by worker 0), or all.
    fn split_start(&self) -> (Asked, Option<(Plan, Span)>) {
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

    /// The headers of the first request.
    fn first_headers(&self, asked: &Asked, url: &Url) -> Vec<(&'static str, String)> {
        let mut headers = vec![("Range", asked.range())];
        if let Asked::Piece { validators, .. } = asked {
            headers.push(("If-Range", validators.if_range().unwrap_or_default().to_string()));
        }
        if let Some(auth) = self.authorization(url) {
            headers.push(("Authorization", auth.to_string()));
        }
        headers
    }

    /// A fresh split: an empty part file for the body, and its plan with
    /// the first piece (from 0) claimed by worker 0.
    fn begin_split(&mut self, head: &Head, total: u64, validators: Validators) -> Result<(Plan, Span), Failure> {
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
    fn continue_split(&mut self, head: &Head) -> Result<(), Failure> {
        self.name_from_head(head);
        let part = self.part.as_mut().ok_or_else(|| fatal(Status::LocalError, "no .part file"))?;
        let kept = part.split_point().map_or(0, |(done, _)| done.bytes());
        part.continued_at(kept);
        Ok(())
    }

    /// The workers' shared state for `plan`, parts asked for at `url`.
    fn run(&self, plan: Plan, url: Url) -> Result<Run, Failure> {
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

    /// Whether to split again after a part showed the file changed (the
    /// part file is emptied by the caller): not a second time.
    fn split_again(&mut self) -> bool {
        if self.split_restarts > 1 {
            self.no_split = true;
        }
        !self.no_split
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
type Saving = (RangeSet, commit::InFlight);

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
        let mut headers = vec![
            ("Range", piece_range(span)),
            ("If-Range", self.validators.if_range().unwrap_or_default().to_string()),
        ];
        if let Some(auth) = self.authorization.as_ref().and_then(|c| c.for_url(url)) {
            headers.push(("Authorization", auth.to_string()));
        }
        headers
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
            _ => match decide(head, url, hops, None)? {
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
        let started = self.part.checkpoint(&done).and_then(commit::checkpoint);
        match started {
            Ok(in_flight) => *pending = Some((done, in_flight)),
            Err(e) => self.end_checkpoint(&done, Err(e))?,
        }
        Ok(())
    }

    /// Waits for the checkpoint in flight, if any; a failure ends the
    /// attempt.
    async fn settle_checkpoint_async(&self) {
        if let Some((done, mut in_flight)) = self.take_pending() {
            self.settled(&done, in_flight.result().await);
        }
    }

    /// The same for blocking callers (not on a runtime thread).
    fn settle_checkpoint_blocking(&self) {
        if let Some((done, in_flight)) = self.take_pending() {
            self.settled(&done, in_flight.result_blocking());
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
// Blocking: the hyper client on each thread's runtime, a scoped thread per
// part (a response is read on the thread that asked for it).

pub(super) fn attempt_blocking(client: &http::Client, dl: &mut Download) -> Result<FetchResult, Failure> {
    let waits = dl.waits();
    let mut url = dl.url.clone();
    let mut hops = 0;
    loop {
        let (asked, resumed) = dl.split_start();
        let headers = dl.first_headers(&asked, &url);
        let response = blocking(request(client, &waits, &url, &headers))?;
        let head = http_head(&response);
        dl.http_status = Some(head.status);
        dl.refuse_too_large(&head)?;
        let (plan, span) = match first(&head, &asked, &url, &mut hops, &dl.task.options) {
            Ok(First::Redirect(next)) => {
                drain_blocking(response, &waits);
                url = next;
                continue;
            }
            Ok(First::Restart) => {
                drop(response);
                dl.restart()?;
                (url, hops) = (dl.url.clone(), 0);
                continue;
            }
            Ok(First::Plain) => {
                drop(response);
                dl.no_split = true;
                dl.restart()?;
                return super::attempt_blocking(client, dl);
            }
            Ok(First::Whole { expected }) => {
                dl.begin_body(&head)?;
                return save_body_blocking(dl, response, expected);
            }
            Ok(First::Split { total, validators }) => dl.begin_split(&head, total, validators)?,
            Ok(First::Piece) => {
                dl.continue_split(&head)?;
                resumed.ok_or_else(|| fatal(Status::Failed, "no plan for the gap asked for"))?
            }
            Err(failure) => {
                drain_blocking(response, &waits);
                return Err(failure);
            }
        };
        let run = dl.run(plan, url.clone())?;
        debug_assert!(span.0 < span.1);
        run_threads(&run, client, response);
        run.settle_checkpoint_blocking();
        if dl.end_run(run)? {
            return finish_blocking(dl);
        }
        dl.restart()?;
        if !dl.split_again() {
            return super::attempt_blocking(client, dl);
        }
        (url, hops) = (dl.url.clone(), 0);
    }
}

/// Worker 0 on this thread with the first response, the others on scoped
/// threads once the workers are open.
fn run_threads(run: &Run, client: &http::Client, first: http::Response) {
    std::thread::scope(|s| {
        if run.is_open() {
            start_workers(s, run, client);
        }
        worker_blocking(s, run, client, 0, Some(first));
    });
}

/// Workers 1 to K-1 on scoped threads (fewer if threads cannot be started).
fn start_workers<'s>(s: &'s Scope<'s, '_>, run: &'s Run, client: &'s http::Client) {
    for id in 1..run.workers {
        let started = std::thread::Builder::new()
            .name(format!("part-{id}"))
            .stack_size(WORKER_STACK)
            .spawn_scoped(s, move || worker_blocking(s, run, client, id, None));
        if started.is_err() {
            break;
        }
    }
}

fn worker_blocking<'s>(
    s: &'s Scope<'s, '_>,
    run: &'s Run,
    client: &'s http::Client,
    id: usize,
    mut first: Option<http::Response>,
) {
    loop {
        let response = match first.take() {
            Some(r) => r,
            None => {
                let Some(span) = run.claim(id) else { break };
                match request_piece_blocking(run, client, span) {
                    Ok(r) => r,
                    Err(f) => {
                        run.release(id);
                        run.fail(f);
                        break;
                    }
                }
            }
        };
        let result = read_piece_blocking(run, id, response, &|| start_workers(s, run, client));
        run.release(id);
        if let Err(f) = result {
            run.fail(f);
            break;
        }
    }
}

fn request_piece_blocking(run: &Run, client: &http::Client, span: Span) -> Result<http::Response, PieceFailure> {
    let mut url = run.url.clone();
    let mut hops = 0;
    loop {
        let headers = run.headers(span, &url);
        let response = blocking(request(client, &run.waits, &url, &headers))?;
        let head = http_head(&response);
        match run.check_piece(&head, span, &url, &mut hops) {
            Ok(PieceNext::Body) => return Ok(response),
            Ok(PieceNext::Redirect(next)) => {
                drain_blocking(response, &run.waits);
                url = next;
            }
            Err(f) => return Err(f),
        }
    }
}

/// Reads `id`'s part to its end, calling `start_workers` if it opens the
/// other workers (its connection was seen waiting for the network). One
/// step of this thread's runtime for the whole part, not one per piece
/// (see `save_body_blocking`).
fn read_piece_blocking(
    run: &Run,
    id: usize,
    response: http::Response,
    start_workers: &(dyn Fn() + Sync),
) -> Result<(), PieceFailure> {
    http::block_on(read_piece(run, id, response, start_workers))
        .map_err(|e| PieceFailure::from(local("cannot start this thread's HTTP runtime", &e)))?
}

/// Every byte is written: cut to length (and digest, if wanted), check,
/// sync and rename.
fn finish_blocking(dl: &mut Download) -> Result<FetchResult, Failure> {
    let part = dl.part.as_mut().ok_or_else(|| fatal(Status::LocalError, "no .part file"))?;
    part.complete_split().map_err(|e| local("cannot complete the .part file", &e))?;
    let total = part.split_total();
    dl.verify(total)?;
    commit_blocking(dl)
}

// ---------------------------------------------------------------------------
// Async: hyper, a future per part, all in the download's task.

pub(super) async fn attempt_async(client: &http::Client, dl: &mut Download) -> Result<FetchResult, Failure> {
    let waits = dl.waits();
    let mut url = dl.url.clone();
    let mut hops = 0;
    loop {
        let (asked, resumed) = dl.split_start();
        let headers = dl.first_headers(&asked, &url);
        let response = request(client, &waits, &url, &headers).await?;
        let head = http_head(&response);
        dl.http_status = Some(head.status);
        dl.refuse_too_large(&head)?;
        let (plan, span) = match first(&head, &asked, &url, &mut hops, &dl.task.options) {
            Ok(First::Redirect(next)) => {
                drain_async(response, &waits).await;
                url = next;
                continue;
            }
            Ok(First::Restart) => {
                drop(response);
                restart_async(dl).await?;
                (url, hops) = (dl.url.clone(), 0);
                continue;
            }
            Ok(First::Plain) => {
                drop(response);
                dl.no_split = true;
                restart_async(dl).await?;
                return super::attempt_async(client, dl).await;
            }
            Ok(First::Whole { expected }) => {
                dl.begin_body(&head)?;
                return save_body_async(dl, response, expected).await;
            }
            Ok(First::Split { total, validators }) => dl.begin_split(&head, total, validators)?,
            Ok(First::Piece) => {
                dl.continue_split(&head)?;
                resumed.ok_or_else(|| fatal(Status::Failed, "no plan for the gap asked for"))?
            }
            Err(failure) => {
                drain_async(response, &waits).await;
                return Err(failure);
            }
        };
        let run = dl.run(plan, url.clone())?;
        debug_assert!(span.0 < span.1);
        let mut first = Some(response);
        let workers = (0..run.workers).map(|id| worker_async(&run, client, id, first.take()));
        futures_util::future::join_all(workers).await;
        run.settle_checkpoint_async().await;
        if dl.end_run(run)? {
            return finish_async(dl).await;
        }
        restart_async(dl).await?;
        if !dl.split_again() {
            return super::attempt_async(client, dl).await;
        }
        (url, hops) = (dl.url.clone(), 0);
    }
}

async fn worker_async(run: &Run, client: &http::Client, id: usize, first: Option<http::Response>) {
    if id > 0 && !run.until_open().await {
        return;
    }
    work_async(run, client, id, first).await;
    if id == 0 {
        run.close();
    }
}

async fn work_async(run: &Run, client: &http::Client, id: usize, mut first: Option<http::Response>) {
    loop {
        let response = match first.take() {
            Some(r) => r,
            None => {
                let Some(span) = run.claim(id) else { break };
                match request_piece_async(run, client, span).await {
                    Ok(r) => r,
                    Err(f) => {
                        run.release(id);
                        run.fail(f);
                        break;
                    }
                }
            }
        };
        let result = read_piece(run, id, response, &|| {}).await;
        run.release(id);
        if let Err(f) = result {
            run.fail(f);
            break;
        }
    }
}

async fn request_piece_async(run: &Run, client: &http::Client, span: Span) -> Result<http::Response, PieceFailure> {
    let mut url = run.url.clone();
    let mut hops = 0;
    loop {
        let headers = run.headers(span, &url);
        let response = request(client, &run.waits, &url, &headers).await?;
        let head = http_head(&response);
        match run.check_piece(&head, span, &url, &mut hops) {
            Ok(PieceNext::Body) => return Ok(response),
            Ok(PieceNext::Redirect(next)) => {
                drain_async(response, &run.waits).await;
                url = next;
            }
            Err(f) => return Err(f),
        }
    }
}

/// Reads `id`'s part to its end (every engine: the blocking shell runs it
/// in one step of its thread's runtime). `on_waiting` runs each time the
/// part's connection is seen waiting for the network (the blocking shell
/// opens its other workers then; the async one has them all running).
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

async fn finish_async(dl: &mut Download) -> Result<FetchResult, Failure> {
    on_part_blocking(dl, PartFile::complete_split)
        .await?
        .unwrap_or(Ok(()))
        .map_err(|e| local("cannot complete the .part file", &e))?;
    let total = dl.part.as_ref().and_then(PartFile::split_total);
    dl.verify(total)?;
    commit_async(dl).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(cr: &str, etag: Option<&str>) -> Head {
        Head {
            status: 206,
            location: None,
            retry_after: None,
            content_length: None,
            etag: etag.map(String::from),
            last_modified: None,
            content_range: Some(cr.into()),
            content_disposition: None,
            fields: 5,
            header_bytes: 200,
        }
    }

    fn options(split: u32, min: u64) -> FetchOptions {
        FetchOptions {
            retries: 0,
            timeout: Duration::from_secs(1),
            retry_wait: Duration::from_millis(1),
            retry_max_time: Duration::from_secs(1),
            sha256: None,
            report_sha256: false,
            collision: Collision::Number,
            keep_partial: false,
            content_disposition: false,
            split,
            min_split_size: min,
            split_probe: Duration::ZERO,
            insecure: false,
            max_time: None,
            max_filesize: None,
        }
    }

    #[test]
    fn the_first_answer_decides_whether_to_split() {
        let url = Url::parse("http://h/f").expect("url");
        let o = options(4, 100);
        let decide = |h: &Head, asked: &Asked| first(h, asked, &url, &mut 0, &o);
        let etag = Some("\"e\"");
        assert!(matches!(
            decide(&partial("bytes 0-999/1000", etag), &Asked::Fresh),
            Ok(First::Split { total: 1000, validators }) if validators.total == Some(1000)
        ));
        // Too small for two pieces, or nothing to check the parts against: one stream.
        assert!(matches!(
            decide(&partial("bytes 0-150/151", etag), &Asked::Fresh),
            Ok(First::Whole { expected: Some(151) })
        ));
        assert!(matches!(decide(&partial("bytes 0-999/1000", None), &Asked::Fresh), Ok(First::Whole { .. })));
        // Not the whole body: a plain request.
        assert!(matches!(decide(&partial("bytes 1-999/1000", etag), &Asked::Fresh), Ok(First::Plain)));
        assert!(matches!(decide(&partial("bytes 0-499/1000", etag), &Asked::Fresh), Ok(First::Plain)));
        let ok = Head { status: 200, content_range: None, content_length: Some(7), ..partial("", etag) };
        assert!(matches!(decide(&ok, &Asked::Fresh), Ok(First::Whole { expected: Some(7) })));
        let none = Head { status: 416, ..partial("bytes */0", None) };
        assert!(matches!(decide(&none, &Asked::Fresh), Ok(First::Plain)));

        let v = Validators { etag: Some("\"e\"".into()), last_modified: None, total: Some(1000) };
        let gap = Asked::Piece { span: (300, 600), validators: v };
        assert!(matches!(decide(&partial("bytes 300-599/1000", etag), &gap), Ok(First::Piece)));
        assert!(matches!(decide(&partial("bytes 300-599/1000", Some("\"f\"")), &gap), Ok(First::Restart)));
        assert!(matches!(decide(&partial("bytes 300-999/1000", etag), &gap), Ok(First::Restart)));
        assert!(matches!(decide(&ok, &gap), Ok(First::Whole { .. })), "If-Range failed: a new body");
        let huge = Head { fields: 101, ..partial("bytes 0-999/1000", etag) };
        assert!(matches!(decide(&huge, &Asked::Fresh), Err(Failure::Fatal { .. })));
    }
}
