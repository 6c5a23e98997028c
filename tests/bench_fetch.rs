//! `trident bench fetch` end to end, tiny: 50 small files, one run per
//! engine, no peers, against nginx when installed (else the built-in server);
//! and the `active` workload (memory per download in flight) on every engine.

use crate::engine_tests;
use crate::util::{run, stderr, stdout};

#[test]
fn every_engine_fetches_every_file_correctly() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("bench");
    let o = run(&[
        "bench",
        "fetch",
        "--workload",
        "small",
        "--small-files",
        "50",
        "--small-jobs",
        "8",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--vs",
        "none",
        "--time-limit",
        "60s",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let text = stdout(&o);
    assert!(o.status.success(), "{text}\n{}", stderr(&o));
    assert!(text.starts_with("bench fetch: server "), "{text}");
    for engine in ["threads", "processes", "async"] {
        let line = text
            .lines()
            .find(|l| l.starts_with("small ") && l.contains(&format!("trident-{engine} ")))
            .unwrap_or_else(|| panic!("no median line for {engine}:\n{text}"));
        assert!(line.contains("100.0%") && !line.contains("not clean"), "{line}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    // Where the files went, in the text and the JSON alike.
    let storage = summary["storage"].as_str().expect("storage recorded");
    assert!(storage.contains(" on ") && storage.contains(" at /"), "{storage}");
    assert!(text.contains(&format!("bench fetch: files written to {storage}\n")), "{text}");
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for r in runs {
        assert_eq!(
            (r["files_ok"].as_u64(), r["files_expected"].as_u64(), r["extra"].as_u64()),
            (Some(50), Some(50), Some(0)),
            "{r}"
        );
    }
    assert_eq!(summary["summary"].as_array().unwrap().len(), 3);
    let csv = std::fs::read_to_string(dir.join("runs.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
}

engine_tests! {
    fn active_workload_measures_memory_per_download(engine) {
        let out = tempfile::tempdir().expect("tempdir");
        let dir = out.path().join("bench");
        let o = run(&[
            "bench", "fetch", "--workload", "active", "--active-files", "20", "--active-sizes", "0.25,0.5",
            "--active-duration", "2s", "--engines", engine, "--runs", "1", "--warmup", "0", "--vs", "none",
            "--time-limit", "60s", "--out", dir.to_str().expect("utf-8 path"),
        ]);
        let text = stdout(&o);
        assert!(o.status.success(), "{text}\n{}", stderr(&o));
        assert!(text.contains("limit_rate on the active paths") || text.contains("built-in server"), "{text}");
        assert!(text.contains("PER ACTIVE DOWNLOAD"), "{text}");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json"))
                .expect("json");
        // Each size: one run of all 20 at once, one of the first file alone.
        let runs = summary["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 4, "{runs:?}");
        for r in runs {
            let files = if r["jobs"] == 20 { 20 } else { 1 };
            assert_eq!(r["jobs"].as_u64(), Some(files), "{r}");
            assert_eq!(
                (r["files_ok"].as_u64(), r["files_expected"].as_u64(), r["extra"].as_u64(), r["exit_code"].as_i64()),
                (Some(files), Some(files), Some(0), Some(0)),
                "{r}"
            );
        }
        let active = summary["active"].as_array().expect("active");
        let sizes: Vec<u64> = active.iter().map(|a| a["file_size"].as_u64().expect("file_size")).collect();
        assert_eq!(sizes, [256 * 1024, 512 * 1024]);
        // A process per download costs a whole process (its RSS counts the
        // shared binary again); a thread or a task, far less.
        let bound_kib = if engine == "processes" { 64.0 * 1024.0 } else { 2048.0 };
        for a in active {
            assert_eq!(a["tool"].as_str(), Some(format!("trident-{engine}").as_str()), "{a}");
            assert_eq!((a["files"].as_u64(), a["runs"].as_u64(), a["bad_runs"].as_u64()), (Some(20), Some(1), Some(0)));
            // Every download was in flight at the same time.
            assert_eq!(a["in_flight_min_max"].as_u64(), Some(20), "{a}");
            let per = a["per_download_rss_kib"].as_f64().expect("per download");
            assert!(per > 0.0 && per < bound_kib, "per download {per} KiB: {a}");
            // PSS splits the binary's pages among every process mapping it,
            // other tests' included: only a process per download is sure to
            // show up above that noise.
            let pss = a["per_download_pss_kib"].as_f64().expect("per download pss");
            assert!(pss < bound_kib && (engine != "processes" || pss > 0.0), "per download PSS {pss} KiB: {a}");
        }
        let csv = std::fs::read_to_string(dir.join("runs.csv")).expect("runs.csv");
        assert_eq!(csv.lines().count(), 5, "{csv}");
    }
}
