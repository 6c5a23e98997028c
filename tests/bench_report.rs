//! `trident bench all`: a tiny run's report directory, and its index.html
//! rendered in headless Chromium (Debian's `chromium`, installed by
//! scripts/test): every chart drawn, every contender named, no console
//! message, nothing loaded from elsewhere; a screenshot is kept.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{run, stderr, stdout};

/// The charts every run of the three workloads has (one scan case, one
/// fetch case, the chat parts, every sweep).
const EXPECTED_CHARTS: [&str; 27] = [
    "scan-1-wall",
    "scan-1-cpu",
    "scan-1-memory",
    "scan-1-recall",
    "scan-1-fp",
    "fetch-1-wall",
    "fetch-1-cpu",
    "fetch-1-memory",
    "fetch-1-verified",
    "chat-idle",
    "chat-echo",
    "chat-fanout",
    "chat-latency",
    "chat-lost",
    "sweep-scan-concurrency-wall",
    "sweep-scan-concurrency-memory",
    "sweep-scan-ports-wall",
    "sweep-scan-ports-memory",
    "sweep-fetch-files-wall",
    "sweep-fetch-files-memory",
    "sweep-fetch-file-size-kib-wall",
    "sweep-fetch-file-size-kib-memory",
    "sweep-idle-connections-memory",
    "sweep-echo-clients-rps",
    "sweep-echo-clients-p99",
    "sweep-chat-members-deliveries",
    "sweep-chat-members-p99",
];

/// Loads index.html in a frame once it is laid out and reports, as JSON in
/// `#result`, each chart's rendered size and its data marks (elements
/// filled with the engine or peer colour), and the page's text.
const CHECK_PAGE: &str = r#"<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="f" src="index.html" style="width:1400px;height:900px"></iframe>
<script>
document.getElementById('f').addEventListener('load', () => {
  const d = document.getElementById('f').contentDocument;
  const charts = [...d.querySelectorAll('figure.chart')].map(f => {
    const svg = f.querySelector('svg');
    const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const marks = svg ? [...svg.querySelectorAll('[fill]')].filter(e =>
      ['#2b6cb0', '#dd8452'].includes(e.getAttribute('fill').toLowerCase())).length : 0;
    return {id: f.id, width: r.width, height: r.height, marks};
  });
  document.getElementById('result').textContent = JSON.stringify({charts, text: d.body.innerText});
});
</script></body></html>"#;

fn chromium(args: &[&str]) -> (String, String) {
    let out = Command::new("timeout")
        .args(["120", "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"])
        .args(args)
        .output()
        .expect("chromium runs (scripts/test installs Debian's chromium)");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().expect("path exists").display())
}

/// The JSON the check page left in `#result`.
fn check_result(dom: &str) -> serde_json::Value {
    let start = dom.find("<pre id=\"result\">").expect("the check page's result") + "<pre id=\"result\">".len();
    let end = start + dom[start..].find("</pre>").expect("end of result");
    let text = dom[start..end].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("check page result {text:?}: {e}"))
}

