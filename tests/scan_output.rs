//! Where scan results go: `-o` into FIFOs and links without replacing
//! them, unwritable paths refused as bad input before the first probe.
//! Only loopback addresses are scanned.

use std::os::unix::fs::FileTypeExt;
use std::process::Command;

use crate::util::{Listeners, run, stderr};

fn mkfifo(path: &std::path::Path) {
    let made = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_given_to_o_is_written_into_not_replaced() {
    let l = Listeners::start(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("results");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).expect("read the fifo"))
    };
    let o =
        run(&["scan", &l.ip.to_string(), "-p", &l.spec_with(&[]), "-f", "json", "-o", fifo.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Before joining: a replaced FIFO would leave the reader waiting.
    assert!(std::fs::symlink_metadata(&fifo).expect("still there").file_type().is_fifo(), "the FIFO was replaced");
    let doc: serde_json::Value = serde_json::from_str(&reader.join().expect("reader")).expect("json through the fifo");
    assert_eq!(doc["summary"]["counts"]["open"], 1);
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1, "no temporary file left");
}

#[test]
fn a_link_given_to_o_stays_a_link_to_the_new_results() {
    let l = Listeners::start(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let real = dir.path().join("real.json");
    std::fs::write(&real, "old").expect("write");
    let link = dir.path().join("latest.json");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let o =
        run(&["scan", &l.ip.to_string(), "-p", &l.spec_with(&[]), "-f", "json", "-o", link.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link).expect("link").file_type().is_symlink(), "the link was replaced");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&real).expect("real")).expect("json");
    assert_eq!(doc["summary"]["counts"]["open"], 1);
}

#[test]
fn an_unwritable_o_is_bad_input_before_any_probe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no/such/dir/out.xml");
    let dangling = dir.path().join("dangling.json");
    std::os::unix::fs::symlink(dir.path().join("gone/x"), &dangling).expect("symlink");
    for path in [missing.as_path(), dir.path(), dangling.as_path()] {
        let path = path.to_str().expect("utf-8");
        // In a namespace without routes, so that a probe, were one sent,
        // could not leave the machine.
        let o = Command::new("unshare")
            .args(["-n", env!("CARGO_BIN_EXE_trident"), "scan", "127.0.0.1", "-p", "1", "-o", path])
            .output()
            .expect("unshare");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{path}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&format!("cannot write {path}: ")), "{err}");
        assert!(!err.contains(".tmp-"), "the temporary name shows: {err}");
        assert!(o.stdout.is_empty());
    }
}

/// Runs trident in a network namespace without routes: a word taken for a
/// host could be neither resolved nor probed off this machine.
fn run_isolated(args: &[&str]) -> std::process::Output {
    Command::new("unshare")
        .args(["-n", env!("CARGO_BIN_EXE_trident")])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("unshare")
}

#[test]
fn nmap_output_flags_write_each_format_at_once() {
    let l = Listeners::start(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_string();
    let (xml, gnmap, nmap, jsonl, base, ext) =
        (path("a.xml"), path("a.gnmap"), path("a.nmap"), path("a.jsonl"), path("all"), path("by-ext.xml"));
    let ip = l.ip.to_string();
    let ports = l.spec_with(&[]);
    let args =
        ["scan", &ip, "-p", &ports, "-oX", &xml, "-oG", &gnmap, "-oN", &nmap, "-oJ", &jsonl, "-oA", &base, "-o", &ext];
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "not a terminal: the results go to the files only");
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    for p in [&xml, &format!("{base}.xml"), &ext] {
        let text = read(p);
        assert!(text.starts_with("<?xml") && text.trim_end().ends_with("</nmaprun>"), "{p}: {text}");
        assert_eq!(text.matches("<state state=\"open\"").count(), 2, "{p}: {text}");
    }
    for p in [&gnmap, &format!("{base}.gnmap")] {
        assert_eq!(read(p).matches("/open/tcp/").count(), 2, "{p}");
    }
    for p in [&nmap, &format!("{base}.nmap")] {
        assert!(read(p).contains(&format!("Scan report for {ip}\n")), "{p}");
    }
    let lines: Vec<serde_json::Value> =
        read(&jsonl).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.iter().filter(|l| l["state"] == "open").count(), 2);
}

