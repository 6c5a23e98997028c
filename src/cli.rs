//! Command-line syntax (clap derive types) and its one-time conversion into
//! validated `*Config` structs. Nothing here does any work.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{AsyncRuntime, EngineConfig, EngineKind};
use crate::error::BadInput;
use crate::scan::{BannerGrab, Family, Format, PortList, Retries, ScanConfig, Shard, TargetSet, TimingConfig, target};

const ENGINE_HELP: &str = "\
Engines: threads = a pool of OS threads, one blocking task each;
processes = worker processes (this binary re-run), one task each;
async = futures on a tokio runtime.";

/// Port scanning, downloading and chat on three interchangeable concurrency
/// engines: OS threads, worker processes and async (tokio).
#[derive(Debug, Parser)]
#[command(name = "trident", version, propagate_version = true, after_help = ENGINE_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Built once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan TCP ports with connect probes (no root needed).
    #[command(after_help = SCAN_EXAMPLES)]
    Scan(ScanArgs),
    /// Download files over HTTP(S), many at once; a file under its final
    /// name is always complete.
    #[command(after_help = crate::fetch::args::FETCH_HELP)]
    Fetch(crate::fetch::FetchArgs),
    /// The chapter's echo server and client: every chunk read is answered
    /// with "Server received: <chunk>".
    #[command(subcommand, after_help = ECHO_EXAMPLES)]
    Echo(EchoCommand),
    /// A chat server that IRC clients can use, on any engine.
    #[command(subcommand, after_help = crate::chat::cli::CHAT_EXAMPLES)]
    Chat(crate::chat::cli::ChatCommand),
    /// Start listeners on a loopback address, scan them with every engine,
    /// and compare what each found, how long it took, and what it cost.
    Demo(DemoArgs),
    /// Measure the engines against each other and against peer tools.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// A target host in its own network namespace with known open,
    /// filtered and closed ports, loss and latency (needs root).
    Lab(crate::lab::cli::LabArgs),
    /// Internal: keep a lab up until SIGTERM (started by `trident lab up`).
    #[command(name = "__lab-serve", hide = true)]
    LabServe(crate::lab::cli::ServeArgs),
    /// Internal: serve connections on an inherited listening socket
    /// (processes engine of a server).
    #[command(name = "__serve-worker", hide = true)]
    ServeWorker(ServeWorkerArgs),
    /// Internal: the minimal tokio echo server the echo bench compares with.
    #[command(name = "__echo-reference", hide = true)]
    EchoReference {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8888")]
        listen: String,
    },
}

const SCAN_EXAMPLES: &str = "\
Examples:
  trident scan 127.0.0.1                      the 1,000 most common ports
  trident scan localhost -p 22,80,8000-8100 -e threads
  trident scan 10.0.0.0/30 10.0.1.1-20 -p- -f jsonl --open
  trident scan -iL hosts.txt -p 443 -f csv -o results.csv
  trident scan --lab lab1 -p-                 the running lab lab1 (trident lab up)

States (as nmap -sT): open (syn-ack), closed (conn-refused: reset or ICMP
port unreachable), filtered (no-response after the retries, or an ICMP
error: host-unreach, net-unreach, proto-unreach, admin-prohibited). A
timeout is never reported as closed.

Timing: timeouts adapt to the measured RTTs (srtt + 4 rttvar, as nmap),
and ports that did not answer are probed again in rounds while retries
keep recovering answers. --timeout/--retries fix them; -T0..-T5 presets.

Sharding: trident scan 10.0.0.0/16 -p- --seed 7 --shard 2/8 scans one
eighth; see docs/SHARDING.md for a Kubernetes Indexed Job.

More than 2^24 addresses or 2^32 probes need --allow-huge; --list-targets
prints the size of a scan without sending anything.

Exit status: 0 done, 1 some probes could not be run, 2 bad input,
130 interrupted (partial results are still written).";

const ECHO_EXAMPLES: &str = "\
Examples:
  trident echo serve                                  127.0.0.1:8888, async
  trident echo serve --listen 127.0.0.1:0 -e processes -c 4
  trident echo send 'Hello Server!'
  trident echo send 127.0.0.1:9000 'Hello Server!'

The server prints 'Serving on (ADDR, PORT)' and its connection log on
stderr; Ctrl-C or SIGTERM stops it gracefully (exit 0).";

