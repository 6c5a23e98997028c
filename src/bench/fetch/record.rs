//! The fetch bench's records: a run's row (its cost and the check of its
//! download directory), medians per workload and contender, ratios to the
//! peers, the `active` workload's memory per download, and their tables.

use serde::Serialize;

use super::{MIB, Workload, human_size};
use crate::bench::harness::{self, Medians, Record, median};

/// One measured run.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    /// `small`, `large`, `active-1m`...
    pub workload: String,
    /// Contender label.
    pub tool: String,
    /// Downloads at once (`active`: the workload's N, or 1 for the baseline).
    pub jobs: usize,
    /// Round number (from 1).
    pub run: u32,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// User+system CPU, seconds (children included).
    pub cpu_s: f64,
    /// Peak RSS summed over the process tree, MiB.
    pub peak_rss_mib: f64,
    /// Peak PSS summed over the process tree, MiB.
    pub peak_pss_mib: f64,
    /// Verified files per second of wall time.
    pub files_per_s: f64,
    /// Verified MiB per second of wall time.
    pub mib_per_s: f64,
    /// Files the corpus has.
    pub files_expected: u64,
    /// Files present with the right size and SHA-256.
    pub files_ok: u64,
    /// Expected files absent.
    pub missing: u64,
    /// Expected files of another size.
    pub wrong_size: u64,
    /// Expected files of the right size but other bytes.
    pub wrong_sha256: u64,
    /// Anything else left in the download directory (`.part`, `.aria2`...).
    pub extra: u64,
    /// Killed at the time limit.
    pub timed_out: bool,
    /// Exit code (None: killed by a signal).
    pub exit_code: Option<i32>,
    /// `active`, trident only: the most `.part` files present at once in
    /// the download directory (sampled every 20 ms), i.e. downloads in flight.
    pub in_flight_max: Option<u64>,
    /// `active`, trident only: how long all of the run's downloads were in
    /// flight at the same time, seconds.
    pub all_in_flight_s: Option<f64>,
}

impl Record for RunRecord {
    harness::record_columns!();

    fn clean(&self) -> bool {
        self.files_ok == self.files_expected && self.extra == 0 && self.exit_code == Some(0) && !self.timed_out
    }
}

impl RunRecord {
    pub(super) fn problems(&self) -> String {
        let mut p = Vec::new();
        for (n, what) in [
            (self.missing, "missing"),
            (self.wrong_size, "wrong size"),
            (self.wrong_sha256, "wrong sha256"),
            (self.extra, "extra"),
        ] {
            if n > 0 {
                p.push(format!("{n} {what}"));
            }
        }
        if self.timed_out {
            p.push("time limit".into());
        } else if self.exit_code != Some(0) {
            p.push(format!("exit {:?}", self.exit_code));
        }
        if p.is_empty() { String::new() } else { format!(" ({})", p.join(", ")) }
    }
}

/// Medians of one contender on one workload.
#[derive(Clone, Debug, Serialize)]
pub struct ToolSummary {
    /// `small` or `large`.
    pub workload: String,
    /// Contender label.
    pub tool: String,
    /// Runs, wall time, CPU, peak memory.
    #[serde(flatten)]
    pub medians: Medians,
    /// Median CPU seconds per GiB of corpus.
    pub cpu_s_per_gib: f64,
    /// Median verified files per second.
    pub files_per_s: f64,
    /// Median verified MiB per second.
    pub mib_per_s: f64,
    /// Worst share of correct files in any run.
    pub min_correct: f64,
    /// Runs with a wrong, missing or extra file, an error exit or a timeout.
    pub bad_runs: usize,
    /// Runs killed at the time limit.
    pub timeouts: usize,
}

