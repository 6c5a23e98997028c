//! The report of `trident bench all`: every workload bench's runs gathered
//! into one table of one shape, and that table shown four ways —
//! `results.csv` and `results.json` for programs, `report.md` with SVG
//! charts beside it, and a self-contained `index.html` (the same SVGs
//! inlined, no script, no network) for people.
//!
//! The benches themselves stay as they are: each writes its own
//! `summary.json`, and [`ingest`] reads those into [`Row`]s, so the report
//! shows whatever contenders a bench produced, including peers added later.
//!
//! - [`ingest`]: a bench's `summary.json` → rows.
//! - [`charts`]: rows → SVG charts (plotters' SVG backend).
//! - [`answers`]: rows → the chapter's six questions answered from this run.
//! - [`render`]: results.csv/json, report.md, index.html.
//!
//! # The schema of results.csv / results.json (version 1)
//!
//! One row per recorded run (warm-ups are not recorded). Columns, in order;
//! a column that does not apply to the row's workload is empty (csv) or
//! null (json):
//!
//! | column | meaning |
//! |---|---|
//! | `workload` | `scan`, `fetch` or `chat` |
//! | `case` | what was measured, e.g. `loopback 1-10000`, `small 100 x 16 KiB`, `echo`, `idle`, `fanout` (one row per rate step), `latency`, `ladder 500 msg/s` |
//! | `tool` | the contender: `trident-threads`, `trident-processes`, `trident-async`, or a peer's label |
//! | `kind` | `engine` (a trident engine) or `peer` |
//! | `run` | the recorded run's number (from 1) |
//! | `ok` | the run exited 0 in time and its result checked correct |
//! | `wall_s`, `cpu_s` | wall time and CPU (user+system, whole process tree), seconds |
//! | `peak_rss_mib`, `peak_pss_mib` | peak memory of the process tree, MiB |
//! | `recall`, `false_positives` | scan: share of the open ports found (0-1), ports wrongly reported open |
//! | `files_ok`, `files_expected`, `bytes_verified` | fetch: files present with the right SHA-256, and their bytes |
//! | `requests_per_s` | chat echo: closed-loop requests per second |
//! | `rss_per_connection_kib` | chat idle: server memory per idle connection, KiB |
//! | `deliveries_per_s`, `deliveries_lost` | chat fanout/latency/ladder: lines delivered per second, share not delivered (0-1) |
//! | `latency_p50_us`, `latency_p99_us`, `latency_max_us` | chat latency: send-to-delivery latency, µs |
//! | `timed_out` | killed at the bench's time limit (did not finish) |
//! | `sweep`, `x` | a scaling sweep's name and its parameter at this run (e.g. `scan concurrency`, 256); empty for the workloads' main cases |
//!
//! results.json holds `{schema, mode, started, wall_s, trident, machine,
//! commands, not_installed, rows}`: the rows above plus what produced them.

pub mod answers;
pub mod charts;
pub mod ingest;
pub mod render;

use serde::{Deserialize, Serialize};

/// The version of the results schema above.
pub const SCHEMA: u32 = 1;

/// One recorded run of one contender (one line of results.csv).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `scan`, `fetch` or `chat`.
    pub workload: String,
    /// What was measured.
    pub case: String,
    /// The contender's label.
    pub tool: String,
    /// `engine` or `peer`.
    pub kind: String,
    /// Recorded run number, from 1.
    pub run: u32,
    /// Exit 0, in time, result correct.
    pub ok: bool,
    /// Wall time, seconds.
    pub wall_s: Option<f64>,
    /// CPU, seconds.
    pub cpu_s: Option<f64>,
    /// Peak RSS, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Peak PSS, MiB.
    pub peak_pss_mib: Option<f64>,
    /// Scan: share of the open ports found.
    pub recall: Option<f64>,
    /// Scan: ports reported open that are not.
    pub false_positives: Option<u64>,
    /// Fetch: files verified.
    pub files_ok: Option<u64>,
    /// Fetch: files expected.
    pub files_expected: Option<u64>,
    /// Fetch: bytes of the verified files.
    pub bytes_verified: Option<u64>,
    /// Chat echo: requests per second.
    pub requests_per_s: Option<f64>,
    /// Chat idle: memory per connection, KiB.
    pub rss_per_connection_kib: Option<f64>,
    /// Chat fan-out/latency: deliveries per second.
    pub deliveries_per_s: Option<f64>,
    /// Chat fan-out/latency: share of deliveries lost.
    pub deliveries_lost: Option<f64>,
    /// Chat latency p50, µs.
    pub latency_p50_us: Option<f64>,
    /// Chat latency p99, µs.
    pub latency_p99_us: Option<f64>,
    /// Chat latency max, µs.
    pub latency_max_us: Option<f64>,
    /// Killed at the time limit.
    pub timed_out: bool,
    /// A scaling sweep's name (`scan concurrency`, `idle connections`...),
    /// when the run is one of its points.
    pub sweep: Option<String>,
    /// The sweep's parameter at this point (concurrency, connections...).
    pub x: Option<f64>,
}

