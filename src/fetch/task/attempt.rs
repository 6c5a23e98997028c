//! The attempt loop of one download, written once as async code for every
//! engine: the async engine polls it as the task's future, a blocking
//! engine's thread (threads, processes) runs it to its end on its own
//! current-thread runtime (`http::block_on`, one runtime step for the
//! whole download). Where the two must differ — disk work that may block,
//! the commit, a split download's other parts — the [`Shell`] says how.
//!
//! An attempt asks for the body (or what a part file lacks), follows
//! redirects, starts over when a part file cannot be continued, and saves
//! what comes: a small whole body in memory, anything else into the part
//! file as it comes; then checks it and hands it to the committer. With
//! `-s K` (or a part file a split download left) the body comes as ranged
//! parts (`ranged`). A failed attempt is checkpointed if what came is worth
//! keeping, then retried after the backoff or ended (`Download::settle`).

use std::time::{Duration, Instant};

use url::Url;

use super::answer::{Asked, Failure, Head, Next, error_chain, fatal, http_failure, local, retry};
use super::download::{Download, Then, Waits, commit_failed, worth_keeping};
use super::{FetchResult, GATHER_MAX, Status, USER_AGENT, ranged};
use crate::engine::Ctx;
use crate::fetch::commit;
use crate::fetch::http;
use crate::fetch::store::PartFile;

/// How the thread a download runs on may wait, where the engines differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shell {
    /// A thread of its own (threads, processes): disk work is done in
    /// place, a commit may be made on this thread, and a split download's
    /// other parts are read on threads of their own (each part's socket is
    /// read with blocking `recv`s, see `http::Stepped`).
    Blocking,
    /// A task on a runtime thread, which must not block: disk work goes to
    /// tokio's blocking pool, commits to the committer, and parts are
    /// futures of the download's task.
    Async,
}

/// A future made on the heap by a function of its own (`#[inline(never)]`),
/// for the large steps of a download: a blocking engine's thread polls the
/// whole download on its 256 KiB stack, and each step built in its
/// caller's frame kept that much more of the stack in use (about 18 KiB
/// per thread, ~3 MiB at -j 32).
pub(super) type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl Shell {
    /// Runs `f` (disk work) where it may block.
    pub(super) async fn on_disk<T: Send + 'static>(self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Failure> {
        match self {
            Shell::Blocking => Ok(f()),
            Shell::Async => tokio::task::spawn_blocking(f)
                .await
                .map_err(|e| fatal(Status::LocalError, format!("writing the .part file: {e}"))),
        }
    }
}

/// `GET url`: the response head, within the download's [`Waits`].
#[inline(never)]
pub(super) fn request<'a>(
    client: &'a http::Client,
    waits: &'a Waits,
    url: &'a Url,
    headers: &'a [(&'static str, String)],
) -> Boxed<'a, Result<http::Response, Failure>> {
    Box::pin(async move {
        let late = |t| format!("no response within {t:?}");
        waits.within(late, client.get(url, headers, USER_AGENT)).await?.map_err(|e| http_failure(&e))
    })
}

/// The next piece of a body, within the download's [`Waits`]; `None` at
/// its end. A body that ends before its length or inside a chunk is an
/// error here.
pub(super) async fn next_chunk(response: &mut http::Response, waits: &Waits) -> Result<Option<bytes::Bytes>, Failure> {
    let late = |t| format!("no data for {t:?} while reading the body");
    waits.within(late, response.chunk()).await?.map_err(|e| retry(format!("reading the body: {}", error_chain(&e))))
}

