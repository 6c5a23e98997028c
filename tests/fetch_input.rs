//! `trident fetch -i`: the aria2-style input file (mirrors, `out=`, `dir=`,
//! `checksum=`, bad lines) and the progress lines, through the real binary
//! against the test HTTP server, on every engine.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::engine_tests;
use crate::fetch_util::{code, want};
use crate::http_server::{TestServer, content, sha256_hex};
use crate::util::{run, stderr, stdout};

/// Relative path → SHA-256 of every file under `dir` (directories walked;
/// a directory left empty shows as `DIR/`).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut empty = true;
        for e in std::fs::read_dir(dir).expect("read dir") {
            empty = false;
            let path = e.expect("entry").path();
            let rel = path.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path).expect("meta");
            if meta.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, sha256_hex(&std::fs::read(&path).expect("read")));
            }
        }
        if empty && dir != root {
            out.insert(format!("{}/", dir.strip_prefix(root).expect("under root").display()), String::new());
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Writes `text` as `list.txt` in a new directory (kept alive by the guard).
fn list(text: &str) -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().expect("tempdir");
    let path = d.path().join("list.txt");
    std::fs::write(&path, text).expect("write list");
    let path = path.to_str().expect("utf-8").to_string();
    (d, path)
}

fn fetch(engine: &str, dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_str().expect("utf-8 dir");
    let mut all = vec!["fetch", "-e", engine, "-d", dir, "--retry-wait", "10ms", "--retries", "1"];
    all.extend_from_slice(args);
    run(&all)
}

/// `trident ARGS` with stdout and stderr on a pseudo-terminal (util-linux
/// `script`); returns what the terminal received and the exit code.
fn in_pty(args: &[&str]) -> (String, i32) {
    let bin = env!("CARGO_BIN_EXE_trident");
    let command = std::iter::once(bin).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    let o = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    (String::from_utf8_lossy(&o.stdout).into_owned(), code(&o))
}

