//! How long to wait for an answer, and how many times to ask again.
//!
//! Timeouts follow nmap's scheme (RFC 6298's estimator): every answered
//! probe (open or closed) is an RTT sample; per target address,
//! `srtt += (rtt - srtt) / 8`, `rttvar += (|rtt - srtt| - rttvar) / 4`, and
//! the timeout is `srtt + 4 * rttvar` clamped to `[min, max]`. Until an
//! address has samples, the scan-wide estimate is used, and before any
//! sample at all, the initial timeout.
//!
//! Retries happen in rounds (see `scan::run`): only ports that got no
//! answer are probed again. With a fixed `--retries N` there are at most N
//! more rounds. Otherwise the budget adapts to what retries recover: the
//! first retry round always runs (it tells loss from filtering); a further
//! round runs only if the last one recovered answers (nmap's "highest
//! successful try" rule) *and* enough of them that the next round is
//! expected to reveal an open port in at least one scan in a thousand
//! ([`Evidence::worth_another`]). Through a lossy firewall that drops 10,000
//! ports, a round that recovers one or two closed ports would otherwise
//! cost 10,000 more probes for nothing.
//!
//! Tried and measured, not kept: retrying a silent port on the spot inside
//! its probe when the evidence already wants it (nmap's inline
//! retransmissions), to overlap retries with the main round. On the 2-core
//! machine it made the full-range scan of the 20 ms lab slower (4 runs
//! each, alternating: 2.4-2.5 s with rounds, 2.5-3.0 s inline; round 0
//! 1.4-1.9 s -> 2.4-2.8 s): the work is CPU-bound, so overlapping saves no
//! time, a filtered port holds its slot through every retry, and most
//! level-3 decisions still wait for the round's end (the evidence is not in
//! yet). Worth measuring again on more cores and longer RTTs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Timing options (validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimingConfig {
    /// Timeout before any RTT has been measured.
    pub initial: Duration,
    /// Lower clamp of the adaptive timeout.
    pub min: Duration,
    /// Upper clamp of the adaptive timeout.
    pub max: Duration,
    /// Fixed timeout (`--timeout`): disables adaptation.
    pub fixed: Option<Duration>,
    /// Retries per silent port: fixed count, or adaptive up to this many.
    pub retries: Retries,
}

/// The retry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retries {
    /// Exactly up to N retries for silent ports (`--retries N`).
    Fixed(u8),
    /// The first retry always, a further one while the previous retry
    /// level recovered enough answers to be worth it, never more than this
    /// many.
    Adaptive {
        /// Upper bound of retries per port.
        max: u8,
    },
}

impl Retries {
    /// Whether a port that stayed silent on all its `tries` probes gets
    /// another one, given what the answers so far say.
    pub fn wants(self, tries: u32, evidence: &Evidence) -> bool {
        match self {
            Retries::Fixed(n) => tries <= u32::from(n),
            Retries::Adaptive { max } => tries <= u32::from(max) && (tries == 1 || evidence.worth_another(tries)),
        }
    }

    /// The most probes one port can receive.
    pub fn max_tries(self) -> u32 {
        match self {
            Retries::Fixed(n) | Retries::Adaptive { max: n } => u32::from(n) + 1,
        }
    }
}

/// Probe numbers whose answers are counted (later ones count as the last).
const LEVELS: usize = 12;

/// Stop retrying once another retry level would be expected to reveal
/// fewer than this many open ports: one scan in a thousand missing one.
const HIDDEN_OPEN_LIMIT: f64 = 0.001;

/// What the answers so far say about loss: how many ports answered their
/// first, second, ... probe (the twelfth and later count together), and
/// how many were open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    answered: [u32; LEVELS],
    open: u32,
}

impl Evidence {
    fn level(tries: u32) -> usize {
        (tries.max(1) as usize).min(LEVELS) - 1
    }

    /// Counts a port that answered its `tries`-th probe.
    pub fn count(&mut self, tries: u32, open: bool) {
        self.answered[Self::level(tries)] += 1;
        self.open += u32::from(open);
    }

