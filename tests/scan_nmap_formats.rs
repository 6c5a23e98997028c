//! `-f xml` and `-f grep` judged by nmap's own tools, on every engine: the
//! XML validates against nmap's DTD (but for `scanner="trident"`), ndiff
//! reads it (a listener closed between two scans is exactly the difference
//! it reports), ndiff finds no difference from `nmap -sT` of the same
//! loopback address or host name, and grep lines list exactly the open
//! ports.
//!
//! Needs nmap (with its DTD and nmap-services), ndiff and xmllint; without
//! them the tests fail saying what to install (Debian: nmap ndiff
//! libxml2-utils). Only loopback addresses are scanned.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::engine_tests;
use crate::util::{Listeners, stderr, stdout, trident};

const NMAP_DTD: &str = "/usr/share/nmap/nmap.dtd";
const NMAP_SERVICES: &str = "/usr/share/nmap/nmap-services";
const PACKAGES: &str = "nmap ndiff libxml2-utils";

/// The path of `tool`, or a failure naming the package to install.
fn require(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(tool)).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("{tool} is not installed; these tests need it: apt-get install -y {package} (all: {PACKAGES})")
    })
}

fn require_file<'a>(path: &'a str, package: &str) -> &'a str {
    assert!(Path::new(path).is_file(), "{path} is missing; these tests need it: apt-get install -y {package}");
    path
}

/// `count` ports above 40000 that no listener of `l` uses.
fn free_ports(l: &Listeners, count: usize, avoid: &[u16]) -> Vec<u16> {
    (40000..=u16::MAX).step_by(7).filter(|p| !l.ports.contains(p) && !avoid.contains(p)).take(count).collect()
}

fn spec(ports: impl IntoIterator<Item = u16>) -> String {
    ports.into_iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
}

/// Runs trident with `args` and `env` (extra variables), checking success.
fn scan(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = trident();
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("trident runs");
    assert!(o.status.success(), "trident {args:?}: {}", stderr(&o));
    o
}

/// A trident XML scan of `ip` over `ports`, written to `out`.
fn xml_scan(engine: &str, ip: &str, ports: &str, out: &Path, env: &[(&str, &str)]) {
    let out = out.to_str().expect("utf-8 path");
    let o = scan(&["scan", ip, "-p", ports, "-e", engine, "-f", "xml", "-o", out, "-q"], env);
    assert!(o.stdout.is_empty(), "results go to the file only");
}

