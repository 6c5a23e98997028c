//! `trident bench fetch`: every engine, and every peer downloader that is
//! installed (curl, wget2, aria2c), fetching the same generated corpus from
//! the same loopback server, alternating, measured the same way.
//!
//! The corpus is generated once per bench into a temporary directory
//! (deterministic pseudo-random bytes, SHA-256 of every file kept). The
//! server is Debian's nginx, started by the bench with its own config
//! (`sendfile on`, no access log) on a free loopback port; when nginx is
//! missing or does not start, a small built-in server ([`StaticServer`]:
//! std threads, a thread per connection, keep-alive, single ranges, bodies
//! through `std::io::copy`, which is `sendfile` on Linux) serves instead,
//! and the report header says so.
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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::measure::measure_with_limit;
use super::report::{find_program, median};
use crate::engine::EngineKind;

const MIB: f64 = 1024.0 * 1024.0;

/// A program being compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    /// `trident fetch -e ENGINE -j N -q -i urls.txt -d DIR`.
    Trident(EngineKind),
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

impl Contender {
    /// The name in reports.
    pub fn label(&self) -> String {
        match self {
            Contender::Trident(e) => format!("trident-{e}"),
            Contender::Curl => "curl -Z".into(),
            Contender::CurlSync => "curl -Z + sync".into(),
            Contender::Wget2 => "wget2".into(),
            Contender::Aria2c => "aria2c".into(),
            Contender::Aria2cSplit => "aria2c -x4 -s4".into(),
        }
    }

    fn is_peer(&self) -> bool {
        !matches!(self, Contender::Trident(_))
    }

    /// Parses a `--vs` name.
    pub fn peer(name: &str) -> Result<Self, String> {
        match name {
            "curl" => Ok(Contender::Curl),
            "curl-sync" => Ok(Contender::CurlSync),
            "wget2" => Ok(Contender::Wget2),
            "aria2c" | "aria2" => Ok(Contender::Aria2c),
            "aria2c-x4" => Ok(Contender::Aria2cSplit),
            _ => Err(format!("unknown peer {name:?} (expected curl, curl-sync, wget2, aria2c, aria2c-x4 or none)")),
        }
    }

