//! `trident bench scan`: every engine, and every peer scanner that is
//! installed, against the same target, alternating, measured the same way.
//!
//! What is particular to scanning: each contender's command line, the open
//! ports parsed from its output and compared with the target's ground truth
//! (recall, false positives), and the target (a lab, or listeners on
//! loopback). The rounds, medians, same-run ratios and output are the
//! [`harness`]'s.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::chapter::{self, Program, Programs};
use super::fixture::{ScanTarget, TempDir};
use super::harness::{self, Cost, Medians, Ratio, Record};
use super::measure::{Measurement, measure_with_limit};
use crate::engine::EngineKind;

/// The peer scanners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// `nmap -sT`, defaults otherwise.
    Nmap,
    /// RustScan in its full-recall configuration (`-b 10000 -t 500 --tries 1`).
    RustScan,
    /// RustScan with its defaults.
    RustScanDefault,
    /// One of the chapter's Python scanners.
    Chapter(ChapterScanner),
}

/// The chapter's scanners (`bench/chapter/scan_*.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChapterScanner {
    /// A thread per port, 1 s connect timeout.
    Threads,
    /// A process pool mapping over the ports, 1 s connect timeout.
    Processes,
    /// A coroutine per port, gathered, no timeout: a filtered port holds
    /// the scan until the kernel gives up on the connect (~2 min).
    Asyncio,
    /// The same with the smallest fix, a 1 s timeout per connect: changed
    /// from the chapter, and labelled so.
    AsyncioTimeout,
}

impl ChapterScanner {
    const ALL: [ChapterScanner; 4] =
        [ChapterScanner::Threads, ChapterScanner::Processes, ChapterScanner::Asyncio, ChapterScanner::AsyncioTimeout];

    /// The `--vs` name and label.
    fn name(self) -> &'static str {
        match self {
            ChapterScanner::Threads => "chapter-threads",
            ChapterScanner::Processes => "chapter-processes",
            ChapterScanner::Asyncio => "chapter-asyncio",
            ChapterScanner::AsyncioTimeout => "chapter-asyncio-timeout",
        }
    }

    fn program(self) -> Program {
        match self {
            ChapterScanner::Threads => Program::ScanThreads,
            ChapterScanner::Processes => Program::ScanProcesses,
            ChapterScanner::Asyncio | ChapterScanner::AsyncioTimeout => Program::ScanAsyncio,
        }
    }
}

impl harness::Peer for Peer {
    fn parse(name: &str) -> Result<Self, String> {
        match name {
            "nmap" => Ok(Peer::Nmap),
            "rustscan" => Ok(Peer::RustScan),
            "rustscan-default" => Ok(Peer::RustScanDefault),
            _ => match ChapterScanner::ALL.into_iter().find(|c| c.name() == name) {
                Some(chapter) => Ok(Peer::Chapter(chapter)),
                None => Err(format!(
                    "unknown peer {name:?} (expected nmap, rustscan, rustscan-default, chapter-threads, \
                     chapter-processes, chapter-asyncio or chapter-asyncio-timeout)"
                )),
            },
        }
    }

    fn label(&self) -> String {
        match self {
            Peer::Nmap => "nmap -sT".into(),
            Peer::RustScan => "rustscan -b10000 -t500".into(),
            Peer::RustScanDefault => "rustscan (defaults)".into(),
            Peer::Chapter(chapter) => chapter.name().into(),
        }
    }

    fn program(&self) -> &'static str {
        match self {
            Peer::Nmap => "nmap",
            Peer::RustScan | Peer::RustScanDefault => "rustscan",
            Peer::Chapter(_) => "python3",
        }
    }

    fn locate(&self) -> Result<PathBuf, String> {
        match self {
            Peer::Chapter(_) => chapter::python().ok_or_else(|| chapter::NO_PYTHON.to_string()),
            _ => harness::find_program(self.program()).ok_or_else(|| format!("{} is not installed", self.program())),
        }
    }
}

/// A program being compared: `trident scan -e ENGINE` or a peer.
pub type Contender = harness::Contender<Peer>;

