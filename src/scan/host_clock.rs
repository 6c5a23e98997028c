//! `--host-timeout`: each address gets at most so long from its first
//! probe; after that no new probe goes to it, and it is named at the end
//! (as nmap's "skipping host due to host timeout").
//!
//! The probe order interleaves every address of the scan, so a host's
//! clock starts at its own first probe, not at the scan's start. The
//! clocks are one `u32` (milliseconds) per address of the shard, indexed
//! by the address's place in the scan: 4 bytes an address, allocated only
//! with the flag, and the flag is refused above [`MAX_HOSTS`] addresses.

use std::time::{Duration, Instant};

/// Most addresses a scan with `--host-timeout` may have (64 MiB of clocks).
pub const MAX_HOSTS: u128 = 1 << 24;

/// The per-address clocks of one scan.
#[derive(Debug)]
pub(crate) struct HostClock {
    limit_ms: u64,
    started: Instant,
    /// Milliseconds after `started` of each address's first probe, plus 1
    /// (0: not probed yet).
    first_probe: Vec<u32>,
    /// The first few addresses out of time, by index.
    timed_out: Vec<u64>,
    /// How many addresses ran out of time.
    count: u64,
}

/// The clock of an address that ran out of time.
const OUT_OF_TIME: u32 = u32::MAX;

/// Addresses named at the end, at most.
const NAMED: usize = 10;

impl HostClock {
    pub(crate) fn new(limit: Duration, hosts: u64) -> Self {
        HostClock {
            limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            started: Instant::now(),
            first_probe: vec![0; usize::try_from(hosts).unwrap_or(usize::MAX)],
            timed_out: Vec::new(),
            count: 0,
        }
    }

    /// Whether a probe of address number `host` may still go out now.
    pub(crate) fn admits(&mut self, host: u64) -> bool {
        self.admits_at(host, self.started.elapsed())
    }

    fn admits_at(&mut self, host: u64, now: Duration) -> bool {
        let Some(first) = usize::try_from(host).ok().and_then(|h| self.first_probe.get_mut(h)) else { return true };
        let now_ms = u32::try_from(now.as_millis()).unwrap_or(u32::MAX).min(OUT_OF_TIME - 2);
        match *first {
            OUT_OF_TIME => false,
            0 => {
                *first = now_ms + 1;
                true
            }
            since if u64::from((now_ms + 1).saturating_sub(since)) < self.limit_ms => true,
            _ => {
                // Counted once, the first time one of its probes is refused.
                *first = OUT_OF_TIME;
                self.count += 1;
                if self.timed_out.len() < NAMED {
                    self.timed_out.push(host);
                }
                false
            }
        }
    }

    /// How many addresses ran out of time, and the first few of them.
    pub(crate) fn timed_out(&self) -> (u64, &[u64]) {
        (self.count, &self.timed_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_has_its_own_clock_from_its_first_probe() {
        let ms = Duration::from_millis;
        let mut c = HostClock::new(ms(100), 3);
        assert!(c.admits_at(0, ms(0)));
        assert!(c.admits_at(1, ms(90)), "host 1 starts at 90 ms");
        assert!(c.admits_at(0, ms(99)));
        assert!(!c.admits_at(0, ms(100)), "host 0's 100 ms are over");
        assert!(!c.admits_at(0, ms(150)));
        assert!(c.admits_at(1, ms(150)), "host 1 has until 190 ms");
        assert!(!c.admits_at(1, ms(190)));
        assert!(c.admits_at(2, ms(10_000)), "host 2 not probed before");
        assert!(c.admits_at(7, ms(10_000)), "outside the scan: nothing to track");
        assert_eq!(c.timed_out(), (2, &[0u64, 1][..]), "each counted once");
    }

    #[test]
    fn only_the_first_few_are_named() {
        let ms = Duration::from_millis;
        let mut c = HostClock::new(ms(1), 50);
        for h in 0..50 {
            assert!(c.admits_at(h, ms(0)));
        }
        for h in 0..50 {
            assert!(!c.admits_at(h, ms(5)));
        }
        let (count, named) = c.timed_out();
        assert_eq!((count, named.len()), (50, NAMED));
    }
}
