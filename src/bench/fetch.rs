//! `trident bench fetch`: every engine, and every peer downloader that is
//! installed (curl, wget2, aria2c), fetching the same generated corpus from
//! the same loopback server, alternating, measured the same way.
//!
//! The corpus is generated once per bench into a temporary directory
//! (deterministic pseudo-random bytes, SHA-256 of every file kept). The
//! server is Debian's nginx, started by the bench with its own config
//! (`sendfile on`, no access log) on a free loopback port; when nginx is
//! missing or does not start, a small built-in server serves instead, and
//! the report header says so (both in [`super::fixture`]).
//!
//! Each contender runs as its own process with [`measure_with_limit`] and
//! downloads into a fresh empty directory; afterwards every expected file is
//! checked (present, size, SHA-256) and anything else in the directory is
//! counted as extra; then the directory is deleted (at the end of the
//! workload when the run wrote many files: see `Runner::dispose`). Before
//! each run, untimed, the file system is synced, so that no run pays for
//! the write-back of another (curl, wget2 and aria2c never sync; trident
//! syncs every file before its rename). Throughput counts only
//! verified files. One warm-up round, then `runs` rounds, the order of the
//! contenders rotating every round; medians per contender and, for each
//! trident engine, its medians over each peer's from the same bench run.
//!
//! The `active` workload (only when asked) measures memory per download in
//! flight: N files of one size (one workload per size), served at a
//! per-connection rate limit on that workload's path only (nginx
//! `limit_rate` in a `location`, or the built-in server's pacing) so each
//! lasts about `--active-duration`; every engine fetches all N at -j N and
//! the first alone at -j 1, alternating, and the report divides the
//! difference of the median peaks by N - 1. While a trident run goes, a
//! thread counts the `.part` files in its directory every 20 ms: the most
//! at once and how long all N were there together show the downloads
//! really overlapped.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

pub use super::fixture::ServerChoice;
use super::fixture::corpus::{self, Expected, verify};
use super::fixture::{FileServer, TempDir};
use super::harness::{self, Cost, Medians, Record, median};
use super::measure::measure_with_limit;
use crate::engine::EngineKind;

const MIB: f64 = 1024.0 * 1024.0;

/// The peer downloaders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// `curl --parallel --parallel-max N -K config` (a `url` and an
    /// `output` per file).
    Curl,
    /// The same, then `sync -f DIR` (its files made durable, as trident's
    /// are before they get their names): what a durable curl costs.
    CurlSync,
    /// `wget2 --max-threads N -i urls.txt -P DIR`.
    Wget2,
    /// `aria2c -j N -i urls.txt -d DIR`.
    Aria2c,
    /// The same with `-x4 -s4` (four connections per file; large files only).
    Aria2cSplit,
}

impl harness::Peer for Peer {
    fn parse(name: &str) -> Result<Self, String> {
        match name {
            "curl" => Ok(Peer::Curl),
            "curl-sync" => Ok(Peer::CurlSync),
            "wget2" => Ok(Peer::Wget2),
            "aria2c" | "aria2" => Ok(Peer::Aria2c),
            "aria2c-x4" => Ok(Peer::Aria2cSplit),
            _ => Err(format!("unknown peer {name:?} (expected curl, curl-sync, wget2, aria2c, aria2c-x4 or none)")),
        }
    }

    fn label(&self) -> String {
        match self {
            Peer::Curl => "curl -Z".into(),
            Peer::CurlSync => "curl -Z + sync".into(),
            Peer::Wget2 => "wget2".into(),
            Peer::Aria2c => "aria2c".into(),
            Peer::Aria2cSplit => "aria2c -x4 -s4".into(),
        }
    }

    fn program(&self) -> &'static str {
        match self {
            Peer::Curl | Peer::CurlSync => "curl",
            Peer::Wget2 => "wget2",
            Peer::Aria2c | Peer::Aria2cSplit => "aria2c",
        }
    }
}

impl Peer {
    /// Whether it takes part in `workload` (splitting 16 KiB files is moot;
    /// the memory workload compares the engines, with curl as the reference).
    fn runs_in(self, workload: &Workload) -> bool {
        match workload.kind {
            WorkloadKind::Small => self != Peer::Aria2cSplit,
            WorkloadKind::Large => true,
            WorkloadKind::Active => self == Peer::Curl,
        }
    }
}

/// A program being compared: `trident fetch -e ENGINE -j N -q -i urls.txt
/// -d DIR`, or a peer.
pub type Contender = harness::Contender<Peer>;

