//! Test harness for `trident chat serve`: start a server on any engine,
//! and raw IRC clients on real sockets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{LoggedServer, trident};

/// How long any expected line may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running `trident chat serve` and its stderr.
pub struct ChatServer {
    pub process: LoggedServer,
    pub addr: SocketAddr,
}

impl ChatServer {
    /// Starts a server on `engine` (processes: 2 workers, so that clients
    /// land on different workers) on a free port, with `extra` flags.
    pub fn start(engine: &str, extra: &[&str]) -> ChatServer {
        // Every test client comes from 127.0.0.1: more than the default
        // handful per address, unless the test sets its own.
        let many = ["--max-per-ip", "1000"];
        let per_ip: &[&str] = if extra.contains(&"--max-per-ip") { &[] } else { &many };
        ChatServer::start_with_defaults(engine, &[extra, per_ip].concat())
    }

    /// Starts a server with `extra` flags only: the defaults are the
    /// server's own.
    pub fn start_with_defaults(engine: &str, extra: &[&str]) -> ChatServer {
        let mut cmd = trident();
        cmd.args(["chat", "serve", "--listen", "127.0.0.1:0", "-e", engine]);
        if engine == "processes" && !extra.contains(&"--workers") {
            cmd.args(["--workers", "2"]);
        }
        let process = LoggedServer::spawn(cmd.args(extra));
        let line = process.wait_for(|l| l.starts_with("Serving IRC on "));
        // Serving IRC on 127.0.0.1:40059 (async engine)
        let addr = line.trim_start_matches("Serving IRC on ").split(' ').next().unwrap_or("");
        let addr = addr.parse().unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
        let server = ChatServer { process, addr };
        if engine == "processes" {
            // Workers start one after the other once the socket is bound.
            let want = extra
                .iter()
                .position(|a| *a == "--workers")
                .and_then(|i| extra.get(i + 1))
                .map_or(2, |n| n.parse::<usize>().expect("--workers N"));
            let deadline = Instant::now() + TIMEOUT;
            while children(server.pid()).len() < want {
                assert!(Instant::now() < deadline, "the {want} workers did not start:\n{}", server.log_text());
                thread::sleep(Duration::from_millis(10));
            }
        }
        server
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// A registered client.
    pub fn client(&self, nick: &str) -> Irc {
        Irc::register(self.addr, nick)
    }

    /// SIGTERM, then wait: the exit status and how long it took.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        self.process.terminate()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }
}

/// Processes whose parent is `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// A raw IRC client: lines in, lines out, nothing hidden.
pub struct Irc {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
    pub nick: String,
}

impl Irc {
    /// Connects without registering.
    pub fn connect(addr: SocketAddr) -> Irc {
        Irc::from_stream(TcpStream::connect(addr).expect("connect to the chat server"))
    }

    /// A client on a connected stream, not registered.
    pub fn from_stream(stream: TcpStream) -> Irc {
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Irc { stream, reader, nick: String::new() }
    }

    /// Connects and registers as `nick`; returns once the welcome is over
    /// (376 or 422).
    pub fn register(addr: SocketAddr, nick: &str) -> Irc {
        let mut irc = Irc::connect(addr);
        irc.nick = nick.into();
        irc.send(&format!("NICK {nick}"));
        irc.send(&format!("USER {nick} 0 * :{nick} the tester"));
        irc.expect(" 001 ");
        irc.expect_any(&[" 376 ", " 422 "]);
        irc
    }

    /// Sends one line (CRLF added).
    pub fn send(&mut self, line: &str) {
        self.stream.write_all(format!("{line}\r\n").as_bytes()).expect("send a line");
    }

    /// The next line, without CRLF; None at end of stream.
    pub fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => Some(String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => panic!("{}: no line within {TIMEOUT:?}: {e}", self.nick),
        }
    }

    /// Reads lines until one contains `pattern`; returns it. Answers PINGs.
    pub fn expect(&mut self, pattern: &str) -> String {
        self.expect_any(&[pattern])
    }

    /// Reads lines until one contains any of `patterns`.
    pub fn expect_any(&mut self, patterns: &[&str]) -> String {
        let mut seen = Vec::new();
        loop {
            let Some(line) = self.line() else {
                panic!("{}: connection closed before {patterns:?}; saw {seen:#?}", self.nick)
            };
            if patterns.iter().any(|p| line.contains(p)) {
                return line;
            }
            if let Some(token) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {token}"));
            }
            seen.push(line);
        }
    }

    /// Reads until end of stream; the lines seen.
    pub fn until_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.line() {
            lines.push(line);
        }
        lines
    }

    /// Sends a PING and reads up to its PONG: everything sent before has
    /// been handled. The lines read on the way.
    pub fn sync(&mut self, token: &str) -> Vec<String> {
        self.send(&format!("PING :{token}"));
        let mut lines = Vec::new();
        loop {
            let line = self.line().unwrap_or_else(|| panic!("{}: closed before PONG {token}", self.nick));
            if line.contains(" PONG ") && line.ends_with(token) {
                return lines;
            }
            lines.push(line);
        }
    }

    /// Reads raw bytes that are already there, for up to `wait`.
    pub fn drain(&mut self, wait: Duration) -> Vec<u8> {
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        self.stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        out
    }
}

/// alice and bob in #room, both having seen both joins.
pub fn pair(server: &ChatServer) -> (Irc, Irc) {
    let mut alice = server.client("alice");
    let mut bob = server.client("bob");
    alice.send("JOIN #room");
    alice.expect(" 366 alice #room ");
    bob.send("JOIN #room");
    bob.expect(" 366 bob #room ");
    alice.expect(":bob!bob@127.0.0.1 JOIN #room");
    (alice, bob)
}

/// Proves a channel still works: `from` says `text`, `to` hears it.
pub fn still_chatting(from: &mut Irc, to: &mut Irc, text: &str) {
    from.send(&format!("PRIVMSG #room :{text}"));
    let line = to.expect(text);
    assert_eq!(line, format!(":{0}!{0}@127.0.0.1 PRIVMSG #room :{text}", from.nick));
}
