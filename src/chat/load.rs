//! `trident chat load`: a load generator for IRC servers, in one process.
//!
//! N clients connect (at most `--connect-concurrency` handshakes and
//! registrations at a time), register, and each joins one of M channels
//! (client `i` joins channel `i mod M`). Once every client is set up, the
//! first K of them (the senders; sender `s` is in channel `s mod M`) send
//! `PRIVMSG #chan :S SEQ T xxx...` open loop: the aggregate rate is
//! `--rate`, each sender's messages are spaced `K / rate` apart and the
//! senders are staggered evenly, messages are due on a fixed schedule
//! whatever the server does, and those due at once go out in one write.
//! `T` is the message's scheduled send time in nanoseconds since the start
//! (one monotonic clock, one process), so latency is measured from when
//! the message should have left, not from when a backed-up client managed
//! to send it (no coordinated omission). Every other member of the
//! sender's channel should receive each message once: receivers parse what
//! they get without allocating, record the latency in a HdrHistogram and,
//! per sender, sequence gaps (a number skipped) and reorders (a number
//! lower than one already seen). After the sending period the run waits
//! up to `--drain` for what is still in flight (less if every expected
//! delivery has arrived), then reports. `lost` = expected − delivered,
//! where expected = Σ messages sent × (members of its channel − 1).
//!
//! `--idle`: the clients register only (no channel), stay connected for
//! the duration, then each sends a PING; `stayed_up` counts those whose
//! PONG came back within `--drain`. The line `load: N/N clients ready`
//! on stderr marks the moment they are all connected (for a memory
//! probe).
//!
//! A server that throttles the senders (an `ERROR` for flooding, the
//! numerics that ask a client to slow down) is named in the report with
//! the remedy (`load_throttle`): a rate above its flood limit otherwise
//! reads as messages lost.
//!
//! Cost: the clients are tokio tasks on `--threads` current-thread
//! runtimes (default 1, one core at most), each client a single task that
//! waits for readability, writability and its send timer without
//! blocking; reads go into one buffer per thread, so an idle client holds
//! little more than its socket.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};

use super::client::{Registrar, Step, numeric, prefix_nick};
use super::line::{LineSplitter, Piece};
use super::load_throttle;
use super::message::Message;
use crate::engine::Interrupt;
use crate::error::{BadInput, Exit};

/// The largest `--payload`: with the relayed prefix, a line stays within
/// IRC's 512 bytes.
pub const MAX_PAYLOAD: usize = 400;
/// The token of the final liveness PING in idle mode.
const CHECK_TOKEN: &[u8] = b"trident-load-check";
/// Bytes waiting to be written past which a sender stops producing (the
/// messages it skips are counted as `unsent`).
const MAX_BACKLOG: usize = 1 << 20;
/// Messages generated per sender per wake-up, at most.
const MAX_BATCH: u64 = 4096;
/// A line longer than this is dropped.
const MAX_PARTIAL: usize = 8 * 1024;
/// The shared read buffer of one runtime thread.
const SCRATCH: usize = 64 * 1024;
/// Sender × receiver pairs tracked for gaps, at most.
const MAX_PAIRS: u64 = 64 << 20;

/// How `trident chat load` prints its report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadFormat {
    /// A table for people.
    #[default]
    Text,
    /// One JSON document (a `LoadReport`).
    Json,
}

/// What a load run does; [`LoadConfig::new`] has the CLI's defaults.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Clients to connect.
    pub clients: usize,
    /// Channels (client i joins channel i mod M).
    pub channels: usize,
    /// Senders: clients 0..senders.
    pub senders: usize,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// Sending period (idle: holding period).
    pub duration: Duration,
    /// Bytes of message text.
    pub payload: usize,
    /// Longest wait for messages in flight after sending.
    pub drain: Duration,
    /// Idle mode: register, hold, check.
    pub idle: bool,
    /// PASS, if the server wants one.
    pub password: Option<String>,
    /// Runtime threads.
    pub threads: usize,
    /// Set-ups in flight at once.
    pub connect_concurrency: usize,
    /// Longest set-up phase.
    pub setup_timeout: Duration,
    /// Nicks are this plus the client number.
    pub nick_prefix: String,
    /// Channels are this plus the channel number.
    pub channel_prefix: String,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl LoadConfig {
    /// `clients` clients on `addr`, everything else as the CLI's defaults.
    pub fn new(addr: SocketAddr, clients: usize) -> Self {
        let tag = run_tag();
        LoadConfig {
            addr,
            clients,
            channels: 1,
            senders: clients,
            rate: 1000.0,
            duration: Duration::from_secs(10),
            payload: 64,
            drain: Duration::from_secs(2),
            idle: false,
            password: None,
            threads: 1,
            connect_concurrency: 128,
            setup_timeout: Duration::from_secs(60),
            nick_prefix: format!("l{tag}"),
            channel_prefix: format!("#load-{tag}-"),
            progress: false,
        }
    }

    /// Checks the values against each other.
    pub fn validate(&self) -> Result<(), BadInput> {
        let bad = |s: String| Err(BadInput(s));
        if self.clients == 0 {
            return bad("--clients must be at least 1".into());
        }
        if self.channels == 0 || self.channels > self.clients {
            return bad(format!("--channels must be between 1 and --clients ({})", self.clients));
        }
        if !self.idle {
            if self.senders == 0 || self.senders > self.clients {
                return bad(format!("--senders must be between 1 and --clients ({})", self.clients));
            }
            if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 10_000_000.0) {
                return bad(format!("--rate {} must be above 0 and at most 10000000 messages/s", self.rate));
            }
            if self.payload > MAX_PAYLOAD {
                return bad(format!(
                    "--payload {} is above {MAX_PAYLOAD} bytes (IRC lines are 512 bytes)",
                    self.payload
                ));
            }
            let pairs = self.clients as u64 * self.senders as u64 / self.channels as u64;
            if pairs > MAX_PAIRS {
                return bad(format!(
                    "{} receivers × {} senders per channel is too many pairs to track; use fewer --senders or more --channels",
                    self.clients,
                    self.senders / self.channels
                ));
            }
        }
        if self.threads == 0 || self.threads > 256 {
            return bad("--threads must be between 1 and 256".into());
        }
        if self.connect_concurrency == 0 {
            return bad("--connect-concurrency must be at least 1".into());
        }
        if self.nick_prefix.is_empty() || !super::names::valid_nick(&format!("{}{}", self.nick_prefix, self.clients)) {
            return bad(format!("--nick-prefix {:?} does not make valid nicks", self.nick_prefix));
        }
        if !super::names::valid_channel(&format!("{}{}", self.channel_prefix, self.channels)) {
            return bad(format!("channel prefix {:?} does not make valid channel names", self.channel_prefix));
        }
        Ok(())
    }

    fn nick(&self, client: usize) -> String {
        format!("{}{client}", self.nick_prefix)
    }

    fn channel(&self, index: usize) -> String {
        format!("{}{index}", self.channel_prefix)
    }

    fn is_sender(&self, client: usize) -> bool {
        !self.idle && client < self.senders
    }
}

