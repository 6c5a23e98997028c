//! `trident bench all`: every workload's bench (scan, fetch, chat) in one
//! go, with every installed peer, into one report directory.
//!
//! Each bench runs as its own `trident bench ...` process, exactly as a
//! user would type it: the report records those command lines so any
//! figure can be reproduced by running one of them, a bench that fails
//! leaves the others standing, and each bench's own output goes to a log
//! beside the report instead of the terminal, which shows one progress line
//! per step. Each bench writes its `summary.json` (`--out`), which
//! [`report::ingest`](super::report::ingest) gathers into one table.
//!
//! After the three benches come the scaling sweeps, each point one more
//! bench run tagged with the sweep's parameter ([`report::sweep`]): scan
//! concurrency (`-j`) and ports, fetch file count and file size, idle chat
//! connections, echo clients and chat channel members. The chapter's own
//! programs run beside the engines where they have the same knob (ports,
//! files, sizes, echo clients); the report draws each sweep as log-log
//! lines per contender.
//!
//! The sizes come from the mode: `quick` (a few minutes on two cores,
//! every chart), `full` (the benches' own defaults, lab targets when
//! root) and a hidden `tiny` for tests.

use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use super::harness::Peer as _;
use super::report::{self, CommandRun, Machine, Missing, Results, Row, sweep};
use crate::engine::EngineKind;
use crate::error::BadInput;

/// How big the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Small targets: minutes.
    Quick,
    /// The benches' defaults.
    Full,
    /// Tiny targets, for tests: seconds.
    Tiny,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
            Mode::Tiny => "tiny",
        }
    }
}

/// Validated `trident bench all` options.
#[derive(Clone, Debug)]
pub struct BenchAllConfig {
    /// How big.
    pub mode: Mode,
    /// The report directory.
    pub out: PathBuf,
    /// trident engines.
    pub engines: Vec<EngineKind>,
    /// Peers asked for (None: every known one).
    pub vs: Option<Vec<String>>,
}

/// Every peer `bench all` knows, per workload, in report order; a name may
/// serve several workloads (the chapter's programs).
const SCAN_PEERS: &[&str] =
    &["nmap", "rustscan", "chapter-threads", "chapter-processes", "chapter-asyncio", "chapter-asyncio-timeout"];
const FETCH_PEERS: &[&str] =
    &["curl", "curl-sync", "wget2", "aria2c", "aria2c-x4", "chapter-threads", "chapter-asyncio"];
const CHAT_PEERS: &[&str] = &["chapter-asyncio", "inspircd"];

/// How to install a peer's program.
fn install_hint(program: &str) -> String {
    match program {
        "rustscan" => "cargo install rustscan --root /opt/rustscan".into(),
        "aria2c" => "apt-get install aria2".into(),
        other => format!("apt-get install {other}"),
    }
}

/// The peers of one workload to run (installed), and those missing.
fn resolve<P: super::harness::Peer>(
    workload: &str,
    known: &[&str],
    asked: &Option<Vec<String>>,
) -> (Vec<String>, Vec<Missing>) {
    let names: Vec<&str> = match asked {
        Some(asked) => asked.iter().map(String::as_str).collect(),
        None => known.to_vec(),
    };
    let (mut run, mut missing) = (Vec::new(), Vec::new());
    for name in names {
        let Ok(peer) = P::parse(name) else { continue };
        match peer.locate() {
            Ok(_) => run.push(name.to_string()),
            Err(why) => missing.push(Missing {
                workload: workload.into(),
                peer: name.into(),
                why,
                install: install_hint(peer.program()),
            }),
        }
    }
    (run, missing)
}

