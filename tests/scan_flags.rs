//! nmap's scan flags as nmap users type them (`-sT -Pn -n -F`, `-p` with
//! service names and `T:`, `--exclude`, rate and delay flags), through the
//! real binary, on every engine where the engine matters.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Instant;

use crate::engine_tests;
use crate::util::{self, Listeners, jsonl, ports_in, run, stderr, trident};

fn describe(o: &std::process::Output) -> String {
    format!("status {}\n--- stdout\n{}--- stderr\n{}", o.status, util::stdout(o), util::stderr(o))
}

engine_tests! {
    fn an_nmap_connect_scan_command_line_works(engine) {
        let l = Listeners::start(3);
        let closed = [1u16, 2];
        let ip = l.ip.to_string();
        let o = run(&["scan", "-sT", "-Pn", "-n", &ip, "-p", &l.spec_with(&closed), "-e", engine, "-f", "jsonl"]);
        let context = describe(&o);
        assert_eq!(o.status.code(), Some(0), "{context}");
        let lines = jsonl(&o);
        assert_eq!(ports_in(&lines, "open"), l.ports, "{context}");
        assert_eq!(ports_in(&lines, "closed"), closed.into_iter().collect(), "{context}");
    }
}

engine_tests! {
    fn results_stream_while_max_rate_paces_the_probes(engine) {
        // 400 closed ports at 200 probes/s: the pacer alone keeps the scan
        // running for about 2 s, whatever the machine's speed. Results must
        // come out as they are found: after the 60th line, well over a
        // second of paced probes is still to come. (Held back, every line
        // came out together, just before the scan ended.)
        let ip = util::unique_loopback().to_string();
        let mut child = trident()
            .args(["scan", &ip, "-p", "20001-20400", "--max-rate", "200", "-e", engine, "-f", "jsonl"])
            // Room for every probe at once: nothing but the pacer holds them back.
            .args(["--concurrency", "400"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("trident runs");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut seen = 0;
        for line in lines.by_ref().take(60) {
            assert!(line.expect("read").contains(r#""state":"closed""#));
            seen += 1;
        }
        let sixtieth = Instant::now();
        for line in lines {
            line.expect("read");
            seen += 1;
        }
        let status = child.wait().expect("wait");
        let after = sixtieth.elapsed();
        assert!(status.success(), "{status}");
        assert_eq!(seen, 400);
        assert!(after.as_secs_f64() > 0.8, "the first 60 results came only {after:?} before the end of the scan");
    }
}

#[test]
fn ports_by_service_name_and_tcp_prefix() {
    let ip = util::unique_loopback().to_string();
    let o = run(&["scan", &ip, "-p", "ssh,T:http,T:1", "-f", "jsonl"]);
    let context = describe(&o);
    assert_eq!(o.status.code(), Some(0), "{context}");
    let got: BTreeSet<u16> = jsonl(&o).iter().map(|l| l.port).collect();
    // Whatever table this machine has (nmap's also names 8008 http), the
    // binary and this test read the same one.
    let mut want: BTreeSet<u16> = trident::scan::services::ports_named("ssh").into_iter().collect();
    want.extend(trident::scan::services::ports_named("http"));
    want.insert(1);
    assert!(want.contains(&22) && want.contains(&80), "{want:?}");
    assert_eq!(got, want, "{context}");
    for (spec, says) in [("U:53", "UDP"), ("80,nosuchservice", "nosuchservice")] {
        let o = run(&["scan", &ip, "-p", spec]);
        assert_eq!(o.status.code(), Some(2), "{spec}: {}", describe(&o));
        assert!(stderr(&o).contains(says), "{spec}: {}", stderr(&o));
    }
}

#[test]
fn excluded_addresses_are_not_scanned() {
    let base = util::unique_loopback();
    let [a, b, c, d] = base.octets();
    let ip = |n: u8| std::net::Ipv4Addr::new(a, b, c, d + n).to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("exclude.txt");
    std::fs::write(&file, format!("# not these\n{}\n", ip(3))).expect("write");
    let range = format!("{}-{}", ip(0), d + 4);
    let o = run(&[
        "scan",
        &range,
        "-p",
        "1",
        "-f",
        "jsonl",
        "--exclude",
        &format!("{},{}/32", ip(1), ip(2)),
        "--excludefile",
        file.to_str().expect("utf-8"),
    ]);
    let context = describe(&o);
    assert_eq!(o.status.code(), Some(0), "{context}");
    let got: BTreeSet<String> = jsonl(&o).into_iter().map(|l| l.ip).collect();
    assert_eq!(got, [ip(0), ip(4)].into_iter().collect(), "{context}");

    // Blocks are cut, not listed: a /8 minus a /16 and a range is planned at once.
    let o = run(&["scan", "10.0.0.0/8", "--exclude", "10.1.0.0/16,10.200.0.0-10.200.0.255", "--list-targets"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(util::stdout(&o).contains(&format!("addresses {}\n", (1 << 24) - 65536 - 256)), "{}", describe(&o));

    for (args, says) in [
        (vec!["--exclude", &range], "every target is excluded"),
        (vec!["--exclude", "10.0.0.0/33"], "10.0.0.0/33"),
        (vec!["--excludefile", "/nonexistent/exclude.txt"], "/nonexistent/exclude.txt"),
    ] {
        let mut all = vec!["scan", range.as_str(), "-p", "1"];
        all.extend(args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", describe(&o));
        assert!(stderr(&o).contains(says), "{all:?}: {}", stderr(&o));
    }
}

engine_tests! {
    fn scan_delay_spaces_the_probes(engine) {
        // Six probes at least 100 ms apart cannot take less than 500 ms,
        // however fast the machine (a slower one only adds to it).
        let ip = util::unique_loopback().to_string();
        let started = Instant::now();
        let o = run(&["scan", &ip, "-p", "20001-20006", "--scan-delay", "100ms", "-e", engine, "-f", "jsonl"]);
        let took = started.elapsed();
        let context = describe(&o);
        assert_eq!(o.status.code(), Some(0), "{context}");
        assert_eq!(ports_in(&jsonl(&o), "closed").len(), 6, "{context}");
        assert!(took.as_millis() >= 450, "six probes 100 ms apart took {took:?}\n{context}");
    }
}

engine_tests! {
    fn host_timeout_stops_probing_an_address_and_names_it(engine) {
        // 400 ports at 100 probes/s would take 4 s; the address gets 300 ms
        // from its first probe, so about 30 of its probes go out.
        let ip = util::unique_loopback().to_string();
        let o = run(&[
            "scan", &ip, "-p", "20001-20400", "--max-rate", "100", "--host-timeout", "300ms", "-e", engine, "-f", "jsonl",
        ]);
        let context = describe(&o);
        assert_eq!(o.status.code(), Some(0), "{context}");
        let lines = jsonl(&o);
        assert!(!lines.is_empty() && lines.len() < 200, "{} ports reported\n{context}", lines.len());
        assert!(stderr(&o).contains(&format!("1 address(es) ran out of --host-timeout 300ms, their other ports not probed: {ip}")), "{context}");
    }
}

#[test]
fn host_timeout_is_refused_above_its_clock_limit() {
    let o = run(&["scan", "10.0.0.0/7", "--allow-huge", "--host-timeout", "1s", "--list-targets"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(stderr(&o).contains("at most 2^24 addresses"), "{}", describe(&o));
}

#[test]
fn min_rate_raises_the_probes_in_flight_and_must_fit_under_max_rate() {
    let ip = util::unique_loopback().to_string();
    let o = run(&[
        "scan",
        &ip,
        "-p",
        "20001-20050",
        "--min-rate",
        "500",
        "--timeout",
        "2s",
        "--concurrency",
        "10",
        "-v",
        "-f",
        "jsonl",
    ]);
    let context = describe(&o);
    assert_eq!(o.status.code(), Some(0), "{context}");
    assert!(stderr(&o).contains("concurrency 10 raised to 1000 for --min-rate 500"), "{context}");
    assert_eq!(ports_in(&jsonl(&o), "closed").len(), 50, "{context}");
    for limit in [["--max-rate", "5"], ["--scan-delay", "1s"]] {
        let o = run(&["scan", &ip, "-p", "1", "--min-rate", "10", limit[0], limit[1]]);
        assert_eq!(o.status.code(), Some(2), "{limit:?}: {}", describe(&o));
        assert!(stderr(&o).contains("--min-rate 10 is above"), "{limit:?}: {}", stderr(&o));
    }
}

#[test]
fn fast_mode_scans_the_100_most_common_ports() {
    let ip = util::unique_loopback().to_string();
    let o = run(&["scan", &ip, "-F", "-f", "jsonl"]);
    let context = describe(&o);
    assert_eq!(o.status.code(), Some(0), "{context}");
    let got: BTreeSet<u16> = jsonl(&o).iter().map(|l| l.port).collect();
    let want: BTreeSet<u16> = trident::scan::PortList::top(100).as_slice().iter().copied().collect();
    assert_eq!(got, want, "{context}");
    let o = run(&["scan", &ip, "-F", "-p", "80"]);
    assert_eq!(o.status.code(), Some(2), "-F and -p conflict: {}", describe(&o));
}

#[test]
fn scan_types_other_than_connect_and_host_discovery_are_refused_clearly() {
    for (flag, says) in [
        ("-sS", "connect"),
        ("-sU", "TCP only"),
        ("-sV", "--banners"),
        ("-sL", "--list-targets"),
        ("-PS", "no host discovery"),
    ] {
        let o = run(&["scan", "127.0.0.1", flag, "-p", "1"]);
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", describe(&o));
        assert!(stderr(&o).contains(says), "{flag}: {}", stderr(&o));
    }
}

#[test]
fn help_tells_what_the_nmap_flags_do_and_lists_engines() {
    let o = run(&["scan", "--help"]);
    let help = util::stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(help.contains("-sT") && help.contains("-Pn") && help.contains("never pings"), "{help}");
    assert!(help.contains("Addresses are never looked up"), "-n: {help}");
    assert!(help.contains("[possible values: threads, processes, async]"), "-e: {help}");
    assert!(!help.contains("100ms-10s") && help.contains("--min-rtt-timeout 10ms"), "--timeout: {help}");
}
