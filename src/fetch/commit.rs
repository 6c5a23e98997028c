//! Group commit: the durability step of many downloads done together, by
//! one thread per process (the *committer*).
//!
//! A finished download is made durable and then renamed to its final name
//! (see `store`): the rename must never reach the disk before the data it
//! names. Done per download, that is one synchronous `fdatasync` each, on
//! whichever thread finished it (a blocking-pool thread for async), with
//! every finishing thread contending for the directory's lock in its
//! rename. The committer takes every job waiting in its queue as one batch:
//!
//! 1. makes the whole batch durable at once: one `syncfs(2)` per file
//!    system the batch writes to (a batch of one file: its `fdatasync`);
//! 2. then, file by file: the no-clobber rename;
//! 3. then one `fsync` of each directory the batch added names to (one
//!    per batch, usually a single directory), so that the names are
//!    durable too;
//! 4. and only then the replies, back to back: a file is reported once
//!    its data and its name survive a power loss.
//!
//! Steps 2 and 3 are done by a second thread, the *namer*, while the
//! committer syncs the next batch: on 2,000 x 16 KiB at -j 32 the
//! committer was busy for the whole run (a `syncfs` every ~1.5 ms, the
//! renames between them), and downloads waited for places in the
//! finishing stage (see `engine::release_slot`) ~250 times a run. With
//! the renames off its thread, async 0.117 -> 0.111 s on a loop-device
//! ext4, 0.104 -> 0.101 s on the root disk (medians of 15 and 11, random
//! order). Both stages keep the order of the jobs.
//!
//! Measured on ext4 (2,000 × 16 KiB at -j 32, async, same runs): one
//! `fdatasync` per file from the blocking pool 1.28 s (median of 5),
//! `syncfs` per batch 1.01 s; `fdatasync`s of a batch from the one thread
//! (after `sync_file_range` had started every file's writeback) 2.5 s, and
//! from 8 threads no better: each waits for its own device cache flush,
//! while syncfs flushes once for the batch. The price of syncfs: it also
//! writes out whatever else is dirty on that file system. (syncfs reports
//! write-back errors since Linux 5.8; on an error, each file of the batch
//! is synced on its own, which reports its own.)
//!
//! While a batch is being synced, the next one accumulates in the queue.
//! The guarantee is unchanged: a file appears under its final name only
//! after its own data was synced, so `kill -9` at any moment leaves either
//! a `.part` file or a complete final file. The rename also decides the
//! final name (`name.1.ext` on collision, `--no-clobber`, `--overwrite`),
//! and the caller learns the name actually used from the reply.
//!
//! What a power loss can lose: nothing that was reported. A file is
//! reported (its reply sent) only after its data, then its name, were
//! synced (step 3). A file not yet reported may come back as its `.part`,
//! as nothing (an unnamed file, or a name whose directory entry had not
//! reached the disk) or, once renamed, complete under its final name —
//! never partial there. With `--overwrite`, the file it replaced may come
//! back instead of it (complete as well). A checkpoint is answered after
//! its state file's rename is synced the same way; lost before that, the
//! previous state comes back, which claims fewer bytes: still true.
//!
//! Checkpoints go through the same thread (data synced, then the state file
//! replaced) on a duplicate descriptor, while the download goes on writing:
//! it never waits for a disk there, and no blocking-pool thread (each with
//! its own stack) is started for it. On every engine: a blocking download
//! that synced inline stalled every 4 MiB (threads, 4 x 256 MiB: 1.00 s
//! inline, 0.65 s here). The state claims only the bytes written before
//! the checkpoint was asked for, all synced first. Jobs are done in order,
//! so a download's checkpoint is written before its commit (through the
//! committer) removes the state file; a blocking download that commits on
//! its own thread waits for its checkpoint first.
//!
//! Small whole bodies (at most 64 KiB, received in memory) are not even
//! written by the downloading thread: a *writer* thread creates and writes
//! their files ([`SaveRequest`]: an unnamed `O_TMPFILE` file that the
//! committer links to its final name, see `unnamed`; a `.part` file where
//! that cannot be done, or with `--overwrite`) and hands them to the
//! committer, so
//! the downloading thread does HTTP only, the writer file creation, and
//! the committer waits for the disk — a pipeline over the cores (2,000 x
//! 16 KiB at -j 32: 0.20 s -> 0.16 s median, with the per-directory scan of
//! `store::may_hold_parts`). One thread writing and syncing was slower
//! wherever a flush takes milliseconds: nothing was written meanwhile.
//!
//! Both helper threads run as `SCHED_BATCH` (`sys::background_thread`):
//! the same share of the CPU, but their wake-ups never preempt. Woken once
//! per hand-off at normal policy, each took the core from the downloading
//! thread (or the server) that had just fed it, thousands of times a run:
//! 2,000 x 16 KiB at -j 32, async, medians of 19 in random order: 0.116 s
//! -> 0.112 s (nice 5 or 10 did as well, but a niced committer starves on
//! a busy machine; SCHED_BATCH does not).
//!
//! Callers `.await` the oneshot reply (a blocking engine's download runs
//! on its thread's own runtime). A blocking caller with no other commit under
//! way in its process does its own (`fdatasync`, rename, directory
//! `fsync`): nothing to batch with, and no hand-off to pay — always the case in a worker process of
//! the processes engine, which runs one download at a time.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;

