//! The tour's chat: `trident chat serve` on each engine (a separate
//! process, as `trident bench chat` starts it), and a few built-in clients
//! (the `chat load` generator, in this process) that register, join one
//! channel and each send a few messages; every message must reach every
//! other member. The engine is the server's, so the row's cost is the
//! server's: CPU of its process tree over the conversation, and its peak
//! memory sampled every 10 ms meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::Row;
use crate::bench::chat::chat_server;
use crate::bench::harness::{self, Cost};
use crate::bench::measure::{tree_cpu, tree_memory};
use crate::chat::load::{LoadConfig, load};
use crate::engine::EngineKind;
use crate::error::Exit;

/// Clients in the channel, messages per second (all together), and for
/// how long: 50 messages, each delivered to the 4 other members.
const CLIENTS: usize = 5;
const RATE: f64 = 50.0;
const DURATION: Duration = Duration::from_secs(1);

/// The highest (RSS, PSS) of `pid`'s process tree, in KiB, sampled every
/// 10 ms until `stop`.
fn sample_peak(pid: u32, stop: Arc<AtomicBool>) -> thread::JoinHandle<(u64, u64)> {
    thread::spawn(move || {
        let mut peak = (0, 0);
        loop {
            let (rss, pss) = tree_memory(pid);
            peak = (peak.0.max(rss), peak.1.max(pss));
            if stop.load(Ordering::Relaxed) {
                return peak;
            }
            thread::sleep(Duration::from_millis(10));
        }
    })
}

/// Has each of `engines`' servers carry the conversation; a row per engine.
pub(super) fn run(engines: &[EngineKind]) -> anyhow::Result<Vec<Row>> {
    println!(
        "3. chat: {CLIENTS} clients in one channel send {} messages through each engine's `chat serve`; deliveries counted",
        (RATE * DURATION.as_secs_f64()) as u64
    );
    let mut rows = Vec::new();
    harness::rotate(engines, 0, 1, |&engine, _| {
        let server = chat_server(engine, CLIENTS)?;
        let pid = server.process.id();
        let mut config = LoadConfig::new(server.addr, CLIENTS);
        config.rate = RATE;
        config.duration = DURATION;
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_peak(pid, Arc::clone(&stop));
        let (cpu_before, started) = (tree_cpu(pid), Instant::now());
        let report = load(&config);
        let (wall_s, cpu_s) = (started.elapsed().as_secs_f64(), tree_cpu(pid) - cpu_before);
        stop.store(true, Ordering::Relaxed);
        let (rss, pss) = sampler.join().unwrap_or_default();
        drop(server);
        let report = report?;
        let correct = report.exit() == Exit::Success && report.expected > 0;
        let detail = (!correct).then(|| {
            format!(
                "lost {}, disconnected {}, not connected {}, unsent {}{}",
                report.lost,
                report.disconnects,
                report.connect_failures,
                report.unsent,
                report.errors.iter().map(|(why, n)| format!("; {why} ×{n}")).collect::<String>()
            )
        });
        let cost = Cost { wall_s, cpu_s, peak_rss_mib: rss as f64 / 1024.0, peak_pss_mib: pss as f64 / 1024.0 };
        rows.push(Row { engine, found: format!("{}/{}", report.delivered, report.expected), correct, cost, detail });
        Ok(())
    })?;
    Ok(rows)
}
