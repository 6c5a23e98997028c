//! Reads each workload bench's `summary.json` (what `--out DIR` writes)
//! into report [`Row`]s. Only the fields the report shows are read, each
//! with a default, so a bench may add fields without breaking the report;
//! figures are optional, as a bench writes NaN (no value) as null.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use super::Row;

/// scan's run record (src/bench/scan.rs `RunRecord`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ScanRun {
    tool: String,
    run: u32,
    wall_s: Option<f64>,
    cpu_s: Option<f64>,
    peak_rss_mib: Option<f64>,
    peak_pss_mib: Option<f64>,
    recall: Option<f64>,
    false_positives: u64,
    timed_out: bool,
    exit_code: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ScanSummary {
    runs: Vec<ScanRun>,
}

/// fetch's run record (src/bench/fetch/record.rs `RunRecord`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FetchRun {
    workload: String,
    tool: String,
    run: u32,
    wall_s: Option<f64>,
    cpu_s: Option<f64>,
    peak_rss_mib: Option<f64>,
    peak_pss_mib: Option<f64>,
    files_expected: u64,
    files_ok: u64,
    wrong_size: u64,
    wrong_sha256: u64,
    extra: u64,
    timed_out: bool,
    exit_code: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FetchWorkload {
    kind: String,
    files: u64,
    file_size: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FetchSummary {
    workloads: Vec<FetchWorkload>,
    runs: Vec<FetchRun>,
}

/// chat's run record (src/bench/chat.rs `Run`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatRun {
    part: String,
    server: String,
    round: u32,
    requests_per_s: Option<f64>,
    connections: u64,
    rss_idle_kib: u64,
    rss_loaded_kib: u64,
    deliveries_per_s: Option<f64>,
    delivered_ratio: Option<f64>,
    /// The rate offered (the ladder's rows are one case per rate).
    msgs_per_s: Option<f64>,
    latency_p50_us: Option<f64>,
    latency_p99_us: Option<f64>,
    latency_max_us: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatSummary {
    runs: Vec<ChatRun>,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("cannot parse {}", path.display()))
}

fn base(workload: &str, case: &str, tool: &str, run: u32) -> Row {
    Row {
        workload: workload.into(),
        case: case.into(),
        tool: tool.into(),
        kind: Row::kind_of(tool).into(),
        run,
        ..Row::default()
    }
}

/// The rows of a `bench scan` summary; `case` names the target and ports.
pub fn scan(path: &Path, case: &str) -> anyhow::Result<Vec<Row>> {
    let summary: ScanSummary = read(path)?;
    Ok(summary
        .runs
        .into_iter()
        .filter(|r| r.run > 0)
        .map(|r| Row {
            ok: r.exit_code == Some(0) && !r.timed_out && r.recall.is_none_or(|v| v >= 1.0) && r.false_positives == 0,
            wall_s: r.wall_s,
            cpu_s: r.cpu_s,
            peak_rss_mib: r.peak_rss_mib,
            peak_pss_mib: r.peak_pss_mib,
            recall: r.recall,
            false_positives: Some(r.false_positives),
            timed_out: r.timed_out,
            ..base("scan", case, &r.tool, r.run)
        })
        .collect())
}

/// The rows of a `bench fetch` summary: one case per workload, named with
/// its size (`small 100 x 16 KiB`).
pub fn fetch(path: &Path) -> anyhow::Result<Vec<Row>> {
    let summary: FetchSummary = read(path)?;
    let workload = |name: &str| summary.workloads.iter().find(|w| w.kind == name);
    Ok(summary
        .runs
        .iter()
        .filter(|r| r.run > 0)
        .map(|r| {
            let (case, size) = match workload(&r.workload) {
                Some(w) => (format!("{} {} x {}", r.workload, w.files, human_bytes(w.file_size)), w.file_size),
                None => (r.workload.clone(), 0),
            };
            Row {
                ok: r.exit_code == Some(0)
                    && !r.timed_out
                    && r.files_ok == r.files_expected
                    && r.wrong_size + r.wrong_sha256 + r.extra == 0,
                wall_s: r.wall_s,
                cpu_s: r.cpu_s,
                peak_rss_mib: r.peak_rss_mib,
                peak_pss_mib: r.peak_pss_mib,
                files_ok: Some(r.files_ok),
                files_expected: Some(r.files_expected),
                // Saturating: the figures come from a file, which may hold anything.
                bytes_verified: Some(r.files_ok.saturating_mul(size)),
                timed_out: r.timed_out,
                ..base("fetch", &case, &r.tool, r.run)
            }
        })
        .collect())
}

