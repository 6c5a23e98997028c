//! `trident scan` against loopback listeners, through the real binary, on
//! every engine: exact open sets, output formats, target syntax, bad input.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;

use crate::engine_tests;
use crate::util::{Listeners, jsonl, ports_in, run, stderr, stdout, trident};

/// Ports next to the listeners that nothing listens on.
fn closed_ports(l: &Listeners) -> Vec<u16> {
    let mut closed = Vec::new();
    let mut p = 40000;
    while closed.len() < 5 {
        if !l.ports.contains(&p) {
            closed.push(p);
        }
        p += 7;
    }
    closed
}

engine_tests! {
    fn exact_open_and_closed_sets(engine) {
        let l = Listeners::start(5);
        let closed = closed_ports(&l);
        let o = run(&["scan", &l.ip.to_string(), "-p", &l.spec_with(&closed), "-e", engine, "-f", "jsonl", "-q"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let lines = jsonl(&o);
        assert_eq!(lines.len(), l.ports.len() + closed.len(), "one line per port");
        assert_eq!(ports_in(&lines, "open"), l.ports);
        assert_eq!(ports_in(&lines, "closed"), closed.iter().copied().collect::<BTreeSet<_>>());
        for line in &lines {
            let want = if line.state == "open" { "syn-ack" } else { "conn-refused" };
            assert_eq!((line.ip.as_str(), line.proto.as_str(), line.reason.as_str()), (&*l.ip.to_string(), "tcp", want));
            assert!(line.rtt_us.is_some() && line.tries == 1, "{line:?}");
        }
    }

    fn text_report_lists_open_ports_and_summary(engine) {
        let l = Listeners::start(3);
        let closed = closed_ports(&l);
        let o = run(&["scan", &l.ip.to_string(), "-p", &l.spec_with(&closed), "-e", engine, "-j", "4"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(format!("Scan report for {}", l.ip).as_str()));
        assert!(lines.next().is_some_and(|h| h.starts_with("PORT")), "{text}");
        for port in &l.ports {
            let row = lines.next().unwrap_or_default();
            assert!(row.starts_with(&format!("{port}/tcp")) && row.contains(" open ") && row.contains("syn-ack"), "{text}");
        }
        assert_eq!(lines.next(), Some("Not shown: 5 closed (conn-refused)"));
        let summary = text.lines().last().unwrap_or_default();
        let want = "Scanned 1 host x 8 ports in ";
        assert!(summary.starts_with(want), "{summary}");
        assert!(summary.ends_with(&format!("with {engine} (concurrency 4): 3 open, 5 closed, 0 filtered")), "{summary}");
        assert!(stderr(&o).is_empty(), "nothing on stderr without a terminal: {}", stderr(&o));
    }

    fn json_csv_and_open_filter(engine) {
        let l = Listeners::start(2);
        let closed = closed_ports(&l);
        let spec = l.spec_with(&closed);
        let ip = l.ip.to_string();

        let o = run(&["scan", &ip, "-p", &spec, "-e", engine, "-f", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
        assert_eq!(doc["summary"]["engine"], engine);
        assert_eq!(doc["summary"]["counts"], serde_json::json!({"open": 2, "closed": 5, "filtered": 0, "error": 0}));
        let listed = |doc: &serde_json::Value| -> Vec<u64> {
            doc["hosts"][0]["ports"].as_array().expect("ports").iter().map(|p| p["port"].as_u64().expect("port")).collect()
        };
        // Closed ports are summarised (nmap's "Not shown"), unless --show-closed.
        assert_eq!(listed(&doc), l.ports.iter().map(|&p| u64::from(p)).collect::<Vec<_>>(), "sorted open ports");
        assert_eq!(doc["hosts"][0]["closed"]["count"], 5);
        let o = run(&["scan", &ip, "-p", &spec, "-e", engine, "-f", "json", "--show-closed"]);
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
        let mut want: Vec<u64> = l.ports.iter().chain(&closed).map(|&p| u64::from(p)).collect();
        want.sort_unstable();
        assert_eq!(listed(&doc), want, "sorted, complete");

        let o = run(&["scan", &ip, "-p", &spec, "-e", engine, "-f", "csv", "--open"]);
        let text = stdout(&o);
        let mut rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.remove(0), "host,ip,port,proto,state,reason,rtt_us,tries");
        let got: BTreeSet<u16> = rows.iter().map(|r| {
            let f: Vec<&str> = r.split(',').collect();
            // No name given: the host column is the address.
            assert_eq!((f[0], f[1], f[3], f[4], f[5]), (ip.as_str(), ip.as_str(), "tcp", "open", "syn-ack"), "{r}");
            f[2].parse().expect("port")
        }).collect();
        assert_eq!(got, l.ports);

        let o = run(&["scan", &ip, "-p", &spec, "-e", engine, "-f", "jsonl", "--open"]);
        assert_eq!(ports_in(&jsonl(&o), "open"), l.ports);
        assert_eq!(jsonl(&o).len(), 2, "--open drops closed ports");
    }

    fn host_names_cidr_ranges_and_target_lists(engine) {
        let l = Listeners::start(1);
        let port = *l.ports.iter().next().expect("one port");
        let [a, b, c, d] = l.ip.octets();
        // The listener's address inside a /30 and a range; both cover it once.
        let cidr = format!("{a}.{b}.{c}.{}/30", d & !3);
        let range = format!("{a}.{b}.{c}.{}-{}", d & !3, (d & !3) + 3);
        for target in [cidr, range] {
            let o = run(&["scan", &target, "-p", &port.to_string(), "-e", engine, "-f", "jsonl", "-q"]);
            let lines = jsonl(&o);
            assert_eq!(lines.len(), 4, "{target}");
            let open: Vec<&str> = lines.iter().filter(|x| x.state == "open").map(|x| x.ip.as_str()).collect();
            assert_eq!(open, vec![l.ip.to_string().as_str()], "{target}");
        }

        // A host name, IPv4 only: the name is carried into the output.
        let p = port.to_string();
        let o = run(&["scan", "localhost", "-4", "-p", &p, "-e", engine, "-f", "jsonl"]);
        let lines = jsonl(&o);
        assert!(!lines.is_empty() && lines.iter().all(|x| x.host.as_deref() == Some("localhost") && x.ip.starts_with("127.")), "{lines:?}");

        // -iL from a file (comments, several per line) and from stdin.
        let dir = tempfile::tempdir().expect("tempdir");
        let list = dir.path().join("targets.txt");
        std::fs::write(&list, format!("# targets\n{}  # the listener\n\n", l.ip)).expect("write list");
        let o = run(&["scan", "-iL", list.to_str().expect("utf-8 path"), "-p", &p, "-e", engine, "-f", "jsonl"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(ports_in(&jsonl(&o), "open"), l.ports);

        let mut child = trident()
            .args(["scan", "-iL", "-", "-p", &p, "-e", engine, "-f", "jsonl"])
            .stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped())
            .spawn().expect("spawn");
        child.stdin.take().expect("stdin").write_all(format!("{}\n", l.ip).as_bytes()).expect("write stdin");
        let o = child.wait_with_output().expect("wait");
        assert_eq!(ports_in(&jsonl(&o), "open"), l.ports);
    }

    fn output_file_is_written_whole(engine) {
        let l = Listeners::start(2);
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("scan.json");
        let o = run(&["scan", &l.ip.to_string(), "-p", &l.spec_with(&[]), "-e", engine, "-f", "json", "-o", out.to_str().expect("utf-8")]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(o.stdout.is_empty(), "results go to the file only");
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).expect("file")).expect("json");
        assert_eq!(doc["summary"]["counts"]["open"], 2);
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("scan.json")], "no temporary file left");
    }

    fn bad_input_exits_2_with_one_line_and_no_scan(engine) {
        let cases: &[(&[&str], &str)] = &[
            (&["-p", "0"], "\"0\""),
            (&["-p", "70000"], "\"70000\""),
            (&["-p", "100-10"], "\"100-10\""),
            (&["-p", "abc"], "\"abc\""),
            (&["-j", "0"], "'0'"),
            (&["--timeout", "soon"], "soon"),
            (&["10.0.0.0/33"], "\"10.0.0.0/33\""),
            (&["-iL", "/nonexistent/targets"], "/nonexistent/targets"),
            (&["-f", "yaml"], "yaml"),
        ];
        for (args, needle) in cases {
            let mut full = vec!["scan", "-e", engine];
            if !args.iter().any(|a| a.contains('.') && !a.starts_with('/')) && !args.contains(&"-iL") {
                full.push("127.0.0.1");
            }
            full.extend_from_slice(args);
            // In a namespace without routes: were a bad target ever taken
            // for a good one, its probes could not leave the machine.
            let o = std::process::Command::new("unshare")
                .args(["-n", env!("CARGO_BIN_EXE_trident")])
                .args(&full)
                .stdin(std::process::Stdio::null())
                .output()
                .expect("unshare");
            assert_eq!(o.status.code(), Some(2), "{full:?}: {}", stderr(&o));
            assert!(o.stdout.is_empty(), "{full:?} started a scan");
            let err = stderr(&o);
            assert_eq!(err.lines().count(), 1, "{full:?}: {err}");
            assert!(err.contains(needle), "{full:?}: {err}");
        }
    }
}

#[test]
fn help_teaches_engines_defaults_and_exit_codes() {
    let o = run(&["scan", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for needle in ["threads 512", "processes 64", "async 4096", "--async-runtime", "Exit status", "conn-refused", "-iL"]
    {
        assert!(help.contains(needle), "missing {needle:?} in --help");
    }
}

engine_tests! {
    fn progress_is_drawn_on_a_terminal_only(engine) {
        // script(1) gives trident a pseudo-terminal; --max-rate makes the
        // scan last long enough (~0.5 s) for the bar to be drawn.
        let l = Listeners::start(1);
        let cmd = format!(
            "{} scan {} -p 1-200 --max-rate 400 -e {engine}",
            env!("CARGO_BIN_EXE_trident"),
            l.ip
        );
        let o = std::process::Command::new("script")
            .args(["-qfec", &cmd, "/dev/null"])
            .env("TERM", "xterm")
            .output()
            .expect("script(1) from util-linux");
        let tty = String::from_utf8_lossy(&o.stdout);
        assert!(tty.contains("/200 ports"), "no progress bar on the terminal: {tty}");
        assert!(tty.contains(" open"), "{tty}");
        assert!(tty.contains("Scanned 1 host x 200 ports"), "{tty}");

        // -q: no bar even on a terminal.
        let o = std::process::Command::new("script")
            .args(["-qfec", &format!("{cmd} -q"), "/dev/null"])
            .env("TERM", "xterm")
            .output()
            .expect("script");
        assert!(!String::from_utf8_lossy(&o.stdout).contains("/200 ports"));
    }
}
