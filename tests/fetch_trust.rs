//! `trident fetch` and what nothing from a server (or an input file) may
//! steer, through the real binary on every engine: names the tool itself
//! uses (`.part`, `.part.state`) and the state a later run trusts, `dir=`
//! options leaving `-d DIR`, passwords in what is printed, the modes of
//! state files. Real servers on 127.0.0.1; every case checks the exact
//! files and the exit code.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::engine_tests;
use crate::fetch_util::{code, fetch_json as fetch, files, json, only};
use crate::http_server::TestServer;
use crate::util::{stderr, stdout};

/// A URL of `s` whose body is `body` and whose name is `name`.
fn body_url(s: &TestServer, name: &str, body: &[u8]) -> String {
    let encoded: String = body.iter().map(|b| format!("%{b:02X}")).collect();
    s.url(&format!("/body/{name}?{encoded}"))
}

/// The state file an earlier trident would trust for `url` (ETag
/// `"x-1000-v1"` as the `/range/` server sends it), claiming 900 bytes.
fn forged_state(url: &str) -> String {
    serde_json::json!({
        "version": 1, "url": url, "etag": "\"x-1000-v1\"", "last_modified": null, "total": 1000, "done": 900,
    })
    .to_string()
}

/// Writes the input file `text` next to (not in) the download directory.
fn input(text: &str) -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().expect("tempdir");
    let path = d.path().join("list.txt");
    std::fs::write(&path, text).expect("write list");
    let path = path.to_str().expect("utf-8").to_string();
    (d, path)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

