//! Where scan results go: `-o` into FIFOs and links without replacing
//! them, unwritable paths refused as bad input before the first probe.
//! Only loopback addresses are scanned.

use std::os::unix::fs::FileTypeExt;
use std::process::Command;

use crate::util::{Listeners, run, stderr};

fn mkfifo(path: &std::path::Path) {
    let made = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_given_to_o_is_written_into_not_replaced() {
    let l = Listeners::start(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("results");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).expect("read the fifo"))
    };
    let o =
        run(&["scan", &l.ip.to_string(), "-p", &l.spec_with(&[]), "-f", "json", "-o", fifo.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Before joining: a replaced FIFO would leave the reader waiting.
    assert!(std::fs::symlink_metadata(&fifo).expect("still there").file_type().is_fifo(), "the FIFO was replaced");
    let doc: serde_json::Value = serde_json::from_str(&reader.join().expect("reader")).expect("json through the fifo");
    assert_eq!(doc["summary"]["counts"]["open"], 1);
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1, "no temporary file left");
}

#[test]
fn a_link_given_to_o_stays_a_link_to_the_new_results() {
    let l = Listeners::start(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let real = dir.path().join("real.json");
    std::fs::write(&real, "old").expect("write");
    let link = dir.path().join("latest.json");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let o =
        run(&["scan", &l.ip.to_string(), "-p", &l.spec_with(&[]), "-f", "json", "-o", link.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link).expect("link").file_type().is_symlink(), "the link was replaced");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&real).expect("real")).expect("json");
    assert_eq!(doc["summary"]["counts"]["open"], 1);
}

#[test]
fn an_unwritable_o_is_bad_input_before_any_probe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no/such/dir/out.xml");
    let dangling = dir.path().join("dangling.json");
    std::os::unix::fs::symlink(dir.path().join("gone/x"), &dangling).expect("symlink");
    for path in [missing.as_path(), dir.path(), dangling.as_path()] {
        let path = path.to_str().expect("utf-8");
        // In a namespace without routes, so that a probe, were one sent,
        // could not leave the machine.
        let o = Command::new("unshare")
            .args(["-n", env!("CARGO_BIN_EXE_trident"), "scan", "127.0.0.1", "-p", "1", "-o", path])
            .output()
            .expect("unshare");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{path}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&format!("cannot write {path}: ")), "{err}");
        assert!(!err.contains(".tmp-"), "the temporary name shows: {err}");
        assert!(o.stdout.is_empty());
    }
}