/// Two base-36 characters that differ between concurrent runs.
fn run_tag() -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let n = (std::process::id() ^ (nanos >> 10)) % (36 * 36);
    let (a, b) = (n / 36, n % 36);
    format!("{}{}", DIGITS[a as usize] as char, DIGITS[b as usize] as char)
}

/// Delivery latency, in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

/// What a load run measured.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// The server.
    pub addr: String,
    /// `traffic` or `idle`.
    pub mode: &'static str,
    /// Clients asked for.
    pub clients: usize,
    /// Channels.
    pub channels: usize,
    /// Senders asked for (0 when idle).
    pub senders: usize,
    /// Messages per second asked for (0 when idle).
    pub rate: f64,
    /// Sending (idle: holding) period, seconds.
    pub duration_s: f64,
    /// Bytes of message text.
    pub payload: usize,
    /// Clients connected, registered (and joined).
    pub connected: usize,
    /// Clients that could not be set up.
    pub connect_failures: usize,
    /// Time to set every client up, seconds.
    pub setup_s: f64,
    /// Clients whose connection closed before the end.
    pub disconnects: usize,
    /// Traffic: connected and not disconnected. Idle: answered the final
    /// PING.
    pub stayed_up: usize,
    /// Messages sent.
    pub sent: u64,
    /// Messages skipped because the sender's backlog was full (the server
    /// did not read).
    pub unsent: u64,
    /// Messages sent per second of the sending period.
    pub send_rate: f64,
    /// Deliveries expected: each message × (members of its channel − 1).
    pub expected: u64,
    /// Messages received by the clients.
    pub delivered: u64,
    /// expected − delivered (0 if more arrived).
    pub lost: u64,
    /// delivered / expected (1 when nothing was expected).
    pub delivery_ratio: f64,
    /// Deliveries per second, from the start of sending to the last
    /// delivery.
    pub deliveries_per_s: f64,
    /// Sequence jumps seen by receivers (one or more messages skipped).
    pub gaps: u64,
    /// Messages that arrived after a later one from the same sender.
    pub out_of_order: u64,
    /// PRIVMSG lines that were not this run's load messages.
    pub foreign: u64,
    /// Delivery latency (message written into the sender's buffer →
    /// read by a receiver), microseconds.
    pub latency_us: Latency,
    /// How late senders produced their messages against the schedule
    /// (timer granularity, a busy generator), microseconds, per batch.
    pub send_lag_us: Latency,
    /// Why clients failed or were disconnected, with counts.
    pub errors: BTreeMap<String, u64>,
    /// Clients the server held back or closed for flooding, per sign of
    /// it (see `load_throttle`); empty when none was seen.
    pub throttled: BTreeMap<&'static str, u64>,
    /// What to change when the server throttled the load.
    pub hint: Option<String>,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
}

impl LoadReport {
    /// The exit status: success when every client connected and,
    /// traffic, nothing was lost and nobody was disconnected; idle, every
    /// client stayed up.
    pub fn exit(&self) -> Exit {
        let ok = self.connect_failures == 0
            && if self.mode == "idle" {
                self.stayed_up == self.clients
            } else {
                self.lost == 0 && self.disconnects == 0 && self.unsent == 0
            };
        if self.interrupted {
            Exit::Interrupted
        } else if ok {
            Exit::Success
        } else {
            Exit::Failure
        }
    }

