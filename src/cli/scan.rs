//! `trident scan`: its flags, turned into a [`ScanConfig`] with every
//! target resolved and every value checked before the first probe.

use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::scan_output::{OutputArgs, not_a_host};
use super::{EngineArgs, parse_duration};
use crate::error::BadInput;
use crate::scan::{BannerGrab, Family, PortList, Retries, ScanConfig, Shard, TargetSet, TimingConfig, target};

/// `trident scan --help` epilogue.
pub const SCAN_EXAMPLES: &str = "\
Examples:
  trident scan 127.0.0.1                      the 1,000 most common ports
  trident scan localhost -p 22,80,8000-8100 -e threads
  trident scan 10.0.0.0/30 10.0.1.1-20 -p- -f jsonl --open
  trident scan -sT -Pn -n -F 10.0.0.0/24 --exclude 10.0.0.1   nmap's spelling works
  trident scan localhost -p http,ssh,T:8000-8100 --max-rate 500
  trident scan -iL hosts.txt -p 443 -o results.csv     CSV, from the extension
  trident scan 10.0.0.0/24 -oA scan           scan.nmap, scan.xml, scan.gnmap (as nmap)
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

/// How many ports `-F` scans (as nmap's fast mode).
const FAST_PORTS: usize = 100;

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
    /// Leave out these targets: addresses, blocks, ranges or names, comma-separated.
    ///
    /// As nmap's --exclude. Blocks are cut, not listed: a /8 minus a /16
    /// costs nothing.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Leave out the targets listed in FILE (as -iL; # comments).
    #[arg(long, value_name = "FILE")]
    pub excludefile: Option<PathBuf>,
    /// Ports: 22,80,8000-8100, http,ssh, T:80; - for all [default: the 1,000 most common]
    ///
    /// Service names come from the table the output's names come from;
    /// http* stands for every name that starts so. T: marks TCP ports as
    /// in nmap; U: (UDP) and S: (SCTP) are refused. - or 1-65535 is all.
    #[arg(short = 'p', long, value_name = "PORTS", allow_hyphen_values = true)]
    pub ports: Option<String>,
    /// Scan the N most common ports instead of -p.
    #[arg(long, value_name = "N", conflicts_with = "ports", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub top_ports: Option<u32>,
    /// Scan the 100 most common ports (nmap's -F, fast mode).
    #[arg(short = 'F', long, conflicts_with_all = ["ports", "top_ports"])]
    pub fast: bool,
    /// -sT: a TCP connect scan, the only kind there is (accepted as in nmap).
    ///
    /// Other scan types (-sS, -sU, -sV...) need raw packets or are not TCP;
    /// they are refused with the reason.
    #[arg(short = 's', value_name = "T", value_parser = parse_scan_type)]
    pub scan_type: Option<ConnectScan>,
    /// -Pn: no host discovery, which trident never does (accepted as in nmap).
    ///
    /// trident never pings first: every target is scanned, as nmap -Pn does.
    #[arg(short = 'P', value_name = "n", value_parser = parse_discovery)]
    pub discovery: Option<NoDiscovery>,
    /// No reverse DNS, which trident never does (accepted as in nmap).
    ///
    /// Addresses are never looked up; host names are shown only as typed.
    #[arg(short = 'n')]
    pub no_dns: bool,
    /// Engine options.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Timing preset, nmap's -T0..-T5 (timeouts and retry budget; -T3 is
    /// the default). Written -T4 or --timing 4.
    #[arg(short = 'T', long = "timing", value_name = "0-5", value_parser = clap::value_parser!(u8).range(0..=5))]
    pub timing: Option<u8>,
    /// Fixed time one connect attempt may take (e.g. 500ms, 2s) instead of
    /// the adaptive timeout (srtt + 4 rttvar of the answers so far, kept
    /// within --min-rtt-timeout 10ms and --max-rtt-timeout 10s).
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
    /// Keep at least PPS probes per second going (raises -j to fit).
    ///
    /// trident never slows down by itself (no congestion control): the
    /// rate comes from the probes in flight, so this raises the concurrency
    /// to PPS x the probe timeout (within the open-file limit), and says so
    /// at the end if the scan still ran slower.
    #[arg(long, value_name = "PPS", value_parser = parse_rate)]
    pub min_rate: Option<f64>,
    /// Give up on an address DUR after its first probe.
    ///
    /// No new probe goes to it, and it is named at the end (as nmap's).
    /// Addresses are probed interleaved, each on its own clock; at most
    /// 2^24 addresses.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub host_timeout: Option<Duration>,
    /// Start probes at least DUR apart (--max-rate 1/DUR).
    ///
    /// As nmap's --scan-delay, but for all hosts together: the same for one
    /// host, slower for several. The lower of this and --max-rate applies.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub scan_delay: Option<Duration>,
    /// Seed of the random probe order; the same seed gives the same order.
    /// [default: random, or a fixed one with --shard]
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Scan only shard K of N (K from 0) of the (address x port) space; with
    /// the same seed the N shards are disjoint and add up to the whole scan.
    /// auto/N takes K from $JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
    #[arg(long, value_name = "K/N")]
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
    /// Output options.
    #[command(flatten)]
    pub outputs: OutputArgs,
    /// List only open ports.
    #[arg(long)]
    pub open: bool,
    /// Resolve host names to IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Resolve host names to IPv6 addresses only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Scan more than 2^24 addresses or send more than 2^32 probes (in this
    /// shard); without it such a scan is refused as a likely typo.
    #[arg(long)]
    pub allow_huge: bool,
    /// Print the targets and the size of the scan (addresses, ports,
    /// probes, shard) and exit without sending a probe (as nmap -sL).
    #[arg(long)]
    pub list_targets: bool,
}

