//! The tour's scan: listeners on a few random ports of a fresh 127.x.y.z
//! address ([`LoopbackTarget`]), scanned by each engine's `trident scan`
//! as `trident bench scan` runs it (the same command line, output parser
//! and measurement), the ports found compared with the truth.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::{DemoConfig, Row};
use crate::bench::fixture::loopback::LoopbackTarget;
use crate::bench::harness::{self, Cost};
use crate::bench::measure_with_limit;
use crate::bench::scan::Contender;

/// Hang guard for one engine's scan (a tour scan takes well under a second).
const TIME_LIMIT: Duration = Duration::from_secs(60);

fn list(ports: &BTreeSet<u16>) -> String {
    ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Scans with each engine of `args`; a row per engine.
pub(super) fn run(exe: &Path, args: &DemoConfig) -> anyhow::Result<Vec<Row>> {
    let target = LoopbackTarget::start(usize::from(args.listeners), args.max_port)?;
    let (addr, mine, truth) = (target.addr, &target.mine, &target.truth);
    let ports = format!("1-{}", args.max_port);

    println!("1. scan: {} listeners on {addr}; ports 1-{} scanned, open ones found", mine.len(), args.max_port);
    println!("listening (truth): {}", list(truth));
    if truth.len() > mine.len() {
        println!("  (includes {} wildcard listener(s) of other programs on this machine)", truth.len() - mine.len());
    }
    let mut rows = Vec::new();
    // One recorded round, no warm-up: each engine once, in the order asked.
    harness::rotate(&args.engines, 0, 1, |&engine, _| {
        let contender = Contender::Trident(engine);
        let mut cmd = contender.command(exe, IpAddr::V4(addr), &ports, &[], None);
        let m =
            measure_with_limit(&mut cmd, Some(TIME_LIMIT)).with_context(|| format!("cannot run the {engine} scan"))?;
        // A scan that failed or hung is a wrong row, as in the other jobs,
        // not the end of the tour.
        let found = contender.open_ports(&String::from_utf8_lossy(&m.stdout));
        let ran = m.exit_code == Some(0);
        let correct = ran && found == *truth;
        let detail = (!correct).then(|| {
            let missed: BTreeSet<u16> = truth.difference(&found).copied().collect();
            let extra: BTreeSet<u16> = found.difference(truth).copied().collect();
            let mut text = format!("missed: [{}]  unexpected: [{}]", list(&missed), list(&extra));
            if !ran {
                let stderr = String::from_utf8_lossy(&m.stderr);
                let why = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                let limit = if m.timed_out { " (time limit)" } else { "" };
                text = format!("exit {:?}{limit}: {why}; {text}", m.exit_code);
            }
            text
        });
        rows.push(Row { engine, found: found.len().to_string(), correct, cost: Cost::from(&m), detail });
        Ok(())
    })?;
    Ok(rows)
}
