//! Scan output: text for people, JSON, JSON lines and CSV for machines,
//! and nmap's grepable (`-oG`) and XML (`-oX`) layouts (in [`nmap_format`]).
//!
//! [`Report`] receives probe results in completion order. Line formats
//! (jsonl, csv) are written as results arrive, so a pipe sees them live and
//! an interrupted scan keeps everything found so far (a CSV *file* of a
//! small scan is instead written sorted by address and port, since it
//! appears only when complete anyway); text, JSON, grep and
//! XML need the whole picture and are written by [`Report::finish`], sorted
//! by target then port. Memory stays proportional to what will be printed:
//! line formats keep no per-host state at all (only the totals); text keeps
//! only the notable ports (open, error) and counts the rest; grep and XML
//! keep open ports and, per other state, at most
//! [`nmap_format::LIST_LIMIT`] ports (a state with more is collapsed into a
//! count, as nmap does). In a scan of more than [`LIST_SILENT_PROBES`]
//! probes or [`LIST_SILENT_HOSTS`] addresses, ports that never answered
//! (`filtered/no-response`) are counted in the totals only: hosts are
//! listed by their answers, so a large filtered network costs nothing per
//! address (text says so in a line); JSON then lists only open and error
//! ports per host, like text, and says how many ports it did not list.
//!
//! JSON's layouts are in `json_format.rs`: one compact document whose
//! closed ports are summarised per host, as nmap's "Not shown".
//!
//! [`nmap_format`]: super::nmap_format
//! [`nmap_format::LIST_LIMIT`]: super::nmap_format::LIST_LIMIT

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::json_format;
use super::nmap_format::{self, PortSet, RttStats};
use super::probe::{PortState, ProbeResult};
use super::services::service_name;
use super::target::TargetError;
use crate::term::paint;

/// Above this many probes, or [`LIST_SILENT_HOSTS`] addresses, silent
/// ports are counted but not listed per host (except by the line formats,
/// which list every port as it becomes final).
pub const LIST_SILENT_PROBES: u64 = 1 << 16;
/// See [`LIST_SILENT_PROBES`].
pub const LIST_SILENT_HOSTS: u64 = 256;

/// Output format (`-f`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A table of open ports per host and a summary line.
    Text,
    /// One JSON document at the end.
    Json,
    /// One JSON object per probed port, as results arrive.
    Jsonl,
    /// CSV with a header row, as results arrive.
    Csv,
    /// nmap's grepable output (`-oG`), at the end.
    Grep,
    /// nmap's XML output (`-oX`), at the end.
    Xml,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "grep" | "gnmap" => Ok(Format::Grep),
            "xml" => Ok(Format::Xml),
            _ => Err(format!("unknown format {s:?} (expected text, json, jsonl, csv, grep or xml)")),
        }
    }
}

impl Format {
    /// The format a file name asks for by its extension (`out.xml` → XML,
    /// as nmap's `-oN/-oX/-oG` files are named), if it names one.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "txt" | "nmap" => Some(Format::Text),
            "json" => Some(Format::Json),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            "gnmap" => Some(Format::Grep),
            "xml" => Some(Format::Xml),
            _ => None,
        }
    }
}

/// Counts of ports per state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Open ports.
    pub open: u64,
    /// Closed ports.
    pub closed: u64,
    /// Filtered ports.
    pub filtered: u64,
    /// Ports that could not be probed.
    pub error: u64,
}

impl Counts {
    fn add(&mut self, state: PortState) {
        match state {
            PortState::Open => self.open += 1,
            PortState::Closed => self.closed += 1,
            PortState::Filtered => self.filtered += 1,
            PortState::Error => self.error += 1,
        }
    }

    /// Ports with a state.
    pub fn total(&self) -> u64 {
        self.open + self.closed + self.filtered + self.error
    }

    /// Ports in `state`.
    pub fn get(&self, state: PortState) -> u64 {
        match state {
            PortState::Open => self.open,
            PortState::Closed => self.closed,
            PortState::Filtered => self.filtered,
            PortState::Error => self.error,
        }
    }
}

