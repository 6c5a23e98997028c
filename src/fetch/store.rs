//! Writing a download so that a file under its final name is always
//! complete: the body goes to `NAME.part` (created, never reused: an
//! existing entry of that name, file or symlink, is left alone and
//! `NAME.part.1`... is used), is synced to disk, verified, and only then
//! renamed to its final name without replacing anything (unless told to).
//!
//! A body the server can resend in part (a strong ETag or Last-Modified)
//! is resumable: `NAME.part.state` records the URL, the validators, the
//! length and the bytes synced so far, and a later attempt or run for the
//! same URL continues the file (see [`PartFile::resume`]).
//!
//! A state is trusted only if it carries the MAC of this user's key (see
//! `seal`): a server cannot name its files `.part`/`.part.state` any more
//! (see `name::is_reserved`), but a pair planted some other way (by an
//! earlier version, by anyone who can write the directory) must not decide
//! which bytes end up in a file under its final name. A prefix's state
//! also records the SHA-256 of its last [`TAIL_BYTES`] bytes, checked
//! (4 KiB read back) before the prefix is kept: a part file changed under
//! its state starts over. State files are mode 0600 (they name the URL,
//! which may carry a pre-signed query); part files keep the usual 0644
//! minus umask, as the file they become (their bytes are the download's).
//!
//! A split download (`-s K`) writes its parts at their offsets in the same
//! `NAME.part`; its state also lists the byte ranges synced (`ranges`), so
//! that a later attempt or run fetches only what is missing. `done` is then
//! the range that starts at 0, which is what a reader that knows nothing of
//! `ranges` may trust.
//!
//! The SHA-256 of the body is computed only when asked for (`--sha256`, a
//! checksum to verify): hashing every byte costs about a third of a large
//! download's CPU.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::name::{is_reserved, numbered};
use super::split::RangeSet;

/// What to do when the final name is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Collision {
    /// Keep the existing file; save as `name.1.ext`, `name.2.ext`...
    #[default]
    Number,
    /// Replace the existing entry (a symlink is replaced, not followed).
    Overwrite,
    /// Keep the existing file and skip the download.
    NoClobber,
}

/// Alternative names tried for a `.part` file or a taken final name.
const MAX_NUMBER: u32 = 1000;

/// Where a finished download ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Saved under this name in the directory.
    Saved(String),
    /// `--no-clobber` and the name was taken: nothing was written.
    Skipped(String),
}

/// New bytes between two checkpoints of a resumable download (data synced,
/// then the state file replaced).
pub const CHECKPOINT_BYTES: u64 = 4 << 20;
/// A state file larger than this is not ours.
const STATE_MAX: u64 = 64 * 1024;
/// Version of the state file format (2: signed, with `tail`).
const STATE_VERSION: u32 = 2;
/// Bytes at the end of a kept prefix whose digest the state records.
pub const TAIL_BYTES: u64 = 4096;

/// What identifies the body being written: a download is resumed only
/// with a validator the server will compare (`If-Range`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    /// Strong ETag, quotes included (weak ones are never kept).
    pub etag: Option<String>,
    /// `Last-Modified`, as sent.
    pub last_modified: Option<String>,
    /// Length of the whole body, if known.
    pub total: Option<u64>,
}

impl Validators {
    /// The `If-Range` value: the strong ETag, else `Last-Modified`.
    pub fn if_range(&self) -> Option<&str> {
        self.etag.as_deref().or(self.last_modified.as_deref())
    }
}

/// The sidecar `NAME.part.state` (JSON): enough to continue `NAME.part`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartState {
    /// Format version (1).
    pub version: u32,
    /// The URL as given: only a download of the same URL continues the file.
    pub url: String,
    /// The server's validators and length.
    #[serde(flatten)]
    pub validators: Validators,
    /// Bytes at the start of `NAME.part` that were synced to disk.
    pub done: u64,
    /// A split download: every byte range `[start, end)` synced to disk
    /// (`done` is the one starting at 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Vec<(u64, u64)>>,
    /// Not split: the SHA-256 (hex) of the last [`TAIL_BYTES`] (or fewer)
    /// bytes before `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<String>,
    /// HMAC-SHA256 (hex, see `seal`) of the state file's name and this
    /// state without `mac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl PartState {
    /// What the MAC covers: the state file's name, NUL, the state without
    /// its MAC (serialised from the struct, so the same bytes on reading).
    fn signed_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let unsigned = PartState { mac: None, ..self.clone() };
        let mut bytes = path.file_name()?.as_bytes().to_vec();
        bytes.push(0);
        bytes.extend(serde_json::to_vec(&unsigned).ok()?);
        Some(bytes)
    }

    /// Records the digest of the prefix's tail (read from `file`) and signs
    /// the state for the state file at `path`.
    fn seal(&mut self, file: &File, path: &Path) -> io::Result<()> {
        if self.ranges.is_none() {
            self.tail = Some(tail_digest(file, self.done)?);
        }
        let key = super::seal::key().ok_or_else(|| io::Error::other("no key to sign the state file"))?;
        let bytes = self.signed_bytes(path).ok_or_else(|| io::Error::other("cannot serialise the state"))?;
        self.mac = Some(key.sign(&bytes));
        Ok(())
    }

    /// Whether it carries a valid MAC for the state file at `path`.
    fn is_sealed(&self, path: &Path) -> bool {
        let (Some(key), Some(mac), Some(bytes)) = (super::seal::key(), &self.mac, self.signed_bytes(path)) else {
            return false;
        };
        key.verify(&bytes, mac)
    }
}

