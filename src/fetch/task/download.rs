//! A download in progress ([`Download`]): what it knows between requests
//! — its URL and credentials, the name, the part file or a small body in
//! memory, its checkpoints, attempts and backoff — and the steps that
//! change it, written once for every engine. What differs between engines
//! is only how the download's thread may wait ([`Shell`]): the attempt
//! loop that drives these steps is in `attempt`, the decisions on each
//! response in `answer`.

use std::future::Future;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use url::Url;

use super::answer::{Failure, Head, Resume, fatal, local, parse_content_range, retry};
use super::attempt::Shell;
use super::{FetchResult, FetchTask, SMALL_BODY, Status, check_url, hex};
use crate::engine::Ctx;
use crate::fetch::auth::{Credentials, without_password, without_userinfo};
use crate::fetch::commit::{self, CommitRequest, Finish, SaveRequest};
use crate::fetch::name::{name_from_disposition, name_from_url};
use crate::fetch::retry::Backoff;
use crate::fetch::store::{Collision, Committed, PartFile, Validators};

/// After a failed attempt: wait and retry, or end with this result.
pub(super) enum Then {
    Retry(Duration),
    End(FetchResult),
}

/// A download in progress: everything but the client.
pub(super) struct Download {
    pub(super) task: FetchTask,
    /// The run's stop request.
    pub(super) ctx: Ctx,
    /// How this download's thread may wait.
    pub(super) shell: Shell,
    pub(super) started: Instant,
    /// The URL given, without user info.
    pub(super) url: Url,
    /// The URL's user info, for its origin only.
    pub(super) credentials: Option<Credentials>,
    /// Ranged parts are not used for this download (the server's ranges
    /// proved unusable).
    pub(super) no_split: bool,
    /// Times a split download started over because a part showed the file
    /// had changed.
    pub(super) split_restarts: u32,
    pub(super) name: String,
    /// With `--content-disposition`: the name the header of the first saved
    /// response gave (`Some(None)`: it gave none, the URL's name stays).
    pub(super) disposition: Option<Option<String>>,
    pub(super) part: Option<PartFile>,
    /// A small whole body being received in memory instead (see
    /// [`SMALL_BODY`]); becomes the part file if its attempt fails.
    pub(super) small: Option<SmallBody>,
    /// The async side's checkpoint in flight on the committer thread.
    pub(super) checkpoint: Option<commit::InFlight>,
    /// An earlier run's part file was looked for.
    pub(super) looked_for_part: bool,
    pub(super) backoff: Backoff,
    pub(super) attempts: u32,
    pub(super) http_status: Option<u16>,
}

/// How long a download may wait for the network: each wait at most the
/// timeout, all of them within what is left of `--max-time`.
#[derive(Debug, Clone)]
pub(super) struct Waits {
    pub(super) timeout: Duration,
    /// When `--max-time` runs out.
    pub(super) deadline: Option<Instant>,
    pub(super) max_time: Duration,
    /// The run's stop request: every wait ends at once on Ctrl-C.
    pub(super) ctx: Ctx,
}

impl Waits {
    /// `f` within the timeout (a retryable failure, `late` says which)
    /// and the deadline (final: [`Failure::OutOfTime`]), or `Interrupted`
    /// as soon as Ctrl-C is seen.
    pub(super) async fn within<T>(
        &self,
        late: impl FnOnce(Duration) -> String,
        f: impl Future<Output = T>,
    ) -> Result<T, Failure> {
        let left = self.deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let (limit, by_deadline) = match left {
            Some(left) if left <= self.timeout => (left, true),
            _ => (self.timeout, false),
        };
        // Looked at here too: on the blocking engines a body that keeps
        // coming is read without the wait ever being pending (see
        // `http::Stepped`), and a timer that is never polled pending
        // never fires.
        if by_deadline && limit.is_zero() {
            return Err(self.out_of_time());
        }
        if self.ctx.cancelled() {
            return Err(fatal(Status::Interrupted, "interrupted"));
        }
        // `biased`: Ctrl-C is only waited for (registered) when `f` has
        // nothing yet, not for every piece of a body that is ready.
        let timed = tokio::select! {
            biased;
            timed = tokio::time::timeout(limit, f) => timed,
            () = self.ctx.interrupted() => return Err(fatal(Status::Interrupted, "interrupted")),
        };
        match timed {
            Ok(out) => Ok(out),
            Err(_) if by_deadline => Err(self.out_of_time()),
            Err(_) => Err(retry(late(self.timeout))),
        }
    }