/// `active`: memory per download in flight, one contender and file size.
#[derive(Clone, Debug, Serialize)]
pub struct ActiveSummary {
    /// `active-1m`...
    pub workload: String,
    /// Contender label.
    pub tool: String,
    /// Bytes per file.
    pub file_size: u64,
    /// N: files, all fetched at once.
    pub files: usize,
    /// Bytes per second per connection the server sent.
    pub rate_limit: u64,
    /// Recorded runs at -j N (and as many at -j 1).
    pub runs: usize,
    /// Median peak RSS (process tree) fetching N files at -j N, MiB.
    pub peak_rss_n_mib: f64,
    /// Median peak RSS fetching 1 of them at -j 1, MiB.
    pub peak_rss_1_mib: f64,
    /// (peak RSS at N - peak RSS at 1) / (N - 1), KiB.
    pub per_download_rss_kib: f64,
    /// Median peak PSS at -j N, MiB.
    pub peak_pss_n_mib: f64,
    /// Median peak PSS at -j 1, MiB.
    pub peak_pss_1_mib: f64,
    /// (peak PSS at N - peak PSS at 1) / (N - 1), KiB.
    pub per_download_pss_kib: f64,
    /// Median wall time at -j N, seconds.
    pub wall_n_s: f64,
    /// Trident: fewest downloads seen in flight at once at the peak, over
    /// the -j N runs (N when every run had them all going together).
    pub in_flight_min_max: Option<u64>,
    /// Trident: shortest time, over the -j N runs, all N were in flight together, s.
    pub all_in_flight_min_s: Option<f64>,
    /// Runs (either concurrency) with a wrong, missing or extra file, an
    /// error exit or a timeout.
    pub bad_runs: usize,
}

/// A trident engine's medians over a peer's, same workload, same bench run.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// `small` or `large`.
    pub workload: String,
    /// Wall time, CPU and peak RSS.
    #[serde(flatten)]
    pub ratio: harness::Ratio,
    /// Median MiB/s / peer's (above 1: faster).
    pub throughput: f64,
}

/// The whole result, as written to summary.json.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// The server, e.g. `nginx 1.22.1 (sendfile on) at 127.0.0.1:41234`.
    pub server: String,
    /// Whether the built-in server stood in for nginx.
    pub builtin_server: bool,
    /// Where the downloads were written (see `sys::storage`), e.g. `ext4
    /// (no journal) on /dev/vda at /`: small-file results depend on its
    /// flush cost, which only the tools that sync pay.
    pub storage: Option<String>,
    /// The workloads.
    pub workloads: Vec<Workload>,
    /// Every run.
    pub runs: Vec<RunRecord>,
    /// Medians per workload and contender.
    pub summary: Vec<ToolSummary>,
    /// Engines against peers.
    pub ratios: Vec<Ratio>,
    /// `active` workloads: memory per download in flight.
    pub active: Vec<ActiveSummary>,
    /// What the report says of some contenders (the chapter's programs).
    pub notes: Vec<String>,
}

impl BenchReport {
    /// Whether every trident run fetched every file correctly.
    pub fn trident_correct(&self) -> bool {
        self.summary.iter().filter(|s| s.tool.starts_with("trident-")).all(|s| s.bad_runs == 0 && s.min_correct >= 1.0)
            && self.active.iter().filter(|s| s.tool.starts_with("trident-")).all(|s| s.bad_runs == 0)
    }
}

/// Summaries and ratios of one workload's records.
pub fn summarise(
    workload: &Workload,
    tools: &[String],
    runs: &[RunRecord],
    peers: &[String],
) -> (Vec<ToolSummary>, Vec<Ratio>) {
    let gib = workload.total_bytes() as f64 / (MIB * 1024.0);
    let name = workload.name();
    let summary: Vec<ToolSummary> = tools
        .iter()
        .map(|tool| {
            let mine: Vec<&RunRecord> =
                runs.iter().filter(|r| &r.tool == tool && r.workload == name && r.jobs == workload.jobs).collect();
            let pick = |f: fn(&RunRecord) -> f64| median(mine.iter().map(|r| f(r)).collect());
            let medians = Medians::of(&mine);
            ToolSummary {
                workload: name.clone(),
                tool: tool.clone(),
                cpu_s_per_gib: medians.cpu_s / gib,
                medians,
                files_per_s: pick(|r| r.files_per_s),
                mib_per_s: pick(|r| r.mib_per_s),
                min_correct: mine
                    .iter()
                    .map(|r| if r.files_expected == 0 { 1.0 } else { r.files_ok as f64 / r.files_expected as f64 })
                    .fold(f64::INFINITY, f64::min),
                bad_runs: mine.iter().filter(|r| !r.clean()).count(),
                timeouts: mine.iter().filter(|r| r.timed_out).count(),
            }
        })
        .collect();
    let ratios = harness::engine_peer_pairs(&summary, |s| &s.tool, peers)
        .into_iter()
        .map(|(s, p)| Ratio {
            workload: name.clone(),
            ratio: harness::Ratio::new(&s.tool, &p.tool, &s.medians, &p.medians),
            throughput: s.mib_per_s / p.mib_per_s,
        })
        .collect();
    (summary, ratios)
}

