//! The SHA-256 of `trident fetch` is opt-in: computed and reported only
//! with `--sha256` or a checksum to verify (`--checksum`, `checksum=`).
//! Without them the report's `sha256` is null (JSON) or absent (text), and
//! the files are still byte-exact; with `--sha256` the digest reported is
//! the file's, for whole, resumed and split downloads alike. Through the
//! real binary, on every engine.

use std::collections::BTreeMap;
use std::process::Output;

use serde_json::Value;

use crate::engine_tests;
use crate::fetch_util::{code, fetch, fetch_json, files, json, only, want};
use crate::http_server::{TestServer, sha256_hex, versioned};
use crate::util::{stderr, stdout};

const SIZE: usize = 4 << 20;

/// The report's `sha256` of every file, in input order.
fn digests(o: &Output) -> Vec<Value> {
    json(o)["files"].as_array().expect("files").iter().map(|f| f["sha256"].clone()).collect()
}

/// The report's `resumed_from` of every file, in input order.
fn resumed(o: &Output) -> Vec<u64> {
    json(o)["files"].as_array().expect("files").iter().map(|f| f["resumed_from"].as_u64().expect("n")).collect()
}

/// The `done` lines of a text report.
fn done_lines(o: &Output) -> Vec<String> {
    stdout(o).lines().filter(|l| l.starts_with("done ")).map(String::from).collect()
}