impl Contender {
    /// Whether it takes part in `workload` (splitting 16 KiB files is moot;
    /// the memory workload compares the engines, with curl as the reference).
    fn runs_in(&self, workload: &Workload) -> bool {
        match self {
            Contender::Trident(_) => true,
            Contender::Peer(peer) => peer.runs_in(workload),
        }
    }

    /// The command line downloading the URLs in `urls` (or, for curl, the
    /// config file `curl_config`) into `dir`, `jobs` at once.
    fn command(
        &self,
        exe: &Path,
        jobs: usize,
        urls: &Path,
        curl_config: &Path,
        dir: &Path,
        extra: &[String],
    ) -> Command {
        let mut cmd = Command::new(exe);
        let jobs = jobs.to_string();
        match self {
            Contender::Trident(engine) => {
                cmd.args(["fetch", "-e", engine.name(), "-j", &jobs, "-q", "-i"]).arg(urls).arg("-d").arg(dir);
                cmd.args(extra);
            }
            Contender::Peer(Peer::Curl) => {
                cmd.args(["--parallel", "--parallel-max", &jobs, "--silent", "--show-error", "--fail", "-K"])
                    .arg(curl_config);
            }
            Contender::Peer(Peer::CurlSync) => {
                // sh -c SCRIPT CURL CONFIG DIR: curl, then syncfs of DIR's
                // file system (settled before the run: only curl's writes).
                cmd = Command::new("sh");
                cmd.args(["-c", "\"$0\" --parallel --parallel-max \"$1\" --silent --show-error --fail -K \"$2\" && exec sync -f \"$3\""])
                    .arg(exe)
                    .arg(&jobs)
                    .arg(curl_config)
                    .arg(dir);
            }
            Contender::Peer(Peer::Wget2) => {
                cmd.args(["--max-threads", &jobs, "--quiet", "-i"]).arg(urls).arg("-P").arg(dir);
            }
            Contender::Peer(aria2c @ (Peer::Aria2c | Peer::Aria2cSplit)) => {
                cmd.args(["-j", &jobs, "--quiet", "--console-log-level=error", "-i"]).arg(urls).arg("-d").arg(dir);
                if *aria2c == Peer::Aria2cSplit {
                    cmd.args(["-x4", "-s4"]);
                }
            }
        }
        cmd
    }
}

/// Which corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// Many small files (default 2,000 × 16 KiB at -j 32).
    Small,
    /// A few large files (default 4 × 256 MiB at -j 4).
    Large,
    /// Memory per active download: N files (default 300) of one size, all
    /// at once, served at a per-connection rate limit so that every
    /// download is in flight at the same time; each engine also fetches one
    /// of them with -j 1, and the difference is divided by N - 1.
    Active,
}

impl WorkloadKind {
    /// `small`, `large` or `active`.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Small => "small",
            WorkloadKind::Large => "large",
            WorkloadKind::Active => "active",
        }
    }
}

/// A corpus and the concurrency it is fetched at.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    /// Which one.
    pub kind: WorkloadKind,
    /// Number of files.
    pub files: usize,
    /// Bytes per file.
    pub file_size: u64,
    /// Downloads at once (every contender).
    pub jobs: usize,
    /// Bytes per second per connection the server sends at most (`active`
    /// only: nginx `limit_rate` on this workload's path, or the built-in
    /// server's throttle); `None`: as fast as it can.
    pub rate_limit: Option<u64>,
}

impl Workload {
    /// An `active` workload: `files` files of `file_size` bytes, all at
    /// once, each sent at the rate that makes it last `duration`. nginx's
    /// `limit_rate` lets a response be one second ahead (it allows
    /// `rate × (whole seconds elapsed + 1)` bytes, so the first second's
    /// worth goes at once), and the built-in server does the same: a body
    /// lasts size / rate - 1 s, hence size / (duration + 1 s).
    pub fn active(files: usize, file_size: u64, duration: Duration) -> Self {
        let rate = (file_size as f64 / (duration.as_secs_f64() + 1.0)).ceil().max(1.0) as u64;
        Workload { kind: WorkloadKind::Active, files, file_size, jobs: files, rate_limit: Some(rate) }
    }

    /// The name in reports and the corpus directory / URL path segment:
    /// `small`, `large`, or `active-1m`, `active-256k`... (one per size).
    pub fn name(&self) -> String {
        match self.kind {
            WorkloadKind::Active => format!("active-{}", size_tag(self.file_size)),
            kind => kind.name().to_string(),
        }
    }

    fn total_bytes(&self) -> u64 {
        self.files as u64 * self.file_size
    }

