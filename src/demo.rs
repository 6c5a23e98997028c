//! `trident demo`: a self-contained comparison of the engines on loopback.
//!
//! It starts a [`LoopbackTarget`] (listeners on a few random ports of a
//! fresh 127.x.y.z address), then runs `trident scan` once per engine as a separate
//! process (so each is measured alone) and prints, per engine, the open
//! ports found, whether they match the truth, and wall time, CPU time and
//! peak memory.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{Context, bail};

use crate::bench::fixture::loopback::LoopbackTarget;
use crate::bench::measure;
use crate::engine::EngineKind;
use crate::error::Exit;

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

/// What `trident demo` compares.
#[derive(Debug)]
pub struct DemoConfig {
    /// Engines to compare, in this order.
    pub engines: Vec<EngineKind>,
    /// Highest port scanned (the scan covers 1..=this).
    pub max_port: u16,
    /// Number of listeners to start.
    pub listeners: u16,
}

/// Runs the demo; exit status 1 if any engine missed the truth.
pub fn run(args: &DemoConfig) -> anyhow::Result<Exit> {
    let target = LoopbackTarget::start(usize::from(args.listeners), args.max_port)?;
    let (addr, mine, truth) = (target.addr, &target.mine, &target.truth);
    let exe = std::env::current_exe().context("cannot find the trident executable")?;

    println!("trident demo: {} listeners on {addr}; scanning ports 1-{} with each engine", mine.len(), args.max_port);
    println!("listening (truth): {}", list(truth));
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
        let matched = found == *truth;
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
            let extra: BTreeSet<u16> = found.difference(truth).copied().collect();
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
    fn open_ports_from_scan_json() {
        let json =
            br#"{"hosts":[{"ip":"127.0.0.1","ports":[{"port":22,"state":"open"},{"port":23,"state":"closed"}]}]}"#;
        assert_eq!(open_ports(json).unwrap(), BTreeSet::from([22]));
    }
}