/// What the scan as a whole did, for the closing lines.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Engine name.
    pub engine: &'static str,
    /// Tasks in flight at most.
    pub concurrency: usize,
    /// Addresses scanned.
    pub hosts: u64,
    /// Ports per address.
    pub ports_per_host: u64,
    /// Per-state totals.
    pub counts: Counts,
    /// Probes the engine could not run (crashed workers, panics).
    pub failed_probes: u64,
    /// Whether Ctrl-C cut the scan short.
    pub interrupted: bool,
    /// Wall time of the scan.
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e6)
}

/// Results of one address.
#[derive(Default)]
pub(super) struct HostResults {
    pub(super) host: Option<Arc<str>>,
    pub(super) counts: Counts,
    /// The ports the chosen format will print.
    pub(super) kept: Vec<ProbeResult>,
    /// Per (state, reason) counts of ports not listed, for "Not shown"
    /// (grep and XML: "Ignored State" and `<extraports>`).
    pub(super) hidden: BTreeMap<(PortState, &'static str), u64>,
    /// Round-trip times of answered probes (XML `<times>`).
    pub(super) rtt: RttStats,
    /// JSON: the closed ports summarised rather than listed (small scans
    /// only: a set costs 8 KiB per host).
    pub(super) closed_ports: PortSet,
}

/// Collects and writes results in one format.
pub struct Report<W: Write> {
    format: Format,
    open_only: bool,
    /// JSON: list closed ports instead of summarising them per host.
    list_closed: bool,
    /// CSV rows held to be written sorted by (address, port) at the end,
    /// when not streaming (see [`Report::sorting_rows`]).
    held: Option<Vec<(Option<Arc<str>>, ProbeResult)>>,
    out: W,
    /// Hosts keyed by (target block, address): keeps command-line order.
    hosts: BTreeMap<(u32, IpAddr), HostResults>,
    header_written: bool,
    /// Every port probed on some host (XML `<scaninfo services>`).
    probed: PortSet,
    /// Totals over every port.
    counts: Counts,
    /// Whether silent ports are kept per host (small scans).
    list_silent: bool,
    /// Silent ports counted but not kept per host.
    unlisted_silent: u64,
    /// Ports counted but not listed by a large scan's JSON (silent ones
    /// included).
    unlisted: u64,
    /// Text: the states in colour (a terminal, see [`Report::coloured`]).
    colour: bool,
}

impl<W: Write> std::fmt::Debug for Report<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report").field("format", &self.format).field("hosts", &self.hosts.len()).finish_non_exhaustive()
    }
}

impl<W: Write> Report<W> {
    /// A report writing `format` to `out`; `open_only` drops everything but
    /// open ports from the listing (counts stay complete).
    pub fn new(format: Format, open_only: bool, out: W) -> Self {
        Self::for_scan(format, open_only, out, 0, 0)
    }

    /// As [`Report::new`], for a scan of `probes` probes of `hosts`
    /// addresses (see [`LIST_SILENT_PROBES`]).
    pub fn for_scan(format: Format, open_only: bool, out: W, probes: u64, hosts: u64) -> Self {
        Report {
            format,
            open_only,
            list_closed: false,
            held: None,
            out,
            hosts: BTreeMap::new(),
            header_written: false,
            probed: PortSet::default(),
            counts: Counts::default(),
            list_silent: probes <= LIST_SILENT_PROBES && hosts <= LIST_SILENT_HOSTS,
            unlisted_silent: 0,
            unlisted: 0,
            colour: false,
        }
    }

    /// The text report shows states in colour (for a terminal): open
    /// green, closed red, filtered yellow, error bold red.
    pub fn coloured(mut self, on: bool) -> Self {
        self.colour = on && self.format == Format::Text;
        self
    }

    /// JSON lists closed ports one by one (`--show-closed`) rather than a
    /// count and ranges per host.
    pub fn listing_closed(mut self, list: bool) -> Self {
        self.list_closed = list;
        self
    }

    /// CSV rows are held and written sorted by (address, port) at the end
    /// rather than streamed in probe order, if `sort` and the scan is small
    /// enough to list silent ports (see [`LIST_SILENT_PROBES`]): for a file,
    /// which appears only when complete anyway.
    pub fn sorting_rows(mut self, sort: bool) -> Self {
        if sort && self.format == Format::Csv && self.list_silent {
            self.held = Some(Vec::new());
        }
        self
    }