    /// The text table.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let head = if self.mode == "idle" {
            format!("{} held for {}", plural(self.clients, "idle client"), secs(self.duration_s))
        } else {
            format!(
                "{} in {}, {}, {} msg/s for {}, {}-byte messages",
                plural(self.clients, "client"),
                plural(self.channels, "channel"),
                plural(self.senders, "sender"),
                self.rate,
                secs(self.duration_s),
                self.payload
            )
        };
        let _ = writeln!(t, "trident chat load → {}: {head}", self.addr);
        let row = |t: &mut String, k: &str, v: String| {
            let _ = writeln!(t, "  {k:<12} {v}");
        };
        row(
            &mut t,
            "clients",
            format!(
                "{} connected in {:.2} s, {} failed, {} disconnected, {} stayed up",
                self.connected, self.setup_s, self.connect_failures, self.disconnects, self.stayed_up
            ),
        );
        if self.mode != "idle" {
            row(&mut t, "sent", format!("{} ({:.1} msg/s), {} unsent", self.sent, self.send_rate, self.unsent));
            row(
                &mut t,
                "delivered",
                format!(
                    "{} of {} ({:.3}%), {:.0} deliveries/s",
                    self.delivered,
                    self.expected,
                    self.delivery_ratio * 100.0,
                    self.deliveries_per_s
                ),
            );
            row(&mut t, "lost", format!("{}, gaps {}, out of order {}", self.lost, self.gaps, self.out_of_order));
            let l = &self.latency_us;
            row(
                &mut t,
                "latency",
                format!(
                    "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                    micros(l.p50),
                    micros(l.p90),
                    micros(l.p99),
                    micros(l.p999),
                    micros(l.max)
                ),
            );
            let g = &self.send_lag_us;
            row(&mut t, "send lag", format!("p50 {}  p99 {}  max {}", micros(g.p50), micros(g.p99), micros(g.max)));
        }
        for (why, count) in &self.errors {
            row(&mut t, "error", format!("{count} × {why}"));
        }
        for (sign, count) in &self.throttled {
            row(&mut t, "throttled", format!("{} by the server: {sign}", plural(*count as usize, "client")));
        }
        if let Some(hint) = &self.hint {
            row(&mut t, "hint", hint.clone());
        }
        if self.interrupted {
            row(&mut t, "interrupted", "yes (partial figures)".into());
        }
        t
    }
}

fn secs(s: f64) -> String {
    if s >= 1.0 && s.fract() == 0.0 { format!("{s:.0} s") } else { format!("{s} s") }
}

fn micros(us: u64) -> String {
    if us >= 10_000 { format!("{:.1} ms", us as f64 / 1000.0) } else { format!("{us} µs") }
}

/// Runs `trident chat load`.
pub fn run(config: &LoadConfig, format: LoadFormat, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let report = load_until(config, interrupt)?;
    match format {
        LoadFormat::Text => print!("{}", report.to_text()),
        LoadFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(report.exit())
}

/// Runs a load and returns what it measured (no Ctrl-C handling).
pub fn load(config: &LoadConfig) -> anyhow::Result<LoadReport> {
    load_until(config, &Interrupt::new())
}

/// The phases every client follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Connect, register, join.
    Setup,
    /// Send from this instant (t0) for the duration.
    Go(Instant),
    /// Idle: send the liveness PING.
    Check,
    /// Close and report.
    Stop,
}

/// Counters every thread updates (a few times per read or write, not per
/// message).
#[derive(Debug)]
struct Shared {
    config: LoadConfig,
    /// Clients whose set-up ended (either way).
    settled: AtomicUsize,
    /// Clients set up.
    ready: AtomicUsize,
    /// Senders set up, and those whose schedule is done.
    senders_ready: AtomicUsize,
    senders_done: AtomicUsize,
    /// Members and messages sent, per channel.
    members: Vec<AtomicU64>,
    sent: Vec<AtomicU64>,
    delivered: AtomicU64,
    /// Idle: PONGs to the final check.
    checked: AtomicUsize,
}

impl Shared {
    /// Nothing counted yet, for `config`.
    fn new(config: &LoadConfig) -> Shared {
        Shared {
            config: config.clone(),
            settled: AtomicUsize::new(0),
            ready: AtomicUsize::new(0),
            senders_ready: AtomicUsize::new(0),
            senders_done: AtomicUsize::new(0),
            members: (0..config.channels).map(|_| AtomicU64::new(0)).collect(),
            sent: (0..config.channels).map(|_| AtomicU64::new(0)).collect(),
            delivered: AtomicU64::new(0),
            checked: AtomicUsize::new(0),
        }
    }
}

impl Shared {
    fn expected(&self) -> u64 {
        self.members
            .iter()
            .zip(&self.sent)
            .map(|(m, s)| s.load(Ordering::Relaxed) * m.load(Ordering::Relaxed).saturating_sub(1))
            .sum()
    }
}

/// What one runtime thread measured.
#[derive(Debug)]
struct ShardStats {
    latency: Histogram<u64>,
    send_lag: Histogram<u64>,
    gaps: u64,
    out_of_order: u64,
    foreign: u64,
    failures: usize,
    disconnects: usize,
    unsent: u64,
    /// Nanoseconds from t0 to the last delivery.
    last_delivery_ns: u64,
    errors: BTreeMap<String, u64>,
    throttled: BTreeMap<&'static str, u64>,
}