engine_tests! {
    fn a_server_cannot_plant_the_state_a_later_download_resumes_from(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let genuine = s.url("/range/-/1000/x");
        let attacker = vec![b'A'; 900];
        // The server names files after the tool's own: by the URL, and by
        // Content-Disposition.
        let part_url = body_url(&s, "x.part", &attacker);
        let state_url = body_url(&s, "x.part.state", forged_state(&genuine).as_bytes());
        let cd = utf8_percent_encode("attachment; filename=\"y.part.state.tmp\"", NON_ALPHANUMERIC).to_string();
        let cd_url = s.url(&format!("/disposition/10/cd?{cd}"));
        let o = fetch(engine, dir.path(), &[&part_url, &state_url, &cd_url, "--content-disposition", "-j", "1"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        let names: Vec<String> = files(dir.path()).into_keys().collect();
        assert_eq!(names, ["x.part.state_", "x.part_", "y.part.state.tmp_"], "reserved names are renamed");

        let o = fetch(engine, dir.path(), &[&genuine]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(json(&o)["files"][0]["resumed_from"].as_u64(), Some(0), "{}", stdout(&o));
        let saved = files(dir.path());
        assert_eq!(saved.get("x"), only("x", 1000, 1).get("x"), "the file is the server's whole body");
        assert_eq!(saved.len(), 4, "{saved:?}");
    }

    fn a_part_and_state_planted_by_hand_are_restarted_not_trusted(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let genuine = s.url("/range/-/1000/x");
        // As an earlier version let a server leave them (or anyone who can
        // write DIR): a state in the old format, claiming 900 bytes.
        std::fs::write(dir.path().join("x.part"), vec![b'A'; 900]).expect("write");
        std::fs::write(dir.path().join("x.part.state"), forged_state(&genuine)).expect("write");
        let o = fetch(engine, dir.path(), &[&genuine]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(json(&o)["files"][0]["resumed_from"].as_u64(), Some(0), "{}", stdout(&o));
        let requests = s.requests("/range/-/1000/x");
        assert!(requests.iter().all(|r| r.range.is_none()), "nothing was asked from byte 900: {requests:?}");
        let saved = files(dir.path());
        assert_eq!(saved.get("x"), only("x", 1000, 1).get("x"), "the file is the server's whole body");
    }

    fn dir_options_never_leave_the_download_directory(engine) {
        let s = TestServer::start();
        let top = tempfile::tempdir().expect("tempdir");
        let dir = top.path().join("d");
        let outside = top.path().join("outside");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, dir.join("link")).expect("symlink");
        let u = |n: &str| s.url(&format!("/file/10/{n}"));
        let text = format!(
            "{}\n  dir=../outside\n{}\n  dir={}\n{}\n  dir=ok/../../outside\n{}\n  dir=link\n{}\n  dir=link/deeper\n{}\n  dir=ok/sub\n",
            u("dotdot"), u("absolute"), outside.display(), u("inner"), u("symlink"), u("deeper"), u("fine"),
        );
        let (_list_dir, list) = input(&text);
        let o = fetch(engine, &dir, &["-i", &list, "-j", "1"]);
        let doc = json(&o);
        let results = doc["files"].as_array().expect("files");
        let got: Vec<(&str, &str)> = results
            .iter()
            .map(|r| (r["status"].as_str().unwrap_or(""), r["error"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(got.len(), 6, "{}", stdout(&o));
        for (i, line) in [(0, 2), (1, 4), (2, 6)] {
            assert_eq!(got[i].0, "bad-url", "{got:?}");
            assert!(got[i].1.contains(&format!("list.txt:{line}:")), "line number: {got:?}");
        }
        for i in [3, 4] {
            assert_eq!(got[i].0, "local-error", "{got:?}");
            assert!(got[i].1.contains("link"), "{got:?}");
        }
        assert_eq!(got[5].0, "done", "{got:?}");
        assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
        assert!(files(&outside).is_empty(), "nothing written outside DIR: {:?}", files(&outside));
        assert_eq!(files(&dir.join("ok/sub")).len(), 1);
    }

    fn passwords_in_malformed_urls_are_never_printed(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let text = format!(
            "http://u:s3cret@[bad/x\nhttp://u:s3cret@127.0.0.1:{dead}/refused\nftp://u:s3cret@h/x\n{}\n",
            s.url("/file/10/f").replace("://", "://u:s3cret@"),
        );
        let (_list_dir, list) = input(&text);
        for format in ["json", "text"] {
            let d = dir.path().to_str().expect("utf-8");
            let o = crate::util::run(&[
                "fetch", "-e", engine, "-d", d, "-f", format, "--retries", "0", "-i", &list,
            ]);
            assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
            let (out, err) = (stdout(&o), stderr(&o));
            assert!(!out.contains("s3cret") && !err.contains("s3cret"), "{format}: {out}{err}");
            assert!(out.contains("u@") || out.contains("u:***@"), "the user name is still shown: {out}");
        }
    }

    fn state_files_are_private_to_their_owner(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // Cut once, no retry, -c: the part file and its state stay.
        const SIZE: usize = 1 << 20;
        let path = format!("/range/cut=300000,cuthits=1/{SIZE}/p.bin");
        let url = format!("{}?X-Amz-Signature=s3cret", s.url(&path));
        let o = fetch(engine, dir.path(), &[&url, "--retries", "0", "-c"]);
        assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(mode(&dir.path().join("p.bin.part.state")), 0o600);
        let o = fetch(engine, dir.path(), &[&url]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert!(json(&o)["files"][0]["resumed_from"].as_u64().is_some_and(|n| n > 0), "{}", stdout(&o));
        assert_eq!(files(dir.path()), only("p.bin", SIZE, 1));
    }
}

engine_tests! {
    fn control_characters_never_reach_the_terminal_raw(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // An input line that is no URL, with a terminal title escape (an
        // input file is often fetched from elsewhere), then a good URL.
        let text = format!("x\u{1b}]0;pwned\u{7}y\n{}\n", s.url("/file/10/ok"));
        let (_list_dir, list) = input(&text);
        let d = dir.path().to_str().expect("utf-8");
        let o = crate::util::run(&["fetch", "-e", engine, "-d", d, "--retries", "0", "-i", &list]);
        assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
        let out = stdout(&o);
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
        assert!(out.contains("pwned") && out.contains("done      ok"), "the lines are still shown, escaped: {out:?}");
    }
}