    fn program(&self) -> &'static str {
        match self {
            Contender::Trident(_) => "trident",
            Contender::Curl | Contender::CurlSync => "curl",
            Contender::Wget2 => "wget2",
            Contender::Aria2c | Contender::Aria2cSplit => "aria2c",
        }
    }

    /// Whether it takes part in `workload` (splitting 16 KiB files is moot;
    /// the memory workload compares the engines, with curl as the reference).
    fn runs_in(&self, workload: &Workload) -> bool {
        match workload.kind {
            WorkloadKind::Small => *self != Contender::Aria2cSplit,
            WorkloadKind::Large => true,
            WorkloadKind::Active => matches!(self, Contender::Trident(_) | Contender::Curl),
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
            Contender::Curl => {
                cmd.args(["--parallel", "--parallel-max", &jobs, "--silent", "--show-error", "--fail", "-K"])
                    .arg(curl_config);
            }
            Contender::CurlSync => {
                // sh -c SCRIPT CURL CONFIG DIR: curl, then syncfs of DIR's
                // file system (settled before the run: only curl's writes).
                cmd = Command::new("sh");
                cmd.args(["-c", "\"$0\" --parallel --parallel-max \"$1\" --silent --show-error --fail -K \"$2\" && exec sync -f \"$3\""])
                    .arg(exe)
                    .arg(&jobs)
                    .arg(curl_config)
                    .arg(dir);
            }
            Contender::Wget2 => {
                cmd.args(["--max-threads", &jobs, "--quiet", "-i"]).arg(urls).arg("-P").arg(dir);
            }
            Contender::Aria2c | Contender::Aria2cSplit => {
                cmd.args(["-j", &jobs, "--quiet", "--console-log-level=error", "-i"]).arg(urls).arg("-d").arg(dir);
                if *self == Contender::Aria2cSplit {
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

/// Which server to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerChoice {
    /// nginx if it starts, else the built-in server.
    Auto,
    /// nginx or fail.
    Nginx,
    /// The built-in server.
    Builtin,
}

impl std::str::FromStr for ServerChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ServerChoice::Auto),
            "nginx" => Ok(ServerChoice::Nginx),
            "builtin" => Ok(ServerChoice::Builtin),
            _ => Err(format!("unknown server {s:?} (expected auto, nginx or builtin)")),
        }
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
    pub peers: Vec<Contender>,
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

impl RunRecord {
    fn correct(&self) -> bool {
        self.files_ok == self.files_expected && self.extra == 0 && self.exit_code == Some(0) && !self.timed_out
    }

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
    /// Runs recorded.
    pub runs: usize,
    /// Median wall time, seconds.
    pub wall_s: f64,
    /// Median CPU, seconds.
    pub cpu_s: f64,
    /// Median CPU seconds per GiB of corpus.
    pub cpu_s_per_gib: f64,
    /// Median peak RSS, MiB.
    pub peak_rss_mib: f64,
    /// Median peak PSS, MiB.
    pub peak_pss_mib: f64,
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
    /// The trident engine.
    pub tool: String,
    /// The peer.
    pub peer: String,
    /// Median wall / peer's (below 1: faster).
    pub wall: f64,
    /// Median CPU / peer's.
    pub cpu: f64,
    /// Median peak RSS / peer's.
    pub peak_rss: f64,
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
            ToolSummary {
                workload: name.clone(),
                tool: tool.clone(),
                runs: mine.len(),
                wall_s: pick(|r| r.wall_s),
                cpu_s: pick(|r| r.cpu_s),
                cpu_s_per_gib: pick(|r| r.cpu_s) / gib,
                peak_rss_mib: pick(|r| r.peak_rss_mib),
                peak_pss_mib: pick(|r| r.peak_pss_mib),
                files_per_s: pick(|r| r.files_per_s),
                mib_per_s: pick(|r| r.mib_per_s),
                min_correct: mine
                    .iter()
                    .map(|r| if r.files_expected == 0 { 1.0 } else { r.files_ok as f64 / r.files_expected as f64 })
                    .fold(f64::INFINITY, f64::min),
                bad_runs: mine.iter().filter(|r| !r.correct()).count(),
                timeouts: mine.iter().filter(|r| r.timed_out).count(),
            }
        })
        .collect();
    let mut ratios = Vec::new();
    for s in summary.iter().filter(|s| !peers.contains(&s.tool)) {
        for p in summary.iter().filter(|p| peers.contains(&p.tool)) {
            ratios.push(Ratio {
                workload: name.clone(),
                tool: s.tool.clone(),
                peer: p.tool.clone(),
                wall: s.wall_s / p.wall_s,
                cpu: s.cpu_s / p.cpu_s,
                peak_rss: s.peak_rss_mib / p.peak_rss_mib,
                throughput: s.mib_per_s / p.mib_per_s,
            });
        }
    }
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
                bad_runs: n.iter().chain(&one).filter(|r| !r.correct()).count(),
            }
        })
        .collect()
}

/// A directory removed (with everything in it) when dropped.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        // Readable by nginx's workers, which run as nobody when we are root.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A file the contenders must end up with.
#[derive(Clone, Debug)]
pub struct Expected {
    /// File name (also the URL's last segment).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
}

/// Writes `size` deterministic pseudo-random bytes (seeded by `seed`) to
/// `path`; returns their SHA-256.
fn write_pseudo_random(path: &Path, size: u64, seed: u64) -> io::Result<[u8; 32]> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut hasher = Sha256::new();
    let mut file = File::create(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let word = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.set_permissions(fs::Permissions::from_mode(0o644))?;
    Ok(hasher.finalize().into())
}

/// Generates `workload`'s files in ROOT/<workload name>/.
pub fn generate_corpus(root: &Path, workload: &Workload) -> anyhow::Result<Vec<Expected>> {
    let dir = root.join(workload.name());
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    let base = match workload.kind {
        WorkloadKind::Small => 1u64 << 32,
        WorkloadKind::Large => 2u64 << 32,
        WorkloadKind::Active => 3u64 << 32,
    };
    (0..workload.files)
        .map(|i| {
            let name = workload.file_name(i);
            let sha256 = write_pseudo_random(&dir.join(&name), workload.file_size, base + i as u64)
                .with_context(|| format!("cannot write the corpus in {}", dir.display()))?;
            Ok(Expected { name, size: workload.file_size, sha256 })
        })
        .collect()
}