/// An `active` workload's memory per download, per contender: medians of
/// the -j N and the -j 1 runs, and their difference over N - 1.
pub fn summarise_active(workload: &Workload, tools: &[String], runs: &[RunRecord]) -> Vec<ActiveSummary> {
    let name = workload.name();
    let others = workload.files.saturating_sub(1).max(1) as f64;
    tools
        .iter()
        .map(|tool| {
            let at = |jobs: usize| -> Vec<&RunRecord> {
                runs.iter().filter(|r| &r.tool == tool && r.workload == name && r.jobs == jobs).collect()
            };
            let (n, one) = (at(workload.jobs), at(1));
            let pick = |rs: &[&RunRecord], f: fn(&RunRecord) -> f64| median(rs.iter().map(|r| f(r)).collect());
            let (rss_n, rss_1) = (pick(&n, |r| r.peak_rss_mib), pick(&one, |r| r.peak_rss_mib));
            let (pss_n, pss_1) = (pick(&n, |r| r.peak_pss_mib), pick(&one, |r| r.peak_pss_mib));
            ActiveSummary {
                workload: name.clone(),
                tool: tool.clone(),
                file_size: workload.file_size,
                files: workload.files,
                rate_limit: workload.rate_limit.unwrap_or(0),
                runs: n.len(),
                peak_rss_n_mib: rss_n,
                peak_rss_1_mib: rss_1,
                per_download_rss_kib: (rss_n - rss_1) * 1024.0 / others,
                peak_pss_n_mib: pss_n,
                peak_pss_1_mib: pss_1,
                per_download_pss_kib: (pss_n - pss_1) * 1024.0 / others,
                wall_n_s: pick(&n, |r| r.wall_s),
                in_flight_min_max: n.iter().filter_map(|r| r.in_flight_max).min(),
                all_in_flight_min_s: n.iter().filter_map(|r| r.all_in_flight_s).min_by(f64::total_cmp),
                bad_runs: n.iter().chain(&one).filter(|r| !r.clean()).count(),
            }
        })
        .collect()
}

/// The tables of medians, ratios and, for `active`, memory per download.
pub fn print_summary(summary: &[ToolSummary], ratios: &[Ratio], active: &[ActiveSummary]) {
    let wl_width = summary.iter().map(|s| s.workload.len()).max().unwrap_or(0).max(6);
    println!();
    println!(
        "{:<wl_width$} {:<18} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>8}",
        "MEDIAN", "TOOL", "WALL", "CPU", "CPU/GiB", "PEAK RSS", "PEAK PSS", "FILES/S", "MIB/S", "CORRECT"
    );
    for s in summary {
        println!(
            "{:<wl_width$} {:<18} {:>8.3}s {:>8.3}s {:>8.2}s {:>6.1} MiB {:>6.1} MiB {:>9.0} {:>9.1} {:>7.1}%{}",
            s.workload,
            s.tool,
            s.medians.wall_s,
            s.medians.cpu_s,
            s.cpu_s_per_gib,
            s.medians.peak_rss_mib,
            s.medians.peak_pss_mib,
            s.files_per_s,
            s.mib_per_s,
            s.min_correct * 100.0,
            if s.bad_runs > 0 {
                format!("  ({} of {} runs not clean)", s.bad_runs, s.medians.runs)
            } else {
                String::new()
            }
        );
    }
    if !ratios.is_empty() {
        println!();
        println!(
            "{:<wl_width$} {:<18} {:<16} {:>7} {:>7} {:>9} {:>10}",
            "RATIO", "(median/median)", "VS", "WALL", "CPU", "PEAK RSS", "THROUGHPUT"
        );
        for r in ratios {
            println!(
                "{:<wl_width$} {:<18} {:<16} {:>6.3}x {:>6.3}x {:>8.3}x {:>9.3}x",
                r.workload, r.ratio.tool, r.ratio.peer, r.ratio.wall, r.ratio.cpu, r.ratio.peak_rss, r.throughput
            );
        }
    }
    if !active.is_empty() {
        print_active(active);
    }
}

/// The goal of issue 4 §4: peak RSS per active download at most this far
/// above the process with one download, KiB.
const PER_DOWNLOAD_GOAL_KIB: f64 = 256.0;

