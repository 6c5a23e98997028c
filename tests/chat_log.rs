//! `trident chat serve`'s log on stderr, on every engine: a summary line
//! when something changed (`--stats-every`), and with `-v` a line per
//! connect, registration and departure.

use crate::chat_harness::{ChatServer, pair, still_chatting};
use crate::engine_tests;

engine_tests! {
    fn a_summary_line_tells_clients_channels_and_traffic_when_something_changed(engine) {
        let server = ChatServer::start(engine, &["--stats-every", "100ms"]);
        let (mut alice, mut bob) = pair(&server);
        still_chatting(&mut alice, &mut bob, "hello");
        let busy = server.process.wait_for(|l| l.starts_with("chat: 2 clients (2 registered), 1 channel; "));
        assert!(busy.contains(" lines/s in, ") && busy.contains(" lines/s out; "), "{busy}");
        drop((alice, bob));
        server.process.wait_for(|l| l.starts_with("chat: 0 clients (0 registered), 0 channels; "));
        let log = server.log_text();
        // An empty server that nobody has used has nothing to tell.
        let first = log.lines().find(|l| l.starts_with("chat: ")).unwrap_or_default();
        assert!(!first.starts_with("chat: 0 clients"), "{log}");
        assert!(log.lines().all(|l| !l.starts_with("connect ")), "no per-connection lines without -v: {log}");
    }
}