/// Checks that every name of `--vs` is a peer of some workload.
pub fn check_peers(vs: &[String]) -> Result<(), BadInput> {
    use super::{chat::ChatPeer, fetch::Peer as FetchPeer, scan::Peer as ScanPeer};
    for name in vs {
        if ScanPeer::parse(name).is_err() && FetchPeer::parse(name).is_err() && ChatPeer::parse(name).is_err() {
            return Err(BadInput(format!(
                "unknown peer {name:?} (expected one of {}, or none)",
                [SCAN_PEERS, FETCH_PEERS, CHAT_PEERS].concat().join(", ")
            )));
        }
    }
    Ok(())
}

/// One bench to run.
#[derive(Clone, Debug)]
struct Step {
    workload: &'static str,
    /// The scan case's name (fetch and chat name their cases themselves:
    /// theirs is only shown in the progress line).
    case: String,
    /// Arguments after `trident bench`, without `--out`.
    args: Vec<String>,
    /// A guess of its duration, seconds, for the ETA.
    estimate: f64,
    /// The scaling sweep it is a point of, and the point.
    sweep: Option<(&'static str, f64)>,
}

/// A step of `workload` running `args` (split at whitespace) then `tail`.
fn step(workload: &'static str, case: &str, estimate: f64, args: &str, tail: Vec<String>) -> Step {
    let args =
        std::iter::once(workload.to_string()).chain(args.split_whitespace().map(String::from)).chain(tail).collect();
    Step { workload, case: case.into(), args, estimate, sweep: None }
}

fn vs_args(peers: &[String]) -> Vec<String> {
    vec!["--vs".into(), if peers.is_empty() { "none".into() } else { peers.join(",") }]
}

/// The largest scan concurrency the sweep gives the processes engine.
pub const PROCESSES_MAX_J: u32 = 1024;

/// How big each bench of a mode is.
struct Sizes {
    /// The main scan: `--lab` and `-p` values, case name, peers' time limit.
    scan: &'static str,
    scan_case: &'static str,
    fetch: &'static str,
    chat: &'static str,
    /// A scan or fetch sweep point's run settings (`--runs`, `--time-limit`...).
    point: &'static str,
    /// The concurrency sweep's scan (args) and its points.
    sweep_scan: &'static str,
    sweep_case: &'static str,
    concurrency: &'static [u32],
    /// The ports sweep's points: `-p 1-N` on loopback.
    ports: &'static [u32],
    /// The file-count sweep's points: N files of 16 KiB.
    files: &'static [u32],
    /// The file-size sweep's points: 4 files of N KiB.
    sizes_kib: &'static [u32],
    /// The idle-connections sweep's points.
    idle: &'static [u32],
    /// The echo-clients sweep's points, and each point's duration.
    echo: &'static [u32],
    echo_duration: &'static str,
    /// The channel-members sweep's points, and each rate step's duration.
    members: &'static [u32],
    step_duration: &'static str,
    /// Estimated seconds: scan, fetch, chat, a sweep point.
    estimates: [f64; 4],
}

const TINY: Sizes = Sizes {
    scan: "--lab loopback -p 1-3000 --runs 1 --warmup 0 --time-limit 20s",
    scan_case: "loopback 1-3000",
    fetch: "--workload small --small-files 20 --runs 1 --warmup 0 --time-limit 30s",
    chat: "--parts idle,echo,latency --idle 20 --connections 4 --duration 300ms --load-duration 300ms \
           --members 10 --senders 2 --rates 100 --runs 1",
    point: "--runs 1 --warmup 0 --time-limit 20s",
    sweep_scan: "--lab loopback -p 1-2000",
    sweep_case: "loopback 1-2000",
    concurrency: &[16, 256],
    ports: &[300, 1000],
    files: &[5, 20],
    sizes_kib: &[16, 256],
    idle: &[10, 40],
    echo: &[1, 4],
    echo_duration: "300ms",
    members: &[5, 10],
    step_duration: "300ms",
    estimates: [10.0, 10.0, 15.0, 4.0],
};

const QUICK: Sizes = Sizes {
    scan: "--lab loopback -p 1-10000 --runs 2 --warmup 0 --time-limit 20s",
    scan_case: "loopback 1-10000",
    fetch: "--workload small --small-files 100 --runs 2 --warmup 0 --time-limit 60s",
    chat: "--parts idle,echo,latency --idle 300 --connections 20 --duration 1s --load-duration 1s \
           --members 100 --senders 5 --rates 300 --runs 2",
    point: "--runs 1 --warmup 0 --time-limit 30s",
    sweep_scan: "--lab loopback -p 1-10000",
    sweep_case: "loopback 1-10000",
    concurrency: &[16, 256, 4096],
    ports: &[1000, 10000],
    files: &[100, 1000],
    sizes_kib: &[64, 16384],
    idle: &[100, 1000],
    echo: &[1, 100],
    echo_duration: "1s",
    members: &[10, 100],
    step_duration: "500ms",
    estimates: [40.0, 60.0, 45.0, 6.0],
};

/// The full sizes: the benches' defaults, on loopback (the lab needs root).
const FULL: Sizes = Sizes {
    scan: "--lab loopback -p 1-65535 --runs 3",
    scan_case: "loopback 1-65535",
    fetch: "--runs 3",
    chat: "--runs 3",
    point: "--runs 1 --warmup 0 --time-limit 120s",
    sweep_scan: "--lab loopback -p 1-65535",
    sweep_case: "loopback 1-65535",
    concurrency: &[16, 64, 256, 1024, 4096, 16384],
    ports: &[1000, 4096, 16384, 65535],
    files: &[100, 1000, 10000],
    sizes_kib: &[64, 1024, 16384, 262144],
    idle: &[100, 1000, 10000],
    echo: &[1, 10, 100, 1000],
    echo_duration: "2s",
    members: &[10, 100, 1000],
    step_duration: "1s",
    estimates: [90.0, 600.0, 300.0, 20.0],
};

/// The fan-out rate ladder for a channel of `members`: messages per
/// second that offer 10 k to 10 M deliveries per second, whatever the size
/// (every engine kept up with 3 M on 2 cores: the top must be past that).
fn member_rates(members: u32) -> String {
    let others = f64::from(members.max(2) - 1);
    let rates: Vec<String> =
        [1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7].iter().map(|d| format!("{}", (d / others).round().max(1.0))).collect();
    rates.join(",")
}

/// The steps of a run, with the peers each runs: the main scan, fetch and
/// chat benches, then the scaling sweeps (trident's engines, with the
/// chapter's programs where they have the same knob: ports, files, sizes,
/// echo clients).
fn plan(config: &BenchAllConfig, scan: &[String], fetch: &[String], chat: &[String]) -> Vec<Step> {
    let engines = config.engines.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(",");
    let with = |peers: &[String]| [vec!["--engines".to_string(), engines.clone()], vs_args(peers)].concat();
    let chapter_of = |peers: &[String]| -> Vec<String> {
        // The timeout variant is the same program as chapter-asyncio where
        // nothing is filtered (loopback): one of them is enough.
        peers.iter().filter(|p| p.starts_with("chapter-") && *p != "chapter-asyncio-timeout").cloned().collect()
    };
    let chapter: Vec<String> = scan.iter().filter(|p| p.starts_with("chapter-")).cloned().collect();
    let not_chapter: Vec<String> = scan.iter().filter(|p| !p.starts_with("chapter-")).cloned().collect();
    let sizes = match config.mode {
        Mode::Tiny => TINY,
        Mode::Quick => QUICK,
        Mode::Full => FULL,
    };
    let [scan_s, fetch_s, chat_s, point_s] = sizes.estimates;
    let mut steps = Vec::new();
    // As root, the full sweep scans the lab's filtered (DROP) ports, where
    // concurrency is what bounds the time: each probe waits out its
    // timeout (over a second with the retry), so 256 of them take 16
    // rounds at -j 16 and one from -j 256 up (2,000 ports kept every engine
    // past the 120 s limit at -j 16).
    let (sweep_scan, sweep_case) = if config.mode == Mode::Full && is_root() {
        ("--lab full -p 20001-20256", "lab full 20001-20256 (filtered)")
    } else {
        (sizes.sweep_scan, sizes.sweep_case)
    };
    if config.mode == Mode::Full {
        // The chapter's scanners start a thread, a task or a pool job per
        // port: they get a range of their own that they can finish.
        steps.push(step("scan", sizes.scan_case, scan_s, sizes.scan, with(&not_chapter)));
        if is_root() {
            steps.push(step(
                "scan",
                "lab full 1-65535",
                300.0,
                "--lab full -p 1-65535 --runs 3 --warmup 0 --time-limit 300s",
                with(&not_chapter),
            ));
            let case = "lab full 1-1000,20001-20100";
            steps.push(step(
                "scan",
                case,
                120.0,
                "--lab full -p 1-1000,20001-20100 --runs 2 --warmup 0 --time-limit 30s",
                with(&chapter),
            ));
        } else {
            let case = "loopback 1-10000";
            steps.push(step("scan", case, 90.0, "--lab loopback -p 1-10000 --runs 3 --time-limit 60s", with(&chapter)));
        }
    } else {
        steps.push(step("scan", sizes.scan_case, scan_s, sizes.scan, with(scan)));
    }
    steps.push(step("fetch", "", fetch_s, sizes.fetch, with(fetch)));
    steps.push(step("chat", "", chat_s, sizes.chat, with(chat)));
    let mut point = |workload: &'static str, case: String, args: String, tail: Vec<String>, sweep, x: u32| {
        // bench chat bounds its own parts' durations: no --time-limit.
        let settings = if workload == "chat" { "--runs 1 --warmup 0" } else { sizes.point };
        let mut s = step(workload, &case, point_s, &format!("{args} {settings}"), tail);
        s.sweep = Some((sweep, f64::from(x)));
        steps.push(s);
    };
    for &j in sizes.concurrency {
        // The processes engine's memory grows with -j (at -j 4096 on
        // loopback: 3.8 GiB PSS, 54 s): above PROCESSES_MAX_J it is left
        // out of the sweep rather than let it take the machine's memory.
        let engines: Vec<String> = config
            .engines
            .iter()
            .filter(|&&e| e != EngineKind::Processes || j <= PROCESSES_MAX_J)
            .map(|e| e.to_string())
            .collect();
        if engines.is_empty() {
            continue;
        }
        let tail = [
            vec!["--engines".into(), engines.join(","), "--vs".into(), "none".into()],
            vec!["--scan-args".into(), format!("-j {j}")],
        ]
        .concat();
        point("scan", format!("{sweep_case} -j {j}"), sweep_scan.into(), tail, sweep::SCAN_CONCURRENCY, j);
    }
    for &n in sizes.ports {
        let (case, args) = (format!("loopback 1-{n}"), format!("--lab loopback -p 1-{n}"));
        point("scan", case, args, with(&chapter_of(scan)), sweep::SCAN_PORTS, n);
    }
    for &n in sizes.files {
        let args = format!("--workload small --small-files {n}");
        point("fetch", format!("{n} x 16 KiB"), args, with(&chapter_of(fetch)), sweep::FETCH_FILES, n);
    }
    for &kib in sizes.sizes_kib {
        let args = format!("--workload small --small-files 4 --small-jobs 4 --small-kib {kib}");
        point("fetch", format!("4 x {kib} KiB"), args, with(&chapter_of(fetch)), sweep::FETCH_SIZE, kib);
    }
    for &n in sizes.idle {
        let args = format!("--parts idle --idle {n}");
        point("chat", format!("idle {n} connections"), args, with(&[]), sweep::IDLE, n);
    }
    for &n in sizes.echo {
        let args = format!("--parts echo --connections {n} --duration {}", sizes.echo_duration);
        point("chat", format!("echo {n} clients"), args, with(&chapter_of(chat)), sweep::ECHO_CLIENTS, n);
    }
    for &n in sizes.members {
        let args = format!(
            "--parts fanout,latency --members {n} --senders {} --rates {} --load-duration {}",
            n.min(10),
            member_rates(n),
            sizes.step_duration
        );
        point("chat", format!("channel of {n}"), args, with(&[]), sweep::CHAT_MEMBERS, n);
    }
    steps
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `trident` and its commit, when it runs from a git checkout.
fn version() -> String {
    let commit = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match commit {
        Some(c) if !c.is_empty() => format!("trident {} (commit {c})", env!("CARGO_PKG_VERSION")),
        _ => format!("trident {}", env!("CARGO_PKG_VERSION")),
    }
}

/// The file system holding `dir`: the longest mount point above it.
fn file_system(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let best = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && dir.starts_with(f[1])).then(|| (f[1].to_string(), f[2].to_string()))
        })
        .max_by_key(|(point, _)| point.len());
    match best {
        Some((point, kind)) => format!("{} ({kind}, mounted at {point})", dir.display()),
        None => dir.display().to_string(),
    }
}

