//! The one bench harness: what every `trident bench` workload does the same
//! way, so that a workload's bench only says what a contender runs and how
//! its result is checked.
//!
//! - The line-up ([`line_up`]): every engine asked for, then every peer
//!   asked for that is installed (a missing one is said and left out).
//! - The rounds ([`rotate`]): warm-up rounds, then recorded ones, the
//!   contenders' order rotating every round so that no one always runs
//!   first or right after the slowest.
//! - The records: each bench's run record (one row of runs.csv, its own
//!   columns) gives the harness its contender and [`Cost`] through
//!   [`Record`]; that is the one shape every workload's runs share.
//! - The summary: [`Medians`] per contender and [`Ratio`]s of each engine's
//!   medians over each peer's measured in the same run — the figure that
//!   counts on a noisy machine.
//! - The output: `runs.csv` + `summary.json` into `--out DIR` ([`write_out`]).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use super::measure::Measurement;
use crate::engine::EngineKind;
use crate::output::OutputFile;

/// A program a bench compares: `trident` on one engine, or a peer program
/// of the workload (nmap, curl...). A bench says what each runs, in an
/// inherent `impl Contender<ItsPeer>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender<P> {
    /// `trident` on this engine.
    Trident(EngineKind),
    /// A peer.
    Peer(P),
}

/// A workload's peer programs.
pub trait Peer: Clone {
    /// Parses a `--vs` name.
    fn parse(name: &str) -> Result<Self, String>;
    /// The name in reports.
    fn label(&self) -> String;
    /// The program it runs, looked up by [`find_program`].
    fn program(&self) -> &'static str;
    /// Where that program is, or why the peer cannot run here (saying what
    /// to install).
    fn locate(&self) -> Result<PathBuf, String> {
        find_program(self.program()).ok_or_else(|| format!("{} is not installed", self.program()))
    }
}

impl<P: Peer> Contender<P> {
    /// The name in reports: `trident-ENGINE`, or the peer's.
    pub fn label(&self) -> String {
        match self {
            Contender::Trident(engine) => format!("trident-{engine}"),
            Contender::Peer(peer) => peer.label(),
        }
    }

    /// Whether it is a peer rather than a trident engine.
    pub fn is_peer(&self) -> bool {
        matches!(self, Contender::Peer(_))
    }
}

/// Parses a `--vs` list; `none` stands for no peer.
pub fn parse_peers<P: Peer>(names: &[String]) -> Result<Vec<P>, String> {
    names.iter().filter(|name| name.as_str() != "none").map(|name| P::parse(name)).collect()
}

/// The contenders of a run, each with the executable it runs: `engines`,
/// then each of `peers` that is installed (the others are named on stderr
/// with the reason).
pub fn line_up<P: Peer>(
    engines: &[EngineKind],
    peers: impl IntoIterator<Item = P>,
) -> anyhow::Result<Vec<(Contender<P>, PathBuf)>> {
    let trident = std::env::current_exe().context("cannot find the trident executable")?;
    let mut contenders: Vec<(Contender<P>, PathBuf)> =
        engines.iter().map(|&e| (Contender::Trident(e), trident.clone())).collect();
    for peer in peers {
        match peer.locate() {
            Ok(path) => contenders.push((Contender::Peer(peer), path)),
            Err(why) => eprintln!("trident: {why}; skipping {}", peer.label()),
        }
    }
    if contenders.is_empty() {
        bail!("nothing to run");
    }
    Ok(contenders)
}

/// The labels of `contenders`, and those of the peers among them.
pub fn labels<P: Peer>(contenders: &[impl std::borrow::Borrow<(Contender<P>, PathBuf)>]) -> (Vec<String>, Vec<String>) {
    let all = contenders.iter().map(|c| c.borrow().0.label()).collect();
    let peers = contenders.iter().filter(|c| c.borrow().0.is_peer()).map(|c| c.borrow().0.label()).collect();
    (all, peers)
}