    /// Ports that answered their `tries`-th probe.
    pub fn answered_at(&self, tries: u32) -> u32 {
        if tries == 0 { 0 } else { self.answered[Self::level(tries)] }
    }

    /// Whether a port silent on its `tries` probes (`tries` ≥ 2) is worth
    /// another: loss looks geometric (each retry level recovers about the
    /// loss rate times the previous one), so the next level should recover
    /// `r_t * r_t / r_(t-1)` ports, of which the share found open so far
    /// would be open. Nothing recovered at level `t`: nothing expected.
    pub fn worth_another(&self, tries: u32) -> bool {
        self.worth_another_in(self, tries, 1.0)
    }

    /// [`Evidence::worth_another`] for a part of the scan (`part`'s
    /// answers, `share` of its probes): its next level is worth it if it
    /// is expected to reveal an open port with at least its share of the
    /// whole scan's budget, so that the parts together keep the whole
    /// scan's odds. The open share comes from `self`, the whole scan.
    pub fn worth_another_in(&self, part: &Evidence, tries: u32, share: f64) -> bool {
        let (recovered, before) = (f64::from(part.answered_at(tries)), f64::from(part.answered_at(tries - 1)));
        if recovered == 0.0 {
            return false;
        }
        let rate = if before > 0.0 { (recovered / before).min(1.0) } else { 1.0 };
        let total: f64 = self.answered.iter().map(|&n| f64::from(n)).sum();
        let open_share = (f64::from(self.open) + 1.0) / (total + 2.0);
        recovered * rate * open_share >= HIDDEN_OPEN_LIMIT * share
    }
}

impl TimingConfig {
    /// The default: 1 s initial timeout (nmap's), then the adaptive
    /// estimate clamped to 10 ms–10 s, up to 10 adaptive retries.
    ///
    /// nmap clamps at 100 ms; trident can go lower because a probe answered
    /// after its timeout is not lost: it answers a retry (whose recoveries
    /// also keep the retries going), and the estimate it feeds
    /// raises the timeout. On a LAN or a namespace (RTT ~0.1 ms) this makes
    /// a filtered port cost ~10 ms instead of 100 ms.
    pub fn normal() -> Self {
        TimingConfig {
            initial: Duration::from_secs(1),
            min: Duration::from_millis(10),
            max: Duration::from_secs(10),
            fixed: None,
            retries: Retries::Adaptive { max: 10 },
        }
    }

    /// A `-T0`..`-T5` preset: nmap's figures for the timeouts and retries,
    /// except -T3, which is [`TimingConfig::normal`].
    pub fn preset(level: u8) -> Option<Self> {
        let t = |initial_ms, min_ms, max_ms, retries| TimingConfig {
            initial: Duration::from_millis(initial_ms),
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(max_ms),
            fixed: None,
            retries: Retries::Adaptive { max: retries },
        };
        match level {
            0 => Some(t(300_000, 100, 300_000, 10)),
            1 => Some(t(15_000, 100, 15_000, 10)),
            2 => Some(t(1_000, 100, 10_000, 10)),
            3 => Some(Self::normal()),
            // nmap's -T4/-T5 maxima and retries, with trident's lower floor.
            4 => Some(t(500, 10, 1_250, 6)),
            5 => Some(t(250, 5, 300, 2)),
            _ => None,
        }
    }
}

/// RFC 6298 smoothed RTT and variance, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Estimate {
    srtt: f64,
    rttvar: f64,
    samples: u64,
}

impl Estimate {
    fn update(&mut self, rtt_us: f64) {
        if self.samples == 0 {
            self.srtt = rtt_us;
            self.rttvar = rtt_us / 2.0;
        } else {
            let err = rtt_us - self.srtt;
            self.srtt += err / 8.0;
            self.rttvar += (err.abs() - self.rttvar) / 4.0;
        }
        self.samples += 1;
    }

