//! `trident bench scan|fetch|chat|all`: their flags, turned into each bench's
//! config.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{parse_duration, parse_engine};
use crate::engine::EngineKind;
use crate::error::BadInput;
use crate::scan::PortList;

/// `trident bench` workloads.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Scan the same target with every engine and every installed peer
    /// (nmap, RustScan), alternating, and compare time, CPU, memory and
    /// accuracy against the target's ground truth.
    #[command(after_help = BENCH_SCAN_EXAMPLES)]
    Scan(BenchScanArgs),
    /// Download the same generated corpus from a loopback nginx with every
    /// engine and every installed peer (curl, wget2, aria2c), alternating,
    /// and compare time, CPU, memory, throughput and correctness.
    #[command(after_help = BENCH_FETCH_EXAMPLES)]
    Fetch(BenchFetchArgs),
    /// Measure the chat servers (every engine; InspIRCd and ngircd with
    /// --vs): memory per idle connection, fan-out deliveries per second,
    /// latency, a fixed-rate latency ladder, and echo requests per second
    /// against a minimal tokio echo and any peer.
    #[command(after_help = BENCH_CHAT_EXAMPLES)]
    Chat(BenchChatArgs),
    /// Run every workload's bench (scan, fetch, chat) with every installed
    /// peer and write one report: results.csv/json, report.md and a
    /// self-contained index.html with charts.
    #[command(after_help = BENCH_ALL_EXAMPLES)]
    All(BenchAllArgs),
}

const BENCH_ALL_EXAMPLES: &str = "\
Examples:
  trident bench all --quick                           a few minutes; open bench-report/index.html
  trident bench all --out report --engines async,threads --vs nmap,curl
  trident bench all                                   the benches' full sizes (lab targets as root)
  trident bench all --redraw --out docs/bench/report  the charts and pages again from results.json

Each bench runs as its own `trident bench ...` command (recorded in the
report, its output in DIR/logs/); peers that are not installed are listed
in the report with how to install them.";

/// `trident bench all` options.
#[derive(Debug, Args)]
pub struct BenchAllArgs {
    /// Smaller targets and fewer runs: a few minutes on two cores, every chart.
    #[arg(long)]
    pub quick: bool,
    /// Tiny targets, one run each (for tests).
    #[arg(long, hide = true, conflicts_with = "quick")]
    pub tiny: bool,
    /// Write the report into DIR.
    #[arg(long, value_name = "DIR", default_value = "bench-report")]
    pub out: PathBuf,
    /// trident engines to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "threads,processes,async", value_parser = parse_engine)]
    pub engines: Vec<EngineKind>,
    /// Peers to run when installed, by name (each in the workloads it
    /// belongs to), or none [default: every known peer].
    #[arg(long = "vs", value_delimiter = ',', value_name = "PEERS")]
    pub vs: Option<Vec<String>>,
    /// Run nothing: draw the report in DIR again from its results.json
    /// (after an upgrade of trident, or to re-read an old run).
    #[arg(long, conflicts_with_all = ["quick", "tiny", "engines", "vs"])]
    pub redraw: bool,
}

impl BenchAllArgs {
    /// The validated config.
    pub fn into_config(self) -> Result<crate::bench::all::BenchAllConfig, BadInput> {
        use crate::bench::all::{BenchAllConfig, Mode};
        let vs = self.vs.map(|v| v.into_iter().filter(|n| n != "none").collect::<Vec<_>>());
        if let Some(vs) = &vs {
            crate::bench::all::check_peers(vs)?;
        }
        let mode = if self.tiny {
            Mode::Tiny
        } else if self.quick {
            Mode::Quick
        } else {
            Mode::Full
        };
        Ok(BenchAllConfig { mode, out: self.out, engines: self.engines, vs })
    }
}