use super::store::{self, Checkpoint, Collision, Committed, PartFile};
use super::unnamed::Unnamed;

/// Jobs taken at most as one batch (bounds the descriptors a batch keeps
/// waiting, and the latency of the first job of a large batch).
const MAX_BATCH: usize = 256;

/// What a finished download asks of the committer.
#[derive(Debug)]
pub struct CommitRequest {
    /// The verified part file (its data not yet synced).
    pub part: PartFile,
    /// The download directory.
    pub dir: PathBuf,
    /// The name it should get.
    pub name: String,
    /// What to do when that name is taken.
    pub policy: Collision,
}

/// A small body received whole in memory, to be written, synced and
/// renamed by the committer: the downloading thread then touches no file
/// at all (creating `NAME.part` and writing it were a quarter of the
/// downloading thread's time on 16 KiB files).
#[derive(Debug)]
pub struct SaveRequest {
    /// The download directory.
    pub dir: PathBuf,
    /// The name its `.part` file is created after (the URL's).
    pub part_name: String,
    /// The URL (recorded by the part file, never in a state: the body is
    /// complete).
    pub url: String,
    /// The whole body, already verified.
    pub body: Vec<u8>,
    /// The name it should get.
    pub name: String,
    /// What to do when that name is taken.
    pub policy: Collision,
}

impl SaveRequest {
    /// The body written (not synced) to an unnamed file of the directory
    /// where that can be done (see `unnamed`), else to `NAME.part`.
    fn write(self) -> io::Result<Written> {
        let SaveRequest { dir, part_name, url, body, name, policy } = self;
        if policy != Collision::Overwrite
            && let Some(file) = Unnamed::create(&dir, &body)
        {
            return Ok(Written::Unnamed(LinkRequest { file, dir, name, policy }));
        }
        let mut part = PartFile::create(&dir, &part_name, &url, false)?;
        part.write(&body)?;
        Ok(Written::Part(Box::new(CommitRequest { part, dir, name, policy })))
    }
}

/// A small body written by the writer, to be synced and named.
#[derive(Debug)]
enum Written {
    /// Boxed: a part file's state is large.
    Part(Box<CommitRequest>),
    Unnamed(LinkRequest),
}

impl Written {
    /// Syncs and names it on the calling thread.
    fn commit_now(self) -> io::Result<Committed> {
        match self {
            Written::Part(request) => commit_now(*request),
            Written::Unnamed(request) => request.commit_now(),
        }
    }

    /// The committer's job for it.
    fn job(self, reply: Answer) -> Job {
        match self {
            Written::Part(request) => Job::Commit(*request, reply),
            Written::Unnamed(request) => Job::Link(request, reply),
        }
    }
}

/// An unnamed file holding a whole body, and the name it should get.
#[derive(Debug)]
struct LinkRequest {
    file: Unnamed,
    dir: PathBuf,
    name: String,
    policy: Collision,
}

