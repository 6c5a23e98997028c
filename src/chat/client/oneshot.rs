//! `chat connect --send`: one exchange, confirmed by a PING whose PONG
//! proves the server handled every line before it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{ConnectConfig, Registrar, Step, connect, describe_numeric, max_text, numeric, pong, split_text, unique};
use crate::chat::line::{LineEvent, LineReader};
use crate::chat::message::Message;
use crate::engine::Interrupt;
use crate::error::Exit;
use crate::output::{Escapes, escaped};

/// Why a one-shot exchange stopped early.
#[derive(Debug)]
enum Stop {
    Interrupted,
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Failed(e.into())
    }
}

/// A blocking connection read line by line, with a deadline.
#[derive(Debug)]
struct LineConn {
    stream: TcpStream,
    reader: LineReader,
    peer: SocketAddr,
}

impl LineConn {
    fn send(&mut self, line: &str) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.stream.write_all(&bytes)
    }

    /// The next line, waiting until `deadline`; `what` names what is awaited
    /// (for the timeout error).
    fn next_line(&mut self, deadline: Instant, interrupt: &Interrupt, what: &str) -> Result<String, Stop> {
        let mut buf = [0u8; 4096];
        loop {
            while let Some(event) = self.reader.next_event() {
                if let LineEvent::Line(line) = event {
                    return Ok(line);
                }
            }
            if interrupt.is_set() {
                return Err(Stop::Interrupted);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(anyhow::anyhow!("timed out waiting for {what} from {}", self.peer).into());
            }
            self.stream.set_read_timeout(Some(left.min(Duration::from_millis(100))))?;
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Err(anyhow::anyhow!("{} closed the connection while waiting for {what}", self.peer).into());
                }
                Ok(n) => self.reader.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(anyhow::anyhow!("reading from {}: {e}", self.peer).into()),
            }
        }
    }

    /// QUIT, then wait (briefly) for the server to close.
    fn quit(mut self, reason: &str) {
        if self.send(&Message::new("QUIT").trailing(reason).to_line()).is_ok() {
            let _ = self.stream.shutdown(Shutdown::Write);
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut buf = [0u8; 4096];
            while Instant::now() < deadline {
                let _ = self.stream.set_read_timeout(Some(Duration::from_millis(200)));
                match self.stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
        }
    }
}

/// `--send`: one message (or one per line of TEXT), confirmed.
#[derive(Debug)]
pub(super) struct OneShot<'a> {
    pub(super) args: &'a ConnectConfig,
    pub(super) joins: &'a [String],
    pub(super) target: &'a str,
    pub(super) text: &'a str,
}

impl OneShot<'_> {
    pub(super) fn run(&self, addrs: &[SocketAddr], interrupt: &Interrupt) -> anyhow::Result<Exit> {
        match self.exchange(addrs, interrupt) {
            Ok(count) => {
                let plural = if count == 1 { "" } else { "s" };
                println!("delivered {count} message{plural} to {}", self.target);
                Ok(Exit::Success)
            }
            Err(Stop::Interrupted) => Ok(Exit::Interrupted),
            Err(Stop::Failed(e)) => Err(e),
        }
    }

    /// Returns how many PRIVMSGs were sent and confirmed.
    fn exchange(&self, addrs: &[SocketAddr], interrupt: &Interrupt) -> Result<usize, Stop> {
        let deadline = Instant::now() + self.args.timeout;
        let stream = connect(addrs, self.args.timeout)?;
        let peer = stream.peer_addr()?;
        stream.set_write_timeout(Some(self.args.timeout))?;
        let mut wire = LineConn { stream, reader: LineReader::new(), peer };

        let mut registrar = Registrar::new(&self.args.nick);
        for line in registrar.hello(self.args.password.as_deref(), "trident chat") {
            wire.send(&line)?;
        }
        let nick = loop {
            let line = wire.next_line(deadline, interrupt, "the server's welcome")?;
            let Ok(m) = Message::parse(&line) else { continue };
            let mut reply = Vec::new();
            let step = registrar.on_message(&m, &mut reply);
            for r in reply {
                wire.send(&r)?;
            }
            match step {
                Step::Pending => {}
                Step::Registered(nick) => break nick,
                Step::Failed(why) => return Err(anyhow::anyhow!("{why}").into()),
            }
        };

        if !self.joins.is_empty() {
            wire.send(&Message::new("JOIN").param(&self.joins.join(",")).to_line())?;
        }
        let mut count = 0;
        let max = max_text(&nick, self.target);
        for line in self.text.lines().filter(|l| !l.is_empty()) {
            let line = line.trim_end_matches('\r');
            for piece in split_text(line, max) {
                wire.send(&Message::new("PRIVMSG").param(self.target).trailing(piece).to_line())?;
                count += 1;
            }
        }
        let token = format!("trident-{}-{}", std::process::id(), unique());
        wire.send(&Message::new("PING").trailing(&token).to_line())?;

        let mut errors = Vec::new();
        loop {
            let line = wire.next_line(deadline, interrupt, "the confirmation (PONG)")?;
            let Ok(m) = Message::parse(&line) else { continue };
            match (m.command.to_ascii_uppercase().as_str(), numeric(m.command)) {
                ("PING", _) => wire.send(&pong(&m))?,
                ("PONG", _) if m.params.last() == Some(&token.as_str()) => break,
                ("ERROR", _) => {
                    let why = m.params.join(" ");
                    return Err(
                        anyhow::anyhow!("the server closed the connection: {}", escaped(&why, Escapes::Caret)).into()
                    );
                }
                // 422 (no MOTD) ends the welcome burst on some servers.
                (_, Some(code)) if (400..600).contains(&code) && code != 422 => errors.push(describe_numeric(&m)),
                _ => {}
            }
        }
        wire.quit("sent");
        if errors.is_empty() { Ok(count) } else { Err(anyhow::anyhow!("not delivered: {}", errors.join("; ")).into()) }
    }
}