    pub(super) fn out_of_time(&self) -> Failure {
        Failure::OutOfTime(format!("--max-time {:?} reached", self.max_time))
    }
}

impl Download {
    /// Validates the URL and picks the name; `Err` is already the result.
    pub(super) fn prepare(mut task: FetchTask, ctx: &Ctx, shell: Shell) -> Result<Self, Box<FetchResult>> {
        // Reports and state files never show the URL's password.
        let shown = without_password(&task.url);
        let early = |status, name, error| {
            Box::new(FetchResult {
                index: task.index,
                url: shown.clone(),
                status,
                name,
                bytes: 0,
                sha256: None,
                http_status: None,
                attempts: 0,
                resumed_from: 0,
                partial_bytes: 0,
                error,
                elapsed_ms: 0,
            })
        };
        let url = match check_url(&task.url) {
            Ok(url) => url,
            Err(why) => return Err(early(Status::BadUrl, None, Some(why))),
        };
        let name = task.name.clone().unwrap_or_else(|| name_from_url(&url));
        // An explicit name (out=) wins over the header.
        let by_header = task.options.content_disposition && task.name.is_none();
        // With the name still to come from the header, --no-clobber is
        // decided when the file is committed.
        if !by_header
            && task.options.collision == Collision::NoClobber
            && std::fs::symlink_metadata(task.dir.join(&name)).is_ok()
        {
            return Err(early(Status::Skipped, Some(name), None));
        }
        let started = Instant::now();
        task.url = shown;
        Ok(Download {
            backoff: Backoff::new(task.options.retries, task.options.retry_wait, started, task.options.retry_max_time),
            task,
            ctx: ctx.clone(),
            shell,
            started,
            credentials: Credentials::from_url(&url),
            url: without_userinfo(&url),
            no_split: false,
            split_restarts: 0,
            name,
            disposition: (!by_header).then_some(None),
            part: None,
            small: None,
            checkpoint: None,
            looked_for_part: false,
            attempts: 0,
            http_status: None,
        })
    }

    pub(super) fn end(&self, status: Status, name: Option<String>, error: Option<String>) -> FetchResult {
        let (bytes, sha256) = match (&self.part, status) {
            (Some(p), Status::Done) => (p.written(), p.sha256().map(|d| hex(&d))),
            _ => (0, None),
        };
        FetchResult {
            index: self.task.index,
            url: self.task.url.clone(),
            status,
            name,
            bytes,
            sha256,
            http_status: self.http_status,
            attempts: self.attempts,
            resumed_from: self.part.as_ref().map_or(0, PartFile::resumed_from),
            partial_bytes: 0,
            error,
            elapsed_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The download's limits on waiting for the network.
    pub(super) fn waits(&self) -> Waits {
        let max_time = self.task.options.max_time;
        Waits {
            timeout: self.task.options.timeout,
            deadline: max_time.and_then(|t| self.started.checked_add(t)),
            max_time: max_time.unwrap_or_default(),
            ctx: self.ctx.clone(),
        }
    }

    /// Refuses a file longer than `--max-filesize` by the length its
    /// response announces (before any of it is written).
    pub(super) fn refuse_too_large(&self, head: &Head) -> Result<(), Failure> {
        let Some(max) = self.task.options.max_filesize else { return Ok(()) };
        let total = match head.status {
            206 => head.content_range.as_deref().and_then(parse_content_range).map(|(_, _, total)| total),
            200..=299 => head.content_length,
            _ => None,
        };
        match total {
            Some(total) if total > max => {
                Err(fatal(Status::Failed, format!("the file is {total} bytes, over --max-filesize {max}")))
            }
            _ => Ok(()),
        }
    }

    /// The `Authorization` value for a request to `url`, if any.
    pub(super) fn authorization(&self, url: &Url) -> Option<&str> {
        self.credentials.as_ref().and_then(|c| c.for_url(url))
    }

    /// Whether this attempt fetches ranged parts: `-s` above 1, or a part
    /// file a split download left; not once the server's ranges failed.
    pub(super) fn split_mode(&self) -> bool {
        !self.no_split && (self.task.options.split > 1 || self.part.as_ref().is_some_and(PartFile::is_split))
    }

    /// Where the next request starts, if the part file can be continued.
    pub(super) fn resume_point(&self) -> Option<Resume> {
        let (offset, validators) = self.part.as_ref()?.resume_point()?;
        Some(Resume { offset, validators })
    }

    /// Forgets a part file that cannot be continued, after the checkpoint
    /// in flight, if any.
    pub(super) async fn restart(&mut self) -> Result<(), Failure> {
        self.wait_checkpoint().await?;
        self.on_part(PartFile::reset).await?.unwrap_or(Ok(())).map_err(|e| local("cannot truncate the .part file", &e))
    }

    /// Runs `f` on the part file where disk work may block (fsync,
    /// rereading a part file): on a blocking engine's thread, here; on the
    /// async engine, on tokio's blocking pool, so the runtime's threads
    /// keep serving other downloads. `None` without a part file.
    pub(super) async fn on_part<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut PartFile) -> T + Send + 'static,
    ) -> Result<Option<T>, Failure> {
        let Some(mut part) = self.part.take() else { return Ok(None) };
        let (part, out) = self
            .shell
            .on_disk(move || {
                let out = f(&mut part);
                (part, out)
            })
            .await?;
        self.part = Some(part);
        Ok(Some(out))
    }

