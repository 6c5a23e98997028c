//! `trident bench chat`: the servers measured while they serve.
//!
//! Parts (each optional, `--parts`):
//! - **idle**: `trident chat serve` on each engine with N registered, idle
//!   IRC connections; memory per connection = (tree RSS, and PSS, with the
//!   connections − the same server idle) / N.
//! - **echo**: a closed loop of C connections, each sending 4 bytes and
//!   waiting for the chapter's 21-byte answer, against `trident echo serve`
//!   on each engine, the minimal tokio echo shipped as the reference
//!   (`trident __echo-reference`), the chapter's asyncio server
//!   (`--vs chapter-asyncio`: `bench/chapter/echo_server.py`, see
//!   [`super::chapter`]) and any `--peer NAME=COMMAND`; requests per
//!   second and server CPU per request, the contenders' order rotating
//!   every round ([`harness::rotate`]), medians and ratios to the reference.
//! - **fanout** and **latency**: `trident chat load` against `trident chat
//!   serve` on each engine (see [`crate::chat::load`]).
//! - **ladder**: latency and delivery at the same fixed rates on every
//!   server ([`super::chat_ladder`]).
//!
//! Idle, fan-out, latency and ladder also run against stock IRC servers
//! (`--vs inspircd,ngircd`, `--peer-irc`; [`super::irc_peer`]). The load
//! generators run in this process on a single-threaded runtime, pinned to
//! one CPU and each server to another ([`super::pin`]); every figure comes
//! from one run of the bench on one machine.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::chapter::{self, Program, Programs};
use super::fixture::{Served, TempDir, free_port};
use super::harness::{self, median};
use super::irc_peer::{ChatServer, IrcKind, IrcPeer, Setup};
use super::measure::tree_cpu;
use super::pin::Pinning;
use crate::engine::EngineKind;

/// What `trident bench chat` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// Memory per idle connection.
    Idle,
    /// Closed-loop echo requests per second.
    Echo,
    /// Deliveries per second in one big channel, stepping the rate up.
    Fanout,
    /// Latency at half the fan-out peak.
    Latency,
    /// Latency and delivery at each rate of `--rates`, the same for every
    /// server.
    Ladder,
}

impl std::str::FromStr for Part {
    type Err = String;
    fn from_str(s: &str) -> Result<Part, String> {
        match s {
            "idle" => Ok(Part::Idle),
            "echo" => Ok(Part::Echo),
            "fanout" => Ok(Part::Fanout),
            "latency" => Ok(Part::Latency),
            "ladder" => Ok(Part::Ladder),
            _ => Err(format!("unknown part {s:?} (expected idle, echo, fanout, latency or ladder)")),
        }
    }
}

/// The chat bench's built-in peers (`--vs`): an echo server for the echo
/// part, IRC servers for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatPeer {
    /// The chapter's asyncio echo server, `bench/chapter/echo_server.py`.
    ChapterAsyncio,
    /// An installed stock IRC server with the config the project ships.
    Irc(IrcKind),
}

impl harness::Peer for ChatPeer {
    fn parse(name: &str) -> Result<Self, String> {
        match name {
            "chapter-asyncio" => Ok(ChatPeer::ChapterAsyncio),
            "inspircd" => Ok(ChatPeer::Irc(IrcKind::Inspircd)),
            "ngircd" => Ok(ChatPeer::Irc(IrcKind::Ngircd)),
            _ => Err(format!("unknown peer {name:?} (expected chapter-asyncio, inspircd, ngircd or none)")),
        }
    }

    fn label(&self) -> String {
        match self {
            ChatPeer::ChapterAsyncio => "chapter-asyncio".into(),
            ChatPeer::Irc(kind) => kind.program().into(),
        }
    }

    fn program(&self) -> &'static str {
        match self {
            ChatPeer::ChapterAsyncio => "python3",
            ChatPeer::Irc(kind) => kind.program(),
        }
    }

    fn locate(&self) -> Result<PathBuf, String> {
        match self {
            ChatPeer::ChapterAsyncio => chapter::python().ok_or_else(|| chapter::NO_PYTHON.to_string()),
            ChatPeer::Irc(kind) => kind.locate(),
        }
    }
}