/// `-sT`, the one scan type there is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectScan;

fn parse_scan_type(s: &str) -> Result<ConnectScan, String> {
    match s {
        "T" => Ok(ConnectScan),
        "S" | "A" | "F" | "N" | "X" | "W" | "M" => {
            Err(format!("-s{s} needs raw packets; trident does TCP connect scans only (-sT, no root needed)"))
        }
        "U" | "Y" | "Z" => Err(format!("-s{s} is not TCP; trident scans TCP only (-sT)")),
        "V" => Err("-sV: no version detection; --banners shows what each open port's service says first".into()),
        "L" => Err("-sL: use --list-targets (prints the targets, sends nothing)".into()),
        _ => Err(format!("-s{s} is not supported; trident does TCP connect scans only (-sT)")),
    }
}

/// `-Pn`: no host discovery, which is all trident does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoDiscovery;

fn parse_discovery(s: &str) -> Result<NoDiscovery, String> {
    match s {
        "n" | "N" => Ok(NoDiscovery),
        _ => Err(format!("-P{s}: trident does no host discovery, every target is scanned (as with -Pn)")),
    }
}

/// Probes per second, at least one a day (as --scan-delay is at most a day).
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r * 86_400.0 >= 1.0 => Ok(r),
        _ => Err("expected a number of probes per second, at least one a day (0.0000116)".into()),
    }
}

