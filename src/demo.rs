//! `trident demo`: a self-contained comparison of the engines on loopback.
//!
//! It picks an unused 127.x.y.z address, starts listeners on a few random
//! ports there, then runs `trident scan` once per engine as a separate
//! process (so each is measured alone) and prints, per engine, the open
//! ports found, whether they match the truth, and wall time, CPU time and
//! peak memory. Wildcard listeners of other programs on this machine also
//! answer on that address; they are read from /proc/net/tcp and counted in
//! the truth, so the comparison stays exact on any machine.

use std::collections::BTreeSet;
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::process::Command;
use std::thread;

use anyhow::{Context, bail};

use crate::bench::measure;
use crate::cli::DemoArgs;
use crate::error::Exit;

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
fn other_listeners(addr: Ipv4Addr) -> BTreeSet<u16> {
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

fn open_ports(json: &[u8]) -> anyhow::Result<BTreeSet<u16>> {
    let doc: serde_json::Value = serde_json::from_slice(json).context("scan output is not JSON")?;
    let mut open = BTreeSet::new();
    for host in doc["hosts"].as_array().into_iter().flatten() {
        for p in host["ports"].as_array().into_iter().flatten() {
            if p["state"] == "open" {
                if let Some(port) = p["port"].as_u64().and_then(|p| u16::try_from(p).ok()) {
                    open.insert(port);
                }
            }
        }
    }
    Ok(open)
}

fn list(ports: &BTreeSet<u16>) -> String {
    ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Runs the demo; exit status 1 if any engine missed the truth.
pub fn run(args: &DemoArgs) -> anyhow::Result<Exit> {
    let seed = seed();
    let addr = pick_address(seed);
    let mine = start_listeners(addr, usize::from(args.listeners), args.max_port, seed)?;
    let mut truth = mine.clone();
    truth.extend(other_listeners(addr).into_iter().filter(|p| *p <= args.max_port));
    let exe = std::env::current_exe().context("cannot find the trident executable")?;

    println!("trident demo: {} listeners on {addr}; scanning ports 1-{} with each engine", mine.len(), args.max_port);
    println!("listening (truth): {}", list(&truth));
    if truth.len() > mine.len() {
        println!("  (includes {} wildcard listener(s) of other programs on this machine)", truth.len() - mine.len());
    }
    println!();
    println!(
        "{:<10} {:>5}  {:<6} {:>8} {:>8} {:>11} {:>11}",
        "ENGINE", "FOUND", "MATCH", "WALL", "CPU", "PEAK RSS", "PEAK PSS"
    );
    let mut all_match = true;
    for engine in &args.engines {
        let m = measure(Command::new(&exe).args([
            "scan",
            &addr.to_string(),
            "-p",
            &format!("1-{}", args.max_port),
            "-e",
            engine.name(),
            "-f",
            "json",
            "--open",
            "-q",
        ]))
        .with_context(|| format!("cannot run the {engine} scan"))?;
        if m.exit_code != Some(0) {
            bail!("the {engine} scan failed ({:?}): {}", m.exit_code, String::from_utf8_lossy(&m.stderr).trim());
        }
        let found = open_ports(&m.stdout)?;
        let matched = found == truth;
        all_match &= matched;
        println!(
            "{:<10} {:>5}  {:<6} {:>7.3}s {:>7.3}s {:>7.1} MiB {:>7.1} MiB",
            engine.name(),
            found.len(),
            if matched { "yes" } else { "NO" },
            m.wall.as_secs_f64(),
            m.cpu().as_secs_f64(),
            m.peak_rss_kib as f64 / 1024.0,
            m.peak_pss_kib as f64 / 1024.0
        );
        if !matched {
            let missed: BTreeSet<u16> = truth.difference(&found).copied().collect();
            let extra: BTreeSet<u16> = found.difference(&truth).copied().collect();
            println!("           missed: [{}]  unexpected: [{}]", list(&missed), list(&extra));
        }
    }
    println!();
    println!("CPU: user+system time of the scan and its worker processes. Peak RSS and PSS: summed over the");
    println!("whole process tree; PSS counts pages shared between processes (the binary) once.");
    Ok(if all_match { Exit::Success } else { Exit::Failure })
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

    #[test]
    fn open_ports_from_scan_json() {
        let json =
            br#"{"hosts":[{"ip":"127.0.0.1","ports":[{"port":22,"state":"open"},{"port":23,"state":"closed"}]}]}"#;
        assert_eq!(open_ports(json).unwrap(), BTreeSet::from([22]));
    }
}
