//! Port specifications: `22,80,8000-8100`, `-` for all, or the default top
//! 1,000, parsed once into a sorted, de-duplicated [`PortList`].
//!
//! As in nmap, a piece may be a service name (`http`, or a pattern such as
//! `http*`) looked up in the service table (`services`), and a `T:` prefix
//! marks the following pieces as TCP; `U:` (UDP) and `S:` (SCTP) are
//! refused, since every probe is a TCP connect.

use std::fmt;

use super::top_ports::{DEFAULT_TOP, TOP_TCP_PORTS};

/// A sorted list of distinct ports, each in 1..=65535.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortList(Vec<u16>);

/// Why a port specification was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port specification {spec:?}: {why} (expected e.g. 22,80,8000-8100, http,ssh, T:80, 1-65535 or -)")]
pub struct PortSpecError {
    /// The offending piece of the specification.
    pub spec: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl PortList {
    /// Every port, 1-65535.
    pub fn all() -> Self {
        PortList((1..=u16::MAX).collect())
    }

    /// The `n` ports most often found open (nmap's frequency order).
    pub fn top(n: usize) -> Self {
        Self::from_ports(TOP_TCP_PORTS.iter().copied().take(n))
    }

    /// The default scan: the 1,000 most common TCP ports.
    pub fn default_top() -> Self {
        Self::top(DEFAULT_TOP)
    }

    fn from_ports(ports: impl IntoIterator<Item = u16>) -> Self {
        let mut v: Vec<u16> = ports.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        PortList(v)
    }

    /// Parses `22,80,8000-8100`; `-` alone means all ports, and a range may
    /// leave out either end (`-1024`, `60000-`) as in nmap. Service names
    /// come from the process's service table.
    pub fn parse(spec: &str) -> Result<Self, PortSpecError> {
        Self::parse_with(spec, super::services::ports_named)
    }

    /// [`PortList::parse`] with `named` giving the ports of a service name
    /// or pattern (empty if none).
    pub fn parse_with(spec: &str, named: impl Fn(&str) -> Vec<u16>) -> Result<Self, PortSpecError> {
        let spec = spec.trim();
        if spec == "-" {
            return Ok(Self::all());
        }
        let mut ports = Vec::new();
        for piece in spec.split(',') {
            let piece = piece.trim();
            let err = |why| PortSpecError { spec: piece.to_string(), why };
            let piece = match piece.split_once(':') {
                Some((proto, rest)) if proto.eq_ignore_ascii_case("t") => rest.trim(),
                Some((proto, _)) if proto.eq_ignore_ascii_case("u") => {
                    return Err(err("U: is UDP; trident scans TCP only (-p 53 or T:53 for TCP)"));
                }
                Some((proto, _)) if proto.eq_ignore_ascii_case("s") => {
                    return Err(err("S: is SCTP; trident scans TCP only"));
                }
                Some(_) => return Err(err("the protocol prefix is none of T:, U:, S:")),
                None => piece,
            };
            if piece.is_empty() {
                return Err(PortSpecError { spec: spec.to_string(), why: "empty element" });
            }
            if !piece.bytes().all(|b| b.is_ascii_digit() || b == b'-') && !piece.starts_with(['-', '+']) {
                let found = named(piece);
                if found.is_empty() {
                    return Err(err("not a port number, range or known TCP service name"));
                }
                ports.extend(found);
                continue;
            }
            let (lo, hi) = match piece.split_once('-') {
                None => {
                    let p = parse_port(piece).map_err(err)?;
                    (p, p)
                }
                Some((lo, hi)) => {
                    let lo = if lo.is_empty() { 1 } else { parse_port(lo).map_err(err)? };
                    let hi = if hi.is_empty() { u16::MAX } else { parse_port(hi).map_err(err)? };
                    if lo > hi {
                        return Err(err("range start is above its end"));
                    }
                    (lo, hi)
                }
            };
            ports.extend(lo..=hi);
        }
        Ok(Self::from_ports(ports))
    }

    /// The ports, ascending.
    pub fn as_slice(&self) -> &[u16] {
        &self.0
    }

    /// How many ports.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never true for a parsed list).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_port(s: &str) -> Result<u16, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a number");
    }
    match s.parse::<u32>() {
        Ok(0) => Err("port 0 cannot be scanned"),
        Ok(p) if p <= u32::from(u16::MAX) => Ok(p as u16),
        _ => Err("ports go up to 65535"),
    }
}

impl fmt::Display for PortList {
    /// Compact form with ranges: `22,80,8000-8100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ranges(f, self.0.iter().copied())
    }
}