    fn describe(&self) -> String {
        let size = if self.file_size >= 1 << 20 {
            format!("{:.1} MiB", self.file_size as f64 / MIB)
        } else {
            format!("{:.1} KiB", self.file_size as f64 / 1024.0)
        };
        let mut text = format!(
            "{}: {} files x {size} ({:.1} MiB) at {} at once",
            self.name(),
            self.files,
            self.total_bytes() as f64 / MIB,
            self.jobs
        );
        if let Some(rate) = self.rate_limit {
            let _ = write!(
                text,
                ", and 1 file at -j 1; served at {:.1} KiB/s per connection (~{:.1}s per file)",
                rate as f64 / 1024.0,
                (self.file_size as f64 / rate as f64 - 1.0).max(0.0)
            );
        }
        text
    }

    /// Generates its files in ROOT/<name>/.
    fn generate_corpus(&self, root: &Path) -> anyhow::Result<Vec<Expected>> {
        let seed = match self.kind {
            WorkloadKind::Small => 1u64 << 32,
            WorkloadKind::Large => 2u64 << 32,
            WorkloadKind::Active => 3u64 << 32,
        };
        corpus::generate(&root.join(self.name()), (0..self.files).map(|i| self.file_name(i)), self.file_size, seed)
    }

    fn file_name(&self, i: usize) -> String {
        match self.kind {
            WorkloadKind::Small => format!("s{i:05}.bin"),
            WorkloadKind::Large => format!("l{i:02}.bin"),
            WorkloadKind::Active => format!("a{i:05}.bin"),
        }
    }
}

/// `1m`, `256k`, `1000b`: a size as a short path-safe tag.
fn size_tag(bytes: u64) -> String {
    if bytes > 0 && bytes % (1 << 20) == 0 {
        format!("{}m", bytes >> 20)
    } else if bytes > 0 && bytes % 1024 == 0 {
        format!("{}k", bytes >> 10)
    } else {
        format!("{bytes}b")
    }
}

/// `1 MiB`, `256 KiB`, `1000 B`, `1.5 MiB`: a size for tables.
fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        let mib = bytes as f64 / MIB;
        if bytes % (1 << 20) == 0 { format!("{mib:.0} MiB") } else { format!("{mib:.2} MiB") }
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// Options of `trident bench fetch` (validated).
#[derive(Clone, Debug)]
pub struct FetchBenchConfig {
    /// The workloads, in order.
    pub workloads: Vec<Workload>,
    /// Trident engines to run.
    pub engines: Vec<EngineKind>,
    /// Peers to run when installed.
    pub peers: Vec<Peer>,
    /// Recorded rounds.
    pub runs: u32,
    /// Unrecorded rounds first.
    pub warmup: u32,
    /// Which server.
    pub server: ServerChoice,
    /// Extra `trident fetch` arguments.
    pub fetch_args: Vec<String>,
    /// Per-run time limit.
    pub time_limit: Duration,
    /// Where to write runs.csv and summary.json.
    pub out: Option<PathBuf>,
}

/// One measured run.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    /// `small`, `large`, `active-1m`...
    pub workload: String,
    /// Contender label.
    pub tool: String,
    /// Downloads at once (`active`: the workload's N, or 1 for the baseline).
    pub jobs: usize,
    /// Round number (from 1).
    pub run: u32,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// User+system CPU, seconds (children included).
    pub cpu_s: f64,
    /// Peak RSS summed over the process tree, MiB.
    pub peak_rss_mib: f64,
    /// Peak PSS summed over the process tree, MiB.
    pub peak_pss_mib: f64,
    /// Verified files per second of wall time.
    pub files_per_s: f64,
    /// Verified MiB per second of wall time.
    pub mib_per_s: f64,
    /// Files the corpus has.
    pub files_expected: u64,
    /// Files present with the right size and SHA-256.
    pub files_ok: u64,
    /// Expected files absent.
    pub missing: u64,
    /// Expected files of another size.
    pub wrong_size: u64,
    /// Expected files of the right size but other bytes.
    pub wrong_sha256: u64,
    /// Anything else left in the download directory (`.part`, `.aria2`...).
    pub extra: u64,
    /// Killed at the time limit.
    pub timed_out: bool,
    /// Exit code (None: killed by a signal).
    pub exit_code: Option<i32>,
    /// `active`, trident only: the most `.part` files present at once in
    /// the download directory (sampled every 20 ms), i.e. downloads in flight.
    pub in_flight_max: Option<u64>,
    /// `active`, trident only: how long all of the run's downloads were in
    /// flight at the same time, seconds.
    pub all_in_flight_s: Option<f64>,
}

impl Record for RunRecord {
    harness::record_columns!();

    fn clean(&self) -> bool {
        self.files_ok == self.files_expected && self.extra == 0 && self.exit_code == Some(0) && !self.timed_out
    }
}