impl Row {
    /// `engine` for a trident engine's label, else `peer`.
    pub fn kind_of(tool: &str) -> &'static str {
        if tool.starts_with("trident-") { "engine" } else { "peer" }
    }
}

/// One command `bench all` ran, as recorded in the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommandRun {
    /// The workload.
    pub workload: String,
    /// The command line, shell-quoted.
    pub command: String,
    /// Its exit code (None: killed by a signal).
    pub exit_code: Option<i32>,
    /// How long it took, seconds.
    pub wall_s: f64,
    /// Where its output went, relative to the report directory.
    pub log: String,
}

/// A peer asked for but not installed here.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Missing {
    /// The workload it would have run in.
    pub workload: String,
    /// The peer's name.
    pub peer: String,
    /// Why it cannot run.
    pub why: String,
    /// How to install it.
    pub install: String,
}

/// The machine the run was made on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs available to this process.
    pub cores: usize,
    /// From /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// The download directory and its file system type.
    pub download_fs: String,
}

/// Everything a report shows (results.json).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Results {
    /// [`SCHEMA`].
    pub schema: u32,
    /// `quick`, `full` or `tiny`.
    pub mode: String,
    /// When it started (UTC, as an HTTP date).
    pub started: String,
    /// How long the whole run took, seconds.
    pub wall_s: f64,
    /// trident's version and commit.
    pub trident: String,
    /// The machine.
    pub machine: Machine,
    /// Every command run, in order.
    pub commands: Vec<CommandRun>,
    /// Peers asked for that are not installed.
    pub not_installed: Vec<Missing>,
    /// Every recorded run.
    pub rows: Vec<Row>,
}

impl Results {
    /// The cases of `workload` (sweeps aside), in the order first seen.
    pub fn cases(&self, workload: &str) -> Vec<String> {
        first_seen(self.rows.iter().filter(|r| r.workload == workload && r.sweep.is_none()).map(|r| r.case.as_str()))
    }

    /// The rows of one case (sweeps aside).
    pub fn case_rows(&self, workload: &str, case: &str) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.workload == workload && r.case == case && r.sweep.is_none()).collect()
    }

    /// The scaling sweeps, in the order first seen.
    pub fn sweeps(&self) -> Vec<String> {
        first_seen(self.rows.iter().filter_map(|r| r.sweep.as_deref()))
    }

    /// The rows of one sweep.
    pub fn sweep_rows(&self, sweep: &str) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.sweep.as_deref() == Some(sweep)).collect()
    }

    /// Every contender that appears, in the order first seen.
    pub fn tools(&self) -> Vec<String> {
        first_seen(self.rows.iter().map(|r| r.tool.as_str()))
    }
}

/// The scaling sweeps `bench all` runs (a row's `sweep`).
pub mod sweep {
    /// Scan: tasks in flight (`-j`).
    pub const SCAN_CONCURRENCY: &str = "scan concurrency";
    /// Scan: ports scanned on loopback.
    pub const SCAN_PORTS: &str = "scan ports";
    /// Fetch: 16 KiB files downloaded.
    pub const FETCH_FILES: &str = "fetch files";
    /// Fetch: the size of each of four files, KiB.
    pub const FETCH_SIZE: &str = "fetch file size (KiB)";
    /// Chat: idle registered connections held.
    pub const IDLE: &str = "idle connections";
    /// Echo: closed-loop clients.
    pub const ECHO_CLIENTS: &str = "echo clients";
    /// Chat: members of the one channel messages fan out to.
    pub const CHAT_MEMBERS: &str = "chat members";
}

