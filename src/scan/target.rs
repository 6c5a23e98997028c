//! Scan targets: addresses, CIDR blocks, IPv4 ranges and host names, parsed
//! into a [`TargetSet`] of address blocks that is walked lazily (a /8 is
//! never materialised).
//!
//! Syntax errors are fatal (bad input); a name that does not resolve is a
//! per-target failure that the caller reports and skips.
//!
//! Exclusions (`--exclude`) are subtracted block by block, as intervals:
//! a block loses the addresses excluded and may split in pieces, so the
//! set grows by at most one block per exclusion, whatever the sizes.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::sync::Arc;

/// Which address families a host name may resolve to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    /// IPv4 and IPv6.
    #[default]
    Any,
    /// IPv4 only (`-4`).
    V4,
    /// IPv6 only (`-6`).
    V6,
}

impl Family {
    fn admits(self, ip: &IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }
}

/// A run of consecutive addresses of one family, with the name they came
/// from when the user gave a host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The host name as typed, if any.
    pub host: Option<Arc<str>>,
    /// First address.
    pub first: IpAddr,
    /// Number of addresses (at least 1).
    pub count: u128,
}

impl Block {
    fn single(host: Option<Arc<str>>, ip: IpAddr) -> Self {
        Block { host, first: ip, count: 1 }
    }

    /// First and last address as numbers (IPv4 in the low 32 bits).
    fn interval(&self) -> Interval {
        let lo = match self.first {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        (lo, lo.saturating_add(self.count.saturating_sub(1)))
    }

    /// The addresses `lo..=hi` of this block's family, with its host name.
    fn piece(&self, lo: u128, hi: u128) -> Block {
        let first = match self.first {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(lo as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(lo)),
        };
        Block { host: self.host.clone(), first, count: hi - lo + 1 }
    }

    /// The `i`-th address of the block (`i < count`).
    pub fn nth(&self, i: u128) -> IpAddr {
        match self.first {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(i as u32))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(i))),
        }
    }
}

/// Every address to scan, in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetSet {
    /// The blocks, in command-line order; duplicates are kept as given.
    pub blocks: Vec<Block>,
}

/// A target that cannot be scanned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a valid address, block, range or host name.
    #[error(
        "invalid target {target:?}: {why} (expected an IP address, CIDR such as 10.0.0.0/30, range such as 10.0.0.1-20, or host name)"
    )]
    Syntax {
        /// The target as typed.
        target: String,
        /// What is wrong with it.
        why: String,
    },
    /// A host name with no usable address.
    #[error("cannot resolve host {target:?}: {why}")]
    Resolve {
        /// The name as typed.
        target: String,
        /// The resolver's answer.
        why: String,
    },
}

impl TargetSet {
    /// Total number of addresses.
    pub fn len(&self) -> u128 {
        // `::/0` alone is u128::MAX addresses: saturate rather than overflow.
        self.blocks.iter().fold(0u128, |n, b| n.saturating_add(b.count))
    }

    /// Whether there is no address at all.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Every (host name, address), lazily, in order.
    pub fn iter(&self) -> impl Iterator<Item = (Option<Arc<str>>, IpAddr)> + Clone + '_ {
        self.blocks.iter().flat_map(|b| (0..b.count).map(move |i| (b.host.clone(), b.nth(i))))
    }

    /// Parses and resolves `specs`. Syntax errors fail the whole call (bad
    /// input); unresolvable names are returned beside the set so the caller
    /// can report them and scan the rest.
    pub fn resolve(specs: &[String], family: Family) -> Result<(TargetSet, Vec<TargetError>), TargetError> {
        let mut set = TargetSet::default();
        let mut failures = Vec::new();
        for spec in specs {
            match parse_literal(spec)? {
                Some(block) => {
                    if family.admits(&block.first) {
                        set.blocks.push(block);
                    } else {
                        failures.push(TargetError::Resolve {
                            target: spec.clone(),
                            why: format!("{} is not an address of the requested family", block.first),
                        });
                    }
                }
                None => match resolve_name(spec, family) {
                    Ok(ips) => {
                        let host: Arc<str> = Arc::from(spec.as_str());
                        set.blocks.extend(ips.into_iter().map(|ip| Block::single(Some(Arc::clone(&host)), ip)));
                    }
                    Err(e) => failures.push(e),
                },
            }
        }
        Ok((set, failures))
    }
}

