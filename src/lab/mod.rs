//! A scan target whose every answer is known: a host in its own network
//! namespace, behind a veth pair, with listeners on chosen ports and an
//! iptables firewall (DROP, REJECT, random loss) and optional latency.
//!
//! - [`LabSpec`]: what the lab looks like (presets: [`LabSpec::preset`]);
//! - [`Lab::up`]: builds it; [`Lab::truth`] is what a perfect scanner
//!   reports as open; dropping the [`Lab`] tears it down;
//! - [`netns`]: the namespace itself ([`Netns`]), also used by the tests;
//! - [`delay`]: latency through NFQUEUE (this kernel has no netem);
//! - [`daemon`]: labs that outlive the command (`trident lab up/down/list`:
//!   a daemon keeps each one running).
//!
//! Used the same way by `trident lab`, the test harness and the benchmark.

pub mod daemon;
pub mod delay;
pub mod netns;

use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use delay::{DelayStats, Delayer};
pub use netns::Netns;

/// Why a lab (or a namespace) could not be built or removed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not running as root.
    #[error(
        "the lab needs root (running as euid {euid}): it creates network namespaces, veth pairs and iptables rules"
    )]
    NotRoot {
        /// The effective user id.
        euid: u32,
    },
    /// A program the lab runs is missing or broken.
    #[error("the lab needs `{tool}` (package {package}) on PATH: {reason}")]
    MissingTool {
        /// Program name.
        tool: &'static str,
        /// Where it usually comes from.
        package: &'static str,
        /// What went wrong running it.
        reason: String,
    },
    /// No network namespaces (not Linux, or a kernel without them).
    #[error("the lab needs Linux network namespaces: {0}")]
    NoNetns(String),
    /// Latency was asked for, but the kernel cannot queue packets to user space.
    #[error("latency needs the kernel's NFQUEUE support (nfnetlink_queue): {0}")]
    NoNfqueue(String),
    /// The spec contradicts itself or is out of range.
    #[error("invalid lab: {0}")]
    Spec(String),
    /// A namespace of that name exists already.
    #[error("network namespace {name} already exists")]
    Exists {
        /// The namespace name.
        name: String,
    },
    /// An `ip` or `iptables` command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr.
        stderr: String,
    },
    /// Creating the namespace kept failing.
    #[error("cannot create a network namespace: {0}")]
    Create(String),
    /// A listener could not be opened.
    #[error("cannot listen on port {port} in namespace {netns}: {error}")]
    Listen {
        /// The port.
        port: u16,
        /// The namespace.
        netns: String,
        /// Why.
        error: io::Error,
    },
    /// The namespace (or its veth pair) could not be removed.
    #[error("cannot remove network namespace {name}: {reason}")]
    Remove {
        /// The namespace.
        name: String,
        /// What failed.
        reason: String,
    },
    /// A system call or file operation failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        error: io::Error,
    },
}

impl LabError {
    pub(crate) fn io(what: String, error: io::Error) -> Self {
        LabError::Io { what, error }
    }

    /// Whether this is the user's to fix (wrong machine, missing tool,
    /// contradictory spec) rather than a failure while building the lab.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            LabError::NotRoot { .. }
                | LabError::MissingTool { .. }
                | LabError::NoNetns(_)
                | LabError::NoNfqueue(_)
                | LabError::Spec(_)
                | LabError::Exists { .. }
        )
    }
}

/// Which ports listen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenPorts {
    /// This many ports, chosen pseudo-randomly from the seed outside the
    /// filtered and rejected ranges.
    Count(u16),
    /// Exactly these ports.
    List(Vec<u16>),
}

/// What a lab looks like. Serialised with ranges as `"a-b"` strings and
/// the latency as `latency_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabSpec {
    /// Listening ports: what a scanner must find open.
    pub open: OpenPorts,
    /// Ports whose SYNs are dropped (`iptables -j DROP`): filtered.
    #[serde(with = "serde_ranges")]
    pub filtered: Vec<RangeInclusive<u16>>,
    /// Ports rejected with ICMP port unreachable: closed, as for a port
    /// nobody listens on.
    #[serde(with = "serde_ranges")]
    pub rejected: Vec<RangeInclusive<u16>>,
    /// Percentage (0-100) of incoming TCP packets dropped at random, on
    /// every port, before any other rule.
    pub loss_pct: f64,
    /// Added to every packet the lab sends (its answers).
    #[serde(rename = "latency_ms", with = "serde_latency")]
    pub latency: Option<Duration>,
    /// Seed of the choice of open ports for [`OpenPorts::Count`].
    pub seed: u64,
}

/// The presets' seed: the same open ports every time.
const PRESET_SEED: u64 = 1;

