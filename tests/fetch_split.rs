//! Split downloads (`trident fetch -s K`) against the test server's
//! `/range/` paths, through the real binary, on every engine. Every case
//! checks the exact files left in the directory (names and SHA-256), the
//! exit code, and the Range requests the server received.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::engine_tests;
use crate::fetch_util::{code, fetch_json as fetch, files, json, only, wait_unlocked};
use crate::http_server::{RangeRequest, TestServer, sha256_hex, versioned};
use crate::util::{stderr, stdout, trident};

/// Byte ranges `[start, end)`.
type Spans = Vec<(u64, u64)>;

/// A Range header as `(first, end)`: `bytes=A-B` is `(A, Some(B + 1))`,
/// `bytes=A-` is `(A, None)`.
fn range(r: &RangeRequest) -> (u64, Option<u64>) {
    let spec = r.range.as_deref().and_then(|r| r.strip_prefix("bytes=")).expect("a bytes= Range header");
    let (first, last) = spec.split_once('-').expect("A-B");
    let first = first.parse().expect("first byte");
    (first, (!last.is_empty()).then(|| last.parse::<u64>().expect("last byte") + 1))
}

/// The byte ranges of `reqs` (closed ranges only), merged.
fn union(reqs: &[RangeRequest]) -> Spans {
    let mut spans: Vec<(u64, u64)> = reqs.iter().map(range).map(|(a, b)| (a, b.expect("a closed range"))).collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in spans {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// The ranges a state file records as done, and what they leave missing.
fn state_ranges(path: &Path, total: u64) -> (Spans, Spans) {
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(path).expect("state")).expect("JSON");
    let ranges: Spans = serde_json::from_value(state["ranges"].clone()).unwrap_or_else(|e| panic!("{e}: {state}"));
    let mut gaps = Vec::new();
    let mut at = 0;
    for &(a, b) in &ranges {
        if a > at {
            gaps.push((at, a));
        }
        at = b;
    }
    if at < total {
        gaps.push((at, total));
    }
    (ranges, gaps)
}

const SIZE: usize = 4 << 20;
const MIB: u64 = 1 << 20;

engine_tests! {
    fn four_parts_make_a_byte_exact_file(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = format!("/range/-/{SIZE}/s.bin");
        let checksum = format!("sha256={}", sha256_hex(&versioned("s.bin", SIZE, 1)));
        let o = fetch(engine, dir.path(), &[&s.url(&path), "-s", "4", "--split-probe", "0", "--checksum", &checksum, "--sha256"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("s.bin", SIZE, 1), "exact file, no .part or .state");
        let reqs = s.requests(&path);
        assert_eq!(reqs.len(), 4, "{reqs:?}");
        assert!(reqs.iter().all(|r| r.status == 206), "{reqs:?}");
        // The first asks for everything (and is cut short at 1 MiB), the
        // others for one MiB each, each with If-Range.
        assert_eq!((range(&reqs[0]), reqs[0].if_range.as_deref()), ((0, None), None));
        let mut parts: Vec<(u64, Option<u64>)> = reqs[1..].iter().map(range).collect();
        parts.sort_unstable();
        assert_eq!(parts, [(MIB, Some(2 * MIB)), (2 * MIB, Some(3 * MIB)), (3 * MIB, Some(4 * MIB))]);
        assert!(reqs[1..].iter().all(|r| r.if_range.as_deref() == Some("\"s.bin-4194304-v1\"")), "{reqs:?}");
        let r = &json(&o)["files"][0];
        assert_eq!((r["status"].as_str(), r["bytes"].as_u64()), (Some("done"), Some(SIZE as u64)));
        assert_eq!(r["sha256"].as_str(), Some(sha256_hex(&versioned("s.bin", SIZE, 1)).as_str()));
        assert_eq!((r["http_status"].as_u64(), r["attempts"].as_u64()), (Some(206), Some(1)));
    }

    fn without_range_support_the_file_comes_as_one_stream(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = format!("/range/norange/{SIZE}/n.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path), "-s", "4"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("n.bin", SIZE, 1));
        let reqs = s.requests(&path);
        assert_eq!(reqs.iter().map(|r| (range(r), r.status)).collect::<Vec<_>>(), [((0, None), 200)]);
        assert_eq!(s.served(&path), SIZE as u64, "one body, once");
        assert_eq!(json(&o)["files"][0]["http_status"].as_u64(), Some(200));
    }

    fn a_file_below_the_min_split_size_is_fetched_whole(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // 500 kB against the default 1 MiB; 3 MiB against --min-split-size 2M
        // (two parts would be below 2 MiB each).
        let small = "/range/-/500000/small.bin";
        let o = fetch(engine, dir.path(), &[&s.url(small), "-s", "4"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        let medium = format!("/range/-/{}/medium.bin", 3 << 20);
        let o2 = fetch(engine, dir.path(), &[&s.url(&medium), "-s", "4", "--min-split-size", "2M"]);
        assert_eq!(code(&o2), 0, "{}{}", stdout(&o2), stderr(&o2));
        let mut want = only("small.bin", 500_000, 1);
        want.extend(only("medium.bin", 3 << 20, 1));
        assert_eq!(files(dir.path()), want);
        for (path, size) in [(small, 500_000u64), (medium.as_str(), 3 << 20)] {
            let reqs = s.requests(path);
            assert_eq!(reqs.iter().map(|r| (range(r), r.status)).collect::<Vec<_>>(), [((0, None), 206)], "{path}");
            assert_eq!(s.served(path), size, "{path}: one body, once");
        }
    }

    fn a_split_download_resumes_only_the_missing_ranges_after_cut_parts(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // The first 4 responses (the 4 parts) are cut after 300 kB: with no
        // retry, the run fails and -c keeps the part file and its ranges.
        let path = format!("/range/cut=300000,cuthits=4/{SIZE}/t.bin");
        let url = s.url(&path);
        let o = fetch(engine, dir.path(), &[&url, "-s", "4", "--split-probe", "0", "--retries", "0", "-c"]);
        assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
        let left: Vec<String> = files(dir.path()).into_keys().collect();
        assert_eq!(left, ["t.bin.part", "t.bin.part.state"]);
        let (done, gaps) = state_ranges(&dir.path().join("t.bin.part.state"), SIZE as u64);
        assert_eq!(done.len(), 4, "a range per part: {done:?}");
        for (i, &(a, b)) in done.iter().enumerate() {
            assert!(a == i as u64 * MIB && b > a && b - a <= 300_000, "{done:?}");
        }
        let first_run = s.requests(&path).len();
        assert_eq!(first_run, 4);

        let o = fetch(engine, dir.path(), &[&url, "-s", "4", "--split-probe", "0"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("t.bin", SIZE, 1), "byte-exact, nothing left over");
        let again = &s.requests(&path)[first_run..];
        assert!(again.iter().all(|r| r.status == 206 && r.if_range.as_deref() == Some("\"t.bin-4194304-v1\"")), "{again:?}");
        assert_eq!(union(again), gaps, "only the missing ranges were asked for");
        let kept: u64 = done.iter().map(|(a, b)| b - a).sum();
        assert_eq!(json(&o)["files"][0]["resumed_from"].as_u64(), Some(kept));
    }

    fn a_slow_part_is_cut_in_two_for_an_idle_worker(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // The first response crawls (16 KiB every 50 ms); the second part
        // comes at once, then its worker takes half of what the first has
        // left, again and again while halves stay above 64 KiB.
        const N: usize = 2 << 20;
        let path = format!("/range/chunk=16384,ms1=50/{N}/r.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path), "-s", "2", "--split-probe", "0", "--min-split-size", "64K"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("r.bin", N, 1));
        let reqs = s.requests(&path);
        assert!(reqs.len() >= 4, "the slow part was cut several times: {reqs:?}");
        assert_eq!(range(&reqs[1]), (1 << 20, Some(2 << 20)), "{reqs:?}");
        // Each later part starts inside the first one and ends where an
        // earlier one (the first, or a part taken from it) was to end.
        for r in &reqs[2..] {
            let (a, b) = range(r);
            assert!(a > 0 && b.is_some_and(|b| b <= 1 << 20), "{reqs:?}");
        }
    }

    fn the_parts_open_once_the_one_connection_waits_for_the_network(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // 16 KiB every 10 ms: the connection waits for data nearly all the
        // time, so after the first 100 ms window the other parts open,
        // cut from what the first one had left.
        const N: usize = 2 << 20;
        let path = format!("/range/chunk=16384,ms=10/{N}/w.bin");
        let args = [&s.url(&path), "-s", "4", "--split-probe", "100ms", "--min-split-size", "128K"];
        let o = fetch(engine, dir.path(), &args);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("w.bin", N, 1));
        let reqs = s.requests(&path);
        assert_eq!(range(&reqs[0]), (0, None), "{reqs:?}");
        assert!(reqs.len() >= 4, "three more parts: {reqs:?}");
        for r in &reqs[1..] {
            let (a, b) = range(r);
            assert!(a > 0 && b.is_some_and(|b| b > a && b <= N as u64), "{reqs:?}");
            assert_eq!((r.status, r.if_range.as_deref()), (206, Some("\"w.bin-2097152-v1\"")), "{reqs:?}");
        }
        // The three parts start as soon as they open, while the first
        // connection is still on its own (shortened) part, which ends
        // where the first of them begins.
        let first_cut = reqs[1..4].iter().map(|r| range(r).0).min().expect("parts");
        assert!(reqs[1..4].iter().all(|r| r.served_before < first_cut), "{reqs:?}");
    }

    fn a_probe_that_never_ends_keeps_one_stream(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // The same slow server, but the window is an hour: one request.
        const N: usize = 1 << 20;
        let path = format!("/range/chunk=16384,ms=5/{N}/o.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path), "-s", "4", "--split-probe", "1h", "--min-split-size", "128K"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("o.bin", N, 1));
        let reqs = s.requests(&path);
        assert_eq!(reqs.iter().map(|r| (range(r), r.status)).collect::<Vec<_>>(), [((0, None), 206)]);
        assert_eq!(s.served(&path), N as u64, "one body, once");
    }

    fn a_file_that_changes_during_a_split_download_is_never_mixed(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // Every response is another version of the file: the parts see a
        // 200 to their If-Range, the download starts over, then (the
        // second time) falls back to one stream.
        let path = format!("/range/etag/{SIZE}/m.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path), "-s", "4", "--split-probe", "0"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        let reqs = s.requests(&path);
        let last = reqs.last().expect("requests");
        assert_eq!((last.range.as_deref(), last.status), (None, 200), "{reqs:?}");
        assert_eq!(files(dir.path()), only("m.bin", SIZE, reqs.len() as u32), "one version, whole");
        let fresh = reqs.iter().filter(|r| r.range.as_deref() == Some("bytes=0-")).count();
        assert_eq!(fresh, 2, "split twice, then one stream: {reqs:?}");
    }

    fn kill_9_mid_split_download_then_a_rerun_fetches_the_gaps(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        const BIG: usize = 32 << 20;
        // 64 KiB every 20 ms per connection: 4 parts, some 13 MB/s in all.
        let path = format!("/range/chunk=65536,ms=20/{BIG}/k.bin");
        let url = s.url(&path);
        let mut child = trident()
            .args(["fetch", "-e", engine, "-d", d, "-q", "-s", "4", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let t0 = Instant::now();
        let state = dir.path().join("k.bin.part.state");
        while s.served(&path) < 16 << 20 || !state.exists() {
            assert!(t0.elapsed() < Duration::from_secs(60), "served only {}", s.served(&path));
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        assert!(!child.wait().expect("wait").success());
        wait_unlocked(&dir.path().join("k.bin.part"));
        // A kill during a checkpoint may leave the state's temporary file
        // (the state itself is replaced atomically); the rerun removes it.
        let left: Vec<String> =
            files(dir.path()).into_keys().filter(|n| n != "k.bin.part.state.tmp").collect();
        assert_eq!(left, ["k.bin.part", "k.bin.part.state"], "no final file");
        let (done, gaps) = state_ranges(&state, BIG as u64);
        assert!(!done.is_empty() && !gaps.is_empty(), "{done:?}");
        let before = s.requests(&path).len();

        let o = fetch(engine, dir.path(), &[&url, "-s", "4"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("k.bin", BIG, 1), "byte-exact, nothing left over");
        let again = &s.requests(&path)[before..];
        assert_eq!(union(again), gaps, "only the missing ranges were asked for");
        let kept: u64 = done.iter().map(|(a, b)| b - a).sum();
        assert!(kept >= 4 << 20, "at least one checkpoint: {done:?}");
        assert_eq!(json(&o)["files"][0]["resumed_from"].as_u64(), Some(kept));
    }
}