/// Validated `trident bench chat` options.
#[derive(Clone, Debug)]
pub struct ChatBenchConfig {
    /// Which parts to run.
    pub parts: Vec<Part>,
    /// trident engines.
    pub engines: Vec<EngineKind>,
    /// Recorded rounds (echo) / repetitions (idle).
    pub runs: u32,
    /// Idle connections per engine.
    pub idle: usize,
    /// Echo: connections in the closed loop.
    pub echo_connections: usize,
    /// Echo: measured time per run (after a warm-up of a fifth of it).
    pub duration: Duration,
    /// Echo peers: a name and a command with `{port}` in it.
    pub peers: Vec<(String, String)>,
    /// Peers built in (`--vs`).
    pub vs: Vec<ChatPeer>,
    /// IRC servers to measure beside the engines (`--peer-irc`), with the
    /// built-in ones of `--vs`: every part but echo runs against them.
    pub irc_peers: Vec<IrcPeer>,
    /// Pin the load generator and the server to a CPU each.
    pub pin: bool,
    /// Fan-out: members of the one channel.
    pub members: usize,
    /// Fan-out: clients that send.
    pub senders: usize,
    /// Fan-out: the message rates tried (all senders together, per
    /// second), up to where delivery falls behind.
    pub rates: Vec<f64>,
    /// Ladder: the message rates every server gets.
    pub ladder_rates: Vec<f64>,
    /// Fan-out and latency: sending time per step.
    pub load_duration: Duration,
    /// Write runs.csv and summary.json here.
    pub out: Option<PathBuf>,
}

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// idle or echo.
    pub part: Part,
    /// `trident-async`, `reference`, a peer's name...
    pub server: String,
    /// Round number.
    pub round: u32,
    /// Echo: requests per second.
    pub requests_per_s: f64,
    /// Echo: server CPU microseconds per request.
    pub server_cpu_us_per_request: f64,
    /// Idle: connections that were open and registered.
    pub connections: usize,
    /// Idle: server tree RSS without and with the connections, KiB.
    pub rss_idle_kib: u64,
    /// Idle: with the connections.
    pub rss_loaded_kib: u64,
    /// Idle: server tree PSS without the connections, KiB.
    pub pss_idle_kib: u64,
    /// Idle: with the connections.
    pub pss_loaded_kib: u64,
    /// Fan-out/latency: messages per second offered (all senders).
    pub msgs_per_s: f64,
    /// Fan-out/latency: lines delivered to members per second.
    pub deliveries_per_s: f64,
    /// Fan-out/latency: delivered / expected.
    pub delivered_ratio: f64,
    /// Fan-out/latency: delivery latency, µs.
    pub latency_p50_us: u64,
    /// 99th percentile.
    pub latency_p99_us: u64,
    /// Worst.
    pub latency_max_us: u64,
}

/// Medians per server and part.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// idle or echo.
    pub part: Part,
    /// The server.
    pub server: String,
    /// Echo: median requests per second.
    pub requests_per_s: f64,
    /// Echo: median / the reference's median.
    pub vs_reference: f64,
    /// Echo: median server CPU µs per request.
    pub server_cpu_us_per_request: f64,
    /// Idle: median RSS per connection, bytes.
    pub rss_per_connection_bytes: f64,
    /// Idle: median PSS per connection, bytes.
    pub pss_per_connection_bytes: f64,
    /// Fan-out: the best deliveries/s of any step (median over rounds);
    /// latency: at half that.
    pub deliveries_per_s: f64,
    /// Latency: median p50, µs.
    pub latency_p50_us: f64,
    /// Latency: median p99, µs.
    pub latency_p99_us: f64,
    /// Latency: worst max, µs.
    pub latency_max_us: f64,
    /// Latency and ladder: the rate offered, messages per second.
    pub msgs_per_s: f64,
    /// Fan-out, latency, ladder: median delivered / expected.
    pub delivered_ratio: f64,
}

/// The bench's result.
#[derive(Clone, Debug, Serialize)]
pub struct ChatBenchReport {
    /// Every measurement.
    pub runs: Vec<Run>,
    /// Medians.
    pub summary: Vec<Summary>,
}

