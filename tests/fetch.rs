//! `trident fetch` against a real HTTP server on 127.0.0.1 (see
//! http_server.rs), through the real binary, on every engine. Every case
//! checks the exact files left in the directory (names and SHA-256) and the
//! exit code.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::engine_tests;
use crate::fetch_util::{code, fetch, files, interrupt, json, want};
use crate::http_server::{TestServer, content, sha256_hex};
use crate::util::{run, stderr, stdout};

engine_tests! {
    fn downloads_many_files_exactly(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let sizes = [0usize, 1, 4095, 4096, 65_537, 1 << 20];
        let mut urls = Vec::new();
        let mut expected = Vec::new();
        let names: Vec<String> = (0..sizes.len() * 4).map(|i| format!("f{i}.bin")).collect();
        for (i, name) in names.iter().enumerate() {
            let size = sizes[i % sizes.len()];
            let kind = if i % 2 == 0 { "file" } else { "chunked" };
            urls.push(s.url(&format!("/{kind}/{size}/{name}")));
            expected.push((name.as_str(), name.as_str(), size));
        }
        let mut args: Vec<&str> = urls.iter().map(String::as_str).collect();
        args.extend(["-j", "5"]);
        let o = fetch(engine, dir.path(), &args);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(files(dir.path()), want(&expected));
        let text = stdout(&o);
        assert_eq!(text.lines().filter(|l| l.starts_with("done ")).count(), names.len(), "{text}");
        let summary = text.lines().last().unwrap_or_default();
        assert!(summary.starts_with("Fetched 24 of 24 URLs ("), "{summary}");
        assert!(summary.ends_with(&format!("with {engine} (-j 5)")), "{summary}");
    }

    fn json_report_in_input_order(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (s.url("/file/3000/a.txt"), s.url("/status/404/b.txt"));
        let o = fetch(engine, dir.path(), &[&a, &b, "-f", "json", "--sha256"]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let doc = json(&o);
        let f = doc["files"].as_array().expect("files");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0]["index"], 0);
        assert_eq!(f[0]["url"], a.as_str());
        assert_eq!(f[0]["status"], "done");
        assert_eq!(f[0]["name"], "a.txt");
        assert_eq!(f[0]["bytes"], 3000);
        assert_eq!(f[0]["sha256"], sha256_hex(&content("a.txt", 3000)).as_str());
        assert_eq!(f[0]["http_status"], 200);
        assert_eq!(f[0]["attempts"], 1);
        assert_eq!(f[1]["status"], "failed");
        assert_eq!(f[1]["name"], serde_json::Value::Null);
        assert_eq!(f[1]["http_status"], 404);
        assert_eq!(f[1]["error"], "HTTP 404 Not Found");
        let summary = &doc["summary"];
        assert_eq!(summary["engine"], engine);
        assert_eq!(summary["urls"], 2);
        assert_eq!(summary["bytes"], 3000);
        assert_eq!(summary["counts"]["done"], 1);
        assert_eq!(summary["counts"]["failed"], 1);
        assert_eq!(summary["exit_code"], 1);
        assert_eq!(files(dir.path()), want(&[("a.txt", "a.txt", 3000)]));
    }

    fn not_found_and_forbidden_are_not_retried(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let o = fetch(engine, dir.path(), &[&s.url("/status/404/x"), &s.url("/status/403/y"), &s.url("/status/410/z")]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        for p in ["/status/404/x", "/status/403/y", "/status/410/z"] {
            assert_eq!(s.hits(p), 1, "{p}");
        }
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
        let text = stdout(&o);
        assert!(text.contains("HTTP 404 Not Found") && text.contains("HTTP 403 Forbidden"), "{text}");
    }

    fn truncated_bodies_are_retried_and_never_saved(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let o = fetch(engine, dir.path(), &[&s.url("/truncated/100000/t.bin"), "--retries", "2", "-f", "json"]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert_eq!(s.hits("/truncated/100000/t.bin"), 3, "1 attempt + 2 retries");
        assert!(files(dir.path()).is_empty(), "no final file and no .part left: {:?}", files(dir.path()));
        let r = &json(&o)["files"][0];
        assert_eq!((r["status"].as_str(), r["attempts"].as_u64()), (Some("failed"), Some(3)));
        assert!(r["error"].as_str().unwrap_or_default().contains("gave up after 3 attempt(s)"), "{r}");
    }

    fn a_retry_after_a_cut_body_saves_the_whole_file(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let o = fetch(engine, dir.path(), &[&s.url("/flaky/2/200000/f.bin"), "--retries", "3", "-f", "json"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(s.hits("/flaky/2/200000/f.bin"), 3);
        assert_eq!(files(dir.path()), want(&[("f.bin", "f.bin", 200_000)]));
        assert_eq!(json(&o)["files"][0]["attempts"], 3);
    }

    fn service_unavailable_honours_retry_after(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let t0 = Instant::now();
        let o = fetch(engine, dir.path(), &[&s.url("/busy/1/1/5000/b.bin"), "-f", "json"]);
        let took = t0.elapsed();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(s.hits("/busy/1/1/5000/b.bin"), 2);
        assert!(took >= Duration::from_secs(1), "waited {took:?}, Retry-After said 1 s");
        assert_eq!(files(dir.path()), want(&[("b.bin", "b.bin", 5000)]));
        assert_eq!(json(&o)["files"][0]["attempts"], 2);

        // A Retry-After beyond the retry time budget ends the download at once.
        let t0 = Instant::now();
        let o = fetch(engine, dir.path(), &[&s.url("/busy/5/3600/10/late.bin"), "--retry-max-time", "5s"]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(t0.elapsed() < Duration::from_secs(60), "did not wait an hour");
        assert_eq!(s.hits("/busy/5/3600/10/late.bin"), 1, "no retry");
        assert!(stdout(&o).contains("retry in 3600 s"), "{}", stdout(&o));
        assert_eq!(files(dir.path()), want(&[("b.bin", "b.bin", 5000)]));
    }

    fn redirects_are_followed_and_named_from_the_original_url(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // 3 hops + the relative one to /file: 4 redirects; 9 + 1 = 10 is the limit.
        let o = fetch(engine, dir.path(), &[&s.url("/redirect/3/7000/alias.bin"), &s.url("/redirect/9/10/ten.bin")]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(dir.path()), want(&[("alias.bin", "target.bin", 7000), ("ten.bin", "target.bin", 10)]));

        let o = fetch(engine, dir.path(), &[&s.url("/redirect/10/10/eleven.bin")]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(stdout(&o).contains("more than 10 redirects"), "{}", stdout(&o));
        assert_eq!(s.hits("/redirect/10/10/eleven.bin"), 1, "a redirect loop is not retried");
        assert_eq!(files(dir.path()).len(), 2);
    }

    fn redirect_to_a_local_file_is_refused(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let o = fetch(engine, dir.path(), &[&s.url("/to-file/passwd")]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(stdout(&o).contains("redirect to file: refused"), "{}", stdout(&o));
        assert_eq!(s.hits("/to-file/passwd"), 1);
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    fn a_stalled_body_times_out_and_a_slow_one_completes(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // 4 pieces 100 ms apart: slow but never silent for 2 s.
        let o = fetch(engine, dir.path(), &[&s.url("/slow/4000/1000/100/slow.bin"), "--timeout", "2s"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(files(dir.path()), want(&[("slow.bin", "slow.bin", 4000)]));

        // Silent for 1.5 s before each piece: past a 300 ms timeout, every attempt.
        let args = [s.url("/slow/4000/2000/1500/stall.bin"), "--timeout".into(), "300ms".into(), "--retries".into(), "1".into()];
        let o = fetch(engine, dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert_eq!(s.hits("/slow/4000/2000/1500/stall.bin"), 2);
        assert_eq!(files(dir.path()), want(&[("slow.bin", "slow.bin", 4000)]), "no stall.bin, no .part");
    }

    fn checksum_match_saves_and_mismatch_exits_3_without_a_file(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let good = format!("sha256={}", sha256_hex(&content("c.bin", 9999)));
        let o = fetch(engine, dir.path(), &[&s.url("/file/9999/c.bin"), "--checksum", &good]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let bad = format!("sha256={}", sha256_hex(b"something else"));
        let o = fetch(engine, dir.path(), &[&s.url("/file/9999/d.bin"), "--checksum", &bad]);
        assert_eq!(code(&o), 3, "{}", stderr(&o));
        assert!(stdout(&o).contains("SHA-256 mismatch"), "{}", stdout(&o));
        assert_eq!(s.hits("/file/9999/d.bin"), 1, "a mismatch is not retried");
        assert_eq!(files(dir.path()), want(&[("c.bin", "c.bin", 9999)]));
    }

    fn names_are_sanitised_and_stay_in_the_directory(engine) {
        let s = TestServer::start();
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a").join("dl");
        let paths = [
            "/file/11/..%2F..%2Fescape1.txt",
            "/file/12/%2e%2e%2fescape2.txt",
            "/file/13/..%5C..%5Cescape3.txt",
            "/file/14/%2Fetc%2Fescape4",
            "/file/15/.hidden",
            "/file/16/a%00b%0Ac",
            "/file/17/",
        ];
        let urls: Vec<String> = paths.iter().map(|p| s.url(p)).collect();
        let mut args: Vec<&str> = urls.iter().map(String::as_str).collect();
        args.extend(["-j", "1"]);
        let o = fetch(engine, &dir, &args);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(files(&dir), want(&[
            ("escape1.txt", "..%2F..%2Fescape1.txt", 11),
            ("escape2.txt", "%2e%2e%2fescape2.txt", 12),
            ("escape3.txt", "..%5C..%5Cescape3.txt", 13),
            ("escape4", "%2Fetc%2Fescape4", 14),
            ("hidden", ".hidden", 15),
            ("a_b_c", "a%00b%0Ac", 16),
            ("index.html", "", 17),
        ]));
        let top: Vec<_> = std::fs::read_dir(root.path()).expect("root").map(|e| e.expect("e").file_name()).collect();
        assert_eq!(top, ["a"], "nothing written outside the download directory");
        assert_eq!(std::fs::read_dir(root.path().join("a")).expect("a").count(), 1);
    }

    fn collisions_number_overwrite_or_skip(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("x.tar.gz"), b"mine").expect("write");
        let url = s.url("/file/500/x.tar.gz");
        let o = fetch(engine, dir.path(), &[&url, &url]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let mine = sha256_hex(b"mine");
        let mut expected = want(&[("x.1.tar.gz", "x.tar.gz", 500), ("x.2.tar.gz", "x.tar.gz", 500)]);
        expected.insert("x.tar.gz".into(), mine.clone());
        assert_eq!(files(dir.path()), expected);

        let o = fetch(engine, dir.path(), &[&url, "--no-clobber"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(stdout(&o).starts_with("skipped   x.tar.gz"), "{}", stdout(&o));
        assert_eq!(s.hits("/file/500/x.tar.gz"), 2, "skipped without a request");
        assert_eq!(files(dir.path()), expected);

        let o = fetch(engine, dir.path(), &[&url, "--overwrite"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        expected.insert("x.tar.gz".into(), sha256_hex(&content("x.tar.gz", 500)));
        assert_eq!(files(dir.path()), expected);
    }

    fn planted_symlinks_are_not_followed(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        std::os::unix::fs::symlink(&victim, dir.path().join("s.bin")).expect("symlink");
        std::os::unix::fs::symlink(&victim, dir.path().join("s.bin.part")).expect("symlink");
        let url = s.url("/file/300/s.bin");
        let o = fetch(engine, dir.path(), &[&url]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let link = format!("-> {}", victim.display());
        let mut expected = want(&[("s.1.bin", "s.bin", 300)]);
        expected.insert("s.bin".into(), link.clone());
        expected.insert("s.bin.part".into(), link.clone());
        assert_eq!(files(dir.path()), expected);

        let o = fetch(engine, dir.path(), &[&url, "--overwrite"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        expected.insert("s.bin".into(), sha256_hex(&content("s.bin", 300)));
        assert_eq!(files(dir.path()), expected, "the symlink itself is replaced");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
        assert_eq!(files(outside.path()).len(), 1);
    }

    fn input_file_with_comments_and_a_bad_line(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let list_dir = tempfile::tempdir().expect("tempdir");
        let list = list_dir.path().join("urls.txt");
        let text = format!(
            "# downloads\n{}\n\n   {}   \nftp://example.invalid/x\n# end\n",
            s.url("/file/100/one.txt"),
            s.url("/file/200/two.txt"),
        );
        std::fs::write(&list, text).expect("write list");
        let o = fetch(engine, dir.path(), &["-i", list.to_str().expect("utf-8"), "-f", "json"]);
        assert_eq!(code(&o), 2, "a bad URL in the list: {}", stderr(&o));
        let doc = json(&o);
        let statuses: Vec<&str> = doc["files"].as_array().expect("files").iter().map(|f| f["status"].as_str().unwrap_or("")).collect();
        assert_eq!(statuses, ["done", "done", "bad-url"]);
        assert_eq!(files(dir.path()), want(&[("one.txt", "one.txt", 100), ("two.txt", "two.txt", 200)]));
    }

    fn the_most_severe_failure_sets_the_exit_code(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let list_dir = tempfile::tempdir().expect("tempdir");
        let list = list_dir.path().join("urls.txt");
        std::fs::write(&list, format!("{}\nnot a url\n{}\n", s.url("/status/404/a"), s.url("/file/10/ok"))).expect("write");
        let o = fetch(engine, dir.path(), &["-i", list.to_str().expect("utf-8")]);
        assert_eq!(code(&o), 2, "bad input (2) beats a failed download (1): {}", stdout(&o));
        assert_eq!(files(dir.path()), want(&[("ok", "ok", 10)]));

        // A final name that cannot be replaced (a directory, with
        // --overwrite): a local error, 4, beats the 404's 1.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("c")).expect("mkdir");
        let o = fetch(engine, dir.path(), &[&s.url("/status/404/b"), &s.url("/file/10/c"), "--overwrite"]);
        assert_eq!(code(&o), 4, "{}", stdout(&o));
        assert!(stdout(&o).contains("local-error"), "{}", stdout(&o));
        assert_eq!(files(dir.path()), BTreeMap::from([("c".to_string(), "dir".to_string())]), "no .part left");
    }

    fn ctrl_c_stops_downloads_and_leaves_no_partial_final_file(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        let child = crate::util::trident()
            .args(["fetch", "-e", engine, "-d", d, "-q", "-j", "1", &s.url("/slow/40000/1000/100/big.bin"), &s.url("/file/10/later.bin")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // The signal goes once the download is in flight: the server got
        // its request (the 40,000 bytes take 4 s to come).
        let t0 = Instant::now();
        while s.hits("/slow/40000/1000/100/big.bin") == 0 {
            assert!(t0.elapsed() < Duration::from_secs(60), "the download never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        interrupt(&child);
        let o = child.wait_with_output().expect("wait");
        assert_eq!(code(&o), 130, "{}{}", stdout(&o), stderr(&o));
        let text = stdout(&o);
        assert!(text.starts_with("interrupted "), "{text}");
        assert!(
            text.trim_end()
                .ends_with("1 interrupted; interrupted, later URLs not started; rerun the same command to fetch the rest"),
            "{text}"
        );
        assert_eq!(s.hits("/file/10/later.bin"), 0);
        let left = files(dir.path());
        assert!(!left.contains_key("big.bin"), "{left:?}");
        if engine != "processes" {
            // In-process downloads stop and clean up; a killed worker
            // process may leave its .part behind (never a final file).
            assert!(left.is_empty(), "{left:?}");
        }
    }

    fn result_lines_reach_a_pipe_while_the_run_goes_on_and_a_closed_pipe_stops_it(engine) {
        use std::io::BufRead;
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        // 20 files of about 0.2 s each, one at a time: a run of ~4 s.
        let urls: Vec<String> = (0..20).map(|i| s.url(&format!("/slow/3000/1000/100/f{i:02}.bin"))).collect();
        let last = "/slow/3000/1000/100/f19.bin";
        let mut child = crate::util::trident()
            .args(["fetch", "-e", engine, "-d", d, "-q", "-j", "1"])
            .args(&urls)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        out.read_line(&mut first).expect("read a line");
        assert!(first.starts_with("done      f00.bin  3000 bytes  http://"), "{first:?}");
        // Not held back until the end: the last file is not even asked for.
        assert_eq!(s.hits(last), 0, "the first line came only at the end");
        // The reader goes away: the next write fails, no more downloads
        // start, and the run ends quietly (exit 0, as ripgrep does).
        drop(out);
        let o = child.wait_with_output().expect("wait");
        assert_eq!((code(&o), stderr(&o).as_str()), (0, ""));
        assert_eq!(s.hits(last), 0, "downloads went on after the pipe closed");
        let left = files(dir.path());
        assert!(left.len() < 20 && left.contains_key("f00.bin"), "{left:?}");
        assert!(left.keys().all(|name| !name.ends_with(".part")), "{left:?}");
    }

    fn connections_are_kept_alive(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let urls: Vec<String> = (0..8).map(|i| s.url(&format!("/file/{}/k{i}", 1000 * i))).collect();
        let mut args: Vec<&str> = urls.iter().map(String::as_str).collect();
        args.extend(["-j", "1"]);
        let o = fetch(engine, dir.path(), &args);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(files(dir.path()).len(), 8);
        // Connections are pooled per thread: the threads engine may run the
        // next download on another pool thread while earlier ones wait for
        // their files to be synced (up to 3 x -j of those), each thread
        // keeping its connection. 8 connections would be none reused.
        let most = if engine == "threads" { 4 } else { 1 };
        assert!(s.connections() <= most, "8 files, {} connections (at most {most})", s.connections());
    }

    fn bad_command_lines_exit_2_before_any_request(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let url = s.url("/file/10/x");
        let cases: &[&[&str]] = &[
            &[],
            &["ftp://127.0.0.1/x"],
            &["not a url"],
            &[&url, "--checksum", "md5=00"],
            &[&url, "--checksum", "sha256=abc"],
            &[&url, &url, "--checksum", "sha256=0000000000000000000000000000000000000000000000000000000000000000"],
            &[&url, "--overwrite", "--no-clobber"],
            &[&url, "-j", "0"],
            &[&url, "--timeout", "0"],
            &[&url, "-f", "xml"],
            &[&url, "-i", "/nonexistent/list"],
        ];
        for args in cases {
            let o = fetch(engine, dir.path(), args);
            assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
            let err = stderr(&o);
            // One line, or for a conflict clap's block (it, the usage, the help).
            let lines = if args.contains(&"--no-clobber") { 3 } else { 1 };
            assert!(err.lines().count() == lines && !err.contains("\n\n"), "{lines} line(s): {err}");
            assert!(err.starts_with("trident: "), "{err}");
        }
        // A directory files cannot be created in (even by root: /proc).
        let o = run(&["fetch", "-e", engine, "-d", "/proc", &url]);
        assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).starts_with("trident: cannot write files in /proc: "), "{}", stderr(&o));
        assert_eq!(s.hits("/file/10/x"), 0);
        assert!(files(dir.path()).is_empty());
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let o = run(&["fetch", "--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for line in [
        "130  interrupted",
        "4  a file could not be written",
        "3  checksum mismatch",
        "2  bad input",
        "1  some downloads failed",
        "0  every URL was saved",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
}

// Group commit (src/fetch/commit.rs): finished downloads are synced and
// renamed in batches by one thread per process.
engine_tests! {
    fn collisions_in_one_batch_get_numbered_names_and_reports_say_which(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // 24 different bodies, all named same.bin, finishing together.
        let urls: Vec<String> = (0..24).map(|i| s.url(&format!("/file/{}/same.bin", 1000 + i))).collect();
        let mut args: Vec<&str> = urls.iter().map(String::as_str).collect();
        args.extend(["-j", "24", "-f", "json", "--sha256"]);
        let o = fetch(engine, dir.path(), &args);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let on_disk = files(dir.path());
        let mut names: Vec<String> = on_disk.keys().cloned().collect();
        names.sort();
        let mut want_names: Vec<String> =
            std::iter::once("same.bin".to_string()).chain((1..24).map(|n| format!("same.{n}.bin"))).collect();
        want_names.sort();
        assert_eq!(names, want_names, "every body saved, none replaced");
        let mut bodies: Vec<String> = on_disk.values().cloned().collect();
        bodies.sort();
        let mut want_bodies: Vec<String> = (0..24).map(|i| sha256_hex(&content("same.bin", 1000 + i))).collect();
        want_bodies.sort();
        assert_eq!(bodies, want_bodies);
        // The report names the file each URL actually went to.
        for f in json(&o)["files"].as_array().expect("files") {
            let name = f["name"].as_str().expect("name");
            let size = f["bytes"].as_u64().expect("bytes") as usize;
            assert_eq!(on_disk[name], sha256_hex(&content("same.bin", size)), "{name}");
            assert_eq!(f["sha256"].as_str(), Some(on_disk[name].as_str()));
        }
    }

    fn kill_9_during_many_commits_leaves_only_complete_files(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        const FILES: usize = 400;
        const SIZE: usize = 16 << 10;
        // 4 KiB every 5 ms: 20 ms a file, about 0.25 s at -j 32 in all.
        let list: String = (0..FILES).map(|i| s.url(&format!("/slow/{SIZE}/4096/5/f{i:03}.bin")) + "\n").collect();
        let list_file = tempfile::NamedTempFile::new().expect("list");
        std::fs::write(list_file.path(), list).expect("write list");
        let d = dir.path().to_str().expect("utf-8");
        let l = list_file.path().to_str().expect("utf-8");
        // Final files only (part files come and go while it runs), by
        // name: SHA-256.
        let finals = || {
            std::fs::read_dir(dir.path())
                .expect("read dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| !n.contains(".part"))
                .map(|n| {
                    let sha = sha256_hex(&std::fs::read(dir.path().join(&n)).expect("read"));
                    (n, sha)
                })
                .collect::<BTreeMap<_, _>>()
        };
        let mut child = crate::util::trident()
            .args(["fetch", "-e", engine, "-d", d, "-q", "-j", "32", "-i", l])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let t0 = Instant::now();
        while finals().len() < 40 {
            assert!(t0.elapsed() < Duration::from_secs(60), "only {} files saved", finals().len());
            std::thread::sleep(Duration::from_millis(2));
        }
        let workers = crate::fetch_util::descendants(child.id());
        child.kill().expect("SIGKILL");
        assert!(!child.wait().expect("wait").success());
        // Worker processes die an instant after their parent.
        crate::fetch_util::wait_exited(&workers);
        let saved = finals();
        assert!(saved.len() < FILES, "killed mid-way: {} saved", saved.len());
        for (name, sha) in &saved {
            assert_eq!(*sha, sha256_hex(&content(name, SIZE)), "{name} is complete");
        }
        // The rest, keeping what was saved: every file complete, once.
        let o = fetch(engine, dir.path(), &["-q", "-j", "32", "--no-clobber", "-i", l]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let all = finals();
        assert_eq!(all.len(), FILES);
        for (name, sha) in &all {
            assert_eq!(*sha, sha256_hex(&content(name, SIZE)), "{name}");
        }
    }
}

/// The async engine runs fetch on one thread unless told otherwise; the
/// runtime with a thread per core gives the same files, including a
/// resumed and a failed download among many.
#[test]
fn async_runtimes_save_the_same_files() {
    let s = TestServer::start();
    let mut urls: Vec<String> = (0..40).map(|i| s.url(&format!("/file/{}/m{i}.bin", 1000 + 37 * i))).collect();
    urls.push(s.url("/status/404/gone.bin"));
    let mut expected: Vec<(String, usize)> = (0..40).map(|i| (format!("m{i}.bin"), 1000 + 37 * i)).collect();
    expected.sort();
    for runtime in ["current-thread", "multi-thread"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<&str> = urls.iter().map(String::as_str).collect();
        args.extend(["-j", "7", "--async-runtime", runtime]);
        let o = fetch("async", dir.path(), &args);
        assert_eq!(code(&o), 1, "{runtime}: {}", stderr(&o));
        let want_files: Vec<(&str, &str, usize)> =
            expected.iter().map(|(n, size)| (n.as_str(), n.as_str(), *size)).collect();
        assert_eq!(files(dir.path()), want(&want_files), "{runtime}");
        assert!(stdout(&o).contains("Fetched 40 of 41 URLs"), "{runtime}: {}", stdout(&o));
    }
    let o = run(&["fetch", "--async-runtime", "both", "http://127.0.0.1:1/x"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

// Workers are started with posix_spawn and check their parent themselves
// (src/engine/processes.rs): a TRIDENT_WORKER_EXE wrapper that runs trident
// as its child, without exec, must not look like a dead dispatcher.
#[test]
fn processes_workers_behind_a_wrapper_that_does_not_exec_still_work() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = tempfile::tempdir().expect("tempdir");
    let wrapper = bin.path().join("worker.sh");
    std::fs::write(&wrapper, format!("#!/bin/sh\n'{}' \"$@\"\n", env!("CARGO_BIN_EXE_trident"))).expect("write");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let urls: Vec<String> = (0..6).map(|i| s.url(&format!("/file/{}/w{i}.bin", 1000 + i))).collect();
    let d = dir.path().to_str().expect("utf-8");
    let o = crate::util::trident()
        .args(["fetch", "-e", "processes", "-j", "3", "-q", "-d", d])
        .args(&urls)
        .env("TRIDENT_WORKER_EXE", &wrapper)
        .output()
        .expect("run");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(files(dir.path()).len(), 6);
}
