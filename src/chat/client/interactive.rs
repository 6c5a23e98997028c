//! The interactive client's state and event loop: the terminal and the
//! socket each have a reader thread feeding one channel; this thread owns
//! the connection, reconnects with a backoff, and keeps it alive.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::display::note;
use super::{
    ConnectConfig, DEAD_AFTER, KEEPALIVE, MAX_PENDING, MAX_RECONNECTS, QUIT_WAIT, Registrar, Step, connect, numeric,
};
use crate::chat::line::{LineEvent, LineReader};
use crate::chat::message::Message;
use crate::chat::names::fold;
use crate::engine::Interrupt;
use crate::error::Exit;

/// The most channels the client remembers (to join again after a
/// reconnect).
const MAX_CHANNELS: usize = 100;

/// JOIN lines for `channels` after a reconnect, as many as it takes for
/// each to fit in an IRC line.
fn rejoin_lines(channels: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut list = String::new();
    for chan in channels {
        // "JOIN " + the list + CRLF within the 512 bytes, with room to spare.
        if !list.is_empty() && list.len() + 1 + chan.len() > 400 {
            lines.push(Message::new("JOIN").param(&list).to_line());
            list.clear();
        }
        if !list.is_empty() {
            list.push(',');
        }
        list.push_str(chan);
    }
    if !list.is_empty() {
        lines.push(Message::new("JOIN").param(&list).to_line());
    }
    lines
}

/// What the threads tell the main loop.
#[derive(Debug)]
pub(super) enum Event {
    /// A line typed.
    Input(String),
    /// The end of the input.
    InputEnd,
    /// A line from connection number `.0`.
    Line(u64, String),
    /// A line from connection `.0` that was dropped (not UTF-8...).
    BadLine(u64, LineEvent),
    /// Connection `.0` closed; why.
    Closed(u64, String),
}

/// Something typed, held until registration.
#[derive(Debug)]
pub(super) enum Typed {
    Line(String),
    End,
}

/// The connection to the server while it is up, and what is known of it.
#[derive(Debug)]
pub(super) struct ServerConn {
    pub(super) stream: TcpStream,
    pub(super) connected: Instant,
    pub(super) last_heard: Instant,
    /// Shut down by us; its reader will report the close.
    pub(super) closing: bool,
    pub(super) pinged: bool,
    pub(super) registered: bool,
    pub(super) registrar: Registrar,
}

/// The interactive client's state; see the module documentation.
#[derive(Debug)]
pub(super) struct Interactive<'a> {
    pub(super) args: &'a ConnectConfig,
    /// The nick we want (the last one asked for).
    pub(super) wanted: String,
    /// Our nick as the server knows it.
    pub(super) nick: String,
    /// Channels joined (or being joined), in order.
    pub(super) channels: Vec<String>,
    pub(super) current: Option<String>,
    pub(super) live: Option<ServerConn>,
    pub(super) generation: u64,
    pub(super) pending: VecDeque<Typed>,
    /// Set by /quit: the deadline for the server to close.
    pub(super) quitting: Option<Instant>,
    /// When to try connecting again, and how many attempts failed in a row.
    pub(super) retry_at: Option<Instant>,
    pub(super) failures: u32,
}
impl<'a> Interactive<'a> {
    pub(super) fn new(args: &'a ConnectConfig, joins: Vec<String>) -> Self {
        let current = joins.first().cloned();
        Interactive {
            args,
            wanted: args.nick.clone(),
            nick: args.nick.clone(),
            channels: joins,
            current,
            live: None,
            generation: 0,
            pending: VecDeque::new(),
            quitting: None,
            retry_at: None,
            failures: 0,
        }
    }

    pub(super) fn run(mut self, addrs: &[SocketAddr], interrupt: &Interrupt) -> anyhow::Result<Exit> {
        let (tx, rx) = crossbeam_channel::unbounded();
        spawn_stdin(tx.clone());
        // The first connection must work: a typo in the address is not a
        // dropped connection.
        self.connect(addrs, &tx)?;
        let result = self.event_loop(addrs, interrupt, &tx, &rx);
        if let Some(live) = &self.live {
            let _ = live.stream.shutdown(Shutdown::Both);
        }
        result
    }

