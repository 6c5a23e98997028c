//! How one fetch bench run goes: the URL list (and curl's config) for the
//! files it must fetch, a fresh download directory, the file system synced
//! first (untimed), the measured contender, the check of what it left, and
//! the directory's removal, deferred for runs of many files (see
//! [`Runner::dispose`]). While a trident `active` run goes, a thread counts
//! its `.part` files: the downloads really overlapped.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::record::RunRecord;
use super::{Contender, FetchBenchConfig, MIB, Peer, RunFiles, Workload, WorkloadKind};
use crate::bench::chapter::Programs;
use crate::bench::fixture::corpus::{Expected, verify};
use crate::bench::harness::Cost;
use crate::bench::measure::measure_with_limit;

/// Counts `.part` files in `dir` every 20 ms until `stop`: the most seen at
/// once, and for how long at least `want` were there together (seconds).
fn watch_in_flight(dir: PathBuf, want: usize, stop: Arc<AtomicBool>) -> thread::JoinHandle<(u64, f64)> {
    thread::spawn(move || {
        let (mut max, mut all) = (0u64, Duration::ZERO);
        let mut since: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let parts = fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| e.file_name().as_encoded_bytes().ends_with(b".part"))
                        .count()
                })
                .unwrap_or(0);
            let now = Instant::now();
            max = max.max(parts as u64);
            if parts >= want {
                since.get_or_insert(now);
            } else if let Some(from) = since.take() {
                all += now - from;
            }
            thread::sleep(Duration::from_millis(20));
        }
        if let Some(from) = since {
            all += from.elapsed();
        }
        (max, all.as_secs_f64())
    })
}

/// What every run of a bench shares.
pub(super) struct Runner<'a> {
    config: &'a FetchBenchConfig,
    /// The chapter's programs, written out for the bench.
    programs: &'a Programs,
    work: &'a Path,
    port: u16,
    seq: u32,
    /// Download directories whose removal waits for the end of the
    /// workload (see [`Runner::dispose`]), and their bytes.
    deferred: Vec<PathBuf>,
    deferred_bytes: u64,
}

/// A run with more files than this leaves its directory until the end of
/// the workload ([`Runner::dispose`]), within [`DEFER_BUDGET`] bytes.
const DEFER_FILES: usize = 64;
const DEFER_BUDGET: u64 = 4 << 30;

/// Flushes everything dirty on the file system holding `dir` (`syncfs`):
/// every run starts with nothing left to write back from earlier ones.
pub(crate) fn settle(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir)?;
    // SAFETY: syncfs on a descriptor we own; no memory passed.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

impl<'a> Runner<'a> {
    /// Runs `config`'s contenders in `work`, against the server on
    /// 127.0.0.1:`port`; the chapter's from `programs`.
    pub(super) fn new(config: &'a FetchBenchConfig, work: &'a Path, port: u16, programs: &'a Programs) -> Self {
        Runner { config, programs, work, port, seq: 0, deferred: Vec::new(), deferred_bytes: 0 }
    }

    /// Done with a run's directory. Each run must find the file system as
    /// the first did, or later runs pay for earlier ones: ext4 without a
    /// journal skips an inode freed less than 60 s ago (300 s while its
    /// inode table block is dirty) when it allocates one (its
    /// `recently_deleted` check reads the inode table block by block), so
    /// the 2,000 files of a small run created right after the previous
    /// run's 2,000 were deleted cost curl 4x the system time (0.11 s ->
    /// 0.45 s here). So a run with many files keeps its directory until
    /// the workload ends (within 4 GiB); one with few large files has it
    /// removed at once.
    fn dispose(&mut self, dir: PathBuf, files: usize, bytes: u64) -> anyhow::Result<()> {
        if files > DEFER_FILES && self.deferred_bytes + bytes <= DEFER_BUDGET {
            self.deferred.push(dir);
            self.deferred_bytes += bytes;
            return Ok(());
        }
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))
    }

    /// Removes the directories kept by [`dispose`](Self::dispose).
    pub(super) fn remove_deferred(&mut self) -> anyhow::Result<()> {
        for dir in self.deferred.drain(..) {
            fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        self.deferred_bytes = 0;
        Ok(())
    }

    /// One measured run: `contender` fetching `expected` (of `workload`),
    /// `jobs` at once, into a fresh directory that is checked and removed.
    /// Also returns the first line of its stderr.
    pub(super) fn run_one(
        &mut self,
        workload: &Workload,
        (contender, exe): (Contender, &Path),
        jobs: usize,
        expected: &[Expected],
        run: u32,
    ) -> anyhow::Result<(RunRecord, String)> {
        let name = workload.name();
        self.seq += 1;
        let urls = self.work.join(format!("urls-{name}-{}.txt", expected.len()));
        let mut list = String::new();
        for e in expected {
            let _ = writeln!(list, "http://127.0.0.1:{}/{name}/{}", self.port, e.name);
        }
        fs::write(&urls, &list)?;
        let curl_config = self.work.join(format!("curl-{name}.cfg"));
        let dir = self.work.join(format!("dl-{name}-{}", self.seq));
        fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if matches!(contender, Contender::Peer(Peer::Curl | Peer::CurlSync)) {
            let mut cfg = String::new();
            for (e, url) in expected.iter().zip(list.lines()) {
                let _ = writeln!(cfg, "url = \"{url}\"\noutput = \"{}\"", dir.join(&e.name).display());
            }
            fs::write(&curl_config, cfg)?;
        }
        let files = RunFiles { urls: &urls, curl_config: &curl_config, dir: &dir };
        let mut cmd = contender.command(exe, jobs, &files, &self.config.fetch_args, self.programs);
        // Not timed: the write-back of earlier runs (peers that never sync
        // leave theirs dirty) would otherwise land on whoever syncs next.
        settle(self.work).with_context(|| format!("cannot sync the file system of {}", self.work.display()))?;
        // Only where it is the point: reading the directory costs a little CPU.
        let is_active = workload.kind == WorkloadKind::Active;
        let watch = (is_active && !contender.is_peer()).then(|| {
            let stop = Arc::new(AtomicBool::new(false));
            (Arc::clone(&stop), watch_in_flight(dir.clone(), expected.len(), stop))
        });
        let m = measure_with_limit(&mut cmd, Some(self.config.time_limit));
        let in_flight = watch.map(|(stop, h)| {
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap_or_default()
        });
        let m = m.with_context(|| format!("cannot run {}", contender.label()))?;
        let check = verify(&dir, expected).with_context(|| format!("cannot check {}", dir.display()))?;
        self.dispose(dir, expected.len(), expected.iter().map(|e| e.size).sum())?;
        let Cost { wall_s, cpu_s, peak_rss_mib, peak_pss_mib } = Cost::from(&m);
        let rec = RunRecord {
            workload: name,
            tool: contender.label(),
            jobs,
            run,
            wall_s,
            cpu_s,
            peak_rss_mib,
            peak_pss_mib,
            files_per_s: check.ok as f64 / wall_s,
            mib_per_s: check.ok_bytes as f64 / MIB / wall_s,
            files_expected: expected.len() as u64,
            files_ok: check.ok,
            missing: check.missing,
            wrong_size: check.wrong_size,
            wrong_sha256: check.wrong_sha256,
            extra: check.extra,
            timed_out: m.timed_out,
            exit_code: m.exit_code,
            in_flight_max: in_flight.map(|f| f.0),
            all_in_flight_s: in_flight.map(|f| f.1),
        };
        let stderr = String::from_utf8_lossy(&m.stderr);
        let first_err = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
        Ok((rec, first_err))
    }
}