/// Reads at most 64 KiB of an unwanted body (a redirect's, an error's)
/// so its connection can be reused, for at most `timeout` in all (a body
/// that drips would otherwise hold the download for as long as it lasts),
/// and not past Ctrl-C.
pub(super) async fn drain(mut r: http::Response, waits: &Waits) {
    let (timeout, ctx) = (waits.timeout, &waits.ctx);
    let started = Instant::now();
    let drain = async {
        let mut left = 64 * 1024usize;
        while let Ok(Some(chunk)) = r.chunk().await {
            left = left.saturating_sub(chunk.len());
            // The time is looked at here too: on the blocking engines a
            // body that drips may be read without ever being pending.
            if left == 0 || started.elapsed() >= timeout || ctx.cancelled() {
                break;
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(timeout, drain) => {}
        () = ctx.interrupted() => {}
    }
}

/// Waits `wait` before a retry; `false` if Ctrl-C came first.
async fn sleep(wait: Duration, ctx: &Ctx) -> bool {
    if ctx.cancelled() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(wait) => !ctx.cancelled(),
        () = ctx.interrupted() => false,
    }
}

/// The `Range`, `If-Range` and `Authorization` headers of a request (the
/// credentials only for their origin: see `Credentials::for_url`).
pub(super) fn request_headers(
    range: Option<(String, Option<&str>)>,
    authorization: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some((range, if_range)) = range {
        headers.push(("Range", range));
        if let Some(v) = if_range {
            headers.push(("If-Range", v.to_string()));
        }
    }
    if let Some(auth) = authorization {
        headers.push(("Authorization", auth.to_string()));
    }
    headers
}

impl Download {
    /// Runs the download's attempts to their end.
    #[inline(never)]
    pub(super) fn run(&mut self) -> Boxed<'_, FetchResult> {
        Box::pin(async move {
            let client = http::Client {
                timeout: self.task.options.timeout,
                insecure: self.task.options.insecure,
                run: self.ctx.clone(),
            };
            loop {
                if self.ctx.cancelled() {
                    return self.interrupted();
                }
                self.attempts += 1;
                let mut failure = match attempt(&client, self).await {
                    Ok(result) => return result,
                    Err(f) => f,
                };
                // Never leave a checkpoint in flight behind: it would write a
                // state file for a part file reset or removed meanwhile.
                let pending = self.wait_checkpoint().await;
                let kept = worth_keeping(&failure);
                if let Err(f) = self.materialize(kept) {
                    failure = f;
                }
                if kept
                    && let Err(f) = async {
                        pending?;
                        self.checkpoint_now().await
                    }
                    .await
                {
                    failure = f;
                }
                match self.settle(failure, kept) {
                    Then::Retry(wait) if sleep(wait, &self.ctx).await => {}
                    Then::Retry(_) => return self.interrupted(),
                    Then::End(result) => return result,
                }
            }
        })
    }
}

/// One attempt: requests until a body comes (redirects followed, a part
/// file that cannot be continued started over), then saves, checks and
/// commits it.
#[inline(never)]
fn attempt<'a>(client: &'a http::Client, dl: &'a mut Download) -> Boxed<'a, Result<FetchResult, Failure>> {
    Box::pin(async move {
        if !dl.looked_for_part {
            dl.looked_for_part = true;
            // Most downloads have no part file to continue: looking is one
            // lookup; resuming one reads its state (and, for a digest, its
            // kept bytes), where disk work may block.
            if PartFile::may_resume(&dl.task.dir, &dl.name) {
                let (dir, name, url) = (dl.task.dir.clone(), dl.name.clone(), dl.task.url.clone());
                let digest = dl.task.options.digest();
                dl.part = dl.shell.on_disk(move || PartFile::resume(&dir, &name, &url, digest)).await.ok().flatten();
            }
        }
        // Split or not is decided once per attempt; ranges that prove
        // unusable make the rest of it one stream (`no_split`).
        let split = dl.split_mode();
        let waits = dl.waits();
        let mut url = dl.url.clone();
        let mut hops = 0;
        loop {
            let (asked, resumed) =
                if split && !dl.no_split { dl.split_start() } else { (Asked::Body(dl.resume_point()), None) };
            let headers = request_headers(asked.range(), dl.authorization(&url));
            let response = request(client, &waits, &url, &headers).await?;
            let head = Head::of(&response);
            dl.http_status = Some(head.status);
            dl.refuse_too_large(&head)?;
            let started = match super::answer::answer(&head, &asked, &url, &mut hops, &dl.task.options) {
                Ok(Next::Redirect(next)) => {
                    drain(response, &waits).await;
                    url = next;
                    continue;
                }
                Ok(next @ (Next::Restart | Next::Plain)) => {
                    // Not drained: a wrong partial body can be long.
                    drop(response);
                    dl.no_split |= matches!(next, Next::Plain);
                    dl.restart().await?;
                    (url, hops) = (dl.url.clone(), 0);
                    continue;
                }
                Ok(Next::Body { expected }) => {
                    // A small body is kept in memory, not in a split attempt.
                    let in_memory = matches!(asked, Asked::Body(_)) && dl.begin_small_body(&head, expected);
                    if !in_memory {
                        dl.begin_body(&head)?;
                    }
                    return save_body(dl, response, expected).await;
                }
                Ok(Next::Rest { total }) => {
                    let offset = match &asked {
                        Asked::Body(Some(resume)) => resume.offset,
                        _ => 0,
                    };
                    dl.continue_body(&head, offset)?;
                    return save_body(dl, response, Some(total)).await;
                }
                Ok(Next::Split { total, validators }) => dl.begin_split(&head, total, validators)?,
                Ok(Next::Piece) => {
                    dl.continue_split(&head)?;
                    resumed.ok_or_else(|| fatal(Status::Failed, "no plan for the gap asked for"))?
                }
                Err(failure) => {
                    drain(response, &waits).await;
                    return Err(failure);
                }
            };
            if ranged::fetch_parts(client, dl, started, url.clone(), response).await? {
                return ranged::finish(dl).await;
            }
            // A part showed the file changed: start over (as one stream the
            // second time, see `split_again`).
            dl.restart().await?;
            dl.split_again();
            (url, hops) = (dl.url.clone(), 0);
        }
    })
}