/// The SHA-256 (hex) of the last [`TAIL_BYTES`] (or fewer) bytes of
/// `file` before offset `end`.
fn tail_digest(file: &File, end: u64) -> io::Result<String> {
    let digest = hash_range(file, end.saturating_sub(TAIL_BYTES), end)?.finalize();
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// A download's body on its way to the disk, with its running length and,
/// when asked for, its SHA-256. Dropped without [`commit`](PartFile::commit) or
/// [`keep`](PartFile::keep), it removes its file and state file.
///
/// A resumable body (one with [`Validators`]) is checkpointed every
/// [`CHECKPOINT_BYTES`] and when an attempt fails: the data is synced, then
/// `NAME.part.state` is replaced atomically (written to `.state.tmp`,
/// synced, renamed), so the state never claims more than what is on disk.
/// The file is `flock`ed while open: two downloads of the same URL (threads
/// or worker processes) never share one.
#[derive(Debug)]
pub struct PartFile {
    file: File,
    path: PathBuf,
    url: String,
    /// The running SHA-256 of the body, when one is wanted (`None`: no
    /// byte is hashed, nothing is read back).
    hasher: Option<Sha256>,
    written: u64,
    synced: u64,
    validators: Option<Validators>,
    /// A split download: the ranges written (`written` is their length).
    ranges: Option<RangeSet>,
    resumed_from: u64,
    /// A state file may exist (resumed from one, or one was written):
    /// removed with the part file.
    has_state: bool,
    /// A checkpoint in flight covers this many bytes.
    checkpointing: Option<u64>,
    committed: bool,
    keep: bool,
}

/// The part file of a split download as its workers share it: writes at
/// offsets, checkpoints of the ranges written (a duplicate of the
/// descriptor, so that it can move to a blocking thread).
#[derive(Debug)]
pub struct SharedPart {
    file: File,
    state_path: PathBuf,
    url: String,
    validators: Validators,
}

impl SharedPart {
    /// The validators of the body being written.
    pub fn validators(&self) -> &Validators {
        &self.validators
    }

    /// Writes `data` at `offset`.
    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    /// A [`Checkpoint`] recording `done` (the data synced first), to be
    /// made on another thread (the committer) while the workers write on.
    pub fn checkpoint(&self, done: &RangeSet) -> io::Result<Checkpoint> {
        let file = self.file.try_clone()?;
        let state = split_state(&self.url, &self.validators, done);
        Ok(Checkpoint { file, state_path: self.state_path.clone(), state })
    }
}

fn split_state(url: &str, validators: &Validators, done: &RangeSet) -> PartState {
    PartState {
        version: STATE_VERSION,
        url: url.to_string(),
        validators: validators.clone(),
        done: done.prefix(),
        ranges: Some(done.spans().to_vec()),
        tail: None,
        mac: None,
    }
}

/// A checkpoint taken by [`PartFile::begin_checkpoint`]: the bytes written
/// by then are synced, then the state file claiming them replaced. Its
/// file is a duplicate descriptor, so that it can be made on another
/// thread while the download writes on.
#[derive(Debug)]
pub struct Checkpoint {
    file: File,
    state_path: PathBuf,
    state: PartState,
}

impl Checkpoint {
    /// Makes it (blocking), its directory synced after the state's rename.
    pub fn run(self) -> io::Result<()> {
        let dir = self.state_path.parent().map(Path::to_path_buf);
        self.sync_and_write_state()?;
        dir.map_or(Ok(()), |d| sync_dir(&d))
    }

    /// Makes it, leaving the directory to be synced by the caller (the
    /// committer syncs it once for its batch).
    pub fn sync_and_write_state(self) -> io::Result<()> {
        self.file.sync_data()?;
        self.write_state()
    }

    /// Makes it when the part file's data is known synced since the
    /// checkpoint was asked for (the committer's `syncfs` or `fdatasync` of
    /// its batch): only the state file is written. Another `fdatasync`
    /// would find nothing to write but still flush the device (measured on
    /// ext4: a flush per call, dirty or not). The rename is durable once
    /// the caller syncs the directory (the committer: once per batch).
    pub fn write_state(mut self) -> io::Result<()> {
        self.state.seal(&self.file, &self.state_path)?;
        write_state(&self.state_path, &self.state)
    }

    /// The directory of its state file.
    pub fn dir(&self) -> Option<&Path> {
        self.state_path.parent()
    }

    /// The part file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// Replaces a state file atomically: written to `.tmp` (mode 0600),
/// synced, renamed (the directory is not synced here).
fn write_state(final_path: &Path, state: &PartState) -> io::Result<()> {
    let tmp = with_suffix(final_path, ".tmp");
    remove_if_present(&tmp)?;
    let mut f = create_new_mode(&tmp, 0o600)?;
    let text = serde_json::to_vec(state).map_err(io::Error::other)?;
    f.write_all(&text)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, final_path)
}

/// Opens a new file that did not exist, for writing and reading (a split
/// download's digest, when wanted, is read back from it); never follows a
/// symlink.
fn create_new(path: &Path) -> io::Result<File> {
    create_new_mode(path, 0o644)
}

/// [`create_new`] with permissions `mode` (minus the umask).
fn create_new_mode(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(mode)
        .open(path)
}

/// Opens an existing regular file for reading (and writing); never follows
/// a symlink, never blocks on a FIFO.
fn open_existing(path: &Path, write: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// Takes the file's exclusive lock if nobody holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock { Ok(false) } else { Err(err) }
}

/// `PATH` + `suffix`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The state file of the part file at `part`.
pub fn state_path(part: &Path) -> PathBuf {
    with_suffix(part, ".state")
}

/// Reads a state file (a regular file, not a symlink, small, valid JSON,
/// signed with this user's key).
pub fn read_state(path: &Path) -> Option<PartState> {
    let file = open_existing(path, false).ok()?;
    let mut text = Vec::new();
    file.take(STATE_MAX).read_to_end(&mut text).ok()?;
    let state: PartState = serde_json::from_slice(&text).ok()?;
    (state.version == STATE_VERSION && state.is_sealed(path)).then_some(state)
}

/// Removes the state file of the part file at `part`, and the temporary
/// one a process killed while writing it may have left.
fn remove_state(part: &Path) -> io::Result<()> {
    let state = state_path(part);
    remove_if_present(&with_suffix(&state, ".tmp"))?;
    remove_if_present(&state)
}

/// [`remove_state`] for a part file just created: state files are rarely
/// there (only one orphaned by a kill or by hand), and looking is cheaper
/// than an `unlink` that finds nothing, which still takes the directory's
/// lock exclusively (contended when many downloads start at once).
fn remove_stale_state(part: &Path) -> io::Result<()> {
    let state = state_path(part);
    for path in [with_suffix(&state, ".tmp"), state] {
        if std::fs::symlink_metadata(&path).is_ok() {
            remove_if_present(&path)?;
        }
    }
    Ok(())
}

/// The SHA-256 of the first `len` bytes of `file` (positioned reads: the
/// file offset is left alone); an error if the file is shorter.
fn hash_prefix(file: &File, len: u64) -> io::Result<Sha256> {
    hash_range(file, 0, len)
}

/// The SHA-256 of bytes `[start, end)` of `file` (positioned reads); an
/// error if the file is shorter.
fn hash_range(file: &File, start: u64, end: u64) -> io::Result<Sha256> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; usize::try_from((end.saturating_sub(start)).min(256 * 1024)).unwrap_or(256 * 1024)];
    let mut offset = start;
    while offset < end {
        let want = usize::try_from((end - offset).min(buf.len() as u64)).unwrap_or(buf.len());
        match file.read_at(&mut buf[..want], offset) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file ended early")),
            Ok(n) => {
                hasher.update(&buf[..n]);
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher)
}