/// The rows of a `bench chat` summary: one case per part. Fan-out steps
/// of one round are one run each (the case says the part).
pub fn chat(path: &Path) -> anyhow::Result<Vec<Row>> {
    let summary: ChatSummary = read(path)?;
    Ok(summary
        .runs
        .into_iter()
        .map(|r| {
            let case = match (r.part.as_str(), r.msgs_per_s) {
                ("ladder", Some(rate)) => format!("ladder {rate} msg/s"),
                _ => r.part.clone(),
            };
            let mut row = base("chat", &case, &r.server, r.round + 1);
            match r.part.as_str() {
                "echo" => {
                    // A server that answered nothing in the whole run did
                    // not do the part (bench chat records 0 req/s for it).
                    row.ok = r.requests_per_s.is_some_and(|v| v > 0.0);
                    row.requests_per_s = r.requests_per_s;
                    // Round-trip times (absent from summaries older than
                    // the echo latency: 0 means not measured).
                    let measured = |v: Option<f64>| v.filter(|&v| v > 0.0);
                    row.latency_p50_us = measured(r.latency_p50_us);
                    row.latency_p99_us = measured(r.latency_p99_us);
                    row.latency_max_us = measured(r.latency_max_us);
                }
                "idle" => {
                    row.ok = r.connections > 0;
                    row.rss_per_connection_kib = (r.connections > 0)
                        .then(|| r.rss_loaded_kib.saturating_sub(r.rss_idle_kib) as f64 / r.connections as f64);
                }
                _ => {
                    row.ok = r.delivered_ratio.is_some_and(|v| v >= 0.999);
                    row.deliveries_per_s = r.deliveries_per_s;
                    row.deliveries_lost = r.delivered_ratio.map(|v| (1.0 - v).max(0.0));
                    row.latency_p50_us = r.latency_p50_us;
                    row.latency_p99_us = r.latency_p99_us;
                    row.latency_max_us = r.latency_max_us;
                }
            }
            row
        })
        .collect())
}

/// `16 KiB`, `64 MiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 { format!("{value:.0} {}", UNITS[unit]) } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_scan_summary_and_drops_warmups() {
        let dir = std::env::temp_dir().join(format!("trident-ingest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("summary.json");
        std::fs::write(
            &path,
            r#"{"runs":[{"tool":"trident-async","run":0,"wall_s":1.0},
                {"tool":"nmap -sT","run":1,"wall_s":2.0,"cpu_s":1.0,"recall":1.0,"false_positives":0,
                 "exit_code":0,"timed_out":false,"new_field":3}]}"#,
        )
        .unwrap();
        let rows = scan(&path, "loopback").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].tool.as_str(), rows[0].kind.as_str(), rows[0].ok), ("nmap -sT", "peer", true));
        assert_eq!(human_bytes(16 * 1024), "16 KiB");
        assert_eq!(human_bytes(3 << 19), "1.5 MiB");
    }

    #[test]
    fn a_fetch_summary_with_huge_counts_does_not_overflow() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("summary.json");
        std::fs::write(
            &path,
            r#"{"workloads":[{"kind":"small","files":2,"file_size":18446744073709551615}],
                "runs":[{"workload":"small","tool":"curl","run":1,"files_ok":2,"files_expected":2}]}"#,
        )
        .expect("write summary");
        let rows = fetch(&path).expect("rows");
        assert_eq!(rows[0].bytes_verified, Some(u64::MAX));
    }

    #[test]
    fn an_echo_run_that_served_nothing_is_not_correct() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("summary.json");
        std::fs::write(
            &path,
            r#"{"runs":[{"part":"echo","server":"trident-async","round":0,"requests_per_s":5000.0},
                {"part":"echo","server":"chapter-asyncio","round":0,"requests_per_s":0.0},
                {"part":"echo","server":"trident-threads","round":0,"requests_per_s":null}]}"#,
        )
        .expect("write summary");
        let ok: Vec<(String, bool)> = chat(&path).expect("rows").into_iter().map(|r| (r.tool, r.ok)).collect();
        let expected = [("trident-async", true), ("chapter-asyncio", false), ("trident-threads", false)];
        assert_eq!(ok, expected.map(|(t, ok)| (t.to_string(), ok)));
    }

    #[test]
    fn ladder_runs_are_a_case_per_rate_keyed_by_tool() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("summary.json");
        std::fs::write(
            &path,
            r#"{"runs":[{"part":"ladder","server":"trident-async","round":0,"msgs_per_s":100.0,"delivered_ratio":1.0,"latency_p99_us":900.0},
                {"part":"ladder","server":"inspircd","round":0,"msgs_per_s":3000.0,"delivered_ratio":0.66,"latency_p99_us":2900000.0}]}"#,
        )
        .expect("write summary");
        let rows = chat(&path).expect("rows");
        let got: Vec<(&str, &str, &str, bool)> =
            rows.iter().map(|r| (r.case.as_str(), r.tool.as_str(), r.kind.as_str(), r.ok)).collect();
        assert_eq!(
            got,
            [("ladder 100 msg/s", "trident-async", "engine", true), ("ladder 3000 msg/s", "inspircd", "peer", false)]
        );
        assert_eq!(rows[1].latency_p99_us, Some(2_900_000.0));
    }
}
