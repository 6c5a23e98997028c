//! Advertised scan behaviour not covered elsewhere: IPv6 targets,
//! `--top-ports`, the `-T0..5` presets, exit status 1 and a
//! small `trident bench scan`, on every engine where it applies.

use std::collections::BTreeSet;
use std::net::{Ipv6Addr, SocketAddrV6, TcpListener};
use std::process::{Command, Stdio};
use std::thread;

use crate::engine_tests;
use crate::util::{self, Listeners, jsonl, ports_in, run, stderr};

/// `count` listeners on ephemeral ports of ::1, accepting and dropping.
fn ipv6_listeners(count: usize) -> BTreeSet<u16> {
    (0..count)
        .map(|_| {
            let l = TcpListener::bind(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0)).expect("bind [::1]:0");
            let port = l.local_addr().expect("addr").port();
            thread::spawn(move || l.incoming().for_each(drop));
            port
        })
        .collect()
}

/// Ports that nobody listens on (bound, then closed again).
fn closed_ipv6_ports(count: usize) -> Vec<u16> {
    let held: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0)).expect("bind")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

fn describe(o: &std::process::Output) -> String {
    format!("status {}\n--- stdout\n{}--- stderr\n{}", o.status, util::stdout(o), util::stderr(o))
}

engine_tests! {
    fn ipv6_targets_give_the_exact_open_set(engine) {
        let open = ipv6_listeners(4);
        let closed = closed_ipv6_ports(4);
        let spec: Vec<String> = open.iter().chain(&closed).map(ToString::to_string).collect();
        for target in ["::1", "[::1]"] {
            let o = run(&["scan", target, "-p", &spec.join(","), "-e", engine, "-f", "jsonl"]);
            let context = describe(&o);
            assert_eq!(o.status.code(), Some(0), "{context}");
            let lines = jsonl(&o);
            assert_eq!(lines.len(), 8, "{context}");
            assert!(lines.iter().all(|l| l.ip == "::1"), "{context}");
            // Other programs may listen on [::]; the ports closed here are
            // free again, so only what this machine lists can be open.
            let mut truth = open.clone();
            let others = trident::bench::fixture::loopback::other_listeners(Ipv6Addr::LOCALHOST);
            truth.extend(closed.iter().filter(|p| others.contains(p)));
            assert_eq!(ports_in(&lines, "open"), truth, "{context}");
        }
    }

    fn top_ports_scans_the_n_most_common(engine) {
        // Port numbers, not listeners, are the point: 127.x has none of them
        // open (except other programs' wildcard listeners).
        let ip = util::unique_loopback().to_string();
        let o = run(&["scan", &ip, "--top-ports", "25", "-e", engine, "-f", "jsonl"]);
        let context = describe(&o);
        assert_eq!(o.status.code(), Some(0), "{context}");
        let got: BTreeSet<u16> = jsonl(&o).iter().map(|l| l.port).collect();
        let want: BTreeSet<u16> = trident::scan::PortList::top(25).as_slice().iter().copied().collect();
        assert_eq!(got.len(), 25, "{context}");
        assert_eq!(got, want, "{context}");
        assert!(want.contains(&80) && want.contains(&443) && want.contains(&22), "the most common ports: {want:?}");
    }

    fn every_timing_preset_gives_the_exact_answer(engine) {
        let l = Listeners::start(3);
        let closed = [1u16, 2, 3];
        let spec = l.spec_with(&closed);
        for level in 0..=5 {
            let t = format!("-T{level}");
            let o = run(&["scan", &l.ip.to_string(), "-p", &spec, "-e", engine, &t, "-f", "jsonl"]);
            let context = format!("{t}\n{}", describe(&o));
            assert_eq!(o.status.code(), Some(0), "{context}");
            let lines = jsonl(&o);
            assert_eq!(ports_in(&lines, "open"), l.ports, "{context}");
            assert_eq!(ports_in(&lines, "closed"), closed.into_iter().collect(), "{context}");
        }
        for bad in ["-T6", "-Tx"] {
            let o = run(&["scan", &l.ip.to_string(), "-p", &spec, "-e", engine, bad]);
            assert_eq!(o.status.code(), Some(2), "{bad}: {}", describe(&o));
        }
    }

    fn exit_status_1_when_a_port_could_not_be_probed(engine) {
        // Exit 1 means: the scan ran and reported everything, but some port
        // has state `error` (this machine could not send its probe) or some
        // probe was lost by the engine. A link-local IPv6 address without
        // a scope is refused by connect() (EINVAL) without sending anything
        // (and in `unshare -n` there is nothing to send through anyway).
        let open = ipv6_listeners(1);
        let port = open.first().copied().unwrap_or_default().to_string();
        let o = Command::new("unshare")
            .args(["-n", env!("CARGO_BIN_EXE_trident"), "scan", "fe80::1", "-p", "80", "-e", engine, "-f", "jsonl"])
            .stdin(Stdio::null())
            .output()
            .expect("unshare");
        let context = describe(&o);
        assert_eq!(o.status.code(), Some(1), "{context}");
        let lines = jsonl(&o);
        assert_eq!(lines.len(), 1, "{context}");
        assert_eq!((lines[0].state.as_str(), lines[0].reason.as_str()), ("error", "local-error"), "{context}");

        // The same scan with nothing wrong exits 0; with both, the good
        // part is still reported in full.
        let o = run(&["scan", "::1", "-p", &port, "-e", engine, "-f", "jsonl"]);
        assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
        let o = Command::new("unshare")
            .args(["-n", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh", env!("CARGO_BIN_EXE_trident")])
            .args(["scan", "::1", "fe80::1", "-p", "80", "-e", engine])
            .stdin(Stdio::null())
            .output()
            .expect("unshare");
        let context = describe(&o);
        assert_eq!(o.status.code(), Some(1), "{context}");
        let text = util::stdout(&o);
        assert!(text.contains("Scan report for ::1") && text.contains("Scan report for fe80::1"), "{context}");
        assert!(text.contains("80/tcp      error"), "{context}");
        assert!(text.trim_end().ends_with(", 1 error"), "{context}");
    }
}

#[test]
fn help_defines_exit_status_1() {
    let o = run(&["scan", "--help"]);
    assert!(util::stdout(&o).contains("1 some probes could not be run"), "{}", util::stdout(&o));
}

#[test]
fn bench_scan_small_runs_every_engine_and_writes_its_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_string_lossy().to_string();
    let o = run(&[
        "bench", "scan", "--lab", "loopback", "-p", "1-3000", "--runs", "1", "--warmup", "0", "--vs", "none", "--out",
        &out,
    ]);
    let context = describe(&o);
    assert_eq!(o.status.code(), Some(0), "{context}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("summary.json"))
            .unwrap_or_else(|e| panic!("summary.json: {e}\n{context}")),
    )
    .unwrap_or_else(|e| panic!("summary.json: {e}"));
    let text = summary.to_string();
    for engine in util::ENGINES {
        assert!(text.contains(&format!("trident-{engine}")), "{engine} in the summary: {text}");
    }
    let runs = std::fs::read_to_string(dir.path().join("runs.csv")).unwrap_or_else(|e| panic!("runs.csv: {e}"));
    assert_eq!(runs.lines().count(), 1 + 3, "a header and one run per engine:\n{runs}");
    let _ = stderr(&o);
}

#[test]
fn bench_scan_warns_when_the_range_misses_the_open_ports() {
    // The loopback target listens on ports from 1024 up: -p 1-1000 holds
    // none of them.
    let o = run(&[
        "bench",
        "scan",
        "--lab",
        "loopback",
        "-p",
        "1-1000",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--vs",
        "none",
        "--engines",
        "async",
    ]);
    let context = describe(&o);
    assert_eq!(o.status.code(), Some(0), "{context}");
    let err = stderr(&o);
    assert!(
        err.contains("warning:") && err.contains("open ports of the target") && err.contains("-p 1-1000"),
        "{context}"
    );
}