    /// Takes the file name from the first saved response's
    /// `Content-Disposition`, once, when asked to.
    pub(super) fn name_from_head(&mut self, head: &Head) {
        if self.disposition.is_none() {
            self.disposition = Some(head.content_disposition.as_deref().and_then(name_from_disposition));
        }
    }

    /// The name the file is committed under.
    pub(super) fn final_name(&self) -> String {
        self.disposition.clone().flatten().unwrap_or_else(|| self.name.clone())
    }

    /// The part file, emptied for a new whole body described by `head`.
    pub(super) fn begin_body(&mut self, head: &Head) -> Result<&mut PartFile, Failure> {
        self.name_from_head(head);
        let mut part = self.empty_part()?;
        part.set_validators(head.validators());
        Ok(self.part.insert(part))
    }

    /// The part file emptied, or a new one.
    pub(super) fn empty_part(&mut self) -> Result<PartFile, Failure> {
        match self.part.take() {
            Some(mut p) => {
                p.reset().map_err(|e| local("cannot truncate the .part file", &e))?;
                Ok(p)
            }
            None => PartFile::create(&self.task.dir, &self.name, &self.task.url, self.task.options.digest())
                .map_err(|e| local(&format!("cannot create {}.part in {}", self.name, self.task.dir.display()), &e)),
        }
    }

    /// Receives the whole body described by `head` in memory if it is small
    /// (`expected` at most [`SMALL_BODY`]) and no part file is being
    /// continued; `false`: use [`begin_body`](Self::begin_body).
    pub(super) fn begin_small_body(&mut self, head: &Head, expected: Option<u64>) -> bool {
        let Some(len) = expected.filter(|&n| n <= SMALL_BODY) else { return false };
        if self.part.is_some() {
            return false;
        }
        self.name_from_head(head);
        let buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        self.small = Some(SmallBody { buf, validators: head.validators() });
        true
    }

    /// After a failed attempt: what a small body received so far becomes
    /// the part file (a retry or later run continues it, as with any
    /// other) if `keep`, else it is dropped.
    pub(super) fn materialize(&mut self, keep: bool) -> Result<(), Failure> {
        let Some(small) = self.small.take().filter(|s| keep && !s.buf.is_empty()) else { return Ok(()) };
        let mut part = self.empty_part()?;
        part.set_validators(small.validators);
        part.write(&small.buf).map_err(|e| local("cannot write the .part file", &e))?;
        self.part = Some(part);
        Ok(())
    }

    /// Hands the verified body over to be written (a small one), synced and
    /// renamed to its final name (see `commit`): what to ask, the length and
    /// digest to report, and that name. From here the download waits for
    /// the disk, which is not downloading: its engine place goes to the
    /// next download ([`release_slot`](crate::engine::release_slot)).
    pub(super) fn hand_over(&mut self) -> Result<(Finish, PartMeta, String), Failure> {
        let name = self.final_name();
        let options = &self.task.options;
        let (finish, meta) = match self.small.take() {
            Some(small) => {
                let sha256 = options.digest().then(|| hex(&<[u8; 32]>::from(Sha256::digest(&small.buf))));
                let meta = PartMeta { bytes: small.buf.len() as u64, sha256, resumed_from: 0 };
                let request = SaveRequest {
                    dir: self.task.dir.clone(),
                    part_name: self.name.clone(),
                    url: self.task.url.clone(),
                    body: small.buf,
                    name: name.clone(),
                    policy: options.collision,
                };
                (Finish::Save(request), meta)
            }
            None => {
                let part = self.part.take().ok_or_else(|| fatal(Status::LocalError, "no .part file"))?;
                let sha256 = part.sha256().map(|d| hex(&d));
                let meta = PartMeta { bytes: part.written(), sha256, resumed_from: part.resumed_from() };
                let request =
                    CommitRequest { part, dir: self.task.dir.clone(), name: name.clone(), policy: options.collision };
                (Finish::Commit(Box::new(request)), meta)
            }
        };
        crate::engine::release_slot();
        Ok((finish, meta, name))
    }

