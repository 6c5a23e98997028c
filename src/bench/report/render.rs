//! Writes a report directory from [`Results`]: results.csv, results.json,
//! charts/*.svg, report.md (linking the SVGs) and index.html (inlining
//! them, so the one file opens anywhere, offline). Every chart is drawn
//! once and written twice.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use super::answers::{Answer, answers};
use super::charts::{self, Latency};
use super::{Results, Row, Spread, SweepMetric, first_seen, spreads, sweep_metrics};
use crate::output::OutputFile;

/// One drawn chart.
#[derive(Debug)]
pub struct Chart {
    /// File name stem and HTML id, e.g. `scan-1-wall`.
    pub id: String,
    /// The workload it belongs to.
    pub workload: String,
    /// Its caption.
    pub title: String,
    /// The SVG document.
    pub svg: String,
}

/// What the sweeps leave out, said beside them.
fn sweep_note() -> String {
    format!(
        "Each point is one run at that size, the line joining the runs that finished correctly (a contender \
that failed or was killed at the time limit at a point has no mark there; the answers at the top name it). \
Trident's engines everywhere; the chapter's own programs beside them in the port, download and echo sweeps; \
the other peers have no comparable knob. The processes engine's memory grows with -j, so the scan \
concurrency sweep stops it at -j {}.",
        crate::bench::all::PROCESSES_MAX_J
    )
}

