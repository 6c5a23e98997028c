//! The chapter's own Python programs (bench/chapter/) as bench contenders:
//! each runs through the bench it belongs to, small, and its result is
//! checked as every contender's is. They do not depend on trident's engine,
//! so each bench runs one engine beside them.

use crate::util::{run, stderr, stdout};

fn summary(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

#[test]
fn the_chapters_echo_server_answers_the_echo_bench() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = run(&[
        "bench",
        "chat",
        "--parts",
        "echo",
        "--engines",
        "async",
        "--vs",
        "chapter-asyncio",
        "--runs",
        "1",
        "--connections",
        "4",
        "--duration",
        "300ms",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    let text = stdout(&o);
    assert!(o.status.success(), "{text}\n{}", stderr(&o));
    // Every request of the closed loop is checked against the chapter's
    // answer ("Server received: ping"); a wrong one fails the bench.
    let row = text.lines().find(|l| l.starts_with("chapter-asyncio ")).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("µs"), "{row}");
    let rows = summary(&out)["summary"].as_array().expect("rows").clone();
    let chapter = rows.iter().find(|r| r["server"] == "chapter-asyncio").expect("chapter row");
    let rate = chapter["requests_per_s"].as_f64().expect("rate");
    assert!(rate > 10.0, "chapter echo rate {rate}");
}

#[test]
fn an_unknown_chapter_peer_is_bad_input() {
    let o = run(&["bench", "chat", "--parts", "echo", "--vs", "chapter-go"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("chapter-asyncio"), "{}", stderr(&o));
}

/// The open ports of lab preset `name` (its seed is fixed), lowest first.
fn lab_open_ports(name: &str) -> Vec<u16> {
    let spec = trident::lab::LabSpec::preset(name).expect("preset");
    spec.open_ports().expect("open ports").into_iter().collect()
}

/// `trident bench scan` of lab `lab` on `ports`, one run, no warm-up,
/// trident's async engine and the chapter's scanners `vs`; its stdout and
/// summary.json (exit status not checked: see each test).
fn bench_scan(lab: &str, ports: &str, vs: &str, time_limit: &str) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = run(&[
        "bench",
        "scan",
        "--lab",
        lab,
        "-p",
        ports,
        "--engines",
        "async",
        "--vs",
        vs,
        "--runs",
        "1",
        "--warmup",
        "0",
        "--time-limit",
        time_limit,
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    let text = stdout(&o);
    assert!(out.join("summary.json").exists(), "status {}\n{text}\n{}", o.status, stderr(&o));
    (text, summary(&out))
}

fn run_of<'a>(summary: &'a serde_json::Value, tool: &str) -> &'a serde_json::Value {
    let runs = summary["runs"].as_array().expect("runs");
    runs.iter().find(|r| r["tool"] == tool).unwrap_or_else(|| panic!("no run of {tool}: {summary}"))
}

#[test]
fn the_chapters_scanners_find_the_open_ports_of_a_lab() {
    // The clean lab: no loss, no firewall; a closed port answers at once.
    let open = lab_open_ports("clean");
    let mut ports: Vec<String> = open.iter().take(5).map(u16::to_string).collect();
    ports.push(format!("{}-{}", open[0].saturating_sub(40).max(1), open[0] + 40));
    let vs = "chapter-threads,chapter-processes,chapter-asyncio,chapter-asyncio-timeout";
    let (text, summary) = bench_scan("clean", &ports.join(","), vs, "120s");
    let truth: Vec<u64> = summary["truth"].as_array().expect("truth").iter().filter_map(|p| p.as_u64()).collect();
    assert!(truth.len() >= 5, "{truth:?}");
    for tool in vs.split(',') {
        let r = run_of(&summary, tool);
        assert_eq!(
            (r["recall"].as_f64(), r["false_positives"].as_u64(), r["found"].as_u64()),
            (Some(1.0), Some(0), Some(truth.len() as u64)),
            "{tool}: {r}\n{text}"
        );
        assert_eq!((r["exit_code"].as_i64(), r["timed_out"].as_bool()), (Some(0), Some(false)), "{tool}: {r}");
    }
    // Changed from the chapter, and said so.
    assert!(text.contains("chapter-asyncio-timeout is CHANGED from the chapter"), "{text}");
    let ratios = summary["ratios"].as_array().expect("ratios");
    assert_eq!(ratios.len(), 4, "trident-async over each chapter scanner: {ratios:?}");
}

#[test]
fn the_chapters_asyncio_scanner_does_not_finish_on_a_filtered_port_and_is_reported_so() {
    // The full lab DROPs the SYNs of 20001-30000: without a timeout the
    // chapter's asyncio scanner waits for the kernel to give up (~2 min).
    let open = lab_open_ports("full");
    let ports = format!("{},{},20001-20003", open[0], open[1]);
    let (text, summary) = bench_scan("full", &ports, "chapter-asyncio,chapter-asyncio-timeout", "6s");
    let hung = run_of(&summary, "chapter-asyncio");
    assert_eq!((hung["timed_out"].as_bool(), hung["exit_code"].as_i64()), (Some(true), None), "{hung}\n{text}");
    let row = text.lines().find(|l| l.starts_with("1    chapter-asyncio ")).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("did not finish: killed at the 6s time limit"), "{row}");
    let median = text.lines().find(|l| l.starts_with("chapter-asyncio ") && !l.contains('%')).expect("summary row");
    assert!(median.contains("did not finish"), "{median}\n{text}");
    let rows = summary["summary"].as_array().expect("summary");
    let hung_row = rows.iter().find(|r| r["tool"] == "chapter-asyncio").expect("kept in the summary");
    assert_eq!(hung_row["timeouts"].as_u64(), Some(1), "{hung_row}");
    // No ratio over a time limit.
    let ratios = summary["ratios"].as_array().expect("ratios");
    assert!(ratios.iter().all(|r| r["peer"] != "chapter-asyncio"), "{ratios:?}");
    // The smallest fix finishes, and reports no filtered port as open.
    let fixed = run_of(&summary, "chapter-asyncio-timeout");
    assert_eq!(
        (fixed["timed_out"].as_bool(), fixed["exit_code"].as_i64(), fixed["false_positives"].as_u64()),
        (Some(false), Some(0), Some(0)),
        "{fixed}\n{text}"
    );
}