const BENCH_CHAT_EXAMPLES: &str = "\
Examples:
  trident bench chat                                  every part, every engine
  trident bench chat --parts fanout,latency --engines async --members 1000 --rates 500,1000,2000
  trident bench chat --parts echo --runs 5 --vs chapter-asyncio
  trident bench chat --parts idle --idle 1000 --engines async,threads
  trident bench chat --parts ladder --engines async --vs inspircd --runs 1
  trident bench chat --parts ladder,idle --peer-irc inspircd=/usr/sbin/inspircd --peer-irc ngircd=/usr/sbin/ngircd

The load generators run inside the bench process on one thread; servers
are separate processes on 127.0.0.1. With two CPUs or more, the bench
process runs on the first and each server on the second (--no-pin: no
affinity). IRC peers (inspircd, ngircd) run with the configs in
bench/irc/; every part but echo runs against them.";

/// `bench chat`'s fan-out steps without `--rates`: up to where delivery
/// falls behind.
const FANOUT_RATES: [f64; 6] = [250.0, 500.0, 1000.0, 1500.0, 2000.0, 3000.0];
/// `bench chat`'s ladder without `--rates`: the same for every server.
const LADDER_RATES: [f64; 6] = [100.0, 250.0, 500.0, 1000.0, 2000.0, 3000.0];

/// `trident bench chat` options.
#[derive(Debug, Args)]
pub struct BenchChatArgs {
    /// Engines, rounds and output directory.
    #[command(flatten)]
    pub run: BenchRunArgs,
    /// What to measure: idle, echo, fanout, latency, ladder
    /// (comma-separated). ladder: latency and delivery at every rate of
    /// --rates on every server.
    #[arg(long, value_delimiter = ',', default_value = "idle,fanout,latency,echo")]
    pub parts: Vec<crate::bench::chat::Part>,
    /// Fan-out: members of the one channel.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub members: usize,
    /// Fan-out: how many of them send.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub senders: usize,
    /// Fan-out: message rates to step through (all senders together, per
    /// second); stops at the first step where delivery falls behind.
    /// Ladder: every one of them, on every server. Default: fan-out
    /// 250,500,1000,1500,2000,3000; ladder 100,250,500,1000,2000,3000.
    #[arg(long, value_delimiter = ',', value_name = "R,R...")]
    pub rates: Option<Vec<f64>>,
    /// Fan-out and latency: sending time per step.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DUR")]
    pub load_duration: Duration,
    /// Idle connections per engine.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub idle: usize,
    /// Echo: connections in the closed loop.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub connections: usize,
    /// Echo: measured time per run.
    #[arg(long, default_value = "3s", value_parser = parse_duration, value_name = "DUR")]
    pub duration: Duration,
    /// An extra echo server to compare: NAME=COMMAND, {port} in COMMAND is
    /// replaced by the port it must listen on (127.0.0.1). Repeatable.
    #[arg(long, value_name = "NAME=COMMAND")]
    pub peer: Vec<String>,
    /// Built-in peers: chapter-asyncio (the chapter's asyncio echo server,
    /// bench/chapter/echo_server.py under python3; echo part), inspircd,
    /// ngircd (installed IRC servers with bench/irc/'s configs; the other
    /// parts), or none. One not installed is named and left out.
    #[arg(long = "vs", value_delimiter = ',', default_value = "none", value_name = "PEERS")]
    pub vs: Vec<String>,
    /// An IRC server to measure beside the engines: NAME=COMMAND. A NAME
    /// starting with inspircd or ngircd runs COMMAND (that server's
    /// program) with the project's config for it; any other NAME needs
    /// {port} in COMMAND. Repeatable.
    #[arg(long = "peer-irc", value_name = "NAME=COMMAND")]
    pub peer_irc: Vec<String>,
    /// No CPU affinity (by default the bench and the server run on a CPU
    /// each).
    #[arg(long)]
    pub no_pin: bool,
}