fn trident_cmd() -> anyhow::Result<Command> {
    Ok(Command::new(std::env::current_exe()?))
}

/// What one closed echo loop measured.
struct EchoLoop {
    /// Requests answered during the counted window.
    requests: u64,
    /// The server's CPU seconds over that window.
    cpu_s: f64,
    /// Request-to-answer times in the window, µs.
    latency_us: Histogram<u64>,
}

/// A closed loop on `connections` connections for `warmup` + `duration`:
/// the requests answered during `duration`, their round-trip times, and
/// the server's CPU seconds over the same time.
fn echo_loop(
    addr: SocketAddr,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    server: u32,
) -> anyhow::Result<EchoLoop> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let counting = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        // One runtime thread: the tasks share the histogram without a lock.
        let latency = Rc::new(RefCell::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
        let local = tokio::task::LocalSet::new();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..connections {
            let (stop, counting, count) = (Arc::clone(&stop), Arc::clone(&counting), Arc::clone(&count));
            let latency = Rc::clone(&latency);
            tasks.spawn_local_on(
                async move {
                    let mut stream = tokio::net::TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    let mut buf = [0u8; 64];
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        stream.write_all(b"ping").await?;
                        let mut got = 0;
                        while got < 21 {
                            let n = stream.read(&mut buf[got..]).await?;
                            if n == 0 {
                                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "server closed"));
                            }
                            got += n;
                        }
                        if &buf[..21] != b"Server received: ping" {
                            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "wrong answer"));
                        }
                        if counting.load(Ordering::Relaxed) {
                            count.fetch_add(1, Ordering::Relaxed);
                            let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                            latency.borrow_mut().saturating_record(us.max(1));
                        }
                    }
                    Ok::<(), std::io::Error>(())
                },
                &local,
            );
        }
        local
            .run_until(async {
                tokio::time::sleep(warmup).await;
                let cpu0 = tree_cpu(server);
                counting.store(true, Ordering::Relaxed);
                tokio::time::sleep(duration).await;
                counting.store(false, Ordering::Relaxed);
                let cpu_s = tree_cpu(server) - cpu0;
                let requests = count.load(Ordering::Relaxed);
                stop.store(true, Ordering::Relaxed);
                while let Some(joined) = tasks.join_next().await {
                    joined?.context("an echo connection failed")?;
                }
                let latency_us = latency.borrow().clone();
                Ok(EchoLoop { requests, cpu_s, latency_us })
            })
            .await
    })
}

/// An echo contender: its name and how to start it on a port.
struct EchoContender {
    name: String,
    command: Box<dyn Fn(u16) -> anyhow::Result<Command>>,
}

/// The echo contenders: the reference, each engine, each `--vs` peer that
/// can run here (its programs written into `scratch`), each `--peer`.
fn echo_contenders(config: &ChatBenchConfig, scratch: &Path) -> anyhow::Result<Vec<EchoContender>> {
    let mut list = vec![EchoContender {
        name: "reference".into(),
        command: Box::new(|port| {
            let mut cmd = trident_cmd()?;
            cmd.args(["__echo-reference", "--listen", &format!("127.0.0.1:{port}")]);
            Ok(cmd)
        }),
    }];
    for &engine in &config.engines {
        list.push(EchoContender {
            name: format!("trident-{engine}"),
            command: Box::new(move |port| {
                let mut cmd = trident_cmd()?;
                cmd.args(["echo", "serve", "-q", "-e", &engine.to_string(), "--listen", &format!("127.0.0.1:{port}")]);
                // The bench's connections are all wanted: no cap, no idle cut.
                cmd.args(["--max-connections", "1000000", "--idle-timeout", "0"]);
                Ok(cmd)
            }),
        });
    }
    let echo_peers: Vec<&ChatPeer> = config.vs.iter().filter(|p| **p == ChatPeer::ChapterAsyncio).collect();
    if !echo_peers.is_empty() {
        let programs = Rc::new(Programs::install(scratch)?);
        for peer in echo_peers {
            let python = match harness::Peer::locate(peer) {
                Ok(python) => python,
                Err(why) => {
                    eprintln!("trident: {why}; skipping {}", harness::Peer::label(peer));
                    continue;
                }
            };
            let programs = Rc::clone(&programs);
            list.push(EchoContender {
                name: harness::Peer::label(peer),
                command: Box::new(move |port| {
                    // Without the line per message, as trident's servers run here (-q).
                    let mut cmd = programs.command(&python, Program::EchoServer);
                    cmd.args([&port.to_string(), "--quiet"]);
                    Ok(cmd)
                }),
            });
        }
    }
    for (name, template) in &config.peers {
        let template = template.clone();
        list.push(EchoContender {
            name: name.clone(),
            command: Box::new(move |port| {
                let line = template.replace("{port}", &port.to_string());
                let mut cmd = Command::new("sh");
                cmd.args(["-c", &format!("exec {line}")]);
                Ok(cmd)
            }),
        });
    }
    Ok(list)
}