impl Contender {
    /// The command line scanning `ip` on `ports` (`a-b` or a list); the
    /// chapter's scanners run from `chapter` (written out by the bench).
    pub fn command(
        &self,
        exe: &Path,
        ip: IpAddr,
        ports: &str,
        scan_args: &[String],
        chapter: Option<&Programs>,
    ) -> Command {
        let mut cmd = Command::new(exe);
        match self {
            Contender::Trident(engine) => {
                cmd.args(["scan", &ip.to_string(), "-p", ports, "-e", engine.name(), "-f", "jsonl", "--open", "-q"]);
                cmd.args(scan_args);
            }
            Contender::Peer(Peer::Nmap) => {
                cmd.args(["-sT", "-n", "-Pn", "-p", ports, "--open", "-oG", "-", &ip.to_string()]);
            }
            Contender::Peer(rustscan @ (Peer::RustScan | Peer::RustScanDefault)) => {
                cmd.args(["-a", &ip.to_string(), "-g", "--no-config", "--ulimit", "65535"]);
                match ports.split_once('-').filter(|_| !ports.contains(',')) {
                    Some(_) => cmd.args(["-r", ports]),
                    None => cmd.args(["-p", ports]),
                };
                if *rustscan == Peer::RustScan {
                    cmd.args(["-b", "10000", "-t", "500", "--tries", "1"]);
                }
            }
            Contender::Peer(Peer::Chapter(scanner)) => {
                let program = scanner.program();
                cmd.arg(chapter.map_or_else(|| program.file_name().into(), |c| c.path(program)));
                cmd.args([&ip.to_string(), ports]);
                if *scanner == ChapterScanner::AsyncioTimeout {
                    cmd.args(["--timeout", "1"]);
                }
            }
        }
        cmd
    }

    /// The open ports in the contender's output.
    pub fn open_ports(&self, stdout: &str) -> BTreeSet<u16> {
        let mut open = BTreeSet::new();
        match self {
            Contender::Trident(_) => {
                for line in stdout.lines() {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                        if v["state"] == "open" {
                            open.extend(v["port"].as_u64().and_then(|p| u16::try_from(p).ok()));
                        }
                    }
                }
            }
            Contender::Peer(Peer::Nmap) => {
                // Host: 10.0.0.2 ()	Ports: 22/open/tcp//ssh///, 80/open/tcp//http///
                for line in stdout.lines().filter(|l| l.starts_with("Host:")) {
                    let Some((_, ports)) = line.split_once("Ports: ") else { continue };
                    let ports = ports.split('\t').next().unwrap_or("");
                    for entry in ports.split(", ") {
                        let mut f = entry.split('/');
                        if let (Some(port), Some("open")) = (f.next(), f.next()) {
                            open.extend(port.trim().parse::<u16>().ok());
                        }
                    }
                }
            }
            Contender::Peer(Peer::Chapter(_)) => {
                // Port 22: Open
                for line in stdout.lines() {
                    let port = line.strip_prefix("Port ").and_then(|l| l.strip_suffix(": Open"));
                    open.extend(port.and_then(|p| p.parse::<u16>().ok()));
                }
            }
            Contender::Peer(Peer::RustScan | Peer::RustScanDefault) => {
                // 10.0.0.2 -> [22,80]
                for line in stdout.lines() {
                    let Some((_, list)) = line.split_once("-> [") else { continue };
                    let list = list.trim_end().trim_end_matches(']');
                    open.extend(list.split(',').filter_map(|p| p.trim().parse::<u16>().ok()));
                }
            }
        }
        open
    }
}

/// One measured run.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    /// Contender label.
    pub tool: String,
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
    /// Share of the truly open ports reported open.
    pub recall: f64,
    /// Ports reported open that are not.
    pub false_positives: u64,
    /// Ports reported open.
    pub found: u64,
    /// Killed at the time limit.
    pub timed_out: bool,
    /// Exit code (None: killed by a signal).
    pub exit_code: Option<i32>,
}

impl RunRecord {
    /// The record of `m`, a run that reported `found` open where `truth` is.
    pub fn new(tool: String, run: u32, m: &Measurement, found: &BTreeSet<u16>, truth: &BTreeSet<u16>) -> Self {
        let hits = found.intersection(truth).count();
        let Cost { wall_s, cpu_s, peak_rss_mib, peak_pss_mib } = Cost::from(m);
        RunRecord {
            tool,
            run,
            wall_s,
            cpu_s,
            peak_rss_mib,
            peak_pss_mib,
            recall: if truth.is_empty() { 1.0 } else { hits as f64 / truth.len() as f64 },
            false_positives: (found.len() - hits) as u64,
            found: found.len() as u64,
            timed_out: m.timed_out,
            exit_code: m.exit_code,
        }
    }
}

impl Record for RunRecord {
    harness::record_columns!();

    fn clean(&self) -> bool {
        self.recall >= 1.0 && self.false_positives == 0 && self.exit_code == Some(0) && !self.timed_out
    }
}

