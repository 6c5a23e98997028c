//! What a connection's shell decides by the clock, the same on every
//! engine: flood control (a token bucket over lines: a burst, then a
//! steady rate; lines beyond it wait, and too many waiting is an "Excess
//! Flood" disconnect) and the keep-alive (after an idle period the server
//! sends PING; no answer within the timeout is a "Ping timeout").
//!
//! Sans-IO: the shell feeds what it reads with the time, takes the events
//! it may pass to the hub now, and sleeps until [`Session::deadline`].
//! [`Handling`] is what both connection loops (tasks and threads) do with a
//! read's result and with the clock: pass lines to the core, ping, close.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use super::conn::{Conn, Status};
use super::{Backend, ConnSettings, Limits};
use crate::chat::{ClientId, LineEvent, LineReader};
use crate::server::wire::Wire;

/// What the clock asks of the shell.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing now.
    Nothing,
    /// Send the server's PING.
    Ping,
    /// Close the connection with this reason.
    Close(String),
}

/// One connection's reader, flood bucket and keep-alive clock.
#[derive(Debug)]
pub(crate) struct Session {
    reader: LineReader,
    /// Lines read but not yet allowed by the bucket, in order.
    held: VecDeque<LineEvent>,
    tokens: f64,
    refilled: Instant,
    heard: Instant,
    pinged: Option<Instant>,
    burst: f64,
    rate: f64,
    max_held: usize,
    ping_interval: Duration,
    ping_timeout: Duration,
}

impl Session {
    pub fn new(limits: &Limits, now: Instant) -> Session {
        Session {
            reader: LineReader::new(),
            held: VecDeque::new(),
            tokens: f64::from(limits.flood_burst),
            refilled: now,
            heard: now,
            pinged: None,
            burst: f64::from(limits.flood_burst),
            rate: limits.flood_rate,
            max_held: limits.flood_queue,
            ping_interval: limits.ping_interval,
            ping_timeout: limits.ping_timeout,
        }
    }

    /// Bytes read at `now`. An error names the flood if too many lines wait.
    pub fn read(&mut self, data: &[u8], now: Instant) -> Result<(), String> {
        self.heard = now;
        self.pinged = None;
        self.reader.push(data);
        while let Some(event) = self.reader.next_event() {
            self.held.push_back(event);
        }
        if self.flood_control() {
            self.refill(now);
            // Lines the bucket lets through now do not count as waiting.
            if self.held.len().saturating_sub(self.tokens as usize) > self.max_held {
                return Err("Excess Flood".into());
            }
        }
        Ok(())
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
    }

    fn flood_control(&self) -> bool {
        self.rate > 0.0
    }

    /// Moves the events the bucket allows at `now` to `out`.
    pub fn ready(&mut self, now: Instant, out: &mut Vec<LineEvent>) {
        if !self.flood_control() {
            out.extend(self.held.drain(..));
            return;
        }
        self.refill(now);
        while self.tokens >= 1.0 {
            let Some(event) = self.held.pop_front() else { break };
            self.tokens -= 1.0;
            out.push(event);
        }
    }

    /// Whether lines are waiting for the bucket.
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// When to look at the clock next.
    pub fn deadline(&self) -> Instant {
        let keepalive = match self.pinged {
            None => self.heard + self.ping_interval,
            Some(at) => at + self.ping_timeout,
        };
        if self.holding() && self.flood_control() {
            let wait = ((1.0 - self.tokens).max(0.0) / self.rate).min(3600.0);
            keepalive.min(self.refilled + Duration::from_secs_f64(wait))
        } else {
            keepalive
        }
    }

    /// The keep-alive at `now`.
    pub fn tick(&mut self, now: Instant) -> Due {
        match self.pinged {
            None if now >= self.heard + self.ping_interval => {
                self.pinged = Some(now);
                Due::Ping
            }
            Some(at) if now >= at + self.ping_timeout => {
                let idle = now.saturating_duration_since(self.heard).as_secs();
                Due::Close(format!("Ping timeout: {idle} seconds"))
            }
            _ => Due::Nothing,
        }
    }
}

/// How a connection loop ends.
pub(crate) enum End {
    /// The core closed it (QUIT, ERROR sent) or cut it (send queue).
    Closed,
    /// The peer went away or the socket failed; the reason its channels see.
    Gone(String),
    /// The server is stopping.
    Stop,
}

impl End {
    /// The reason the connection's channels see it leave with.
    pub fn reason(&self) -> &str {
        match self {
            End::Gone(reason) => reason,
            End::Closed => "Connection closed",
            End::Stop => "Server shutting down",
        }
    }
}

/// What one read brought.
pub(crate) enum Input {
    /// Bytes, fed to the session.
    Data,
    /// Nothing after all (a spurious readiness).
    NotYet,
    /// End of stream (or of the TLS session).
    Eof,
    /// The session refused them: too many lines waiting.
    Flood(String),
    /// The socket or the TLS session failed: the reason.
    Failed(String),
}

/// What a connection does with what it read and with its clock, the same
/// in both shells (tasks and threads).
pub(crate) struct Handling<'a, B: Backend> {
    pub id: ClientId,
    pub backend: &'a B,
    pub conn: &'a Conn,
    pub settings: &'a ConnSettings,
    events: Vec<crate::chat::LineEvent>,
    /// The shell asked the core to close this connection: read no more.
    pub closing: bool,
}

