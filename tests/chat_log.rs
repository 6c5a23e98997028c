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

engine_tests! {
    fn with_v_every_connect_registration_and_departure_is_a_line_and_q_silences_the_summary(engine) {
        let server = ChatServer::start(engine, &["-v", "--stats-every", "0"]);
        let (mut alice, mut bob) = pair(&server);
        alice.send("QUIT :see you");
        alice.expect("ERROR :Closing Link: 127.0.0.1 (Quit: see you)");
        bob.expect(":alice!alice@127.0.0.1 QUIT :Quit: see you");
        drop(bob);
        server.process.wait_for(|l| l.starts_with("quit     #") && l.contains(" bob: "));
        let log = server.log_text();
        let lines: Vec<&str> = log.lines().filter(|l| !l.starts_with("Serving IRC") && !l.starts_with("trident: ")).collect();
        let id = |nick: &str| {
            let line = lines.iter().find(|l| l.ends_with(&format!(" as {nick}!{nick}@127.0.0.1"))).unwrap_or_else(|| panic!("{log}"));
            line.trim_start_matches("register #").split(' ').next().expect("an id").to_string()
        };
        let (a, b) = (id("alice"), id("bob"));
        for want in [
            format!("connect  #{a} from 127.0.0.1"),
            format!("register #{a} as alice!alice@127.0.0.1"),
            format!("connect  #{b} from 127.0.0.1"),
            format!("register #{b} as bob!bob@127.0.0.1"),
            format!("quit     #{a} alice: Quit: see you"),
        ] {
            assert!(lines.contains(&want.as_str()), "{want:?} in:\n{log}");
        }
        assert!(lines.iter().any(|l| l.starts_with(&format!("quit     #{b} bob: "))), "{log}");
        assert!(lines.iter().all(|l| !l.starts_with("chat: ")), "--stats-every 0: no summary: {log}");

        // -q: no summary whatever the period.
        let server = ChatServer::start(engine, &["-q", "--stats-every", "10ms"]);
        let (mut alice, mut bob) = pair(&server);
        still_chatting(&mut alice, &mut bob, "quiet");
        drop((alice, bob));
        let mut server = server;
        server.process.terminate();
        let log = server.process.whole_log();
        assert!(log.lines().all(|l| !l.starts_with("chat: ") && !l.starts_with("connect ")), "{log}");
    }
}