impl RunRecord {
    fn problems(&self) -> String {
        let mut p = Vec::new();
        for (n, what) in [
            (self.missing, "missing"),
            (self.wrong_size, "wrong size"),
            (self.wrong_sha256, "wrong sha256"),
            (self.extra, "extra"),
        ] {
            if n > 0 {
                p.push(format!("{n} {what}"));
            }
        }
        if self.timed_out {
            p.push("time limit".into());
        } else if self.exit_code != Some(0) {
            p.push(format!("exit {:?}", self.exit_code));
        }
        if p.is_empty() { String::new() } else { format!(" ({})", p.join(", ")) }
    }
}

/// Medians of one contender on one workload.
#[derive(Clone, Debug, Serialize)]
pub struct ToolSummary {
    /// `small` or `large`.
    pub workload: String,
    /// Contender label.
    pub tool: String,
    /// Runs, wall time, CPU, peak memory.
    #[serde(flatten)]
    pub medians: Medians,
    /// Median CPU seconds per GiB of corpus.
    pub cpu_s_per_gib: f64,
    /// Median verified files per second.
    pub files_per_s: f64,
    /// Median verified MiB per second.
    pub mib_per_s: f64,
    /// Worst share of correct files in any run.
    pub min_correct: f64,
    /// Runs with a wrong, missing or extra file, an error exit or a timeout.
    pub bad_runs: usize,
    /// Runs killed at the time limit.
    pub timeouts: usize,
}

/// `active`: memory per download in flight, one contender and file size.
#[derive(Clone, Debug, Serialize)]
pub struct ActiveSummary {
    /// `active-1m`...
    pub workload: String,
    /// Contender label.
    pub tool: String,
    /// Bytes per file.
    pub file_size: u64,
    /// N: files, all fetched at once.
    pub files: usize,
    /// Bytes per second per connection the server sent.
    pub rate_limit: u64,
    /// Recorded runs at -j N (and as many at -j 1).
    pub runs: usize,
    /// Median peak RSS (process tree) fetching N files at -j N, MiB.
    pub peak_rss_n_mib: f64,
    /// Median peak RSS fetching 1 of them at -j 1, MiB.
    pub peak_rss_1_mib: f64,
    /// (peak RSS at N - peak RSS at 1) / (N - 1), KiB.
    pub per_download_rss_kib: f64,
    /// Median peak PSS at -j N, MiB.
    pub peak_pss_n_mib: f64,
    /// Median peak PSS at -j 1, MiB.
    pub peak_pss_1_mib: f64,
    /// (peak PSS at N - peak PSS at 1) / (N - 1), KiB.
    pub per_download_pss_kib: f64,
    /// Median wall time at -j N, seconds.
    pub wall_n_s: f64,
    /// Trident: fewest downloads seen in flight at once at the peak, over
    /// the -j N runs (N when every run had them all going together).
    pub in_flight_min_max: Option<u64>,
    /// Trident: shortest time, over the -j N runs, all N were in flight together, s.
    pub all_in_flight_min_s: Option<f64>,
    /// Runs (either concurrency) with a wrong, missing or extra file, an
    /// error exit or a timeout.
    pub bad_runs: usize,
}

/// A trident engine's medians over a peer's, same workload, same bench run.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// `small` or `large`.
    pub workload: String,
    /// Wall time, CPU and peak RSS.
    #[serde(flatten)]
    pub ratio: harness::Ratio,
    /// Median MiB/s / peer's (above 1: faster).
    pub throughput: f64,
}

/// The whole result, as written to summary.json.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// The server, e.g. `nginx 1.22.1 (sendfile on) at 127.0.0.1:41234`.
    pub server: String,
    /// Whether the built-in server stood in for nginx.
    pub builtin_server: bool,
    /// Where the downloads were written (see `sys::storage`), e.g. `ext4
    /// (no journal) on /dev/vda at /`: small-file results depend on its
    /// flush cost, which only the tools that sync pay.
    pub storage: Option<String>,
    /// The workloads.
    pub workloads: Vec<Workload>,
    /// Every run.
    pub runs: Vec<RunRecord>,
    /// Medians per workload and contender.
    pub summary: Vec<ToolSummary>,
    /// Engines against peers.
    pub ratios: Vec<Ratio>,
    /// `active` workloads: memory per download in flight.
    pub active: Vec<ActiveSummary>,
}

impl BenchReport {
    /// Whether every trident run fetched every file correctly.
    pub fn trident_correct(&self) -> bool {
        self.summary.iter().filter(|s| s.tool.starts_with("trident-")).all(|s| s.bad_runs == 0 && s.min_correct >= 1.0)
            && self.active.iter().filter(|s| s.tool.starts_with("trident-")).all(|s| s.bad_runs == 0)
    }
}

