//! The tour's scan: listeners on a few random ports of a fresh 127.x.y.z
//! address ([`LoopbackTarget`]), scanned by each engine's `trident scan`
//! as `trident bench scan` runs it (the same command line, output parser
//! and measurement), the ports found compared with the truth.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, bail};

use super::{DemoConfig, Row};
use crate::bench::fixture::loopback::LoopbackTarget;
use crate::bench::harness::{self, Cost};
use crate::bench::measure;
use crate::bench::scan::Contender;

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
        let m = measure(&mut contender.command(exe, IpAddr::V4(addr), &ports, &[], None))
            .with_context(|| format!("cannot run the {engine} scan"))?;
        if m.exit_code != Some(0) {
            bail!("the {engine} scan failed ({:?}): {}", m.exit_code, String::from_utf8_lossy(&m.stderr).trim());
        }
        let found = contender.open_ports(&String::from_utf8_lossy(&m.stdout));
        let correct = found == *truth;
        let detail = (!correct).then(|| {
            let missed: BTreeSet<u16> = truth.difference(&found).copied().collect();
            let extra: BTreeSet<u16> = found.difference(truth).copied().collect();
            format!("missed: [{}]  unexpected: [{}]", list(&missed), list(&extra))
        });
        rows.push(Row { engine, found: found.len().to_string(), correct, cost: Cost::from(&m), detail });
        Ok(())
    })?;
    Ok(rows)
}