/// Medians of one contender over the recorded runs.
#[derive(Clone, Debug, Serialize)]
pub struct ToolSummary {
    /// Contender label.
    pub tool: String,
    /// Runs, wall time, CPU, peak memory.
    #[serde(flatten)]
    pub medians: Medians,
    /// Worst recall of any run.
    pub min_recall: f64,
    /// Most false positives of any run.
    pub max_false_positives: u64,
    /// Runs killed at the time limit.
    pub timeouts: usize,
}

/// The whole result, as written to summary.json.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// What was scanned.
    pub target: String,
    /// Port specification.
    pub ports: String,
    /// Open ports of the target.
    pub truth: Vec<u16>,
    /// Every run.
    pub runs: Vec<RunRecord>,
    /// Medians per contender.
    pub summary: Vec<ToolSummary>,
    /// Engines against peers.
    pub ratios: Vec<Ratio>,
    /// What the report says of some contenders (the chapter's scanners).
    pub notes: Vec<String>,
}

impl BenchReport {
    /// Whether every trident run found exactly the truth.
    pub fn trident_perfect(&self) -> bool {
        self.summary
            .iter()
            .filter(|s| s.tool.starts_with("trident-"))
            .all(|s| s.min_recall >= 1.0 && s.max_false_positives == 0)
    }
}

/// Summaries and ratios from the run records.
pub fn summarise(contenders: &[String], runs: &[RunRecord], peers: &[String]) -> (Vec<ToolSummary>, Vec<Ratio>) {
    let summary: Vec<ToolSummary> = contenders
        .iter()
        .map(|tool| {
            let mine: Vec<&RunRecord> = runs.iter().filter(|r| &r.tool == tool).collect();
            ToolSummary {
                tool: tool.clone(),
                medians: Medians::of(&mine),
                min_recall: mine.iter().map(|r| r.recall).fold(f64::INFINITY, f64::min),
                max_false_positives: mine.iter().map(|r| r.false_positives).max().unwrap_or(0),
                timeouts: mine.iter().filter(|r| r.timed_out).count(),
            }
        })
        .collect();
    // A contender none of whose runs finished has no time to compare: its
    // wall time is the time limit (the summary says it did not finish).
    let finished = |s: &ToolSummary| s.timeouts < s.medians.runs;
    let ratios = harness::engine_peer_pairs(&summary, |s| &s.tool, peers)
        .into_iter()
        .filter(|(s, p)| finished(s) && finished(p))
        .map(|(s, p)| Ratio::new(&s.tool, &p.tool, &s.medians, &p.medians))
        .collect();
    (summary, ratios)
}

/// What the report says about the chapter's scanners: what they are,
/// under which interpreter, and which one is changed from the chapter.
fn chapter_note(python: &Path, time_limit: Duration) -> String {
    format!(
        "chapter-*: the chapter's scanners (bench/chapter/scan_*.py) under {} ({}); chapter-asyncio has \
         no timeout, as the chapter's: a filtered port holds it until the kernel gives up (~2 min), and a run \
         killed at the {time_limit:?} time limit is reported as not finished; chapter-asyncio-timeout is \
         CHANGED from the chapter: a 1 s timeout per connect, its smallest fix",
        python.display(),
        chapter::version(python)
    )
}

/// Options of `trident bench scan` (validated).
#[derive(Clone, Debug)]
pub struct ScanBenchConfig {
    /// `loopback`, or a lab preset name.
    pub target: String,
    /// Trident engines to run.
    pub engines: Vec<EngineKind>,
    /// Peers to run when installed.
    pub peers: Vec<Peer>,
    /// Recorded rounds.
    pub runs: u32,
    /// Unrecorded rounds first.
    pub warmup: u32,
    /// Port specification for every contender.
    pub ports: String,
    /// Extra `trident scan` arguments.
    pub scan_args: Vec<String>,
    /// Per-run time limit.
    pub time_limit: Duration,
    /// Where to write runs.csv and summary.json.
    pub out: Option<PathBuf>,
}

/// What to say when `-p` leaves out some of the `open` ports of the target
/// (`inside` are in it): recall is measured on those inside only, and on
/// none it is a meaningless 100%.
fn range_warning(open: usize, inside: usize, ports: &str) -> Option<String> {
    if inside == open {
        None
    } else if inside == 0 {
        Some(format!(
            "none of the {open} open ports of the target is inside -p {ports}: a recall of 0 open ports says \
nothing (use -p- or a range that holds them)"
        ))
    } else {
        Some(format!(
            "{} of the {open} open ports of the target are outside -p {ports}: recall counts only the {inside} inside",
            open - inside
        ))
    }
}

