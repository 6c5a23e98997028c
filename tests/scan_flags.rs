//! nmap's scan flags as nmap users type them (`-sT -Pn -n -F`, `-p` with
//! service names and `T:`, `--exclude`, rate and delay flags), through the
//! real binary, on every engine where the engine matters.

use std::collections::BTreeSet;

use crate::engine_tests;
use crate::util::{self, Listeners, jsonl, ports_in, run, stderr};

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
    assert!(help.contains("never looks up the names"), "-n: {help}");
    assert!(help.contains("[possible values: threads, processes, async]"), "-e: {help}");
    assert!(!help.contains("100ms-10s") && help.contains("--min-rtt-timeout 10ms"), "--timeout: {help}");
}