pub(super) fn empty_run(part: Part, server: &str, round: u32) -> Run {
    Run {
        part,
        server: server.into(),
        round,
        requests_per_s: f64::NAN,
        server_cpu_us_per_request: f64::NAN,
        connections: 0,
        rss_idle_kib: 0,
        rss_loaded_kib: 0,
        pss_idle_kib: 0,
        pss_loaded_kib: 0,
        msgs_per_s: f64::NAN,
        deliveries_per_s: f64::NAN,
        delivered_ratio: f64::NAN,
        latency_p50_us: 0,
        latency_p99_us: 0,
        latency_max_us: 0,
    }
}

/// Starts `trident chat serve -e ENGINE` for load: no flood control, room
/// for everyone.
pub(crate) fn chat_server(engine: EngineKind, clients: usize) -> anyhow::Result<Served> {
    ChatServer::Trident(engine).start(clients, Setup::Load, None).map(|running| running.served)
}

/// Set-ups in flight at once in a load step: enough that a server which
/// completes registrations on a timer (InspIRCd: once a second) registers
/// everyone in a tick or two; set-up time is not measured.
const LOAD_CONNECT_CONCURRENCY: usize = 512;

/// One load step against `addr`; the run record.
pub(super) fn load_step(
    addr: SocketAddr,
    config: &ChatBenchConfig,
    part: Part,
    server: &str,
    round: u32,
    rate: f64,
) -> anyhow::Result<Run> {
    let mut load = crate::chat::load::LoadConfig::new(addr, config.members);
    load.channels = 1;
    load.senders = config.senders.min(config.members);
    load.rate = rate;
    load.duration = config.load_duration;
    load.drain = Duration::from_secs(2);
    load.connect_concurrency = LOAD_CONNECT_CONCURRENCY;
    let report = crate::chat::load::load(&load)?;
    let mut run = empty_run(part, server, round);
    run.msgs_per_s = rate;
    run.deliveries_per_s = report.deliveries_per_s;
    run.delivered_ratio = report.delivery_ratio;
    run.latency_p50_us = report.latency_us.p50;
    run.latency_p99_us = report.latency_us.p99;
    run.latency_max_us = report.latency_us.max;
    let label = match part {
        Part::Fanout => "fanout ",
        Part::Ladder => "ladder ",
        _ => "latency ",
    };
    eprintln!(
        "{label:<8}{server:<18} round {round}: {rate:>6.0} msg/s offered -> {:>9.0} deliveries/s, {:.2}% delivered, p50 {} µs, p99 {} µs, max {} µs",
        run.deliveries_per_s,
        run.delivered_ratio * 100.0,
        run.latency_p50_us,
        run.latency_p99_us,
        run.latency_max_us
    );
    // The clients' quits are N² lines: let the server finish them.
    thread::sleep(Duration::from_millis(500));
    Ok(run)
}