impl Default for LabSpec {
    /// The `clean` preset.
    fn default() -> Self {
        LabSpec {
            open: OpenPorts::Count(50),
            filtered: Vec::new(),
            rejected: Vec::new(),
            loss_pct: 0.0,
            latency: None,
            seed: PRESET_SEED,
        }
    }
}

impl LabSpec {
    /// Names of the presets.
    pub const PRESETS: [&'static str; 3] = ["clean", "full", "full-latency"];

    /// A preset: `clean` (50 open ports, nothing else), `full` (50 open,
    /// 20001-30000 DROP, 30001-31000 REJECT, 3% loss) or `full-latency`
    /// (`full` + 20 ms latency).
    pub fn preset(name: &str) -> Option<LabSpec> {
        let full = || LabSpec {
            filtered: vec![20001..=30000],
            rejected: vec![30001..=31000],
            loss_pct: 3.0,
            ..LabSpec::default()
        };
        match name {
            "clean" => Some(LabSpec::default()),
            "full" => Some(full()),
            "full-latency" => Some(LabSpec { latency: Some(Duration::from_millis(20)), ..full() }),
            _ => None,
        }
    }

    /// Checks ranges, overlaps, the loss rate and the latency.
    pub fn validate(&self) -> Result<(), LabError> {
        let bad = |m: String| Err(LabError::Spec(m));
        for (what, ranges) in [("filtered", &self.filtered), ("rejected", &self.rejected)] {
            for r in ranges {
                if *r.start() == 0 || r.start() > r.end() {
                    return bad(format!("{what} range {} is not a range of ports 1-65535", range_text(r)));
                }
            }
        }
        for f in &self.filtered {
            if let Some(r) = self.rejected.iter().find(|r| r.start() <= f.end() && f.start() <= r.end()) {
                return bad(format!("filtered range {} overlaps rejected range {}", range_text(f), range_text(r)));
            }
        }
        if !(0.0..=100.0).contains(&self.loss_pct) {
            return bad(format!("loss {}% is not a percentage (0-100)", self.loss_pct));
        }
        if let Some(l) = self.latency {
            if l.is_zero() || l > delay::MAX_LATENCY {
                return bad(format!("latency {l:?} is out of range (above 0, at most 10s)"));
            }
        }
        match &self.open {
            OpenPorts::List(ports) => {
                for &p in ports {
                    if p == 0 {
                        return bad("port 0 cannot be opened".into());
                    }
                    if let Some((what, r)) = self.rule_for(p) {
                        return bad(format!("port {p} is both open and in the {what} range {}", range_text(r)));
                    }
                }
            }
            OpenPorts::Count(n) => {
                let free = self.free_ports().len();
                if usize::from(*n) > free {
                    return bad(format!("{n} open ports do not fit: only {free} ports are not filtered or rejected"));
                }
            }
        }
        Ok(())
    }

    /// The range (and its kind) a firewall rule covers `port` with, if any.
    fn rule_for(&self, port: u16) -> Option<(&'static str, &RangeInclusive<u16>)> {
        let find = |ranges: &[RangeInclusive<u16>]| ranges.iter().position(|r| r.contains(&port));
        if let Some(i) = find(&self.filtered) {
            return Some(("filtered", &self.filtered[i]));
        }
        find(&self.rejected).map(|i| ("rejected", &self.rejected[i]))
    }

    /// Ports 1-65535 outside every filtered and rejected range.
    fn free_ports(&self) -> Vec<u16> {
        (1..=u16::MAX).filter(|&p| self.rule_for(p).is_none()).collect()
    }

    /// The ports that will listen: the ground truth of a scan (validates first).
    pub fn open_ports(&self) -> Result<BTreeSet<u16>, LabError> {
        self.validate()?;
        Ok(match &self.open {
            OpenPorts::List(ports) => ports.iter().copied().collect(),
            OpenPorts::Count(n) => {
                // A partial Fisher-Yates shuffle keyed by the seed.
                let mut free = self.free_ports();
                let mut state = self.seed;
                let n = usize::from(*n);
                for i in 0..n {
                    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let j = i + (splitmix64(state) % (free.len() - i) as u64) as usize;
                    free.swap(i, j);
                }
                free[..n].iter().copied().collect()
            }
        })
    }
}

/// A lab that is up: namespace, firewall, listeners, delayer. Dropping it
/// (or [`Lab::down`]) tears everything down.
#[derive(Debug)]
pub struct Lab {
    spec: LabSpec,
    truth: BTreeSet<u16>,
    delayer: Option<Delayer>,
    netns: Option<Netns>,
}

impl Lab {
    /// Builds a lab as `spec` says, in a namespace named `tlab-<pid>-<n>`.
    pub fn up(spec: &LabSpec) -> Result<Lab, LabError> {
        Self::build(spec, || Netns::new("tlab"))
    }

