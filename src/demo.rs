//! `trident demo`: a self-contained comparison of the engines on loopback,
//! as a small client of the bench harness.
//!
//! It starts a [`LoopbackTarget`] (listeners on a few random ports of a
//! fresh 127.x.y.z address), then runs each engine's `trident scan` once,
//! as `trident bench scan` runs it (the same command line, output parser
//! and measurement, each a separate process so each is measured alone), and
//! prints, per engine, the open ports found, whether they match the truth,
//! and wall time, CPU time and peak memory.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{Context, bail};

use crate::bench::fixture::loopback::LoopbackTarget;
use crate::bench::harness::{self, Cost};
use crate::bench::measure;
use crate::bench::scan::Contender;
use crate::engine::EngineKind;
use crate::error::Exit;

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
    let ports = format!("1-{}", args.max_port);

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
    // One recorded round, no warm-up: each engine once, in the order asked.
    harness::rotate(&args.engines, 0, 1, |&engine, _| {
        let contender = Contender::Trident(engine);
        let m = measure(&mut contender.command(&exe, IpAddr::V4(addr), &ports, &[], None))
            .with_context(|| format!("cannot run the {engine} scan"))?;
        if m.exit_code != Some(0) {
            bail!("the {engine} scan failed ({:?}): {}", m.exit_code, String::from_utf8_lossy(&m.stderr).trim());
        }
        let found = contender.open_ports(&String::from_utf8_lossy(&m.stdout));
        let matched = found == *truth;
        all_match &= matched;
        let cost = Cost::from(&m);
        println!(
            "{:<10} {:>5}  {:<6} {:>7.3}s {:>7.3}s {:>7.1} MiB {:>7.1} MiB",
            engine.name(),
            found.len(),
            if matched { "yes" } else { "NO" },
            cost.wall_s,
            cost.cpu_s,
            cost.peak_rss_mib,
            cost.peak_pss_mib
        );
        if !matched {
            let missed: BTreeSet<u16> = truth.difference(&found).copied().collect();
            let extra: BTreeSet<u16> = found.difference(truth).copied().collect();
            println!("           missed: [{}]  unexpected: [{}]", list(&missed), list(&extra));
        }
        Ok(())
    })?;
    println!();
    println!("CPU: user+system time of the scan and its worker processes. Peak RSS and PSS: summed over the");
    println!("whole process tree; PSS counts pages shared between processes (the binary) once.");
    Ok(if all_match { Exit::Success } else { Exit::Failure })
}
