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
//! more rounds. Otherwise the budget adapts to what retries recover: a
//! retry round that turns silent ports into answers shows loss (or a timeout
//! that was too short), so another round follows; a round that recovers
//! nothing ends the scan, since what is still silent is filtered.

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
    /// Retry rounds: fixed count, or adaptive up to this many.
    pub retries: Retries,
}

/// The retry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retries {
    /// Exactly up to N retry rounds for silent ports (`--retries N`).
    Fixed(u8),
    /// At least one retry round if anything was silent, more while rounds
    /// recover answers, never more than this.
    Adaptive {
        /// Upper bound of retry rounds.
        max: u8,
    },
}

impl Retries {
    /// Whether another round should run, given the retry rounds done so far
    /// and how many silent ports the last retry round turned into answers.
    pub fn another_round(self, rounds_done: u8, silent: usize, recovered_last: Option<usize>) -> bool {
        if silent == 0 {
            return false;
        }
        match self {
            Retries::Fixed(n) => rounds_done < n,
            Retries::Adaptive { max } => rounds_done < max && recovered_last.is_none_or(|r| r > 0),
        }
    }

    /// The most probes one port can receive.
    pub fn max_tries(self) -> u32 {
        match self {
            Retries::Fixed(n) | Retries::Adaptive { max: n } => u32::from(n) + 1,
        }
    }
}

impl TimingConfig {
    /// The default: 1 s initial timeout (nmap's), then the adaptive
    /// estimate clamped to 10 ms–10 s, up to 10 adaptive retry rounds.
    ///
    /// nmap clamps at 100 ms; trident can go lower because a probe answered
    /// after its timeout is not lost: it comes back in a retry round (whose
    /// recoveries also keep the rounds going), and the estimate it feeds
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
        self.per_target.entry(ip).or_default().update(us);
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn retry_rounds() {
        let fixed = Retries::Fixed(2);
        assert!(fixed.another_round(0, 5, None));
        assert!(fixed.another_round(1, 5, Some(0)), "fixed retries do not adapt");
        assert!(!fixed.another_round(2, 5, Some(3)));
        assert!(!fixed.another_round(0, 0, None), "nothing silent, nothing to retry");

        let adaptive = Retries::Adaptive { max: 10 };
        assert!(adaptive.another_round(0, 100, None), "one retry always, to tell loss from filtering");
        assert!(adaptive.another_round(1, 100, Some(4)), "the last retry recovered answers: loss");
        assert!(!adaptive.another_round(1, 100, Some(0)), "nothing recovered: the rest is filtered");
        assert!(!adaptive.another_round(10, 100, Some(4)), "bounded");
        assert_eq!(adaptive.max_tries(), 11);
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