/// Summaries and ratios of one workload's records.
pub fn summarise(
    workload: &Workload,
    tools: &[String],
    runs: &[RunRecord],
    peers: &[String],
) -> (Vec<ToolSummary>, Vec<Ratio>) {
    let gib = workload.total_bytes() as f64 / (MIB * 1024.0);
    let name = workload.name();
    let summary: Vec<ToolSummary> = tools
        .iter()
        .map(|tool| {
            let mine: Vec<&RunRecord> =
                runs.iter().filter(|r| &r.tool == tool && r.workload == name && r.jobs == workload.jobs).collect();
            let pick = |f: fn(&RunRecord) -> f64| median(mine.iter().map(|r| f(r)).collect());
            let medians = Medians::of(&mine);
            ToolSummary {
                workload: name.clone(),
                tool: tool.clone(),
                cpu_s_per_gib: medians.cpu_s / gib,
                medians,
                files_per_s: pick(|r| r.files_per_s),
                mib_per_s: pick(|r| r.mib_per_s),
                min_correct: mine
                    .iter()
                    .map(|r| if r.files_expected == 0 { 1.0 } else { r.files_ok as f64 / r.files_expected as f64 })
                    .fold(f64::INFINITY, f64::min),
                bad_runs: mine.iter().filter(|r| !r.clean()).count(),
                timeouts: mine.iter().filter(|r| r.timed_out).count(),
            }
        })
        .collect();
    let ratios = harness::engine_peer_pairs(&summary, |s| &s.tool, peers)
        .into_iter()
        .map(|(s, p)| Ratio {
            workload: name.clone(),
            ratio: harness::Ratio::new(&s.tool, &p.tool, &s.medians, &p.medians),
            throughput: s.mib_per_s / p.mib_per_s,
        })
        .collect();
    (summary, ratios)
}

/// An `active` workload's memory per download, per contender: medians of
/// the -j N and the -j 1 runs, and their difference over N - 1.
pub fn summarise_active(workload: &Workload, tools: &[String], runs: &[RunRecord]) -> Vec<ActiveSummary> {
    let name = workload.name();
    let others = workload.files.saturating_sub(1).max(1) as f64;
    tools
        .iter()
        .map(|tool| {
            let at = |jobs: usize| -> Vec<&RunRecord> {
                runs.iter().filter(|r| &r.tool == tool && r.workload == name && r.jobs == jobs).collect()
            };
            let (n, one) = (at(workload.jobs), at(1));
            let pick = |rs: &[&RunRecord], f: fn(&RunRecord) -> f64| median(rs.iter().map(|r| f(r)).collect());
            let (rss_n, rss_1) = (pick(&n, |r| r.peak_rss_mib), pick(&one, |r| r.peak_rss_mib));
            let (pss_n, pss_1) = (pick(&n, |r| r.peak_pss_mib), pick(&one, |r| r.peak_pss_mib));
            ActiveSummary {
                workload: name.clone(),
                tool: tool.clone(),
                file_size: workload.file_size,
                files: workload.files,
                rate_limit: workload.rate_limit.unwrap_or(0),
                runs: n.len(),
                peak_rss_n_mib: rss_n,
                peak_rss_1_mib: rss_1,
                per_download_rss_kib: (rss_n - rss_1) * 1024.0 / others,
                peak_pss_n_mib: pss_n,
                peak_pss_1_mib: pss_1,
                per_download_pss_kib: (pss_n - pss_1) * 1024.0 / others,
                wall_n_s: pick(&n, |r| r.wall_s),
                in_flight_min_max: n.iter().filter_map(|r| r.in_flight_max).min(),
                all_in_flight_min_s: n.iter().filter_map(|r| r.all_in_flight_s).min_by(f64::total_cmp),
                bad_runs: n.iter().chain(&one).filter(|r| !r.clean()).count(),
            }
        })
        .collect()
}

/// The rate-limited URL path prefixes: `/NAME/` and its bytes per second,
/// for every workload with a rate limit.
fn rate_limits(workloads: &[Workload]) -> Vec<(String, u64)> {
    workloads.iter().filter_map(|w| Some((format!("/{}/", w.name()), w.rate_limit?))).collect()
}

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
struct Runner<'a> {
    config: &'a FetchBenchConfig,
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
fn settle(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir)?;
    // SAFETY: syncfs on a descriptor we own; no memory passed.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