/// `trident echo` subcommands.
#[derive(Debug, Subcommand)]
pub enum EchoCommand {
    /// Serve: read up to 100 bytes at a time, answer each chunk with
    /// "Server received: <chunk>".
    Serve(EchoServeArgs),
    /// The chapter's client: connect, send MESSAGE, read once (up to 100
    /// bytes), print what was sent and received.
    Send(EchoSendArgs),
}

/// `trident echo serve` options.
#[derive(Debug, Args)]
pub struct EchoServeArgs {
    /// Server options.
    #[command(flatten)]
    pub server: ServeArgs,
    /// Do not log every chunk received (connections are still logged).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Connections served at once (-e processes: shared among the
    /// workers); one more is closed at once. Each connection costs a thread
    /// with -e threads.
    #[arg(long, default_value_t = crate::echo::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: usize,
    /// Close a connection that sends nothing, or reads nothing we send,
    /// for this long (0: never).
    #[arg(long, default_value = "60s", value_parser = parse_idle_timeout, value_name = "DUR")]
    pub idle_timeout: Duration,
}

/// `--idle-timeout`: a duration, or 0 for none.
fn parse_idle_timeout(s: &str) -> Result<Duration, String> {
    if s.trim_end_matches(['s', 'm', 'h']) == "0" { Ok(Duration::ZERO) } else { parse_duration(s) }
}

/// `trident echo send` arguments.
#[derive(Debug, Args)]
pub struct EchoSendArgs {
    /// [ADDR] MESSAGE: the server (default 127.0.0.1:8888) and what to send.
    #[arg(value_name = "[ADDR] MESSAGE", num_args = 1..=2, required = true)]
    pub words: Vec<String>,
}

/// Options shared by every server subcommand.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 takes a free port (the bound address is
    /// printed on stderr). [default: 127.0.0.1 and the protocol's port]
    #[arg(short = 'l', long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Concurrency engine: async = a tokio task per connection; threads = a
    /// thread per connection; processes = pre-forked worker processes
    /// sharing the listening socket.
    #[arg(short = 'e', long, default_value = "async", value_parser = parse_engine)]
    pub engine: EngineKind,
    /// Worker processes (-e processes) or runtime threads (-e async).
    /// [default: one per core]
    #[arg(short = 'c', long = "workers", value_name = "N", value_parser = parse_concurrency)]
    pub workers: Option<u32>,
}

impl ServeArgs {
    /// The validated server config; `default_listen` when --listen is not given.
    pub fn into_config(self, default_listen: &str) -> Result<crate::server::ServerConfig, BadInput> {
        let listen = self.listen.as_deref().unwrap_or(default_listen);
        let addr = crate::server::resolve(listen)?[0];
        let mut config = crate::server::ServerConfig::new(self.engine, addr);
        if let Some(n) = self.workers {
            if self.engine == EngineKind::Threads {
                return Err(BadInput(
                    "-c/--workers applies to -e processes and -e async; -e threads runs one thread per connection"
                        .into(),
                ));
            }
            config.workers = n as usize;
        }
        Ok(config)
    }
}

/// `trident __serve-worker` arguments (set by the parent server).
#[derive(Debug, Args)]
pub struct ServeWorkerArgs {
    /// Protocol name.
    pub protocol: String,
    /// The inherited listening socket.
    #[arg(long)]
    pub fd: i32,
    /// The protocol's config, JSON.
    #[arg(long)]
    pub config: String,
    /// Grace period for connections on shutdown, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub grace_ms: u64,
    /// The inherited Unix socket to the hub process (chat).
    #[arg(long)]
    pub hub_fd: Option<i32>,
    /// This worker's number (chat).
    #[arg(long, default_value_t = 0)]
    pub worker_id: u64,
    /// How many workers share the connection limit.
    #[arg(long, default_value_t = 1)]
    pub share: usize,
}

impl ServeWorkerArgs {
    /// The worker's options.
    pub fn worker_args(&self) -> crate::server::processes::WorkerArgs {
        crate::server::processes::WorkerArgs {
            fd: self.fd,
            config: self.config.clone(),
            grace: Duration::from_millis(self.grace_ms),
            share: self.share,
        }
    }
}

