//! The ladder part of `trident bench chat`: delivery latency at the same
//! fixed message rates (`--rates`, by default 100 to 3000 a second) for
//! every server, trident's engines and the IRC peers alike, so that
//! servers are compared at equal load and not each at a fraction of its
//! own peak.
//!
//! Each step is one `trident chat load` run (one channel of `--members`,
//! `--senders` of them sending, `--load-duration` long) against a server
//! started for that step alone: a server that fell behind at one rate
//! carries no backlog into the next. Every rate is tried even past the
//! point where a server falls behind; the delivered share says how far
//! behind it fell.

use std::fmt::Write as _;

use super::chat::{ChatBenchConfig, Part, Run, Servers, Summary, load_step};
use super::irc_peer::Setup;

/// Every ladder rate against every server, `--runs` times.
pub(super) fn ladder_part(config: &ChatBenchConfig, servers: &Servers, runs: &mut Vec<Run>) -> anyhow::Result<()> {
    crate::sys::raise_nofile_limit();
    for round in 0..config.runs {
        for server in &servers.list {
            let name = server.label();
            for &rate in &config.ladder_rates {
                let running = server.start(config.members, Setup::Load, servers.pin)?;
                runs.push(load_step(running.served.addr, config, Part::Ladder, &name, round, rate)?);
            }
        }
    }
    Ok(())
}

/// The ladder's table: a row per rate, a column per server, each cell the
/// median p50 / p99 and the share delivered. Empty without ladder rows.
pub(super) fn render(summary: &[Summary], config: &ChatBenchConfig) -> String {
    let rows: Vec<&Summary> = summary.iter().filter(|s| s.part == Part::Ladder).collect();
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let mut servers: Vec<&str> = Vec::new();
    let mut rates: Vec<f64> = Vec::new();
    for s in &rows {
        if !servers.contains(&s.server.as_str()) {
            servers.push(&s.server);
        }
        if !rates.contains(&s.msgs_per_s) {
            rates.push(s.msgs_per_s);
        }
    }
    rates.sort_by(f64::total_cmp);
    let _ = writeln!(
        out,
        "Latency ladder: one channel of {} members, {} senders, {:?} per step; p50 / p99 send to delivery, share delivered",
        config.members, config.senders, config.load_duration
    );
    const CELL: usize = 30;
    let _ = write!(out, "{:>8}", "MSG/S");
    for server in &servers {
        let _ = write!(out, " {server:>CELL$}");
    }
    let _ = writeln!(out);
    for rate in rates {
        let _ = write!(out, "{rate:>8.0}");
        for server in &servers {
            let cell = rows.iter().find(|s| s.server == *server && s.msgs_per_s == rate).map_or_else(
                || "-".to_string(),
                |s| {
                    format!("{} / {} ms, {:.1}%", ms(s.latency_p50_us), ms(s.latency_p99_us), s.delivered_ratio * 100.0)
                },
            );
            let _ = write!(out, " {cell:>CELL$}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out);
    out
}

/// Microseconds as milliseconds, to about three significant digits.
fn ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}