    /// srtt + 4·rttvar, but never below 1.5·srtt: the samples are only the
    /// answers that beat the timeout, so the variance of a path whose
    /// answers come in bursts (a busy network, a busy scanner) is
    /// underestimated, and without the margin a whole wave of answers
    /// arriving a few milliseconds late is mistaken for silence.
    fn timeout_us(&self) -> f64 {
        (self.srtt + 4.0 * self.rttvar).max(1.5 * self.srtt)
    }
}

/// Addresses with an RTT estimate of their own, at most.
const PER_TARGET_LIMIT: usize = 65_536;

/// RTT estimates per target and scan-wide; hands out probe timeouts.
#[derive(Clone, Debug)]
pub struct Timing {
    config: TimingConfig,
    global: Estimate,
    per_target: HashMap<IpAddr, Estimate>,
}

impl Timing {
    /// A fresh estimator.
    pub fn new(config: TimingConfig) -> Self {
        Timing { config, global: Estimate::default(), per_target: HashMap::new() }
    }

    /// The options in force.
    pub fn config(&self) -> &TimingConfig {
        &self.config
    }

    /// Records the RTT of an answered probe.
    pub fn observe(&mut self, ip: IpAddr, rtt: Duration) {
        let us = rtt.as_secs_f64() * 1e6;
        self.global.update(us);
        // Past this many answering addresses, new ones share the scan-wide
        // estimate: the map must not grow with the target.
        if self.per_target.len() < PER_TARGET_LIMIT || self.per_target.contains_key(&ip) {
            self.per_target.entry(ip).or_default().update(us);
        }
    }

    /// The timeout for the next probe of `ip`.
    pub fn timeout(&self, ip: IpAddr) -> Duration {
        if let Some(fixed) = self.config.fixed {
            return fixed;
        }
        let estimate = match self.per_target.get(&ip) {
            Some(e) if e.samples > 0 => e,
            _ if self.global.samples > 0 => &self.global,
            _ => return self.config.initial,
        };
        Duration::from_secs_f64(estimate.timeout_us() / 1e6).clamp(self.config.min, self.config.max)
    }

    /// Whether any probe has answered yet.
    pub fn has_samples(&self) -> bool {
        self.global.samples > 0
    }

    /// One line about the scan-wide estimate, for `-v`.
    pub fn describe(&self) -> String {
        if let Some(fixed) = self.config.fixed {
            return format!("fixed timeout {fixed:?}");
        }
        if self.global.samples == 0 {
            return format!("no RTT sample yet, timeout {:?}", self.config.initial);
        }
        let timeout = Duration::from_secs_f64(self.global.timeout_us() / 1e6).clamp(self.config.min, self.config.max);
        format!(
            "srtt {:.0}us, rttvar {:.0}us over {} samples, timeout {timeout:?}",
            self.global.srtt, self.global.rttvar, self.global.samples
        )
    }

    /// (srtt, rttvar, timeout) of `ip` in microseconds, for reports.
    pub fn stats(&self, ip: IpAddr) -> Option<(u64, u64, u64)> {
        let e = self.per_target.get(&ip)?;
        Some((e.srtt as u64, e.rttvar as u64, self.timeout(ip).as_micros() as u64))
    }
}

/// The probes in flight that keep `floor` probes per second going
/// (`--min-rate`) when each may hold its slot for up to `hold`: nothing
/// else slows a scan down, so this is what a rate floor needs.
pub fn concurrency_for_rate(floor: f64, hold: Duration) -> usize {
    (floor * hold.as_secs_f64()).ceil().clamp(1.0, 1e9) as usize
}