impl Runner<'_> {
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
    fn remove_deferred(&mut self) -> anyhow::Result<()> {
        for dir in self.deferred.drain(..) {
            fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        self.deferred_bytes = 0;
        Ok(())
    }

    /// One measured run: `contender` fetching `expected` (of `workload`),
    /// `jobs` at once, into a fresh directory that is checked and removed.
    /// Also returns the first line of its stderr.
    fn run_one(
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
        let mut cmd = contender.command(exe, jobs, &urls, &curl_config, &dir, &self.config.fetch_args);
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

/// Runs the bench, printing as it goes; returns the report.
pub fn run(config: &FetchBenchConfig) -> anyhow::Result<BenchReport> {
    if config.workloads.is_empty() {
        bail!("nothing to run");
    }
    let peers = config.peers.iter().filter(|p| config.workloads.iter().any(|w| p.runs_in(w)));
    let contenders = harness::line_up(&config.engines, peers.copied())?;
    let work = TempDir::new("trident-bench-fetch")?;
    let work_dir = work.path();
    let corpus = work_dir.join("corpus");
    fs::create_dir(&corpus)?;
    fs::set_permissions(&corpus, fs::Permissions::from_mode(0o755))?;
    let started = Instant::now();
    let mut expected = Vec::new();
    for w in &config.workloads {
        expected.push(w.generate_corpus(&corpus)?);
    }
    let first = &config.workloads[0];
    let probe_path = format!("/{}/{}", first.name(), first.file_name(0));
    let limits = rate_limits(&config.workloads);
    let (_server, port, server_text) = FileServer::start(config.server, &corpus, work_dir, &probe_path, &limits)?;
    println!("bench fetch: server {server_text}");
    let storage = crate::sys::storage(work_dir);
    println!("bench fetch: files written to {}", storage.as_deref().unwrap_or("(storage unknown)"));
    println!(
        "corpus generated in {:.1}s under {}; {} warm-up + {} runs each, alternating",
        started.elapsed().as_secs_f64(),
        corpus.display(),
        config.warmup,
        config.runs
    );

    let mut runner = Runner { config, work: work_dir, port, seq: 0, deferred: Vec::new(), deferred_bytes: 0 };
    let mut records = Vec::new();
    let mut summary = Vec::new();
    let mut ratios = Vec::new();
    let mut active = Vec::new();
    for (workload, expected) in config.workloads.iter().zip(&expected) {
        let is_active = workload.kind == WorkloadKind::Active;
        let mine: Vec<&(Contender, PathBuf)> = contenders.iter().filter(|(c, _)| c.runs_in(workload)).collect();
        if mine.is_empty() {
            continue;
        }
        // Each contender at the workload's concurrency; `active` also at -j 1
        // on the first file (the baseline the per-download figure is over).
        let mut items: Vec<(&(Contender, PathBuf), usize)> = Vec::new();
        for c in &mine {
            items.push((c, workload.jobs));
            if is_active {
                items.push((c, 1));
            }
        }
        println!("\n{}", workload.describe());
        let tool_width = if is_active { 24 } else { 18 };
        println!("{} {:>9} {:>9} {:>11}", harness::run_header(tool_width), "FILES/S", "MIB/S", "CORRECT");
        harness::rotate(&items, config.warmup, config.runs, |&((contender, exe), jobs), run| {
            let files = if jobs == workload.jobs { &expected[..] } else { &expected[..1] };
            let (rec, first_err) = runner.run_one(workload, (*contender, exe), jobs, files, run)?;
            let tool = if is_active { format!("{} -j{jobs}", rec.tool) } else { rec.tool.clone() };
            let in_flight = match (rec.in_flight_max, rec.all_in_flight_s) {
                (Some(max), Some(all)) => format!("  in flight: max {max}, all {all:.1}s"),
                _ => String::new(),
            };
            println!(
                "{} {:>9.0} {:>9.1} {:>11}{}{}{in_flight}",
                harness::run_row(run, &tool, tool_width, &rec.cost()),
                rec.files_per_s,
                rec.mib_per_s,
                format!("{}/{}", rec.files_ok, rec.files_expected),
                rec.problems(),
                if rec.clean() || first_err.is_empty() { String::new() } else { format!(": {first_err}") }
            );
            if run > 0 {
                records.push(rec);
            }
            Ok(())
        })?;
        runner.remove_deferred()?;
        let (labels, peers) = harness::labels(&mine);
        let (s, r) = summarise(workload, &labels, &records, &peers);
        summary.extend(s);
        ratios.extend(r);
        if is_active {
            active.extend(summarise_active(workload, &labels, &records));
        }
    }

    let wl_width = summary.iter().map(|s| s.workload.len()).max().unwrap_or(0).max(6);
    println!();
    println!(
        "{:<wl_width$} {:<18} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>8}",
        "MEDIAN", "TOOL", "WALL", "CPU", "CPU/GiB", "PEAK RSS", "PEAK PSS", "FILES/S", "MIB/S", "CORRECT"
    );
    for s in &summary {
        println!(
            "{:<wl_width$} {:<18} {:>8.3}s {:>8.3}s {:>8.2}s {:>6.1} MiB {:>6.1} MiB {:>9.0} {:>9.1} {:>7.1}%{}",
            s.workload,
            s.tool,
            s.medians.wall_s,
            s.medians.cpu_s,
            s.cpu_s_per_gib,
            s.medians.peak_rss_mib,
            s.medians.peak_pss_mib,
            s.files_per_s,
            s.mib_per_s,
            s.min_correct * 100.0,
            if s.bad_runs > 0 {
                format!("  ({} of {} runs not clean)", s.bad_runs, s.medians.runs)
            } else {
                String::new()
            }
        );
    }
    if !ratios.is_empty() {
        println!();
        println!(
            "{:<wl_width$} {:<18} {:<16} {:>7} {:>7} {:>9} {:>10}",
            "RATIO", "(median/median)", "VS", "WALL", "CPU", "PEAK RSS", "THROUGHPUT"
        );
        for r in &ratios {
            println!(
                "{:<wl_width$} {:<18} {:<16} {:>6.3}x {:>6.3}x {:>8.3}x {:>9.3}x",
                r.workload, r.ratio.tool, r.ratio.peer, r.ratio.wall, r.ratio.cpu, r.ratio.peak_rss, r.throughput
            );
        }
    }
    if !active.is_empty() {
        print_active(&active);
    }
    let report = BenchReport {
        builtin_server: _server.is_builtin(),
        server: server_text,
        storage,
        workloads: config.workloads.clone(),
        runs: records,
        summary,
        ratios,
        active,
    };
    if let Some(dir) = &config.out {
        super::harness::write_out(dir, &report.runs, &report)?;
        println!("\nwrote {}/runs.csv and {}/summary.json", dir.display(), dir.display());
    }
    Ok(report)
}

/// The goal of issue 4 §4: peak RSS per active download at most this far
/// above the process with one download, KiB.
const PER_DOWNLOAD_GOAL_KIB: f64 = 256.0;

/// The `active` table: peak memory at N and at 1, and per download.
fn print_active(active: &[ActiveSummary]) {
    println!();
    println!(
        "PER ACTIVE DOWNLOAD: median peak of the process tree at -j N (N files at once) and at -j 1 (one of them); \
         per download = (N - 1 difference) / (N - 1)"
    );
    println!(
        "{:<18} {:>8} {:>5} {:>11} {:>11} {:>13} {:>11} {:>11} {:>13} {:>14} {:>5}",
        "ENGINE",
        "SIZE",
        "N",
        "PEAK RSS N",
        "PEAK RSS 1",
        "PER DOWNLOAD",
        "PEAK PSS N",
        "PEAK PSS 1",
        "PSS/DOWNLOAD",
        "ALL IN FLIGHT",
        "GOAL"
    );
    for a in active {
        let flight = match (a.in_flight_min_max, a.all_in_flight_min_s) {
            (Some(max), Some(s)) if max as usize >= a.files => format!("{s:.1}s"),
            (Some(max), _) => format!("only {max}"),
            _ => "-".into(),
        };
        println!(
            "{:<18} {:>8} {:>5} {:>7.1} MiB {:>7.1} MiB {:>9.1} KiB {:>7.1} MiB {:>7.1} MiB {:>9.1} KiB {:>14} {:>5}{}",
            a.tool,
            human_size(a.file_size),
            a.files,
            a.peak_rss_n_mib,
            a.peak_rss_1_mib,
            a.per_download_rss_kib,
            a.peak_pss_n_mib,
            a.peak_pss_1_mib,
            a.per_download_pss_kib,
            flight,
            if a.per_download_rss_kib <= PER_DOWNLOAD_GOAL_KIB { "met" } else { "over" },
            match a.bad_runs {
                0 => String::new(),
                bad => format!("  ({bad} runs not clean)"),
            }
        );
    }
    println!("GOAL: per download (RSS) <= {PER_DOWNLOAD_GOAL_KIB:.0} KiB and independent of file size (issue 4 §4)");
    let mut tools: Vec<&str> = Vec::new();
    for a in active {
        if !tools.contains(&a.tool.as_str()) {
            tools.push(&a.tool);
        }
    }
    for tool in tools {
        let mine: Vec<&ActiveSummary> = active.iter().filter(|a| a.tool == tool).collect();
        if let (Some(small), Some(big)) =
            (mine.iter().min_by_key(|a| a.file_size), mine.iter().max_by_key(|a| a.file_size))
            && small.file_size != big.file_size
        {
            println!(
                "  {tool}: per download {} -> {}: {:.1} -> {:.1} KiB ({:+.1} KiB)",
                human_size(small.file_size),
                human_size(big.file_size),
                small.per_download_rss_kib,
                big.per_download_rss_kib,
                big.per_download_rss_kib - small.per_download_rss_kib
            );
        }
    }
    if active.iter().any(|a| a.in_flight_min_max.is_some_and(|m| (m as usize) < a.files)) {
        println!("  note: not every download was in flight at once in some run; raise --active-duration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(files: usize) -> Workload {
        Workload { kind: WorkloadKind::Small, files, file_size: 1000, jobs: 4, rate_limit: None }
    }

    #[test]
    fn active_workloads_are_rate_limited_on_their_path_only() {
        let w = Workload::active(300, 8 << 20, Duration::from_secs(3));
        assert_eq!((w.name(), w.jobs, w.rate_limit), ("active-8m".to_string(), 300, Some(2 << 20)));
        assert_eq!(Workload::active(20, 256 << 10, Duration::from_secs(3)).name(), "active-256k");
        assert_eq!(
            (human_size(256 << 10), human_size(8 << 20), human_size(1000)),
            ("256 KiB".into(), "8 MiB".into(), "1000 B".into())
        );
        let limits = rate_limits(&[small(1), w]);
        assert_eq!(limits, [("/active-8m/".to_string(), 2 << 20)]);
        let conf = crate::bench::fixture::nginx::config(Path::new("/w"), Path::new("/r"), 1234, &limits);
        assert!(conf.contains("location /active-8m/ { limit_rate 2097152; }"), "{conf}");
        // 150,000 bytes lasting 500 ms: one second's worth at once, then the rate.
        assert_eq!(Workload::active(2, 150_000, Duration::from_millis(500)).rate_limit, Some(100_000));
    }

    #[test]
    fn ratios_and_peer_commands() {
        let w = small(10);
        let rec = |tool: &str, wall: f64, ok: u64| RunRecord {
            workload: "small".into(),
            tool: tool.into(),
            jobs: 4,
            run: 1,
            wall_s: wall,
            cpu_s: wall,
            peak_rss_mib: 10.0,
            peak_pss_mib: 10.0,
            files_per_s: ok as f64 / wall,
            mib_per_s: ok as f64 / wall,
            files_expected: 10,
            files_ok: ok,
            missing: 10 - ok,
            wrong_size: 0,
            wrong_sha256: 0,
            extra: 0,
            timed_out: false,
            exit_code: Some(0),
            in_flight_max: None,
            all_in_flight_s: None,
        };
        let runs = vec![rec("t", 1.0, 10), rec("t", 3.0, 10), rec("p", 4.0, 10), rec("p", 2.0, 9)];
        let (s, r) = summarise(&w, &["t".into(), "p".into()], &runs, &["p".into()]);
        assert_eq!((s[0].medians.wall_s, s[1].medians.wall_s), (2.0, 3.0));
        assert_eq!((s[0].bad_runs, s[1].bad_runs), (0, 1));
        assert!((s[1].min_correct - 0.9).abs() < 1e-9);
        assert!((r[0].ratio.wall - 2.0 / 3.0).abs() < 1e-9);

        let args = |c: Contender| {
            c.command(Path::new("x"), 32, Path::new("u.txt"), Path::new("c.cfg"), Path::new("d"), &[])
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert!(args(Contender::Peer(Peer::Curl)).windows(2).any(|w| w == ["--parallel-max", "32"]));
        assert!(args(Contender::Peer(Peer::Curl)).windows(2).any(|w| w == ["-K", "c.cfg"]));
        let durable = args(Contender::Peer(Peer::CurlSync));
        assert_eq!(durable[..2], ["-c".to_string(), durable[1].clone()]);
        assert!(durable[1].ends_with("&& exec sync -f \"$3\""), "{durable:?}");
        assert_eq!(durable[2..], ["x", "32", "c.cfg", "d"]);
        assert!(args(Contender::Peer(Peer::Wget2)).windows(2).any(|w| w == ["-P", "d"]));
        let split = args(Contender::Peer(Peer::Aria2cSplit));
        assert!(split.contains(&"-x4".to_string()) && split.windows(2).any(|w| w == ["-j", "32"]));
        let t = args(Contender::Trident(EngineKind::Threads));
        assert_eq!(t[..5], ["fetch", "-e", "threads", "-j", "32"]);
        assert!(!Contender::Peer(Peer::Aria2cSplit).runs_in(&w));
    }
}
