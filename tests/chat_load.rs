//! `trident chat load` against `trident chat serve` on every engine: what
//! the report tells when the server, not the network, limited the load.

use crate::chat_harness::ChatServer;
use crate::engine_tests;
use crate::util::{run, stderr, stdout};

engine_tests! {
    fn a_load_over_the_flood_limit_is_named_with_the_remedy(engine) {
        // The server's own flood limit (10 lines/s after 20, 100 held):
        // 4 senders at 250 msg/s each overflow it within half a second.
        let server = ChatServer::start(engine, &[]);
        let addr = server.addr.to_string();
        let load = ["chat", "load", &addr, "--clients", "4", "--rate", "1000", "--duration", "1s", "-q"];
        let o = run(&load);
        let text = stdout(&o);
        assert_eq!(o.status.code(), Some(1), "{text}{}", stderr(&o));
        assert!(text.contains("  throttled    4 clients by the server: ERROR (Excess Flood)\n"), "{text}");
        assert!(text.contains("  hint         the server throttled the senders: lower --rate (250.0 msg/s per sender now;"), "{text}");
        assert!(text.contains("`trident chat serve --flood-rate 0`"), "{text}");
        let o = run(&[&load[..], &["-f", "json"]].concat());
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json report");
        assert_eq!(r["throttled"]["ERROR (Excess Flood)"].as_u64(), Some(4), "{r:#}");
        assert!(r["hint"].as_str().is_some_and(|h| h.contains("--flood-rate 0")), "{r:#}");

        // The remedy: without flood control the same load gets through,
        // and nothing is said of throttling.
        let server = ChatServer::start(engine, &["--flood-rate", "0"]);
        let addr = server.addr.to_string();
        let o = run(&["chat", "load", &addr, "--clients", "4", "--rate", "1000", "--duration", "1s", "-q", "-f", "json"]);
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json report");
        assert_eq!(o.status.code(), Some(0), "{r:#}");
        assert_eq!((r["throttled"].as_object().map(|m| m.len()), r["hint"].is_null()), (Some(0), true), "{r:#}");
    }
}