/// One figure a sweep is drawn and summed up by (one line chart each).
#[derive(Clone, Copy, Debug)]
pub struct SweepMetric {
    /// The chart's file name part.
    pub key: &'static str,
    /// What it is, for titles and answers ("wall time").
    pub what: &'static str,
    /// Its unit, short ("s", "MiB").
    pub unit: &'static str,
    /// The row's figure; `None` for rows of another part of the sweep.
    pub value: fn(&Row) -> Option<f64>,
    /// Whether a contender's point is its best run there (fan-out: the
    /// best rate step), not the median of its runs.
    pub best: bool,
}

impl SweepMetric {
    const fn median(key: &'static str, what: &'static str, unit: &'static str, value: fn(&Row) -> Option<f64>) -> Self {
        SweepMetric { key, what, unit, value, best: false }
    }
}

/// The figures of a sweep, the first its headline.
pub fn sweep_metrics(name: &str) -> Vec<SweepMetric> {
    let wall = SweepMetric::median("wall", "wall time", "s", |r| r.wall_s);
    let memory = SweepMetric::median("memory", "peak memory (PSS)", "MiB", |r| r.peak_pss_mib);
    fn ms(us: Option<f64>) -> Option<f64> {
        us.map(|v| v / 1000.0)
    }
    match name {
        sweep::IDLE => {
            vec![SweepMetric::median("memory", "memory per connection", "KiB", |r| r.rss_per_connection_kib)]
        }
        sweep::ECHO_CLIENTS => vec![
            SweepMetric::median("rps", "requests per second", "req/s", |r| r.requests_per_s),
            SweepMetric::median("p99", "p99 round trip", "ms", |r| ms(r.latency_p99_us)),
        ],
        sweep::CHAT_MEMBERS => vec![
            SweepMetric {
                key: "deliveries",
                what: "deliveries per second (best rate step)",
                unit: "deliveries/s",
                value: |r| if r.case == "fanout" { r.deliveries_per_s } else { None },
                best: true,
            },
            SweepMetric::median("p99", "p99 delivery latency at half the peak", "ms", |r| {
                if r.case == "latency" { ms(r.latency_p99_us) } else { None }
            }),
        ],
        _ => vec![wall, memory],
    }
}

/// The distinct `items`, in the order first seen (the report lists cases,
/// sweeps and contenders in the order the benches ran them).
pub fn first_seen<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for item in items {
        if !seen.iter().any(|s| s == item) {
            seen.push(item.to_string());
        }
    }
    seen
}

/// A statistic of one contender over its runs: median, min and max of the
/// values present.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    /// The contender.
    pub tool: String,
    /// Whether it is a peer.
    pub peer: bool,
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

/// Per contender of `rows` (in order first seen), the spread of `value`
/// over its rows; contenders without any value are left out.
pub fn spreads(rows: &[&Row], value: impl Fn(&Row) -> Option<f64>) -> Vec<Spread> {
    first_seen(rows.iter().map(|r| r.tool.as_str()))
        .into_iter()
        .filter_map(|tool| {
            let values: Vec<f64> =
                rows.iter().filter(|r| r.tool == tool).filter_map(|r| value(r)).filter(|v| v.is_finite()).collect();
            if values.is_empty() {
                return None;
            }
            Some(Spread {
                peer: Row::kind_of(&tool) == "peer",
                median: super::harness::median(values.clone()),
                min: values.iter().copied().fold(f64::INFINITY, f64::min),
                max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                tool,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_keep_order_and_skip_missing_values() {
        let row = |tool: &str, wall: Option<f64>| Row { tool: tool.into(), wall_s: wall, ..Row::default() };
        let rows = [row("trident-async", Some(2.0)), row("nmap -sT", None), row("trident-async", Some(4.0))];
        let refs: Vec<&Row> = rows.iter().collect();
        let s = spreads(&refs, |r| r.wall_s);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].median, s[0].min, s[0].max, s[0].peer), (3.0, 2.0, 4.0, false));
        assert_eq!(Row::kind_of("nmap -sT"), "peer");
    }
}