/// Fan-out: the rate steps on each server; latency: at half the best step.
fn fanout_part(config: &ChatBenchConfig, servers: &Servers, latency: bool, runs: &mut Vec<Run>) -> anyhow::Result<()> {
    crate::sys::raise_nofile_limit();
    for round in 0..config.runs {
        for server in &servers.list {
            let name = server.label();
            let running = server.start(config.members, Setup::Load, servers.pin)?;
            let served = &running.served;
            let mut best: Option<(f64, f64)> = None; // (deliveries/s, rate)
            for &rate in &config.rates {
                let run = load_step(served.addr, config, Part::Fanout, &name, round, rate)?;
                if best.is_none_or(|(d, _)| run.deliveries_per_s > d) {
                    best = Some((run.deliveries_per_s, rate));
                }
                // Behind: messages lost, or delivered late enough that the
                // rate achieved is well under the rate offered.
                let offered = rate * (config.members - 1) as f64;
                let fell_behind = run.delivered_ratio < 0.999 || run.deliveries_per_s < 0.9 * offered;
                runs.push(run);
                if fell_behind {
                    break;
                }
            }
            if latency && let Some((peak, _)) = best {
                // Half the peak, in messages per second.
                let others = (config.members.max(2) - 1) as f64;
                let rate = (peak / others / 2.0).max(1.0);
                runs.push(load_step(served.addr, config, Part::Latency, &name, round, rate)?);
            }
            drop(running);
        }
    }
    Ok(())
}

fn echo_part(config: &ChatBenchConfig, pin: Option<Pinning>, runs: &mut Vec<Run>) -> anyhow::Result<()> {
    let scratch = TempDir::new("trident-bench-echo")?;
    let contenders = echo_contenders(config, scratch.path())?;
    let warmup = config.duration / 5;
    // The rounds are numbered from 0 in this bench's records.
    harness::rotate(&contenders, 0, config.runs, |c, run| {
        let round = run - 1;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = (c.command)(port)?;
        if let Some(pin) = pin {
            pin.pin_server(&mut cmd);
        }
        let served = Served::start(cmd, addr, &c.name)?;
        let echo = echo_loop(addr, config.echo_connections, warmup, config.duration, served.process.id())
            .with_context(|| format!("echo against {}", c.name))?;
        drop(served);
        let mut run = empty_run(Part::Echo, &c.name, round);
        let requests = echo.requests;
        run.requests_per_s = requests as f64 / config.duration.as_secs_f64();
        run.server_cpu_us_per_request = if requests > 0 { echo.cpu_s * 1e6 / requests as f64 } else { f64::NAN };
        if requests > 0 {
            run.latency_p50_us = echo.latency_us.value_at_quantile(0.5);
            run.latency_p99_us = echo.latency_us.value_at_quantile(0.99);
            run.latency_max_us = echo.latency_us.max();
        }
        eprintln!(
            "echo  {:<18} round {round}: {:>9.0} req/s, p50 {} µs, p99 {} µs",
            c.name, run.requests_per_s, run.latency_p50_us, run.latency_p99_us
        );
        runs.push(run);
        Ok(())
    })
}

fn per_connection(loaded: u64, idle: u64, n: usize) -> f64 {
    if n == 0 { f64::NAN } else { (loaded.saturating_sub(idle) as f64 * 1024.0) / n as f64 }
}

/// A summary row's key: the part and server, and for the ladder the rate
/// (one row per step).
fn summary_key(r: &Run) -> (Part, &str, Option<u64>) {
    (r.part, &r.server, (r.part == Part::Ladder).then_some(r.msgs_per_s.to_bits()))
}