    /// The part file continues with the rest of the body (`head`: the 206).
    pub(super) fn continue_body(&mut self, head: &Head, offset: u64) -> Result<(), Failure> {
        self.name_from_head(head);
        let part = self.part.as_mut().ok_or_else(|| fatal(Status::LocalError, "no .part file"))?;
        part.continued_at(offset);
        Ok(())
    }

    /// A checkpoint of everything written, waited for (after a failed
    /// attempt): the one in flight first, then one for the rest (on this
    /// thread if it may block, else by the committer).
    pub(super) async fn checkpoint_now(&mut self) -> Result<(), Failure> {
        self.wait_checkpoint().await?;
        if self.shell == Shell::Blocking {
            return self.part.as_mut().map_or(Ok(()), PartFile::checkpoint).map_err(|e| checkpoint_failed(&e));
        }
        self.start_checkpoint()?;
        self.wait_checkpoint().await
    }

    /// Appends a piece of the body; `true` when a checkpoint is due.
    pub(super) fn write(&mut self, chunk: &[u8]) -> Result<bool, Failure> {
        if self.ctx.cancelled() {
            return Err(fatal(Status::Interrupted, "interrupted"));
        }
        if let Some(max) = self.task.options.max_filesize {
            let so_far = match (&self.small, &self.part) {
                (Some(small), _) => small.buf.len() as u64,
                (None, part) => part.as_ref().map_or(0, PartFile::written),
            };
            if so_far.saturating_add(chunk.len() as u64) > max {
                return Err(fatal(Status::Failed, format!("the body grew past --max-filesize {max} bytes")));
            }
        }
        if let Some(small) = self.small.as_mut() {
            small.buf.extend_from_slice(chunk);
            return Ok(false);
        }
        let part = self.part.as_mut().ok_or_else(|| fatal(Status::LocalError, "no .part file"))?;
        part.write(chunk).map_err(|e| local("cannot write the .part file", &e))
    }

    /// Checks length and checksum once the body has ended.
    pub(super) fn verify(&self, expected: Option<u64>) -> Result<(), Failure> {
        let written = match (&self.small, &self.part) {
            (Some(small), _) => small.buf.len() as u64,
            (None, Some(part)) => part.written(),
            (None, None) => return Err(fatal(Status::LocalError, "no .part file")),
        };
        if let Some(len) = expected
            && written != len
        {
            return Err(retry(format!("body ended after {written} of {len} bytes")));
        }
        if let Some(want) = self.task.options.sha256 {
            let digest = match (&self.small, &self.part) {
                (Some(small), _) => Some(Sha256::digest(&small.buf).into()),
                (None, part) => part.as_ref().and_then(PartFile::sha256),
            };
            let got = digest.ok_or_else(|| fatal(Status::LocalError, "no SHA-256 computed to check"))?;
            if got != want {
                return Err(fatal(
                    Status::ChecksumMismatch,
                    format!("SHA-256 mismatch: got {}, expected {}", hex(&got), hex(&want)),
                ));
            }
        }
        Ok(())
    }

    /// What to do after a failed attempt: how long to wait, or the result.
    pub(super) fn after_failure(&mut self, failure: Failure) -> Then {
        match failure {
            Failure::Fatal { status, reason } => Then::End(self.end(status, None, Some(reason))),
            Failure::OutOfTime(reason) => Then::End(self.end(Status::Failed, None, Some(reason))),
            Failure::Retry { reason, after } => match self.backoff.wait(self.attempts, after, Instant::now()) {
                Ok(wait)
                    if self
                        .waits()
                        .deadline
                        .is_some_and(|d| Instant::now().checked_add(wait).is_none_or(|t| t >= d)) =>
                {
                    let why = format!("{reason} (--max-time {:?} ends before the next attempt)", self.waits().max_time);
                    Then::End(self.end(Status::Failed, None, Some(why)))
                }
                Ok(wait) if !self.ctx.cancelled() => Then::Retry(wait),
                Ok(_) => {
                    Then::End(self.end(Status::Interrupted, None, Some(format!("interrupted; last error: {reason}"))))
                }
                Err(why) => Then::End(self.end(Status::Failed, None, Some(format!("{reason} ({why})")))),
            },
        }
    }

