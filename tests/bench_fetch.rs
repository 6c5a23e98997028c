//! `trident bench fetch` end to end, tiny: 50 small files, one run per
//! engine, no peers, against nginx when installed (else the built-in server).

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