/// Writes ascending, distinct `ports` compactly: `22,80,8000-8100`.
pub fn write_ranges(f: &mut impl fmt::Write, ports: impl IntoIterator<Item = u16>) -> fmt::Result {
    let mut run: Option<(u16, u16)> = None;
    let mut first = true;
    let mut flush = |f: &mut dyn fmt::Write, (start, end): (u16, u16)| {
        let sep = if std::mem::take(&mut first) { "" } else { "," };
        if start == end { write!(f, "{sep}{start}") } else { write!(f, "{sep}{start}-{end}") }
    };
    for port in ports {
        run = match run {
            Some((start, end)) if end.checked_add(1) == Some(port) => Some((start, port)),
            Some(done) => {
                flush(f, done)?;
                Some((port, port))
            }
            None => Some((port, port)),
        };
    }
    run.map_or(Ok(()), |done| flush(f, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_ranges() {
        let cases: &[(&str, &[u16])] = &[
            ("22", &[22]),
            ("80,22", &[22, 80]),
            ("22,80,8000-8003", &[22, 80, 8000, 8001, 8002, 8003]),
            (" 5-7 , 6 ", &[5, 6, 7]),
            ("65534-", &[65534, 65535]),
            ("-3", &[1, 2, 3]),
            ("1-1", &[1]),
        ];
        for (spec, want) in cases {
            assert_eq!(PortList::parse(spec).unwrap().as_slice(), *want, "spec {spec}");
        }
    }

    #[test]
    fn service_names_and_the_tcp_prefix() {
        let named = |name: &str| match name {
            "http" => vec![80, 8008],
            "ssh" => vec![22],
            "http-alt" => vec![8000, 8080],
            "3com-tsmux" => vec![106],
            _ => Vec::new(),
        };
        let cases: &[(&str, &[u16])] = &[
            ("http,ssh", &[22, 80, 8008]),
            ("T:80", &[80]),
            ("T:22-23,443", &[22, 23, 443]),
            ("t:http-alt, 1", &[1, 8000, 8080]),
            ("3com-tsmux", &[106]),
        ];
        for (spec, want) in cases {
            assert_eq!(PortList::parse_with(spec, named).unwrap().as_slice(), *want, "spec {spec}");
        }
        // The process's table (/etc/services, nmap's or the built-in one):
        // 22 and 80 at least; nmap's also names 8008 http.
        let got = PortList::parse("ssh,T:http").unwrap();
        assert!(got.as_slice().starts_with(&[22, 80]), "{:?}", got.as_slice());
        assert!(
            got.as_slice().iter().all(|&p| matches!(super::super::services::service_name(p), Some("ssh" | "http")))
        );
    }

    #[test]
    fn all_ports() {
        assert_eq!(PortList::parse("-").unwrap().len(), 65535);
        assert_eq!(PortList::parse("1-65535").unwrap(), PortList::all());
    }

    #[test]
    fn rejects_bad_specs_naming_the_piece() {
        let cases = [
            ("0", "0", "port 0"),
            ("70000", "70000", "65535"),
            ("100-10", "100-10", "above its end"),
            ("abc", "abc", "known TCP service name"),
            ("22,,80", "22,,80", "empty"),
            ("1-2-3", "1-2-3", "not a number"),
            ("", "", "empty"),
            ("+5", "+5", "not a number"),
            ("U:53", "U:53", "UDP"),
            ("T:22,U:53", "U:53", "UDP"),
            ("S:80", "S:80", "SCTP"),
            ("X:80", "X:80", "prefix"),
            ("T:22,T:", "T:22,T:", "empty"),
            ("no-such-service", "no-such-service", "service name"),
        ];
        for (spec, piece, why) in cases {
            let err = PortList::parse(spec).expect_err(spec);
            assert_eq!(err.spec, piece, "spec {spec}");
            assert!(err.to_string().contains(why), "spec {spec}: {err}");
        }
    }

    #[test]
    fn top_ports_are_distinct_and_sized() {
        let top = PortList::default_top();
        assert_eq!(top.len(), 1000);
        assert!(top.as_slice().contains(&22) && top.as_slice().contains(&443));
        let mut all = TOP_TCP_PORTS.to_vec();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), TOP_TCP_PORTS.len());
        assert_eq!(&TOP_TCP_PORTS[..3], &[80, 23, 443]);
    }

    #[test]
    fn display_compresses_ranges() {
        assert_eq!(PortList::parse("1-3,5,7-8").unwrap().to_string(), "1-3,5,7-8");
        assert_eq!(PortList::all().to_string(), "1-65535");
    }
}