/// `warmup` unrecorded rounds, then `runs` recorded ones, each calling
/// `each` on every item; the order rotates by one every round. `each` gets
/// the recorded round's number (from 1), or 0 in the warm-up.
pub fn rotate<T>(
    items: &[T],
    warmup: u32,
    runs: u32,
    mut each: impl FnMut(&T, u32) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let n = items.len();
    for round in 0..warmup + runs {
        let run = round.checked_sub(warmup).map_or(0, |r| r + 1);
        for k in 0..n {
            each(&items[(k + round as usize) % n], run)?;
        }
    }
    Ok(())
}

/// What one run cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Wall time, seconds.
    pub wall_s: f64,
    /// User+system CPU, seconds (children included).
    pub cpu_s: f64,
    /// Peak RSS summed over the process tree, MiB.
    pub peak_rss_mib: f64,
    /// Peak PSS summed over the process tree, MiB.
    pub peak_pss_mib: f64,
}

impl From<&Measurement> for Cost {
    fn from(m: &Measurement) -> Cost {
        Cost {
            wall_s: m.wall.as_secs_f64(),
            cpu_s: m.cpu().as_secs_f64(),
            peak_rss_mib: m.peak_rss_kib as f64 / 1024.0,
            peak_pss_mib: m.peak_pss_kib as f64 / 1024.0,
        }
    }
}

/// A bench's record of one run: what the harness needs of it.
pub trait Record {
    /// The contender's label.
    fn tool(&self) -> &str;
    /// What the run cost.
    fn cost(&self) -> Cost;
    /// Whether the contender did the work right (exit 0, in time, the
    /// result checked correct).
    fn clean(&self) -> bool;
}

/// [`Record::tool`] and [`Record::cost`] of a record that has the usual
/// columns: `tool`, `wall_s`, `cpu_s`, `peak_rss_mib`, `peak_pss_mib`.
macro_rules! record_columns {
    () => {
        fn tool(&self) -> &str {
            &self.tool
        }

        fn cost(&self) -> $crate::bench::harness::Cost {
            $crate::bench::harness::Cost {
                wall_s: self.wall_s,
                cpu_s: self.cpu_s,
                peak_rss_mib: self.peak_rss_mib,
                peak_pss_mib: self.peak_pss_mib,
            }
        }
    };
}
pub(crate) use record_columns;

/// Medians of one contender's recorded runs.
#[derive(Clone, Debug, Serialize)]
pub struct Medians {
    /// Runs recorded.
    pub runs: usize,
    /// Median wall time, seconds.
    pub wall_s: f64,
    /// Median CPU, seconds.
    pub cpu_s: f64,
    /// Median peak RSS, MiB.
    pub peak_rss_mib: f64,
    /// Median peak PSS, MiB.
    pub peak_pss_mib: f64,
}

impl Medians {
    /// Of `records` (NaN when there are none).
    pub fn of<R: Record>(records: &[&R]) -> Medians {
        let costs: Vec<Cost> = records.iter().map(|r| r.cost()).collect();
        let pick = |f: fn(&Cost) -> f64| median(costs.iter().map(f).collect());
        Medians {
            runs: records.len(),
            wall_s: pick(|c| c.wall_s),
            cpu_s: pick(|c| c.cpu_s),
            peak_rss_mib: pick(|c| c.peak_rss_mib),
            peak_pss_mib: pick(|c| c.peak_pss_mib),
        }
    }
}

/// A trident engine's medians over a peer's, from the same bench run.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// The trident engine.
    pub tool: String,
    /// The peer.
    pub peer: String,
    /// Median wall / peer's median wall (below 1: faster).
    pub wall: f64,
    /// Median CPU / peer's.
    pub cpu: f64,
    /// Median peak RSS / peer's.
    pub peak_rss: f64,
}

/// Every (engine, peer) pair of `summary`, in its order: a peer is an entry
/// whose `tool` is in `peers`, an engine any other.
pub fn engine_peer_pairs<'a, S>(summary: &'a [S], tool: impl Fn(&S) -> &str, peers: &[String]) -> Vec<(&'a S, &'a S)> {
    let is_peer = |s: &S| peers.iter().any(|p| p == tool(s));
    let mut pairs = Vec::new();
    for s in summary.iter().filter(|s| !is_peer(s)) {
        for p in summary.iter().filter(|p| is_peer(p)) {
            pairs.push((s, p));
        }
    }
    pairs
}