/// Engine choice, shared by every batch subcommand.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Concurrency engine.
    #[arg(short = 'e', long, default_value = "async", value_parser = parse_engine)]
    pub engine: EngineKind,
    /// Maximum tasks in flight (threads, worker processes or futures).
    /// [default: threads 512, processes 64, async 4096]
    #[arg(short = 'c', long, value_name = "N", value_parser = parse_concurrency)]
    pub concurrency: Option<u32>,
    /// Tokio runtime flavour for the async engine.
    #[arg(long, value_enum, default_value_t = RuntimeArg::MultiThread)]
    pub async_runtime: RuntimeArg,
}

/// `--async-runtime` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuntimeArg {
    /// One thread runs everything.
    CurrentThread,
    /// One worker thread per core.
    MultiThread,
}

fn parse_engine(s: &str) -> Result<EngineKind, String> {
    s.parse()
}

fn parse_concurrency(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of tasks in flight, at least 1".into()),
    }
}

impl EngineArgs {
    /// The validated engine config.
    pub fn config(&self) -> EngineConfig {
        let mut config = EngineConfig::new(self.engine);
        if let Some(n) = self.concurrency {
            config = config.with_concurrency(n as usize);
        }
        config.async_runtime = self.async_runtime.into();
        config
    }
}

impl From<RuntimeArg> for AsyncRuntime {
    fn from(arg: RuntimeArg) -> Self {
        match arg {
            RuntimeArg::CurrentThread => AsyncRuntime::CurrentThread,
            RuntimeArg::MultiThread => AsyncRuntime::MultiThread,
        }
    }
}

/// `trident scan` options.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Hosts, addresses, CIDR blocks (10.0.0.0/30), IPv4 ranges (10.0.0.1-20).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Scan the running lab NAME (see trident lab up): its address, sent
    /// through the lab's own interface only; refused if the lab is gone.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["targets", "input_list"])]
    pub lab: Option<String>,
    /// Read targets from FILE (also -iL FILE; # comments); - for stdin.
    #[arg(long = "input-list", value_name = "FILE")]
    pub input_list: Option<PathBuf>,
    /// Ports: 22,80,8000-8100; - or 1-65535 for all. [default: the 1,000 most common]
    #[arg(short = 'p', long, value_name = "PORTS", allow_hyphen_values = true)]
    pub ports: Option<String>,
    /// Scan the N most common ports instead of -p.
    #[arg(long, value_name = "N", conflicts_with = "ports", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub top_ports: Option<u32>,
    /// Engine options.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Timing preset, nmap's -T0..-T5 (timeouts and retry budget; -T3 is
    /// the default). Written -T4 or --timing 4.
    #[arg(short = 'T', long = "timing", value_name = "0-5", value_parser = clap::value_parser!(u8).range(0..=5))]
    pub timing: Option<u8>,
    /// Fixed time one connect attempt may take (e.g. 500ms, 2s) instead of
    /// the adaptive timeout (srtt + 4 rttvar of the answers so far, 100ms-10s).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Fixed number of retry rounds for ports that did not answer, instead
    /// of the adaptive budget (another round while retries recover answers, at most 10).
    #[arg(long, value_name = "N", conflicts_with = "max_retries")]
    pub retries: Option<u8>,
    /// Upper bound of the adaptive retry rounds.
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u8>,
    /// Timeout before any RTT has been measured (adaptive timing).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub initial_rtt_timeout: Option<Duration>,
    /// Lower clamp of the adaptive timeout [default: 10ms].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub min_rtt_timeout: Option<Duration>,
    /// Upper clamp of the adaptive timeout [default: 10s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_rtt_timeout: Option<Duration>,
    /// Start at most this many probes per second (all engines).
    #[arg(long, value_name = "PPS", value_parser = parse_rate)]
    pub max_rate: Option<f64>,
    /// Seed of the random probe order; the same seed gives the same order.
    /// [default: random, or a fixed one with --shard]
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Scan only shard K of N (K from 0) of the (address x port) space; with
    /// the same seed the N shards are disjoint and add up to the whole scan.
    /// auto/N takes K from $JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Read what each open port's service says first (SSH, SMTP, FTP...
    /// greet the client) and show it.
    #[arg(long)]
    pub banners: bool,
    /// Bytes of banner to read at most.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub banner_bytes: u32,
    /// How long to wait for a banner after the connection is accepted.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = parse_duration)]
    pub banner_wait: Duration,
    /// Output format: text, json, jsonl (one line per port, streamed), csv,
    /// grep (as nmap -oG) or xml (as nmap -oX: for ndiff and nmap tools).
    #[arg(short = 'f', long, default_value = "text", value_parser = parse_format)]
    pub format: Format,
    /// Write results to FILE (appears only when complete) instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// List only open ports.
    #[arg(long)]
    pub open: bool,
    /// Resolve host names to IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Resolve host names to IPv6 addresses only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// No progress bar.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Explain what is being done on stderr.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Scan more than 2^24 addresses or send more than 2^32 probes (in this
    /// shard); without it such a scan is refused as a likely typo.
    #[arg(long)]
    pub allow_huge: bool,
    /// Print the targets and the size of the scan (addresses, ports,
    /// probes, shard) and exit without sending a probe (as nmap -sL).
    #[arg(long)]
    pub list_targets: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err("expected a positive number of probes per second".into()),
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse()
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

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
    /// Measure the servers: memory per idle chat connection, and echo
    /// requests per second against a minimal tokio echo and any peer.
    #[command(after_help = BENCH_CHAT_EXAMPLES)]
    Chat(BenchChatArgs),
}

