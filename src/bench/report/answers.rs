//! Short answers to the chapter's six questions, written from this run's
//! numbers (never from figures kept in the source): which model is
//! fastest, what the GIL does to threads, what a process costs, how async
//! scales, which is most resource-efficient, and which is most complex.
//! A question this run has no numbers for says what to run instead.

use std::fmt::Write as _;

use super::render::sweep_lines;
use super::{Results, Row, Spread, first_seen, spreads, sweep_metrics};

/// One question and its answer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Answer {
    /// The chapter's question.
    pub question: &'static str,
    /// The answer, one paragraph.
    pub answer: String,
}

/// The scan and fetch cases: (workload, case), in order.
fn batch_cases(results: &Results) -> Vec<(&'static str, String)> {
    ["scan", "fetch"].into_iter().flat_map(|w| results.cases(w).into_iter().map(move |c| (w, c))).collect()
}

/// Median of `value` per contender of one case.
fn medians(results: &Results, workload: &str, case: &str, value: impl Fn(&Row) -> Option<f64>) -> Vec<Spread> {
    spreads(&results.case_rows(workload, case), value)
}

fn find<'a>(s: &'a [Spread], tool: &str) -> Option<&'a Spread> {
    s.iter().find(|s| s.tool == tool)
}

/// Whether every recorded run of `tool` in the case was correct.
fn all_ok(results: &Results, workload: &str, case: &str, tool: &str) -> bool {
    results.case_rows(workload, case).iter().filter(|r| r.tool == tool).all(|r| r.ok)
}

fn secs(s: f64) -> String {
    if s < 10.0 { format!("{s:.2} s") } else { format!("{s:.1} s") }
}

fn fastest(results: &Results) -> String {
    let mut out = String::new();
    for (w, case) in batch_cases(results) {
        let wall = medians(results, w, &case, |r| r.wall_s);
        let correct: Vec<&Spread> = wall.iter().filter(|s| all_ok(results, w, &case, &s.tool)).collect();
        let Some(best) = correct.iter().min_by(|a, b| a.median.total_cmp(&b.median)) else { continue };
        let _ = write!(out, "{w} {case}: fastest correct was {} ({})", best.tool, secs(best.median));
        let mut engines: Vec<&Spread> = wall.iter().filter(|s| !s.peer).collect();
        engines.sort_by(|a, b| a.median.total_cmp(&b.median));
        if let (Some(first), Some(last)) = (engines.first(), engines.last())
            && engines.len() > 1
        {
            let name = |s: &Spread| {
                let wrong = if all_ok(results, w, &case, &s.tool) { "" } else { ", not all correct" };
                format!("{} ({}{wrong})", s.tool.trim_start_matches("trident-"), secs(s.median))
            };
            let ratio = last.median / first.median;
            let _ = write!(out, "; of trident's engines {} was {ratio:.1}x faster than {}", name(first), name(last));
        }
        let _ = write!(out, ". ");
    }
    if out.is_empty() { "No scan or fetch case ran.".into() } else { out.trim_end().into() }
}

fn gil(results: &Results) -> String {
    let mut out = String::from("Rust threads have no global lock: ");
    let mut said = false;
    for (w, case) in batch_cases(results) {
        let cpu = medians(results, w, &case, |r| r.cpu_s);
        let wall = medians(results, w, &case, |r| r.wall_s);
        let cores = |tool: &str| Some(find(&cpu, tool)?.median / find(&wall, tool)?.median);
        let Some(ours) = cores("trident-threads") else { continue };
        let _ = write!(out, "on {w} {case} trident-threads kept {ours:.2} cores busy");
        if let Some(theirs) = cores("chapter-threads") {
            let ratio = find(&wall, "chapter-threads").map_or(f64::NAN, |s| s.median)
                / find(&wall, "trident-threads").map_or(f64::NAN, |s| s.median);
            let _ = write!(out, ", the chapter's Python threads {theirs:.2} (and took {ratio:.1}x as long)");
        }
        let _ = write!(out, "; ");
        said = true;
    }
    if !said {
        return "No threads run in this report (run with --engines threads).".into();
    }
    // Only what this run measured: whether the lock mattered shows in the
    // cores each kept busy and the times, not in a sentence said regardless.
    format!("{}.", out.trim_end_matches("; "))
}