    /// As [`Lab::up`], in a namespace named exactly `netns_name`.
    pub fn up_named(spec: &LabSpec, netns_name: &str) -> Result<Lab, LabError> {
        Self::build(spec, || Netns::with_name(netns_name))
    }

    fn build(spec: &LabSpec, create: impl FnOnce() -> Result<Netns, LabError>) -> Result<Lab, LabError> {
        netns::require_facilities()?;
        let truth = spec.open_ports()?;
        if spec.latency.is_some() {
            delay::require_nfqueue()?;
        }
        // Whatever fails from here on, dropping `ns` removes what was made.
        let ns = create()?;
        if spec.loss_pct > 0.0 {
            let p = format!("{:.6}", spec.loss_pct / 100.0);
            let rule = ["-A", "INPUT", "-p", "tcp", "-m", "statistic", "--mode", "random", "--probability", &p];
            ns.iptables(&[&rule[..], &["-j", "DROP"]].concat())?;
        }
        for r in &spec.filtered {
            ns.iptables(&["-A", "INPUT", "-p", "tcp", "--dport", &iptables_range(r), "-j", "DROP"])?;
        }
        for r in &spec.rejected {
            let dport = iptables_range(r);
            let rule = ["-A", "INPUT", "-p", "tcp", "--dport", &dport, "-j", "REJECT"];
            ns.iptables(&[&rule[..], &["--reject-with", "icmp-port-unreachable"]].concat())?;
        }
        let ports: Vec<u16> = truth.iter().copied().collect();
        ns.listen(&ports)?;
        let delayer = spec.latency.map(|latency| Delayer::start(&ns, latency)).transpose()?;
        Ok(Lab { spec: spec.clone(), truth, delayer, netns: Some(ns) })
    }

    /// The lab's address: what to scan.
    pub fn ip(&self) -> Ipv4Addr {
        self.netns().ip()
    }

    /// The open ports: exactly what a perfect scanner reports as open.
    pub fn truth(&self) -> &BTreeSet<u16> {
        &self.truth
    }

    /// The spec the lab was built from.
    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// The lab's namespace.
    pub fn netns(&self) -> &Netns {
        self.netns.as_ref().unwrap_or_else(|| unreachable!("the namespace lives until the lab is dropped"))
    }

    /// What the delayer did so far (`None` without latency).
    pub fn delay_stats(&self) -> Option<DelayStats> {
        self.delayer.as_ref().map(Delayer::stats)
    }

    /// Tears the lab down, reporting what could not be removed.
    pub fn down(mut self) -> Result<(), LabError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), LabError> {
        let mut result = Ok(());
        // First release held packets, then remove the namespace.
        if let Some(delayer) = self.delayer.take() {
            if let Err(e) = delayer.stop() {
                result = Err(e);
            }
        }
        if let Some(ns) = self.netns.take() {
            if let Err(e) = ns.close() {
                result = result.and(Err(e));
            }
        }
        result
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("trident: {e}");
        }
    }
}

/// Parses port ranges: `1000-1100,2000,3000-3010` (`a:b` also accepted).
pub fn parse_ranges(s: &str) -> Result<Vec<RangeInclusive<u16>>, String> {
    let port = |p: &str| -> Result<u16, String> {
        match p.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("invalid port {:?} in {s:?} (expected 1-65535)", p.trim())),
            Ok(n) => Ok(n),
        }
    };
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let range = match part.split_once(['-', ':']) {
            Some((a, b)) => port(a)?..=port(b)?,
            None => port(part)?..=port(part)?,
        };
        if range.start() > range.end() {
            return Err(format!("invalid range {part:?}: the first port is above the last"));
        }
        out.push(range);
    }
    Ok(out)
}

/// Ranges as `1000-1100,2000`.
pub fn format_ranges(ranges: &[RangeInclusive<u16>]) -> String {
    ranges.iter().map(range_text).collect::<Vec<_>>().join(",")
}

fn range_text(r: &RangeInclusive<u16>) -> String {
    if r.start() == r.end() { r.start().to_string() } else { format!("{}-{}", r.start(), r.end()) }
}

/// A range as iptables' `--dport first:last`.
fn iptables_range(r: &RangeInclusive<u16>) -> String {
    format!("{}:{}", r.start(), r.end())
}

/// splitmix64: a well-mixed 64-bit function of `x`.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut x = x ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