#[test]
fn bench_all_writes_a_report_that_renders_in_chromium() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-report");
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(&[
        "bench",
        "all",
        "--tiny",
        "--out",
        dir.to_str().expect("utf-8 path"),
        "--vs",
        "nmap,chapter-asyncio,rustscan,curl",
    ]);
    assert!(out.status.success(), "bench all failed:\n{}\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("bench all [17/17] chat channel of 10"), "progress lines: {}", stderr(&out));
    for file in ["results.csv", "results.json", "report.md", "index.html", "charts/scan-1-wall.svg"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).expect("results.json")).expect("json");
    let rows = results["rows"].as_array().expect("rows");
    let tools: Vec<&str> = rows.iter().map(|r| r["tool"].as_str().expect("tool")).collect();
    for workload in ["scan", "fetch", "chat"] {
        for engine in ["trident-threads", "trident-processes", "trident-async"] {
            assert!(rows.iter().any(|r| r["workload"] == workload && r["tool"] == engine), "{engine} in {workload}");
        }
    }
    assert!(tools.contains(&"chapter-asyncio"), "the chapter's echo server and scanner run: {tools:?}");
    let sweeps: Vec<&str> = rows.iter().filter_map(|r| r["sweep"].as_str()).collect();
    for sweep in [
        "scan concurrency",
        "scan ports",
        "fetch files",
        "fetch file size (KiB)",
        "idle connections",
        "echo clients",
        "chat members",
    ] {
        assert!(sweeps.contains(&sweep), "{sweep} missing from {sweeps:?}");
    }
    // The chapter's programs are in the sweeps that have their knob.
    for sweep in ["scan ports", "fetch files", "fetch file size (KiB)", "echo clients"] {
        assert!(
            rows.iter().any(|r| r["sweep"] == sweep && r["tool"] == "chapter-asyncio"),
            "the chapter's asyncio program in the {sweep} sweep"
        );
    }
    let commands = results["commands"].as_array().expect("commands");
    assert_eq!(commands.len(), 17, "scan, fetch, chat, then seven sweeps of two points each");
    assert!(commands[0]["command"].as_str().expect("command").starts_with("trident bench scan "));
    let csv = std::fs::read_to_string(dir.join("results.csv")).expect("results.csv");
    assert!(csv.starts_with("workload,case,tool,kind,run,ok,wall_s,cpu_s,peak_rss_mib,peak_pss_mib,"));
    assert_eq!(csv.lines().count(), rows.len() + 1, "one csv line per run");

    let index = std::fs::read_to_string(dir.join("index.html")).expect("index.html");
    for outside in ["<script", " src=", " href=", "url("] {
        assert!(!index.contains(outside), "index.html is not self-contained: {outside}");
    }

    // Rendered: every chart drawn, with data in it.
    std::fs::write(dir.join("check.html"), CHECK_PAGE).expect("write check page");
    let (dom, _) = chromium(&["--allow-file-access-from-files", "--dump-dom", &url(&dir.join("check.html"))]);
    let check = check_result(&dom);
    let charts = check["charts"].as_array().expect("charts");
    for id in EXPECTED_CHARTS {
        let chart = charts.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("chart {id} missing"));
        assert!(chart["width"].as_f64() > Some(100.0) && chart["height"].as_f64() > Some(50.0), "{chart}");
        assert!(chart["marks"].as_u64() >= Some(1), "chart {id} has no data: {chart}");
    }
    let text = check["text"].as_str().expect("page text");
    for tool in &tools {
        assert!(text.contains(tool), "{tool} does not appear in the page");
    }
    for missing in results["not_installed"].as_array().expect("not_installed") {
        let line = format!(
            "{} ({}): not installed",
            missing["peer"].as_str().expect("peer"),
            missing["workload"].as_str().expect("workload")
        );
        assert!(text.contains(&line), "{line:?} not in the page");
    }

    // The page alone: no console message at all (it has no script), and a
    // screenshot for people.
    let shot = dir.join("screenshot.png");
    let (_, log) = chromium(&[
        "--hide-scrollbars",
        "--window-size=1400,2400",
        &format!("--screenshot={}", shot.display()),
        &url(&dir.join("index.html")),
    ]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot {} is {size} bytes", shot.display());
    eprintln!("screenshot: {}", shot.display());
}

#[test]
fn bench_all_refuses_an_unknown_peer() {
    let out = run(&["bench", "all", "--tiny", "--vs", "nmapp", "--out", "/nonexistent/never-written"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown peer \"nmapp\""), "{}", stderr(&out));
}

/// `bench all --tiny -q`, the async engine and no peer, into `dir`.
fn quiet_async_only_run(dir: &Path) -> std::process::Output {
    let dir = dir.to_str().expect("utf-8 path");
    run(&["bench", "all", "--tiny", "-q", "--engines", "async", "--vs", "none", "--out", dir])
}

#[test]
fn bench_all_quiet_shows_no_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = quiet_async_only_run(dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("bench all ["), "progress despite -q: {}", stderr(&out));
    assert!(dir.path().join("index.html").is_file());

    // --redraw: the pages and charts again from results.json, nothing run.
    let (index, chart) = (dir.path().join("index.html"), dir.path().join("charts/scan-1-wall.svg"));
    let before = std::fs::read_to_string(&index).expect("index.html");
    std::fs::remove_file(&index).expect("remove index.html");
    std::fs::remove_file(&chart).expect("remove a chart");
    let out = run(&["bench", "all", "--redraw", "--out", dir.path().to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&index).expect("index.html redrawn"), before, "the same report");
    assert!(chart.is_file(), "charts redrawn");
    let empty = tempfile::tempdir().expect("tempdir");
    let out = run(&["bench", "all", "--redraw", "--out", empty.path().to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2), "no results.json is bad input: {}", stderr(&out));
    assert!(stderr(&out).contains("results.json"), "{}", stderr(&out));
}

#[test]
fn bench_all_never_reports_an_earlier_runs_results() {
    // An earlier run's scan results in the report directory, and a
    // runs.csv the scan bench cannot replace (a directory), so that a bench
    // writing over them fails before its summary.json: that stale summary
    // must not show up as this run's.
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("raw/1-scan");
    std::fs::create_dir_all(raw.join("runs.csv")).expect("plant runs.csv");
    let stale = r#"{"runs":[{"tool":"stale-scanner","run":1,"wall_s":1.0,"exit_code":0,"timed_out":false}]}"#;
    std::fs::write(raw.join("summary.json"), stale).expect("plant summary.json");
    let out = quiet_async_only_run(dir.path());
    let results = std::fs::read_to_string(dir.path().join("results.json")).expect("results.json");
    assert!(!results.contains("stale-scanner"), "an earlier run's figures were reported:\n{}", stderr(&out));
    assert!(results.contains("\"trident-async\""), "{results}");
    assert!(out.status.success(), "{}", stderr(&out));
}