#[test]
fn the_chapters_downloaders_fetch_every_file_correctly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = run(&[
        "bench",
        "fetch",
        "--workload",
        "small",
        "--small-files",
        "30",
        "--small-jobs",
        "8",
        "--engines",
        "async",
        "--vs",
        "chapter-threads,chapter-asyncio",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--time-limit",
        "120s",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    let text = stdout(&o);
    // Both must run: a missing interpreter or aiohttp is named on stderr
    // and the peer left out, which fails here (scripts/test installs them).
    assert!(o.status.success(), "{text}\n{}", stderr(&o));
    assert!(!stderr(&o).contains("skipping"), "{}", stderr(&o));
    assert!(text.contains("chapter-*: the chapter's downloaders"), "{text}");
    let summary = summary(&out);
    for tool in ["chapter-threads", "chapter-asyncio"] {
        // Every file present with the right size and SHA-256, nothing else.
        let r = run_of(&summary, tool);
        assert_eq!(
            (r["files_ok"].as_u64(), r["files_expected"].as_u64(), r["extra"].as_u64(), r["exit_code"].as_i64()),
            (Some(30), Some(30), Some(0), Some(0)),
            "{tool}: {r}\n{text}"
        );
    }
    let ratios = summary["ratios"].as_array().expect("ratios");
    assert_eq!(ratios.len(), 2, "trident-async over each chapter downloader: {ratios:?}");
}
