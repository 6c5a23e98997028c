//! Scan order, shards, rate limits and descriptor limits, on every engine,
//! against loopback listeners.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Instant;

use crate::engine_tests;
use crate::util::{Listeners, jsonl, ports_in, run, stderr};

engine_tests! {
    fn shards_are_disjoint_and_add_up_to_the_whole_scan(engine) {
        let l = Listeners::start(6);
        let [lo, hi] = [*l.ports.first().expect("a port") - 700, *l.ports.last().expect("a port") + 700];
        let spec = format!("{lo}-{hi}");
        let ip = l.ip.to_string();
        let mut seen = BTreeSet::new();
        let mut open = BTreeSet::new();
        for k in 0..3 {
            let shard = format!("{k}/3");
            let o = run(&["scan", &ip, "-p", &spec, "-e", engine, "--seed", "77", "--shard", &shard, "-f", "jsonl"]);
            assert!(o.status.success(), "{}", stderr(&o));
            for line in jsonl(&o) {
                assert!(seen.insert(line.port), "port {} in two shards", line.port);
            }
            open.extend(ports_in(&jsonl(&o), "open"));
        }
        assert_eq!(seen, (lo..=hi).collect::<BTreeSet<u16>>(), "the shards cover the range exactly");
        assert_eq!(open, l.ports);

        // auto/N reads the index from JOB_COMPLETION_INDEX, as an Indexed Job sets it.
        let o = crate::util::trident()
            .args(["scan", &ip, "-p", &spec, "-e", engine, "--seed", "77", "--shard", "auto/3", "-f", "jsonl"])
            .env("JOB_COMPLETION_INDEX", "1")
            .output()
            .expect("run");
        let manual = run(&["scan", &ip, "-p", &spec, "-e", engine, "--seed", "77", "--shard", "1/3", "-f", "jsonl"]);
        let ports = |o: &std::process::Output| jsonl(o).iter().map(|x| x.port).collect::<BTreeSet<u16>>();
        assert_eq!(ports(&o), ports(&manual));
    }

    fn a_low_descriptor_limit_still_gives_the_exact_answer(engine) {
        // ulimit -n 1024 (soft and hard) and -c 10000: trident sizes its
        // concurrency to the limit instead of running out of descriptors.
        let l = Listeners::start(10);
        let script = format!(
            "ulimit -n 1024 && exec {} scan {} -p- -e {engine} -c 10000 -f jsonl --open -q",
            env!("CARGO_BIN_EXE_trident"),
            l.ip
        );
        let o = Command::new("sh").args(["-c", &script]).output().expect("sh");
        assert!(o.status.success(), "{}", stderr(&o));
        // Other programs' wildcard listeners answer on every address too.
        let mut truth = l.ports.clone();
        truth.extend(trident::bench::fixture::loopback::other_listeners(l.ip));
        assert_eq!(ports_in(&jsonl(&o), "open"), truth, "full range, exact open set, no self-connect");
    }

    fn max_rate_spaces_the_probes(engine) {
        // 60 probes at 200/s cannot take less than ~0.3 s. This is a lower
        // bound that only a missing rate limit can break, not a speed goal.
        let l = Listeners::start(1);
        let port = *l.ports.first().expect("a port");
        let spec = format!("{}-{}", port - 30, port + 29);
        let started = Instant::now();
        let o = run(&["scan", &l.ip.to_string(), "-p", &spec, "-e", engine, "--max-rate", "200", "-f", "jsonl"]);
        let took = started.elapsed();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(jsonl(&o).len(), 60);
        assert!(took.as_secs_f64() >= 0.28, "60 probes at 200/s took {took:?}");
    }
}

#[test]
fn bad_shard_and_rate_are_bad_input() {
    for (args, needle) in [
        (&["--shard", "3/3"][..], "3/3"),
        (&["--shard", "auto/3"][..], "JOB_COMPLETION_INDEX"),
        (&["--max-rate", "0"][..], "0"),
        (&["--max-rate", "1e-30"][..], "at least one a day"),
        (&["--min-rate", "1e-30"][..], "at least one a day"),
        (&["--min-rtt-timeout", "2s", "--max-rtt-timeout", "1s"][..], "--min-rtt-timeout"),
    ] {
        let mut full = vec!["scan", "127.0.0.1", "-p", "80"];
        full.extend_from_slice(args);
        let o = crate::util::trident().args(&full).env_remove("JOB_COMPLETION_INDEX").output().expect("run");
        assert_eq!(o.status.code(), Some(2), "{full:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{full:?}: {err}");
    }
}
