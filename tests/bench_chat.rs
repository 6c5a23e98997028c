//! `trident bench chat`, small: every part runs, on every engine, against
//! real servers, and reports figures that make sense.

use crate::engine_tests;
use crate::util::*;

engine_tests! {
    fn bench_chat_measures_idle_memory_and_echo_rates(engine) {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let o = run(&[
            "bench", "chat", "--engines", engine, "--runs", "1", "--idle", "200", "--connections", "8",
            "--duration", "300ms", "--members", "20", "--senders", "2", "--rates", "50", "--load-duration", "500ms",
            "--out", out.to_str().expect("utf-8"),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains("Idle connections: 200 registered"), "{text}");
        let idle = text.lines().find(|l| l.starts_with(&format!("trident-{engine} ")) && l.contains("KiB")).expect(&text);
        let rss: f64 = idle.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect(idle);
        assert!(rss > 0.0 && rss < 1024.0, "per-connection RSS {rss} KiB: {idle}");
        let echo = text.lines().filter(|l| l.contains('x') && l.contains("µs")).count();
        assert_eq!(echo, 2, "reference and trident-{engine} echo rows: {text}");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("json");
        let rows = summary["summary"].as_array().expect("rows");
        let echo_rate = rows.iter().find(|r| r["part"] == "echo" && r["server"] == format!("trident-{engine}")).expect("echo row")["requests_per_s"].as_f64().expect("rate");
        assert!(echo_rate > 100.0, "echo rate {echo_rate}");
        let echo_row = rows.iter().find(|r| r["part"] == "echo" && r["server"] == format!("trident-{engine}")).expect("echo row");
        let (p50, p99) = (echo_row["latency_p50_us"].as_f64().expect("p50"), echo_row["latency_p99_us"].as_f64().expect("p99"));
        assert!(p50 >= 1.0 && p99 >= p50, "echo round trips recorded: p50 {p50} µs, p99 {p99} µs");
        let csv = std::fs::read_to_string(out.join("runs.csv")).expect("runs.csv");
        assert_eq!(csv.lines().count(), 1 + 1 + 1 + 1 + 2, "header, idle, fan-out step, latency, two echo runs: {csv}");
        let fanout = rows.iter().find(|r| r["part"] == "fanout").expect("fan-out row");
        // 50 messages/s to 19 others: about 950 deliveries/s, all of them.
        let rate = fanout["deliveries_per_s"].as_f64().expect("rate");
        assert!((100.0..2000.0).contains(&rate), "fan-out deliveries/s {rate}");
        let latency = rows.iter().find(|r| r["part"] == "latency").expect("latency row");
        assert!(latency["latency_p99_us"].as_f64().expect("p99") > 0.0);
    }
}

/// The summary.json rows of a bench run in `out`.
fn summary_rows(out: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    let summary: serde_json::Value = serde_json::from_str(&text).expect("json");
    summary["summary"].as_array().expect("rows").clone()
}

/// The same fixed rates against every engine and both stock IRC servers
/// (Debian's InspIRCd and ngircd, with the configs in bench/irc/): a row
/// per server and rate, with latencies and everything delivered at these
/// low rates; the table has a column per server; the load generator and
/// the servers are on a CPU each.
#[test]
fn ladder_runs_the_same_rates_on_trident_inspircd_and_ngircd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = run(&[
        "bench",
        "chat",
        "--parts",
        "ladder",
        "--engines",
        "threads,processes,async",
        "--vs",
        "inspircd,ngircd",
        "--runs",
        "1",
        "--members",
        "20",
        "--senders",
        "2",
        "--rates",
        "20,60",
        "--load-duration",
        "400ms",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let servers = ["trident-threads", "trident-processes", "trident-async", "inspircd", "ngircd"];
    let rows = summary_rows(&out);
    for server in servers {
        for rate in [20.0, 60.0] {
            let row = rows
                .iter()
                .find(|r| r["part"] == "ladder" && r["server"] == server && r["msgs_per_s"].as_f64() == Some(rate))
                .unwrap_or_else(|| panic!("no ladder row for {server} at {rate} msg/s: {text}"));
            assert_eq!(row["delivered_ratio"].as_f64(), Some(1.0), "{server} at {rate}: {row}");
            let (p50, p99) =
                (row["latency_p50_us"].as_f64().expect("p50"), row["latency_p99_us"].as_f64().expect("p99"));
            assert!(p50 > 0.0 && p50 <= p99, "{server} at {rate}: p50 {p50} p99 {p99}");
            // 20 msg/s to 19 others for 0.4 s: about 380 deliveries/s.
            assert!(row["deliveries_per_s"].as_f64().expect("rate") > 50.0, "{server} at {rate}: {row}");
        }
    }
    let header = text.lines().find(|l| l.trim_start().starts_with("MSG/S")).expect(&text);
    for server in servers {
        assert!(header.contains(server), "{server} column: {header}");
    }
    let cells = text.lines().find(|l| l.trim_start().starts_with("60 ")).expect(&text);
    assert_eq!(cells.matches("100.0%").count(), servers.len(), "{cells}");
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let placement = text.lines().find(|l| l.starts_with("CPU affinity:")).expect(&text);
    if cpus >= 2 {
        assert!(placement.contains("load generator on CPU") && placement.contains("server on CPU"), "{placement}");
    } else {
        assert!(placement.contains("none"), "{placement}");
    }
}

/// The idle, fan-out and latency parts run against a stock IRC server as
/// against trident: memory per idle connection, and delivery rates, for
/// both.
#[test]
fn idle_fanout_and_latency_run_against_inspircd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = run(&[
        "bench",
        "chat",
        "--parts",
        "idle,fanout,latency",
        "--engines",
        "async",
        "--peer-irc",
        "inspircd=/usr/sbin/inspircd",
        "--runs",
        "1",
        "--idle",
        "100",
        "--members",
        "20",
        "--senders",
        "2",
        "--rates",
        "50",
        "--load-duration",
        "400ms",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = summary_rows(&out);
    for server in ["trident-async", "inspircd"] {
        let row = |part: &str| rows.iter().find(|r| r["part"] == part && r["server"] == server).cloned();
        let idle = row("idle").unwrap_or_else(|| panic!("{server} idle row: {rows:?}"));
        let rss = idle["rss_per_connection_bytes"].as_f64().expect("rss");
        assert!(rss > 0.0 && rss < 1024.0 * 1024.0, "{server}: {rss} bytes per idle connection");
        let fanout = row("fanout").unwrap_or_else(|| panic!("{server} fan-out row: {rows:?}"));
        assert!(fanout["deliveries_per_s"].as_f64().expect("rate") > 100.0, "{server}: {fanout}");
        let latency = row("latency").unwrap_or_else(|| panic!("{server} latency row: {rows:?}"));
        assert!(latency["latency_p99_us"].as_f64().expect("p99") > 0.0, "{server}: {latency}");
    }
}

/// A peer that is not installed is named and left out, as the other
/// benches' peers are; the engines still run.
#[test]
fn an_irc_peer_not_installed_is_named_and_skipped() {
    let o = run(&[
        "bench",
        "chat",
        "--parts",
        "ladder",
        "--engines",
        "async",
        "--peer-irc",
        "inspircd=/nonexistent/sbin/inspircd",
        "--runs",
        "1",
        "--members",
        "5",
        "--senders",
        "1",
        "--rates",
        "20",
        "--load-duration",
        "200ms",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/sbin/inspircd is not installed; skipping inspircd"), "{}", stderr(&o));
    let text = stdout(&o);
    let header = text.lines().find(|l| l.trim_start().starts_with("MSG/S")).expect(&text);
    assert!(header.contains("trident-async") && !header.contains("inspircd"), "{header}");
}

/// A rate `chat load` would refuse is refused at once, before the idle part
/// (first by default) has started a server.
#[test]
fn a_bad_rate_is_refused_before_anything_runs() {
    for bad in ["0", "nan", "inf", "20000000"] {
        let o = run(&["bench", "chat", "--engines", "async", "--rates", &format!("100,{bad}")]);
        assert_eq!(o.status.code(), Some(2), "--rates 100,{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("--rates") && stderr(&o).contains("must be above 0"), "{}", stderr(&o));
        assert!(stdout(&o).is_empty(), "nothing measured: {}", stdout(&o));
    }
}
