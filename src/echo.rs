//! The chapter's echo server and client (section 8.4, "Asynchronous Chat
//! Client/Server with AsyncIO"), on every engine.
//!
//! The server reads up to 100 bytes at a time and answers each chunk with
//! `Server received: <chunk>`; it logs on stderr what the chapter's server
//! prints (`Accepted connection from ('127.0.0.1', 5000)`, `Received
//! 'Hello' from ...`, `Client ... disconnected abruptly`, `Closing
//! connection from ...`). Differences, deliberate: the answer carries the
//! chunk's bytes as they came (Python decodes and re-encodes, and fails on a
//! chunk that is not UTF-8, e.g. one that splits a character; the log line
//! shows such bytes as U+FFFD), and the logs go to stderr.
//!
//! The client ([`send`]) does what `tcp_echo_client` does and prints the
//! same lines, with Python's `repr` quoting ([`py_repr`]).

/// One log line on stderr in a single `write`: worker processes share
/// stderr, and `eprintln!` may split a line into several writes that
/// interleave with another worker's.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!("{}\n", format_args!($($arg)*));
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use crate::server::{Closed, ConnLimits, Flow, Protocol, sockname};

/// Where the chapter's server listens.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8888";
/// The chapter's `reader.read(100)`.
pub const CHUNK: usize = 100;
/// What precedes every chunk sent back.
pub const PREFIX: &[u8] = b"Server received: ";
/// `--max-connections` by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The echo server's settings.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EchoConfig {
    /// Do not log every chunk received (connections are still logged).
    pub quiet: bool,
    /// Connections at once; one more is closed at once.
    pub max_connections: usize,
    /// A connection silent (or not reading) this long is closed.
    pub idle_timeout: Option<std::time::Duration>,
}

impl Default for EchoConfig {
    fn default() -> Self {
        EchoConfig { quiet: false, max_connections: DEFAULT_MAX_CONNECTIONS, idle_timeout: None }
    }
}

/// One echo connection.
#[derive(Debug)]
pub struct Echo {
    config: Arc<EchoConfig>,
    /// The peer as Python prints it, for the logs.
    peer: String,
}

impl Protocol for Echo {
    const NAME: &'static str = "echo";
    type Config = EchoConfig;

    fn read_size(_: &EchoConfig) -> usize {
        CHUNK
    }

    fn limits(config: &EchoConfig) -> ConnLimits {
        ConnLimits { max_connections: Some(config.max_connections), idle_timeout: config.idle_timeout }
    }

    fn refused(config: &EchoConfig, peer: SocketAddr) {
        log!("Refusing connection from {}: {} connections already", sockname(peer), config.max_connections);
    }

    fn connect(config: &Arc<EchoConfig>, peer: SocketAddr, _out: &mut Vec<u8>) -> Self {
        let peer = sockname(peer);
        log!("Accepted connection from {peer}");
        Echo { config: Arc::clone(config), peer }
    }

    fn receive(&mut self, data: &[u8], out: &mut Vec<u8>) -> Flow {
        if !self.config.quiet {
            log!("Received {} from {}", py_repr(&String::from_utf8_lossy(data)), self.peer);
        }
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(data);
        Flow::Continue
    }

    fn closed(self, how: Closed) {
        match how {
            Closed::Reset => log!("Client {} disconnected abruptly", self.peer),
            Closed::Error(e) => log!("Error handling client {}: {e}", self.peer),
            Closed::Idle => log!("Client {} idle for too long", self.peer),
            Closed::Eof | Closed::ByProtocol | Closed::Shutdown => {}
        }
        log!("Closing connection from {}", self.peer);
    }
}

/// The chapter's `tcp_echo_client`: connect, send `message`, read once (up
/// to 100 bytes), print what happened as the Python client does.
pub fn send(addrs: &[SocketAddr], message: &str) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addrs).map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", addrs[0]))?;
    println!("Send: {}", py_repr(message));
    stream.write_all(message.as_bytes())?;
    let mut buf = [0u8; CHUNK];
    let n = stream.read(&mut buf)?;
    println!("Received: {}", py_repr(&String::from_utf8_lossy(&buf[..n])));
    println!("Close the connection");
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// `repr(s)` as Python 3 writes it for a `str`: single quotes unless the
/// text holds a `'` and no `"`; `\\`, `\n`, `\r`, `\t` and the quote
/// escaped; characters Python deems unprintable as `\xNN`, `\uNNNN` or
/// `\UNNNNNNNN` (for characters outside Latin-1, the set is approximated:
/// controls, separators other than the space, format characters, private use
/// and surrogate-free noncharacters).
pub fn py_repr(s: &str) -> String {
    use std::fmt::Write as _;
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut r = String::with_capacity(s.len() + 2);
    r.push(quote);
    for c in s.chars() {
        match c {
            '\\' => r.push_str("\\\\"),
            '\n' => r.push_str("\\n"),
            '\r' => r.push_str("\\r"),
            '\t' => r.push_str("\\t"),
            c if c == quote => {
                r.push('\\');
                r.push(c);
            }
            c if py_printable(c) => r.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(r, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(r, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(r, "\\U{:08x}", c as u32);
            }
        }
    }
    r.push(quote);
    r
}

/// Python's `str.isprintable` for one character (exact for Latin-1).
fn py_printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c as u32,
            0xA0 | 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x1680 | 0x180E
            | 0x2000..=0x200F | 0x2028..=0x202F | 0x205F..=0x206F | 0x3000 | 0xD800..=0xF8FF
            | 0xFEFF | 0xFFF9..=0xFFFB | 0xFFFE | 0xFFFF | 0xE0001 | 0xE0020..=0xE007F
            | 0xF0000..=0x10FFFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        // Expected values printed by CPython 3.11's repr().
        let cases = [
            ("Hello Server!", "'Hello Server!'"),
            ("", "''"),
            ("it's", "\"it's\""),
            ("say \"hi\"", "'say \"hi\"'"),
            ("both ' and \"", "'both \\' and \"'"),
            ("a\\b\n\r\t", "'a\\\\b\\n\\r\\t'"),
            ("\x00\x1b\x7f\u{85}\u{a0}\u{ad}é", "'\\x00\\x1b\\x7f\\x85\\xa0\\xadé'"),
            ("日本 \u{200b}\u{2028}\u{feff}", "'日本 \\u200b\\u2028\\ufeff'"),
            ("🦀\u{f0000}", "'🦀\\U000f0000'"),
        ];
        for (s, want) in cases {
            assert_eq!(py_repr(s), want, "{s:?}");
        }
    }

    #[test]
    fn echo_answers_every_chunk() {
        let config = Arc::new(EchoConfig { quiet: true, ..EchoConfig::default() });
        let mut out = Vec::new();
        let mut echo = Echo::connect(&config, "127.0.0.1:5000".parse().unwrap(), &mut out);
        assert!(out.is_empty());
        assert_eq!(echo.receive(b"Hello Server!", &mut out), Flow::Continue);
        assert_eq!(out, b"Server received: Hello Server!");
        assert_eq!(Echo::read_size(&config), 100);
    }
}