/// Validates `file` against nmap's DTD. The one departure allowed is the
/// honest `scanner="trident"` (the DTD names only nmap), so trident's files
/// are checked against a copy that also accepts that name.
fn xmllint_valid(file: &Path) {
    let xmllint = require("xmllint", "libxml2-utils");
    let nmap_dtd = std::fs::read_to_string(require_file(NMAP_DTD, "nmap")).expect("read nmap.dtd");
    let ours = nmap_dtd.replacen("scanner\t\t(nmap)", "scanner\t\t(nmap|trident)", 1);
    assert_ne!(ours, nmap_dtd, "nmap.dtd no longer declares scanner (nmap)");
    let dir = tempfile::tempdir().expect("tempdir");
    let dtd = dir.path().join("nmap-or-trident.dtd");
    std::fs::write(&dtd, ours).expect("write dtd");
    let o = Command::new(xmllint).args(["--noout", "--dtdvalid"]).arg(&dtd).arg(file).output().expect("xmllint runs");
    assert!(
        o.status.success(),
        "{} does not validate against nmap.dtd: {}\n{}",
        file.display(),
        stderr(&o),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

/// ndiff's text output and exit code (0 same, 1 different).
fn ndiff(a: &Path, b: &Path) -> (i32, String) {
    let ndiff = require("ndiff", "ndiff");
    let o = Command::new(ndiff).arg(a).arg(b).output().expect("ndiff runs");
    let code = o.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "ndiff failed ({code}): {}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).is_empty(), "ndiff warned: {}", stderr(&o));
    (code, stdout(&o))
}

/// ndiff's changed lines, without the banner (scanner and command line).
fn changed_lines(diff: &str) -> Vec<String> {
    diff.lines()
        .filter(|l| (l.starts_with('-') || l.starts_with('+')) && !l[1..].starts_with("Nmap "))
        .filter(|l| !l[1..].starts_with(&format!("trident {} scan initiated ", env!("CARGO_PKG_VERSION"))))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// One `-f grep` host: name, listed ports (port → state, service), ignored state.
#[derive(Debug, Default)]
struct GrepHost {
    name: String,
    up: bool,
    ports: BTreeMap<u16, (String, String)>,
    ignored: Option<(String, u64)>,
}

/// Parses `-f grep` output strictly, keyed by address.
fn parse_grep(text: &str) -> BTreeMap<String, GrepHost> {
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "{text}");
    assert!(lines[0].starts_with("# trident ") && lines[0].contains(" scan initiated ") && lines[0].contains(" as: "));
    let last = lines[lines.len() - 1];
    assert!(last.starts_with("# trident done at ") && last.contains(" -- ") && last.ends_with(" seconds"), "{last}");
    let mut hosts: BTreeMap<String, GrepHost> = BTreeMap::new();
    for line in &lines[1..lines.len() - 1] {
        let mut fields = line.split('\t');
        let head = fields.next().expect("Host field");
        let (ip, name) = head.strip_prefix("Host: ").and_then(|h| h.split_once(" (")).expect(line);
        let host = hosts.entry(ip.to_string()).or_default();
        host.name = name.strip_suffix(')').expect(line).to_string();
        for field in fields {
            if field == "Status: Up" {
                host.up = true;
            } else if let Some(ports) = field.strip_prefix("Ports: ") {
                for entry in ports.split(", ").filter(|e| !e.is_empty()) {
                    let f: Vec<&str> = entry.split('/').collect();
                    assert_eq!(f.len(), 8, "port/state/proto/owner/service/rpc/version/: {entry}");
                    assert_eq!((f[2], f[3], f[5], f[6], f[7]), ("tcp", "", "", "", ""), "{entry}");
                    host.ports.insert(f[0].parse().expect("port number"), (f[1].to_string(), f[4].to_string()));
                }
            } else if let Some(ignored) = field.strip_prefix("Ignored State: ") {
                let (state, n) = ignored.split_once(" (").expect(field);
                host.ignored = Some((state.to_string(), n.trim_end_matches(')').parse().expect("count")));
            } else {
                panic!("unknown grep field {field:?} in {line:?}");
            }
        }
    }
    hosts
}

fn ports_with_state(h: &GrepHost, state: &str) -> BTreeSet<u16> {
    h.ports.iter().filter(|(_, (s, _))| s == state).map(|(p, _)| *p).collect()
}

engine_tests! {
    fn xml_validates_against_nmaps_dtd(engine) {
        let l = Listeners::start(3);
        let dir = tempfile::tempdir().expect("tempdir");
        let ip = l.ip.to_string();
        // Few closed ports (listed one by one) and many (collapsed).
        let few = l.spec_with(&free_ports(&l, 5, &[]));
        let many = l.spec_with(&free_ports(&l, 40, &[]));
        for (name, ports, open) in [("few", &few, false), ("many", &many, false), ("open", &many, true)] {
            let out = dir.path().join(format!("{name}.xml"));
            let path = out.to_str().expect("utf-8");
            let mut args = vec!["scan", &ip, "localhost", "-4", "-p", ports, "-e", engine, "-f", "xml", "-o", path, "-q"];
            if open {
                args.push("--open");
            }
            scan(&args, &[]);
            xmllint_valid(&out);
            let xml = std::fs::read_to_string(&out).expect("xml");
            assert_eq!(xml.matches("<host>").count(), 2, "{xml}");
            assert!(xml.contains("<hostname name=\"localhost\" type=\"user\"/>"), "{xml}");
            let host = xml
                .split("<host>")
                .find(|h| h.contains(&format!("<address addr=\"{ip}\" addrtype=\"ipv4\"/>")))
                .expect("the listeners' host");
            for port in &l.ports {
                assert!(host.contains(&format!("<port protocol=\"tcp\" portid=\"{port}\"><state state=\"open\" reason=\"syn-ack\"")), "{xml}");
            }
            let closed_listed = host.matches("<state state=\"closed\"").count();
            match name {
                "few" => assert_eq!(closed_listed, 5, "{xml}"),
                _ => {
                    assert_eq!(closed_listed, 0, "{xml}");
                    assert!(host.contains("<extraports state=\"closed\" count=\"40\">\n<extrareasons reason=\"conn-refused\" count=\"40\" proto=\"tcp\"/>"), "{xml}");
                }
            }
        }
    }

    fn ndiff_sees_exactly_a_listener_that_closed(engine) {
        let l = Listeners::start(2);
        let ip = l.ip.to_string();
        let transient = TcpListener::bind(SocketAddrV4::new(l.ip, 0)).expect("bind");
        let gone = transient.local_addr().expect("addr").port();
        let ports = spec(l.ports.iter().copied().chain([gone]).chain(free_ports(&l, 5, &[gone])));
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.xml"), dir.path().join("b.xml"));
        xml_scan(engine, &ip, &ports, &a, &[]);
        drop(transient);
        xml_scan(engine, &ip, &ports, &b, &[]);

        let (code, diff) = ndiff(&a, &b);
        assert_eq!(code, 1, "{diff}");
        let changes: Vec<String> = changed_lines(&diff).iter().map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(changes, vec![format!("-{gone}/tcp open"), format!("+{gone}/tcp closed")], "{diff}");
        assert!(diff.contains(&format!("\n {ip}:\n")), "{diff}");

        let (code, diff) = ndiff(&b, &b);
        assert_eq!((code, changed_lines(&diff)), (0, vec![]), "{diff}");
    }

    fn ndiff_finds_no_difference_from_nmap(engine) {
        let nmap = require("nmap", "nmap");
        let services = require_file(NMAP_SERVICES, "nmap");
        let l = Listeners::start(3);
        let ip = l.ip.to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        // Closed ports listed one by one, then collapsed into extraports.
        for (name, closed) in [("few", 5), ("many", 30)] {
            let ports = l.spec_with(&free_ports(&l, closed, &[]));
            let (ours, theirs) = (dir.path().join(format!("trident-{name}.xml")), dir.path().join(format!("nmap-{name}.xml")));
            // nmap's service names, so that listed ports compare equal.
            xml_scan(engine, &ip, &ports, &ours, &[("TRIDENT_SERVICES", services)]);
            let o = Command::new(&nmap)
                .args(["-n", "-Pn", "-sT", "-p", &ports, "-oX"])
                .arg(&theirs)
                .arg(&ip)
                .stdin(Stdio::null())
                .output()
                .expect("nmap runs");
            assert!(o.status.success(), "nmap: {}", stderr(&o));
            xmllint_valid(&theirs);
            let (code, diff) = ndiff(&theirs, &ours);
            assert_eq!((code, changed_lines(&diff)), (0, vec![]), "{name}: {diff}");
            let (code, diff) = ndiff(&ours, &theirs);
            assert_eq!((code, changed_lines(&diff)), (0, vec![]), "{name}: {diff}");
        }
    }

    fn ndiff_pairs_a_named_host_with_nmaps_scan_of_it(engine) {
        // localhost (from /etc/hosts: no DNS query leaves the machine),
        // scanned by name with nmap -n: the same host, the same user-given
        // hostname, the same ports; the banners name each scanner truly.
        let nmap = require("nmap", "nmap");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let open = listener.local_addr().expect("addr").port();
        let ports = spec([open, 1, 2]);
        let dir = tempfile::tempdir().expect("tempdir");
        let (ours, theirs) = (dir.path().join("trident.xml"), dir.path().join("nmap.xml"));
        scan(&["scan", "localhost", "-4", "-p", &ports, "-e", engine, "-oX", ours.to_str().expect("utf-8"), "-q"], &[]);
        let o = Command::new(&nmap)
            .args(["-n", "-Pn", "-sT", "-p", &ports, "-oX"])
            .arg(&theirs)
            .arg("localhost")
            .stdin(Stdio::null())
            .output()
            .expect("nmap runs");
        assert!(o.status.success(), "nmap: {}", stderr(&o));
        drop(listener);
        xmllint_valid(&ours);
        let (code, diff) = ndiff(&theirs, &ours);
        assert_eq!((code, changed_lines(&diff)), (0, vec![]), "{diff}");
        assert!(diff.contains(&format!("\n+trident {} scan initiated ", env!("CARGO_PKG_VERSION"))), "{diff}");
        assert!(!diff.contains("+Nmap"), "trident's file claims to be nmap's: {diff}");
        let xml = std::fs::read_to_string(&ours).expect("xml");
        assert!(xml.contains("<hostname name=\"localhost\" type=\"user\"/>"), "{xml}");
    }

    fn grep_lines_list_exactly_the_open_ports(engine) {
        let l = Listeners::start(4);
        let ip = l.ip.to_string();
        let few = free_ports(&l, 5, &[]);
        let many = free_ports(&l, 30, &[]);

        // Few closed ports: listed alongside the open ones.
        let o = scan(&["scan", &ip, "-p", &l.spec_with(&few), "-e", engine, "-f", "grep", "-q"], &[]);
        let hosts = parse_grep(&stdout(&o));
        let h = &hosts[&ip];
        assert!(h.up && h.name.is_empty(), "{h:?}");
        assert_eq!(ports_with_state(h, "open"), l.ports);
        assert_eq!(ports_with_state(h, "closed"), few.iter().copied().collect::<BTreeSet<_>>());
        assert_eq!(h.ignored, None);
        assert_eq!(hosts.len(), 1);
        let summary = stdout(&o).lines().last().unwrap_or_default().to_string();
        assert!(summary.contains(" -- 1 IP address (1 host up) scanned in "), "{summary}");

        // Many: collapsed into "Ignored State"; the open ports stay exact.
        let o = scan(&["scan", &ip, "-p", &l.spec_with(&many), "-e", engine, "-f", "grep", "-q"], &[]);
        let h = &parse_grep(&stdout(&o))[&ip];
        assert_eq!(h.ports.keys().copied().collect::<BTreeSet<_>>(), l.ports, "{h:?}");
        assert_eq!(h.ignored, Some(("closed".to_string(), 30)));

        // --open collapses the few too; a host name is carried.
        let o = scan(&["scan", "localhost", "-4", &ip, "-p", &l.spec_with(&few), "-e", engine, "-f", "grep", "--open", "-q"], &[]);
        let hosts = parse_grep(&stdout(&o));
        let h = &hosts[&ip];
        assert_eq!(h.ports.keys().copied().collect::<BTreeSet<_>>(), l.ports, "{h:?}");
        assert!(h.ports.values().all(|(state, _)| state == "open"));
        assert_eq!(h.ignored, Some(("closed".to_string(), 5)));
        let local = hosts.values().find(|h| h.name == "localhost").expect("localhost listed");
        assert!(local.up);
    }
}

#[test]
fn grep_names_services_from_the_table() {
    // Port 1 (tcpmux in /etc/services and nmap-services) is closed on a
    // fresh loopback address: listed with its service name.
    let services = require_file(NMAP_SERVICES, "nmap");
    let l = Listeners::start(1);
    let ip = l.ip.to_string();
    let o = scan(&["scan", &ip, "-p", "1", "-f", "grep", "-q"], &[("TRIDENT_SERVICES", services)]);
    let h = &parse_grep(&stdout(&o))[&ip];
    assert_eq!(h.ports.get(&1), Some(&("closed".to_string(), "tcpmux".to_string())), "{h:?}");
}

#[test]
fn an_endless_services_file_is_refused_not_read_whole() {
    // Read whole, /dev/zero would fill memory: it is refused with a
    // warning, and the scan goes on with the default table.
    let l = Listeners::start(1);
    let ip = l.ip.to_string();
    let o = scan(&["scan", &ip, "-p", "1", "-f", "grep", "-q"], &[("TRIDENT_SERVICES", "/dev/zero")]);
    let err = stderr(&o);
    assert!(err.contains("cannot read TRIDENT_SERVICES=/dev/zero: more than 8388608 bytes"), "{err}");
    let h = &parse_grep(&stdout(&o))[&ip];
    assert_eq!(h.ports.get(&1).map(|(state, _)| state.as_str()), Some("closed"), "{h:?}");
}