fn processes(results: &Results) -> String {
    let mut out = String::new();
    for (w, case) in batch_cases(results) {
        let wall = medians(results, w, &case, |r| r.wall_s);
        let pss = medians(results, w, &case, |r| r.peak_pss_mib);
        let (Some(p), Some(t)) = (find(&wall, "trident-processes"), find(&wall, "trident-threads")) else { continue };
        let mem = match (find(&pss, "trident-processes"), find(&pss, "trident-threads")) {
            (Some(p), Some(t)) => format!(", {:+.1} MiB of peak PSS", p.median - t.median),
            _ => String::new(),
        };
        let _ =
            write!(out, "{w} {case}: processes took {:+.2} s of wall time over threads{mem}. ", p.median - t.median);
    }
    if let Some(idle) = idle_per_connection(results, "trident-processes") {
        let _ = write!(out, "Per idle chat connection the process engine held {idle:.1} KiB. ");
    }
    if out.is_empty() {
        "No process and thread engines ran side by side here.".into()
    } else {
        format!("What a worker process costs here (processes minus threads): {}", out.trim_end())
    }
}

fn idle_per_connection(results: &Results, tool: &str) -> Option<f64> {
    Some(find(&medians(results, "chat", "idle", |r| r.rss_per_connection_kib), tool)?.median)
}

fn scaling(results: &Results) -> String {
    let mut out = String::new();
    let idle = medians(results, "chat", "idle", |r| r.rss_per_connection_kib);
    if !idle.is_empty() {
        let list: Vec<String> = idle.iter().map(|s| format!("{} {:.1} KiB", s.tool, s.median)).collect();
        let _ = write!(out, "Memory per idle connection: {}. ", list.join(", "));
    }
    let echo = medians(results, "chat", "echo", |r| r.requests_per_s);
    if !echo.is_empty() {
        let list: Vec<String> = echo.iter().map(|s| format!("{} {:.0}", s.tool, s.median)).collect();
        let _ = write!(out, "Echo requests/s: {}. ", list.join(", "));
    }
    let mut hung: Vec<String> = batch_cases(results)
        .into_iter()
        .flat_map(|(w, case)| {
            results
                .case_rows(w, &case)
                .into_iter()
                .filter(|r| r.timed_out)
                .map(move |r| format!("{} on {w} {case}", r.tool))
                .collect::<Vec<_>>()
        })
        .collect();
    for sweep in results.sweeps() {
        let rows = results.sweep_rows(&sweep);
        let Some(metric) = sweep_metrics(&sweep).into_iter().next() else { continue };
        // Async's line only: the scaling table has every contender's.
        let lines = sweep_lines(&rows, &metric);
        let list: Vec<String> = lines
            .iter()
            .filter(|l| l.tool == "trident-async")
            .filter_map(|l| {
                let (first, last) = (l.points.first()?, l.points.last()?);
                Some(if l.points.len() > 1 {
                    format!(
                        "{} {} at {} -> {} at {}",
                        l.tool,
                        figure(first.1),
                        short(first.0),
                        figure(last.1),
                        short(last.0)
                    )
                } else {
                    format!("{} {} at {}", l.tool, figure(first.1), short(first.0))
                })
            })
            .collect();
        if !list.is_empty() {
            let _ = write!(out, "{sweep}, {} ({}): {}. ", metric.what, metric.unit, list.join(", "));
        }
        // A fan-out ladder ends at the step that falls behind, by design.
        for r in rows.iter().filter(|r| !r.ok && r.case != "fanout") {
            if let Some(x) = r.x {
                hung.push(format!("{} at {sweep} {}", r.tool, short(x)));
            }
        }
    }
    if !results.sweeps().is_empty() {
        out.push_str("Every contender's figures are in the scaling table below. ");
    }
    if !hung.is_empty() {
        let _ = write!(
            out,
            "Did not finish (failed, or killed at the time limit): {}. ",
            first_seen(hung.iter().map(String::as_str)).join(", ")
        );
    }
    if out.is_empty() { "No server part ran (bench chat).".into() } else { out.trim_end().into() }
}

fn efficiency(results: &Results) -> String {
    let mut out = String::new();
    for (w, case) in batch_cases(results) {
        let ok = |s: &&Spread| all_ok(results, w, &case, &s.tool);
        let least = |v: Vec<Spread>| v.iter().filter(ok).min_by(|a, b| a.median.total_cmp(&b.median)).cloned();
        let cpu = least(medians(results, w, &case, |r| r.cpu_s));
        let mem = least(medians(results, w, &case, |r| r.peak_pss_mib));
        if let (Some(cpu), Some(mem)) = (cpu, mem) {
            let _ = write!(
                out,
                "{w} {case}: least CPU {} ({}), least memory {} ({:.1} MiB PSS). ",
                cpu.tool,
                secs(cpu.median),
                mem.tool,
                mem.median
            );
        }
    }
    if out.is_empty() { "No correct scan or fetch run to compare.".into() } else { out.trim_end().into() }
}