impl ScanArgs {
    /// Validates everything and resolves the targets, before any probe.
    pub fn into_config(self) -> Result<ScanConfig, BadInput> {
        // Output flags and file-like words first: no name is looked up
        // for a command line that has an output flag wrong.
        let outputs = self.outputs.destinations(std::io::stdout().is_terminal())?;
        if let Some(hint) = self.targets.iter().find_map(|t| not_a_host(t)) {
            return Err(BadInput(hint));
        }
        let ports = match (&self.ports, self.top_ports) {
            (Some(spec), _) => PortList::parse(spec).map_err(|e| BadInput(e.to_string()))?,
            (None, Some(n)) => PortList::top(n as usize),
            (None, None) if self.fast => PortList::top(FAST_PORTS),
            (None, None) => PortList::default_top(),
        };
        let mut specs = self.targets.clone();
        if let Some(path) = &self.input_list {
            specs.extend(read_list(path, "target list", true)?);
        }
        let mut device = None;
        if let Some(name) = &self.lab {
            let (state, index) = crate::lab::daemon::running_lab(name)?;
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
        let (mut targets, skipped) = TargetSet::resolve(&specs, family).map_err(|e| BadInput(e.to_string()))?;
        let excluded = self.excluded()?;
        if !excluded.is_empty() {
            let before = targets.len();
            targets.exclude(&excluded);
            if targets.is_empty() && before > 0 {
                return Err(BadInput("every target is excluded (--exclude, --excludefile): nothing to scan".into()));
            }
        }
        if targets.is_empty() {
            let first = skipped.first().map_or_else(|| "no targets".to_string(), ToString::to_string);
            return Err(BadInput(first));
        }
        if self.host_timeout.is_some() && targets.len() > crate::scan::host_clock::MAX_HOSTS {
            return Err(BadInput(format!(
                "--host-timeout keeps a clock per address: at most 2^24 addresses, not {}",
                targets.len()
            )));
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
        engine.max_rate = self.max_rate_with_delay();
        if let (Some(min), Some(max)) = (self.min_rate, engine.max_rate) {
            if min > max {
                return Err(BadInput(format!(
                    "--min-rate {min} is above the {max} probes per second that --max-rate or --scan-delay allow"
                )));
            }
        }
        Ok(ScanConfig {
            targets,
            skipped,
            ports,
            engine,
            timing,
            seed,
            shard,
            banner: self.banners.then_some(BannerGrab { max_bytes: self.banner_bytes, wait: self.banner_wait }),
            outputs,
            open_only: self.open,
            show_closed: self.outputs.show_closed,
            progress: !crate::term::quiet(),
            verbose: crate::term::verbose(),
            list_targets: self.list_targets,
            device,
            min_rate: self.min_rate,
            host_timeout: self.host_timeout,
        })
    }

    /// `--max-rate`, lowered to one probe per `--scan-delay`.
    fn max_rate_with_delay(&self) -> Option<f64> {
        let by_delay = self.scan_delay.map(|d| 1.0 / d.as_secs_f64());
        match (self.max_rate, by_delay) {
            (Some(rate), Some(delay)) => Some(rate.min(delay)),
            (rate, delay) => rate.or(delay),
        }
    }

    /// The `--exclude` and `--excludefile` addresses, of both families. A
    /// name that does not resolve is bad input: scanning what was meant to
    /// be left out is worse than not scanning.
    fn excluded(&self) -> Result<TargetSet, BadInput> {
        let mut specs: Vec<String> =
            self.exclude.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if let Some(path) = &self.excludefile {
            specs.extend(read_list(path, "exclude file", false)?);
        }
        let (set, failed) = TargetSet::resolve(&specs, Family::Any).map_err(|e| BadInput(format!("--exclude: {e}")))?;
        match failed.first() {
            Some(e) => Err(BadInput(format!("--exclude: {e}"))),
            None => Ok(set),
        }
    }
}

/// Reads the target list at `path` (`-` is stdin where `stdin_ok`), at
/// most [`target::MAX_LIST_BYTES`]; what cannot be read is bad input.
fn read_list(path: &Path, what: &str, stdin_ok: bool) -> Result<Vec<String>, BadInput> {
    let read = if stdin_ok && path.as_os_str() == "-" {
        target::read_list(std::io::stdin().lock(), target::MAX_LIST_BYTES)
    } else {
        fs::File::open(path).and_then(|f| target::read_list(f, target::MAX_LIST_BYTES))
    };
    read.map_err(|e| BadInput(format!("cannot read {what} {}: {e}", path.display())))
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
}