impl Ratio {
    /// `tool`'s medians `mine` over `peer`'s `theirs`.
    pub fn new(tool: &str, peer: &str, mine: &Medians, theirs: &Medians) -> Ratio {
        Ratio {
            tool: tool.to_string(),
            peer: peer.to_string(),
            wall: mine.wall_s / theirs.wall_s,
            cpu: mine.cpu_s / theirs.cpu_s,
            peak_rss: mine.peak_rss_mib / theirs.peak_rss_mib,
        }
    }
}

/// The header of the per-run table, up to the workload's own columns.
pub fn run_header(tool_width: usize) -> String {
    format!("{:<4} {:<tool_width$} {:>9} {:>9} {:>10} {:>10}", "RUN", "TOOL", "WALL", "CPU", "PEAK RSS", "PEAK PSS")
}

/// A row of the per-run table, up to the workload's own columns: `w` for a
/// warm-up run (`run` 0).
pub fn run_row(run: u32, tool: &str, tool_width: usize, cost: &Cost) -> String {
    format!(
        "{:<4} {:<tool_width$} {:>8.3}s {:>8.3}s {:>6.1} MiB {:>6.1} MiB",
        if run == 0 { "w".to_string() } else { run.to_string() },
        tool,
        cost.wall_s,
        cost.cpu_s,
        cost.peak_rss_mib,
        cost.peak_pss_mib
    )
}

/// The median (mean of the middle two for an even count); NaN when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

/// Finds `program` on PATH, then in `/opt/<program>/bin` (where a bench
/// machine may have had it built with `cargo install --root`).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from(format!("/opt/{program}/bin"))])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Writes `runs` as DIR/runs.csv (a header from the record's fields, one
/// row per run) and `report` as DIR/summary.json (pretty), creating DIR.
pub fn write_out<R: Serialize>(dir: &Path, runs: &[R], report: &impl Serialize) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    for run in runs {
        csv.serialize(run)?;
    }
    let csv = csv.into_inner().map_err(|e| anyhow::anyhow!("cannot write runs.csv: {e}"))?;
    for (name, bytes) in [("runs.csv", csv), ("summary.json", serde_json::to_vec_pretty(report)?)] {
        let file = OutputFile::create(&dir.join(name))?;
        std::io::Write::write_all(&mut file.file()?, &bytes)?;
        file.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 8.0]), 6.0);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn rounds_rotate_and_only_recorded_ones_are_numbered() {
        let mut seen = Vec::new();
        rotate(&['a', 'b', 'c'], 1, 2, |&c, run| {
            seen.push((run, c));
            Ok(())
        })
        .unwrap();
        let order: String = seen.iter().map(|&(_, c)| c).collect();
        assert_eq!(order, "abcbcacab");
        let runs: Vec<u32> = seen.iter().map(|&(run, _)| run).collect();
        assert_eq!(runs, [0, 0, 0, 1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn every_engine_is_paired_with_every_peer() {
        let tools = ["t1", "p1", "t2", "p2"];
        let pairs = engine_peer_pairs(&tools, |t| t, &["p1".into(), "p2".into()]);
        let pairs: Vec<(&str, &str)> = pairs.into_iter().map(|(a, b)| (*a, *b)).collect();
        assert_eq!(pairs, [("t1", "p1"), ("t1", "p2"), ("t2", "p1"), ("t2", "p2")]);
        let m = |wall_s| Medians { runs: 1, wall_s, cpu_s: 1.0, peak_rss_mib: 2.0, peak_pss_mib: 2.0 };
        let r = Ratio::new("t1", "p1", &m(1.0), &m(4.0));
        assert_eq!((r.wall, r.cpu, r.peak_rss), (0.25, 1.0, 1.0));
    }
}