/// Whether `dir` may hold part or state files left by another run: its
/// entries are read once per process, on first use; a directory without
/// any name containing `.part` then (a new or finished one) needs no
/// lookup per download for a part file to continue or a stale state to
/// remove — a lookup of a name not there was a tenth of the downloading
/// thread's time on 16 KiB files (ext4 searches the directory's blocks;
/// nothing is cached for a name that never existed). Part files of this
/// process are known to it (see [`holds_parts`]); another process's,
/// created meanwhile, are locked by it and never continued anyway: a
/// download then takes `NAME.part.1`, as it would have.
/// At most [`SCAN_MOST`] entries are read: a larger directory is taken to
/// hold part files (a lookup per download, as before this scan), so the
/// first download in a directory of millions of files does not wait for
/// all of them to be read.
pub fn may_hold_parts(dir: &Path) -> bool {
    let mut known = dirs_scanned().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(&holds) = known.get(dir) {
        return holds;
    }
    let holds = scan_for_parts(dir, SCAN_MOST);
    known.insert(dir.to_path_buf(), holds);
    holds
}

/// Entries [`may_hold_parts`] reads at most (ext4: ~0.03 s cached, ~0.1 s
/// from disk).
const SCAN_MOST: usize = 100_000;

/// Whether one of the first `most` entries of `dir` has `.part` in its
/// name, or there are more than `most`, or `dir` cannot be read.
fn scan_for_parts(dir: &Path, most: usize) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        // Unreadable: look per download, as always.
        return true;
    };
    let mut entries = entries.flatten();
    let found = entries.by_ref().take(most).any(|e| e.file_name().as_bytes().windows(5).any(|w| w == b".part"));
    found || entries.next().is_some()
}

/// Records that `dir` now holds a part file this process keeps.
fn holds_parts(dir: &Path) {
    dirs_scanned().lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(dir.to_path_buf(), true);
}