/// What the first `-s 4` run leaves of `/range/cut=300000,cuthits=4/SIZE/NAME`
/// (each part cut, no retry, `-c`): the part file and its ranges. Returns
/// the URL.
fn cut_split_run(s: &TestServer, engine: &str, dir: &std::path::Path, name: &str) -> String {
    let url = s.url(&format!("/range/cut=300000,cuthits=4/{SIZE}/{name}"));
    let o = fetch(engine, dir, &[&url, "-s", "4", "--split-probe", "0", "--retries", "0", "-c"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let left: Vec<String> = files(dir).into_keys().collect();
    assert_eq!(left, [format!("{name}.part"), format!("{name}.part.state")]);
    url
}

/// What a run of `/range/cutevery=300000/1000000/NAME` without retries and
/// with `-c` leaves: a part file of one stream with its state. Returns the
/// URL.
fn cut_stream_run(s: &TestServer, engine: &str, dir: &std::path::Path, name: &str) -> String {
    let url = s.url(&format!("/range/cutevery=300000/1000000/{name}"));
    let o = fetch(engine, dir, &[&url, "--retries", "0", "-c"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let left: Vec<String> = files(dir).into_keys().collect();
    assert_eq!(left, [format!("{name}.part"), format!("{name}.part.state")]);
    url
}

engine_tests! {
    fn without_sha256_no_digest_is_reported_and_the_files_are_exact(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // A whole body, a chunked one, one cut and resumed within the run.
        let cut = format!("/range/cut=300000/{SIZE}/c.bin");
        let urls = [s.url("/file/70000/a.bin"), s.url("/chunked/5000/b.bin"), s.url(&cut)];
        let o = fetch_json(engine, dir.path(), &[&urls[0], &urls[1], &urls[2]]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(digests(&o), [Value::Null, Value::Null, Value::Null]);
        assert!(resumed(&o)[2] > 0, "c.bin was resumed: {}", stdout(&o));
        let mut expected = want(&[("a.bin", "a.bin", 70_000), ("b.bin", "b.bin", 5000)]);
        expected.extend(only("c.bin", SIZE, 1));
        assert_eq!(files(dir.path()), expected, "byte-exact, nothing left over");

        // Split in 4, text report: no sha256 field on the line.
        let path = format!("/range/-/{SIZE}/d.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path), "-s", "4", "--split-probe", "0"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(s.requests(&path).len(), 4, "it was split");
        assert_eq!(done_lines(&o), [format!("done      d.bin  {SIZE} bytes  {}", s.url(&path))]);
        expected.extend(only("d.bin", SIZE, 1));
        assert_eq!(files(dir.path()), expected);

        // A split download continued by a later run, still without a digest.
        let dir = tempfile::tempdir().expect("tempdir");
        let url = cut_split_run(&s, engine, dir.path(), "t.bin");
        let o = fetch_json(engine, dir.path(), &[&url, "-s", "4"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!((digests(&o), resumed(&o)[0] > 0), (vec![Value::Null], true));
        assert_eq!(files(dir.path()), only("t.bin", SIZE, 1));
    }

    fn with_sha256_the_reported_digest_is_the_files(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        // A whole body, a chunked one, one cut and resumed within the run.
        let cut = format!("/range/cut=300000/{SIZE}/c.bin");
        let urls = [s.url("/file/70000/a.bin"), s.url("/chunked/5000/b.bin"), s.url(&cut)];
        let o = fetch_json(engine, dir.path(), &[&urls[0], &urls[1], &urls[2], "--sha256"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        let on_disk = files(dir.path());
        let mut expected = want(&[("a.bin", "a.bin", 70_000), ("b.bin", "b.bin", 5000)]);
        expected.extend(only("c.bin", SIZE, 1));
        assert_eq!(on_disk, expected);
        assert_eq!(digests(&o), ["a.bin", "b.bin", "c.bin"].map(|n| Value::from(on_disk[n].as_str())));
        assert!(resumed(&o)[2] > 0, "c.bin was resumed: {}", stdout(&o));

        // Split in 4, text report: sha256:HEX on the line.
        let path = format!("/range/-/{SIZE}/d.bin");
        let o = fetch(engine, dir.path(), &[&s.url(&path), "-s", "4", "--split-probe", "0", "--sha256"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(s.requests(&path).len(), 4, "it was split");
        let d_sum = sha256_hex(&versioned("d.bin", SIZE, 1));
        assert_eq!(done_lines(&o), [format!("done      d.bin  {SIZE} bytes  sha256:{d_sum}  {}", s.url(&path))]);
        assert_eq!(files(dir.path())["d.bin"], d_sum);

        // Part files left by runs without --sha256, continued by runs with
        // it: the bytes kept are read back for the digest (one stream, split).
        let dir = tempfile::tempdir().expect("tempdir");
        let url = cut_stream_run(&s, engine, dir.path(), "e.bin");
        let o = fetch_json(engine, dir.path(), &[&url, "--retries", "10", "--sha256"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        let e_sum = sha256_hex(&versioned("e.bin", 1_000_000, 1));
        assert_eq!((digests(&o), resumed(&o)[0] > 0), (vec![Value::from(e_sum.as_str())], true));
        assert_eq!(files(dir.path()), BTreeMap::from([("e.bin".to_string(), e_sum)]));

        let dir = tempfile::tempdir().expect("tempdir");
        let url = cut_split_run(&s, engine, dir.path(), "t.bin");
        let o = fetch_json(engine, dir.path(), &[&url, "-s", "4", "--sha256"]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        let t_sum = sha256_hex(&versioned("t.bin", SIZE, 1));
        assert_eq!((digests(&o), resumed(&o)[0] > 0), (vec![Value::from(t_sum.as_str())], true));
        assert_eq!(files(dir.path()), only("t.bin", SIZE, 1));
    }

    fn a_checksum_is_still_verified_without_sha256(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let wrong = format!("sha256={}", sha256_hex(b"something else"));
        // One stream and split in 4: a mismatch exits 3 and saves nothing.
        let n_path = format!("/range/-/{SIZE}/n.bin");
        for (path, split) in [("/range/-/1000000/m.bin", "1"), (n_path.as_str(), "4")] {
            let o = fetch_json(engine, dir.path(), &[&s.url(path), "-s", split, "--checksum", &wrong]);
            assert_eq!(code(&o), 3, "{path}: {}{}", stdout(&o), stderr(&o));
            let r = &json(&o)["files"][0];
            assert_eq!((r["status"].as_str(), &r["sha256"]), (Some("checksum-mismatch"), &Value::Null), "{r}");
            assert!(r["error"].as_str().unwrap_or_default().contains("SHA-256 mismatch"), "{r}");
            assert!(files(dir.path()).is_empty(), "{path}: {:?}", files(dir.path()));
        }
        // A match is saved, and the digest it computed is reported.
        let path = format!("/range/-/{SIZE}/g.bin");
        let g_sum = sha256_hex(&versioned("g.bin", SIZE, 1));
        let o = fetch_json(engine, dir.path(), &[&s.url(&path), "-s", "4", "--checksum", &format!("sha256={g_sum}")]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert_eq!(digests(&o), [Value::from(g_sum.as_str())]);
        assert_eq!(files(dir.path()), only("g.bin", SIZE, 1));
    }
}