    pub(super) fn event_loop(
        &mut self,
        addrs: &[SocketAddr],
        interrupt: &Interrupt,
        tx: &Sender<Event>,
        rx: &Receiver<Event>,
    ) -> anyhow::Result<Exit> {
        loop {
            if interrupt.is_set() {
                self.send_raw(&Message::new("QUIT").trailing("interrupted").to_line());
                return Ok(Exit::Interrupted);
            }
            if let Some(deadline) = self.quitting {
                if self.live.is_none() || Instant::now() >= deadline {
                    return Ok(Exit::Success);
                }
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Event::Input(line)) => self.typed(Typed::Line(line)),
                Ok(Event::InputEnd) => self.typed(Typed::End),
                Ok(Event::Line(generation, line)) if generation == self.generation => self.server_line(&line)?,
                Ok(Event::BadLine(generation, event)) if generation == self.generation => match event {
                    LineEvent::TooLong => note("(a line longer than 512 bytes was dropped)"),
                    _ => note("(a line that is not valid UTF-8 was dropped)"),
                },
                Ok(Event::Closed(generation, why)) if generation == self.generation => {
                    self.live = None;
                    if self.quitting.is_some() {
                        return Ok(Exit::Success);
                    }
                    if self.args.no_reconnect {
                        anyhow::bail!("connection closed: {why}");
                    }
                    self.schedule_retry(&format!("disconnected ({why})"));
                }
                Ok(_) => {} // from a connection already replaced
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(Exit::Success),
            }
            if self.quitting.is_none() {
                if self.retry_at.is_some_and(|at| Instant::now() >= at) {
                    self.retry_at = None;
                    if let Err(e) = self.connect(addrs, tx) {
                        if self.failures >= MAX_RECONNECTS {
                            anyhow::bail!("gave up after {} attempts to reconnect: {e:#}", self.failures);
                        }
                        self.schedule_retry(&format!("{e:#}"));
                    }
                }
                self.keepalive();
            }
        }
    }

    pub(super) fn schedule_retry(&mut self, why: &str) {
        self.failures += 1;
        let delay = Duration::from_secs(1u64 << (self.failures - 1).min(5)).min(Duration::from_secs(30));
        note(&format!("{why}; reconnecting in {} s", delay.as_secs()));
        self.retry_at = Some(Instant::now() + delay);
    }

    pub(super) fn connect(&mut self, addrs: &[SocketAddr], tx: &Sender<Event>) -> anyhow::Result<()> {
        let stream = connect(addrs, self.args.timeout)?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let peer = stream.peer_addr().map_or_else(|_| self.args.addr.clone(), |a| a.to_string());
        note(&format!("Connected to {peer}"));
        self.generation += 1;
        spawn_reader(stream.try_clone()?, self.generation, tx.clone());
        let registrar = Registrar::new(&self.wanted);
        let hello = registrar.hello(self.args.password.as_deref(), "trident chat");
        self.live = Some(ServerConn {
            stream,
            connected: Instant::now(),
            last_heard: Instant::now(),
            closing: false,
            pinged: false,
            registered: false,
            registrar,
        });
        for line in hello {
            self.send_raw(&line);
        }
        Ok(())
    }

    /// Writes one line; a failed write closes the connection (its reader
    /// then reports it).
    pub(super) fn send_raw(&mut self, line: &str) {
        let Some(live) = &mut self.live else { return };
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        if let Err(e) = live.stream.write_all(&bytes) {
            note(&format!("write failed: {e}"));
            let _ = live.stream.shutdown(Shutdown::Both);
        }
    }

    pub(super) fn keepalive(&mut self) {
        let Some(live) = &mut self.live else { return };
        if live.closing {
            return;
        }
        let silent = live.last_heard.elapsed();
        if !live.registered && live.connected.elapsed() >= self.args.timeout {
            note(&format!("no welcome from the server within {} s", self.args.timeout.as_secs_f64()));
            live.closing = true;
            let _ = live.stream.shutdown(Shutdown::Both);
        } else if silent >= DEAD_AFTER {
            note(&format!("no answer from the server for {} s", silent.as_secs()));
            live.closing = true;
            let _ = live.stream.shutdown(Shutdown::Both);
        } else if silent >= KEEPALIVE && !live.pinged {
            live.pinged = true;
            self.send_raw("PING :keepalive");
        }
    }

    pub(super) fn registered(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.registered)
    }

    // --- typed input

    pub(super) fn typed(&mut self, typed: Typed) {
        if self.live.is_some() && !self.registered() {
            if self.pending.len() < MAX_PENDING {
                self.pending.push_back(typed);
            } else {
                note("(not registered yet: input dropped)");
            }
            return;
        }
        match typed {
            Typed::Line(line) => self.command(&line),
            Typed::End => self.quit("leaving"),
        }
    }

    pub(super) fn quit(&mut self, reason: &str) {
        self.quitting = Some(Instant::now() + QUIT_WAIT);
        self.retry_at = None;
        self.send_raw(&Message::new("QUIT").trailing(reason).to_line());
    }

    pub(super) fn is_current(&self, chan: &str) -> bool {
        self.current.as_deref().is_some_and(|c| fold(c) == fold(chan))
    }

    /// Remembers a channel joined (at most [`MAX_CHANNELS`]: a server
    /// telling of endless joins does not grow it).
    pub(super) fn add_channel(&mut self, name: &str) {
        if self.channels.len() < MAX_CHANNELS && !self.channels.iter().any(|c| fold(c) == fold(name)) {
            self.channels.push(name.to_owned());
        }
    }

    pub(super) fn remove_channel(&mut self, name: &str) {
        self.channels.retain(|c| fold(c) != fold(name));
        if self.is_current(name) {
            self.current = self.channels.last().cloned();
        }
    }

    pub(super) fn is_me(&self, nick: &str) -> bool {
        fold(nick) == fold(&self.nick)
    }

    // --- server lines

    pub(super) fn server_line(&mut self, line: &str) -> anyhow::Result<()> {
        let Ok(m) = Message::parse(line) else { return Ok(()) };
        if let Some(live) = &mut self.live {
            live.last_heard = Instant::now();
            live.pinged = false;
        }
        if !self.registered() {
            return self.registering(&m);
        }
        self.show(&m);
        Ok(())
    }

    pub(super) fn registering(&mut self, m: &Message<'_>) -> anyhow::Result<()> {
        let Some(live) = &mut self.live else { return Ok(()) };
        let mut reply = Vec::new();
        let step = live.registrar.on_message(m, &mut reply);
        let tried = live.registrar.nick.clone();
        for r in &reply {
            self.send_raw(r);
        }
        match step {
            Step::Pending => {
                if matches!(numeric(m.command), Some(433 | 436 | 437)) {
                    note(&format!("Nick in use, trying {tried}"));
                } else if !m.command.eq_ignore_ascii_case("CAP") && !m.command.eq_ignore_ascii_case("PING") {
                    self.show(m);
                }
            }
            Step::Failed(why) => {
                self.quitting = Some(Instant::now());
                anyhow::bail!("{why}");
            }
            Step::Registered(nick) => {
                self.nick = nick;
                self.failures = 0;
                if let Some(live) = &mut self.live {
                    live.registered = true;
                }
                self.show(m);
                for line in rejoin_lines(&self.channels) {
                    self.send_raw(&line);
                }
                while let Some(typed) = self.pending.pop_front() {
                    self.typed(typed);
                }
            }
        }
        Ok(())
    }
}