impl LinkRequest {
    /// Names the file (its data synced before).
    fn link(self) -> io::Result<Committed> {
        self.file.link(&self.dir, &self.name, self.policy)
    }

    /// Syncs its data, then names it (the directory is not synced).
    fn sync_and_link(self) -> io::Result<Committed> {
        self.file.sync_data()?;
        self.link()
    }

    /// Syncs its data, names it, syncs the directory.
    fn commit_now(self) -> io::Result<Committed> {
        let dir = self.dir.clone();
        durable_in(&dir, self.sync_and_link())
    }
}

/// What a verified download asks of this module: its file written (a small
/// body in memory) or just synced, then renamed.
#[derive(Debug)]
pub enum Finish {
    /// A small body: written by the writer thread first.
    Save(SaveRequest),
    /// A part file already written (boxed: a part file's state is large).
    Commit(Box<CommitRequest>),
}

/// Where a commit's answer goes.
type Answer = oneshot::Sender<io::Result<Committed>>;

/// A job and where its answer goes.
#[derive(Debug)]
enum Job {
    Commit(CommitRequest, Answer),
    Link(LinkRequest, Answer),
    Checkpoint(Checkpoint, oneshot::Sender<io::Result<()>>),
}

impl Job {
    fn file(&self) -> &File {
        match self {
            Job::Commit(request, _) => request.part.file(),
            Job::Link(request, _) => request.file.file(),
            Job::Checkpoint(checkpoint, _) => checkpoint.file(),
        }
    }
}

/// The process's committer, started on first use (`None`: it could not
/// be started).
fn queue() -> Option<&'static Sender<Job>> {
    static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    QUEUE.get_or_init(|| service("trident-commit", |rx| run(&rx))).as_ref()
}

/// A thread named `name` serving the jobs sent to the returned queue with
/// `serve` (`None`: it could not be started).
fn service<J: Send + 'static>(name: &str, serve: impl FnOnce(Receiver<J>) + Send + 'static) -> Option<Sender<J>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let run = move || {
        // Off the downloads' critical path: see `SCHED_BATCH` in the
        // module docs.
        crate::sys::background_thread();
        serve(rx)
    };
    std::thread::Builder::new().name(name.into()).stack_size(256 * 1024).spawn(run).ok().map(|_| tx)
}

/// The committer: takes every job waiting as one batch, syncs it, and
/// hands it to the namer, which renames (or links, or checkpoints) each
/// job and replies, while the committer syncs the next batch. Both stages
/// keep the order of the jobs.
fn run(rx: &Receiver<Job>) {
    let namer = service("trident-name", |synced: Receiver<(Vec<Job>, Vec<bool>)>| {
        for (mut batch, synced) in synced {
            name_batch(&mut batch, &synced).into_iter().for_each(Reply::send);
        }
    });
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let synced = sync_batch(&batch);
        match &namer {
            Some(namer) => {
                // The namer only stops when this sender is dropped.
                let _ = namer.send((std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH)), synced));
            }
            None => name_batch(&mut batch, &synced).into_iter().for_each(Reply::send),
        }
    }
}

/// The answer to one job, not yet sent.
enum Reply {
    Commit(Answer, io::Result<Committed>),
    Checkpoint(oneshot::Sender<io::Result<()>>, io::Result<()>),
}

impl Reply {
    /// The same reply, made an error: its directory could not be synced.
    fn failed(self, kind: io::ErrorKind, why: &str) -> Reply {
        match self {
            Reply::Commit(tx, Ok(Committed::Saved(name))) => {
                Reply::Commit(tx, Err(io::Error::new(kind, format!("saved as {name}, but {why}"))))
            }
            Reply::Checkpoint(tx, Ok(())) => Reply::Checkpoint(tx, Err(io::Error::new(kind, why.to_string()))),
            other => other,
        }
    }

    /// Wakes whoever waits for it (a thread, an async task).
    fn send(self) {
        // A waiter that went away (interrupted) needs no answer.
        let _ = match self {
            Reply::Commit(tx, result) => tx.send(result).map_err(drop),
            Reply::Checkpoint(tx, result) => tx.send(result).map_err(drop),
        };
    }
}

