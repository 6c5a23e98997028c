//! `trident demo`: the tour. Each of trident's three jobs, on every engine,
//! against targets the demo starts itself on loopback, each result checked
//! and each run measured — in well under a minute, with nothing to set up.
//!
//! - [`scan`]: listeners on a few random ports of a fresh 127.x.y.z
//!   address, scanned by `trident scan` (the truth is what the kernel lists
//!   as listening there);
//! - [`fetch`]: a handful of generated files from the built-in static
//!   server, fetched by `trident fetch`, every SHA-256 checked;
//! - [`chat`]: `trident chat serve` on each engine, a few built-in clients
//!   in one channel exchanging messages, every delivery counted.
//!
//! It is a small client of the bench harness: each engine's run is a
//! separate process, measured as `trident bench` measures it (wall time,
//! CPU of the process tree, peak RSS and PSS), so one engine's memory never
//! shows in another's. A table per job, then the exit status: 1 if any
//! engine got anything wrong ([`all_correct`]).

mod chat;
mod fetch;
mod scan;

use anyhow::Context;

use crate::bench::harness::Cost;
use crate::engine::EngineKind;
use crate::error::Exit;

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

/// One engine's result in one job's table.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    engine: EngineKind,
    /// What it found, delivered or fetched, as the table shows it.
    found: String,
    /// Whether that is exactly what was expected.
    correct: bool,
    cost: Cost,
    /// What went wrong, shown under the row.
    detail: Option<String>,
}

/// The exit status of a tour whose jobs gave `tables`: failure as soon as
/// one row of one job is wrong, or a job has no row at all.
fn all_correct(tables: &[&[Row]]) -> Exit {
    let ok = tables.iter().all(|rows| !rows.is_empty() && rows.iter().all(|r| r.correct));
    if ok { Exit::Success } else { Exit::Failure }
}

/// Prints one job's table (under the job's own heading); `found` heads
/// the column of what was found.
fn print_table(found: &str, rows: &[Row]) {
    println!(
        "{:<10} {:>9}  {:<7} {:>8} {:>8} {:>11} {:>11}",
        "ENGINE", found, "CORRECT", "WALL", "CPU", "PEAK RSS", "PEAK PSS"
    );
    for r in rows {
        println!(
            "{:<10} {:>9}  {:<7} {:>7.3}s {:>7.3}s {:>7.1} MiB {:>7.1} MiB",
            r.engine.name(),
            r.found,
            if r.correct { "yes" } else { "NO" },
            r.cost.wall_s,
            r.cost.cpu_s,
            r.cost.peak_rss_mib,
            r.cost.peak_pss_mib
        );
        if let Some(detail) = &r.detail {
            println!("           {detail}");
        }
    }
    println!();
}

/// Runs the tour; exit status 1 if any engine got anything wrong.
pub fn run(args: &DemoConfig) -> anyhow::Result<Exit> {
    let exe = std::env::current_exe().context("cannot find the trident executable")?;
    let names: Vec<&str> = args.engines.iter().map(|e| e.name()).collect();
    println!("trident demo: scan, fetch and chat on loopback, with each engine ({})", names.join(", "));
    println!();
    let scanned = scan::run(&exe, args)?;
    print_table("FOUND", &scanned);
    let fetched = fetch::run(&exe, &args.engines)?;
    print_table("FILES", &fetched);
    let chatted = chat::run(&args.engines)?;
    print_table("DELIVERED", &chatted);
    println!("CPU: user+system time of the process tree (scan, fetch: the client; chat: the server). Peak RSS");
    println!("and PSS: summed over the whole process tree; PSS counts pages shared between processes once.");
    println!("Charts of every workload, beside curl, nmap, the chapter's Python...: trident bench all --quick");
    Ok(all_correct(&[&scanned, &fetched, &chatted]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(engine: EngineKind, correct: bool) -> Row {
        Row { engine, found: "1".into(), correct, cost: Cost::default(), detail: None }
    }

    #[test]
    fn one_wrong_row_in_any_job_fails_the_tour() {
        let good = [row(EngineKind::Threads, true), row(EngineKind::Async, true)];
        let bad = [row(EngineKind::Threads, true), row(EngineKind::Async, false)];
        assert_eq!(all_correct(&[&good, &good, &good]), Exit::Success);
        assert_eq!(all_correct(&[&good, &bad, &good]), Exit::Failure);
        assert_eq!(all_correct(&[&good, &good, &bad]), Exit::Failure);
        assert_eq!(all_correct(&[&good, &[], &good]), Exit::Failure, "a job with no row proves nothing");
    }
}