impl TargetSet {
    /// Removes every address of `excluded` (both families; a host name's
    /// pieces keep its name). Blocks left empty go.
    pub fn exclude(&mut self, excluded: &TargetSet) {
        let (mut v4, mut v6): (Vec<Interval>, Vec<Interval>) = (Vec::new(), Vec::new());
        for b in &excluded.blocks {
            let (lo, hi) = b.interval();
            if b.first.is_ipv4() { v4.push((lo, hi)) } else { v6.push((lo, hi)) }
        }
        let (v4, v6) = (merged(v4), merged(v6));
        let blocks = std::mem::take(&mut self.blocks);
        for b in blocks {
            let holes = if b.first.is_ipv4() { &v4 } else { &v6 };
            let (lo, hi) = b.interval();
            // The first address not yet kept or dropped; None once the
            // holes reach past the block's end.
            let mut next = Some(lo);
            // From the first hole that ends at or after the block's start.
            for &(h_lo, h_hi) in &holes[holes.partition_point(|&(_, h_hi)| h_hi < lo)..] {
                let Some(from) = next else { break };
                if h_lo > hi {
                    break;
                }
                if h_lo > from {
                    self.blocks.push(b.piece(from, h_lo - 1));
                }
                next = h_hi.checked_add(1).filter(|n| *n <= hi);
            }
            if let Some(from) = next {
                self.blocks.push(b.piece(from, hi));
            }
        }
    }
}

/// First and last address of a run, as numbers.
type Interval = (u128, u128);

/// Sorted, disjoint, non-adjacent intervals covering the same addresses.
fn merged(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.sort_unstable();
    let mut out: Vec<Interval> = Vec::with_capacity(intervals.len());
    for (lo, hi) in intervals {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Most bytes a target list file (`-iL`, `--excludefile`) may hold: a
/// million addresses one per line fit, while a device or endless pipe
/// named by mistake (`/dev/zero`) is refused instead of filling memory.
pub const MAX_LIST_BYTES: u64 = 16 << 20;

/// Reads and splits a target list (see [`parse_list`]); one of more than
/// `limit` bytes is an error, found after reading `limit + 1` bytes at most.
pub fn read_list(input: impl std::io::Read, limit: u64) -> std::io::Result<Vec<String>> {
    let mut text = String::new();
    input.take(limit.saturating_add(1)).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("more than {limit} bytes, the most a target list may hold"),
        ));
    }
    Ok(parse_list(&text))
}

/// Splits a target list file (`-iL`): whitespace-separated, `#` comments.
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .map(str::to_string)
        .collect()
}

/// An address, block or range; `Ok(None)` if it looks like a host name.
fn parse_literal(spec: &str) -> Result<Option<Block>, TargetError> {
    let syntax = |why: &str| TargetError::Syntax { target: spec.to_string(), why: why.to_string() };
    let s = spec.trim();
    let unbracketed = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(Some(Block::single(None, ip)));
    }
    if let Some((addr, prefix)) = s.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| syntax("the part before / is not an IP address"))?;
        let bits: u32 = match ip {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix: u32 = prefix.parse().map_err(|_| syntax("the prefix length is not a number"))?;
        if prefix > bits {
            return Err(syntax(&format!("prefix length /{prefix} is longer than /{bits}")));
        }
        let host_bits = bits - prefix;
        let (first, count) = match ip {
            IpAddr::V4(a) => {
                let mask = if host_bits == 32 { 0 } else { u32::MAX << host_bits };
                (IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask)), 1u128 << host_bits)
            }
            IpAddr::V6(a) => {
                let mask = if host_bits == 128 { 0 } else { u128::MAX << host_bits };
                let count = if host_bits == 128 { u128::MAX } else { 1u128 << host_bits };
                (IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)), count)
            }
        };
        // Host bits set are a typo far more often than a wish: masking them
        // silently turned `10.0.0.0/0` into every IPv4 address.
        if first != ip {
            return Err(syntax(&format!(
                "host bits are set after /{prefix}: the network is {first}/{prefix} (or scan the one address {ip})"
            )));
        }
        return Ok(Some(Block { host: None, first, count }));
    }
    if let Some((start, end)) = s.split_once('-') {
        if let Ok(first) = start.parse::<Ipv4Addr>() {
            let last = if let Ok(last) = end.parse::<Ipv4Addr>() {
                last
            } else {
                let octet: u8 =
                    end.parse().map_err(|_| syntax("the range end is neither an IPv4 address nor a number 0-255"))?;
                let [a, b, c, _] = first.octets();
                Ipv4Addr::new(a, b, c, octet)
            };
            if u32::from(last) < u32::from(first) {
                return Err(syntax("the range ends before it starts"));
            }
            let count = u128::from(u32::from(last) - u32::from(first)) + 1;
            return Ok(Some(Block { host: None, first: IpAddr::V4(first), count }));
        }
    }
    if looks_like_host_name(s) { Ok(None) } else { Err(syntax("not an address, block, range or valid host name")) }
}

