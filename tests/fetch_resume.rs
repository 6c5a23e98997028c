//! Resuming `trident fetch` downloads (`NAME.part` + `NAME.part.state`,
//! `Range` + `If-Range`) against the test server's `/range/` paths, through
//! the real binary, on every engine. Every case checks the exact files left
//! in the directory (names and SHA-256), that no `.part`/`.state` is left
//! after success, the exit code, and what the server was asked and sent.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::engine_tests;
use crate::fetch_util::{code, fetch as fetch_text, fetch_json as fetch, files, interrupt, json, only, wait_unlocked};
use crate::http_server::{RangeRequest, TestServer, sha256_hex, versioned};
use crate::util::{stderr, stdout, trident};

/// The offset of a `bytes=N-` Range header.
fn range_start(r: &RangeRequest) -> u64 {
    let range = r.range.as_deref().expect("a Range header");
    range.strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')).and_then(|n| n.parse().ok()).expect("bytes=N-")
}

const SIZE: usize = 1_000_000;
const CUT: u64 = 300_000;

engine_tests! {
    fn a_cut_download_resumes_with_range_and_if_range(engine) {
        let s = TestServer::start();
        for (flags, name, validator) in [("cut=300000", "a.bin", "\"a.bin-1000000-v1\""), ("cut=300000,lm", "l.bin", "Sun, 06 Nov 1994 08:49:37 GMT")] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = format!("/range/{flags}/{SIZE}/{name}");
            let o = fetch(engine, dir.path(), &[&s.url(&path), "--sha256"]);
            assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
            assert_eq!(files(dir.path()), only(name, SIZE, 1), "exact file, no .part or .state");
            let reqs = s.requests(&path);
            assert_eq!(reqs.len(), 2, "{reqs:?}");
            assert_eq!((reqs[0].range.as_deref(), reqs[0].if_range.as_deref()), (None, None));
            let from = range_start(&reqs[1]);
            assert!(from > 0 && from <= CUT, "{reqs:?}");
            assert_eq!((reqs[1].if_range.as_deref(), reqs[1].status), (Some(validator), 206));
            assert_eq!(s.served(&path), CUT + (SIZE as u64 - from), "only the remainder is sent again");
            let doc = json(&o);
            assert_eq!((doc["files"][0]["resumed_from"].as_u64(), doc["files"][0]["attempts"].as_u64()), (Some(from), Some(2)));
            assert_eq!(doc["files"][0]["sha256"].as_str(), Some(sha256_hex(&versioned(name, SIZE, 1)).as_str()));
        }
    }

    fn a_200_to_a_range_request_starts_over(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = format!("/range/cut=300000,norange/{SIZE}/b.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path)]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("b.bin", SIZE, 1));
        let reqs = s.requests(&path);
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        assert!(range_start(&reqs[1]) > 0);
        assert_eq!(reqs[1].status, 200);
        assert_eq!(s.served(&path), CUT + SIZE as u64);
        assert_eq!(json(&o)["files"][0]["resumed_from"].as_u64(), Some(0));
    }

    fn a_changed_etag_starts_over(engine) {
        let s = TestServer::start();
        // A server honouring If-Range: 200 with the new version.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = format!("/range/cut=300000,etag/{SIZE}/c.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path)]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("c.bin", SIZE, 2), "all of version 2, nothing of version 1");
        let reqs = s.requests(&path);
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        assert_eq!((reqs[1].if_range.as_deref(), reqs[1].status), (Some("\"c.bin-1000000-v1\""), 200));

        // A server ignoring If-Range: a 206 with another ETag is refused
        // and the file asked for again, whole.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = format!("/range/cut=300000,etag206/{SIZE}/d.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path)]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("d.bin", SIZE, 3));
        let reqs = s.requests(&path);
        let seen: Vec<(bool, u16)> = reqs.iter().map(|r| (r.range.is_some(), r.status)).collect();
        assert_eq!(seen, [(false, 200), (true, 206), (false, 200)], "{reqs:?}");
        assert_eq!(json(&o)["files"][0]["attempts"].as_u64(), Some(2), "a restart is not a retry");
    }

    fn a_wrong_content_range_starts_over(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = format!("/range/cut=300000,badcr/{SIZE}/e.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path)]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("e.bin", SIZE, 1));
        let seen: Vec<(bool, u16)> = s.requests(&path).iter().map(|r| (r.range.is_some(), r.status)).collect();
        assert_eq!(seen, [(false, 200), (true, 206), (false, 200)]);
    }

    fn without_a_strong_validator_nothing_is_resumed(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = format!("/range/cut=300000,weak/{SIZE}/w.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path)]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("w.bin", SIZE, 1));
        let reqs = s.requests(&path);
        assert_eq!(reqs.iter().map(|r| r.range.is_some()).collect::<Vec<_>>(), [false, false], "{reqs:?}");
        assert_eq!(s.served(&path), CUT + SIZE as u64);
    }

    fn every_attempt_cut_still_completes_and_c_keeps_a_failed_part(engine) {
        let s = TestServer::start();
        // Each response is cut after 200 kB: five attempts, each resumed.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = format!("/range/cutevery=200000/{SIZE}/f.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path), "--retries", "10"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("f.bin", SIZE, 1));
        let reqs = s.requests(&path);
        assert!(reqs.len() >= 5 && reqs[1..].iter().all(|r| r.status == 206), "{reqs:?}");
        assert_eq!(s.served(&path), SIZE as u64, "no byte sent twice");

        // Out of retries: a truncated body is a failure (exit 1), never a
        // file; without -c nothing is left...
        let dir = tempfile::tempdir().expect("tempdir");
        let path = format!("/range/cutevery=300000/{SIZE}/g.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path), "--retries", "1"]);
        assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
        // ...with -c the .part and its state stay, and the next run goes on.
        let o = fetch(engine, dir.path(), &[&s.url(&path), "--retries", "1", "-c"]);
        assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
        let left: Vec<String> = files(dir.path()).into_keys().collect();
        assert_eq!(left, ["g.bin.part", "g.bin.part.state"]);
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("g.bin.part.state")).expect("state")).expect("JSON");
        assert_eq!(state["url"].as_str(), Some(s.url(&path).as_str()));
        assert_eq!((state["etag"].as_str(), state["total"].as_u64()), (Some("\"g.bin-1000000-v1\""), Some(SIZE as u64)));
        let done = state["done"].as_u64().expect("done");
        assert!(done > 0 && done <= 600_000, "{state}");
        let before = s.served(&path);
        let o = fetch(engine, dir.path(), &[&s.url(&path), "--retries", "5"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("g.bin", SIZE, 1));
        assert_eq!(s.served(&path) - before, SIZE as u64 - done);
    }

    fn ctrl_c_reports_what_was_kept_and_the_hinted_rerun_resumes_and_says_so(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        const BIG: usize = 32 << 20;
        // 256 KiB every 10 ms: some 1.3 s in all.
        let path = format!("/range/chunk=262144,ms=10/{BIG}/big.bin");
        let url = s.url(&path);
        let child = trident()
            .args(["fetch", "-e", engine, "-d", d, "-q", "-f", "json", &url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let t0 = Instant::now();
        while s.served(&path) < 6 << 20 {
            assert!(t0.elapsed() < Duration::from_secs(60), "served only {}", s.served(&path));
            std::thread::sleep(Duration::from_millis(5));
        }
        interrupt(&child);
        let o = child.wait_with_output().expect("wait");
        assert_eq!(code(&o), 130, "{}{}", stdout(&o), stderr(&o));
        let doc = json(&o);
        let file = &doc["files"][0];
        assert_eq!(file["status"].as_str(), Some("interrupted"), "{doc}");
        let kept = file["partial_bytes"].as_u64().expect("partial_bytes");
        assert!(kept > 0 && kept < BIG as u64, "{doc}");
        assert_eq!(doc["summary"]["partial_files"].as_u64(), Some(1), "{doc}");
        let left: Vec<String> = files(dir.path()).into_keys().collect();
        assert_eq!(left, ["big.bin.part", "big.bin.part.state"]);
        assert_eq!(std::fs::metadata(dir.path().join("big.bin.part")).expect("part").len(), kept);

        // The same command again (as text): the line says where it resumed.
        let o = fetch_text(engine, dir.path(), &[&url]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("big.bin", BIG, 1));
        let text = stdout(&o);
        assert!(text.starts_with(&format!("done      big.bin  {BIG} bytes  resumed from {kept}  {url}\n")), "{text}");
        let reqs = s.requests(&path);
        assert_eq!((reqs.len(), range_start(&reqs[1])), (2, kept), "{reqs:?}");
    }

    fn kill_9_mid_download_then_a_rerun_resumes_to_an_exact_file(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        const BIG: usize = 64 << 20;
        // 256 KiB every 10 ms: about 25 MB/s, some 2.6 s in all.
        let path = format!("/range/chunk=262144,ms=10/{BIG}/big.bin");
        let url = s.url(&path);
        let mut child = trident()
            .args(["fetch", "-e", engine, "-d", d, "-q", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let t0 = Instant::now();
        while s.served(&path) < 24 << 20 {
            assert!(t0.elapsed() < Duration::from_secs(60), "served only {}", s.served(&path));
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        assert!(!child.wait().expect("wait").success());
        let part = dir.path().join("big.bin.part");
        wait_unlocked(&part);
        // A worker process dies an instant after its parent, and the server
        // may still push a few chunks until it sees the connection gone:
        // count the first transfer only once it has stopped growing.
        let mut first = s.served(&path);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = s.served(&path);
            if now == first {
                break;
            }
            first = now;
        }
        assert!(first < BIG as u64, "killed mid-way: {first}");
        // A kill during a checkpoint may leave the state's temporary file
        // (the state itself is replaced atomically); the rerun removes it.
        let left: Vec<String> =
            files(dir.path()).into_keys().filter(|n| n != "big.bin.part.state.tmp").collect();
        assert_eq!(left, ["big.bin.part", "big.bin.part.state"], "no final file");

        let o = fetch(engine, dir.path(), &[&url]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("big.bin", BIG, 1), "byte-exact, nothing left over");
        let reqs = s.requests(&path);
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        let from = range_start(&reqs[1]);
        assert!(from >= 4 << 20, "at least one checkpoint kept: {from}");
        let second = s.served(&path) - first;
        assert_eq!(second, BIG as u64 - from);
        assert!(second < BIG as u64, "fewer bytes the second time");
        assert_eq!(json(&o)["files"][0]["resumed_from"].as_u64(), Some(from));
    }
}

/// Small whole bodies (at most 64 KiB) are received in memory and written
/// by the committer; one cut on the way still becomes a part file that is
/// continued with Range, and kept with -c.
const SMALL: usize = 40_000;

engine_tests! {
    fn a_cut_small_body_still_resumes_and_c_keeps_it(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = format!("/range/cut=15000/{SMALL}/s.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path), "--sha256"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("s.bin", SMALL, 1), "exact file, no .part or .state");
        let reqs = s.requests(&path);
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        let from = range_start(&reqs[1]);
        assert!(from > 0 && from <= 15_000, "{reqs:?}");
        assert_eq!((reqs[1].if_range.as_deref(), reqs[1].status), (Some("\"s.bin-40000-v1\""), 206));
        assert_eq!(s.served(&path), 15_000 + (SMALL as u64 - from), "only the remainder is sent again");
        let doc = json(&o);
        assert_eq!(doc["files"][0]["resumed_from"].as_u64(), Some(from));
        assert_eq!(doc["files"][0]["sha256"].as_str(), Some(sha256_hex(&versioned("s.bin", SMALL, 1)).as_str()));

        // Every response cut, out of retries: with -c the part file stays.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = format!("/range/cutevery=15000/{SMALL}/k.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path), "--retries", "1", "-c"]);
        assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
        let left: Vec<String> = files(dir.path()).into_keys().collect();
        assert_eq!(left, ["k.bin.part", "k.bin.part.state"]);
        let o = fetch(engine, dir.path(), &[&s.url(&path), "--retries", "5"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), only("k.bin", SMALL, 1));

        // Many small files at once, written by the committer: all exact.
        let dir = tempfile::tempdir().expect("tempdir");
        let urls: Vec<String> = (0..60).map(|i| s.url(&format!("/range/-/{}/m{i}.bin", 1000 + 500 * i))).collect();
        let mut args: Vec<&str> = urls.iter().map(String::as_str).collect();
        args.extend(["-j", "8"]);
        let o = fetch(engine, dir.path(), &args);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        let got = files(dir.path());
        assert_eq!(got.len(), 60, "{got:?}");
        for i in 0..60 {
            let name = format!("m{i}.bin");
            assert_eq!(got[&name], sha256_hex(&versioned(&name, 1000 + 500 * i, 1)), "{name}");
        }
    }
}
