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