/// RFC 1123 host names: letters, digits, hyphens and dots, no empty label.
fn looks_like_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        // An all-numeric dotted name is a mistyped address, not a host.
        && !s.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

fn resolve_name(name: &str, family: Family) -> Result<Vec<IpAddr>, TargetError> {
    let fail = |why: String| TargetError::Resolve { target: name.to_string(), why };
    let addrs = (name, 0u16).to_socket_addrs().map_err(|e| fail(e.to_string()))?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for addr in addrs {
        let ip = addr.ip();
        if family.admits(&ip) && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if ips.is_empty() {
        return Err(fail("no address of the requested family".to_string()));
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(spec: &str) -> Vec<IpAddr> {
        let (set, failures) = TargetSet::resolve(&[spec.to_string()], Family::Any).unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        set.iter().map(|(_, ip)| ip).collect()
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn literals_blocks_and_ranges() {
        assert_eq!(expand("127.0.0.1"), ips(&["127.0.0.1"]));
        assert_eq!(expand("::1"), ips(&["::1"]));
        assert_eq!(expand("[::1]"), ips(&["::1"]));
        assert_eq!(expand("10.0.0.0/30"), ips(&["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"]));
        assert_eq!(expand("10.0.0.4/30"), ips(&["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"]));
        assert_eq!(expand("10.0.0.1/32"), ips(&["10.0.0.1"]));
        assert_eq!(expand("10.0.0.1-3"), ips(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]));
        assert_eq!(expand("10.0.0.255-10.0.1.1"), ips(&["10.0.0.255", "10.0.1.0", "10.0.1.1"]));
        assert_eq!(expand("fe80::/127"), ips(&["fe80::", "fe80::1"]));
    }

    #[test]
    fn big_blocks_are_lazy() {
        let (set, _) = TargetSet::resolve(&["10.0.0.0/8".into(), "::/0".into()], Family::Any).unwrap();
        assert_eq!(set.blocks[0].count, 1 << 24);
        assert_eq!(set.iter().nth(1 << 24), Some((None, "::".parse().unwrap())));
    }

    #[test]
    fn syntax_errors_name_the_target() {
        for bad in
            ["10.0.0.0/33", "::/129", "10.0.0.0/x", "10.0.0.9-3", "10.0.0.1-300", "1.2.3", "bad..name", "-x", "a b"]
        {
            match TargetSet::resolve(&[bad.to_string()], Family::Any) {
                Err(TargetError::Syntax { target, .. }) => assert_eq!(target, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn host_bits_set_are_an_error_naming_the_network() {
        for (bad, network) in [
            ("10.0.0.0/0", "0.0.0.0/0"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("10.0.0.5/30", "10.0.0.4/30"),
            ("fe80::1/64", "fe80::/64"),
        ] {
            match TargetSet::resolve(&[bad.to_string()], Family::Any) {
                Err(e @ TargetError::Syntax { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains(bad) && text.contains(&format!("the network is {network}")), "{text}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn names_resolve_per_family_and_failures_are_per_target() {
        // localhost comes from /etc/hosts: no DNS query leaves the machine.
        // (Unresolvable names are tested inside a network namespace, in
        // tests/scan_resolve.rs, so that their DNS query cannot leave.)
        let specs = vec!["localhost".to_string(), "::1".to_string(), "127.0.0.2".to_string()];
        let (set, failures) = TargetSet::resolve(&specs, Family::V4).unwrap();
        let got: Vec<_> = set.iter().collect();
        assert!(got.contains(&(Some(Arc::from("localhost")), "127.0.0.1".parse().unwrap())), "{got:?}");
        assert!(got.iter().all(|(_, ip)| ip.is_ipv4()));
        assert_eq!(got.last(), Some(&(None, "127.0.0.2".parse().unwrap())));
        assert_eq!(failures.len(), 1, "::1 is not IPv4");
        assert!(matches!(&failures[0], TargetError::Resolve { target, .. } if target == "::1"));
    }

    #[test]
    fn family_filter_applies_to_literals() {
        let (set, failures) = TargetSet::resolve(&["::1".to_string()], Family::V4).unwrap();
        assert!(set.is_empty());
        assert_eq!(failures.len(), 1);
    }

    fn set(specs: &[&str]) -> TargetSet {
        let specs: Vec<String> = specs.iter().map(ToString::to_string).collect();
        TargetSet::resolve(&specs, Family::Any).unwrap().0
    }

    #[test]
    fn exclusions_cut_blocks_without_expanding_them() {
        let mut t = set(&["10.0.0.0/29", "127.0.0.1", "::1", "fe80::/126"]);
        t.exclude(&set(&["10.0.0.2-3", "10.0.0.6/31", "10.0.0.3", "127.0.0.1", "fe80::1", "::2"]));
        let got: Vec<IpAddr> = t.iter().map(|(_, ip)| ip).collect();
        assert_eq!(got, ips(&["10.0.0.0", "10.0.0.1", "10.0.0.4", "10.0.0.5", "::1", "fe80::", "fe80::2", "fe80::3"]));
        // A /8 minus a /16 and a range: two exclusions, at most three blocks.
        let mut t = set(&["10.0.0.0/8"]);
        t.exclude(&set(&["10.1.0.0/16", "10.200.0.0-10.200.0.255", "11.0.0.0/8"]));
        assert_eq!(t.len(), (1 << 24) - 65536 - 256);
        assert_eq!(t.blocks.len(), 3);
        assert_eq!(t.blocks[1].first, "10.2.0.0".parse::<IpAddr>().unwrap());
        // IPv4 numbers are not IPv6 addresses: ::a00:1 is not 10.0.0.1.
        let mut t = set(&["10.0.0.1"]);
        t.exclude(&set(&["::a00:1", "::/0"]));
        assert_eq!(t.len(), 1);
        // Everything excluded, names kept on what is left.
        let mut t = set(&["localhost", "10.0.0.0/30"]);
        t.exclude(&set(&["0.0.0.0/0"]));
        assert!(t.blocks.iter().all(|b| b.first.is_ipv6() && b.host.as_deref() == Some("localhost")), "{t:?}");
        let mut t = set(&["10.0.0.0/30"]);
        t.exclude(&set(&["10.0.0.0/30"]));
        assert!(t.is_empty());
        // The last address of IPv4 and the ends of a block.
        let mut t = set(&["255.255.255.254/31"]);
        t.exclude(&set(&["255.255.255.255"]));
        assert_eq!(t.iter().map(|(_, ip)| ip).collect::<Vec<_>>(), ips(&["255.255.255.254"]));
    }

    #[test]
    fn list_files() {
        assert_eq!(
            parse_list("10.0.0.1  # a comment\n\n# only comment\nlocalhost ::1\n"),
            vec!["10.0.0.1", "localhost", "::1"]
        );
        let list = b"10.0.0.1 # x\n::1\n";
        assert_eq!(read_list(&list[..], list.len() as u64).unwrap(), vec!["10.0.0.1", "::1"]);
        let err = read_list(&list[..], list.len() as u64 - 1).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge, "{err}");
        // An endless input is cut at the limit, not read to the end.
        let err = read_list(std::io::repeat(b'1'), 1 << 10).unwrap_err();
        assert!(err.to_string().contains("more than 1024 bytes"), "{err}");
    }
}