fn complexity() -> String {
    let lines = |text: &str| text.lines().filter(|l| !l.trim().is_empty()).count();
    let trident = [
        lines(include_str!("../../engine/threads.rs")),
        lines(include_str!("../../engine/processes.rs")),
        lines(include_str!("../../engine/tokio.rs")),
    ];
    let chapter = [
        lines(include_str!("../../../bench/chapter/scan_threads.py")),
        lines(include_str!("../../../bench/chapter/scan_processes.py")),
        lines(include_str!("../../../bench/chapter/scan_asyncio.py")),
    ];
    complexity_of(trident, chapter)
}

/// The complexity answer from the non-blank line counts of the threads,
/// processes and async programs of each language: which needs the most
/// code and which the least is read from the counts, so the sentence stays
/// true as either side's sources change.
fn complexity_of(trident: [usize; 3], chapter: [usize; 3]) -> String {
    const MODELS: [&str; 3] = ["threads", "processes", "async"];
    let most = |counts: [usize; 3]| MODELS[(0..3).max_by_key(|&i| counts[i]).unwrap_or(0)];
    let least = |counts: [usize; 3]| MODELS[(0..3).min_by_key(|&i| counts[i]).unwrap_or(0)];
    let [threads, processes, tokio] = trident;
    let [py_threads, py_processes, py_asyncio] = chapter;
    format!(
        "Measured as code, not time: trident's batch engines are {threads} non-blank lines (threads), \
{processes} (processes: workers, pipes, framing) and {tokio} (async), the workloads shared by all three. \
The chapter's scanners are {py_threads}, {py_processes} and {py_asyncio} lines. The most code: {} in trident, \
{} in the chapter; the least: {} in trident, {} in the chapter.",
        most(trident),
        most(chapter),
        least(trident),
        least(chapter)
    )
}

/// The six answers.
pub fn answers(results: &Results) -> Vec<Answer> {
    vec![
        Answer { question: "Which model is fastest?", answer: fastest(results) },
        Answer { question: "What does the GIL do to threads?", answer: gil(results) },
        Answer { question: "What does process creation cost?", answer: processes(results) },
        Answer { question: "How does async scale?", answer: scaling(results) },
        Answer { question: "Which is most resource-efficient?", answer: efficiency(results) },
        Answer { question: "Which is most complex?", answer: complexity() },
    ]
}

/// A figure with as many digits as it needs: 0.0123, 1.23, 123, 12345.
fn figure(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// A sweep's x: 16, 4096, 65535.
fn short(x: f64) -> String {
    format!("{x:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_come_from_the_rows() {
        let row = |tool: &str, wall: f64| Row {
            workload: "scan".into(),
            case: "loopback".into(),
            tool: tool.into(),
            kind: Row::kind_of(tool).into(),
            run: 1,
            ok: true,
            wall_s: Some(wall),
            cpu_s: Some(wall / 2.0),
            peak_pss_mib: Some(wall),
            ..Row::default()
        };
        let results = Results {
            schema: 1,
            mode: "tiny".into(),
            started: String::new(),
            wall_s: 0.0,
            trident: String::new(),
            machine: Default::default(),
            commands: vec![],
            not_installed: vec![],
            rows: vec![row("trident-threads", 3.1), row("trident-async", 1.0), row("nmap -sT", 2.0)],
        };
        let a = answers(&results);
        assert_eq!(a.len(), 6);
        assert!(
            a[0].answer.contains(
                "fastest correct was trident-async (1.00 s); of trident's engines async (1.00 s) was 3.1x faster than threads (3.10 s)"
            ),
            "{}",
            a[0].answer
        );
        assert!(a[1].answer.contains("trident-threads kept 0.50 cores busy"), "{}", a[1].answer);
    }

    #[test]
    fn the_complexity_ranking_comes_from_the_line_counts() {
        let answer = complexity_of([300, 200, 100], [40, 60, 50]);
        assert!(
            answer.ends_with(
                "The most code: threads in trident, processes in the chapter; \
the least: async in trident, threads in the chapter."
            ),
            "{answer}"
        );
    }
}