mod serde_ranges {
    use std::ops::RangeInclusive;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ranges: &[RangeInclusive<u16>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ranges.iter().map(super::range_text))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RangeInclusive<u16>>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        super::parse_ranges(&texts.join(",")).map_err(serde::de::Error::custom)
    }
}

mod serde_latency {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(latency: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match latency {
            Some(l) => s.serialize_some(&(l.as_secs_f64() * 1e3)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let ms = Option::<f64>::deserialize(d)?;
        ms.map(|ms| Duration::try_from_secs_f64(ms / 1e3).map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets() {
        let full = LabSpec::preset("full").unwrap_or_else(|| panic!("full"));
        assert_eq!(full.filtered, [20001..=30000]);
        assert_eq!(full.rejected, [30001..=31000]);
        assert_eq!(full.loss_pct, 3.0);
        assert_eq!(full.latency, None);
        let lat = LabSpec::preset("full-latency").unwrap_or_else(|| panic!("full-latency"));
        assert_eq!(lat.latency, Some(Duration::from_millis(20)));
        assert_eq!(LabSpec { latency: None, ..lat }, full);
        let clean = LabSpec::preset("clean").unwrap_or_else(|| panic!("clean"));
        assert_eq!((clean.open, clean.filtered.len(), clean.loss_pct), (OpenPorts::Count(50), 0, 0.0));
        assert!(LabSpec::preset("nope").is_none());
        for name in LabSpec::PRESETS {
            assert!(LabSpec::preset(name).is_some_and(|s| s.validate().is_ok()), "{name}");
        }
    }

    #[test]
    fn counted_open_ports_are_seeded_and_avoid_the_rules() {
        let full = LabSpec::preset("full").unwrap_or_else(|| panic!("full"));
        let a = full.open_ports().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.len(), 50);
        assert!(a.iter().all(|p| !(20001..=31000).contains(p) && *p != 0), "{a:?}");
        assert_eq!(full.open_ports().ok(), Some(a.clone()), "same seed, same ports");
        let other = LabSpec { seed: 2, ..full }.open_ports().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a, other);
        // Every free port, when asked for all of them.
        let tight = LabSpec { open: OpenPorts::Count(5), filtered: vec![1..=65530], ..LabSpec::default() };
        assert_eq!(tight.open_ports().ok(), Some((65531..=65535).collect()));
        let over = LabSpec { open: OpenPorts::Count(6), ..tight };
        assert!(matches!(over.validate(), Err(LabError::Spec(_))));
    }

    #[test]
    fn contradictions_are_rejected() {
        let base = LabSpec { open: OpenPorts::List(vec![22, 1050]), ..LabSpec::default() };
        let spec = LabSpec { filtered: vec![1000..=1100], ..base.clone() };
        let e = spec.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("port 1050 is both open and in the filtered range 1000-1100"), "{e}");
        let spec = LabSpec { filtered: vec![1..=10], rejected: vec![10..=20], ..LabSpec::default() };
        assert!(spec.validate().is_err());
        assert!(LabSpec { loss_pct: 101.0, ..LabSpec::default() }.validate().is_err());
        assert!(LabSpec { loss_pct: -1.0, ..LabSpec::default() }.validate().is_err());
        assert!(LabSpec { latency: Some(Duration::from_secs(11)), ..LabSpec::default() }.validate().is_err());
        assert!(LabSpec { open: OpenPorts::List(vec![0]), ..LabSpec::default() }.validate().is_err());
    }

    #[test]
    fn ranges_parse_and_format() {
        assert_eq!(parse_ranges("1000-1100, 2000,3000:3010"), Ok(vec![1000..=1100, 2000..=2000, 3000..=3010]));
        assert_eq!(format_ranges(&[1000..=1100, 2000..=2000]), "1000-1100,2000");
        assert_eq!(parse_ranges(""), Ok(vec![]));
        for bad in ["0-5", "5-1", "x", "1-70000", "1-"] {
            assert!(parse_ranges(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_json_round_trip() {
        let spec = LabSpec::preset("full-latency").unwrap_or_else(|| panic!("preset"));
        let json = serde_json::to_string(&spec).unwrap_or_else(|e| panic!("{e}"));
        assert!(json.contains(r#""filtered":["20001-30000"]"#) && json.contains(r#""latency_ms":20.0"#), "{json}");
        assert!(json.contains(r#""open":{"count":50}"#), "{json}");
        let back: LabSpec = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, spec);
        let list = LabSpec { open: OpenPorts::List(vec![22, 8080]), ..LabSpec::default() };
        let json = serde_json::to_string(&list).unwrap_or_else(|e| panic!("{e}"));
        assert!(json.contains(r#""open":{"list":[22,8080]}"#), "{json}");
    }
}