    /// Takes one result; line formats write it out immediately.
    pub fn record(&mut self, host: Option<&Arc<str>>, r: ProbeResult) -> io::Result<()> {
        self.counts.add(r.state);
        let listed = !self.open_only || r.state == PortState::Open;
        if matches!(self.format, Format::Jsonl | Format::Csv) {
            if let Some(held) = &mut self.held {
                if listed {
                    held.push((host.cloned(), r));
                }
                return Ok(());
            }
            self.write_line(host, &r, listed)?;
            return self.out.flush();
        }
        if matches!(self.format, Format::Grep | Format::Xml) {
            self.probed.insert(r.port);
        }
        if r.is_silent() && !self.list_silent {
            self.unlisted_silent += 1;
            self.unlisted += 1;
            return Ok(());
        }
        let entry = self.hosts.entry((r.block, r.ip)).or_default();
        if entry.host.is_none() {
            entry.host = host.cloned();
        }
        entry.counts.add(r.state);
        match self.format {
            Format::Jsonl | Format::Csv => {}
            Format::Json => {
                if r.state == PortState::Closed && !self.list_closed {
                    // Summarised per host, as nmap's "Not shown".
                    if self.list_silent {
                        entry.closed_ports.insert(r.port);
                    }
                } else if listed
                    && (self.list_silent || matches!(r.state, PortState::Open | PortState::Error | PortState::Closed))
                {
                    entry.kept.push(r);
                } else if !self.list_silent {
                    self.unlisted += 1;
                }
            }
            Format::Text => {
                if matches!(r.state, PortState::Open | PortState::Error) {
                    entry.kept.push(r);
                } else {
                    *entry.hidden.entry((r.state, r.reason.as_str())).or_default() += 1;
                }
            }
            Format::Grep | Format::Xml => {
                // Count every non-open port; keep it too while its state
                // may still be listed. `finish` settles which is which.
                entry.rtt.add(r.rtt_us);
                if r.state != PortState::Open {
                    *entry.hidden.entry((r.state, r.reason.as_str())).or_default() += 1;
                }
                if !nmap_format::is_collapsed(&entry.counts, r.state, self.open_only) {
                    entry.kept.push(r);
                }
            }
        }
        Ok(())
    }