/// What a download directory holds compared with the corpus.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Check {
    /// Files present with the right size and SHA-256.
    pub ok: u64,
    /// Their bytes.
    pub ok_bytes: u64,
    /// Expected files absent.
    pub missing: u64,
    /// Expected files of another size.
    pub wrong_size: u64,
    /// Right size, wrong bytes.
    pub wrong_sha256: u64,
    /// Entries that are not expected files.
    pub extra: u64,
}

fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

/// Checks `dir` against `expected` (a missing directory: everything missing).
pub fn verify(dir: &Path, expected: &[Expected]) -> io::Result<Check> {
    let mut check = Check::default();
    let mut present: HashMap<String, fs::Metadata> = HashMap::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                present.insert(entry.file_name().to_string_lossy().into_owned(), entry.metadata()?);
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for exp in expected {
        match present.remove(&exp.name) {
            None => check.missing += 1,
            Some(m) if !m.is_file() || m.len() != exp.size => check.wrong_size += 1,
            Some(_) if sha256_file(&dir.join(&exp.name))? != exp.sha256 => check.wrong_sha256 += 1,
            Some(_) => {
                check.ok += 1;
                check.ok_bytes += exp.size;
            }
        }
    }
    check.extra = present.len() as u64;
    Ok(check)
}

/// The built-in static file server: a thread per connection, HTTP/1.1
/// keep-alive, GET and HEAD, one `bytes=` range; file bodies go through
/// `std::io::copy` from the file to the socket (sendfile on Linux), or, for
/// a path under a rate-limited prefix, are written in paced chunks (the
/// per-connection `limit_rate` of nginx). Serves ROOT's files whose path
/// segments are `[A-Za-z0-9._-]` and do not start with a dot. Stops
/// accepting when dropped.
#[derive(Debug)]
pub struct StaticServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl StaticServer {
    /// Starts serving `root` on 127.0.0.1:0.
    pub fn start(root: &Path) -> io::Result<Self> {
        Self::start_limited(root, Vec::new())
    }

    /// Starts serving `root` on 127.0.0.1:0; a body whose URL path starts
    /// with one of `limits`' prefixes (e.g. `/active-1m/`) is sent at most
    /// at its rate, bytes per second per connection.
    pub fn start_limited(root: &Path, limits: Vec<(String, u64)>) -> io::Result<Self> {
        let limits = Arc::new(limits);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
        let acceptor = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (root, limits) = (root.clone(), Arc::clone(&limits));
                    thread::spawn(move || {
                        let _ = serve_connection(conn, &root, &limits);
                    });
                }
            })
        };
        Ok(StaticServer { addr, stop, acceptor: Some(acceptor) })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the acceptor.
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?.strip_prefix('/')?;
    let mut out = root.to_path_buf();
    for seg in path.split('/') {
        let ok = !seg.is_empty()
            && !seg.starts_with('.')
            && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return None;
        }
        out.push(seg);
    }
    Some(out)
}

/// `bytes=A-B` or `bytes=A-` within `len`: the first and last byte.
fn parse_range(spec: &str, len: u64) -> Option<(u64, u64)> {
    let (a, b) = spec.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => len.checked_sub(1)?,
        b => b.parse::<u64>().ok()?.min(len.checked_sub(1)?),
    };
    (start <= end).then_some((start, end))
}

/// Sends `len` bytes of `from` at `rate` bytes per second the way nginx's
/// `limit_rate` does: one second ahead (the first second's worth at once),
/// then chunks of ~1/20 s, each written when the ones before it are due.
fn copy_paced(from: &mut impl Read, to: &mut impl Write, len: u64, rate: u64) -> io::Result<()> {
    let chunk = (rate / 20).clamp(1024, 64 * 1024);
    let mut buf = vec![0u8; chunk as usize];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < len {
        let ahead = (sent as f64 / rate.max(1) as f64 - 1.0).max(0.0);
        let due = started + Duration::from_secs_f64(ahead);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let n = (len - sent).min(chunk) as usize;
        from.read_exact(&mut buf[..n])?;
        to.write_all(&buf[..n])?;
        sent += n as u64;
    }
    Ok(())
}

