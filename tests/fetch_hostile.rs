//! `trident fetch` against a misbehaving server (raw_http.rs), on every
//! engine: a body cut inside a chunk is never saved, the chunk-size line
//! and the response head are bounded before they are buffered (the client
//! hangs up long before the server is done), and `--max-time` and
//! `--max-filesize` end downloads a server would hold or grow for ever.

use std::time::{Duration, Instant};

use crate::engine_tests;
use crate::fetch_util::{code, fetch, files, interrupt};
use crate::raw_http::{CAP, RawServer, Served};
use crate::util::{stderr, stdout};

/// The server's record of the (one) connection for `path`, waited for:
/// the server may still be writing when the client has exited.
fn served_once(s: &RawServer, path: &str) -> Served {
    let t0 = Instant::now();
    loop {
        if let Some(first) = s.served(path).into_iter().next() {
            return first;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the server never finished {path}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

engine_tests! {
    fn a_body_cut_inside_a_chunk_is_never_saved(engine) {
        let s = RawServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let o = fetch(engine, dir.path(), &[&s.url("/cut-chunk/cut.bin"), "--retries", "0", "-c"]);
        let text = stdout(&o);
        assert_eq!(code(&o), 1, "{text}{}", stderr(&o));
        assert!(text.starts_with("failed "), "{text}");
        let left = files(dir.path());
        assert!(!left.contains_key("cut.bin"), "a cut body under its final name: {left:?}");
        // -c keeps what came for a later run (the response has an ETag).
        let part = std::fs::read(dir.path().join("cut.bin.part")).expect("cut.bin.part kept with -c");
        assert!(part.len() >= 100 && part.len() <= 130 && part[..100] == [b'a'; 100], "{} bytes", part.len());
    }

    fn an_endless_chunk_size_line_is_not_buffered(engine) {
        let s = RawServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // The size's digits, a chunk extension, trailer fields: each
        // without an end.
        for path in ["/endless-size/digits.bin", "/endless-ext/ext.bin", "/endless-trailer/trailer.bin"] {
            let o = fetch(engine, dir.path(), &[&s.url(path), "--retries", "0"]);
            assert_eq!(code(&o), 1, "{path}: {}{}", stdout(&o), stderr(&o));
            let served = served_once(&s, path);
            assert!(served.hung_up, "{path}: the client read all {CAP} bytes: {served:?}");
            assert!(served.sent < 8 << 20, "{path}: the client took {} bytes of one line", served.sent);
            assert!(files(dir.path()).is_empty(), "{path}: {:?}", files(dir.path()));
        }
    }

    fn a_huge_response_head_is_refused_before_it_is_buffered(engine) {
        let s = RawServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = "/huge-head/head.bin";
        let o = fetch(engine, dir.path(), &[&s.url(path)]);
        let text = stdout(&o);
        assert_eq!(code(&o), 1, "{text}{}", stderr(&o));
        assert!(text.contains("response header too large"), "{text}");
        let served = served_once(&s, path);
        assert!(served.hung_up, "the client read the whole 10 MB head: {served:?}");
        assert!(served.sent < 5 << 20, "the client took {} bytes of head", served.sent);
        assert_eq!(s.served(path).len(), 1, "not retried");
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }
}

engine_tests! {
    fn ctrl_c_stops_a_silent_and_a_dripping_body_and_keeps_their_parts(engine) {
        let s = RawServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        // Both bodies are 10 MiB long: 200,000 bytes come at once, then
        // nothing (silent), or a byte every 100 s (dripping, never silent
        // for --timeout). Neither may hold Ctrl-C for --timeout or a drip.
        let (silent, drip) = ("/stall/200000/0/silent.bin", "/stall/200000/100000/drip.bin");
        let child = crate::util::trident()
            .args(["fetch", "-e", engine, "-d", d, "-q", "-j", "2", "--timeout", "120s", &s.url(silent), &s.url(drip)])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let t0 = Instant::now();
        // Ctrl-C once both bodies are being written: the server sent their
        // first bytes and the client wrote some of them to its part files.
        let written = |name: &str| std::fs::metadata(dir.path().join(name)).is_ok_and(|m| m.len() > 0);
        while s.sending(silent) < 200_000
            || s.sending(drip) < 200_000
            || !written("silent.bin.part")
            || !written("drip.bin.part")
        {
            assert!(t0.elapsed() < Duration::from_secs(60), "the downloads never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        interrupt(&child);
        let o = child.wait_with_output().expect("wait");
        // A hang guard, far below the 120 s a silent body would hold it.
        assert!(t0.elapsed() < Duration::from_secs(60), "Ctrl-C waited {:?}", t0.elapsed());
        let text = stdout(&o);
        assert_eq!(code(&o), 130, "{text}{}", stderr(&o));
        let stopped: Vec<&str> = text.lines().filter(|l| l.starts_with("interrupted ")).collect();
        assert_eq!(stopped.len(), 2, "{text}");
        // Stopped by the download itself, not by killing its worker; what
        // is kept is said, and how to go on.
        assert!(stopped.iter().all(|l| l.contains(": interrupted (") && l.ends_with(" bytes kept: a rerun resumes)")), "{text}");
        assert!(text.contains("; rerun the same command to resume 2 partial files"), "{text}");
        // What came is kept, with its state, for a later run.
        let left = files(dir.path());
        for name in ["silent.bin", "drip.bin"] {
            assert!(!left.contains_key(name), "{left:?}");
            assert!(left.contains_key(&format!("{name}.part")), "{left:?}");
            assert!(left.contains_key(&format!("{name}.part.state")), "{left:?}");
        }
    }

    fn a_dripping_redirect_body_is_not_drained_for_ever(engine) {
        let s = RawServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // A 302 whose 1,000-byte body comes a byte every 50 ms (50 s): the
        // drain before following it gives up after --timeout in all.
        let path = "/drip-redirect/1000/50/moved.bin";
        let o = fetch(engine, dir.path(), &[&s.url(path), "--timeout", "1s"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(std::fs::read(dir.path().join("moved.bin")).expect("moved.bin"), vec![b'b'; 100]);
        let served = served_once(&s, path);
        assert!(served.hung_up, "the redirect's whole body was drained: {served:?}");
    }

    fn max_time_ends_a_download_that_drips(engine) {
        let s = RawServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // One byte every 50 ms: never silent for --timeout, 50 s in all.
        let o = fetch(engine, dir.path(), &[&s.url("/drip/1000/50/drip.bin"), "--timeout", "5s", "--max-time", "1s"]);
        let text = stdout(&o);
        assert_eq!(code(&o), 1, "{text}{}", stderr(&o));
        assert!(text.starts_with("failed ") && text.contains("--max-time 1s reached"), "{text}");
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    fn max_time_counts_the_retries_and_their_waits(engine) {
        let s = crate::http_server::TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // 503 + Retry-After: 1 every time: without --max-time, 10 retries.
        let path = "/busy/100/1/10/busy.bin";
        let o = fetch(engine, dir.path(), &[&s.url(path), "--retries", "10", "--max-time", "1500ms"]);
        let text = stdout(&o);
        assert_eq!(code(&o), 1, "{text}{}", stderr(&o));
        assert!(text.contains("HTTP 503 Service Unavailable (--max-time 1.5s ends before the next attempt)"), "{text}");
        assert!(s.hits(path) <= 2, "{} attempts in 1.5 s with 1 s between them", s.hits(path));
    }

    fn max_filesize_refuses_a_long_content_length_before_reading_it(engine) {
        let s = RawServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = "/big-length/10000000000/big.bin";
        let o = fetch(engine, dir.path(), &[&s.url(path), "--max-filesize", "1M"]);
        let text = stdout(&o);
        assert_eq!(code(&o), 1, "{text}{}", stderr(&o));
        assert!(text.contains("the file is 10000000000 bytes, over --max-filesize 1048576"), "{text}");
        let served = served_once(&s, path);
        assert!(served.hung_up && served.sent < 8 << 20, "{served:?}");
        assert_eq!(s.served(path).len(), 1, "not retried");
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    fn max_filesize_stops_an_endless_body(engine) {
        let s = RawServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        for path in ["/endless/e.bin", "/endless-chunked/c.bin"] {
            let o = fetch(engine, dir.path(), &[&s.url(path), "--max-filesize", "1M", "-c"]);
            let text = stdout(&o);
            assert_eq!(code(&o), 1, "{path}: {text}{}", stderr(&o));
            assert!(text.contains("the body grew past --max-filesize 1048576 bytes"), "{path}: {text}");
            let served = served_once(&s, path);
            assert!(served.hung_up && served.sent < 8 << 20, "{path}: {served:?}");
            assert_eq!(s.served(path).len(), 1, "{path}: not retried");
            assert!(files(dir.path()).is_empty(), "{path}: nothing kept, even with -c: {:?}", files(dir.path()));
        }
    }
}

#[test]
fn bad_limits_exit_2_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (flag, value) in [
        ("--max-time", "0"),
        ("--max-time", "soon"),
        ("--max-time", "-1s"),
        ("--max-filesize", "1T"),
        ("--max-filesize", "-5"),
        ("--max-filesize", "12"),
    ] {
        let o = fetch("threads", dir.path(), &["http://127.0.0.1:9/x", &format!("{flag}={value}")]);
        assert_eq!(code(&o), 2, "{flag} {value}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(flag) && err.contains(value) && err.lines().count() == 1, "{flag} {value}: {err}");
    }
}