/// What to say when a scan of `sent` probes in `elapsed` ran below its
/// `floor` (`--min-rate`). A scan shorter than a second at the floor is
/// all start-up, so it is not judged.
pub fn rate_shortfall(floor: f64, sent: u64, elapsed: Duration, concurrency: usize) -> Option<String> {
    let rate = sent as f64 / elapsed.as_secs_f64().max(1e-3);
    (sent as f64 >= floor && rate < floor).then(|| {
        format!(
            "ran at {rate:.0} probes/s, below --min-rate {floor}: {concurrency} probes in flight waited for \
their answers or timeouts longer than expected (raise -j, or lower --timeout)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_floor() {
        assert_eq!(concurrency_for_rate(1000.0, Duration::from_secs(1)), 1000);
        assert_eq!(concurrency_for_rate(150.0, Duration::from_millis(10)), 2);
        assert_eq!(concurrency_for_rate(0.5, Duration::from_millis(10)), 1);
        let slow = rate_shortfall(1000.0, 2000, Duration::from_secs(4), 64).unwrap_or_default();
        assert!(slow.starts_with("ran at 500 probes/s, below --min-rate 1000: 64 probes"), "{slow}");
        assert_eq!(rate_shortfall(1000.0, 2000, Duration::from_secs(1), 64), None, "2,000/s is above");
        assert_eq!(rate_shortfall(1000.0, 50, Duration::from_secs(1), 64), None, "too short to judge");
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn initial_then_adaptive_then_clamped() {
        let mut t = Timing::new(TimingConfig::normal());
        assert_eq!(t.timeout(IP), Duration::from_secs(1));
        for _ in 0..50 {
            t.observe(IP, Duration::from_micros(60));
        }
        assert_eq!(t.timeout(IP), Duration::from_millis(10), "tiny RTTs clamp to the minimum");
        assert_eq!(t.timeout(OTHER), Duration::from_millis(10), "unsampled targets use the scan-wide estimate");
        for _ in 0..200 {
            t.observe(IP, Duration::from_millis(200));
        }
        let to = t.timeout(IP);
        assert!(to >= Duration::from_millis(200) && to < Duration::from_millis(400), "{to:?}");
    }

    #[test]
    fn rfc6298_first_sample_and_update() {
        let mut e = Estimate::default();
        e.update(100.0);
        assert_eq!((e.srtt, e.rttvar, e.timeout_us()), (100.0, 50.0, 300.0));
        e.update(200.0);
        assert_eq!((e.srtt, e.rttvar), (112.5, 62.5));
    }

    #[test]
    fn fixed_timeout_wins() {
        let mut t = Timing::new(TimingConfig { fixed: Some(Duration::from_millis(300)), ..TimingConfig::normal() });
        t.observe(IP, Duration::from_micros(10));
        assert_eq!(t.timeout(IP), Duration::from_millis(300));
    }

    #[test]
    fn retry_levels() {
        let none = Evidence::default();
        let fixed = Retries::Fixed(2);
        assert!(fixed.wants(1, &none));
        assert!(fixed.wants(2, &none), "fixed retries do not adapt");
        assert!(!fixed.wants(3, &none));

        let adaptive = Retries::Adaptive { max: 10 };
        assert!(adaptive.wants(1, &none), "one retry always, to tell loss from filtering");
        assert!(!adaptive.wants(2, &none), "nothing recovered by the first retry: the rest is filtered");
        assert_eq!(adaptive.max_tries(), 11);

        // The full lab: 50 open of 55,535 answering ports, 3% loss.
        let mut lab = Evidence::default();
        let add = |lab: &mut Evidence, tries, n: u32, open: u32| {
            for i in 0..n {
                lab.count(tries, i < open);
            }
        };
        add(&mut lab, 1, 53_900, 48);
        add(&mut lab, 2, 1_590, 2);
        assert!(adaptive.wants(2, &lab), "46 ports expected at the next level: 0.04 open ones");
        add(&mut lab, 3, 48, 0);
        assert!(adaptive.wants(3, &lab), "1.4 expected: 0.0013 open ones");
        add(&mut lab, 4, 2, 0);
        assert!(!adaptive.wants(4, &lab), "0.08 expected: 0.00008 open ones");
        assert!(!adaptive.wants(11, &lab), "bounded");
        assert_eq!(lab.answered_at(2), 1_590);
    }

    #[test]
    fn presets_exist_for_t0_to_t5() {
        for level in 0..=5 {
            let p = TimingConfig::preset(level).unwrap();
            assert!(p.min <= p.initial && p.initial <= p.max, "T{level}");
        }
        assert!(TimingConfig::preset(6).is_none());
    }
}
