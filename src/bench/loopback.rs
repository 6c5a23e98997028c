//! A scan target on loopback: listeners on random ports of a fresh
//! 127.x.y.z address, with the exact truth of what is open there.
//!
//! Wildcard listeners of other programs on this machine also answer on that
//! address; they are read from /proc/net/tcp and tcp6 (a dual-stack `[::]`
//! listener takes IPv4 too) and counted in the truth, so comparisons stay
//! exact on any machine.

use std::collections::BTreeSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, TcpListener};
use std::thread;

use anyhow::bail;

/// Listeners on one loopback address; they accept and drop connections
/// until the process exits.
#[derive(Debug)]
pub struct LoopbackTarget {
    /// The address scanned.
    pub addr: Ipv4Addr,
    /// Ports this target listens on.
    pub mine: BTreeSet<u16>,
    /// Every port open on `addr` up to the `max_port` given: ours plus
    /// other programs' wildcard listeners.
    pub truth: BTreeSet<u16>,
}

impl LoopbackTarget {
    /// Starts `count` listeners on random ports in 1024..`max_port`.
    pub fn start(count: usize, max_port: u16) -> anyhow::Result<Self> {
        let seed = seed();
        let addr = pick_address(seed);
        let mine = start_listeners(addr, count, max_port, seed)?;
        let mut truth = mine.clone();
        truth.extend(other_listeners(addr).into_iter().filter(|p| *p <= max_port));
        Ok(LoopbackTarget { addr, mine, truth })
    }
}

/// Picks a pseudo-random loopback address other than 127.0.0.1.
fn pick_address(seed: u64) -> Ipv4Addr {
    let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    let [_, a, b, c] = (x as u32).to_be_bytes();
    Ipv4Addr::new(127, a.max(1), b, c.clamp(1, 254))
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (t as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// Ports open on `addr` through other programs' listeners: LISTEN sockets
/// bound to `addr` or to its family's wildcard (/proc/net/tcp, tcp6), and
/// for an IPv4 `addr` also dual-stack `[::]` listeners (sshd's, on most
/// hosts), which accept IPv4 connections unless they are IPv6-only.
pub fn other_listeners(addr: impl Into<IpAddr>) -> BTreeSet<u16> {
    let addr = addr.into();
    let mut ports = BTreeSet::new();
    for (ip, port) in listening("/proc/net/tcp").into_iter().chain(listening("/proc/net/tcp6")) {
        let wildcard = ip.is_unspecified();
        let counts = match (addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => wildcard || ip == addr,
            (IpAddr::V4(a), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(mapped) => mapped == a,
                None => wildcard && !ports.contains(&port) && is_dual_stack(a, port),
            },
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        };
        if counts {
            ports.insert(port);
        }
    }
    ports
}

/// Whether the `[::]:port` listener also takes IPv4 on `addr`: then an
/// IPv4 bind of `addr:port` conflicts with it (a bind sends nothing).
fn is_dual_stack(addr: Ipv4Addr, port: u16) -> bool {
    match TcpListener::bind(SocketAddrV4::new(addr, port)) {
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::AddrInUse,
    }
}

/// (address, port) of the LISTEN sockets in a /proc/net/tcp or tcp6 table.
fn listening(path: &str) -> Vec<(IpAddr, u16)> {
    let Ok(table) = fs::read_to_string(path) else { return Vec::new() };
    table.lines().skip(1).filter_map(parse_listen_line).collect()
}

/// One line of /proc/net/tcp{,6}: `sl local_address rem_address st ...`,
/// 0A = LISTEN. Addresses are printed as 32-bit words in host byte order.
fn parse_listen_line(line: &str) -> Option<(IpAddr, u16)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(3) != Some(&"0A") {
        return None;
    }
    let (ip_hex, port_hex) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip_hex.get(i * 8..i * 8 + 8)?;
        Some(u32::from_be(u32::from_str_radix(hex, 16).ok()?).to_be_bytes())
    };
    let ip = match ip_hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Starts `count` listeners on random ports of `addr` below `max_port`,
/// accepting and dropping connections in the background.
fn start_listeners(addr: Ipv4Addr, count: usize, max_port: u16, mut seed: u64) -> anyhow::Result<BTreeSet<u16>> {
    let mut ports = BTreeSet::new();
    let mut tries = 0;
    while ports.len() < count {
        tries += 1;
        if tries > 10_000 {
            bail!("could not find {count} free ports on {addr}");
        }
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let port = 1024 + ((seed >> 33) % u64::from(max_port - 1024)) as u16;
        if ports.contains(&port) {
            continue;
        }
        let Ok(listener) = TcpListener::bind(SocketAddrV4::new(addr, port)) else { continue };
        ports.insert(port);
        thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
            }
        });
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines() {
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1";
        assert_eq!(parse_listen_line(v4), Some((IpAddr::from([127, 0, 0, 1]), 8080)));
        let v6_any = "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0 0 0 0 0";
        assert_eq!(parse_listen_line(v6_any), Some((IpAddr::from(Ipv6Addr::UNSPECIFIED), 22)));
        let v6_lo = "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0";
        assert_eq!(parse_listen_line(v6_lo), Some((IpAddr::from(Ipv6Addr::LOCALHOST), 80)));
        let established = "   2: 0100007F:1F90 0100007F:C350 01 0 0 0 0 0";
        assert_eq!(parse_listen_line(established), None);
    }

    #[test]
    fn a_dual_stack_wildcard_listener_counts_for_ipv4_and_a_v6_only_one_does_not() {
        // [::]:port, dual-stack (the default): open on every 127.x address.
        let dual = TcpListener::bind("[::]:0").expect("bind [::]:0");
        let port = dual.local_addr().expect("addr").port();
        assert!(other_listeners(Ipv4Addr::new(127, 3, 4, 5)).contains(&port), "dual-stack [::]:{port}");
        assert!(other_listeners(Ipv6Addr::LOCALHOST).contains(&port));
        drop(dual);
        // IPv6-only: not open on IPv4.
        let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).expect("socket");
        socket.set_only_v6(true).expect("v6only");
        socket.bind(&"[::]:0".parse::<std::net::SocketAddr>().expect("addr").into()).expect("bind");
        socket.listen(8).expect("listen");
        let port = socket.local_addr().expect("addr").as_socket().expect("inet").port();
        assert!(!other_listeners(Ipv4Addr::new(127, 3, 4, 5)).contains(&port), "v6-only [::]:{port}");
        assert!(other_listeners(Ipv6Addr::LOCALHOST).contains(&port));
    }

    #[test]
    fn picked_addresses_are_loopback_but_not_the_usual_one() {
        for s in 0..1000u64 {
            let a = pick_address(s.wrapping_mul(7919));
            assert!(a.is_loopback() && a != Ipv4Addr::LOCALHOST && a.octets()[3] != 0 && a.octets()[3] != 255, "{a}");
        }
    }
}