impl ShardStats {
    fn new() -> anyhow::Result<Self> {
        Ok(ShardStats {
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3)?,
            send_lag: Histogram::new_with_bounds(1, 3_600_000_000, 3)?,
            gaps: 0,
            out_of_order: 0,
            foreign: 0,
            failures: 0,
            disconnects: 0,
            unsent: 0,
            last_delivery_ns: 0,
            errors: BTreeMap::new(),
            throttled: BTreeMap::new(),
        })
    }

    fn error(&mut self, why: String) {
        *self.errors.entry(why).or_insert(0) += 1;
    }

    fn merge(&mut self, other: ShardStats) -> anyhow::Result<()> {
        self.latency.add(&other.latency).map_err(|e| anyhow::anyhow!("merging histograms: {e:?}"))?;
        self.send_lag.add(&other.send_lag).map_err(|e| anyhow::anyhow!("merging histograms: {e:?}"))?;
        self.gaps += other.gaps;
        self.out_of_order += other.out_of_order;
        self.foreign += other.foreign;
        self.failures += other.failures;
        self.disconnects += other.disconnects;
        self.unsent += other.unsent;
        self.last_delivery_ns = self.last_delivery_ns.max(other.last_delivery_ns);
        for (why, n) in other.errors {
            *self.errors.entry(why).or_insert(0) += n;
        }
        for (sign, n) in other.throttled {
            *self.throttled.entry(sign).or_insert(0) += n;
        }
        Ok(())
    }
}

/// One runtime thread's state shared by its clients (never across threads).
#[derive(Debug)]
struct Shard {
    scratch: RefCell<Vec<u8>>,
    stats: RefCell<ShardStats>,
    setups: Semaphore,
}

