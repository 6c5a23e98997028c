//! nmap's machine formats: grepable (`-f grep`, as `nmap -oG`) and XML
//! (`-f xml`, as `nmap -oX`), so that tools written for nmap (ndiff, XSLT
//! reports, importers) read trident's results.
//!
//! What is listed follows nmap's rule for a connect scan: open ports are
//! always listed; a non-open state (closed, filtered, error) is listed port
//! by port when it has at most [`LIST_LIMIT`] ports on that host, and is
//! otherwise collapsed into one count (`Ignored State:` in grep,
//! `<extraports>` with per-reason `<extrareasons>` in XML). With `--open`
//! every non-open state is collapsed, as with nmap's `--open`.
//!
//! Deliberate differences from nmap:
//! - every host is reported up, with reason `user-set`, as nmap `-Pn` does:
//!   trident does no host discovery;
//! - `scanner="trident"` with trident's `version`: nmap's DTD allows only
//!   `nmap` there, but no tool needs it (ndiff prints the scanner's own
//!   name, as it does for masscan's files), and `nmap 0.1.0` would be a lie;
//!   everything else validates against the DTD;
//! - `<extrareasons>` carries no `ports` list (only counts are kept);
//! - grep's `Ignored State` names one state, the one with the most ports,
//!   as nmap names only one (a host with two collapsed states has the
//!   other one's count in the XML only);
//! - `<times>` is the mean and standard deviation of the host's answered
//!   probes, not nmap's smoothed estimates; `to` is `srtt + 4 rttvar`, at
//!   least 100 ms, as nmap computes it;
//! - a port this machine could not probe has state `error`
//!   (reason `local-error`), a state nmap does not have.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::probe::PortState;
use super::report::{Counts, HostResults, Summary};
use super::services::service_name;
use super::target::TargetError;

/// A non-open state with more ports than this on a host is collapsed into
/// a count instead of being listed (nmap's default, without `-v`).
pub const LIST_LIMIT: u64 = 25;

/// nmap's XML output version this layout follows.
const XML_OUTPUT_VERSION: &str = "1.05";

/// Whether ports in `state` are collapsed into a count for a host with
/// `counts` (so far: a state only grows, so once collapsed, always).
pub fn is_collapsed(counts: &Counts, state: PortState, open_only: bool) -> bool {
    state != PortState::Open && (open_only || counts.get(state) > LIST_LIMIT)
}

/// Settles a host once all its results are in: `kept` keeps exactly the
/// ports to list, `hidden` exactly the (state, reason) counts to collapse.
pub(super) fn settle(h: &mut HostResults, open_only: bool) {
    let counts = h.counts;
    h.kept.retain(|r| !is_collapsed(&counts, r.state, open_only));
    h.hidden.retain(|(state, _), _| is_collapsed(&counts, *state, open_only));
}

/// A set of ports (bit per port), printed nmap-style: `1-100,443`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet {
    /// 1,024 words once the first port is in; empty before.
    bits: Vec<u64>,
}

impl PortSet {
    /// Adds `port`.
    pub fn insert(&mut self, port: u16) {
        if self.bits.is_empty() {
            self.bits = vec![0; 1024];
        }
        self.bits[usize::from(port / 64)] |= 1 << (port % 64);
    }

    /// Whether `port` is in.
    pub fn contains(&self, port: u16) -> bool {
        self.bits.get(usize::from(port / 64)).is_some_and(|w| w & (1 << (port % 64)) != 0)
    }

    /// Number of ports in.
    pub fn len(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::ports::write_ranges(f, (0..=u16::MAX).filter(|&p| self.contains(p)))
    }
}

/// Round-trip time statistics of one host's answered probes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttStats {
    n: u64,
    sum: u128,
    sum_sq: u128,
}