    /// Writes one result of a line format (jsonl, csv), if `listed`. The
    /// CSV `host` column is the name the user gave, else the address.
    fn write_line(&mut self, host: Option<&Arc<str>>, r: &ProbeResult, listed: bool) -> io::Result<()> {
        match self.format {
            Format::Jsonl => {
                if listed {
                    serde_json::to_writer(&mut self.out, &json_format::PortLine::new(host.map(|h| &**h), r))?;
                    self.out.write_all(b"\n")?;
                }
            }
            _ => {
                if !self.header_written {
                    self.out.write_all(b"host,ip,port,proto,state,reason,rtt_us,tries\n")?;
                    self.header_written = true;
                }
                if listed {
                    let rtt = r.rtt_us.map(|v| v.to_string()).unwrap_or_default();
                    let host = host.map_or_else(|| r.ip.to_string(), |h| csv_field(h));
                    writeln!(
                        self.out,
                        "{host},{},{},tcp,{},{},{rtt},{}",
                        r.ip,
                        r.port,
                        r.state.as_str(),
                        r.reason.as_str(),
                        r.tries
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Totals over every host so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Writes the closing part (everything, for text and JSON) and flushes.
    pub fn finish(mut self, summary: &Summary, target_failures: &[TargetError]) -> io::Result<W> {
        if let Some(mut held) = self.held.take() {
            held.sort_by_key(|(_, r)| (r.ip, r.port));
            for (host, r) in &held {
                self.write_line(host.as_ref(), r, true)?;
            }
        }
        for h in self.hosts.values_mut() {
            h.kept.sort_by_key(|r| r.port);
            if matches!(self.format, Format::Grep | Format::Xml) {
                nmap_format::settle(h, self.open_only);
            }
        }
        match self.format {
            Format::Text => self.write_text(summary)?,
            Format::Json => json_format::write_json(
                &mut self.out,
                &self.hosts,
                summary,
                target_failures,
                self.unlisted,
                self.list_closed,
            )?,
            Format::Grep => nmap_format::write_grep(&mut self.out, &self.hosts, summary)?,
            Format::Xml => nmap_format::write_xml(&mut self.out, &self.hosts, summary, target_failures, &self.probed)?,
            Format::Csv if !self.header_written => {
                self.out.write_all(b"host,ip,port,proto,state,reason,rtt_us,tries\n")?
            }
            Format::Csv | Format::Jsonl => {}
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn write_text(&mut self, s: &Summary) -> io::Result<()> {
        for ((_, ip), h) in &self.hosts {
            match &h.host {
                Some(name) => writeln!(self.out, "Scan report for {name} ({ip})")?,
                None => writeln!(self.out, "Scan report for {ip}")?,
            }
            if h.kept.is_empty() {
                writeln!(self.out, "All {} scanned ports are closed or filtered", h.counts.total())?;
            } else {
                let service = |r: &ProbeResult| service_name(r.port).unwrap_or("unknown");
                let width = h.kept.iter().map(|r| service(r).len()).max().unwrap_or(0).max("SERVICE".len());
                writeln!(self.out, "{:<11} {:<9} {:<width$} {:<14} RTT", "PORT", "STATE", "SERVICE", "REASON")?;
                for r in &h.kept {
                    let port = format!("{}/tcp", r.port);
                    let rtt = r.rtt_us.map(format_rtt).unwrap_or_else(|| "-".into());
                    let note = r.error.as_deref().map(|e| format!("  ({e})")).unwrap_or_default();
                    let name = r.state.as_str();
                    let state = paint(self.colour, state_style(r.state), name) + &" ".repeat(9 - name.len());
                    writeln!(
                        self.out,
                        "{port:<11} {state} {:<width$} {:<14} {rtt}{note}",
                        service(r),
                        r.reason.as_str()
                    )?;
                    if let Some(banner) = &r.banner {
                        writeln!(self.out, "|_ banner: {banner}")?;
                    }
                }
            }
            if !h.hidden.is_empty() {
                let parts: Vec<String> =
                    h.hidden.iter().map(|((state, reason), n)| format!("{n} {} ({reason})", state.as_str())).collect();
                writeln!(self.out, "Not shown: {}", parts.join(", "))?;
            }
            writeln!(self.out)?;
        }
        if self.unlisted_silent > 0 {
            writeln!(
                self.out,
                "Not listed: {} filtered (no-response) port(s); in a scan this large hosts are listed by their answers\n",
                self.unlisted_silent
            )?;
        }
        let c = &s.counts;
        write!(
            self.out,
            "Scanned {} host{} x {} port{} in {:.2}s with {} (concurrency {}): {} open, {} closed, {} filtered",
            s.hosts,
            plural(s.hosts),
            s.ports_per_host,
            plural(s.ports_per_host),
            s.elapsed.as_secs_f64(),
            s.engine,
            s.concurrency,
            c.open,
            c.closed,
            c.filtered
        )?;
        if c.error > 0 {
            write!(self.out, ", {} error", c.error)?;
        }
        if s.failed_probes > 0 {
            write!(self.out, ", {} probes failed", s.failed_probes)?;
        }
        if s.interrupted {
            write!(self.out, " (interrupted: partial results)")?;
        }
        writeln!(self.out)
    }
}

/// The colour of a port state in the text report.
fn state_style(state: PortState) -> anstyle::Style {
    use anstyle::AnsiColor;
    match state {
        PortState::Open => AnsiColor::Green.on_default().bold(),
        PortState::Closed => AnsiColor::Red.on_default(),
        PortState::Filtered => AnsiColor::Yellow.on_default(),
        PortState::Error => crate::term::ERROR,
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn format_rtt(us: u64) -> String {
    if us < 1000 { format!("{us}us") } else { format!("{:.1}ms", us as f64 / 1000.0) }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::probe::Reason;

    fn result(port: u16, state: PortState, reason: Reason) -> ProbeResult {
        ProbeResult {
            block: 0,
            ip: "127.0.0.1".parse().unwrap(),
            port,
            state,
            reason,
            rtt_us: (state != PortState::Filtered).then_some(1500),
            tries: 1,
            error: None,
            banner: None,
        }
    }

    fn sample() -> Vec<ProbeResult> {
        vec![
            result(443, PortState::Closed, Reason::ConnRefused),
            result(80, PortState::Open, Reason::SynAck),
            result(22, PortState::Open, Reason::SynAck),
            result(25, PortState::Filtered, Reason::NoResponse),
        ]
    }

    fn render(format: Format, open_only: bool) -> String {
        let mut report = Report::new(format, open_only, Vec::new());
        let host: Arc<str> = Arc::from("localhost");
        for r in sample() {
            report.record(Some(&host), r).unwrap();
        }
        let summary = Summary {
            engine: "async",
            concurrency: 10,
            hosts: 1,
            ports_per_host: 4,
            counts: report.counts(),
            elapsed: Duration::from_millis(1234),
            ..Summary::default()
        };
        String::from_utf8(report.finish(&summary, &[]).unwrap()).unwrap()
    }

    #[test]
    fn text_lists_open_ports_sorted_then_summary() {
        let text = render(Format::Text, false);
        let want = "Scan report for localhost (127.0.0.1)\n\
PORT        STATE     SERVICE REASON         RTT\n\
22/tcp      open      ssh     syn-ack        1.5ms\n\
80/tcp      open      http    syn-ack        1.5ms\n\
Not shown: 1 closed (conn-refused), 1 filtered (no-response)\n\
\n\
Scanned 1 host x 4 ports in 1.23s with async (concurrency 10): 2 open, 1 closed, 1 filtered\n";
        assert_eq!(text, want);
    }

    #[test]
    fn jsonl_streams_every_port_in_arrival_order() {
        let text = render(Format::Jsonl, false);
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            serde_json::json!({"host":"localhost","ip":"127.0.0.1","port":443,"proto":"tcp","state":"closed","reason":"conn-refused","rtt_us":1500,"tries":1})
        );
        assert_eq!(lines[3]["rtt_us"], serde_json::Value::Null);
        assert_eq!(lines[3]["reason"], "no-response");
        assert_eq!(lines[1]["service"], "http", "open ports name their service");
        assert_eq!(lines[3].get("service"), None, "only open ports do");
    }

    #[test]
    fn open_only_filters_listing_not_counts() {
        let text = render(Format::Jsonl, true);
        let ports: Vec<u64> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["port"].as_u64().unwrap())
            .collect();
        assert_eq!(ports, vec![80, 22]);
        let doc: serde_json::Value = serde_json::from_str(&render(Format::Json, true)).unwrap();
        assert_eq!(doc["hosts"][0]["counts"], serde_json::json!({"open":2,"closed":1,"filtered":1,"error":0}));
        assert_eq!(doc["hosts"][0]["ports"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn show_closed_lists_every_closed_port_in_json() {
        let mut report = Report::new(Format::Json, false, Vec::new()).listing_closed(true);
        for r in sample() {
            report.record(None, r).unwrap();
        }
        let doc: serde_json::Value = serde_json::from_slice(&report.finish(&Summary::default(), &[]).unwrap()).unwrap();
        let ports: Vec<u64> =
            doc["hosts"][0]["ports"].as_array().unwrap().iter().map(|p| p["port"].as_u64().unwrap()).collect();
        assert_eq!(ports, vec![22, 25, 80, 443]);
        assert_eq!(doc["hosts"][0].get("closed"), None);
    }

    #[test]
    fn json_document_is_compact_sorted_and_complete() {
        let text = render(Format::Json, false);
        assert_eq!(text.lines().count(), 1, "one compact line: {text}");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ports: Vec<u64> =
            doc["hosts"][0]["ports"].as_array().unwrap().iter().map(|p| p["port"].as_u64().unwrap()).collect();
        assert_eq!(ports, vec![22, 25, 80], "closed ports are summarised, not listed");
        assert_eq!(doc["hosts"][0]["closed"], serde_json::json!({"count": 1, "ports": "443"}));
        assert_eq!(doc["hosts"][0]["ports"][0]["service"], "ssh");
        assert_eq!(doc["hosts"][0]["host"], "localhost");
        assert_eq!(doc["summary"]["counts"]["open"], 2);
        assert_eq!(doc["summary"]["elapsed"], 1.234);
    }

    #[test]
    fn large_scans_count_silent_ports_without_keeping_them() {
        for (probes, hosts, listed) in [(65_536, 256, true), (65_537, 1, false), (300, 257, false)] {
            let mut report = Report::for_scan(Format::Json, false, Vec::new(), probes, hosts);
            for r in sample() {
                report.record(None, r).unwrap();
            }
            // Large: the two open ports only; closed ones summarised either way.
            let kept: usize = report.hosts.values().map(|h| h.kept.len()).sum();
            assert_eq!(kept, if listed { 3 } else { 2 }, "{probes} probes, {hosts} hosts");
            assert_eq!(report.counts().filtered, 1, "counted either way");
            let doc: serde_json::Value =
                serde_json::from_slice(&report.finish(&Summary::default(), &[]).unwrap()).unwrap();
            assert_eq!(doc.get("unlisted_ports").and_then(|v| v.as_u64()), (!listed).then_some(1));
            let closed =
                if listed { serde_json::json!({"count": 1, "ports": "443"}) } else { serde_json::json!({"count": 1}) };
            assert_eq!(doc["hosts"][0]["closed"], closed);
        }
        // A host that never answered has no state at all.
        let mut report = Report::for_scan(Format::Text, false, Vec::new(), 1 << 20, 1 << 16);
        report.record(None, result(25, PortState::Filtered, Reason::NoResponse)).unwrap();
        assert!(report.hosts.is_empty());
        let text = String::from_utf8(report.finish(&Summary::default(), &[]).unwrap()).unwrap();
        assert!(text.starts_with("Not listed: 1 filtered (no-response) port(s)"), "{text}");
    }

    #[test]
    fn line_formats_keep_no_per_host_state() {
        for format in [Format::Jsonl, Format::Csv] {
            let mut report = Report::new(format, false, Vec::new());
            for r in sample() {
                report.record(None, r).unwrap();
            }
            assert!(report.hosts.is_empty(), "{format:?}");
            assert_eq!(report.counts().total(), 4);
        }
    }

    #[test]
    fn file_extensions_name_formats() {
        use std::path::Path;
        let cases = [
            ("a.xml", Some(Format::Xml)),
            ("dir.d/a.GNMAP", Some(Format::Grep)),
            ("a.nmap", Some(Format::Text)),
            ("a.txt", Some(Format::Text)),
            ("a.json", Some(Format::Json)),
            ("a.jsonl", Some(Format::Jsonl)),
            ("a.csv", Some(Format::Csv)),
            ("a.out", None),
            ("xml", None),
        ];
        for (path, want) in cases {
            assert_eq!(Format::from_path(Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn csv_rows_held_for_a_file_come_sorted_with_the_address_as_host() {
        let mut report = Report::new(Format::Csv, false, Vec::new()).sorting_rows(true);
        let mut other = result(1, PortState::Open, Reason::SynAck);
        other.ip = "10.0.0.1".parse().unwrap();
        for r in sample().into_iter().chain([other]) {
            report.record(None, r).unwrap();
        }
        assert!(report.out.is_empty(), "nothing streamed");
        let text = String::from_utf8(report.finish(&Summary::default(), &[]).unwrap()).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).map(|l| l.split(",tcp,").next().unwrap()).collect();
        assert_eq!(
            rows,
            [
                "10.0.0.1,10.0.0.1,1",
                "127.0.0.1,127.0.0.1,22",
                "127.0.0.1,127.0.0.1,25",
                "127.0.0.1,127.0.0.1,80",
                "127.0.0.1,127.0.0.1,443"
            ]
        );
        // A large scan streams instead.
        let report = Report::for_scan(Format::Csv, false, Vec::new(), 1 << 20, 1).sorting_rows(true);
        assert!(report.held.is_none());
    }

    #[test]
    fn csv_has_header_and_rows() {
        let text = render(Format::Csv, false);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("host,ip,port,proto,state,reason,rtt_us,tries"));
        assert_eq!(lines.next(), Some("localhost,127.0.0.1,443,tcp,closed,conn-refused,1500,1"));
        assert_eq!(text.lines().count(), 5);
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