engine_tests! {
    fn input_file_with_mirrors_and_options(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("renamed.bin"), b"old").expect("write");
        let dead = format!("http://127.0.0.1:{}/a.bin", dead_port());
        let c_sum = sha256_hex(&content("c.bin", 300));
        let d_sum = sha256_hex(&content("d-alt.bin", 50));
        let (_guard, path) = list(&format!(
            "# mirrors: a dead port, then a 404, before the good one\n\
             {dead}\t{a}\n\
             {b404}\t{b}\n\
             \n\
             {c}\n\
             \tout=../../escape/c-out.bin\n\
             \tdir=sub/deeper\n\
             \t# a comment among the options\n\
             \tchecksum=sha-256={c_sum}\n\
             {f}\n\
             \x20 out=renamed.bin\n\
             # the first mirror's body does not match the checksum, the second's does\n\
             {d}\t{d_alt}\n\
             \x20 checksum=sha-256={d_sum}\n",
            a = s.url("/file/100/a.bin"),
            b404 = s.url("/status/404/b.bin"),
            b = s.url("/file/200/b-mirror.bin"),
            c = s.url("/file/300/c.bin"),
            f = s.url("/file/70/f.bin"),
            d = s.url("/file/50/d.bin"),
            d_alt = s.url("/file/50/d-alt.bin"),
        ));
        let o = fetch(engine, dir.path(), &["-i", &path, "-j", "3"]);
        assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
        let mut expected = want(&[
            ("a.bin", "a.bin", 100),
            // Named after the entry's first URL, whichever mirror served it.
            ("b.bin", "b-mirror.bin", 200),
            ("sub/deeper/c-out.bin", "c.bin", 300),
            ("renamed.1.bin", "f.bin", 70),
            ("d.bin", "d-alt.bin", 50),
        ]);
        expected.insert("renamed.bin".into(), sha256_hex(b"old"));
        assert_eq!(tree(dir.path()), expected, "no staging directory or .part left");
        assert_eq!((s.hits("/status/404/b.bin"), s.hits("/file/200/b-mirror.bin")), (1, 1));
        let text = stdout(&o);
        assert!(text.contains("Fetched 5 of 5 URLs"), "{text}");
    }

    fn urls_without_a_scheme_are_http_on_the_command_line_and_in_a_list(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let bare = |path: &str| s.url(path).strip_prefix("http://").expect("an http:// server").to_string();
        let (_guard, path) = list(&format!("{}\n", bare("/file/200/b.bin")));
        let o = fetch(engine, dir.path(), &[&bare("/file/100/a.bin"), "-i", &path]);
        assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
        assert_eq!(tree(dir.path()), want(&[("a.bin", "a.bin", 100), ("b.bin", "b.bin", 200)]));
        let text = stdout(&o);
        assert!(text.contains(&format!("  {}\n", s.url("/file/100/a.bin"))), "reported as http://: {text}");
        assert!(text.contains(&format!("  {}\n", s.url("/file/200/b.bin"))), "reported as http://: {text}");

        // Still bad input (exit 2, nothing asked): a port out of range, a
        // bare word, another scheme.
        let port = s.url("").rsplit(':').next().expect("port").to_string();
        for bad in ["127.0.0.1:99999/x.bin", "x.bin", "file:/etc/passwd", &format!("127.0.0.1:{port}x/x.bin")] {
            let o = fetch(engine, dir.path(), &[bad]);
            assert_eq!(code(&o), 2, "{bad}: {}", stderr(&o));
            assert!(stderr(&o).contains("URL"), "{bad}: {}", stderr(&o));
        }
        assert_eq!(s.log().len(), 2, "only the two good URLs were asked for");
    }

    fn input_file_bad_lines_and_checksum_exit_codes(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let wrong = sha256_hex(b"something else");
        let (_guard, path) = list(&format!(
            "{d}\n  checksum=sha-256={wrong}\n{e}\n  split=5\n  out=x\nnot-a-url\n  out=orphan\n{g}\t{g404}\n",
            d = s.url("/file/50/d.bin"),
            e = s.url("/file/60/e.bin"),
            g = s.url("/file/80/g.bin"),
            g404 = s.url("/status/404/g2.bin"),
        ));
        let o = fetch(engine, dir.path(), &["-i", &path, "-f", "json"]);
        assert_eq!(code(&o), 3, "a checksum mismatch (3) beats bad lines (2): {}", stderr(&o));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        let files = doc["files"].as_array().expect("files");
        let got: Vec<(&str, &str)> = files
            .iter()
            .map(|f| (f["status"].as_str().unwrap_or(""), f["error"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0].0, "checksum-mismatch");
        assert_eq!(got[1].0, "bad-url");
        assert!(got[1].1.starts_with(&format!("{path}:4: unsupported option split=")), "{}", got[1].1);
        assert_eq!(got[2].0, "bad-url");
        assert!(got[2].1.starts_with(&format!("{path}:6: invalid URL")), "{}", got[2].1);
        assert_eq!(got[3], ("done", ""));
        assert_eq!(tree(dir.path()), want(&[("g.bin", "g.bin", 80)]));
        assert_eq!(s.hits("/file/60/e.bin") + s.hits("/status/404/g2.bin"), 0, "skipped entries and unneeded mirrors");

        // Only bad lines: 2, nothing downloaded.
        let dir = tempfile::tempdir().expect("tempdir");
        let (_guard, path) = list("  out=first\nhttp://\n");
        let o = fetch(engine, dir.path(), &["-i", &path]);
        assert_eq!(code(&o), 2, "{}", stdout(&o));
        assert_eq!(stdout(&o).lines().filter(|l| l.starts_with("bad-url")).count(), 2, "{}", stdout(&o));
        assert!(tree(dir.path()).is_empty());
    }

    fn progress_lines_on_a_terminal_only(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        // 20 pieces 100 ms apart: two seconds of a download in flight.
        let slow = s.url("/slow/200000/10000/100/slow.bin");
        let quick = s.url("/file/1000/quick.bin");
        let (screen, status) = in_pty(&["fetch", "-e", engine, "-d", d, &slow, &quick]);
        assert_eq!(status, 0, "{screen}");
        let lines: Vec<&str> = screen.split(['\r', '\n']).collect();
        assert!(
            lines.iter().any(|l| l.contains("slow.bin") && l.contains("B/s")),
            "a line for the active download:\n{screen:?}"
        );
        // No length known: no % and no ETA to guess.
        assert!(!screen.contains("?%") && !screen.contains("ETA ?"), "{screen:?}");
        assert!(lines.iter().any(|l| l.contains("files 1/2  ")), "the total line:\n{screen:?}");
        assert!(screen.contains("Fetched 2 of 2 URLs"), "{screen:?}");

        // -q on a terminal, and a stderr that is not a terminal: no lines.
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        let slow = s.url("/slow/50000/10000/100/slow2.bin");
        let (screen, status) = in_pty(&["fetch", "-q", "-e", engine, "-d", d, &slow]);
        assert_eq!(status, 0, "{screen}");
        assert!(!screen.contains("files ") && !screen.contains("B/s"), "{screen:?}");
        let dir = tempfile::tempdir().expect("tempdir");
        let o = fetch(engine, dir.path(), &[&slow]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(stderr(&o), "", "nothing drawn on a pipe");
    }
}