impl<'a, B: Backend> Handling<'a, B> {
    pub fn new(id: ClientId, backend: &'a B, conn: &'a Conn, settings: &'a ConnSettings) -> Self {
        Handling { id, backend, conn, settings, events: Vec::new(), closing: false }
    }

    /// Lines the flood bucket lets through now go to the core; none once
    /// the connection is closing (after its QUIT nothing more is read).
    fn pass(&mut self, session: &mut Session, now: Instant) {
        if self.closing {
            return;
        }
        session.ready(now, &mut self.events);
        if !self.events.is_empty() {
            self.backend.events(self.id, &mut self.events);
        }
        let status = self.conn.status();
        self.closing |= status.closing || status.overflowed;
    }

    fn close(&mut self, reason: &str) {
        self.closing = true;
        self.backend.close(self.id, reason);
    }

    /// One read's result; `Some(reason)` when the connection is gone.
    pub fn input(&mut self, input: Input, session: &mut Session, now: Instant) -> Option<String> {
        match input {
            Input::Data => self.pass(session, now),
            Input::NotYet => {}
            Input::Eof => return Some("Remote host closed the connection".into()),
            Input::Failed(reason) => return Some(reason),
            Input::Flood(reason) => self.close(&reason),
        }
        None
    }

    /// The session's deadline has come: held lines, keep-alive.
    pub fn clock(&mut self, session: &mut Session, now: Instant) {
        if session.holding() {
            self.pass(session, now);
        }
        match session.tick(now) {
            Due::Nothing => {}
            Due::Ping => {
                self.conn.push(self.settings.ping.as_bytes());
            }
            Due::Close(reason) => self.close(&reason),
        }
    }
}

/// Wire bytes read: their plaintext goes to `session`; what TLS has to
/// answer (handshake) is appended to `out`.
pub(crate) fn received(wire: &mut Wire, raw: &[u8], out: &mut Vec<u8>, session: &mut Session, now: Instant) -> Input {
    match wire.open(raw, out, |data| session.read(data, now)) {
        Ok(Some(Ok(()))) => Input::Data,
        Ok(Some(Err(flood))) => Input::Flood(flood),
        Ok(None) => Input::Eof,
        Err(reason) => Input::Failed(reason),
    }
}

/// Moves what `conn` has queued to `out`, as wire bytes.
pub(crate) fn take(wire: &mut Wire, conn: &Conn, out: &mut Vec<u8>) -> Status {
    wire.send(out, |buf| conn.take(buf))
}

pub(crate) fn read_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "Read error: Connection reset by peer".into(),
        _ => format!("Read error: {e}"),
    }
}

pub(crate) fn write_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => "Write error: Connection reset by peer".into(),
        _ => format!("Write error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            flood_burst: 2,
            flood_rate: 1.0,
            flood_queue: 3,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            ..Limits::default()
        }
    }

    fn lines(out: &[LineEvent]) -> Vec<&str> {
        out.iter()
            .map(|e| match e {
                LineEvent::Line(l) => l.as_str(),
                _ => "?",
            })
            .collect()
    }

    #[test]
    fn a_burst_passes_then_lines_wait_for_the_rate() {
        let t = Instant::now();
        let mut s = Session::new(&limits(), t);
        s.read(b"a\nb\nc\n", t).unwrap();
        let mut out = Vec::new();
        s.ready(t, &mut out);
        assert_eq!(lines(&out), ["a", "b"]);
        assert!(s.holding());
        assert_eq!(s.deadline(), t + Duration::from_secs(1));
        out.clear();
        s.ready(t + Duration::from_secs(1), &mut out);
        assert_eq!(lines(&out), ["c"]);
    }

    #[test]
    fn too_many_waiting_lines_are_an_excess_flood() {
        let t = Instant::now();
        let mut s = Session::new(&limits(), t);
        assert_eq!(s.read(b"1\n2\n3\n4\n5\n", t), Ok(()), "5 held: within 3 after the burst is taken");
        let mut out = Vec::new();
        s.ready(t, &mut out);
        assert_eq!(s.read(b"6\n7\n", t), Err("Excess Flood".into()));
    }

    #[test]
    fn an_idle_client_is_pinged_then_timed_out_unless_it_answers() {
        let t = Instant::now();
        let mut s = Session::new(&limits(), t);
        assert_eq!(s.tick(t + Duration::from_secs(9)), Due::Nothing);
        assert_eq!(s.deadline(), t + Duration::from_secs(10));
        assert_eq!(s.tick(t + Duration::from_secs(10)), Due::Ping);
        assert_eq!(s.tick(t + Duration::from_secs(14)), Due::Nothing);
        assert_eq!(s.tick(t + Duration::from_secs(15)), Due::Close("Ping timeout: 15 seconds".into()));
        let mut s = Session::new(&limits(), t);
        assert_eq!(s.tick(t + Duration::from_secs(10)), Due::Ping);
        s.read(b"PONG :x\n", t + Duration::from_secs(11)).unwrap();
        assert_eq!(s.tick(t + Duration::from_secs(16)), Due::Nothing);
    }
}