impl BenchChatArgs {
    /// The validated bench config.
    pub fn into_config(self) -> Result<crate::bench::chat::ChatBenchConfig, BadInput> {
        let peers = self
            .peer
            .iter()
            .map(|p| match p.split_once('=') {
                Some((name, cmd)) if !name.is_empty() && cmd.contains("{port}") => {
                    Ok((name.to_owned(), cmd.to_owned()))
                }
                _ => Err(BadInput(format!("invalid --peer {p:?}: expected NAME=COMMAND with {{port}} in COMMAND"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let vs = crate::bench::harness::parse_peers(&self.vs).map_err(BadInput)?;
        let irc_peers = self
            .peer_irc
            .iter()
            .map(|spec| crate::bench::irc_peer::IrcPeer::parse(spec))
            .collect::<Result<Vec<_>, _>>()
            .map_err(BadInput)?;
        if self.connections == 0 {
            return Err(BadInput("--connections must be at least 1".into()));
        }
        if let Some(rates) = &self.rates {
            // Checked here, before any part runs, with the bound `chat load` has.
            if let Some(bad) = rates.iter().find(|r| !(r.is_finite() && **r > 0.0 && **r <= 10_000_000.0)) {
                return Err(BadInput(format!("--rates {bad} must be above 0 and at most 10000000 messages/s")));
            }
        }
        Ok(crate::bench::chat::ChatBenchConfig {
            parts: self.parts,
            engines: self.run.engines,
            runs: self.run.runs,
            idle: self.idle,
            echo_connections: self.connections,
            duration: self.duration,
            peers,
            vs,
            irc_peers,
            pin: !self.no_pin,
            members: self.members.max(2),
            senders: self.senders.max(1),
            ladder_rates: self.rates.clone().unwrap_or_else(|| LADDER_RATES.to_vec()),
            rates: self.rates.unwrap_or_else(|| FANOUT_RATES.to_vec()),
            load_duration: self.load_duration,
            out: self.run.out,
        })
    }
}

const BENCH_SCAN_EXAMPLES: &str = "\
Examples:
  trident bench scan                                  lab 'full': 50 open, 10k DROP, 1k REJECT, 3% loss
  trident bench scan --lab full-latency --runs 3
  trident bench scan --lab loopback --vs nmap --out bench-out
  trident bench scan --lab loopback --engines async --runs 100 --vs none
  trident bench scan --lab full -p 20001-20100 --vs chapter-asyncio,chapter-asyncio-timeout

Lab targets need root (network namespaces); loopback does not. Peers are
looked up on PATH and in /opt/<name>/bin; missing ones are skipped.";

/// What every `trident bench` workload takes.
#[derive(Debug, Args)]
pub struct BenchRunArgs {
    /// trident engines to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "threads,processes,async", value_parser = parse_engine)]
    pub engines: Vec<EngineKind>,
    /// Recorded runs per contender.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Unrecorded warm-up runs per contender.
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Write runs.csv and summary.json into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `trident bench scan` options.
#[derive(Debug, Args)]
pub struct BenchScanArgs {
    /// Target: a lab preset (full, full-latency, clean) or loopback.
    #[arg(long, default_value = "full")]
    pub lab: String,
    /// Engines, rounds and output directory.
    #[command(flatten)]
    pub run: BenchRunArgs,
    /// Peers to run when installed: nmap, rustscan, rustscan-default, the
    /// chapter's Python scanners (chapter-threads, chapter-processes,
    /// chapter-asyncio, and chapter-asyncio-timeout: changed, a 1 s timeout
    /// per connect), or none.
    #[arg(long = "vs", value_delimiter = ',', default_value = "nmap,rustscan")]
    pub peers: Vec<String>,
    /// Ports every contender scans.
    #[arg(short = 'p', long, default_value = "1-65535")]
    pub ports: String,
    /// Extra arguments for every trident scan (e.g. "-j 8000").
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub scan_args: Option<String>,
    /// Kill any run that takes longer than this.
    #[arg(long, value_name = "DUR", default_value = "300s", value_parser = parse_duration)]
    pub time_limit: Duration,
}

impl BenchScanArgs {
    /// The validated bench config.
    pub fn into_config(self) -> Result<crate::bench::scan::ScanBenchConfig, BadInput> {
        let ports = PortList::parse(&self.ports).map_err(|e| BadInput(e.to_string()))?;
        let peers = crate::bench::harness::parse_peers(&self.peers).map_err(BadInput)?;
        Ok(crate::bench::scan::ScanBenchConfig {
            target: self.lab,
            engines: self.run.engines,
            peers,
            runs: self.run.runs,
            warmup: self.run.warmup,
            ports: ports.to_string(),
            scan_args: self.scan_args.map(|a| a.split_whitespace().map(String::from).collect()).unwrap_or_default(),
            time_limit: self.time_limit,
            out: self.run.out,
        })
    }
}

const BENCH_FETCH_EXAMPLES: &str = "\
Examples:
  trident bench fetch                                 both workloads, 5 runs, every installed peer
  trident bench fetch --workload large --large-mib 64 --runs 3 --vs curl
  trident bench fetch --workload small --scale 0.1 --runs 1 --warmup 0 --vs none
  trident bench fetch --workload active --runs 3 --warmup 0 --vs none
  trident bench fetch --workload small --scale 0.1 --vs chapter-threads,chapter-asyncio
  trident bench fetch --out bench-out

Workloads: small = 2,000 files x 16 KiB at -j 32; large = 4 files x 256 MiB
at -j 4 (--scale F multiplies the small file count and the large file size;
the --small-*/--large-* options set them exactly). The corpus is generated
once into a temporary directory (deterministic pseudo-random bytes).
active (only when asked) = memory per download in flight: 300 files of each
of --active-sizes (1 and 8 MiB) at -j 300, served at a per-connection rate
limit (each file lasts --active-duration) so all are in flight together,
and one of them at -j 1; per download = (peak at 300 - peak at 1) / 299.

Server: nginx (looked up on PATH, then /usr/sbin) started with its own
config (sendfile on) on a free 127.0.0.1 port; if it is missing or does not
start, a built-in server (a std thread per connection, io::copy = sendfile)
stands in and the report header says so. Peers (curl --parallel, wget2
--max-threads, aria2c -j; aria2c -x4 -s4 on large only) run when installed,
at the same concurrency; missing ones are skipped. None of them syncs its
files; trident syncs every file before giving it its name, so curl-sync
(curl, then `sync -f` of the download directory, timed together) shows
what curl costs with the same durability.

Every run downloads into a fresh empty directory; every file is checked
(present, size, SHA-256), anything else there counts as extra, and
throughput counts only correct files. Before each run, untimed, the file
system is synced; a run of many files keeps its directory until the
workload ends. ext4 without a journal avoids reusing an inode for 60-300 s
after it was freed, slowly, so any large deletion on the same file system
skews file creation for minutes: for comparable runs give each bench a
fresh file system, TMPDIR=$(scripts/benchfs) trident bench fetch ...
Exit status 1 if a trident run was not clean.";

/// `trident bench fetch` options.
#[derive(Debug, Args)]
pub struct BenchFetchArgs {
    /// Workload: small, large, both (small and large), or active (memory per
    /// download in flight; only when asked).
    #[arg(long, default_value = "both", value_parser = ["small", "large", "both", "active"])]
    pub workload: String,
    /// Engines, rounds and output directory.
    #[command(flatten)]
    pub run: BenchRunArgs,
    /// Peers to run when installed: curl, curl-sync (curl, then its files
    /// synced), wget2, aria2c, aria2c-x4, the chapter's Python downloaders
    /// (chapter-threads, chapter-asyncio), or none.
    #[arg(long = "vs", value_delimiter = ',', default_value = "curl,curl-sync,wget2,aria2c,aria2c-x4")]
    pub peers: Vec<String>,
    /// Multiplies the small workload's file count and the large one's file
    /// size (e.g. 0.25 for a quick run).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub scale: f64,
    /// Files in the small workload [default: 2000 x scale].
    #[arg(long, value_name = "N")]
    pub small_files: Option<usize>,
    /// Size of each small file, KiB.
    #[arg(long, value_name = "KIB", default_value_t = 16)]
    pub small_kib: u64,
    /// Downloads at once in the small workload.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub small_jobs: usize,
    /// Files in the large workload.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub large_files: usize,
    /// Size of each large file, MiB [default: 256 x scale].
    #[arg(long, value_name = "MIB")]
    pub large_mib: Option<u64>,
    /// Downloads at once in the large workload.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub large_jobs: usize,
    /// Active workload: files per size, all fetched at once (-j N), plus a
    /// -j 1 baseline on one of them.
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub active_files: usize,
    /// Active workload: file sizes, MiB (fractions allowed, e.g. 0.25).
    #[arg(long, value_name = "MIB,MIB...", value_delimiter = ',', default_value = "1,8")]
    pub active_sizes: Vec<f64>,
    /// Active workload: how long each download lasts; sets the server's
    /// per-connection rate limit: size / (this + 1s), as nginx's limit_rate
    /// sends the first second's worth at once.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_duration)]
    pub active_duration: Duration,
    /// Server: auto (nginx, else built-in), nginx, or builtin.
    #[arg(long, default_value = "auto")]
    pub server: crate::bench::fetch::ServerChoice,
    /// Extra arguments for every trident fetch (e.g. "--retries 0").
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub fetch_args: Option<String>,
    /// Kill any run that takes longer than this.
    #[arg(long, value_name = "DUR", default_value = "300s", value_parser = parse_duration)]
    pub time_limit: Duration,
}

impl BenchFetchArgs {
    /// The validated bench config.
    pub fn into_config(self) -> Result<crate::bench::fetch::FetchBenchConfig, BadInput> {
        use crate::bench::fetch::{FetchBenchConfig, Workload, WorkloadKind};
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(BadInput(format!("invalid --scale {} (expected a positive number)", self.scale)));
        }
        let scaled = |n: u64| ((n as f64 * self.scale).round() as u64).max(1);
        let small = Workload {
            kind: WorkloadKind::Small,
            files: self.small_files.unwrap_or(scaled(2000) as usize),
            file_size: self.small_kib * 1024,
            jobs: self.small_jobs,
            rate_limit: None,
        };
        let large = Workload {
            kind: WorkloadKind::Large,
            files: self.large_files,
            file_size: self.large_mib.unwrap_or(scaled(256)) << 20,
            jobs: self.large_jobs,
            rate_limit: None,
        };
        let mut workloads = match self.workload.as_str() {
            "small" => vec![small],
            "large" => vec![large],
            "active" => {
                if self.active_files < 2 {
                    return Err(BadInput("--active-files must be at least 2".into()));
                }
                if self.active_duration < Duration::from_millis(100) {
                    return Err(BadInput("--active-duration must be at least 100ms".into()));
                }
                let mut sizes = Vec::new();
                for &mib in &self.active_sizes {
                    let bytes = (mib * 1024.0 * 1024.0).round();
                    if !(bytes.is_finite() && bytes >= 1.0) {
                        return Err(BadInput(format!("invalid --active-sizes value {mib} (expected MiB > 0)")));
                    }
                    if !sizes.contains(&(bytes as u64)) {
                        sizes.push(bytes as u64);
                    }
                }
                sizes.into_iter().map(|b| Workload::active(self.active_files, b, self.active_duration)).collect()
            }
            _ => vec![small, large],
        };
        workloads.retain(|w| w.files > 0);
        if workloads.iter().any(|w| w.jobs == 0 || w.file_size == 0) {
            return Err(BadInput("file sizes and --*-jobs must be at least 1".into()));
        }
        let peers = crate::bench::harness::parse_peers(&self.peers).map_err(BadInput)?;
        Ok(FetchBenchConfig {
            workloads,
            engines: self.run.engines,
            peers,
            runs: self.run.runs,
            warmup: self.run.warmup,
            server: self.server,
            fetch_args: self.fetch_args.map(|a| a.split_whitespace().map(String::from).collect()).unwrap_or_default(),
            time_limit: self.time_limit,
            out: self.run.out,
        })
    }
}