impl RttStats {
    /// Adds one probe's RTT (`None`: nothing answered, not counted).
    pub fn add(&mut self, rtt_us: Option<u64>) {
        if let Some(us) = rtt_us {
            self.n += 1;
            self.sum += u128::from(us);
            self.sum_sq += u128::from(us) * u128::from(us);
        }
    }

    /// `(srtt, rttvar, to)` in microseconds, as in nmap's `<times>`; `None`
    /// when nothing answered.
    pub fn times(&self) -> Option<(u64, u64, u64)> {
        if self.n == 0 {
            return None;
        }
        let n = self.n as f64;
        let mean = self.sum as f64 / n;
        let var = (self.sum_sq as f64 / n - mean * mean).max(0.0);
        let srtt = mean.round() as u64;
        let rttvar = var.sqrt().round() as u64;
        let to = srtt.saturating_add(rttvar.saturating_mul(4)).max(100_000);
        Some((srtt, rttvar, to))
    }
}

/// When and how the scan ran, for the header and footer lines.
struct Run {
    /// Command line, as typed (approximately: arguments joined by spaces).
    args: String,
    start: SystemTime,
    end: SystemTime,
    /// `N IP address(es) (M host(s) up) scanned in X.XX seconds`.
    tally: String,
    up: u64,
    total: u64,
}

impl Run {
    fn new(hosts: &BTreeMap<(u32, IpAddr), HostResults>, s: &Summary) -> Self {
        let end = SystemTime::now();
        let start = end.checked_sub(s.elapsed).unwrap_or(end);
        let up = hosts.len() as u64;
        let total = s.hosts.max(up);
        let tally = format!(
            "{total} IP address{} ({up} host{} up) scanned in {:.2} seconds",
            if total == 1 { "" } else { "es" },
            if up == 1 { "" } else { "s" },
            s.elapsed.as_secs_f64()
        );
        Run { args: command_line(), start, end, tally, up, total }
    }
}

/// This process's command line, arguments joined by single spaces (as
/// nmap records its own); line breaks become spaces.
fn command_line() -> String {
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    args.join(" ").replace(['\n', '\r'], " ")
}