/// Runs the bench, printing as it goes; returns the report.
pub fn run(config: &ScanBenchConfig) -> anyhow::Result<BenchReport> {
    let contenders = harness::line_up(&config.engines, config.peers.iter().cloned())?;
    let mut target = ScanTarget::start(&config.target)?;
    // The truth of what is scanned: open ports outside `--ports` are not
    // expected of anyone.
    let scanned = crate::scan::PortList::parse(&config.ports).map_err(|e| anyhow::anyhow!(e))?;
    let open = target.truth.len();
    target.truth.retain(|p| scanned.as_slice().binary_search(p).is_ok());
    if let Some(warning) = range_warning(open, target.truth.len(), &config.ports) {
        eprintln!("trident: warning: {warning}");
    }
    let (labels, peers) = harness::labels(&contenders);
    println!(
        "bench scan: {} ports {} ({} open); {} warm-up + {} runs each, alternating",
        target.description,
        config.ports,
        target.truth.len(),
        config.warmup,
        config.runs
    );
    // The chapter's scanners, written out for this bench (see bench::chapter).
    let python = contenders.iter().find(|(c, _)| matches!(c, Contender::Peer(Peer::Chapter(_))));
    let scratch = python.map(|_| TempDir::new("trident-bench-scan")).transpose()?;
    let programs = scratch.as_ref().map(|dir| Programs::install(dir.path())).transpose()?;
    let notes: Vec<String> = python.map(|(_, python)| chapter_note(python, config.time_limit)).into_iter().collect();
    for note in &notes {
        println!("{note}");
    }
    println!("{} {:>8} {:>4}", harness::run_header(24), "RECALL", "FP");
    let mut records = Vec::new();
    harness::rotate(&contenders, config.warmup, config.runs, |(contender, exe), run| {
        let mut cmd = contender.command(exe, target.ip, &config.ports, &config.scan_args, programs.as_ref());
        let m = measure_with_limit(&mut cmd, Some(config.time_limit))
            .with_context(|| format!("cannot run {}", contender.label()))?;
        let found = contender.open_ports(&String::from_utf8_lossy(&m.stdout));
        let rec = RunRecord::new(contender.label(), run, &m, &found, &target.truth);
        println!(
            "{} {:>7.1}% {:>4}{}",
            harness::run_row(run, &rec.tool, 24, &rec.cost()),
            rec.recall * 100.0,
            rec.false_positives,
            if rec.timed_out {
                format!(" (did not finish: killed at the {:?} time limit)", config.time_limit)
            } else if rec.exit_code != Some(0) {
                format!(" (exit {:?})", rec.exit_code)
            } else {
                String::new()
            }
        );
        if run > 0 {
            records.push(rec);
        }
        Ok(())
    })?;
    let (summary, ratios) = summarise(&labels, &records, &peers);
    println!();
    println!(
        "{:<24} {:>9} {:>9} {:>10} {:>10} {:>10} {:>6}",
        "MEDIANS", "WALL", "CPU", "PEAK RSS", "PEAK PSS", "MIN RECALL", "MAX FP"
    );
    for s in &summary {
        if s.timeouts == s.medians.runs {
            println!("{:<24} did not finish: every run killed at the {:?} time limit", s.tool, config.time_limit);
            continue;
        }
        println!(
            "{:<24} {:>8.3}s {:>8.3}s {:>6.1} MiB {:>6.1} MiB {:>9.1}% {:>6}{}",
            s.tool,
            s.medians.wall_s,
            s.medians.cpu_s,
            s.medians.peak_rss_mib,
            s.medians.peak_pss_mib,
            s.min_recall * 100.0,
            s.max_false_positives,
            if s.timeouts > 0 { format!("  ({} did not finish: time limit)", s.timeouts) } else { String::new() }
        );
    }
    if !ratios.is_empty() {
        println!();
        println!("{:<24} {:<24} {:>7} {:>7} {:>9}", "RATIO (median/median)", "VS", "WALL", "CPU", "PEAK RSS");
        for r in &ratios {
            println!("{:<24} {:<24} {:>6.3}x {:>6.3}x {:>8.3}x", r.tool, r.peer, r.wall, r.cpu, r.peak_rss);
        }
    }
    let report = BenchReport {
        target: target.description.clone(),
        ports: config.ports.clone(),
        truth: target.truth.iter().copied().collect(),
        runs: records,
        summary,
        ratios,
        notes,
    };
    if let Some(dir) = &config.out {
        harness::write_out(dir, &report.runs, &report)?;
        println!("\nwrote {}/runs.csv and {}/summary.json", dir.display(), dir.display());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_tools_output() {
        let jsonl = "{\"ip\":\"10.0.0.2\",\"port\":22,\"state\":\"open\"}\n{\"ip\":\"10.0.0.2\",\"port\":23,\"state\":\"closed\"}\n";
        assert_eq!(Contender::Trident(EngineKind::Async).open_ports(jsonl), BTreeSet::from([22]));
        let grep = "# Nmap 7.93 scan initiated\nHost: 10.0.0.2 ()\tStatus: Up\nHost: 10.0.0.2 ()\tPorts: 22/open/tcp//ssh///, 8080/open/tcp//http-proxy///\tIgnored State: closed (998)\n# Nmap done\n";
        assert_eq!(Contender::Peer(Peer::Nmap).open_ports(grep), BTreeSet::from([22, 8080]));
        let rs = "10.0.0.2 -> [22,8080,65535]\n";
        assert_eq!(Contender::Peer(Peer::RustScan).open_ports(rs), BTreeSet::from([22, 8080, 65535]));
        let chapter = "Port 22: Open\nPort 8080: Open\nThreaded Port Scan completed in 1.02 seconds\nPort 9: Closed\n";
        let threads = Contender::Peer(Peer::Chapter(ChapterScanner::Threads));
        assert_eq!(threads.open_ports(chapter), BTreeSet::from([22, 8080]));
    }

    #[test]
    fn a_range_that_misses_open_ports_is_said() {
        assert_eq!(range_warning(5, 5, "-"), None);
        assert_eq!(range_warning(0, 0, "1-100"), None);
        let some = range_warning(50, 3, "1-3000").unwrap_or_default();
        assert!(some.starts_with("47 of the 50 open ports") && some.contains("only the 3 inside"), "{some}");
        let none = range_warning(50, 0, "1-2000").unwrap_or_default();
        assert!(none.starts_with("none of the 50") && none.contains("-p 1-2000"), "{none}");
    }

    #[test]
    fn medians_and_ratios() {
        let rec = |tool: &str, wall: f64| RunRecord {
            tool: tool.into(),
            run: 1,
            wall_s: wall,
            cpu_s: wall,
            peak_rss_mib: 10.0,
            peak_pss_mib: 10.0,
            recall: 1.0,
            false_positives: 0,
            found: 1,
            timed_out: false,
            exit_code: Some(0),
        };
        let mut runs = vec![rec("a", 1.0), rec("a", 3.0), rec("a", 2.0), rec("p", 4.0), rec("p", 8.0)];
        let (summary, ratios) = summarise(&["a".into(), "p".into()], &runs, &["p".into()]);
        assert_eq!(summary[0].medians.wall_s, 2.0);
        assert_eq!(summary[1].medians.wall_s, 6.0);
        assert_eq!(ratios.len(), 1);
        assert!((ratios[0].wall - 2.0 / 6.0).abs() < 1e-9);
        // A peer that never finished stays in the summary, without a ratio.
        runs.push(RunRecord { timed_out: true, exit_code: None, ..rec("h", 300.0) });
        let (summary, ratios) = summarise(&["a".into(), "p".into(), "h".into()], &runs, &["p".into(), "h".into()]);
        assert_eq!((summary[2].tool.as_str(), summary[2].timeouts), ("h", 1));
        assert_eq!(ratios.iter().map(|r| r.peer.as_str()).collect::<Vec<_>>(), ["p"]);
    }

    #[test]
    fn peer_commands() {
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let args = |c: Contender| {
            c.command(Path::new("x"), ip, "1-65535", &[], None)
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            args(Contender::Peer(Peer::Nmap)),
            ["-sT", "-n", "-Pn", "-p", "1-65535", "--open", "-oG", "-", "10.0.0.2"]
        );
        let chapter = |c| args(Contender::Peer(Peer::Chapter(c)));
        assert_eq!(chapter(ChapterScanner::Threads), ["scan_threads.py", "10.0.0.2", "1-65535"]);
        assert_eq!(chapter(ChapterScanner::Processes), ["scan_processes.py", "10.0.0.2", "1-65535"]);
        assert_eq!(chapter(ChapterScanner::Asyncio), ["scan_asyncio.py", "10.0.0.2", "1-65535"]);
        assert_eq!(
            chapter(ChapterScanner::AsyncioTimeout),
            ["scan_asyncio.py", "10.0.0.2", "1-65535", "--timeout", "1"]
        );
        for c in ChapterScanner::ALL {
            assert_eq!(<Peer as harness::Peer>::parse(c.name()), Ok(Peer::Chapter(c)));
        }
        let rs = args(Contender::Peer(Peer::RustScan));
        assert!(rs.windows(2).any(|w| w == ["-r", "1-65535"]) && rs.windows(2).any(|w| w == ["-b", "10000"]), "{rs:?}");
    }
}
