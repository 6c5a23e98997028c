//! What every `trident fetch` test module shares: running the binary on an
//! engine, and the exact listing of a download directory.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::http_server::{content, sha256_hex, versioned};
use crate::util::{run, stderr, stdout};

/// Name → SHA-256 of every entry in `dir` (symlinks as `-> target`,
/// directories as `dir`).
pub fn files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(e.path()).expect("meta");
            let what = if meta.is_dir() {
                "dir".to_string()
            } else if meta.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(e.path()).expect("link").display())
            } else {
                sha256_hex(&std::fs::read(e.path()).expect("read"))
            };
            (name, what)
        })
        .collect()
}

/// The expected listing: (file name, served name, size).
pub fn want(entries: &[(&str, &str, usize)]) -> BTreeMap<String, String> {
    entries.iter().map(|(file, served, size)| (file.to_string(), sha256_hex(&content(served, *size)))).collect()
}

/// `{name: sha256(versioned(name, size, version))}`.
pub fn only(name: &str, size: usize, version: u32) -> BTreeMap<String, String> {
    BTreeMap::from([(name.to_string(), sha256_hex(&versioned(name, size, version)))])
}

/// `trident fetch -e ENGINE -d DIR ARGS` with fast retries.
pub fn fetch(engine: &str, dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_str().expect("utf-8 dir");
    let mut all = vec!["fetch", "-e", engine, "-d", dir, "--retry-wait", "10ms"];
    all.extend_from_slice(args);
    run(&all)
}

/// The same with the report as JSON on stdout (`-f json`).
pub fn fetch_json(engine: &str, dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["-f", "json"];
    all.extend_from_slice(args);
    fetch(engine, dir, &all)
}

/// The exit code (-1 if killed by a signal).
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// stdout as JSON.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// Waits until nobody holds `path`'s lock (a worker process of a killed
/// parent dies an instant later than its parent).
pub fn wait_unlocked(path: &Path) {
    use std::os::fd::AsRawFd;
    let t0 = Instant::now();
    loop {
        let f = std::fs::File::open(path).expect("part file");
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{} still locked", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every descendant of process `pid` (its worker processes), read from
/// /proc now.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for task in tasks.flatten() {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
                out.push(child);
                todo.push(child);
            }
        }
    }
    out
}

/// Waits until each of `pids` has exited (gone, or a zombie).
pub fn wait_exited(pids: &[u32]) {
    let t0 = Instant::now();
    for pid in pids {
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The state follows the command name in parentheses.
            let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
            if matches!(state, None | Some('Z' | 'X')) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "process {pid} still running");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Ctrl-C to a running `trident fetch` (SIGINT to it alone, as a test
/// cannot send it to a terminal's process group).
pub fn interrupt(child: &std::process::Child) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
}