/// Reads the terminal (or a pipe) line by line until its end.
fn spawn_stdin(tx: Sender<Event>) {
    let spawned = thread::Builder::new().name("chat-stdin".into()).spawn(move || {
        let stdin = io::stdin();
        let mut input = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).replace(['\r', '\0'], " ");
                    if tx.send(Event::Input(line)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Event::InputEnd);
    });
    if spawned.is_err() {
        // Without an input thread, there is nothing to type: behave as an
        // immediate end of input.
        note("cannot read the terminal");
    }
}

/// Reads connection `generation` until it closes.
fn spawn_reader(mut stream: TcpStream, generation: u64, tx: Sender<Event>) {
    let fail = tx.clone();
    let spawned = thread::Builder::new().name("chat-socket".into()).stack_size(256 * 1024).spawn(move || {
        let mut reader = LineReader::new();
        let mut buf = vec![0u8; 16 * 1024];
        let why = loop {
            match stream.read(&mut buf) {
                Ok(0) => break "closed by the server".to_owned(),
                Ok(n) => {
                    reader.push(&buf[..n]);
                    for event in reader.by_ref() {
                        let event = match event {
                            LineEvent::Line(line) => Event::Line(generation, line),
                            other => Event::BadLine(generation, other),
                        };
                        if tx.send(event).is_err() {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break e.to_string(),
            }
        };
        let _ = tx.send(Event::Closed(generation, why));
    });
    if let Err(e) = spawned {
        let _ = fail.send(Event::Closed(generation, format!("cannot start a reader thread: {e}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejoining_many_channels_takes_lines_that_fit() {
        assert!(rejoin_lines(&[]).is_empty());
        assert_eq!(rejoin_lines(&["#a".into(), "#b".into()]), ["JOIN #a,#b"]);
        let many: Vec<String> = (0..MAX_CHANNELS).map(|i| format!("#{i:0>49}")).collect();
        let lines = rejoin_lines(&many);
        assert!(lines.len() > 1 && lines.iter().all(|l| l.len() + 2 <= 512), "{lines:?}");
        let joined: Vec<&str> =
            lines.iter().flat_map(|l| l.trim_end().strip_prefix("JOIN ").expect("JOIN").split(',')).collect();
        assert_eq!(joined, many);
    }
}