fn dirs_scanned() -> &'static std::sync::Mutex<std::collections::HashMap<PathBuf, bool>> {
    static DIRS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<PathBuf, bool>>> =
        std::sync::OnceLock::new();
    DIRS.get_or_init(Default::default)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl PartFile {
    fn new(file: File, path: PathBuf, url: &str, digest: bool) -> Self {
        PartFile {
            file,
            path,
            url: url.to_string(),
            hasher: digest.then(Sha256::new),
            written: 0,
            synced: 0,
            validators: None,
            ranges: None,
            resumed_from: 0,
            has_state: false,
            checkpointing: None,
            committed: false,
            keep: false,
        }
    }

    /// Creates `DIR/NAME.part` (or the first free `NAME.part.N`) for `url`;
    /// a stale state file of that name is removed. With `digest`, the
    /// SHA-256 of what is written is computed (see [`sha256`](Self::sha256)).
    pub fn create(dir: &Path, name: &str, url: &str, digest: bool) -> io::Result<Self> {
        let base = format!("{name}.part");
        for n in 0..MAX_NUMBER {
            let candidate = if n == 0 { base.clone() } else { format!("{base}.{n}") };
            let path = dir.join(&candidate);
            match create_new(&path) {
                // Locked at once by whoever is resuming it: not ours.
                Ok(file) if !try_lock(&file)? => continue,
                Ok(file) => {
                    if may_hold_parts(dir) {
                        remove_stale_state(&path)?;
                    }
                    return Ok(PartFile::new(file, path, url, digest));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{base} and {MAX_NUMBER} alternatives exist")))
    }

    /// Whether `DIR/NAME.part` exists: [`resume`](Self::resume) can only
    /// find something then (one lookup, no directory lock).
    pub fn may_resume(dir: &Path, name: &str) -> bool {
        may_hold_parts(dir) && std::fs::symlink_metadata(dir.join(format!("{name}.part"))).is_ok()
    }

    /// An earlier download of `url` into `DIR/NAME.part` (or `NAME.part.N`)
    /// that can be continued: its state names the same URL and a validator,
    /// nobody else holds it. It is cut back to the bytes its state says were
    /// synced (with `digest`, they are read back for their SHA-256).
    pub fn resume(dir: &Path, name: &str, url: &str, digest: bool) -> Option<Self> {
        if !may_hold_parts(dir) {
            return None;
        }
        let base = format!("{name}.part");
        for n in 0..MAX_NUMBER {
            let candidate = if n == 0 { base.clone() } else { format!("{base}.{n}") };
            let path = dir.join(&candidate);
            if std::fs::symlink_metadata(&path).is_err() {
                return None;
            }
            if let Some(part) = Self::try_resume(path, url, digest) {
                return Some(part);
            }
        }
        None
    }

    fn try_resume(path: PathBuf, url: &str, digest: bool) -> Option<Self> {
        let state = read_state(&state_path(&path))?;
        if state.url != url || state.validators.if_range().is_none() {
            return None;
        }
        let mut file = open_existing(&path, true).ok()?;
        if !try_lock(&file).ok()? {
            return None;
        }
        let meta = file.metadata().ok()?;
        if meta.nlink() != 1 {
            // Ours has one name: another is a hard link made since (to a
            // file elsewhere that a restart would cut). Left alone.
            return None;
        }
        let len = meta.len();
        if let (Some(ranges), Some(total)) = (&state.ranges, state.validators.total) {
            // A split download: its ranges (within the file) stay where
            // they are; a digest is computed once the file is complete.
            let mut done = RangeSet::from_spans(ranges.iter().copied(), len.min(total));
            // Complete but not renamed: the last byte is fetched again,
            // which also checks the validator.
            done.remove((total.saturating_sub(1), total));
            let mut part = PartFile::new(file, path, url, digest);
            part.has_state = true;
            part.written = done.bytes();
            part.synced = part.written;
            part.validators = (part.written > 0).then_some(state.validators);
            part.ranges = Some(done);
            return Some(part);
        }
        // A file shorter than its state says, or whose bytes before `done`
        // end otherwise than recorded, is not what the state describes.
        let tail_ok = || state.tail.as_deref().is_some_and(|t| tail_digest(&file, state.done).is_ok_and(|d| d == t));
        let mut done = if len < state.done || !tail_ok() { 0 } else { state.done };
        if let Some(total) = state.validators.total {
            // Complete but not renamed: fetch the last byte again, which
            // also checks the validator.
            done = done.min(total.saturating_sub(1));
        }
        // The kept prefix is read back only for its digest.
        let hasher = if digest { Some(hash_prefix(&file, done).ok()?) } else { None };
        file.set_len(done).ok()?;
        file.seek(SeekFrom::Start(done)).ok()?;
        let mut part = PartFile::new(file, path, url, digest);
        part.has_state = true;
        part.hasher = hasher;
        part.written = done;
        part.synced = done;
        part.validators = (done > 0).then_some(state.validators);
        Some(part)
    }

    /// Forgets what was written (a new body starts from zero), state file
    /// included.
    pub fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        if self.hasher.is_some() {
            self.hasher = Some(Sha256::new());
        }
        self.written = 0;
        self.synced = 0;
        self.resumed_from = 0;
        self.ranges = None;
        self.checkpointing = None;
        if self.validators.take().is_some() && self.has_state {
            remove_state(&self.path)?;
            self.has_state = false;
        }
        Ok(())
    }

    /// The validators of the body being written (`None`: not resumable).
    pub fn set_validators(&mut self, validators: Option<Validators>) {
        self.validators = validators.filter(|v| v.if_range().is_some());
    }

    /// Where and how to continue: the byte offset and the validators, if
    /// anything resumable was written.
    pub fn resume_point(&self) -> Option<(u64, Validators)> {
        let v = self.validators.as_ref().filter(|_| self.ranges.is_none())?;
        (self.written > 0).then(|| (self.written, v.clone()))
    }

    /// What a split download can continue from: the ranges written and the
    /// validators, when the body's length is known (a split part file, or
    /// a resumable prefix).
    pub fn split_point(&self) -> Option<(RangeSet, Validators)> {
        let v = self.validators.as_ref().filter(|v| v.total.is_some())?;
        if self.written == 0 {
            return None;
        }
        let done = match &self.ranges {
            Some(ranges) => ranges.clone(),
            None => RangeSet::from_spans([(0, self.written)], u64::MAX),
        };
        Some((done, v.clone()))
    }

    /// The length of the body, when known.
    pub fn split_total(&self) -> Option<u64> {
        self.validators.as_ref().and_then(|v| v.total)
    }

    /// Whether this is a split download's part file (ranges, not a prefix).
    pub fn is_split(&self) -> bool {
        self.ranges.is_some()
    }

    /// Turns an empty part file into a split download's, for a body
    /// identified by `validators` (with its length).
    pub fn begin_split(&mut self, validators: Validators) {
        self.validators = Some(validators);
        self.ranges = Some(RangeSet::default());
        self.written = 0;
        self.synced = 0;
        // Its workers write the state file (`SharedPart::save`).
        self.has_state = true;
    }

    /// The handle the workers of a split download share.
    pub fn shared(&self) -> io::Result<SharedPart> {
        let validators = self.validators.clone().ok_or_else(|| io::Error::other("not a resumable body"))?;
        Ok(SharedPart {
            file: self.file.try_clone()?,
            state_path: state_path(&self.path),
            url: self.url.clone(),
            validators,
        })
    }

    /// After the workers of a split download: the ranges written, of which
    /// `synced` bytes are recorded in the state file.
    pub fn end_split(&mut self, done: RangeSet, synced: u64) {
        self.written = done.bytes();
        self.synced = synced.min(self.written);
        self.ranges = Some(done);
    }

    /// A split download whose ranges cover the whole body: the file is cut
    /// to the body's length and, when a digest is wanted, read back for its
    /// SHA-256 (its parts were written out of order). Blocking (with a
    /// digest, reads the whole file).
    pub fn complete_split(&mut self) -> io::Result<()> {
        let len = match self.split_total() {
            Some(total) => {
                self.file.set_len(total)?;
                total
            }
            None => self.file.metadata()?.len(),
        };
        if self.hasher.is_some() {
            self.hasher = Some(hash_prefix(&self.file, len)?);
        }
        self.written = len;
        Ok(())
    }

    /// The server sent the rest of the body after `offset` bytes.
    pub fn continued_at(&mut self, offset: u64) {
        self.resumed_from = offset;
    }

    /// Bytes kept from before the last accepted partial response.
    pub fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    /// Appends a piece of the body; `true` when a checkpoint is due (none
    /// is while one is in flight, see [`begin_checkpoint`](Self::begin_checkpoint)).
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<bool> {
        self.file.write_all(chunk)?;
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(chunk);
        }
        self.written += chunk.len() as u64;
        Ok(self.validators.is_some() && self.checkpointing.is_none() && self.written - self.synced >= CHECKPOINT_BYTES)
    }

    /// The state file describing what was written, if there is anything
    /// new to record (nothing for a body that cannot be resumed).
    fn state_now(&self) -> Option<PartState> {
        let validators = self.validators.as_ref()?;
        if self.written == 0 || self.written == self.synced {
            return None;
        }
        Some(match &self.ranges {
            Some(done) => split_state(&self.url, validators, done),
            None => PartState {
                version: STATE_VERSION,
                url: self.url.clone(),
                validators: validators.clone(),
                done: self.written,
                ranges: None,
                tail: None,
                mac: None,
            },
        })
    }

    /// Makes what was written durable and records it in the state file
    /// (nothing for a body that cannot be resumed), on this thread: the
    /// checkpoint of [`begin_checkpoint`](Self::begin_checkpoint), made
    /// at once.
    pub fn checkpoint(&mut self) -> io::Result<()> {
        let Some(job) = self.begin_checkpoint()? else { return Ok(()) };
        let result = job.run();
        self.end_checkpoint(result.is_ok());
        result
    }

    /// A checkpoint of what was written so far, to be made by another
    /// thread while the download goes on writing; `None` if there is
    /// nothing new or one is in flight. Report its end with
    /// [`end_checkpoint`](Self::end_checkpoint), and wait for it before the
    /// part file is reset or dropped.
    pub fn begin_checkpoint(&mut self) -> io::Result<Option<Checkpoint>> {
        if self.checkpointing.is_some() {
            return Ok(None);
        }
        let Some(state) = self.state_now() else { return Ok(None) };
        let file = self.file.try_clone()?;
        self.has_state = true;
        self.checkpointing = Some(self.written);
        Ok(Some(Checkpoint { file, state_path: state_path(&self.path), state }))
    }

    /// The checkpoint in flight ended (`ok`: its bytes are synced and
    /// recorded).
    pub fn end_checkpoint(&mut self, ok: bool) {
        if let Some(upto) = self.checkpointing.take()
            && ok
        {
            self.synced = self.synced.max(upto);
        }
    }

    /// Leaves the file and its state on disk when dropped, if a checkpoint
    /// covers everything written (a later run continues it).
    pub fn keep(&mut self) -> bool {
        self.keep = self.validators.is_some() && self.written > 0 && self.synced == self.written;
        if self.keep
            && let Some(dir) = self.path.parent()
        {
            // A later download of the same URL in this run may continue it.
            holds_parts(dir);
        }
        self.keep
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The SHA-256 of what was written so far; `None` when the part file
    /// was opened without a digest.
    pub fn sha256(&self) -> Option<[u8; 32]> {
        self.hasher.clone().map(|h| h.finalize().into())
    }

    /// The `.part` file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the data to disk (before any rename makes it visible).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    /// Syncs the data and what is needed to read it back (its length), not
    /// the timestamps: `fdatasync`, enough before a rename.
    pub fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Moves the synced file to `DIR/NAME` following `policy`; its state
    /// file goes.
    pub fn commit(mut self, dir: &Path, name: &str, policy: Collision) -> io::Result<Committed> {
        let result = match policy {
            Collision::Overwrite => std::fs::rename(&self.path, dir.join(name)).map(|()| Committed::Saved(name.into())),
            Collision::NoClobber => match rename_noreplace(&self.path, &dir.join(name)) {
                Ok(()) => Ok(Committed::Saved(name.into())),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Committed::Skipped(name.into())),
                Err(e) => Err(e),
            },
            Collision::Number => self.commit_numbered(dir, name),
        };
        if matches!(result, Ok(Committed::Saved(_))) {
            self.committed = true;
            if self.has_state {
                let _ = remove_state(&self.path);
            }
        }
        result
    }

    fn commit_numbered(&self, dir: &Path, name: &str) -> io::Result<Committed> {
        first_free(name, |candidate| rename_noreplace(&self.path, &dir.join(candidate))).map(Committed::Saved)
    }
}

/// The first of `name`, `name.1.ext`, `name.2.ext`... that `place` could
/// give a file (`place` fails with `AlreadyExists` when a name is taken;
/// any other error ends the search).
pub fn first_free(name: &str, mut place: impl FnMut(&str) -> io::Result<()>) -> io::Result<String> {
    for n in 0..MAX_NUMBER {
        let candidate = numbered(name, n);
        if is_reserved(&candidate) {
            // Never one of the tool's own names (see `name`), whatever the
            // caller passed.
            continue;
        }
        match place(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{name} and {MAX_NUMBER} numbered alternatives exist")))
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.committed && !self.keep {
            // The state first: a kill in between leaves a part file that
            // nothing claims to resume, never a state without its file.
            if self.has_state {
                let _ = remove_state(&self.path);
            }
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Renames `from` to `to` unless `to` exists (as anything, a dangling
/// symlink included): `AlreadyExists` then. `renameat2(RENAME_NOREPLACE)`,
/// or link + unlink on file systems without it.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (cfrom, cto) = (c_path(from)?, c_path(to)?);
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(libc::AT_FDCWD, cfrom.as_ptr(), libc::AT_FDCWD, cto.as_ptr(), libc::RENAME_NOREPLACE)
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP) => {
            // link(2) fails with EEXIST if `to` exists and never follows it.
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        _ => Err(err),
    }
}

/// Makes the directory's entries (the renames) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
        v.sort();
        v
    }

    fn part(dir: &Path, name: &str, body: &[u8]) -> PartFile {
        let mut p = PartFile::create(dir, name, "http://h/x", true).expect("part file");
        p.write(body).expect("write");
        p.sync().expect("sync");
        p
    }

    #[test]
    fn the_scan_for_part_files_reads_a_bounded_number_of_entries() {
        let d = tempfile::tempdir().expect("tempdir");
        assert!(!scan_for_parts(d.path(), 3), "empty");
        for i in 0..5 {
            fs::write(d.path().join(format!("f{i}.bin")), b"x").expect("write");
        }
        assert!(!scan_for_parts(d.path(), 5), "5 entries read, none a part file");
        assert!(scan_for_parts(d.path(), 4), "more than 4: taken to hold part files");
        fs::write(d.path().join("y.bin.part"), b"x").expect("write");
        assert!(scan_for_parts(d.path(), 10));
        assert!(scan_for_parts(&d.path().join("missing"), 10), "unreadable: looked up per download");
    }

    #[test]
    fn numbered_collisions_keep_existing_files() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join("x.bin"), b"old").expect("write");
        let c = part(d.path(), "x.bin", b"new1").commit(d.path(), "x.bin", Collision::Number).expect("commit");
        assert_eq!(c, Committed::Saved("x.1.bin".into()));
        let c = part(d.path(), "x.bin", b"new2").commit(d.path(), "x.bin", Collision::Number).expect("commit");
        assert_eq!(c, Committed::Saved("x.2.bin".into()));
        assert_eq!(names(d.path()), ["x.1.bin", "x.2.bin", "x.bin"]);
        assert_eq!(fs::read(d.path().join("x.bin")).expect("read"), b"old");
        assert_eq!(fs::read(d.path().join("x.2.bin")).expect("read"), b"new2");
    }

    #[test]
    fn no_clobber_skips_and_overwrite_replaces() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join("x"), b"old").expect("write");
        let c = part(d.path(), "x", b"new").commit(d.path(), "x", Collision::NoClobber).expect("commit");
        assert_eq!(c, Committed::Skipped("x".into()));
        assert_eq!(names(d.path()), ["x"], "the part file is gone");
        let c = part(d.path(), "x", b"new").commit(d.path(), "x", Collision::Overwrite).expect("commit");
        assert_eq!(c, Committed::Saved("x".into()));
        assert_eq!(fs::read(d.path().join("x")).expect("read"), b"new");
        assert_eq!(names(d.path()), ["x"]);
    }

    #[test]
    fn planted_symlinks_are_never_followed() {
        let d = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let victim = outside.path().join("victim");
        fs::write(&victim, b"precious").expect("write");
        std::os::unix::fs::symlink(&victim, d.path().join("x.part")).expect("symlink");
        std::os::unix::fs::symlink(&victim, d.path().join("x")).expect("symlink");
        let p = part(d.path(), "x", b"data");
        assert_eq!(p.path(), d.path().join("x.part.1"));
        assert_eq!(p.commit(d.path(), "x", Collision::Number).expect("commit"), Committed::Saved("x.1".into()));
        let p = part(d.path(), "x", b"data");
        assert_eq!(p.commit(d.path(), "x", Collision::Overwrite).expect("commit"), Committed::Saved("x".into()));
        assert_eq!(fs::read(&victim).expect("read"), b"precious");
        assert!(!fs::symlink_metadata(d.path().join("x")).expect("meta").file_type().is_symlink());
        assert_eq!(names(d.path()), ["x", "x.1", "x.part"]);
    }

    #[test]
    fn dropped_part_files_disappear_and_reset_starts_over() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut p = part(d.path(), "y", b"abc");
        p.reset().expect("reset");
        p.write(b"z").expect("write");
        assert_eq!((p.written(), fs::read(p.path()).expect("read")), (1, b"z".to_vec()));
        assert_eq!(p.sha256(), Some(<[u8; 32]>::from(Sha256::digest(b"z"))));
        drop(p);
        assert!(names(d.path()).is_empty());
    }

    fn resumable(dir: &Path, name: &str, url: &str, body: &[u8]) -> PartFile {
        resumable_with(dir, name, url, body, true)
    }

    fn resumable_with(dir: &Path, name: &str, url: &str, body: &[u8], digest: bool) -> PartFile {
        let mut p = PartFile::create(dir, name, url, digest).expect("part file");
        p.set_validators(Some(Validators { etag: Some("\"v1\"".into()), last_modified: None, total: Some(10) }));
        p.write(body).expect("write");
        p.checkpoint().expect("checkpoint");
        p
    }

    #[test]
    fn kept_part_files_resume_for_the_same_url_only() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut p = resumable(d.path(), "r", "http://h/r", b"hello");
        p.write(b"-unsynced").expect("write");
        assert!(!p.keep(), "not kept while bytes are not checkpointed");
        p.checkpoint().expect("checkpoint");
        assert!(p.keep());
        drop(p);
        assert_eq!(names(d.path()), ["r.part", "r.part.state"]);
        let state = read_state(&d.path().join("r.part.state")).expect("state");
        assert_eq!((state.url.as_str(), state.done, state.validators.total), ("http://h/r", 14, Some(10)));

        assert!(PartFile::resume(d.path(), "r", "http://h/other", true).is_none());
        let p = PartFile::resume(d.path(), "r", "http://h/r", true).expect("resumable");
        // 14 bytes on disk but the body is 10 long: continue from byte 9.
        assert_eq!(p.written(), 9);
        assert_eq!(p.sha256(), Some(<[u8; 32]>::from(Sha256::digest(b"hello-uns"))));
        assert_eq!(p.resume_point().map(|(o, v)| (o, v.etag)), Some((9, Some("\"v1\"".into()))));
        // Held: a second download of the same URL does not get it.
        assert!(PartFile::resume(d.path(), "r", "http://h/r", true).is_none());
        let q = PartFile::create(d.path(), "r", "http://h/r", true).expect("another part");
        assert_eq!(q.path(), d.path().join("r.part.1"));
        drop((p, q));
        assert!(names(d.path()).is_empty(), "dropped without keep: part and state gone");
    }

    #[test]
    fn a_split_part_file_keeps_its_ranges_and_resumes_them() {
        let d = tempfile::tempdir().expect("tempdir");
        let v = Validators { etag: Some("\"v\"".into()), last_modified: None, total: Some(10) };
        let mut p = PartFile::create(d.path(), "z", "http://h/z", true).expect("part file");
        p.begin_split(v.clone());
        let shared = p.shared().expect("shared");
        shared.write_at(b"789", 7).expect("write");
        shared.write_at(b"01", 0).expect("write");
        let done = RangeSet::from_spans([(0, 2), (7, 10)], 10);
        shared.checkpoint(&done).expect("checkpoint").run().expect("save");
        p.end_split(done.clone(), done.bytes());
        assert!(p.keep());
        drop((p, shared));
        let state = read_state(&d.path().join("z.part.state")).expect("state");
        assert_eq!((state.done, state.ranges), (2, Some(vec![(0, 2), (7, 10)])));

        let mut p = PartFile::resume(d.path(), "z", "http://h/z", true).expect("resumable");
        assert!(p.is_split());
        assert_eq!(p.resume_point(), None, "not a prefix to append to");
        // The last byte is asked for again (it checks the validator).
        let (ranges, validators) = p.split_point().expect("split point");
        assert_eq!((ranges.spans(), validators), (&[(0, 2), (7, 9)][..], v));
        assert_eq!(fs::metadata(p.path()).expect("meta").len(), 10, "nothing cut off");
        let shared = p.shared().expect("shared");
        shared.write_at(b"23456", 2).expect("write");
        shared.write_at(b"9", 9).expect("write");
        p.end_split(RangeSet::from_spans([(0, 10)], 10), 0);
        p.complete_split().expect("digest");
        assert_eq!((p.written(), p.sha256()), (10, Some(<[u8; 32]>::from(Sha256::digest(b"0123456789")))));
        p.sync().expect("sync");
        // What a process killed while writing the state leaves behind.
        fs::write(d.path().join("z.part.state.tmp"), b"{").expect("write");
        assert_eq!(p.commit(d.path(), "z", Collision::Number).expect("commit"), Committed::Saved("z".into()));
        drop(shared);
        assert_eq!(names(d.path()), ["z"]);
    }

    #[test]
    fn a_state_without_this_users_mac_is_not_trusted_nor_one_over_changed_bytes() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut p = resumable(d.path(), "f", "http://h/f", b"hello world");
        assert!(p.keep());
        drop(p);
        let path = d.path().join("f.part.state");
        let genuine = fs::read(&path).expect("state");
        assert_eq!(fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let state: PartState = serde_json::from_slice(&genuine).expect("JSON");
        assert!(state.mac.is_some() && state.tail.is_some(), "{state:?}");
        let another = crate::fetch::seal::Key::random().expect("key");
        let forgeries = [
            // A claim changed under the genuine MAC.
            PartState { done: 5, ..state.clone() },
            // No MAC, or another key's.
            PartState { mac: None, ..state.clone() },
            PartState { mac: Some(another.sign(&state.signed_bytes(&path).expect("bytes"))), ..state.clone() },
        ];
        for forged in forgeries {
            fs::write(&path, serde_json::to_vec(&forged).expect("JSON")).expect("write");
            assert!(read_state(&path).is_none(), "{forged:?}");
            assert!(PartFile::resume(d.path(), "f", "http://h/f", false).is_none(), "{forged:?}");
        }
        // The genuine state moved to another part file's name: not valid there.
        fs::write(d.path().join("f.part.1.state"), &genuine).expect("write");
        assert!(read_state(&d.path().join("f.part.1.state")).is_none());
        // Genuine again, but a byte of the part file changed: starts over.
        fs::write(&path, &genuine).expect("write");
        assert!(read_state(&path).is_some());
        let part = d.path().join("f.part");
        let mut bytes = fs::read(&part).expect("part");
        bytes[8] ^= 1;
        fs::write(&part, bytes).expect("write");
        let p = PartFile::resume(d.path(), "f", "http://h/f", false).expect("opened");
        assert_eq!((p.written(), p.resume_point()), (0, None));
        drop(p);

        // A genuine pair whose part file got a second name (a hard link to a
        // file elsewhere): not touched, let alone cut.
        let mut p = resumable(d.path(), "h", "http://h/h", b"hello world");
        assert!(p.keep());
        drop(p);
        fs::hard_link(d.path().join("h.part"), d.path().join("victim")).expect("link");
        fs::write(d.path().join("victim"), b"precious!!!").expect("write");
        assert!(PartFile::resume(d.path(), "h", "http://h/h", false).is_none());
        assert_eq!(fs::read(d.path().join("victim")).expect("read"), b"precious!!!");
    }

    #[test]
    fn a_state_claiming_more_than_the_file_restarts_and_commit_removes_the_state() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut p = resumable(d.path(), "s", "http://h/s", b"abcdef");
        assert!(p.keep());
        drop(p);
        std::fs::OpenOptions::new().write(true).open(d.path().join("s.part")).expect("open").set_len(3).expect("cut");
        let p = PartFile::resume(d.path(), "s", "http://h/s", true).expect("opened");
        assert_eq!((p.written(), p.resume_point()), (0, None));
        drop(p);
        let mut p = resumable(d.path(), "s", "http://h/s", b"abc");
        assert!(p.keep());
        drop(p);
        let mut p = PartFile::resume(d.path(), "s", "http://h/s", true).expect("resumable");
        p.write(b"defghij").expect("write");
        p.sync().expect("sync");
        assert_eq!(p.commit(d.path(), "s", Collision::Number).expect("commit"), Committed::Saved("s".into()));
        assert_eq!(names(d.path()), ["s"]);
        assert_eq!(fs::read(d.path().join("s")).expect("read"), b"abcdefghij");
    }

    /// Bytes this thread has read with read(2) and pread(2) so far (`None`
    /// without per-thread I/O accounting).
    fn thread_rchar() -> Option<u64> {
        let text = fs::read_to_string("/proc/thread-self/io").ok()?;
        text.lines().find_map(|l| l.strip_prefix("rchar:")).and_then(|v| v.trim().parse().ok())
    }

    /// Bytes read by `f` on this thread, if that can be known.
    fn reads<T>(f: impl FnOnce() -> T) -> (T, Option<u64>) {
        let before = thread_rchar();
        let out = f();
        (out, thread_rchar().zip(before).map(|(after, before)| after - before))
    }

    const MIB: usize = 1 << 20;

    /// A 2 MiB body.
    fn body() -> Vec<u8> {
        (0..2 * MIB).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn sha(bytes: &[u8]) -> Option<[u8; 32]> {
        Some(Sha256::digest(bytes).into())
    }

    #[test]
    fn without_a_digest_nothing_is_hashed_and_the_bytes_are_exact() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut p = PartFile::create(d.path(), "n", "http://h/n", false).expect("part file");
        p.write(b"abc").expect("write");
        assert_eq!((p.written(), p.sha256()), (3, None));
        p.reset().expect("reset");
        p.write(b"xyz").expect("write");
        p.write(b"!").expect("write");
        assert_eq!((p.written(), p.sha256()), (4, None), "still no digest after a reset");
        p.sync().expect("sync");
        assert_eq!(p.commit(d.path(), "n", Collision::Number).expect("commit"), Committed::Saved("n".into()));
        assert_eq!(fs::read(d.path().join("n")).expect("read"), b"xyz!");

        // With a digest, a reset starts it over.
        let mut p = PartFile::create(d.path(), "m", "http://h/m", true).expect("part file");
        p.write(b"abc").expect("write");
        p.reset().expect("reset");
        p.write(b"xyz").expect("write");
        assert_eq!(p.sha256(), sha(b"xyz"));
    }

    /// `DIR/k.part` as a run without a digest leaves it: the first MiB of
    /// `body` checkpointed, then bytes the state does not claim.
    fn kept_prefix(dir: &Path, body: &[u8]) {
        let mut p = PartFile::create(dir, "k", "http://h/k", false).expect("part file");
        let total = Some(body.len() as u64);
        p.set_validators(Some(Validators { etag: Some("\"k\"".into()), last_modified: None, total }));
        p.write(&body[..MIB]).expect("write");
        p.checkpoint().expect("checkpoint");
        assert!(p.keep());
        drop(p);
        let mut f = OpenOptions::new().append(true).open(dir.join("k.part")).expect("open");
        f.write_all(b"not synced").expect("append");
    }

    #[test]
    fn without_a_digest_a_resume_reads_nothing_back() {
        let body = body();
        let d = tempfile::tempdir().expect("tempdir");
        kept_prefix(d.path(), &body);
        let (p, read) = reads(|| PartFile::resume(d.path(), "k", "http://h/k", false));
        let mut p = p.expect("resumable");
        assert!(read.is_none_or(|n| n < 64 * 1024), "{read:?} bytes read: the prefix was read back");
        assert_eq!((p.written(), p.sha256()), (MIB as u64, None));
        assert_eq!(fs::metadata(p.path()).expect("meta").len(), MIB as u64, "cut back to what the state claims");
        assert_eq!(p.resume_point().map(|(offset, _)| offset), Some(MIB as u64));
        p.continued_at(MIB as u64);
        p.write(&body[MIB..]).expect("write");
        p.sync().expect("sync");
        assert_eq!(p.commit(d.path(), "k", Collision::Number).expect("commit"), Committed::Saved("k".into()));
        assert_eq!(fs::read(d.path().join("k")).expect("read"), body);
        assert_eq!(names(d.path()), ["k"]);

        // A file shorter than its state says still starts over.
        let d = tempfile::tempdir().expect("tempdir");
        kept_prefix(d.path(), &body);
        OpenOptions::new().write(true).open(d.path().join("k.part")).expect("open").set_len(100).expect("cut");
        let p = PartFile::resume(d.path(), "k", "http://h/k", false).expect("opened");
        assert_eq!((p.written(), p.resume_point(), p.sha256()), (0, None, None));
        drop(p);

        // Left by a run without a digest, continued by one that wants it:
        // the kept prefix is read back for it.
        let d = tempfile::tempdir().expect("tempdir");
        kept_prefix(d.path(), &body);
        let (p, read) = reads(|| PartFile::resume(d.path(), "k", "http://h/k", true));
        let mut p = p.expect("resumable");
        assert!(read.is_none_or(|n| n >= MIB as u64), "{read:?} bytes read");
        assert_eq!(p.sha256(), sha(&body[..MIB]));
        p.write(&body[MIB..]).expect("write");
        assert_eq!((p.written(), p.sha256()), (body.len() as u64, sha(&body)));
    }

    #[test]
    fn without_a_digest_a_complete_split_file_is_cut_and_not_read_back() {
        let body = body();
        let total = body.len() as u64;
        for digest in [false, true] {
            let d = tempfile::tempdir().expect("tempdir");
            let v = Validators { etag: Some("\"v\"".into()), last_modified: None, total: Some(total) };
            let mut p = PartFile::create(d.path(), "z", "http://h/z", digest).expect("part file");
            p.begin_split(v);
            let shared = p.shared().expect("shared");
            shared.write_at(&body[MIB..], MIB as u64).expect("write");
            shared.write_at(&body[..MIB], 0).expect("write");
            // Past the end (a longer file resumed): cut off.
            shared.write_at(b"beyond", total).expect("write");
            p.end_split(RangeSet::from_spans([(0, total)], total), 0);
            let (done, read) = reads(|| p.complete_split());
            done.expect("complete");
            if digest {
                assert!(read.is_none_or(|n| n >= total), "{read:?} bytes read");
                assert_eq!((p.written(), p.sha256()), (total, sha(&body)));
            } else {
                assert!(read.is_none_or(|n| n < 64 * 1024), "{read:?} bytes read: the file was read back");
                assert_eq!((p.written(), p.sha256()), (total, None));
            }
            assert_eq!(fs::metadata(p.path()).expect("meta").len(), total);
            p.sync().expect("sync");
            assert_eq!(p.commit(d.path(), "z", Collision::Number).expect("commit"), Committed::Saved("z".into()));
            drop(shared);
            assert_eq!(names(d.path()), ["z"]);
            assert_eq!(fs::read(d.path().join("z")).expect("read"), body, "digest: {digest}");
        }
    }

    #[test]
    fn a_directory_is_read_once_for_part_files_of_other_runs() {
        // Held one when first asked: every download looks, and resumes.
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join("old.bin.part"), b"x").expect("write");
        assert!(may_hold_parts(d.path()));
        assert!(PartFile::may_resume(d.path(), "old.bin"));
        assert!(!PartFile::may_resume(d.path(), "new.bin"), "one lookup still says which");
        // Held none: nothing is looked up, even for a part file that
        // appears later (another process's, which it has locked)...
        let d = tempfile::tempdir().expect("tempdir");
        assert!(!may_hold_parts(d.path()));
        fs::write(d.path().join("late.bin.part"), b"x").expect("write");
        assert!(!PartFile::may_resume(d.path(), "late.bin"));
        assert!(PartFile::resume(d.path(), "late.bin", "http://h/x", false).is_none());
        // ...and a new part file takes the next free name.
        let p = PartFile::create(d.path(), "late.bin", "http://h/x", false).expect("part file");
        assert_eq!(p.path(), d.path().join("late.bin.part.1"));
        // One this process keeps is looked up again.
        let mut kept = PartFile::create(d.path(), "k.bin", "http://h/k", false).expect("part file");
        kept.set_validators(Some(Validators { etag: Some("\"e\"".into()), ..Validators::default() }));
        kept.write(b"abc").expect("write");
        kept.checkpoint().expect("checkpoint");
        assert!(kept.keep());
        drop(kept);
        assert!(may_hold_parts(d.path()));
        assert!(PartFile::resume(d.path(), "k.bin", "http://h/k", false).is_some());
    }
}