/// Does a batch's jobs (emptying it) on one thread, as the committer and
/// the namer do together: syncs them, then renames or writes each state
/// file, and returns the replies, to be sent only once every job of the
/// batch is done. Sent one by one after each rename, each reply
/// would wake its waiter (a thread, an async lane) while the committer
/// still renames: the woken thread contends with it for a core and for the
/// directory's lock, and a lane with several downloads in the batch is
/// woken once per file instead of once. A reply still comes only after its
/// own rename: nobody learns of a file before it has its final name.
#[cfg(test)]
fn commit_batch(batch: &mut Vec<Job>) -> Vec<Reply> {
    let synced = sync_batch(batch);
    name_batch(batch, &synced)
}

/// Makes a batch's files durable: one file, its own `fdatasync` (nothing
/// to batch with); more, one `syncfs` per file system. Whether each job's
/// file is known synced (`false`: the job syncs its own, which reports its
/// own error). Done here, not by the namer, even for one file: while the
/// committer waits for the disk, the next jobs gather into a batch.
fn sync_batch(batch: &[Job]) -> Vec<bool> {
    match batch {
        [one] => vec![one.file().sync_data().is_ok()],
        _ => sync_file_systems(batch),
    }
}

/// The second half of [`commit_batch`], after [`sync_batch`] said which
/// files are `synced`: renames or links each job's file (syncing its own
/// first if it is not known synced), or writes its state file, then syncs
/// each directory that got a new name, once, and returns the replies.
fn name_batch(batch: &mut Vec<Job>, synced: &[bool]) -> Vec<Reply> {
    name_batch_with(batch, synced, store::sync_dir)
}

/// [`name_batch`] with the directory sync given (a test watches it).
/// A job whose directory cannot be synced is answered with that error:
/// its name may not survive a power loss.
fn name_batch_with(
    batch: &mut Vec<Job>,
    synced: &[bool],
    mut sync_dir: impl FnMut(&Path) -> io::Result<()>,
) -> Vec<Reply> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let named: Vec<(Reply, Option<usize>)> = batch
        .drain(..)
        .enumerate()
        .map(|(i, job)| {
            let synced = synced.get(i).copied().unwrap_or(false);
            let (reply, dir) = match job {
                Job::Commit(request, reply) => {
                    let dir = request.dir.clone();
                    let result = if synced {
                        let CommitRequest { part, dir, name, policy } = request;
                        part.commit(&dir, &name, policy)
                    } else {
                        sync_and_rename(request)
                    };
                    let named = matches!(result, Ok(Committed::Saved(_)));
                    (Reply::Commit(reply, result), named.then_some(dir))
                }
                Job::Link(request, reply) => {
                    let dir = request.dir.clone();
                    let result = if synced { request.link() } else { request.sync_and_link() };
                    let named = matches!(result, Ok(Committed::Saved(_)));
                    (Reply::Commit(reply, result), named.then_some(dir))
                }
                Job::Checkpoint(checkpoint, reply) => {
                    let dir = checkpoint.dir().map(Path::to_path_buf);
                    let result = if synced { checkpoint.write_state() } else { checkpoint.sync_and_write_state() };
                    let named = result.is_ok();
                    (Reply::Checkpoint(reply, result), dir.filter(|_| named))
                }
            };
            let dir = dir.map(|dir| match dirs.iter().position(|d| *d == dir) {
                Some(i) => i,
                None => {
                    dirs.push(dir);
                    dirs.len() - 1
                }
            });
            (reply, dir)
        })
        .collect();
    let failed: Vec<Option<(io::ErrorKind, String)>> = dirs
        .iter()
        .map(|dir| sync_dir(dir).err().map(|e| (e.kind(), format!("cannot sync the directory {}: {e}", dir.display()))))
        .collect();
    named
        .into_iter()
        .map(|(reply, dir)| match dir.and_then(|i| failed.get(i)).and_then(Option::as_ref) {
            Some((kind, why)) => reply.failed(*kind, why),
            None => reply,
        })
        .collect()
}