#[test]
fn a_terminal_still_gets_the_text_report_with_file_outputs() {
    // script(1) gives trident a pseudo-terminal as stdout.
    let l = Listeners::start(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let xml = dir.path().join("t.xml");
    let cmd = format!(
        "{} scan {} -p {} -oX {} -q",
        env!("CARGO_BIN_EXE_trident"),
        l.ip,
        l.spec_with(&[]),
        xml.to_str().expect("utf-8")
    );
    let o = Command::new("script").args(["-qfec", &cmd, "/dev/null"]).output().expect("script(1) from util-linux");
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(tty.contains(&format!("Scan report for {}", l.ip)), "{tty}");
    assert!(tty.contains("Scanned 1 host x 1 port"), "{tty}");
    assert!(std::fs::read_to_string(&xml).expect("xml written").contains("<state state=\"open\""));
}

#[test]
fn file_names_and_help_are_refused_as_targets_without_a_lookup() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["scan", "127.0.0.1", "out.xml"],
            "\"out.xml\" looks like a file, not a target host: did you mean -oX out.xml?",
        ),
        (&["scan", "127.0.0.1", "r.gnmap"], "did you mean -oG r.gnmap?"),
        (&["scan", "results.json", "127.0.0.1"], "did you mean -o results.json?"),
        (&["scan", "help"], "\"help\" is not a target; see trident scan --help"),
        (&["scan", "127.0.0.1", "-oM", "results"], "-oM is not an output type trident writes"),
    ];
    for (args, needle) in cases {
        let o = run_isolated(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn service_names_are_nmaps_when_nmap_is_installed() {
    let services = "/usr/share/nmap/nmap-services";
    assert!(
        std::path::Path::new(services).is_file(),
        "{services} is missing; this test needs it: apt-get install -y nmap (scripts/test does)"
    );
    // Port 8000: http-alt in nmap-services, absent from Debian's /etc/services.
    let l = Listeners::start(1);
    let o = crate::util::trident()
        .args(["scan", &l.ip.to_string(), "-p", "8000", "-f", "grep"])
        .env_remove("TRIDENT_SERVICES")
        .output()
        .expect("trident runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = crate::util::stdout(&o);
    assert!(out.contains("\tPorts: 8000/closed/tcp//http-alt///"), "{out}");
}

#[test]
fn json_of_every_port_is_compact_with_closed_ports_summarised() {
    let l = Listeners::start(2);
    let ip = l.ip.to_string();
    let o = run(&["scan", &ip, "-p-", "-f", "json", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.len() < 4096, "{} bytes for two open ports", o.stdout.len());
    assert_eq!(o.stdout.iter().filter(|&&b| b == b'\n').count(), 1, "one compact line");
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let host = &doc["hosts"][0];
    let listed: std::collections::BTreeSet<u16> =
        host["ports"].as_array().expect("ports").iter().map(|p| p["port"].as_u64().expect("port") as u16).collect();
    // Listeners on every address (another program's) may be open here too.
    assert!(listed.is_superset(&l.ports), "{listed:?}");
    assert_eq!(host["closed"]["count"], 65535 - listed.len() as u64);
    // The ranges are every port but the listed ones.
    let mut want = Vec::new();
    let mut from = 1u32;
    for &p in listed.iter().chain([&0u16]) {
        let to = if p == 0 { 65535 } else { u32::from(p) - 1 };
        match to.cmp(&from) {
            std::cmp::Ordering::Greater => want.push(format!("{from}-{to}")),
            std::cmp::Ordering::Equal => want.push(from.to_string()),
            std::cmp::Ordering::Less => {}
        }
        from = u32::from(p) + 1;
    }
    assert_eq!(host["closed"]["ports"], want.join(","));

    // --show-closed lists them one by one, and no summary.
    let o = run(&["scan", &ip, "-p", &l.spec_with(&[1, 2, 3]), "-f", "json", "--show-closed", "-q"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let states: Vec<&str> =
        doc["hosts"][0]["ports"].as_array().expect("ports").iter().filter_map(|p| p["state"].as_str()).collect();
    assert_eq!(states.iter().filter(|s| **s == "closed").count(), 3, "{doc}");
    assert_eq!(doc["hosts"][0].get("closed"), None);
}

#[test]
fn a_csv_file_is_sorted_by_address_and_port_with_the_host_filled() {
    let l = Listeners::start(3);
    let ip = l.ip.to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("r.csv");
    let ports = l.spec_with(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    let o = run(&["scan", "localhost", "-4", &ip, "-p", &ports, "-o", file.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&file).expect("csv");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("host,ip,port,proto,state,reason,rtt_us,tries"));
    let rows: Vec<(String, std::net::Ipv4Addr, u16)> = lines
        .map(|row| {
            let f: Vec<&str> = row.split(',').collect();
            (f[0].to_string(), f[1].parse().expect("ip"), f[2].parse().expect("port"))
        })
        .collect();
    assert_eq!(rows.len(), 2 * (l.ports.len() + 10), "{text}");
    let keys: Vec<(std::net::Ipv4Addr, u16)> = rows.iter().map(|(_, ip, port)| (*ip, *port)).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted, "sorted by (address, port): {text}");
    for (host, addr, _) in &rows {
        let want = if *addr == std::net::Ipv4Addr::LOCALHOST { "localhost" } else { ip.as_str() };
        assert_eq!(host, want, "the name given, else the address: {text}");
    }
}

#[test]
fn dev_stdout_into_a_pipe_is_written_through() {
    // /dev/stdout is a link to this process's stdout, here a pipe.
    let l = Listeners::start(1);
    let o = run(&["scan", &l.ip.to_string(), "-p", &l.spec_with(&[]), "-oX", "/dev/stdout", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let xml = crate::util::stdout(&o);
    assert!(xml.starts_with("<?xml") && xml.contains("<state state=\"open\""), "{xml}");
}

#[test]
fn a_closed_stdout_does_not_cost_the_files() {
    let l = Listeners::start(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let xml = dir.path().join("kept.xml");
    let mut child = crate::util::trident()
        .args(["scan", &l.ip.to_string(), "-p", &l.spec_with(&[1, 2, 3]), "-f", "jsonl", "-oX"])
        .arg(&xml)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Nobody reads stdout: the first line written meets a closed pipe.
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&xml).expect("the XML file was written");
    assert_eq!(text.matches("<state state=\"open\"").count(), 2, "{text}");
}
