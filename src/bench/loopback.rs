//! A scan target on loopback: listeners on random ports of a fresh
//! 127.x.y.z address, with the exact truth of what is open there.
//!
//! Wildcard listeners of other programs on this machine also answer on that
//! address; they are read from /proc/net/tcp and counted in the truth, so
//! comparisons stay exact on any machine.

use std::collections::BTreeSet;
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
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

/// Ports in LISTEN state on `addr` or on the IPv4 wildcard, from /proc.
pub fn other_listeners(addr: Ipv4Addr) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else { return ports };
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 || fields[3] != "0A" {
            continue; // 0A = LISTEN
        }
        let Some((ip_hex, port_hex)) = fields[1].split_once(':') else { continue };
        let (Ok(ip), Ok(port)) = (u32::from_str_radix(ip_hex, 16), u16::from_str_radix(port_hex, 16)) else { continue };
        // /proc prints the address in host byte order of a network-order u32.
        let ip = Ipv4Addr::from(u32::from_be(ip));
        if ip == Ipv4Addr::UNSPECIFIED || ip == addr {
            ports.insert(port);
        }
    }
    ports
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
    fn picked_addresses_are_loopback_but_not_the_usual_one() {
        for s in 0..1000u64 {
            let a = pick_address(s.wrapping_mul(7919));
            assert!(a.is_loopback() && a != Ipv4Addr::LOCALHOST && a.octets()[3] != 0 && a.octets()[3] != 255, "{a}");
        }
    }
}