fn summarise(runs: &[Run]) -> Vec<Summary> {
    let mut names: Vec<(Part, &str, Option<u64>)> = Vec::new();
    for r in runs {
        if !names.contains(&summary_key(r)) {
            names.push(summary_key(r));
        }
    }
    let reference = median(
        runs.iter().filter(|r| r.part == Part::Echo && r.server == "reference").map(|r| r.requests_per_s).collect(),
    );
    names
        .into_iter()
        .map(|key| {
            let (part, server, _) = key;
            let mut mine: Vec<&Run> = runs.iter().filter(|r| summary_key(r) == key).collect();
            if part == Part::Fanout {
                // A round's best step stands for it (rate, latency and all);
                // the steps below it were the way up.
                mine = best_steps(mine);
            }
            let rps = median(mine.iter().map(|r| r.requests_per_s).collect());
            let deliveries = median(mine.iter().map(|r| r.deliveries_per_s).collect());
            Summary {
                part,
                requests_per_s: rps,
                vs_reference: rps / reference,
                server_cpu_us_per_request: median(mine.iter().map(|r| r.server_cpu_us_per_request).collect()),
                rss_per_connection_bytes: median(
                    mine.iter().map(|r| per_connection(r.rss_loaded_kib, r.rss_idle_kib, r.connections)).collect(),
                ),
                pss_per_connection_bytes: median(
                    mine.iter().map(|r| per_connection(r.pss_loaded_kib, r.pss_idle_kib, r.connections)).collect(),
                ),
                deliveries_per_s: deliveries,
                latency_p50_us: median(mine.iter().map(|r| r.latency_p50_us as f64).collect()),
                latency_p99_us: median(mine.iter().map(|r| r.latency_p99_us as f64).collect()),
                latency_max_us: mine.iter().map(|r| r.latency_max_us as f64).fold(f64::NAN, f64::max),
                msgs_per_s: median(mine.iter().map(|r| r.msgs_per_s).collect()),
                delivered_ratio: median(mine.iter().map(|r| r.delivered_ratio).collect()),
                server: server.to_string(),
            }
        })
        .collect()
}

/// Per round, the run with the most deliveries.
fn best_steps(runs: Vec<&Run>) -> Vec<&Run> {
    let mut best: Vec<&Run> = Vec::new();
    for r in runs {
        match best.iter_mut().find(|b| b.round == r.round) {
            Some(b) if r.deliveries_per_s > b.deliveries_per_s => *b = r,
            Some(_) => {}
            None => best.push(r),
        }
    }
    best
}

/// The tables printed at the end.
pub fn render(summary: &[Summary], config: &ChatBenchConfig) -> String {
    let mut out = super::chat_ladder::render(summary, config);
    if summary.iter().any(|s| s.part == Part::Idle) {
        let _ = writeln!(
            out,
            "Idle connections: {} registered IRC clients per server; memory per connection = (server tree with them - idle server) / N",
            config.idle
        );
        let _ = writeln!(out, "{:<18} {:>14} {:>14}", "SERVER", "RSS/CONN", "PSS/CONN");
        for s in summary.iter().filter(|s| s.part == Part::Idle) {
            let _ = writeln!(
                out,
                "{:<18} {:>10.1} KiB {:>10.1} KiB",
                s.server,
                s.rss_per_connection_bytes / 1024.0,
                s.pss_per_connection_bytes / 1024.0
            );
        }
        let _ = writeln!(out);
    }
    if summary.iter().any(|s| s.part == Part::Fanout) {
        let _ = writeln!(
            out,
            "Fan-out: one channel of {} members, {} senders, rates stepped up to where delivery falls behind (best step)",
            config.members, config.senders
        );
        let _ = writeln!(out, "{:<18} {:>16}", "SERVER", "DELIVERIES/S");
        for s in summary.iter().filter(|s| s.part == Part::Fanout) {
            let _ = writeln!(out, "{:<18} {:>16.0}", s.server, s.deliveries_per_s);
        }
        let _ = writeln!(out);
    }
    if summary.iter().any(|s| s.part == Part::Latency) {
        let _ = writeln!(out, "Latency at half the fan-out peak (send to delivery, same machine)");
        let _ = writeln!(out, "{:<18} {:>14} {:>10} {:>10} {:>10}", "SERVER", "DELIVERIES/S", "P50", "P99", "MAX");
        for s in summary.iter().filter(|s| s.part == Part::Latency) {
            let ms = |us: f64| us / 1000.0;
            let _ = writeln!(
                out,
                "{:<18} {:>14.0} {:>7.2} ms {:>7.2} ms {:>7.2} ms",
                s.server,
                s.deliveries_per_s,
                ms(s.latency_p50_us),
                ms(s.latency_p99_us),
                ms(s.latency_max_us)
            );
        }
        let _ = writeln!(out);
    }
    if summary.iter().any(|s| s.part == Part::Echo) {
        let _ = writeln!(
            out,
            "Echo, closed loop: {} connections, 4-byte requests, {:?} per run (medians)",
            config.echo_connections, config.duration
        );
        let _ = writeln!(
            out,
            "{:<18} {:>12} {:>12} {:>16} {:>10}",
            "SERVER", "REQ/S", "VS REFERENCE", "SERVER CPU/REQ", "P99"
        );
        for s in summary.iter().filter(|s| s.part == Part::Echo) {
            let _ = writeln!(
                out,
                "{:<18} {:>12.0} {:>11.2}x {:>13.2} µs {:>7.2} ms",
                s.server,
                s.requests_per_s,
                s.vs_reference,
                s.server_cpu_us_per_request,
                s.latency_p99_us / 1000.0
            );
        }
    }
    out
}