/// `syncfs(2)` once for every file system the batch's files are on: all
/// their data and metadata durable with one writeback pass and one cache
/// flush. Whether each job's file is known synced (`false`: the job syncs
/// its own, e.g. when syncfs reported an error).
fn sync_file_systems(batch: &[Job]) -> Vec<bool> {
    let mut devices: Vec<(u64, bool)> = Vec::new();
    batch
        .iter()
        .map(|job| {
            let file = job.file();
            let Ok(meta) = file.metadata() else { return false };
            if let Some(&(_, ok)) = devices.iter().find(|(dev, _)| *dev == meta.dev()) {
                return ok;
            }
            // SAFETY: syncfs on a descriptor we own; no memory passed.
            let ok = unsafe { libc::syncfs(file.as_raw_fd()) } == 0;
            devices.push((meta.dev(), ok));
            ok
        })
        .collect()
}

/// Syncs the part file's data, renames it, then syncs the directory (the
/// committer's steps for one file, on the calling thread).
pub fn commit_now(request: CommitRequest) -> io::Result<Committed> {
    let dir = request.dir.clone();
    durable_in(&dir, sync_and_rename(request))
}

/// Syncs the part file's data, then renames it (the directory is not
/// synced).
fn sync_and_rename(request: CommitRequest) -> io::Result<Committed> {
    let CommitRequest { part, dir, name, policy } = request;
    part.sync_data()?;
    part.commit(&dir, &name, policy)
}

/// `result`, once `dir` is synced if a name was added to it.
fn durable_in(dir: &Path, result: io::Result<Committed>) -> io::Result<Committed> {
    if let Ok(Committed::Saved(name)) = &result
        && let Err(e) = store::sync_dir(dir)
    {
        return Err(io::Error::new(
            e.kind(),
            format!("saved as {name}, but cannot sync the directory {}: {e}", dir.display()),
        ));
    }
    result
}

fn gone() -> io::Error {
    io::Error::other("the commit thread stopped")
}

fn send(job: Job) -> io::Result<()> {
    let queue = queue().ok_or_else(|| io::Error::other("cannot start the commit thread"))?;
    queue.send(job).map_err(|_| gone())
}

/// Commits of blocking callers under way in this process.
static BLOCKING_COMMITS: AtomicUsize = AtomicUsize::new(0);

/// Writes (a small body), syncs and renames, returning once renamed: on
/// the calling thread when no other commit of a blocking caller is under
/// way in this process (a worker process, which runs one download at a
/// time, never starts the committer; nor does `-j 1`), else through the
/// writer and the committer, batched with the others.
pub async fn finish_blocking(finish: Finish) -> io::Result<Committed> {
    match finish {
        Finish::Commit(request) => {
            blocking(*request, commit_now, |request, reply| send(Job::Commit(request, reply))).await
        }
        Finish::Save(request) => blocking(request, |r| r.write().and_then(Written::commit_now), to_writer).await,
    }
}

/// A commit (or save) of a blocking caller: `inline` on the calling thread
/// when no other one is under way in this process, else sent on its way by
/// `route` (to the committer, or the writer) and waited for.
async fn blocking<R>(
    request: R,
    inline: fn(R) -> io::Result<Committed>,
    route: fn(R, Answer) -> io::Result<()>,
) -> io::Result<Committed> {
    struct Active;
    impl Drop for Active {
        fn drop(&mut self) {
            BLOCKING_COMMITS.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let alone = BLOCKING_COMMITS.fetch_add(1, Ordering::SeqCst) == 0;
    let _active = Active;
    if alone {
        return inline(request);
    }
    let (tx, rx) = oneshot::channel();
    route(request, tx)?;
    rx.await.map_err(|_| gone())?
}

/// Hands a small body to the process's writer thread (started on first
/// use), which creates and writes its part file and passes it on to the
/// committer: while the committer waits for a disk flush, the next files
/// are being written (one thread doing both was slower than writing on the
/// downloading thread wherever a flush takes milliseconds).
fn to_writer(request: SaveRequest, reply: Answer) -> io::Result<()> {
    static QUEUE: OnceLock<Option<Sender<(SaveRequest, Answer)>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        service("trident-write", |rx: Receiver<(SaveRequest, Answer)>| {
            for (request, reply) in rx {
                match request.write() {
                    // If the committer is gone, the reply is dropped
                    // with the job and the caller learns it.
                    Ok(written) => drop(send(written.job(reply))),
                    Err(e) => drop(reply.send(Err(e))),
                }
            }
        })
    });
    let queue = queue.as_ref().ok_or_else(|| io::Error::other("cannot start the writer thread"))?;
    queue.send((request, reply)).map_err(|_| gone())
}

