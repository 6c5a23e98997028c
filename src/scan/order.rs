//! Probe order: a pseudo-random permutation of the whole (address × port)
//! space in O(1) memory, and shards of it.
//!
//! The permutation is a 4-round Feistel network over the smallest even
//! number of bits that covers the space, keyed by the seed; walking its
//! domain in order and keeping the outputs that fall inside the space
//! visits every (address, port) exactly once (at most 4 domain steps per
//! kept value). Shard K of N walks the domain indices congruent to K modulo
//! N, so with the same seed the N shards are disjoint and together are
//! exactly the unsharded scan. Scanning in random order spreads filtered
//! ranges and each host's load over the whole scan, as zmap and masscan do.

use std::fmt;
use std::str::FromStr;

/// One shard of a scan: `index` in `0..count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 0 (as Kubernetes' JOB_COMPLETION_INDEX).
    pub index: u64,
    /// How many shards in all.
    pub count: u64,
}

impl Shard {
    /// The whole scan.
    pub const ALL: Shard = Shard { index: 0, count: 1 };
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Environment variable read by `--shard auto/N`.
pub const SHARD_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

impl Shard {
    /// Parses `K/N` or `auto/N` (K from `$JOB_COMPLETION_INDEX`), given the
    /// environment lookup to use.
    pub fn parse_with(s: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let bad = |why: &str| format!("invalid shard {s:?}: {why} (expected K/N with 0 <= K < N, or auto/N)");
        let (k, n) = s.split_once('/').ok_or_else(|| bad("no /"))?;
        let count: u64 = n.parse().map_err(|_| bad("N is not a number"))?;
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        let index: u64 = if k == "auto" {
            let v = env(SHARD_INDEX_ENV).ok_or_else(|| bad(&format!("auto needs ${SHARD_INDEX_ENV}")))?;
            v.trim().parse().map_err(|_| bad(&format!("${SHARD_INDEX_ENV}={v:?} is not a number")))?
        } else {
            k.parse().map_err(|_| bad("K is not a number"))?
        };
        if index >= count {
            return Err(bad("K must be below N; shards are numbered from 0"));
        }
        Ok(Shard { index, count })
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Shard::parse_with(s, |k| std::env::var(k).ok())
    }
}

/// A keyed bijection on `0..2^(2*half_bits)`.
#[derive(Clone, Debug)]
struct Feistel {
    half_bits: u32,
    keys: [u64; 4],
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Feistel {
    fn new(space: u64, seed: u64) -> Self {
        let bits = 64 - space.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let mut k = seed;
        let keys = [0; 4].map(|_| {
            k = splitmix64(k);
            k
        });
        Feistel { half_bits, keys }
    }

    fn domain(&self) -> u64 {
        1u64 << (2 * self.half_bits)
    }

    fn permute(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys {
            let f = splitmix64(right ^ key) & mask;
            (left, right) = (right, left ^ f);
        }
        (left << self.half_bits) | right
    }
}

/// The indices `0..space` of one shard, in permuted order.
#[derive(Clone, Debug)]
pub struct Order {
    feistel: Feistel,
    space: u64,
    next: u64,
    step: u64,
}

impl Order {
    /// Shard `shard` of a permutation of `0..space` keyed by `seed`.
    /// `space` must be below 2^62.
    pub fn new(space: u64, seed: u64, shard: Shard) -> Self {
        Order { feistel: Feistel::new(space, seed), space, next: shard.index, step: shard.count }
    }
}

impl Iterator for Order {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        let domain = self.feistel.domain();
        while self.next < domain {
            let v = self.feistel.permute(self.next);
            self.next += self.step;
            if v < self.space {
                return Some(v);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_index_exactly_once() {
        for space in [1u64, 2, 3, 7, 64, 65, 1000, 65_535, 70_001] {
            let mut seen: Vec<u64> = Order::new(space, 42, Shard::ALL).collect();
            assert_eq!(seen.len() as u64, space);
            seen.sort_unstable();
            assert!(seen.iter().copied().eq(0..space), "space {space}");
        }
    }

    #[test]
    fn order_depends_on_seed_and_is_not_sequential() {
        let a: Vec<u64> = Order::new(1000, 1, Shard::ALL).collect();
        let b: Vec<u64> = Order::new(1000, 2, Shard::ALL).collect();
        let again: Vec<u64> = Order::new(1000, 1, Shard::ALL).collect();
        assert_eq!(a, again);
        assert_ne!(a, b);
        let in_place = a.iter().enumerate().filter(|(i, v)| *i as u64 == **v).count();
        assert!(in_place < 20, "{in_place} fixed points");
    }

    #[test]
    fn shards_are_disjoint_and_cover_the_space() {
        for n in [1u64, 2, 3, 5, 8] {
            let mut all = HashSet::new();
            let mut total = 0;
            for k in 0..n {
                for v in Order::new(10_007, 99, Shard { index: k, count: n }) {
                    assert!(all.insert(v), "{v} in two shards");
                    total += 1;
                }
            }
            assert_eq!(total, 10_007);
        }
    }

    #[test]
    fn shard_syntax() {
        let env = |_: &str| Some("3".to_string());
        let none = |_: &str| None;
        assert_eq!(Shard::parse_with("0/4", none), Ok(Shard { index: 0, count: 4 }));
        assert_eq!(Shard::parse_with("auto/4", env), Ok(Shard { index: 3, count: 4 }));
        for bad in ["4/4", "1", "a/2", "1/0", "auto/2"] {
            let e = Shard::parse_with(bad, if bad == "auto/2" { env } else { none }).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert!(Shard::parse_with("auto/4", none).unwrap_err().contains("JOB_COMPLETION_INDEX"));
    }
}
