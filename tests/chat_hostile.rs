//! `trident chat serve` against hostile clients, on every engine: input
//! that once panicked the hub, and the bookkeeping that must survive it.

use std::io::Write;

use crate::chat_harness::{ChatServer, Irc, pair, still_chatting};
use crate::engine_tests;

/// The writes that once made the hub answer a client it had already
/// forgotten: QUIT, then an invalid line, in one write.
const AFTER_QUIT: [&[u8]; 3] = [b"QUIT\r\n\xff\r\n", b"QUIT\r\nNICK a\0b\r\n", b"QUIT :bye\r\n"];

/// One raw connection sends `bytes` in one write, then reads to the end.
fn hit_and_read(server: &ChatServer, bytes: &[u8]) -> Vec<String> {
    let mut raw = Irc::connect(server.addr);
    raw.nick = "raw".into();
    raw.stream.write_all(bytes).expect("one write");
    raw.until_closed()
}

engine_tests! {
    fn an_invalid_line_after_quit_neither_panics_nor_leaks_a_slot(engine) {
        // Few slots, so that a leaked one shows within a few rounds.
        let server = ChatServer::start(engine, &["--max-clients", "4", "--max-per-ip", "3"]);
        let overlong = [b"QUIT\r\n".as_slice(), &vec![b'x'; 600], b"\r\n"].concat();
        let mut writes: Vec<&[u8]> = AFTER_QUIT.to_vec();
        writes.push(&overlong);
        // More rounds than there are slots: each one must give its slot back.
        for round in 0..4 {
            for bytes in &writes {
                // The ERROR line only: nothing after the QUIT is handled.
                let lines = hit_and_read(&server, bytes);
                assert_eq!(
                    lines.join("\n"),
                    if bytes.starts_with(b"QUIT :bye") {
                        "ERROR :Closing Link: 127.0.0.1 (Quit: bye)"
                    } else {
                        "ERROR :Closing Link: 127.0.0.1 (Client Quit)"
                    },
                    "round {round}, {bytes:?}: {lines:?}"
                );
            }
        }
        // Someone else can still register and talk, and the PING of a
        // client already there is answered (the hub's reader is alive).
        let (mut alice, mut bob) = pair(&server);
        still_chatting(&mut alice, &mut bob, "still here");
        alice.sync("alive");
        assert!(!server.log_text().contains("panicked"), "{}", server.log_text());
    }
}

engine_tests! {
    fn nul_and_cr_lines_are_dropped_with_a_notice_and_never_relayed(engine) {
        let server = ChatServer::start(engine, &[]);
        let (mut alice, mut bob) = pair(&server);
        let notice = ":irc.trident.local NOTICE alice :Line dropped: it contains a NUL or CR";
        // A bare CR inside a line would split it in two at some receivers
        // (a forged second line); a NUL truncates it at others.
        for bad in [&b"PRIVMSG #room :one\rPRIVMSG #room :forged\r\n"[..], b"PRIVMSG #room :nul\0here\r\n"] {
            alice.stream.write_all(bad).expect("send");
            assert_eq!(alice.expect(" NOTICE "), notice);
        }
        // CRLF and bare LF both end lines; a line ending in CR CR has a CR inside.
        alice.stream.write_all(b"PRIVMSG #room :crlf\r\nPRIVMSG #room :lf\nPRIVMSG #room :double\r\r\n").expect("send");
        assert_eq!(alice.expect(" NOTICE "), notice);
        assert_eq!(bob.line().as_deref(), Some(":alice!alice@127.0.0.1 PRIVMSG #room :crlf"));
        assert_eq!(bob.line().as_deref(), Some(":alice!alice@127.0.0.1 PRIVMSG #room :lf"));
        let seen = bob.sync("t");
        assert!(seen.is_empty(), "bob saw {seen:?}");
    }

    fn by_default_one_address_gets_only_a_handful_of_connections(engine) {
        let server = ChatServer::start_with_defaults(engine, &[]);
        let held: Vec<Irc> = (0..8).map(|i| server.client(&format!("h{i}"))).collect();
        let mut ninth = Irc::connect(server.addr);
        ninth.nick = "ninth".into();
        assert_eq!(ninth.until_closed(), ["ERROR :Closing Link: 127.0.0.1 (Too many connections from your address)"]);
        drop(held);
    }

    fn slow_readers_together_are_cut_at_the_total_send_queue_budget(engine) {
        // Each client may queue 64 MiB, all of them together 512 KiB: the
        // deaf clients are cut long before their own limit.
        let flags = ["--sendq", "67108864", "--sendq-total", "524288", "--flood-rate", "0"];
        let server = ChatServer::start(engine, &flags);
        let mut alice = server.client("alice");
        alice.send("JOIN #room");
        alice.expect(" 366 ");
        let mut deaf: Vec<Irc> = (0..2).map(|i| deaf_client(&server, &format!("deaf{i}"))).collect();
        for c in &mut deaf {
            c.send("JOIN #room");
            c.expect(" 366 ");
        }
        alice.sync("joined");
        // The deaf ones read nothing from now on. 16 MiB in all, well below
        // one client's 64 MiB: without the total budget nobody is cut.
        let text = "z".repeat(400);
        let mut quits = Vec::new();
        for batch in 0..400 {
            let lines: String = (0..100).map(|n| format!("PRIVMSG #room :{batch}.{n} {text}\r\n")).collect();
            alice.stream.write_all(lines.as_bytes()).expect("send");
            quits.extend(alice.sync(&format!("a{batch}")).into_iter().filter(|l| l.contains(" QUIT ")));
            if quits.len() >= 2 {
                break;
            }
        }
        assert!(!quits.is_empty(), "no deaf client was cut");
        for quit in &quits {
            assert!(quit.starts_with(":deaf") && quit.ends_with(" QUIT :SendQ exceeded"), "{quit}");
        }
        let mut bob = server.client("bob");
        bob.send("JOIN #room");
        bob.expect(" 366 ");
        alice.send("PRIVMSG #room :after the cut");
        assert_eq!(bob.expect("after the cut"), ":alice!alice@127.0.0.1 PRIVMSG #room :after the cut");
    }
}

/// A registered client whose socket has a small receive buffer (set before
/// connecting, so the window stays small): the server's queue for it fills
/// soon once it stops reading.
fn deaf_client(server: &ChatServer, nick: &str) -> Irc {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    socket.connect(&server.addr.into()).expect("connect");
    let mut irc = Irc::from_stream(socket.into());
    irc.nick = nick.into();
    irc.send(&format!("NICK {nick}"));
    irc.send(&format!("USER {nick} 0 * :{nick}"));
    irc.expect_any(&[" 376 ", " 422 "]);
    irc
}