    pub(super) fn interrupted(&mut self) -> FetchResult {
        let mut result = self.end(Status::Interrupted, None, Some("interrupted".into()));
        result.partial_bytes = self.keep_part();
        result
    }

    /// Leaves the part file for a later run, if it can be continued;
    /// the bytes kept (0: none).
    fn keep_part(&mut self) -> u64 {
        let Some(p) = self.part.as_mut() else { return 0 };
        if p.keep() { p.written() } else { 0 }
    }

    /// After a failed attempt, with its part file checkpointed if it was
    /// worth keeping (`kept`): wait for the next attempt, or end, leaving
    /// the part file for a later run if interrupted (or with `-c`).
    pub(super) fn settle(&mut self, failure: Failure, kept: bool) -> Then {
        let mut then = self.after_failure(failure);
        if let Then::End(result) = &mut then {
            let later = result.status == Status::Interrupted
                || (result.status == Status::Failed && self.task.options.keep_partial);
            if kept && later {
                result.partial_bytes = self.keep_part();
            }
        }
        then
    }

    /// The result of a verified body whose part file was committed.
    pub(super) fn committed(
        &mut self,
        outcome: Result<(Committed, PartMeta), Failure>,
    ) -> Result<FetchResult, Failure> {
        let (committed, meta) = outcome?;
        Ok(match committed {
            Committed::Saved(name) => FetchResult {
                bytes: meta.bytes,
                sha256: meta.sha256,
                resumed_from: meta.resumed_from,
                ..self.end(Status::Done, Some(name), None)
            },
            Committed::Skipped(name) => self.end(Status::Skipped, Some(name), None),
        })
    }
}

/// A small whole body received in memory (see [`SMALL_BODY`]).
#[derive(Debug)]
pub(super) struct SmallBody {
    buf: Vec<u8>,
    /// Its validators: it can be continued if it becomes a part file.
    validators: Option<Validators>,
}

/// Length and digest (if computed) of a committed file (the part file is
/// gone by then).
pub(super) struct PartMeta {
    bytes: u64,
    sha256: Option<String>,
    resumed_from: u64,
}

/// Whether the part file of a failed attempt is worth a checkpoint: the
/// next attempt or a later run may continue it.
pub(super) fn worth_keeping(failure: &Failure) -> bool {
    matches!(
        failure,
        Failure::Retry { .. } | Failure::OutOfTime(_) | Failure::Fatal { status: Status::Interrupted, .. }
    )
}

pub(super) fn checkpoint_failed(e: &std::io::Error) -> Failure {
    local("cannot save the download state", e)
}

pub(super) fn commit_failed(name: &str, task: &FetchTask, e: &std::io::Error) -> Failure {
    local(&format!("cannot sync and move {name} into {}", task.dir.display()), e)
}

impl Download {
    /// Starts a checkpoint on the committer thread (see `commit`); the
    /// download goes on writing meanwhile.
    pub(super) fn start_checkpoint(&mut self) -> Result<(), Failure> {
        let Some(part) = self.part.as_mut() else { return Ok(()) };
        let Some(job) = part.begin_checkpoint().map_err(|e| checkpoint_failed(&e))? else { return Ok(()) };
        match commit::checkpoint(job) {
            Ok(in_flight) => {
                self.checkpoint = Some(in_flight);
                Ok(())
            }
            Err(e) => {
                part.end_checkpoint(false);
                Err(checkpoint_failed(&e))
            }
        }
    }

    /// Takes note of a checkpoint that ended, without waiting.
    pub(super) fn poll_checkpoint(&mut self) -> Result<(), Failure> {
        let Some(result) = self.checkpoint.as_mut().and_then(commit::InFlight::try_result) else { return Ok(()) };
        self.checkpoint_ended(result)
    }

    /// Waits for the checkpoint in flight, if any.
    pub(super) async fn wait_checkpoint(&mut self) -> Result<(), Failure> {
        let Some(in_flight) = self.checkpoint.as_mut() else { return Ok(()) };
        let result = in_flight.result().await;
        self.checkpoint_ended(result)
    }

    pub(super) fn checkpoint_ended(&mut self, result: std::io::Result<()>) -> Result<(), Failure> {
        self.checkpoint = None;
        if let Some(part) = self.part.as_mut() {
            part.end_checkpoint(result.is_ok());
        }
        result.map_err(|e| checkpoint_failed(&e))
    }
}