/// The `active` table: peak memory at N and at 1, and per download.
fn print_active(active: &[ActiveSummary]) {
    println!();
    println!(
        "PER ACTIVE DOWNLOAD: median peak of the process tree at -j N (N files at once) and at -j 1 (one of them); \
         per download = (N - 1 difference) / (N - 1)"
    );
    println!(
        "{:<18} {:>8} {:>5} {:>11} {:>11} {:>13} {:>11} {:>11} {:>13} {:>14} {:>5}",
        "ENGINE",
        "SIZE",
        "N",
        "PEAK RSS N",
        "PEAK RSS 1",
        "PER DOWNLOAD",
        "PEAK PSS N",
        "PEAK PSS 1",
        "PSS/DOWNLOAD",
        "ALL IN FLIGHT",
        "GOAL"
    );
    for a in active {
        let flight = match (a.in_flight_min_max, a.all_in_flight_min_s) {
            (Some(max), Some(s)) if max as usize >= a.files => format!("{s:.1}s"),
            (Some(max), _) => format!("only {max}"),
            _ => "-".into(),
        };
        println!(
            "{:<18} {:>8} {:>5} {:>7.1} MiB {:>7.1} MiB {:>9.1} KiB {:>7.1} MiB {:>7.1} MiB {:>9.1} KiB {:>14} {:>5}{}",
            a.tool,
            human_size(a.file_size),
            a.files,
            a.peak_rss_n_mib,
            a.peak_rss_1_mib,
            a.per_download_rss_kib,
            a.peak_pss_n_mib,
            a.peak_pss_1_mib,
            a.per_download_pss_kib,
            flight,
            if a.per_download_rss_kib <= PER_DOWNLOAD_GOAL_KIB { "met" } else { "over" },
            match a.bad_runs {
                0 => String::new(),
                bad => format!("  ({bad} runs not clean)"),
            }
        );
    }
    println!("GOAL: per download (RSS) <= {PER_DOWNLOAD_GOAL_KIB:.0} KiB and independent of file size (issue 4 §4)");
    let mut tools: Vec<&str> = Vec::new();
    for a in active {
        if !tools.contains(&a.tool.as_str()) {
            tools.push(&a.tool);
        }
    }
    for tool in tools {
        let mine: Vec<&ActiveSummary> = active.iter().filter(|a| a.tool == tool).collect();
        if let (Some(small), Some(big)) =
            (mine.iter().min_by_key(|a| a.file_size), mine.iter().max_by_key(|a| a.file_size))
            && small.file_size != big.file_size
        {
            println!(
                "  {tool}: per download {} -> {}: {:.1} -> {:.1} KiB ({:+.1} KiB)",
                human_size(small.file_size),
                human_size(big.file_size),
                small.per_download_rss_kib,
                big.per_download_rss_kib,
                big.per_download_rss_kib - small.per_download_rss_kib
            );
        }
    }
    if active.iter().any(|a| a.in_flight_min_max.is_some_and(|m| (m as usize) < a.files)) {
        println!("  note: not every download was in flight at once in some run; raise --active-duration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::fetch::WorkloadKind;

    #[test]
    fn medians_and_ratios() {
        let w = Workload { kind: WorkloadKind::Small, files: 10, file_size: 1000, jobs: 4, rate_limit: None };
        let rec = |tool: &str, wall: f64, ok: u64| RunRecord {
            workload: "small".into(),
            tool: tool.into(),
            jobs: 4,
            run: 1,
            wall_s: wall,
            cpu_s: wall,
            peak_rss_mib: 10.0,
            peak_pss_mib: 10.0,
            files_per_s: ok as f64 / wall,
            mib_per_s: ok as f64 / wall,
            files_expected: 10,
            files_ok: ok,
            missing: 10 - ok,
            wrong_size: 0,
            wrong_sha256: 0,
            extra: 0,
            timed_out: false,
            exit_code: Some(0),
            in_flight_max: None,
            all_in_flight_s: None,
        };
        let runs = vec![rec("t", 1.0, 10), rec("t", 3.0, 10), rec("p", 4.0, 10), rec("p", 2.0, 9)];
        let (s, r) = summarise(&w, &["t".into(), "p".into()], &runs, &["p".into()]);
        assert_eq!((s[0].medians.wall_s, s[1].medians.wall_s), (2.0, 3.0));
        assert_eq!((s[0].bad_runs, s[1].bad_runs), (0, 1));
        assert!((s[1].min_correct - 0.9).abs() < 1e-9);
        assert!((r[0].ratio.wall - 2.0 / 3.0).abs() < 1e-9);
    }
}