fn serve_connection(stream: TcpStream, root: &Path, limits: &[(String, u64)]) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut request = String::new();
        if reader.by_ref().take(8192).read_line(&mut request)? == 0 {
            return Ok(());
        }
        let (mut range, mut close) = (None, false);
        for _ in 0..=100 {
            let mut line = String::new();
            if reader.by_ref().take(8192).read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("range") {
                    range = Some(value.trim().to_string());
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.trim().eq_ignore_ascii_case("close");
                }
            }
        }
        let mut parts = request.split_whitespace();
        let (method, target, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
        close |= version == Some("HTTP/1.0");
        let conn = if close { "close" } else { "keep-alive" };
        let file =
            resolve(root, target).and_then(|p| File::open(p).ok()).filter(|f| f.metadata().is_ok_and(|m| m.is_file()));
        let simple = |status: &str| {
            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: {conn}\r\nServer: trident-bench\r\n\r\n")
        };
        match (method, file) {
            ("GET" | "HEAD", Some(mut file)) => {
                let len = file.metadata()?.len();
                let (status, start, end, content_range) = match range.as_deref().map(|r| parse_range(r, len)) {
                    None => ("200 OK", 0, len, String::new()),
                    Some(Some((a, b))) => {
                        ("206 Partial Content", a, b + 1, format!("Content-Range: bytes {a}-{b}/{len}\r\n"))
                    }
                    Some(None) => {
                        out.write_all(simple("416 Range Not Satisfiable").as_bytes())?;
                        continue;
                    }
                };
                out.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nAccept-Ranges: bytes\r\n{content_range}Connection: {conn}\r\nServer: trident-bench\r\n\r\n",
                        end - start
                    )
                    .as_bytes(),
                )?;
                if method == "GET" {
                    file.seek(SeekFrom::Start(start))?;
                    match limits.iter().find(|(prefix, _)| target.starts_with(prefix.as_str())) {
                        Some(&(_, rate)) => copy_paced(&mut file, &mut out, end - start, rate)?,
                        None => {
                            io::copy(&mut file.take(end - start), &mut out)?;
                        }
                    }
                }
            }
            ("GET" | "HEAD", None) => out.write_all(simple("404 Not Found").as_bytes())?,
            _ => out.write_all(simple("405 Method Not Allowed").as_bytes())?,
        }
        if close {
            return Ok(());
        }
    }
}

/// nginx run by the bench: master and workers, killed when dropped.
#[derive(Debug)]
struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: fast shutdown of the master and its workers.
        // SAFETY: kill on our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port: bound, read, closed (nginx cannot listen on :0).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// Whether `GET path` on `port` answers 200.
fn probe(port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).is_err()
    {
        return false;
    }
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.split_whitespace().nth(1) == Some("200")
}

/// The rate-limited URL path prefixes: `/NAME/` and its bytes per second,
/// for every workload with a rate limit.
fn rate_limits(workloads: &[Workload]) -> Vec<(String, u64)> {
    workloads.iter().filter_map(|w| Some((format!("/{}/", w.name()), w.rate_limit?))).collect()
}

fn nginx_config(work: &Path, root: &Path, port: u16, limits: &[(String, u64)]) -> String {
    let w = work.display();
    let mut locations = String::new();
    for (prefix, rate) in limits {
        let _ = write!(locations, "\n        location {prefix} {{ limit_rate {rate}; }}");
    }
    format!(
        "daemon off;
master_process on;
worker_processes auto;
pid {w}/nginx.pid;
error_log {w}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    default_type application/octet-stream;
    client_body_temp_path {w}/body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {};{locations}
    }}
}}
",
        root.display()
    )
}

/// Starts `nginx` serving `root`, its config and logs in `work`; retries
/// with another port if the chosen one was taken meanwhile.
fn start_nginx(
    nginx: &Path,
    root: &Path,
    work: &Path,
    probe_path: &str,
    limits: &[(String, u64)],
) -> anyhow::Result<Nginx> {
    fs::create_dir_all(work)?;
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        let conf = work.join("nginx.conf");
        fs::write(&conf, nginx_config(work, root, port, limits))?;
        let log = work.join("error.log");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(work)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {}", nginx.display()))?;
        let mut server = Nginx { child, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                last = format!("exited with {status}: {}", fs::read_to_string(&log).unwrap_or_default().trim());
                break;
            }
            if probe(port, probe_path) {
                return Ok(server);
            }
            thread::sleep(Duration::from_millis(20));
        }
        if last.is_empty() {
            last = format!("no answer on 127.0.0.1:{port}: {}", fs::read_to_string(&log).unwrap_or_default().trim());
        }
        drop(server);
        if !last.contains("Address already in use") {
            break;
        }
    }
    bail!("nginx did not start: {last}")
}