/// Per workload, the charts this run's rows make.
pub fn charts(results: &Results) -> anyhow::Result<Vec<Chart>> {
    let mut out = Charts::default();
    type Metric = (&'static str, &'static str, &'static str, fn(&Row) -> Option<f64>);
    let costs: [Metric; 3] = [
        ("wall", "wall time", "seconds", |r| r.wall_s),
        ("cpu", "CPU time", "seconds (user + system, whole process tree)", |r| r.cpu_s),
        ("memory", "peak memory", "MiB (PSS of the whole process tree)", |r| r.peak_pss_mib),
    ];
    for workload in ["scan", "fetch"] {
        for (k, case) in results.cases(workload).iter().enumerate() {
            let rows = results.case_rows(workload, case);
            for (key, what, unit, value) in costs {
                let title = format!("{workload} {case}: {what}");
                out.bars(workload, format!("{workload}-{}-{key}", k + 1), title, unit, &spreads(&rows, value))?;
            }
            let (key, what, unit, value): Metric = if workload == "scan" {
                ("recall", "open ports found", "% of the open ports (min-max over runs)", |r| {
                    r.recall.map(|v| v * 100.0)
                })
            } else {
                ("verified", "bytes verified", "MiB with the right SHA-256", |r| {
                    r.bytes_verified.map(|b| b as f64 / 1048576.0)
                })
            };
            let title = format!("{workload} {case}: {what}");
            out.bars(workload, format!("{workload}-{}-{key}", k + 1), title, unit, &spreads(&rows, value))?;
            if workload == "scan" {
                let title = format!("scan {case}: false positives");
                let fp = spreads(&rows, |r| r.false_positives.map(|v| v as f64));
                out.bars(workload, format!("scan-{}-fp", k + 1), title, "ports wrongly reported open", &fp)?;
            }
        }
    }
    let chat = |case: &str| results.case_rows("chat", case);
    let title = "chat idle: memory per idle connection".to_string();
    out.bars(
        "chat",
        "chat-idle".into(),
        title,
        "KiB (server RSS)",
        &spreads(&chat("idle"), |r| r.rss_per_connection_kib),
    )?;
    let title = "chat echo: closed-loop requests per second".to_string();
    out.bars("chat", "chat-echo".into(), title, "requests/s", &spreads(&chat("echo"), |r| r.requests_per_s))?;
    let title = "chat fanout: deliveries per second (best step)".to_string();
    let best = spreads(&chat("fanout"), |r| r.deliveries_per_s).into_iter().map(charts_best).collect::<Vec<_>>();
    out.bars("chat", "chat-fanout".into(), title, "deliveries/s", &best)?;
    let latency_rows = chat("latency");
    let latencies: Vec<Latency> = spreads(&latency_rows, |r| r.latency_p50_us)
        .into_iter()
        .map(|s| {
            let of = |f: fn(&Row) -> Option<f64>| {
                spreads(&latency_rows, f).into_iter().find(|t| t.tool == s.tool).map_or(f64::NAN, |t| t.median)
            };
            Latency { p99: of(|r| r.latency_p99_us), max: of(|r| r.latency_max_us), p50: s.median, tool: s.tool }
        })
        .collect();
    let title = "chat latency: send to delivery (median of runs)".to_string();
    let svg = charts::latency(&title, &latencies)?;
    out.push("chat", "chat-latency".into(), title, svg);
    let mut lost_rows = chat("fanout");
    lost_rows.extend(latency_rows.iter().copied());
    let title = "chat fanout + latency: deliveries lost".to_string();
    let lost = spreads(&lost_rows, |r| r.deliveries_lost.map(|v| v * 100.0));
    out.bars("chat", "chat-lost".into(), title, "% of expected deliveries", &lost)?;
    for sweep in results.sweeps() {
        let rows = results.sweep_rows(&sweep);
        // The file name from the sweep's words: sweep-fetch-file-size-kib-wall.
        let slug: Vec<String> = sweep
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        for metric in sweep_metrics(&sweep) {
            let title = format!("{sweep}: {}", metric.what);
            let axis = format!("{} ({})", metric.what, metric.unit);
            let svg = charts::lines(&title, &sweep, &axis, &sweep_lines(&rows, &metric))?;
            out.push("sweeps", format!("sweep-{}-{}", slug.join("-"), metric.key), title, svg);
        }
    }
    Ok(out.0)
}

/// The charts made so far; one with no data (`None`) is left out.
#[derive(Default)]
struct Charts(Vec<Chart>);

impl Charts {
    fn push(&mut self, workload: &str, id: String, title: String, svg: Option<String>) {
        if let Some(svg) = svg {
            self.0.push(Chart { id, workload: workload.into(), title, svg });
        }
    }

    /// A bar chart of one figure per contender, captioned `title`.
    fn bars(
        &mut self,
        workload: &str,
        id: String,
        title: String,
        unit: &str,
        spreads: &[Spread],
    ) -> anyhow::Result<()> {
        let svg = charts::bars(&title, unit, spreads)?;
        self.push(workload, id, title, svg);
        Ok(())
    }
}

/// Per contender of a sweep, its point at each x: the median of the runs
/// that finished correctly, or the best of every run (as `metric` says).
pub fn sweep_lines(rows: &[&Row], metric: &SweepMetric) -> Vec<charts::Line> {
    let mut xs: Vec<f64> = rows.iter().filter_map(|r| r.x).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let mut lines: Vec<charts::Line> = Vec::new();
    for x in xs {
        // A fan-out step that fell behind is no failure: it is how far the
        // server got, so the best step counts every step.
        let at: Vec<&Row> = rows.iter().copied().filter(|r| r.x == Some(x) && (r.ok || metric.best)).collect();
        for s in spreads(&at, metric.value) {
            let y = if metric.best { s.max } else { s.median };
            match lines.iter_mut().find(|l| l.tool == s.tool) {
                Some(line) => line.points.push((x, y)),
                None => lines.push(charts::Line { tool: s.tool, points: vec![(x, y)] }),
            }
        }
    }
    lines
}

/// Per contender and round, the fan-out step with the most deliveries.
fn best_steps<'a>(rows: &[&'a Row]) -> Vec<&'a Row> {
    let deliveries = |r: &Row| r.deliveries_per_s.filter(|v| v.is_finite()).unwrap_or(f64::NEG_INFINITY);
    let mut best: Vec<&'a Row> = Vec::new();
    for &r in rows {
        match best.iter_mut().find(|b| b.tool == r.tool && b.run == r.run) {
            Some(b) if deliveries(r) > deliveries(b) => *b = r,
            Some(_) => {}
            None => best.push(r),
        }
    }
    best
}