/// Writes (a small body, on the writer thread), syncs and renames through
/// the committer, batched with the others; ready once renamed.
pub async fn finish_async(finish: Finish) -> io::Result<Committed> {
    let (tx, rx) = oneshot::channel();
    match finish {
        Finish::Commit(request) => send(Job::Commit(*request, tx))?,
        Finish::Save(request) => to_writer(request, tx)?,
    }
    rx.await.map_err(|_| gone())?
}

/// Makes a checkpoint on the committer; its result comes later.
/// Jobs are done in order: a download's checkpoint is made before its
/// commit.
pub fn checkpoint(checkpoint: Checkpoint) -> io::Result<InFlight> {
    let (tx, rx) = oneshot::channel();
    send(Job::Checkpoint(checkpoint, tx))?;
    Ok(InFlight(rx))
}

/// A checkpoint the committer is making: how it went, once it is made.
#[derive(Debug)]
pub struct InFlight(oneshot::Receiver<io::Result<()>>);

impl InFlight {
    /// Its result if it is made, without waiting (`None`: not yet).
    pub fn try_result(&mut self) -> Option<io::Result<()>> {
        match self.0.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => None,
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(gone())),
        }
    }

    /// Its result, waited for.
    pub async fn result(&mut self) -> io::Result<()> {
        (&mut self.0).await.unwrap_or_else(|_| Err(gone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A verified part file for `name` holding `body`, and its request.
    fn request(dir: &Path, name: &str, body: &[u8]) -> CommitRequest {
        let mut part = PartFile::create(dir, name, "http://h/x", false).expect("part file");
        part.write(body).expect("write");
        CommitRequest { part, dir: dir.to_path_buf(), name: name.into(), policy: Collision::Number }
    }

    /// A batch committing each `(name, body)` in `dir`, and its answers.
    fn batch(
        dir: &Path,
        files: impl IntoIterator<Item = (String, String)>,
    ) -> (Vec<Job>, Vec<oneshot::Receiver<io::Result<Committed>>>) {
        files
            .into_iter()
            .map(|(name, body)| {
                let (tx, rx) = oneshot::channel();
                (Job::Commit(request(dir, &name, body.as_bytes()), tx), rx)
            })
            .unzip()
    }

    #[test]
    fn a_batch_is_renamed_before_any_reply_is_sent() {
        let d = tempfile::tempdir().expect("tempdir");
        let (mut batch, mut answers) = batch(d.path(), (0..8).map(|i| (format!("f{i}.bin"), format!("body {i}"))));
        let replies = commit_batch(&mut batch);
        assert!(batch.is_empty());
        let want: Vec<String> = (0..8).map(|i| format!("f{i}.bin")).collect();
        assert_eq!(names(d.path()), want, "every file renamed, no part file left");
        for rx in &mut answers {
            assert!(rx.try_recv().is_err(), "no reply before the whole batch is renamed");
        }
        for reply in replies {
            reply.send();
        }
        for (i, mut rx) in answers.into_iter().enumerate() {
            let committed = rx.try_recv().expect("a reply").expect("committed");
            assert_eq!(committed, Committed::Saved(format!("f{i}.bin")));
            assert_eq!(
                std::fs::read(d.path().join(format!("f{i}.bin"))).expect("read"),
                format!("body {i}").as_bytes()
            );
        }
    }

    #[test]
    fn a_batch_syncs_each_directory_once_after_its_names_and_before_any_reply() {
        let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let (mut jobs, mut answers) = batch(a.path(), (0..3).map(|i| (format!("a{i}"), format!("{i}"))));
        let (more, more_answers) = batch(b.path(), (0..2).map(|i| (format!("b{i}"), format!("{i}"))));
        jobs.extend(more);
        answers.extend(more_answers);
        // A checkpoint in A: its state file's rename is covered by A's sync.
        let mut part = PartFile::create(a.path(), "c", "http://h/c", false).expect("part file");
        part.set_validators(Some(store::Validators { etag: Some("\"e\"".into()), ..Default::default() }));
        part.write(b"abc").expect("write");
        let (tx, mut checkpointed) = oneshot::channel();
        jobs.push(Job::Checkpoint(part.begin_checkpoint().expect("checkpoint").expect("something new"), tx));
        let synced = sync_batch(&jobs);
        let mut calls = Vec::new();
        let replies = name_batch_with(&mut jobs, &synced, |dir| {
            let names = names(dir);
            assert!(names.iter().all(|n| !n.ends_with(".part") || n == "c.part"), "every name in place: {names:?}");
            for rx in &mut answers {
                assert!(rx.try_recv().is_err(), "no reply before the directory is synced");
            }
            assert!(checkpointed.try_recv().is_err());
            calls.push(dir.to_path_buf());
            Ok(())
        });
        assert_eq!(calls, [a.path(), b.path()], "one sync per directory per batch");
        assert_eq!(names(a.path()), ["a0", "a1", "a2", "c.part", "c.part.state"]);
        replies.into_iter().for_each(Reply::send);
        for mut rx in answers {
            assert!(matches!(rx.try_recv().expect("reply"), Ok(Committed::Saved(_))));
        }
        checkpointed.try_recv().expect("reply").expect("checkpoint made");
        part.end_checkpoint(true);
        assert!(part.keep());

        // A directory that cannot be synced: its files are not reported saved.
        let (mut jobs, answers) = batch(a.path(), (0..2).map(|i| (format!("z{i}"), format!("{i}"))));
        let replies = name_batch_with(&mut jobs, &[true, true], |_| Err(io::Error::other("disk gone")));
        replies.into_iter().for_each(Reply::send);
        for mut rx in answers {
            let e = rx.try_recv().expect("reply").expect_err("not durable");
            assert!(e.to_string().contains("saved as z") && e.to_string().contains("disk gone"), "{e}");
        }
    }

    #[test]
    fn collisions_in_a_batch_are_numbered_in_order_and_a_batch_of_one_works() {
        let d = tempfile::tempdir().expect("tempdir");
        let (mut batch, answers) = batch(d.path(), (0..3).map(|i| ("same.bin".to_string(), format!("v{i}"))));
        commit_batch(&mut batch).into_iter().for_each(Reply::send);
        let got: Vec<Committed> =
            answers.into_iter().map(|mut rx| rx.try_recv().expect("reply").expect("ok")).collect();
        assert_eq!(got, ["same.bin", "same.1.bin", "same.2.bin"].map(|n| Committed::Saved(n.into())));
        assert_eq!(std::fs::read(d.path().join("same.2.bin")).expect("read"), b"v2");

        let (tx, mut rx) = oneshot::channel();
        let mut one = vec![Job::Commit(request(d.path(), "one.bin", b"1"), tx)];
        commit_batch(&mut one).into_iter().for_each(Reply::send);
        assert_eq!(rx.try_recv().expect("reply").expect("ok"), Committed::Saved("one.bin".into()));
    }

    #[test]
    fn through_the_committer_each_reply_finds_its_file_under_its_final_name() {
        let d = tempfile::tempdir().expect("tempdir");
        std::thread::scope(|s| {
            for i in 0..16 {
                let dir = d.path();
                s.spawn(move || {
                    let name = format!("t{i}.bin");
                    let (tx, rx) = oneshot::channel();
                    send(Job::Commit(request(dir, &name, name.as_bytes()), tx)).expect("queued");
                    let committed = rx.blocking_recv().expect("a reply").expect("committed");
                    assert_eq!(committed, Committed::Saved(name.clone()));
                    assert_eq!(std::fs::read(dir.join(&name)).expect("final name exists"), name.as_bytes());
                    assert!(!dir.join(format!("{name}.part")).exists());
                });
            }
        });
        assert_eq!(names(d.path()).len(), 16);
    }
}