/// What the report says of this machine.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines().find(|l| l.starts_with(key)).and_then(|l| l.split(':').nth(1)).map(|v| v.trim().to_string())
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 =
        field(&meminfo, "MemTotal").and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok())).unwrap_or(0);
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".into()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or("unknown".into(), |s| s.trim().into()),
        memory_mib: mem_kib / 1024,
        download_fs: file_system(&std::env::temp_dir()),
    }
}

/// A command line as a shell would take it.
fn shell_line(args: &[String]) -> String {
    let quote = |a: &String| {
        if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./,:=@%+".contains(c)) {
            a.clone()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    args.iter().map(quote).collect::<Vec<_>>().join(" ")
}

fn clock(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// Runs every step and writes the report; returns whether every bench
/// produced its results.
pub fn run(config: &BenchAllConfig) -> anyhow::Result<bool> {
    use super::{chat::ChatPeer, fetch::Peer as FetchPeer, scan::Peer as ScanPeer};
    let started_at = Instant::now();
    let started = httpdate::fmt_http_date(std::time::SystemTime::now());
    // The checkout's commit now, not after a half-hour run in which it may
    // have moved on.
    let trident = version();
    let (scan, mut missing) = resolve::<ScanPeer>("scan", SCAN_PEERS, &config.vs);
    let (fetch, m) = resolve::<FetchPeer>("fetch", FETCH_PEERS, &config.vs);
    missing.extend(m);
    let (chat, m) = resolve::<ChatPeer>("chat", CHAT_PEERS, &config.vs);
    missing.extend(m);
    for m in missing.iter().filter(|_| !crate::term::quiet()) {
        eprintln!("trident: {} ({}) is not installed: {}; to include it: {}", m.peer, m.workload, m.why, m.install);
    }
    let steps = plan(config, &scan, &fetch, &chat);
    let dir = &config.out;
    std::fs::create_dir_all(dir.join("logs")).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = std::env::current_exe().context("cannot find the trident executable")?;
    let (mut rows, mut commands, mut complete) = (Vec::<Row>::new(), Vec::new(), true);
    let total: f64 = steps.iter().map(|s| s.estimate).sum();
    let mut done_estimate = 0.0;
    // -q: no progress at all; on a terminal, one line redrawn; else a line
    // per step.
    let quiet = crate::term::quiet();
    let live = !quiet && std::io::stderr().is_terminal();
    for (i, step) in steps.iter().enumerate() {
        let what =
            if step.case.is_empty() { step.workload.to_string() } else { format!("{} {}", step.workload, step.case) };
        // The time left: the estimates not yet done, at the pace so far.
        let progress = |within: f64| {
            let elapsed = started_at.elapsed().as_secs_f64();
            let pace = if done_estimate > 0.0 { (elapsed - within) / done_estimate } else { 1.0 };
            let left = (total - done_estimate) * pace - within;
            let left = if left >= 1.0 { format!("about {} left", clock(left)) } else { "nearly done".into() };
            format!("bench all [{}/{}] {what}: elapsed {}, {left}", i + 1, steps.len(), clock(elapsed))
        };
        if !live && !quiet {
            eprintln!("{}", progress(0.0));
        }
        let name = format!("{}-{}", i + 1, step.workload);
        let raw = dir.join("raw").join(&name);
        // A bench that fails writes no summary.json: one left here by an
        // earlier run (the default --out is reused) must not be read as
        // this run's figures.
        match std::fs::remove_dir_all(&raw) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot clear {}", raw.display()));
            }
            _ => {}
        }
        let mut args: Vec<String> = std::iter::once("bench".to_string()).chain(step.args.iter().cloned()).collect();
        args.extend(["--out".into(), raw.display().to_string()]);
        let log = format!("logs/{name}.log");
        let out =
            File::create(dir.join(&log)).with_context(|| format!("cannot create {}", dir.join(&log).display()))?;
        let t0 = Instant::now();
        let mut child = Command::new(&exe)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot run trident {}", shell_line(&args)))?;
        // On a terminal, one line redrawn every half second ("\r" and
        // spaces: no cursor escapes, so TERM=dumb is fine too); otherwise
        // nothing to redraw, so the bench's exit is waited for directly
        // (polling would add up to half a second to every step).
        let status = if live {
            loop {
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                eprint!("\r{:<78}", progress(t0.elapsed().as_secs_f64()));
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        } else {
            child.wait()?
        };
        if live {
            eprintln!("\r{:<78}", progress(t0.elapsed().as_secs_f64()));
        }
        let wall_s = t0.elapsed().as_secs_f64();
        done_estimate += step.estimate;
        commands.push(CommandRun {
            workload: step.workload.into(),
            command: format!("trident {}", shell_line(&args)),
            exit_code: status.code(),
            wall_s,
            log: log.clone(),
        });
        let summary = raw.join("summary.json");
        let got = match step.workload {
            "scan" => report::ingest::scan(&summary, &step.case),
            "fetch" => report::ingest::fetch(&summary),
            _ => report::ingest::chat(&summary),
        };
        match got {
            Ok(got) => rows.extend(got.into_iter().map(|mut row| {
                if let Some((name, x)) = step.sweep {
                    (row.sweep, row.x) = (Some(name.into()), Some(x));
                }
                row
            })),
            Err(e) => {
                complete = false;
                eprintln!("trident: bench {what} gave no results ({e:#}); see {}", dir.join(&log).display());
            }
        }
    }
    let results = Results {
        schema: report::SCHEMA,
        mode: config.mode.name().into(),
        started,
        wall_s: started_at.elapsed().as_secs_f64(),
        trident,
        machine: machine(),
        commands,
        not_installed: missing,
        rows,
    };
    let charts = report::render::write(dir, &results)?;
    println!(
        "bench all: {} runs of {} contenders, {} charts in {:.0} s; report: {}",
        results.rows.len(),
        results.tools().len(),
        charts.len(),
        results.wall_s,
        dir.join("index.html").display()
    );
    Ok(complete)
}

/// `--redraw`: the report in `dir` drawn again from its results.json.
pub fn redraw(dir: &Path) -> anyhow::Result<()> {
    // A directory that holds no run is bad input (exit 2), not a failure.
    let path = dir.join("results.json");
    let text = std::fs::read(&path).map_err(|e| BadInput(format!("cannot read {}: {e}", path.display())))?;
    let results: Results = serde_json::from_slice(&text)
        .map_err(|e| BadInput(format!("{} is not a bench all results file: {e}", path.display())))?;
    if results.schema != report::SCHEMA {
        return Err(BadInput(format!(
            "{} has results schema {}; this trident draws schema {}",
            path.display(),
            results.schema,
            report::SCHEMA
        ))
        .into());
    }
    let charts = report::render::write(dir, &results)?;
    println!(
        "bench all: {} charts redrawn from {}; report: {}",
        charts.len(),
        path.display(),
        dir.join("index.html").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_quoted_for_a_shell() {
        let args: Vec<String> = ["bench", "scan", "-p", "1-10", "--scan-args", "-j 8", "it's"].map(String::from).into();
        assert_eq!(shell_line(&args), r"bench scan -p 1-10 --scan-args '-j 8' 'it'\''s'");
        assert_eq!(clock(125.4), "2:05");
    }

    #[test]
    fn every_mode_runs_every_workload() {
        for mode in [Mode::Tiny, Mode::Quick, Mode::Full] {
            let config = BenchAllConfig { mode, out: "x".into(), engines: vec![EngineKind::Async], vs: None };
            let steps = plan(&config, &["nmap".into()], &[], &[]);
            for w in ["scan", "fetch", "chat"] {
                assert!(steps.iter().any(|s| s.workload == w), "{mode:?} lacks {w}");
            }
            assert!(steps.iter().all(|s| s.args.contains(&"--engines".to_string())));
            for name in [
                sweep::SCAN_CONCURRENCY,
                sweep::SCAN_PORTS,
                sweep::FETCH_FILES,
                sweep::FETCH_SIZE,
                sweep::IDLE,
                sweep::ECHO_CLIENTS,
                sweep::CHAT_MEMBERS,
            ] {
                let points = steps.iter().filter(|s| s.sweep.is_some_and(|(n, _)| n == name)).count();
                assert!(points >= 2, "{mode:?}: {name} has {points} points");
            }
        }
    }

    #[test]
    fn the_chapters_programs_join_the_sweeps_that_have_their_knob() {
        let config = BenchAllConfig { mode: Mode::Quick, out: "x".into(), engines: vec![EngineKind::Async], vs: None };
        let scan = ["nmap".to_string(), "chapter-threads".into(), "chapter-asyncio-timeout".into()];
        let steps = plan(&config, &scan, &["curl".into(), "chapter-asyncio".into()], &["chapter-asyncio".into()]);
        let peers_of = |name: &str| {
            let s = steps.iter().find(|s| s.sweep.is_some_and(|(n, _)| n == name)).expect("a point");
            let k = s.args.iter().position(|a| a == "--vs").expect("--vs");
            s.args[k + 1].clone()
        };
        assert_eq!(peers_of(sweep::SCAN_PORTS), "chapter-threads");
        assert_eq!(peers_of(sweep::FETCH_FILES), "chapter-asyncio");
        assert_eq!(peers_of(sweep::ECHO_CLIENTS), "chapter-asyncio");
        assert_eq!(peers_of(sweep::CHAT_MEMBERS), "none");
    }

    #[test]
    fn the_member_ladder_offers_the_same_deliveries_whatever_the_channel() {
        assert_eq!(member_rates(11), "1000,3000,10000,30000,100000,300000,1000000");
        assert_eq!(member_rates(1001), "10,30,100,300,1000,3000,10000");
    }

    #[test]
    fn the_processes_engine_stops_at_the_sweeps_largest_safe_concurrency() {
        let engines = vec![EngineKind::Threads, EngineKind::Processes];
        let config = BenchAllConfig { mode: Mode::Full, out: "x".into(), engines, vs: None };
        let steps = plan(&config, &[], &[], &[]);
        let engines_at = |j: u32| {
            let s = steps.iter().find(|s| s.sweep == Some(("scan concurrency", f64::from(j)))).expect("sweep point");
            let k = s.args.iter().position(|a| a == "--engines").expect("--engines");
            s.args[k + 1].clone()
        };
        assert_eq!(engines_at(PROCESSES_MAX_J), "threads,processes");
        assert_eq!(engines_at(16384), "threads");
    }
}