/// The fan-out bar: the best step, its range over steps as the whisker.
fn charts_best(mut s: Spread) -> Spread {
    s.median = s.max;
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn fmt(v: f64, digits: usize) -> String {
    if v.is_finite() { format!("{v:.digits$}") } else { "-".into() }
}

/// A table column: header, value of a row, decimals.
type Column = (&'static str, fn(&Row) -> Option<f64>, usize);

/// The summary table of one case: (header, rows of cells).
fn case_table(results: &Results, workload: &str, case: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let rows = results.case_rows(workload, case);
    let tools = first_seen(rows.iter().map(|r| r.tool.as_str()));
    // Fan-out: a round's steps are the way up to its best one, which stands
    // for the round (as in `bench chat`'s own summary); the medians are of
    // those, not of every step tried.
    let measured = if workload == "chat" && case == "fanout" { best_steps(&rows) } else { rows.clone() };
    let med = |tool: &str, f: fn(&Row) -> Option<f64>| {
        spreads(&measured, f).into_iter().find(|s| s.tool == tool).map_or(f64::NAN, |s| s.median)
    };
    let header: Vec<String> = ["contender", "kind", "runs", "correct"].iter().map(|s| s.to_string()).collect();
    let extra: Vec<Column> = match workload {
        "scan" => vec![
            ("wall s", |r| r.wall_s, 3),
            ("CPU s", |r| r.cpu_s, 3),
            ("peak PSS MiB", |r| r.peak_pss_mib, 1),
            ("recall %", |r| r.recall.map(|v| v * 100.0), 1),
            ("false pos.", |r| r.false_positives.map(|v| v as f64), 0),
        ],
        "fetch" => vec![
            ("wall s", |r| r.wall_s, 3),
            ("CPU s", |r| r.cpu_s, 3),
            ("peak PSS MiB", |r| r.peak_pss_mib, 1),
            ("verified MiB", |r| r.bytes_verified.map(|b| b as f64 / 1048576.0), 1),
        ],
        _ => vec![
            ("KiB/conn", |r| r.rss_per_connection_kib, 1),
            ("req/s", |r| r.requests_per_s, 0),
            ("deliveries/s", |r| r.deliveries_per_s, 0),
            ("lost %", |r| r.deliveries_lost.map(|v| v * 100.0), 2),
            ("p50 ms", |r| r.latency_p50_us.map(|v| v / 1000.0), 2),
            ("p99 ms", |r| r.latency_p99_us.map(|v| v / 1000.0), 2),
        ],
    };
    let header = header.into_iter().chain(extra.iter().map(|(h, _, _)| h.to_string())).collect();
    let body = tools
        .iter()
        .map(|t| {
            let mine: Vec<&&Row> = rows.iter().filter(|r| &r.tool == t).collect();
            let ok = mine.iter().filter(|r| r.ok).count();
            let timed_out = mine.iter().any(|r| r.timed_out);
            let mut cells = vec![
                t.clone(),
                Row::kind_of(t).to_string(),
                mine.len().to_string(),
                if timed_out {
                    format!("{ok}/{} (did not finish)", mine.len())
                } else {
                    format!("{ok}/{}", mine.len())
                },
            ];
            cells.extend(extra.iter().map(|&(_, f, d)| fmt(med(t, f), d)));
            cells
        })
        .collect();
    (header, body)
}

/// The sweeps in one table: per sweep, figure and contender, its point at
/// the smallest and the largest size it finished.
fn sweep_table(results: &Results) -> (Vec<String>, Vec<Vec<String>>) {
    let header = ["contender", "sweep", "figure", "from", "to"].map(String::from).to_vec();
    let mut body = Vec::new();
    for sweep in results.sweeps() {
        let rows = results.sweep_rows(&sweep);
        for metric in sweep_metrics(&sweep) {
            for line in sweep_lines(&rows, &metric) {
                let (Some(first), Some(last)) = (line.points.first(), line.points.last()) else { continue };
                let at = |(x, y): (f64, f64)| format!("{} at {x:.0}", fmt(y, 3));
                body.push(vec![
                    line.tool.clone(),
                    sweep.clone(),
                    format!("{} ({})", metric.what, metric.unit),
                    at(*first),
                    at(*last),
                ]);
            }
        }
    }
    (header, body)
}

fn markdown(results: &Results, charts: &[Chart], answers: &[Answer]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# trident bench all ({})\n", results.mode);
    let _ = writeln!(md, "{}; started {}, took {:.0} s.\n", results.trident, results.started, results.wall_s);
    let m = &results.machine;
    let _ = writeln!(
        md,
        "Machine: {} cores, {}, kernel {}, {} MiB memory; downloads on {}.\n",
        m.cores, m.cpu_model, m.kernel, m.memory_mib, m.download_fs
    );
    let _ = writeln!(md, "## The chapter's questions, answered from this run\n");
    for a in answers {
        let _ = writeln!(md, "- **{}** {}", a.question, a.answer);
    }
    for workload in ["scan", "fetch", "chat"] {
        let cases = results.cases(workload);
        if cases.is_empty() {
            continue;
        }
        let _ = writeln!(md, "\n## {workload}\n");
        for case in &cases {
            let (header, body) = case_table(results, workload, case);
            let _ =
                writeln!(md, "### {workload} {case}\n\n| {} |\n|{}", header.join(" | "), "---|".repeat(header.len()));
            for row in body {
                let _ = writeln!(md, "| {} |", row.join(" | "));
            }
            let _ = writeln!(md);
        }
        for chart in charts.iter().filter(|c| c.workload == workload) {
            let _ = writeln!(md, "![{}](charts/{}.svg)\n", chart.title, chart.id);
        }
    }
    if charts.iter().any(|c| c.workload == "sweeps") {
        let _ = writeln!(md, "\n## Scaling: how cost grows as work grows\n\n{}\n", sweep_note());
        let (header, body) = sweep_table(results);
        let _ = writeln!(md, "| {} |\n|{}", header.join(" | "), "---|".repeat(header.len()));
        for row in body {
            let _ = writeln!(md, "| {} |", row.join(" | "));
        }
        let _ = writeln!(md);
        for chart in charts.iter().filter(|c| c.workload == "sweeps") {
            let _ = writeln!(md, "![{}](charts/{}.svg)\n", chart.title, chart.id);
        }
    }
    let _ = writeln!(md, "\n## Not installed\n");
    if results.not_installed.is_empty() {
        let _ = writeln!(md, "Every peer asked for was installed.");
    }
    for p in &results.not_installed {
        let _ = writeln!(md, "- {} ({}): not installed ({}); install: `{}`", p.peer, p.workload, p.why, p.install);
    }
    let _ = writeln!(md, "\n## Commands run\n");
    for c in &results.commands {
        let _ = writeln!(md, "- `{}` (exit {:?}, {:.0} s, log {})", c.command, c.exit_code, c.wall_s, c.log);
    }
    md
}

fn html(results: &Results, charts: &[Chart], answers: &[Answer]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>trident bench all ({})</title>\
<style>body{{font-family:sans-serif;max-width:1340px;margin:1em auto;padding:0 1em;color:#222}}\
table{{border-collapse:collapse;margin:.5em 0 1em}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}\
td:first-child,th:first-child{{text-align:left}}.charts{{display:flex;flex-wrap:wrap;gap:12px}}\
figure{{margin:0}}figcaption{{font-size:smaller;color:#555}}.peer{{color:#b35a1f}}.engine{{color:#2b6cb0}}\
code{{background:#f3f3f3}}</style></head><body>\n",
        esc(&results.mode)
    );
    let _ = writeln!(h, "<h1>trident bench all ({})</h1>", esc(&results.mode));
    let m = &results.machine;
    let _ = writeln!(
        h,
        "<p id=\"machine\">{}; started {}, took {:.0} s. Machine: {} cores, {}, kernel {}, {} MiB memory; downloads on {}.</p>",
        esc(&results.trident),
        esc(&results.started),
        results.wall_s,
        m.cores,
        esc(&m.cpu_model),
        esc(&m.kernel),
        m.memory_mib,
        esc(&m.download_fs)
    );
    let _ = writeln!(
        h,
        "<p>Bars are medians over the recorded runs, whiskers min–max; <span class=\"engine\">■ trident engines</span>, <span class=\"peer\">■ peers</span>.</p>"
    );
    let _ = writeln!(h, "<h2>The chapter's questions, answered from this run</h2>\n<dl id=\"answers\">");
    for a in answers {
        let _ = writeln!(h, "<dt><b>{}</b></dt><dd>{}</dd>", esc(a.question), esc(&a.answer));
    }
    let _ = writeln!(h, "</dl>");
    for workload in ["scan", "fetch", "chat"] {
        let cases = results.cases(workload);
        if cases.is_empty() {
            continue;
        }
        let _ = writeln!(h, "<section id=\"{workload}\"><h2>{workload}</h2>");
        for case in &cases {
            let (header, body) = case_table(results, workload, case);
            let _ = writeln!(h, "<h3>{workload} {}</h3>", esc(case));
            table_html(&mut h, &header, body);
        }
        charts_html(&mut h, charts, workload);
        let _ = writeln!(h, "</section>");
    }
    if charts.iter().any(|c| c.workload == "sweeps") {
        let _ = writeln!(
            h,
            "<section id=\"sweeps\"><h2>Scaling: how cost grows as work grows</h2><p>{}</p>",
            esc(&sweep_note())
        );
        let (header, body) = sweep_table(results);
        table_html(&mut h, &header, body);
        charts_html(&mut h, charts, "sweeps");
        let _ = writeln!(h, "</section>");
    }
    let _ = writeln!(h, "<h2>Not installed</h2><ul id=\"not-installed\">");
    if results.not_installed.is_empty() {
        let _ = writeln!(h, "<li>Every peer asked for was installed.</li>");
    }
    for p in &results.not_installed {
        let _ = writeln!(
            h,
            "<li>{} ({}): not installed ({}); install: <code>{}</code></li>",
            esc(&p.peer),
            esc(&p.workload),
            esc(&p.why),
            esc(&p.install)
        );
    }
    let _ = writeln!(h, "</ul><h2>Commands run</h2><ul id=\"commands\">");
    for c in &results.commands {
        let _ = writeln!(h, "<li><code>{}</code> (exit {:?}, {:.0} s)</li>", esc(&c.command), c.exit_code, c.wall_s);
    }
    let _ = writeln!(h, "</ul></body></html>");
    h
}

/// A table whose first column names the contender (coloured by kind).
fn table_html(h: &mut String, header: &[String], body: Vec<Vec<String>>) {
    let _ = write!(h, "<table><tr>");
    for cell in header {
        let _ = write!(h, "<th>{}</th>", esc(cell));
    }
    let _ = writeln!(h, "</tr>");
    for row in body {
        let class = Row::kind_of(&row[0]);
        let _ = write!(h, "<tr class=\"{class}\" data-tool=\"{}\">", esc(&row[0]));
        for cell in row {
            let _ = write!(h, "<td>{}</td>", esc(&cell));
        }
        let _ = writeln!(h, "</tr>");
    }
    let _ = writeln!(h, "</table>");
}

/// The charts of `group` (a workload or `sweeps`), inlined.
fn charts_html(h: &mut String, charts: &[Chart], group: &str) {
    let _ = writeln!(h, "<div class=\"charts\">");
    for chart in charts.iter().filter(|c| c.workload == group) {
        // An XML declaration has no place inside HTML.
        let svg = chart.svg.trim_start_matches(|c| c != '<');
        let svg = if svg.starts_with("<?xml") { svg.split_once("?>").map_or(svg, |(_, s)| s) } else { svg };
        let _ = writeln!(
            h,
            "<figure class=\"chart\" id=\"{}\">{}<figcaption>{}</figcaption></figure>",
            esc(&chart.id),
            svg.trim(),
            esc(&chart.title)
        );
    }
    let _ = writeln!(h, "</div>");
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let file = OutputFile::create(path)?;
    std::io::Write::write_all(&mut file.file()?, bytes)?;
    file.commit()?;
    Ok(())
}

/// Writes the whole report into `dir`; returns the charts' ids.
pub fn write(dir: &Path, results: &Results) -> anyhow::Result<Vec<String>> {
    let charts = charts(results)?;
    let answers = answers(results);
    std::fs::create_dir_all(dir.join("charts")).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    for row in &results.rows {
        csv.serialize(row)?;
    }
    let csv = csv.into_inner().map_err(|e| anyhow::anyhow!("cannot write results.csv: {e}"))?;
    write_file(&dir.join("results.csv"), &csv)?;
    write_file(&dir.join("results.json"), &serde_json::to_vec_pretty(results)?)?;
    for chart in &charts {
        write_file(&dir.join("charts").join(format!("{}.svg", chart.id)), chart.svg.as_bytes())?;
    }
    write_file(&dir.join("report.md"), markdown(results, &charts, &answers).as_bytes())?;
    write_file(&dir.join("index.html"), html(results, &charts, &answers).as_bytes())?;
    Ok(charts.into_iter().map(|c| c.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fanout_table_is_each_rounds_best_step_not_every_step() {
        let step = |tool: &str, run: u32, deliveries: f64, p99: f64| Row {
            workload: "chat".into(),
            case: "fanout".into(),
            tool: tool.into(),
            run,
            ok: true,
            deliveries_per_s: Some(deliveries),
            latency_p99_us: Some(p99),
            ..Row::default()
        };
        // Round 1 climbs to 3,000; round 2 to 2,000 and then falls behind.
        let rows = vec![
            step("trident-async", 1, 1000.0, 1000.0),
            step("trident-async", 1, 2000.0, 2000.0),
            step("trident-async", 1, 3000.0, 3000.0),
            step("trident-async", 2, 1000.0, 1000.0),
            step("trident-async", 2, 2000.0, 2000.0),
            step("trident-async", 2, 1500.0, 90000.0),
        ];
        let results = Results { rows, ..Results::default() };
        let (header, body) = case_table(&results, "chat", "fanout");
        let cell = |name: &str| body[0][header.iter().position(|h| h == name).expect(name)].clone();
        assert_eq!(cell("runs"), "6");
        assert_eq!(cell("deliveries/s"), "2500", "median of 3000 and 2000");
        assert_eq!(cell("p99 ms"), "2.50", "at the best steps: 3 and 2 ms");
    }
}