/// The chat servers of a run and where they run.
#[derive(Debug)]
pub(super) struct Servers {
    /// Every engine, then every IRC peer that is installed.
    pub list: Vec<ChatServer>,
    /// The load generator's and the servers' CPUs (None: not pinned).
    pub pin: Option<Pinning>,
    /// What the placement is, for the report.
    pub placement: String,
}

impl Servers {
    /// The line-up of `config`; pins this thread (the load generator's
    /// threads start from it) unless `--no-pin` or one CPU.
    fn new(config: &ChatBenchConfig) -> Servers {
        let mut peers = config.irc_peers.clone();
        for peer in &config.vs {
            if let ChatPeer::Irc(kind) = peer
                && !peers.iter().any(|p| p.name == kind.program())
            {
                peers.push(IrcPeer::builtin(*kind));
            }
        }
        let list = super::irc_peer::line_up(&config.engines, &peers);
        let (pin, placement) = if !config.pin {
            (None, "CPU affinity: none (--no-pin)".to_string())
        } else {
            match Pinning::plan() {
                Ok(pin) => match pin.pin_load() {
                    Ok(()) => (Some(pin), format!("CPU affinity: {}", pin.describe())),
                    Err(e) => (None, format!("CPU affinity: none (cannot pin: {e})")),
                },
                Err(cpus) => (None, format!("CPU affinity: none ({cpus} CPU usable: load and server share it)")),
            }
        };
        Servers { list, pin, placement }
    }
}

/// Runs the bench.
pub fn run(config: &ChatBenchConfig) -> anyhow::Result<ChatBenchReport> {
    let servers = Servers::new(config);
    let mut runs = Vec::new();
    for part in &config.parts {
        match part {
            Part::Idle => super::chat_idle::idle_part(config, &servers, &mut runs)?,
            Part::Echo => echo_part(config, servers.pin, &mut runs)?,
            Part::Fanout => fanout_part(config, &servers, config.parts.contains(&Part::Latency), &mut runs)?,
            Part::Latency if !config.parts.contains(&Part::Fanout) => fanout_part(config, &servers, true, &mut runs)?,
            Part::Latency => {}
            Part::Ladder => super::chat_ladder::ladder_part(config, &servers, &mut runs)?,
        }
    }
    let summary = summarise(&runs);
    println!("{}", servers.placement);
    print!("{}", render(&summary, config));
    let report = ChatBenchReport { runs, summary };
    if let Some(dir) = &config.out {
        super::harness::write_out(dir, &report.runs, &report)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fanout_summary_is_each_rounds_best_step() {
        let step = |round: u32, rate: f64, deliveries: f64, p99: u64| Run {
            msgs_per_s: rate,
            deliveries_per_s: deliveries,
            latency_p99_us: p99,
            delivered_ratio: 1.0,
            ..empty_run(Part::Fanout, "trident-async", round)
        };
        // Round 0 peaks at 3,000 msg/s; round 1 at 2,000, then falls behind.
        let runs = [
            step(0, 1000.0, 1000.0, 1000),
            step(0, 2000.0, 2000.0, 2000),
            step(0, 3000.0, 3000.0, 3000),
            step(1, 1000.0, 1000.0, 1000),
            step(1, 2000.0, 2000.0, 2000),
            step(1, 3000.0, 1500.0, 90000),
        ];
        let summary = summarise(&runs);
        assert_eq!(summary.len(), 1);
        let s = &summary[0];
        assert_eq!((s.deliveries_per_s, s.msgs_per_s, s.latency_p99_us), (2500.0, 2500.0, 2500.0));
    }
}
