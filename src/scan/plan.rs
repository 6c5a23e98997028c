//! The size of a scan before it starts: how many addresses, ports and
//! probes, the guard against scanning far more than was meant, and the
//! `--list-targets` listing (nmap's `-sL`), which sends nothing.
//!
//! A typo in a target (`10.0.0.0/0` for `10.0.0.0/8`, a /8 for a /24) or a
//! `-p-` too many turns a lab scan into a scan of the Internet. Above
//! [`MAX_ADDRESSES`] addresses or [`MAX_PROBES`] probes (this shard's) the
//! scan needs `--allow-huge`, as masscan refuses 0.0.0.0/0 without an
//! exclude list.

use std::fmt;
use std::io::{self, Write};

use super::{PortList, Shard, TargetSet};
use crate::error::BadInput;

/// More addresses than this (a /8) need `--allow-huge`.
pub const MAX_ADDRESSES: u128 = 1 << 24;
/// More probes than this (in this shard) need `--allow-huge`.
pub const MAX_PROBES: u128 = 1 << 32;

/// What a scan would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Addresses (every target block, duplicates included).
    pub addresses: u128,
    /// Ports per address.
    pub ports: u128,
    /// Probes of the whole scan, before retries (saturating).
    pub probes: u128,
    /// Which shard this run scans.
    pub shard: Shard,
    /// Probes of this shard, before retries (a shard's exact share of the
    /// permutation varies a little around this).
    pub shard_probes: u128,
}

impl Plan {
    /// The plan of scanning `targets` × `ports`, shard `shard`.
    pub fn new(targets: &TargetSet, ports: &PortList, shard: Shard) -> Plan {
        let addresses = targets.len();
        let ports = ports.len() as u128;
        let probes = addresses.saturating_mul(ports);
        let count = u128::from(shard.count.max(1));
        // Shard K gets the indices congruent to K modulo N.
        let shard_probes = probes / count + u128::from(probes % count > u128::from(shard.index));
        Plan { addresses, ports, probes, shard, shard_probes }
    }

    /// Why this plan needs `--allow-huge`, if it does.
    pub fn too_huge(&self) -> Option<String> {
        if self.addresses > MAX_ADDRESSES {
            return Some(format!(
                "{} addresses (more than 2^24, a /8)",
                if self.addresses == u128::MAX { "2^128".to_string() } else { self.addresses.to_string() }
            ));
        }
        if self.shard_probes > MAX_PROBES {
            return Some(format!("{} probes (more than 2^32)", self.shard_probes));
        }
        None
    }

    /// Refuses a huge plan unless `allowed`.
    pub fn check(&self, allowed: bool) -> Result<(), BadInput> {
        match self.too_huge() {
            Some(why) if !allowed => Err(BadInput(format!(
                "the scan is huge: {why}; check the targets (see --list-targets) and add --allow-huge if that is really meant"
            ))),
            _ => Ok(()),
        }
    }

    /// Writes the `--list-targets` listing: the blocks, then the totals.
    pub fn write_listing(&self, targets: &TargetSet, out: &mut impl Write) -> io::Result<()> {
        for b in &targets.blocks {
            let last = b.nth(b.count.saturating_sub(1));
            let host = b.host.as_deref().map(|h| format!(" ({h})")).unwrap_or_default();
            if b.count == 1 {
                writeln!(out, "target {}{host}", b.first)?;
            } else {
                writeln!(out, "target {}-{last}{host}: {} addresses", b.first, Count(b.count))?;
            }
        }
        writeln!(out, "addresses {}", Count(self.addresses))?;
        writeln!(out, "ports     {}", self.ports)?;
        writeln!(out, "probes    {} (before retries)", Count(self.probes))?;
        let about = if self.shard.count > 1 { "about " } else { "" };
        writeln!(out, "shard     {} ({about}{} probes)", self.shard, Count(self.shard_probes))?;
        match self.too_huge() {
            Some(why) => writeln!(out, "huge      {why}: the scan needs --allow-huge"),
            None => writeln!(out, "huge      no"),
        }
    }
}

/// A count that may be `::/0`'s saturated 2^128.
struct Count(u128);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == u128::MAX { f.write_str("2^128 or more") } else { write!(f, "{}", self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Family;

    fn plan(targets: &[&str], ports: &str, shard: Shard) -> Plan {
        let specs: Vec<String> = targets.iter().map(ToString::to_string).collect();
        let (set, _) = TargetSet::resolve(&specs, Family::Any).unwrap_or_else(|e| panic!("{e}"));
        Plan::new(&set, &PortList::parse(ports).unwrap_or_else(|e| panic!("{e}")), shard)
    }

    #[test]
    fn limits() {
        let p = plan(&["10.0.0.0/8"], "80", Shard::ALL);
        assert_eq!((p.addresses, p.probes), (1 << 24, 1 << 24));
        assert!(p.check(false).is_ok(), "a /8 on one port is at the limit, not above");
        let p = plan(&["10.0.0.0/7"], "80", Shard::ALL);
        let e = p.check(false).unwrap_err().to_string();
        assert!(e.contains("--allow-huge") && e.contains("33554432 addresses"), "{e}");
        assert!(p.check(true).is_ok());
        // The README's /16 -p- is just below the probe limit; a /15 is above.
        assert!(plan(&["10.20.0.0/16"], "-", Shard::ALL).check(false).is_ok());
        let p = plan(&["10.20.0.0/15"], "-", Shard::ALL);
        assert_eq!(p.probes, 2 * 65536 * 65535);
        assert!(p.check(false).unwrap_err().to_string().contains("probes (more than 2^32)"));
        // One shard of two is below it.
        let p = plan(&["10.20.0.0/15"], "-", Shard { index: 1, count: 2 });
        assert_eq!(p.shard_probes, 65536 * 65535);
        assert!(p.check(false).is_ok());
        let p = plan(&["::/0"], "80", Shard::ALL);
        assert!(p.check(false).unwrap_err().to_string().contains("2^128"));
    }

    #[test]
    fn shard_sizes_add_up() {
        for n in 1..7u64 {
            let total: u128 = (0..n)
                .map(|k| plan(&["10.0.0.0/30", "10.0.1.1"], "1-3", Shard { index: k, count: n }).shard_probes)
                .sum();
            assert_eq!(total, 15, "{n} shards");
        }
    }

    #[test]
    fn listing() {
        let p = plan(&["10.0.0.0/30", "127.0.0.1"], "22,80", Shard::ALL);
        let (set, _) = TargetSet::resolve(&["10.0.0.0/30".into(), "127.0.0.1".into()], Family::Any).unwrap();
        let mut out = Vec::new();
        p.write_listing(&set, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "target 10.0.0.0-10.0.0.3: 4 addresses\ntarget 127.0.0.1\naddresses 5\nports     2\n\
probes    10 (before retries)\nshard     0/1 (10 probes)\nhuge      no\n"
        );
    }
}
