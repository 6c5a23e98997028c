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
