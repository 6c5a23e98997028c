//! The tour's downloads: a handful of generated files (the fetch bench's
//! corpus: deterministic bytes, SHA-256 kept) served by the built-in static
//! server on 127.0.0.1, fetched by each engine's `trident fetch` into its
//! own empty directory, which is then checked file by file. The built-in
//! server rather than nginx: the tour needs nothing installed. As in the
//! fetch bench, the file system is synced before each run (untimed): else
//! the first engine's fsyncs pay for writing back the corpus.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use super::Row;
use crate::bench::fetch::settle;
use crate::bench::fixture::TempDir;
use crate::bench::fixture::corpus;
use crate::bench::fixture::static_server::StaticServer;
use crate::bench::harness::{self, Cost};
use crate::bench::measure_with_limit;
use crate::engine::EngineKind;

/// Files fetched per engine, their size, and downloads at once.
const FILES: usize = 16;
const FILE_SIZE: u64 = 256 * 1024;
const JOBS: &str = "4";
/// A generous hang guard: a run takes well under a second.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Fetches the corpus with each of `engines`; a row per engine.
pub(super) fn run(exe: &Path, engines: &[EngineKind]) -> anyhow::Result<Vec<Row>> {
    let work = TempDir::new("trident-demo-fetch")?;
    let root = work.path().join("www");
    let expected = corpus::generate(&root.join("files"), (0..FILES).map(|i| format!("f{i:02}.bin")), FILE_SIZE, 17)?;
    let server = StaticServer::start(&root).context("cannot start the built-in HTTP server")?;
    let mut urls = String::new();
    for e in &expected {
        let _ = writeln!(urls, "http://{}/files/{}", server.addr(), e.name);
    }
    let list = work.path().join("urls.txt");
    fs::write(&list, urls).with_context(|| format!("cannot write {}", list.display()))?;
    println!(
        "2. fetch: {FILES} files of {} KiB from the built-in HTTP server at {}, {JOBS} at once; SHA-256 checked",
        FILE_SIZE / 1024,
        server.addr()
    );
    let mut rows = Vec::new();
    harness::rotate(engines, 0, 1, |&engine, _| {
        let dir = work.path().join(format!("dl-{engine}"));
        fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Not timed: the corpus just written, and the previous engine's
        // files, are written back first, not on whoever syncs next.
        settle(work.path()).with_context(|| format!("cannot sync the file system of {}", work.path().display()))?;
        let mut cmd = Command::new(exe);
        cmd.args(["fetch", "-e", engine.name(), "-j", JOBS, "-q", "-i"]).arg(&list).arg("-d").arg(&dir);
        let m =
            measure_with_limit(&mut cmd, Some(TIME_LIMIT)).with_context(|| format!("cannot run the {engine} fetch"))?;
        let check = corpus::verify(&dir, &expected).with_context(|| format!("cannot check {}", dir.display()))?;
        let correct = m.exit_code == Some(0) && check.ok == FILES as u64 && check.extra == 0;
        let detail = (!correct).then(|| {
            let stderr = String::from_utf8_lossy(&m.stderr);
            format!(
                "exit {:?}{}; missing {}, wrong size {}, wrong SHA-256 {}, extra {}; {}",
                m.exit_code,
                if m.timed_out { " (time limit)" } else { "" },
                check.missing,
                check.wrong_size,
                check.wrong_sha256,
                check.extra,
                stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
            )
        });
        let found = format!("{}/{FILES}", check.ok);
        rows.push(Row { engine, found, correct, cost: Cost::from(&m), detail });
        Ok(())
    })?;
    Ok(rows)
}