/// Seconds since the epoch.
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `Wed Nov 25 20:59:40 2026`, `Tue Dec  8 03:01:55 2026`: local time in
/// C's `ctime` layout, as nmap writes dates.
pub fn ctime(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let pick = |names: &[&'static str], i: libc::c_int| usize::try_from(i).ok().and_then(|i| names.get(i).copied());
    let named =
        crate::sys::local_time(t).and_then(|tm| Some((pick(&DAYS, tm.tm_wday)?, pick(&MONTHS, tm.tm_mon)?, tm)));
    match named {
        Some((day, month, tm)) => format!(
            "{day} {month} {:>2} {:02}:{:02}:{:02} {}",
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec,
            i64::from(tm.tm_year) + 1900
        ),
        None => format!("@{}", unix_secs(t)),
    }
}

/// The (state, count) pairs collapsed on a host, the most ports first.
fn collapsed_states(h: &HostResults) -> Vec<(PortState, u64)> {
    let mut states: Vec<PortState> = h.hidden.keys().map(|(state, _)| *state).collect();
    states.dedup();
    let mut out: Vec<(PortState, u64)> = states.into_iter().map(|s| (s, h.counts.get(s))).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// A field of a grep line: no `/` or `,` (nmap's separators), no tabs.
fn grep_field(s: &str) -> String {
    s.replace('/', "|").replace(',', ";").replace(['\t', '\n', '\r'], " ")
}

/// Writes nmap's grepable layout.
pub(super) fn write_grep<W: Write>(
    out: &mut W,
    hosts: &BTreeMap<(u32, IpAddr), HostResults>,
    s: &Summary,
) -> io::Result<()> {
    let run = Run::new(hosts, s);
    writeln!(out, "# trident {} scan initiated {} as: {}", env!("CARGO_PKG_VERSION"), ctime(run.start), run.args)?;
    for ((_, ip), h) in hosts {
        let name = h.host.as_deref().map(grep_field).unwrap_or_default();
        writeln!(out, "Host: {ip} ({name})\tStatus: Up")?;
        let ports: Vec<String> = h
            .kept
            .iter()
            .map(|r| {
                let service = service_name(r.port).map(grep_field).unwrap_or_default();
                format!("{}/{}/tcp//{service}///", r.port, r.state.as_str())
            })
            .collect();
        write!(out, "Host: {ip} ({name})\tPorts: {}", ports.join(", "))?;
        if let Some((state, n)) = collapsed_states(h).first() {
            write!(out, "\tIgnored State: {} ({n})", state.as_str())?;
        }
        writeln!(out)?;
    }
    write!(out, "# trident done at {} -- {}", ctime(run.end), run.tally)?;
    if s.interrupted {
        write!(out, " (interrupted: partial results)")?;
    }
    writeln!(out)
}

/// Text for an XML attribute value (double-quoted) or element content:
/// markup characters as entities, whitespace other than space as character
/// references, and characters XML 1.0 forbids as U+FFFD.
pub fn xml_escape(s: &str) -> Cow<'_, str> {
    let needs = |c: char| matches!(c, '&' | '<' | '>' | '"' | '\'') || (c.is_control() && c != ' ');
    if !s.contains(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || ('\u{fffe}'..='\u{ffff}').contains(&c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Text for inside an XML comment: `--` may not appear there, so the second
/// dash of each pair becomes `&#45;` (as nmap writes it); see [`xml_escape`]
/// for the rest.
fn xml_comment(s: &str) -> String {
    let escaped = xml_escape(s);
    let mut out = String::with_capacity(escaped.len());
    for c in escaped.chars() {
        if c == '-' && out.ends_with('-') {
            out.push_str("&#45;");
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes nmap's XML layout (valid against nmap.dtd).
pub(super) fn write_xml<W: Write>(
    out: &mut W,
    hosts: &BTreeMap<(u32, IpAddr), HostResults>,
    s: &Summary,
    target_failures: &[TargetError],
    probed: &PortSet,
) -> io::Result<()> {
    let run = Run::new(hosts, s);
    let version = env!("CARGO_PKG_VERSION");
    let startstr = ctime(run.start);
    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(out, "<!DOCTYPE nmaprun>")?;
    writeln!(out, "<!-- trident {version} scan initiated {startstr} as: {} -->", xml_comment(&run.args))?;
    writeln!(
        out,
        "<nmaprun scanner=\"trident\" args=\"{}\" start=\"{}\" startstr=\"{startstr}\" version=\"{version}\" xmloutputversion=\"{XML_OUTPUT_VERSION}\">",
        xml_escape(&run.args),
        unix_secs(run.start),
    )?;
    writeln!(
        out,
        "<scaninfo type=\"connect\" protocol=\"tcp\" numservices=\"{}\" services=\"{probed}\"/>",
        probed.len()
    )?;
    writeln!(out, "<verbose level=\"0\"/>")?;
    writeln!(out, "<debugging level=\"0\"/>")?;
    for failure in target_failures {
        let target = match failure {
            TargetError::Syntax { target, .. } | TargetError::Resolve { target, .. } => target,
        };
        writeln!(out, "<target specification=\"{}\" status=\"skipped\" reason=\"invalid\"/>", xml_escape(target))?;
    }
    for ((_, ip), h) in hosts {
        write_xml_host(out, *ip, h)?;
    }
    let (exit, errormsg) = if s.interrupted {
        ("error", Some("interrupted: partial results".to_string()))
    } else if s.failed_probes > 0 {
        ("error", Some(format!("{} probes could not be run", s.failed_probes)))
    } else {
        ("success", None)
    };
    let endstr = ctime(run.end);
    write!(
        out,
        "<runstats><finished time=\"{}\" timestr=\"{endstr}\" summary=\"trident done at {endstr}; {}\" elapsed=\"{:.2}\" exit=\"{exit}\"",
        unix_secs(run.end),
        run.tally,
        s.elapsed.as_secs_f64(),
    )?;
    if let Some(msg) = errormsg {
        write!(out, " errormsg=\"{}\"", xml_escape(&msg))?;
    }
    writeln!(out, "/><hosts up=\"{}\" down=\"0\" total=\"{}\"/>", run.up, run.total)?;
    writeln!(out, "</runstats>")?;
    writeln!(out, "</nmaprun>")
}

fn write_xml_host<W: Write>(out: &mut W, ip: IpAddr, h: &HostResults) -> io::Result<()> {
    let addrtype = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
    writeln!(out, "<host><status state=\"up\" reason=\"user-set\" reason_ttl=\"0\"/>")?;
    writeln!(out, "<address addr=\"{ip}\" addrtype=\"{addrtype}\"/>")?;
    writeln!(out, "<hostnames>")?;
    if let Some(name) = &h.host {
        writeln!(out, "<hostname name=\"{}\" type=\"user\"/>", xml_escape(name))?;
    }
    writeln!(out, "</hostnames>")?;
    write!(out, "<ports>")?;
    for (state, count) in collapsed_states(h) {
        writeln!(out, "<extraports state=\"{}\" count=\"{count}\">", state.as_str())?;
        for ((_, reason), n) in h.hidden.range((state, "")..).take_while(|((s, _), _)| *s == state) {
            writeln!(out, "<extrareasons reason=\"{}\" count=\"{n}\" proto=\"tcp\"/>", xml_escape(reason))?;
        }
        writeln!(out, "</extraports>")?;
    }
    for r in &h.kept {
        write!(
            out,
            "<port protocol=\"tcp\" portid=\"{}\"><state state=\"{}\" reason=\"{}\" reason_ttl=\"0\"/>",
            r.port,
            r.state.as_str(),
            r.reason.as_str()
        )?;
        if let Some(name) = service_name(r.port) {
            write!(out, "<service name=\"{}\" method=\"table\" conf=\"3\"/>", xml_escape(name))?;
        }
        writeln!(out, "</port>")?;
    }
    writeln!(out, "</ports>")?;
    if let Some((srtt, rttvar, to)) = h.rtt.times() {
        writeln!(out, "<times srtt=\"{srtt}\" rttvar=\"{rttvar}\" to=\"{to}\"/>")?;
    }
    writeln!(out, "</host>")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::scan::probe::{ProbeResult, Reason};
    use crate::scan::report::{Format, Report};

    fn result(port: u16, state: PortState, reason: Reason) -> ProbeResult {
        ProbeResult {
            block: 0,
            ip: "127.0.0.1".parse().unwrap(),
            port,
            state,
            reason,
            rtt_us: (state != PortState::Filtered).then_some(100),
            tries: 1,
            error: None,
            banner: None,
        }
    }

    /// Ports 22 and 80 open, `closed` closed ports from 1000 up, 30
    /// filtered from 2000 up.
    fn render(format: Format, open_only: bool, closed: u16) -> String {
        let mut report = Report::new(format, open_only, Vec::new());
        let host: Arc<str> = Arc::from("local<host>");
        let mut results =
            vec![result(80, PortState::Open, Reason::SynAck), result(22, PortState::Open, Reason::SynAck)];
        results.extend((0..closed).map(|i| result(1000 + i, PortState::Closed, Reason::ConnRefused)));
        results.extend((0..30).map(|i| result(2000 + i, PortState::Filtered, Reason::NoResponse)));
        results.push(result(3000, PortState::Filtered, Reason::HostUnreach));
        for r in results {
            report.record(Some(&host), r).unwrap();
        }
        let summary = Summary {
            engine: "async",
            concurrency: 10,
            hosts: 1,
            ports_per_host: u64::from(closed) + 33,
            counts: report.counts(),
            elapsed: Duration::from_millis(1234),
            ..Summary::default()
        };
        String::from_utf8(report.finish(&summary, &[]).unwrap()).unwrap()
    }

    #[test]
    fn grep_lists_few_closed_ports_and_ignores_many() {
        let text = render(Format::Grep, false, 3);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with(&format!("# trident {} scan initiated ", env!("CARGO_PKG_VERSION"))));
        assert!(lines[0].contains(" as: "), "{}", lines[0]);
        assert_eq!(lines[1], "Host: 127.0.0.1 (local<host>)\tStatus: Up");
        let ssh = service_name(22).unwrap_or_default();
        assert_eq!(
            lines[2],
            format!(
                "Host: 127.0.0.1 (local<host>)\tPorts: 22/open/tcp//{ssh}///, 80/open/tcp//{}///, \
                 1000/closed/tcp//{}///, 1001/closed/tcp//{}///, 1002/closed/tcp//{}///\tIgnored State: filtered (31)",
                service_name(80).unwrap_or_default(),
                service_name(1000).unwrap_or_default(),
                service_name(1001).unwrap_or_default(),
                service_name(1002).unwrap_or_default(),
            )
        );
        assert!(lines[3].starts_with("# trident done at "), "{}", lines[3]);
        assert!(lines[3].ends_with(" -- 1 IP address (1 host up) scanned in 1.23 seconds"), "{}", lines[3]);

        // 40 closed and 31 filtered: both collapsed; grep names the larger.
        let text = render(Format::Grep, false, 40);
        let ports = text.lines().nth(2).unwrap();
        assert!(ports.ends_with("/tcp//http///\tIgnored State: closed (40)"), "{ports}");
        assert_eq!(ports.matches("/tcp/").count(), 2, "{ports}");
    }

    #[test]
    fn open_only_collapses_every_other_state() {
        let text = render(Format::Grep, true, 3);
        let ports = text.lines().nth(2).unwrap();
        assert_eq!(ports.matches("/tcp/").count(), 2, "{ports}");
        assert!(ports.ends_with("\tIgnored State: filtered (31)"), "{ports}");
        let xml = render(Format::Xml, true, 3);
        assert!(xml.contains("<extraports state=\"closed\" count=\"3\">"), "{xml}");
        assert_eq!(xml.matches("<port ").count(), 2);
    }

    #[test]
    fn xml_collapses_states_with_reasons_and_escapes() {
        let xml = render(Format::Xml, false, 3);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE nmaprun>\n<!-- trident "));
        assert!(xml.contains("<scaninfo type=\"connect\" protocol=\"tcp\" numservices=\"36\" services=\"22,80,1000-1002,2000-2029,3000\"/>"), "{xml}");
        assert!(xml.contains("<hostname name=\"local&lt;host&gt;\" type=\"user\"/>"), "{xml}");
        let extra = "<extraports state=\"filtered\" count=\"31\">\n\
                     <extrareasons reason=\"host-unreach\" count=\"1\" proto=\"tcp\"/>\n\
                     <extrareasons reason=\"no-response\" count=\"30\" proto=\"tcp\"/>\n\
                     </extraports>\n";
        assert!(xml.contains(extra), "{xml}");
        assert_eq!(xml.matches("<port ").count(), 5, "2 open + 3 closed listed");
        assert!(xml.contains(
            "<port protocol=\"tcp\" portid=\"1000\"><state state=\"closed\" reason=\"conn-refused\" reason_ttl=\"0\"/>"
        ));
        if let Some(ssh) = service_name(22) {
            assert!(xml.contains(&format!("<port protocol=\"tcp\" portid=\"22\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"0\"/><service name=\"{ssh}\" method=\"table\" conf=\"3\"/></port>\n")), "{xml}");
        }
        assert!(xml.contains("<times srtt=\"100\" rttvar=\"0\" to=\"100000\"/>"), "{xml}");
        assert!(
            xml.contains(
                "elapsed=\"1.23\" exit=\"success\"/><hosts up=\"1\" down=\"0\" total=\"1\"/>\n</runstats>\n</nmaprun>\n"
            ),
            "{xml}"
        );
    }

    #[test]
    fn xml_notes_skipped_targets_and_interruptions() {
        let mut report = Report::new(Format::Xml, false, Vec::new());
        report.record(None, result(22, PortState::Open, Reason::SynAck)).unwrap();
        let summary = Summary { hosts: 2, counts: report.counts(), interrupted: true, ..Summary::default() };
        let failures = [TargetError::Resolve { target: "a&b.invalid".into(), why: "no such host".into() }];
        let xml = String::from_utf8(report.finish(&summary, &failures).unwrap()).unwrap();
        assert!(xml.contains("<debugging level=\"0\"/>\n<target specification=\"a&amp;b.invalid\" status=\"skipped\" reason=\"invalid\"/>\n<host>"), "{xml}");
        assert!(
            xml.contains(
                "exit=\"error\" errormsg=\"interrupted: partial results\"/><hosts up=\"1\" down=\"0\" total=\"2\"/>"
            ),
            "{xml}"
        );
        assert!(xml.contains("<hostnames>\n</hostnames>\n"), "{xml}");
    }

    #[test]
    fn escaping() {
        assert_eq!(xml_escape("plain -p 1-3"), "plain -p 1-3");
        assert_eq!(xml_escape("a&b<c>\"d'\te\u{1}"), "a&amp;b&lt;c&gt;&quot;d&apos;&#9;e\u{fffd}");
        assert_eq!(xml_comment("trident scan --open ---x -"), "trident scan -&#45;open -&#45;-x -");
        assert_eq!(grep_field("a/b,c\td"), "a|b;c d");
    }

    #[test]
    fn port_sets_print_as_ranges() {
        let mut set = PortSet::default();
        assert_eq!((set.to_string(), set.len(), set.is_empty()), (String::new(), 0, true));
        for p in [1, 2, 3, 5, 65534, 65535, 80] {
            set.insert(p);
        }
        assert_eq!(set.to_string(), "1-3,5,80,65534-65535");
        assert_eq!(set.len(), 7);
        let mut all = PortSet::default();
        (1..=u16::MAX).for_each(|p| all.insert(p));
        assert_eq!(all.to_string(), "1-65535");
    }

    #[test]
    fn rtt_times() {
        let mut r = RttStats::default();
        assert_eq!(r.times(), None);
        r.add(None);
        r.add(Some(100_000));
        r.add(Some(300_000));
        assert_eq!(r.times(), Some((200_000, 100_000, 600_000)));
    }

    #[test]
    fn ctime_looks_like_nmaps() {
        let s = ctime(SystemTime::now());
        assert_eq!(s.len(), 24, "{s}");
        let parts: Vec<&str> = s.split_whitespace().collect();
        assert_eq!(parts.len(), 5, "{s}");
        assert_eq!((parts[0].len(), parts[1].len(), parts[3].len(), parts[4].len()), (3, 3, 8, 4));
        assert_eq!(&s[8..10], format!("{:>2}", parts[2]), "the day is padded with a space, as ctime's: {s}");
    }

    #[test]
    fn collapse_rule() {
        let c = Counts { open: 100, closed: LIST_LIMIT, filtered: LIST_LIMIT + 1, error: 0 };
        assert!(!is_collapsed(&c, PortState::Open, false));
        assert!(!is_collapsed(&c, PortState::Open, true));
        assert!(!is_collapsed(&c, PortState::Closed, false));
        assert!(is_collapsed(&c, PortState::Closed, true));
        assert!(is_collapsed(&c, PortState::Filtered, false));
    }
}
