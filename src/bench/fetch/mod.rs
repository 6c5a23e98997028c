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
//! Each contender downloads into a fresh empty directory; afterwards every
//! expected file is checked (present, size, SHA-256) and anything else in
//! the directory is counted as extra (`runner.rs`). Before each run, untimed,
//! the file system is synced, so that no run pays for the write-back of
//! another (curl, wget2 and aria2c never sync; trident syncs every file
//! before its rename). Throughput counts only verified files (`record.rs`).
//! Rounds, medians and same-run ratios are the [`harness`]'s.
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

mod record;
mod runner;

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use self::record::print_summary;
pub use self::record::{ActiveSummary, BenchReport, Ratio, RunRecord, ToolSummary, summarise, summarise_active};
use self::runner::Runner;
pub(crate) use self::runner::settle;
use super::chapter::{self, Program, Programs};
pub use super::fixture::ServerChoice;
use super::fixture::corpus::{self, Expected};
use super::fixture::{FileServer, TempDir};
use super::harness::{self, Record as _};
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
    /// The chapter's threaded downloader (`bench/chapter/fetch_threads.py`):
    /// a thread per URL, all at once.
    ChapterThreads,
    /// The chapter's asyncio downloader (`bench/chapter/fetch_asyncio.py`):
    /// a coroutine per URL on one aiohttp session.
    ChapterAsyncio,
}

impl harness::Peer for Peer {
    fn parse(name: &str) -> Result<Self, String> {
        match name {
            "curl" => Ok(Peer::Curl),
            "curl-sync" => Ok(Peer::CurlSync),
            "wget2" => Ok(Peer::Wget2),
            "aria2c" | "aria2" => Ok(Peer::Aria2c),
            "aria2c-x4" => Ok(Peer::Aria2cSplit),
            "chapter-threads" => Ok(Peer::ChapterThreads),
            "chapter-asyncio" => Ok(Peer::ChapterAsyncio),
            _ => Err(format!(
                "unknown peer {name:?} (expected curl, curl-sync, wget2, aria2c, aria2c-x4, chapter-threads, \
                 chapter-asyncio or none)"
            )),
        }
    }

    fn label(&self) -> String {
        match self {
            Peer::Curl => "curl -Z".into(),
            Peer::CurlSync => "curl -Z + sync".into(),
            Peer::Wget2 => "wget2".into(),
            Peer::Aria2c => "aria2c".into(),
            Peer::Aria2cSplit => "aria2c -x4 -s4".into(),
            Peer::ChapterThreads => "chapter-threads".into(),
            Peer::ChapterAsyncio => "chapter-asyncio".into(),
        }
    }

    fn program(&self) -> &'static str {
        match self {
            Peer::Curl | Peer::CurlSync => "curl",
            Peer::Wget2 => "wget2",
            Peer::Aria2c | Peer::Aria2cSplit => "aria2c",
            Peer::ChapterThreads | Peer::ChapterAsyncio => "python3",
        }
    }

    fn locate(&self) -> Result<PathBuf, String> {
        match self {
            Peer::ChapterThreads => chapter::python().ok_or_else(|| chapter::NO_PYTHON.to_string()),
            Peer::ChapterAsyncio => chapter::python_with_aiohttp(),
            _ => harness::find_program(self.program()).ok_or_else(|| format!("{} is not installed", self.program())),
        }
    }
}

impl Peer {
    /// Whether it is one of the chapter's programs.
    fn is_chapter(self) -> bool {
        matches!(self, Peer::ChapterThreads | Peer::ChapterAsyncio)
    }

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

    /// The command line downloading the URLs of `files` into its
    /// directory, `jobs` at once (the chapter's programs, from `chapter`,
    /// take no such limit).
    fn command(&self, exe: &Path, jobs: usize, files: &RunFiles<'_>, extra: &[String], chapter: &Programs) -> Command {
        let RunFiles { urls, curl_config, dir } = *files;
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
            Contender::Peer(chapter_peer @ (Peer::ChapterThreads | Peer::ChapterAsyncio)) => {
                let program =
                    if *chapter_peer == Peer::ChapterThreads { Program::FetchThreads } else { Program::FetchAsyncio };
                cmd = chapter.command(exe, program);
                cmd.arg("-i").arg(urls).arg("-d").arg(dir);
            }
        }
        cmd
    }
}

/// Where one run's inputs and output go.
#[derive(Clone, Copy, Debug)]
struct RunFiles<'a> {
    /// The URLs, one a line.
    urls: &'a Path,
    /// The same for curl: a `url` and an `output` per file.
    curl_config: &'a Path,
    /// The download directory.
    dir: &'a Path,
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

/// What the report says about the chapter's downloaders.
fn chapter_note(python: &Path) -> String {
    format!(
        "chapter-*: the chapter's downloaders (bench/chapter/fetch_*.py) under {} ({}): chapter-threads starts a \
         thread per URL, all at once (urllib, a connection each); chapter-asyncio a coroutine per URL on one \
         aiohttp session (its pool: at most 100 connections); neither takes a limit of downloads at once, as \
         the chapter's did not, and neither syncs its files",
        python.display(),
        chapter::version(python)
    )
}

/// The rate-limited URL path prefixes: `/NAME/` and its bytes per second,
/// for every workload with a rate limit.
fn rate_limits(workloads: &[Workload]) -> Vec<(String, u64)> {
    workloads.iter().filter_map(|w| Some((format!("/{}/", w.name()), w.rate_limit?))).collect()
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

    let programs = Programs::install(work_dir)?;
    let mut runner = Runner::new(config, work_dir, port, &programs);
    let chapter_python = contenders.iter().find(|(c, _)| matches!(c, Contender::Peer(p) if p.is_chapter()));
    let notes: Vec<String> = chapter_python.map(|(_, python)| chapter_note(python)).into_iter().collect();
    for note in &notes {
        println!("{note}");
    }
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

    print_summary(&summary, &ratios, &active);
    let report = BenchReport {
        builtin_server: _server.is_builtin(),
        server: server_text,
        storage,
        workloads: config.workloads.clone(),
        runs: records,
        summary,
        ratios,
        active,
        notes,
    };
    if let Some(dir) = &config.out {
        super::harness::write_out(dir, &report.runs, &report)?;
        println!("\nwrote {}/runs.csv and {}/summary.json", dir.display(), dir.display());
    }
    Ok(report)
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
    fn peer_commands() {
        let w = small(10);
        let scratch = tempfile::tempdir().expect("tempdir");
        let programs = Programs::install(scratch.path()).expect("programs");
        let args = |c: Contender| {
            let files = RunFiles { urls: Path::new("u.txt"), curl_config: Path::new("c.cfg"), dir: Path::new("d") };
            c.command(Path::new("x"), 32, &files, &[], &programs)
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
        let chapter = args(Contender::Peer(Peer::ChapterThreads));
        assert!(chapter[0].ends_with("/chapter/fetch_threads.py"), "{chapter:?}");
        assert_eq!(chapter[1..], ["-i", "u.txt", "-d", "d"]);
        assert!(args(Contender::Peer(Peer::ChapterAsyncio))[0].ends_with("/chapter/fetch_asyncio.py"));
        let active = Workload::active(4, 1024, Duration::from_secs(1));
        assert!(Peer::ChapterAsyncio.runs_in(&w) && !Peer::ChapterThreads.runs_in(&active));
    }
}
