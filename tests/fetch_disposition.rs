//! `trident fetch --content-disposition` against the test server's
//! `/disposition/` route, on every engine: the exact files left (names and
//! bytes), nothing created outside DIR, and the exit code.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::engine_tests;
use crate::http_server::{TestServer, content};
use crate::util::{run, stderr};

const SIZE: usize = 3000;

/// Every entry under `root`, recursively, by relative path: file bytes,
/// `None` for directories and symlinks.
fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir") {
            let path = e.expect("entry").path();
            let rel = path.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path).expect("meta");
            if meta.is_dir() {
                stack.push(path);
                out.insert(rel, None);
            } else if meta.is_file() {
                out.insert(rel, Some(std::fs::read(&path).expect("read")));
            } else {
                out.insert(rel, None);
            }
        }
    }
    out
}

/// `/disposition/SIZE/served.bin` answering with `header` (none: `None`).
fn url(s: &TestServer, route: &str, header: Option<&str>) -> String {
    let base = s.url(&format!("/{route}/{SIZE}/served.bin"));
    match header {
        Some(h) => format!("{base}?{}", utf8_percent_encode(h, NON_ALPHANUMERIC)),
        None => base,
    }
}

/// Fetches `url` into `ROOT/a/b/dir` (created by trident) and returns the
/// exit code and the whole tree under ROOT.
fn fetch_nested(engine: &str, url: &str, flag: bool) -> (i32, BTreeMap<String, Option<Vec<u8>>>, Output) {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("a/b/dir");
    let dir = dir.to_str().expect("utf-8 dir");
    let mut args = vec!["fetch", "-e", engine, "-d", dir, "--retry-wait", "10ms", url];
    if flag {
        args.push("--content-disposition");
    }
    let o = run(&args);
    (o.status.code().expect("exited"), tree(root.path()), o)
}

/// The expected tree: the nested directories and `a/b/dir/NAME` with the
/// served bytes.
fn only(name: &str) -> BTreeMap<String, Option<Vec<u8>>> {
    BTreeMap::from([
        ("a".to_string(), None),
        ("a/b".to_string(), None),
        ("a/b/dir".to_string(), None),
        (format!("a/b/dir/{name}"), Some(content("served.bin", SIZE))),
    ])
}

/// Fetches with `header` and asserts that exactly `DIR/want` was saved.
fn saved_as(engine: &str, s: &TestServer, header: Option<&str>, flag: bool, want: &str) {
    let (code, files, o) = fetch_nested(engine, &url(s, "disposition", header), flag);
    assert_eq!(code, 0, "{header:?}: {}", stderr(&o));
    assert_eq!(files, only(want), "{header:?}");
}

engine_tests! {
    fn quoted_filename_names_the_file(engine) {
        let s = TestServer::start();
        saved_as(engine, &s, Some("attachment; filename=\"report.pdf\""), true, "report.pdf");
        saved_as(engine, &s, Some(r#"attachment; filename="say \"hi\".txt""#), true, "say \"hi\".txt");
    }

    fn extended_filename_is_percent_decoded_utf8_and_preferred(engine) {
        let s = TestServer::start();
        saved_as(engine, &s, Some("attachment; filename*=UTF-8''na%C3%AFve.txt"), true, "naïve.txt");
        let both = "attachment; filename=\"naive.txt\"; filename*=UTF-8''na%C3%AFve.txt";
        saved_as(engine, &s, Some(both), true, "naïve.txt");
    }

    fn malicious_names_stay_inside_dir(engine) {
        let s = TestServer::start();
        let cases = [
            ("attachment; filename=\"../../x\"", "x"),
            ("attachment; filename=\"/etc/x\"", "x"),
            (r#"attachment; filename="..\\x""#, "x"),
            ("attachment; filename=\"%2e%2e%2fx\"", "%2e%2e%2fx"),
            ("attachment; filename*=UTF-8''%2e%2e%2fx", "x"),
            ("attachment; filename*=UTF-8''..%2F..%2Fx", "x"),
        ];
        let etc_x_before = Path::new("/etc/x").exists();
        for (header, want) in cases {
            saved_as(engine, &s, Some(header), true, want);
        }
        assert_eq!(Path::new("/etc/x").exists(), etc_x_before, "/etc/x untouched");
    }

    fn unusable_headers_fall_back_to_the_url_name(engine) {
        let s = TestServer::start();
        for header in [
            None,
            Some("attachment"),
            Some("attachment; filename=\"unterminated"),
            Some("attachment; filename=\"..\""),
            Some("attachment; filename*=UTF-8''%2F"),
        ] {
            saved_as(engine, &s, header, true, "served.bin");
        }
    }

    fn the_header_is_ignored_without_the_flag(engine) {
        let s = TestServer::start();
        saved_as(engine, &s, Some("attachment; filename=\"report.pdf\""), false, "served.bin");
        saved_as(engine, &s, Some("attachment; filename=\"../../x\""), false, "served.bin");
    }

    fn a_redirects_header_does_not_name_the_file(engine) {
        let s = TestServer::start();
        let u = url(&s, "disposition-redirect", Some("attachment; filename=\"report.pdf\""));
        let (code, files, o) = fetch_nested(engine, &u, true);
        assert_eq!(code, 0, "{}", stderr(&o));
        assert_eq!(files, only("served.bin"));
    }

    fn a_planted_symlink_is_not_followed(engine) {
        let s = TestServer::start();
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("dir");
        std::fs::create_dir(&dir).expect("mkdir");
        std::os::unix::fs::symlink("../outside.pdf", dir.join("report.pdf")).expect("symlink");
        let u = url(&s, "disposition", Some("attachment; filename=\"report.pdf\""));
        let d = dir.to_str().expect("utf-8 dir");
        let o = run(&["fetch", "-e", engine, "-d", d, "--content-disposition", &u]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let want = BTreeMap::from([
            ("dir".to_string(), None),
            ("dir/report.pdf".to_string(), None),
            ("dir/report.1.pdf".to_string(), Some(content("served.bin", SIZE))),
        ]);
        assert_eq!(tree(root.path()), want);
        assert_eq!(std::fs::read_link(dir.join("report.pdf")).expect("link").to_str(), Some("../outside.pdf"));
    }
}
