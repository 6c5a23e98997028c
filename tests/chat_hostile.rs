//! `trident chat serve` against hostile clients, on every engine: input
//! that once panicked the hub, and the bookkeeping that must survive it.

use std::io::Write;
use std::net::TcpStream;

use crate::chat_harness::{ChatServer, Irc};
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
                let lines = hit_and_read(&server, bytes);
                assert_eq!(
                    lines.last().map(String::as_str).unwrap_or(""),
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
        let mut alice = server.client("alice");
        let mut bob = server.client("bob");
        alice.send("JOIN #room");
        alice.expect(" 366 alice #room ");
        bob.send("JOIN #room");
        bob.expect(" 366 bob #room ");
        alice.send("PRIVMSG #room :still here");
        assert_eq!(bob.expect("still here"), ":alice!alice@127.0.0.1 PRIVMSG #room :still here");
        alice.sync("alive");
        assert!(!server.log_text().contains("panicked"), "{}", server.log_text());
    }
}

/// The raw write with nothing read back (a connection that vanishes).
#[allow(dead_code)]
fn hit(server: &ChatServer, bytes: &[u8]) {
    let mut s = TcpStream::connect(server.addr).expect("connect");
    let _ = s.write_all(bytes);
}
