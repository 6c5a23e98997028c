//! Host names that do not resolve, on every engine. These run trident
//! inside a network namespace of their own (`ip netns exec`), which has no
//! route to any name server: the DNS query fails on this machine and no
//! packet leaves it.

use std::process::{Command, Output};

use crate::engine_tests;
use crate::netns::Netns;
use crate::util::{jsonl, ports_in, stderr};

fn trident_in(ns: &Netns, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns.name(), env!("CARGO_BIN_EXE_trident")])
        .args(args)
        .output()
        .expect("run trident in the namespace")
}

engine_tests! {
    fn a_lone_unresolvable_target_is_bad_input(engine) {
        let ns = Netns::new();
        let o = trident_in(&ns, &["scan", "no-such-host.invalid", "-e", engine, "-p", "80"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(o.stdout.is_empty(), "no scan started");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("cannot resolve host \"no-such-host.invalid\""), "{err}");
    }

    fn an_unresolvable_target_among_others_is_skipped(engine) {
        let ns = Netns::new();
        ns.listen(&[8081, 8082]);
        let dir = tempfile::tempdir().expect("tempdir");
        let list = dir.path().join("targets.txt");
        std::fs::write(&list, "127.0.0.1 no-such-host.invalid\n").expect("write list");
        let o = trident_in(&ns, &["scan", "-iL", list.to_str().expect("utf-8"), "-p", "8080-8083", "-e", engine, "-f", "jsonl"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let lines = jsonl(&o);
        assert_eq!(lines.len(), 4, "the resolvable target is scanned whole");
        assert_eq!(ports_in(&lines, "open"), [8081, 8082].into());
        let err = stderr(&o);
        assert!(err.contains("skipping target") && err.contains("no-such-host.invalid"), "{err}");
    }
}