/// Appends a body to the part file as it comes (a small one to memory),
/// then checks and commits.
#[inline(never)]
fn save_body(
    dl: &mut Download,
    mut response: http::Response,
    expected: Option<u64>,
) -> Boxed<'_, Result<FetchResult, Failure>> {
    Box::pin(async move {
        let waits = dl.waits();
        // A short rest of a body is gathered and written at once: one `write`
        // instead of one per chunk hyper hands over (it reads 8 KiB at first).
        let written = dl.part.as_ref().map_or(0, PartFile::written);
        let mut gathered = expected
            .filter(|_| dl.small.is_none())
            .and_then(|n| n.checked_sub(written))
            .filter(|&rest| rest > 0 && rest <= GATHER_MAX)
            .and_then(|rest| usize::try_from(rest).ok())
            .map(Vec::with_capacity);
        let end = loop {
            match next_chunk(&mut response, &waits).await {
                Err(f) => break Err(f),
                Ok(None) => break Ok(()),
                Ok(Some(chunk)) => {
                    if let Some(buf) = gathered.as_mut()
                        && buf.len() + chunk.len() <= buf.capacity()
                    {
                        buf.extend_from_slice(&chunk);
                        continue;
                    }
                    if let Some(buf) = gathered.take() {
                        dl.write(&buf)?;
                    }
                    // Checkpoints are made by the committer while the download
                    // goes on (inline, each `fdatasync` stalled the stream).
                    dl.poll_checkpoint()?;
                    if dl.write(&chunk)? {
                        dl.start_checkpoint()?;
                    }
                }
            }
        };
        // Also when the body was cut: a retry continues after what came.
        if let Some(buf) = gathered.take()
            && !buf.is_empty()
        {
            dl.write(&buf)?;
        }
        end?;
        dl.verify(expected)?;
        commit(dl).await
    })
}

/// The verified body written (if small), synced and renamed (see
/// `commit`): on a blocking engine, on this thread when no other commit is
/// under way in the process; on async, by the committer with other
/// downloads' files.
pub(super) async fn commit(dl: &mut Download) -> Result<FetchResult, Failure> {
    if dl.shell == Shell::Blocking {
        // The commit may be made on this thread: a checkpoint in flight on
        // the committer must not write its state after the rename. (On
        // async the committer keeps the order.)
        dl.wait_checkpoint().await?;
    }
    let (finish, meta, name) = dl.hand_over()?;
    let committed = match dl.shell {
        Shell::Blocking => commit::finish_blocking(finish).await,
        Shell::Async => commit::finish_async(finish).await,
    };
    let outcome = committed.map(|c| (c, meta)).map_err(|e| commit_failed(&name, &dl.task, &e));
    dl.committed(outcome)
}

/// A failure to start this thread's runtime (blocking engines).
pub(super) fn no_runtime(e: &std::io::Error) -> Failure {
    local("cannot start this thread's HTTP runtime", e)
}