/// Runs a load until done or `interrupt` is set.
pub fn load_until(config: &LoadConfig, interrupt: &Interrupt) -> anyhow::Result<LoadReport> {
    config.validate()?;
    let limit = crate::sys::raise_nofile_limit();
    if (config.clients as u64) + 64 > limit {
        return Err(BadInput(format!(
            "{} clients need {} open files; the limit is {limit} (raise it with ulimit -n)",
            config.clients,
            config.clients + 64
        ))
        .into());
    }
    let shared = Arc::new(Shared::new(config));
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let start = Instant::now();
    let setup_deadline = start + config.setup_timeout;
    let progress = |text: String| {
        if config.progress {
            eprintln!("load: {text}");
        }
    };
    progress(format!("connecting {} clients to {}", config.clients, config.addr));

    let mut threads = Vec::new();
    for shard in 0..config.threads {
        let shared = Arc::clone(&shared);
        let phase = phase_rx.clone();
        let per_shard = config.connect_concurrency.div_ceil(config.threads).max(1);
        let spawned = std::thread::Builder::new()
            .name(format!("chat-load-{shard}"))
            .spawn(move || run_shard(shard, &shared, phase, per_shard, setup_deadline));
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                phase_tx.send_replace(Phase::Stop);
                return Err(anyhow::anyhow!("cannot start a load thread: {e}"));
            }
        }
    }
    drop(phase_rx);

    // Set-up: every client settles (set up, failed or timed out).
    let margin = Duration::from_secs(2);
    while shared.settled.load(Ordering::SeqCst) < config.clients
        && Instant::now() < setup_deadline + margin
        && !interrupt.is_set()
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let setup = start.elapsed();
    let ready = shared.ready.load(Ordering::SeqCst);
    progress(format!("{ready}/{} clients ready in {:.2} s", config.clients, setup.as_secs_f64()));

    let mut interrupted = interrupt.is_set();
    let mut window = Duration::ZERO;
    if ready > 0 && !interrupted {
        let t0 = Instant::now() + Duration::from_millis(10);
        phase_tx.send_replace(Phase::Go(t0));
        if !config.idle {
            progress(format!("sending {} msg/s for {:.1} s", config.rate, config.duration.as_secs_f64()));
        }
        let end = t0 + config.duration;
        interrupted = !sleep_until(end, interrupt);
        window = config.duration;
        if !interrupted {
            let drain_end = Instant::now() + config.drain;
            if config.idle {
                phase_tx.send_replace(Phase::Check);
                while shared.checked.load(Ordering::SeqCst) < ready && Instant::now() < drain_end {
                    std::thread::sleep(Duration::from_millis(10));
                }
            } else {
                let senders = shared.senders_ready.load(Ordering::SeqCst);
                while Instant::now() < drain_end
                    && !(shared.senders_done.load(Ordering::SeqCst) >= senders
                        && shared.delivered.load(Ordering::SeqCst) >= shared.expected())
                {
                    if interrupt.is_set() {
                        interrupted = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    phase_tx.send_replace(Phase::Stop);

    let mut stats = ShardStats::new()?;
    for handle in threads {
        let shard = handle.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        stats.merge(shard)?;
    }
    if ready == 0 && !interrupted {
        let why = stats.errors.keys().next().cloned().unwrap_or_else(|| "unknown reason".into());
        anyhow::bail!("no client could be set up on {}: {why}", config.addr);
    }
    Ok(report(config, &shared, stats, setup, window, interrupted))
}

/// Sleeps until `end`; false if interrupted first.
fn sleep_until(end: Instant, interrupt: &Interrupt) -> bool {
    loop {
        if interrupt.is_set() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

fn report(
    config: &LoadConfig,
    shared: &Shared,
    stats: ShardStats,
    setup: Duration,
    window: Duration,
    interrupted: bool,
) -> LoadReport {
    let ready = shared.ready.load(Ordering::SeqCst);
    let sent: u64 = shared.sent.iter().map(|s| s.load(Ordering::SeqCst)).sum();
    let expected = shared.expected();
    let delivered = shared.delivered.load(Ordering::SeqCst);
    let latency = Latency::of(&stats.latency);
    let send_lag = Latency::of(&stats.send_lag);
    let active = Duration::from_nanos(stats.last_delivery_ns).max(Duration::from_millis(1));
    let stayed_up =
        if config.idle { shared.checked.load(Ordering::SeqCst) } else { ready.saturating_sub(stats.disconnects) };
    LoadReport {
        addr: config.addr.to_string(),
        mode: if config.idle { "idle" } else { "traffic" },
        clients: config.clients,
        channels: if config.idle { 0 } else { config.channels },
        senders: if config.idle { 0 } else { config.senders },
        rate: if config.idle { 0.0 } else { config.rate },
        duration_s: config.duration.as_secs_f64(),
        payload: if config.idle { 0 } else { config.payload },
        connected: ready,
        connect_failures: config.clients - ready,
        setup_s: (setup.as_secs_f64() * 1000.0).round() / 1000.0,
        disconnects: stats.disconnects,
        stayed_up,
        sent,
        unsent: stats.unsent,
        send_rate: if window.is_zero() { 0.0 } else { (sent as f64 / window.as_secs_f64() * 10.0).round() / 10.0 },
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        delivery_ratio: if expected == 0 { 1.0 } else { delivered as f64 / expected as f64 },
        deliveries_per_s: if delivered == 0 { 0.0 } else { (delivered as f64 / active.as_secs_f64()).round() },
        gaps: stats.gaps,
        out_of_order: stats.out_of_order,
        foreign: stats.foreign,
        latency_us: latency,
        send_lag_us: send_lag,
        errors: stats.errors,
        hint: (!stats.throttled.is_empty()).then(|| load_throttle::hint(config.rate, config.senders)),
        throttled: stats.throttled,
        interrupted,
    }
}

/// One runtime thread: clients `shard, shard + T, ...`.
fn run_shard(
    shard: usize,
    shared: &Arc<Shared>,
    phase: watch::Receiver<Phase>,
    setups: usize,
    setup_deadline: Instant,
) -> anyhow::Result<ShardStats> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let state = Rc::new(Shard {
        scratch: RefCell::new(vec![0; SCRATCH]),
        stats: RefCell::new(ShardStats::new()?),
        setups: Semaphore::new(setups),
    });
    let local = tokio::task::LocalSet::new();
    let threads = shared.config.threads;
    local.block_on(&runtime, async {
        let mut tasks = Vec::new();
        for client in (shard..shared.config.clients).step_by(threads) {
            let c = Client::new(client, Arc::clone(shared), Rc::clone(&state), phase.clone());
            tasks.push(tokio::task::spawn_local(c.run(setup_deadline)));
        }
        for task in tasks {
            if task.await.is_err() {
                state.stats.borrow_mut().error("a client task panicked".into());
            }
        }
    });
    drop(local);
    drop(runtime);
    let state = Rc::try_unwrap(state).map_err(|_| anyhow::anyhow!("load thread state still shared"))?;
    Ok(state.stats.into_inner())
}

/// One sender's timetable: message n is due at t0 + offset + n × interval.
#[derive(Debug)]
struct Schedule {
    offset_ns: u64,
    interval_ns: u64,
    next: u64,
    count: u64,
}

impl Schedule {
    fn due_ns(&self, n: u64) -> u64 {
        self.offset_ns + n * self.interval_ns
    }
}

/// One simulated user.
#[derive(Debug)]
struct Client {
    index: usize,
    shared: Arc<Shared>,
    shard: Rc<Shard>,
    phase: watch::Receiver<Phase>,
    /// Channel index.
    channel: usize,
    /// The server's lines (the unfinished one of the last read kept).
    lines: LineSplitter,
    /// Bytes to write, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Per sender of our channel (slot = sender / M): the next sequence
    /// number expected.
    next_seq: Vec<u32>,
    t0: Option<Instant>,
    /// A sender's timetable, from Go until its last message.
    schedule: Option<Schedule>,
    gaps: u64,
    out_of_order: u64,
    foreign: u64,
    checked: bool,
    /// The reason the server gave for closing (ERROR), if any.
    error: Option<String>,
    /// The first sign that the server throttled this client, if any.
    throttle: Option<&'static str>,
}

/// Why a connection ended before Stop.
#[derive(Debug)]
enum Ended {
    Stopped,
    Closed(String),
}

impl Client {
    fn new(index: usize, shared: Arc<Shared>, shard: Rc<Shard>, phase: watch::Receiver<Phase>) -> Self {
        let config = &shared.config;
        let channel = index % config.channels;
        let slots = if config.idle || config.senders <= channel {
            0
        } else {
            (config.senders - channel).div_ceil(config.channels)
        };
        Client {
            index,
            channel,
            shard,
            phase,
            lines: LineSplitter::with_limit(MAX_PARTIAL),
            out: Vec::new(),
            written: 0,
            next_seq: vec![0; slots],
            t0: None,
            schedule: None,
            gaps: 0,
            out_of_order: 0,
            foreign: 0,
            checked: false,
            error: None,
            throttle: None,
            shared,
        }
    }

    async fn run(mut self, setup_deadline: Instant) {
        let deadline = tokio::time::Instant::from_std(setup_deadline);
        // Ctrl-C during the set-up ends it at once.
        let mut phase = self.phase.clone();
        let stopped = async move {
            while phase.changed().await.is_ok() {
                if *phase.borrow_and_update() == Phase::Stop {
                    return;
                }
            }
        };
        let shard = Rc::clone(&self.shard);
        let set_up = async {
            let Ok(_permit) = shard.setups.acquire().await else { return Err("stopped".to_owned()) };
            match tokio::time::timeout_at(deadline, self.setup()).await {
                Ok(result) => result,
                Err(_) => Err("set-up timed out".to_owned()),
            }
        };
        let stream = tokio::select! {
            result = set_up => match result {
                Ok(stream) => Some(stream),
                Err(why) => {
                    shard.stats.borrow_mut().error(why);
                    None
                }
            },
            () = stopped => None,
        };
        let Some(stream) = stream else {
            self.shard.stats.borrow_mut().failures += 1;
            self.shared.settled.fetch_add(1, Ordering::SeqCst);
            return;
        };
        let config = &self.shared.config;
        if !config.idle {
            self.shared.members[self.channel].fetch_add(1, Ordering::SeqCst);
        }
        let sender = config.is_sender(self.index);
        if sender {
            self.shared.senders_ready.fetch_add(1, Ordering::SeqCst);
        }
        self.shared.ready.fetch_add(1, Ordering::SeqCst);
        self.shared.settled.fetch_add(1, Ordering::SeqCst);

        let ended = self.traffic(&stream, sender).await;
        let mut stats = self.shard.stats.borrow_mut();
        if let Some(s) = &self.schedule {
            // Stopped (drain over, Ctrl-C, disconnected) before its last
            // message was due.
            stats.unsent += s.count - s.next;
            self.shared.senders_done.fetch_add(1, Ordering::SeqCst);
        }
        stats.gaps += self.gaps;
        stats.out_of_order += self.out_of_order;
        stats.foreign += self.foreign;
        if let Some(sign) = self.throttle {
            *stats.throttled.entry(sign).or_insert(0) += 1;
        }
        if let Ended::Closed(why) = ended {
            stats.disconnects += 1;
            stats.error(self.error.take().unwrap_or(why));
        }
        // A QUIT as a courtesy; the socket closes when dropped.
        let _ = stream.try_write(b"QUIT :load done\r\n");
    }

    /// Connects, registers and joins; the reason for a failure.
    async fn setup(&mut self) -> Result<TcpStream, String> {
        let config = &self.shared.config;
        let stream = TcpStream::connect(config.addr).await.map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut registrar = Registrar::new(&config.nick(self.index));
        let mut hello = String::new();
        for line in registrar.hello(config.password.as_deref(), "trident load") {
            hello.push_str(&line);
            hello.push_str("\r\n");
        }
        write_all(&stream, hello.as_bytes()).await.map_err(|e| format!("register: {e}"))?;
        let channel = config.channel(self.channel);
        let mut joined = config.idle;
        let mut nick = None::<String>;
        loop {
            let lines = self.read_lines(&stream).await.map_err(|e| format!("register: {e}"))?;
            let mut reply = Vec::new();
            for line in &lines {
                let Ok(text) = std::str::from_utf8(line) else { continue };
                let Ok(m) = Message::parse(text) else { continue };
                if nick.is_none() {
                    match registrar.on_message(&m, &mut reply) {
                        Step::Pending => {}
                        Step::Failed(why) => return Err(format!("register: {why}")),
                        Step::Registered(n) => {
                            if !joined {
                                reply.push(Message::new("JOIN").param(&channel).to_line());
                            }
                            nick = Some(n);
                        }
                    }
                    continue;
                }
                let me = nick.as_deref().unwrap_or("");
                if m.command.eq_ignore_ascii_case("PING") {
                    reply.push(super::client::pong(&m));
                } else if m.command.eq_ignore_ascii_case("JOIN") && prefix_nick(m.prefix) == me {
                    joined = true;
                } else if m.command.eq_ignore_ascii_case("ERROR") {
                    return Err(format!("closed: {}", m.params.join(" ")));
                } else if numeric(m.command).is_some_and(|code| (400..600).contains(&code))
                    && m.params.get(1).is_some_and(|p| p.eq_ignore_ascii_case(&channel))
                {
                    return Err(format!("join: {}", super::client::describe_numeric(&m)));
                }
            }
            if !reply.is_empty() {
                let mut bytes = String::new();
                for r in reply {
                    bytes.push_str(&r);
                    bytes.push_str("\r\n");
                }
                write_all(&stream, bytes.as_bytes()).await.map_err(|e| format!("register: {e}"))?;
            }
            if nick.is_some() && joined {
                return Ok(stream);
            }
        }
    }

    /// Reads once (waiting for data) and returns the complete lines.
    async fn read_lines(&mut self, stream: &TcpStream) -> std::io::Result<Vec<Vec<u8>>> {
        loop {
            stream.readable().await?;
            let mut scratch = self.shard.scratch.borrow_mut();
            match stream.try_read(&mut scratch) {
                Ok(0) => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed by the server")),
                Ok(n) => {
                    let mut lines = Vec::new();
                    self.lines.split(&scratch[..n], |piece| {
                        if let Piece::Line(line) = piece {
                            lines.push(line.to_vec());
                        }
                    });
                    return Ok(lines);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The measured period: read, answer, send on schedule, until Stop.
    async fn traffic(&mut self, stream: &TcpStream, sender: bool) -> Ended {
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let timer = tokio::time::sleep_until(far);
        tokio::pin!(timer);
        let channel_name = self.shared.config.channel(self.channel);
        let mut template = String::new();
        loop {
            let writing = self.written < self.out.len();
            tokio::select! {
                biased;
                changed = self.phase.changed() => {
                    if changed.is_err() {
                        return Ended::Stopped;
                    }
                    let phase = *self.phase.borrow_and_update();
                    match phase {
                        Phase::Setup => {}
                        Phase::Go(t0) => {
                            self.t0 = Some(t0);
                            let s = self.schedule();
                            if sender && s.count == 0 {
                                // Its first turn would come after the end.
                                self.shared.senders_done.fetch_add(1, Ordering::SeqCst);
                            } else if sender {
                                timer.as_mut().reset(tokio::time::Instant::from_std(t0 + Duration::from_nanos(s.offset_ns)));
                                template = format!("PRIVMSG {channel_name} :");
                                self.schedule = Some(s);
                            }
                        }
                        Phase::Check => {
                            self.out.extend_from_slice(b"PING :");
                            self.out.extend_from_slice(CHECK_TOKEN);
                            self.out.extend_from_slice(b"\r\n");
                        }
                        Phase::Stop => return Ended::Stopped,
                    }
                }
                // Before reads: a client that always has something to read
                // must still send on time.
                () = &mut timer, if self.schedule.is_some() => {
                    if let Some(mut s) = self.schedule.take() {
                        self.generate(&mut s, &template);
                        if s.next >= s.count {
                            self.shared.senders_done.fetch_add(1, Ordering::SeqCst);
                        } else if let Some(t0) = self.t0 {
                            timer.as_mut().reset(tokio::time::Instant::from_std(t0 + Duration::from_nanos(s.due_ns(s.next))));
                            self.schedule = Some(s);
                        }
                    }
                    if let Some(end) = self.write_some(stream) {
                        return end;
                    }
                }
                ready = stream.readable() => {
                    if let Err(e) = ready {
                        return Ended::Closed(format!("read: {e}"));
                    }
                    if let Some(end) = self.read_some(stream) {
                        return end;
                    }
                }
                ready = stream.writable(), if writing => {
                    if let Err(e) = ready {
                        return Ended::Closed(format!("write: {e}"));
                    }
                    if let Some(end) = self.write_some(stream) {
                        return end;
                    }
                }
            }
            // Answers to PINGs are queued by reads; write them at once.
            if self.written < self.out.len() && !writing {
                if let Some(end) = self.write_some(stream) {
                    return end;
                }
            }
        }
    }

    fn schedule(&self) -> Schedule {
        let config = &self.shared.config;
        let interval_ns = (config.senders as f64 * 1e9 / config.rate).round().max(1.0) as u64;
        let offset_ns = (self.index as f64 * 1e9 / config.rate).round() as u64;
        let duration_ns = config.duration.as_nanos() as u64;
        let count = if duration_ns > offset_ns { (duration_ns - offset_ns).div_ceil(interval_ns) } else { 0 };
        Schedule { offset_ns, interval_ns, next: 0, count }
    }

    /// Appends every message now due (at most [`MAX_BATCH`]).
    fn generate(&mut self, s: &mut Schedule, template: &str) {
        let Some(t0) = self.t0 else { return };
        let now_ns = t0.elapsed().as_nanos() as u64;
        let payload = self.shared.config.payload;
        let mut sent = 0u64;
        let mut skipped = 0u64;
        let mut batch = 0;
        if s.next < s.count && s.due_ns(s.next) <= now_ns {
            // How late the timer woke us for the oldest message due.
            let lag_us = (now_ns - s.due_ns(s.next)) / 1000;
            self.shard.stats.borrow_mut().send_lag.saturating_record(lag_us.max(1));
        }
        while s.next < s.count && s.due_ns(s.next) <= now_ns && batch < MAX_BATCH {
            if self.out.len() - self.written > MAX_BACKLOG {
                skipped += 1;
            } else {
                let start = self.out.len();
                self.out.extend_from_slice(template.as_bytes());
                let text_start = self.out.len();
                let _ = write!(self.out, "{} {} {now_ns} ", self.index, s.next);
                let text_len = self.out.len() - text_start;
                if payload > text_len {
                    self.out.resize(self.out.len() + payload - text_len, b'x');
                }
                self.out.extend_from_slice(b"\r\n");
                debug_assert!(self.out.len() - start <= super::MAX_LINE);
                sent += 1;
            }
            s.next += 1;
            batch += 1;
        }
        if sent > 0 {
            self.shared.sent[self.channel].fetch_add(sent, Ordering::Relaxed);
        }
        if skipped > 0 {
            self.shard.stats.borrow_mut().unsent += skipped;
        }
    }

    /// Writes what it can without waiting.
    fn write_some(&mut self, stream: &TcpStream) -> Option<Ended> {
        while self.written < self.out.len() {
            match stream.try_write(&self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Some(Ended::Closed(format!("write: {e}"))),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            if self.out.capacity() > 64 * 1024 {
                self.out.shrink_to(4096);
            }
        }
        None
    }

    /// Reads what is there (a few buffers at most) and handles each line.
    fn read_some(&mut self, stream: &TcpStream) -> Option<Ended> {
        let shard = Rc::clone(&self.shard);
        for _ in 0..4 {
            let mut scratch = shard.scratch.borrow_mut();
            let n = match stream.try_read(&mut scratch) {
                Ok(0) => return Some(Ended::Closed("closed by the server".into())),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) => return Some(Ended::Closed(format!("read: {e}"))),
            };
            let now_ns = self.t0.map_or(0, |t0| t0.elapsed().as_nanos() as u64);
            let mut stats = shard.stats.borrow_mut();
            let mut delivered = 0u64;
            let mut lines = std::mem::replace(&mut self.lines, LineSplitter::with_limit(MAX_PARTIAL));
            lines.split(&scratch[..n], |piece| {
                if let Piece::Line(line) = piece
                    && self.on_line(line, now_ns, &mut stats.latency)
                {
                    delivered += 1;
                }
            });
            self.lines = lines;
            if delivered > 0 {
                self.shared.delivered.fetch_add(delivered, Ordering::Relaxed);
                stats.last_delivery_ns = stats.last_delivery_ns.max(now_ns);
            }
            if n < scratch.len() {
                break;
            }
        }
        None
    }

    /// Handles one line; true if it was a load message delivered.
    fn on_line(&mut self, line: &[u8], now_ns: u64, latency: &mut Histogram<u64>) -> bool {
        let mut rest = line;
        if rest.first() == Some(&b':') {
            rest = match rest.iter().position(|&b| b == b' ') {
                Some(i) => &rest[i + 1..],
                None => return false,
            };
        }
        if let Some(after) = rest.strip_prefix(b"PRIVMSG ") {
            let Some(text) = after.windows(2).position(|w| w == b" :").map(|i| &after[i + 2..]) else {
                self.foreign += 1;
                return false;
            };
            match parse_load(text) {
                Some((sender, seq, sent_ns)) => self.delivered(sender, seq, sent_ns, now_ns, latency),
                None => {
                    self.foreign += 1;
                    false
                }
            }
        } else if let Some(params) = rest.strip_prefix(b"PING") {
            self.out.extend_from_slice(b"PONG");
            self.out.extend_from_slice(params);
            self.out.extend_from_slice(b"\r\n");
            false
        } else if rest.starts_with(b"PONG") {
            if !self.checked && rest.windows(CHECK_TOKEN.len()).any(|w| w == CHECK_TOKEN) {
                self.checked = true;
                self.shared.checked.fetch_add(1, Ordering::SeqCst);
            }
            false
        } else {
            if self.throttle.is_none() {
                self.throttle = load_throttle::evidence(rest);
            }
            if let Some(text) = rest.strip_prefix(b"ERROR") {
                let text = String::from_utf8_lossy(text);
                // Printed later: the server's text, its controls escaped.
                self.error =
                    Some(format!("ERROR{}", crate::output::escaped(text.trim_end(), crate::output::Escapes::Caret)));
            }
            false
        }
    }

    fn delivered(&mut self, sender: u64, seq: u64, sent_ns: u64, now_ns: u64, latency: &mut Histogram<u64>) -> bool {
        let config = &self.shared.config;
        let m = config.channels as u64;
        if sender >= config.senders as u64 || sender % m != self.channel as u64 || sender == self.index as u64 {
            self.foreign += 1;
            return false;
        }
        let slot = (sender / m) as usize;
        let Some(next) = self.next_seq.get_mut(slot) else {
            self.foreign += 1;
            return false;
        };
        let expected = u64::from(*next);
        if seq >= expected {
            if seq > expected {
                self.gaps += 1;
            }
            // `seq` comes off the wire: a forged u64::MAX must not overflow.
            *next = u32::try_from(seq.saturating_add(1)).unwrap_or(u32::MAX);
        } else {
            self.out_of_order += 1;
        }
        latency.saturating_record((now_ns.saturating_sub(sent_ns) / 1000).max(1));
        true
    }
}

/// Writes all of `bytes` (set-up only).
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `S SEQ T ...` → (sender, sequence, send time in ns since t0).
fn parse_load(text: &[u8]) -> Option<(u64, u64, u64)> {
    let mut fields = text.split(|&b| b == b' ');
    let mut number = || -> Option<u64> {
        let f = fields.next()?;
        if f.is_empty() || f.len() > 19 || !f.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(f.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
    };
    Some((number()?, number()?, number()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_messages_parse() {
        assert_eq!(parse_load(b"3 17 123456789 xxxx"), Some((3, 17, 123_456_789)));
        assert_eq!(parse_load(b"3 17 9"), Some((3, 17, 9)));
        assert_eq!(parse_load(b"hello world"), None);
        assert_eq!(parse_load(b"1 2"), None);
        assert_eq!(parse_load(b"1 2 99999999999999999999"), None);
    }

    #[test]
    fn schedule_spreads_the_rate() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut config = LoadConfig::new(addr, 10);
        config.rate = 100.0;
        config.duration = Duration::from_secs(1);
        let shared = Arc::new(Shared::new(&config));
        let shard = Rc::new(Shard {
            scratch: RefCell::new(Vec::new()),
            stats: RefCell::new(ShardStats::new().unwrap()),
            setups: Semaphore::new(1),
        });
        let (_tx, rx) = watch::channel(Phase::Setup);
        let total: u64 =
            (0..10).map(|i| Client::new(i, Arc::clone(&shared), Rc::clone(&shard), rx.clone()).schedule().count).sum();
        assert_eq!(total, 100);
        let s = Client::new(3, Arc::clone(&shared), Rc::clone(&shard), rx.clone()).schedule();
        assert_eq!((s.offset_ns, s.interval_ns), (30_000_000, 100_000_000));
    }

    #[test]
    fn config_is_checked() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut config = LoadConfig::new(addr, 10);
        assert!(config.validate().is_ok());
        config.channels = 11;
        assert!(config.validate().is_err());
        config.channels = 2;
        config.payload = 1000;
        assert!(config.validate().is_err());
    }
}