fn nginx_version(nginx: &Path) -> String {
    Command::new(nginx)
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stderr).into_owned();
            text.trim().rsplit('/').next().map(str::to_string)
        })
        .unwrap_or_default()
}

/// The running server.
enum Server {
    Nginx(#[allow(dead_code)] Nginx),
    Builtin(#[allow(dead_code)] StaticServer),
}

fn start_server(
    choice: ServerChoice,
    root: &Path,
    work: &Path,
    probe_path: &str,
    limits: &[(String, u64)],
) -> anyhow::Result<(Server, u16, String)> {
    let limited = if limits.is_empty() { String::new() } else { ", limit_rate on the active paths".to_string() };
    if choice != ServerChoice::Builtin {
        let attempt =
            match find_program("nginx").or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file())) {
                None => Err(anyhow::anyhow!("nginx is not installed")),
                Some(nginx) => start_nginx(&nginx, root, &work.join("nginx"), probe_path, limits).map(|n| {
                    let port = n.port;
                    let text = format!(
                        "nginx {} (sendfile on, worker_processes auto{limited}) at 127.0.0.1:{port}",
                        nginx_version(&nginx)
                    );
                    (Server::Nginx(n), port, text)
                }),
            };
        match attempt {
            Ok(started) => return Ok(started),
            Err(e) if choice == ServerChoice::Nginx => return Err(e),
            Err(e) => eprintln!("trident: {e:#}; using the built-in server"),
        }
    }
    let s = StaticServer::start_limited(root, limits.to_vec())?;
    let port = s.addr().port();
    let why = if choice == ServerChoice::Builtin { "as asked" } else { "nginx unavailable" };
    let text = format!("built-in server (std threads, io::copy = sendfile{limited}) at 127.0.0.1:{port} -- {why}");
    Ok((Server::Builtin(s), port, text))
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
        if matches!(contender, Contender::Curl | Contender::CurlSync) {
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
        let wall = m.wall.as_secs_f64();
        let rec = RunRecord {
            workload: name,
            tool: contender.label(),
            jobs,
            run,
            wall_s: wall,
            cpu_s: m.cpu().as_secs_f64(),
            peak_rss_mib: m.peak_rss_kib as f64 / 1024.0,
            peak_pss_mib: m.peak_pss_kib as f64 / 1024.0,
            files_per_s: check.ok as f64 / wall,
            mib_per_s: check.ok_bytes as f64 / MIB / wall,
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
    let trident = std::env::current_exe().context("cannot find the trident executable")?;
    let mut contenders: Vec<(Contender, PathBuf)> =
        config.engines.iter().map(|&e| (Contender::Trident(e), trident.clone())).collect();
    for peer in &config.peers {
        if !config.workloads.iter().any(|w| peer.runs_in(w)) {
            continue;
        }
        match find_program(peer.program()) {
            Some(path) => contenders.push((*peer, path)),
            None => eprintln!("trident: {} is not installed; skipping it", peer.program()),
        }
    }
    if contenders.is_empty() || config.workloads.is_empty() {
        bail!("nothing to run");
    }
    let work = TempDir::new("trident-bench-fetch")?;
    let corpus = work.0.join("corpus");
    fs::create_dir(&corpus)?;
    fs::set_permissions(&corpus, fs::Permissions::from_mode(0o755))?;
    let started = Instant::now();
    let mut expected = Vec::new();
    for w in &config.workloads {
        expected.push(generate_corpus(&corpus, w)?);
    }
    let first = &config.workloads[0];
    let probe_path = format!("/{}/{}", first.name(), first.file_name(0));
    let limits = rate_limits(&config.workloads);
    let (_server, port, server_text) = start_server(config.server, &corpus, &work.0, &probe_path, &limits)?;
    println!("bench fetch: server {server_text}");
    let storage = crate::sys::storage(&work.0);
    println!("bench fetch: files written to {}", storage.as_deref().unwrap_or("(storage unknown)"));
    println!(
        "corpus generated in {:.1}s under {}; {} warm-up + {} runs each, alternating",
        started.elapsed().as_secs_f64(),
        corpus.display(),
        config.warmup,
        config.runs
    );

    let mut runner = Runner { config, work: &work.0, port, seq: 0, deferred: Vec::new(), deferred_bytes: 0 };
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
        println!(
            "{:<4} {:<tool_width$} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>11}",
            "RUN", "TOOL", "WALL", "CPU", "PEAK RSS", "PEAK PSS", "FILES/S", "MIB/S", "CORRECT"
        );
        for round in 0..config.warmup + config.runs {
            let recorded = round >= config.warmup;
            let run_no = if recorded { round - config.warmup + 1 } else { 0 };
            let n = items.len();
            for k in 0..n {
                let ((contender, exe), jobs) = items[(k + round as usize) % n];
                let files = if jobs == workload.jobs { &expected[..] } else { &expected[..1] };
                let (rec, first_err) = runner.run_one(workload, (*contender, exe), jobs, files, run_no)?;
                let tool = if is_active { format!("{} -j{jobs}", rec.tool) } else { rec.tool.clone() };
                let in_flight = match (rec.in_flight_max, rec.all_in_flight_s) {
                    (Some(max), Some(all)) => format!("  in flight: max {max}, all {all:.1}s"),
                    _ => String::new(),
                };
                println!(
                    "{:<4} {:<tool_width$} {:>8.3}s {:>8.3}s {:>6.1} MiB {:>6.1} MiB {:>9.0} {:>9.1} {:>11}{}{}{in_flight}",
                    if recorded { run_no.to_string() } else { "w".into() },
                    tool,
                    rec.wall_s,
                    rec.cpu_s,
                    rec.peak_rss_mib,
                    rec.peak_pss_mib,
                    rec.files_per_s,
                    rec.mib_per_s,
                    format!("{}/{}", rec.files_ok, rec.files_expected),
                    rec.problems(),
                    if rec.correct() || first_err.is_empty() { String::new() } else { format!(": {first_err}") }
                );
                if recorded {
                    records.push(rec);
                }
            }
        }
        runner.remove_deferred()?;
        let labels: Vec<String> = mine.iter().map(|(c, _)| c.label()).collect();
        let peers: Vec<String> = mine.iter().filter(|(c, _)| c.is_peer()).map(|(c, _)| c.label()).collect();
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
            s.wall_s,
            s.cpu_s,
            s.cpu_s_per_gib,
            s.peak_rss_mib,
            s.peak_pss_mib,
            s.files_per_s,
            s.mib_per_s,
            s.min_correct * 100.0,
            if s.bad_runs > 0 { format!("  ({} of {} runs not clean)", s.bad_runs, s.runs) } else { String::new() }
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
                r.workload, r.tool, r.peer, r.wall, r.cpu, r.peak_rss, r.throughput
            );
        }
    }
    if !active.is_empty() {
        print_active(&active);
    }
    let report = BenchReport {
        builtin_server: matches!(_server, Server::Builtin(_)),
        server: server_text,
        storage,
        workloads: config.workloads.clone(),
        runs: records,
        summary,
        ratios,
        active,
    };
    if let Some(dir) = &config.out {
        super::report::write_out(dir, &report.runs, &report)?;
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
    fn corpus_is_deterministic_and_verified() {
        let a = TempDir::new("trident-test-corpus").unwrap();
        let b = TempDir::new("trident-test-corpus").unwrap();
        let ea = generate_corpus(&a.0, &small(3)).unwrap();
        let eb = generate_corpus(&b.0, &small(3)).unwrap();
        assert_eq!(ea.iter().map(|e| e.sha256).collect::<Vec<_>>(), eb.iter().map(|e| e.sha256).collect::<Vec<_>>());
        assert_ne!(ea[0].sha256, ea[1].sha256);
        let dir = a.0.join("small");
        assert_eq!(verify(&dir, &ea).unwrap(), Check { ok: 3, ok_bytes: 3000, ..Check::default() });
        fs::write(dir.join("s00000.bin"), vec![0u8; 1000]).unwrap();
        fs::write(dir.join("s00001.bin"), b"short").unwrap();
        fs::remove_file(dir.join("s00002.bin")).unwrap();
        fs::write(dir.join("s00002.bin.part"), b"").unwrap();
        let c = verify(&dir, &ea).unwrap();
        assert_eq!((c.ok, c.wrong_sha256, c.wrong_size, c.missing, c.extra), (0, 1, 1, 1, 1));
        assert_eq!(verify(&a.0.join("nope"), &ea).unwrap().missing, 3);
    }

    #[test]
    fn builtin_server_serves_files_and_ranges() {
        let root = TempDir::new("trident-test-static").unwrap();
        let exp = generate_corpus(&root.0, &small(1)).unwrap();
        let server = StaticServer::start(&root.0).unwrap();
        let get = |req: &str| {
            let mut s = TcpStream::connect(server.addr()).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            out
        };
        let body = fs::read(root.0.join("small/s00000.bin")).unwrap();
        let whole = get("GET /small/s00000.bin HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(whole.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(whole.ends_with(&body));
        assert_eq!(Sha256::digest(&body).as_slice(), exp[0].sha256);
        let part = get("GET /small/s00000.bin HTTP/1.1\r\nRange: bytes=10-19\r\nConnection: close\r\n\r\n");
        assert!(String::from_utf8_lossy(&part).contains("Content-Range: bytes 10-19/1000"));
        assert!(part.ends_with(&body[10..20]));
        for bad in ["/small/../small/s00000.bin", "/small/.x", "/nope"] {
            let r = get(&format!("GET {bad} HTTP/1.1\r\nConnection: close\r\n\r\n"));
            assert!(r.starts_with(b"HTTP/1.1 404"), "{bad}");
        }
        // Keep-alive: two responses on one connection.
        let two =
            get("HEAD /small/s00000.bin HTTP/1.1\r\n\r\nGET /small/s00000.bin HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert_eq!(String::from_utf8_lossy(&two).matches("200 OK").count(), 2);
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
        let conf = nginx_config(Path::new("/w"), Path::new("/r"), 1234, &limits);
        assert_eq!(conf.matches("limit_rate").count(), 1, "{conf}");
        assert!(conf.contains("location /active-8m/ { limit_rate 2097152; }"), "{conf}");

        // The built-in server: one second's worth at once, then the rate.
        let root = TempDir::new("trident-test-paced").unwrap();
        let a = Workload::active(2, 150_000, Duration::from_millis(500));
        let rate = a.rate_limit.unwrap();
        generate_corpus(&root.0, &a).unwrap();
        fs::create_dir(root.0.join("free")).unwrap();
        fs::copy(root.0.join("active-150000b/a00000.bin"), root.0.join("free/a00000.bin")).unwrap();
        let server = StaticServer::start_limited(&root.0, rate_limits(&[a])).unwrap();
        let get = |path: &str| {
            let started = Instant::now();
            let mut s = TcpStream::connect(server.addr()).unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            (out.len(), started.elapsed())
        };
        let (len, took) = get("/active-150000b/a00000.bin");
        assert!(len > 150_000 && took >= Duration::from_millis(400) && took < Duration::from_secs(3), "{len} {took:?}");
        assert_eq!(rate, 100_000);
        let (len, took) = get("/free/a00000.bin");
        assert!(len > 150_000 && took < Duration::from_millis(300), "{len} {took:?}");
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
        assert_eq!((s[0].wall_s, s[1].wall_s), (2.0, 3.0));
        assert_eq!((s[0].bad_runs, s[1].bad_runs), (0, 1));
        assert!((s[1].min_correct - 0.9).abs() < 1e-9);
        assert!((r[0].wall - 2.0 / 3.0).abs() < 1e-9);

        let args = |c: Contender| {
            c.command(Path::new("x"), 32, Path::new("u.txt"), Path::new("c.cfg"), Path::new("d"), &[])
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert!(args(Contender::Curl).windows(2).any(|w| w == ["--parallel-max", "32"]));
        assert!(args(Contender::Curl).windows(2).any(|w| w == ["-K", "c.cfg"]));
        let durable = args(Contender::CurlSync);
        assert_eq!(durable[..2], ["-c".to_string(), durable[1].clone()]);
        assert!(durable[1].ends_with("&& exec sync -f \"$3\""), "{durable:?}");
        assert_eq!(durable[2..], ["x", "32", "c.cfg", "d"]);
        assert!(args(Contender::Wget2).windows(2).any(|w| w == ["-P", "d"]));
        let split = args(Contender::Aria2cSplit);
        assert!(split.contains(&"-x4".to_string()) && split.windows(2).any(|w| w == ["-j", "32"]));
        let t = args(Contender::Trident(EngineKind::Threads));
        assert_eq!(t[..5], ["fetch", "-e", "threads", "-j", "32"]);
        assert!(!Contender::Aria2cSplit.runs_in(&w));
    }
}
