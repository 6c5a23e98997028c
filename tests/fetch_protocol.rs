//! HTTP behaviour `trident fetch --help` advertises, on every engine:
//! every redirect status it follows (always with a GET without a body,
//! named after the URL given), 429 retried after what `Retry-After` asks
//! (seconds or an HTTP date), and `-i -` reading the URL list from stdin.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use crate::engine_tests;
use crate::fetch_util::{code, fetch, fetch_json, files, json, want};
use crate::http_server::TestServer;
use crate::util::{stderr, stdout, trident};

engine_tests! {
    fn every_redirect_status_is_followed_with_a_get_without_a_body(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let codes = [301, 302, 303, 307, 308];
        let urls: Vec<String> = codes.iter().map(|c| s.url(&format!("/moved/{c}/{}/r{c}.bin", 1000 + c))).collect();
        let mut args: Vec<&str> = urls.iter().map(String::as_str).collect();
        args.extend(["--retries", "0"]);
        let o = fetch(engine, dir.path(), &args);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        // Named after the URL given; the body is the target's.
        let expected: Vec<(String, usize)> = codes.iter().map(|c| (format!("r{c}.bin"), 1000 + *c as usize)).collect();
        let expected: Vec<(&str, &str, usize)> = expected.iter().map(|(n, size)| (n.as_str(), n.as_str(), *size)).collect();
        assert_eq!(files(dir.path()), want(&expected));
        for c in codes {
            let target = format!("/only-get/{}/r{c}.bin", 1000 + c);
            assert_eq!((s.hits(&format!("/moved/{c}/{}/r{c}.bin", 1000 + c)), s.hits(&target)), (1, 1), "{c}");
        }
    }

    fn too_many_requests_is_retried_after_retry_after(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // Delay-seconds.
        let t0 = Instant::now();
        let o = fetch_json(engine, dir.path(), &[&s.url("/too-many/2/3000/s.bin?1")]);
        let took = t0.elapsed();
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(s.hits("/too-many/2/3000/s.bin"), 3, "two 429s, then the file");
        assert_eq!(json(&o)["files"][0]["attempts"], 3);
        assert!(took >= Duration::from_secs(2), "Retry-After: 1, twice, but done in {took:?}");

        // An HTTP date about 2 s ahead (whole seconds: at least 1 s away).
        let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
        let query = when.replace(' ', "%20").replace(',', "%2C");
        let t0 = Instant::now();
        let o = fetch(engine, dir.path(), &[&s.url(&format!("/too-many/1/2000/d.bin?{query}"))]);
        let took = t0.elapsed();
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(s.hits("/too-many/1/2000/d.bin"), 2);
        assert!(took >= Duration::from_secs(1), "Retry-After: {when}, but done in {took:?}");
        assert_eq!(files(dir.path()), want(&[("s.bin", "s.bin", 3000), ("d.bin", "d.bin", 2000)]));

        // Without retries left, a 429 fails the download (exit 1).
        let o = fetch(engine, dir.path(), &[&s.url("/too-many/5/10/n.bin?0"), "--retries", "1"]);
        assert_eq!(code(&o), 1, "{}", stdout(&o));
        assert!(stdout(&o).contains("HTTP 429 Too Many Requests (gave up after 2 attempt(s))"), "{}", stdout(&o));
        assert_eq!(s.hits("/too-many/5/10/n.bin"), 2);
    }

    fn the_url_list_can_come_from_stdin(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        let list = format!(
            "# from stdin\n{}\n{}\n  out=renamed.bin\n\n{}\n",
            s.url("/file/100/a.bin"),
            s.url("/chunked/2000/b.bin"),
            s.url("/status/404/c.bin")
        );
        let mut child = trident()
            .args(["fetch", "-e", engine, "-d", d, "--retry-wait", "10ms", "-i", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child.stdin.take().expect("stdin").write_all(list.as_bytes()).expect("write the list");
        let o = child.wait_with_output().expect("wait");
        assert_eq!(code(&o), 1, "the 404: {}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), want(&[("a.bin", "a.bin", 100), ("renamed.bin", "b.bin", 2000)]));
        assert!(stdout(&o).contains("HTTP 404 Not Found"), "{}", stdout(&o));
        assert!(stdout(&o).trim_end().lines().last().is_some_and(|l| l.starts_with("Fetched 2 of 3 URLs")), "{}", stdout(&o));
    }
}