const BENCH_CHAT_EXAMPLES: &str = "\
Examples:
  trident bench chat                                  every part, every engine
  trident bench chat --parts fanout,latency --engines async --members 1000 --rates 500,1000,2000
  trident bench chat --parts echo --runs 5 --peer 'chapter=python3 docs/bench/chapter_echo.py {port}'
  trident bench chat --parts idle --idle 1000 --engines async,threads

The load generators run inside the bench process on one thread; servers
are separate processes on 127.0.0.1.";

/// `trident bench chat` options.
#[derive(Debug, Args)]
pub struct BenchChatArgs {
    /// Engines, rounds and output directory.
    #[command(flatten)]
    pub run: BenchRunArgs,
    /// What to measure: idle, echo, fanout, latency (comma-separated).
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
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,1500,2000,3000", value_name = "R,R...")]
    pub rates: Vec<f64>,
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
        if self.connections == 0 {
            return Err(BadInput("--connections must be at least 1".into()));
        }
        Ok(crate::bench::chat::ChatBenchConfig {
            parts: self.parts,
            engines: self.run.engines,
            runs: self.run.runs,
            idle: self.idle,
            echo_connections: self.connections,
            duration: self.duration,
            peers,
            members: self.members.max(2),
            senders: self.senders.max(1),
            rates: self.rates,
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
    /// Peers to run when installed: nmap, rustscan, rustscan-default, or none.
    #[arg(long = "vs", value_delimiter = ',', default_value = "nmap,rustscan")]
    pub peers: Vec<String>,
    /// Ports every contender scans.
    #[arg(short = 'p', long, default_value = "1-65535")]
    pub ports: String,
    /// Extra arguments for every trident scan (e.g. "-c 8000").
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub scan_args: Option<String>,
    /// Kill any run that takes longer than this.
    #[arg(long, value_name = "DUR", default_value = "300s", value_parser = parse_duration)]
    pub time_limit: Duration,
}

impl BenchScanArgs {
    /// The validated bench config.
    pub fn into_config(self) -> Result<crate::bench::scan::ScanBenchConfig, BadInput> {
        use crate::bench::scan::Contender;
        let ports = PortList::parse(&self.ports).map_err(|e| BadInput(e.to_string()))?;
        let peers = self
            .peers
            .iter()
            .filter(|p| p.as_str() != "none")
            .map(|p| Contender::peer(p).map_err(BadInput))
            .collect::<Result<Vec<_>, _>>()?;
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
    /// synced), wget2, aria2c, aria2c-x4, or none.
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
        use crate::bench::fetch::{Contender, FetchBenchConfig, Workload, WorkloadKind};
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
        let peers = self
            .peers
            .iter()
            .filter(|p| p.as_str() != "none")
            .map(|p| Contender::peer(p).map_err(BadInput))
            .collect::<Result<Vec<_>, _>>()?;
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

/// `trident demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Engines to compare (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "threads,processes,async", value_parser = parse_engine)]
    pub engines: Vec<EngineKind>,
    /// Highest port scanned (the scan covers 1..=this).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u16).range(100..))]
    pub max_port: u16,
    /// Number of listeners to start.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub listeners: u16,
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`; a bare number is seconds (as nmap).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (expected e.g. 250ms, 2s, 1.5s, 1m)");
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("invalid duration {s:?}: must be above 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Rewrites nmap-style `-iL` into `--input-list`, since clap short options
/// are one letter.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter().map(|a| if a == "-iL" { OsString::from("--input-list") } else { a }).collect()
}

impl ScanArgs {
    /// Validates everything and resolves the targets, before any probe.
    pub fn into_config(self) -> Result<ScanConfig, BadInput> {
        let ports = match (&self.ports, self.top_ports) {
            (Some(spec), _) => PortList::parse(spec).map_err(|e| BadInput(e.to_string()))?,
            (None, Some(n)) => PortList::top(n as usize),
            (None, None) => PortList::default_top(),
        };
        let mut specs = self.targets.clone();
        if let Some(path) = &self.input_list {
            let text = if path.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).map(|_| s)
            } else {
                fs::read_to_string(path)
            }
            .map_err(|e| BadInput(format!("cannot read target list {}: {e}", path.display())))?;
            specs.extend(target::parse_list(&text));
        }
        let mut device = None;
        if let Some(name) = &self.lab {
            let (state, index) = crate::lab::cli::running_lab(name)?;
            specs.push(state.ip.to_string());
            device = Some(index);
        }
        if specs.is_empty() {
            return Err(BadInput("no targets given (e.g. trident scan 127.0.0.1, or -iL FILE, or --lab NAME)".into()));
        }
        let family = match (self.ipv4, self.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        };
        let (targets, skipped) = TargetSet::resolve(&specs, family).map_err(|e| BadInput(e.to_string()))?;
        if targets.is_empty() {
            let first = skipped.first().map_or_else(|| "no targets".to_string(), ToString::to_string);
            return Err(BadInput(first));
        }
        let shard = self.shard.unwrap_or(Shard::ALL);
        if !self.list_targets {
            crate::scan::Plan::new(&targets, &ports, shard).check(self.allow_huge)?;
        }
        let mut timing = match self.timing {
            Some(level) => {
                TimingConfig::preset(level).ok_or_else(|| BadInput(format!("no timing preset -T{level}")))?
            }
            None => TimingConfig::normal(),
        };
        timing.fixed = self.timeout;
        timing.initial = self.initial_rtt_timeout.unwrap_or(timing.initial);
        timing.min = self.min_rtt_timeout.unwrap_or(timing.min);
        timing.max = self.max_rtt_timeout.unwrap_or(timing.max);
        if timing.min > timing.max {
            return Err(BadInput(format!(
                "--min-rtt-timeout {:?} is above --max-rtt-timeout {:?}",
                timing.min, timing.max
            )));
        }
        if let Some(max) = self.max_retries {
            timing.retries = Retries::Adaptive { max };
        }
        if let Some(n) = self.retries {
            timing.retries = Retries::Fixed(n);
        }
        // Shards must agree on the order, so sharding without a seed uses a
        // fixed one rather than a random one.
        let seed =
            self.seed.unwrap_or_else(|| if self.shard.is_some() { 0x0074_7269_6465_6e74 } else { random_seed() });
        let mut engine = self.engine.config();
        engine.max_rate = self.max_rate;
        Ok(ScanConfig {
            targets,
            skipped,
            ports,
            engine,
            timing,
            seed,
            shard,
            banner: self.banners.then_some(BannerGrab { max_bytes: self.banner_bytes, wait: self.banner_wait }),
            format: self.format,
            output: self.output,
            open_only: self.open,
            progress: !self.quiet,
            verbose: self.verbose,
            list_targets: self.list_targets,
            device,
        })
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("250ms", Duration::from_millis(250)),
            ("2s", Duration::from_secs(2)),
            ("2", Duration::from_secs(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("1m", Duration::from_secs(60)),
            ("500us", Duration::from_micros(500)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        for bad in ["", "s", "0", "-1s", "1x", "1.2.3s", "2d", "1e3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn il_is_rewritten() {
        let args = normalize_args(["trident", "scan", "-iL", "f"].map(OsString::from));
        assert_eq!(args[2], "--input-list");
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
