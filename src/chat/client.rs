//! `trident chat connect`: an IRC client for people and for scripts.
//!
//! - **Interactive** (the default): one thread reads the terminal, one
//!   reads the socket; both feed a channel that the calling thread, which
//!   owns all state and every write, drains. Lines are printed as
//!   `[HH:MM] <nick> text` (a message to another channel than the current
//!   one is shown as `[HH:MM] #chan <nick> text`, a private one as
//!   `*nick*`); joins, parts, quits, nick and topic changes, server notices
//!   and errors are shown as `[HH:MM] -!- ...`. Slash commands: `/join
//!   /part /msg /me /nick /who /names /topic /quit`, plus `/quote` (a raw
//!   line) and `/help`; `//text` sends `/text`. Plain lines go to the
//!   current channel (the last one joined). What is typed before the server
//!   has accepted the registration is held and sent after it. End of input
//!   (Ctrl-D, or the end of a pipe) is `/quit`. A dropped connection is
//!   re-established with a backoff (1 s doubling to 30 s, at most
//!   [`MAX_RECONNECTS`] attempts in a row) and the channels are joined
//!   again; not after `/quit`, nor with `--no-reconnect`.
//! - **One-shot** (`--send TEXT`): connect, register, join the `--join`
//!   channels, send TEXT (one PRIVMSG per line, long lines split) to the
//!   first channel or `--to`, then a `PING` with a unique token. A server
//!   handles a client's lines in order, so its `PONG` proves the messages
//!   before it were processed: an error numeric before it (401 no such
//!   nick, 403 no such channel, 404 cannot send, a failed join...) means
//!   not delivered (exit 1); its absence, delivered (exit 0). Any other
//!   failure (refused, registration refused, timeout) is an error (exit 1)
//!   with one line saying why; bad arguments exit 2, Ctrl-C 130.
//!
//! Registration (both modes, and the load generator's clients) is
//! [`Registrar`]: `CAP LS 302` (ended with `CAP END` once the server has
//! listed its capabilities; none is requested), `PASS`, `NICK`, `USER`;
//! a nick in use (433) gets a `_` appended and is tried again.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::line::{LineEvent, LineReader};
use super::message::Message;
use super::names::{fold, valid_channel, valid_nick};
use crate::engine::Interrupt;
use crate::error::{BadInput, Exit};
use crate::output::{Escapes, escaped};

/// Where `trident chat serve` listens by default: IRC's port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:6667";
/// Reconnection attempts in a row before the interactive client gives up.
pub const MAX_RECONNECTS: u32 = 20;
/// Attempts at a free nick (each one more `_`) before giving up.
pub const MAX_NICK_RETRIES: u32 = 8;
/// The user name sent in `USER`.
pub const USERNAME: &str = "trident";
/// Silence from the server after which the client sends a PING.
const KEEPALIVE: Duration = Duration::from_secs(60);
/// Silence after which the connection is considered dead.
const DEAD_AFTER: Duration = Duration::from_secs(150);
/// How long to wait for the server to close after QUIT.
const QUIT_WAIT: Duration = Duration::from_secs(2);
/// Lines typed before registration that are kept.
const MAX_PENDING: usize = 256;

/// The interactive commands and examples: `trident chat connect --help`
/// shows them, and `/help` the commands.
pub const CONNECT_HELP: &str = "\
Interactive commands:
  /join #room[,#other] [key]   join; the last joined is the current channel
  /part [#room] [reason]       leave (default: the current channel)
  /msg NICK|#room TEXT         a message to anyone
  /me TEXT                     an action (CTCP ACTION) in the current channel
  /nick NAME   /who [TARGET]   /names [#room]   /topic [#room] [TEXT]
  /quote LINE                  send a raw IRC line
  /quit [reason]               leave (end of input does the same)
Plain lines go to the current channel.

Examples:
  trident chat connect --nick alice --join '#chat'
  trident chat connect 127.0.0.1:6667 --nick bot --join '#ops' --send 'deploy done'
  trident chat connect --nick bot --to alice --send 'hi'   exit 0 = delivered";

/// What `trident chat connect` does (checked by [`run`]).
#[derive(Debug)]
pub struct ConnectConfig {
    /// The server's address.
    pub addr: String,
    /// Nickname; if it is taken, `_` is appended until one is free.
    pub nick: String,
    /// Channels to join once connected; the first is the current channel.
    pub join: Vec<String>,
    /// One-shot: the text to send, checked to be accepted, then quit.
    pub send: Option<String>,
    /// With `send`: the recipient, a nick or a channel.
    pub to: Option<String>,
    /// Server password (sent as PASS).
    pub password: Option<String>,
    /// Give up connecting after this long; with `send`, the whole exchange.
    pub timeout: Duration,
    /// Interactive: exit when the connection drops instead of reconnecting.
    pub no_reconnect: bool,
}

/// Runs `trident chat connect`.
pub fn run(args: ConnectConfig, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    if !valid_nick(&args.nick) {
        return Err(BadInput(format!("invalid nickname {:?} (a letter or one of []\\`_^{{|}}, then letters, digits, those or -; at most 30 bytes)", args.nick)).into());
    }
    let joins: Vec<String> = args.join.iter().filter(|c| !c.is_empty()).map(|c| channel_name(c)).collect();
    if let Some(bad) = joins.iter().find(|c| !valid_channel(c)) {
        return Err(BadInput(format!("invalid channel {bad:?} (expected #name, no spaces, commas or colons)")).into());
    }
    let addrs = crate::server::resolve(&args.addr)?;
    match &args.send {
        Some(text) => {
            let target = match (&args.to, joins.first()) {
                (Some(to), _) => to.clone(),
                (None, Some(first)) => first.clone(),
                (None, None) => {
                    return Err(BadInput("--send needs a recipient: --join #room or --to NICK".into()).into());
                }
            };
            if !(valid_nick(&target) || valid_channel(&target)) {
                return Err(BadInput(format!("invalid recipient {target:?} (expected a nick or a #channel)")).into());
            }
            if text.trim().is_empty() {
                return Err(BadInput("--send: nothing to send (the text is empty)".into()).into());
            }
            let once = OneShot { args: &args, joins: &joins, target: &target, text };
            once.run(&addrs, interrupt)
        }
        None => Interactive::new(&args, joins).run(&addrs, interrupt),
    }
}

/// `room` becomes `#room`; anything starting with `#` is kept.
fn channel_name(name: &str) -> String {
    if name.starts_with('#') { name.to_owned() } else { format!("#{name}") }
}

/// The nick in a `nick!user@host` prefix.
pub(crate) fn prefix_nick(prefix: Option<&str>) -> &str {
    prefix.map_or("", |p| p.split(['!', '@']).next().unwrap_or(p))
}

/// A three-digit numeric, if the command is one.
pub(crate) fn numeric(command: &str) -> Option<u16> {
    if command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit()) { command.parse().ok() } else { None }
}

/// An error numeric for people: `nobody: No such nick/channel (401)`.
pub(crate) fn describe_numeric(m: &Message<'_>) -> String {
    // params[0] is our nick; the last one is the text.
    let text = m.params.last().copied().unwrap_or("");
    let middle: Vec<&str> = m.params.iter().skip(1).take(m.params.len().saturating_sub(2)).copied().collect();
    // Printed on stderr: server text, shown escaped.
    let described = if middle.is_empty() {
        format!("{text} ({})", m.command)
    } else {
        format!("{}: {text} ({})", middle.join(" "), m.command)
    };
    escaped(&described, Escapes::Caret).into_owned()
}

/// Splits `text` into pieces of at most `max` bytes, on character
/// boundaries (`max` at least 4).
pub(crate) fn split_text(text: &str, max: usize) -> Vec<&str> {
    let max = max.max(4);
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // Prefer a space near the end of the piece.
        if let Some(space) = rest[..cut].rfind(' ').filter(|&i| i > cut / 2) {
            cut = space + 1;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.push(rest);
    pieces
}

/// The longest text that fits one `PRIVMSG target :text` as relayed by a
/// server, which prepends `:nick!user@host ` (host up to 63 bytes).
pub(crate) fn max_text(nick: &str, target: &str) -> usize {
    let relayed_prefix = 1 + nick.len() + 1 + 1 + USERNAME.len() + 1 + 63 + 1;
    let command = "PRIVMSG ".len() + target.len() + 2;
    super::MAX_LINE.saturating_sub(2 + relayed_prefix + command).max(16)
}

/// What registration needs next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Still waiting for the welcome.
    Pending,
    /// The server said 001; our nick as it knows it.
    Registered(String),
    /// The server refused us; why, for people.
    Failed(String),
}

/// Registration, sans-IO: [`Registrar::hello`] gives the first lines,
/// [`Registrar::on_message`] what each server message changes and the
/// lines to answer with.
#[derive(Debug)]
pub(crate) struct Registrar {
    /// The nick being tried.
    pub nick: String,
    retries: u32,
}

impl Registrar {
    pub fn new(nick: &str) -> Self {
        Registrar { nick: nick.to_owned(), retries: 0 }
    }

    /// `CAP LS 302`, `PASS`, `NICK`, `USER`, without terminators.
    pub fn hello(&self, password: Option<&str>, realname: &str) -> Vec<String> {
        let mut lines = vec!["CAP LS 302".to_owned()];
        if let Some(p) = password {
            lines.push(Message::new("PASS").param(p).to_line());
        }
        lines.push(Message::new("NICK").param(&self.nick).to_line());
        lines.push(Message::new("USER").param(USERNAME).param("0").param("*").trailing(realname).to_line());
        lines
    }

    /// Handles one message received before the welcome; `reply` gets the
    /// lines to send (without terminators).
    pub fn on_message(&mut self, m: &Message<'_>, reply: &mut Vec<String>) -> Step {
        let command = m.command.to_ascii_uppercase();
        match (command.as_str(), numeric(m.command)) {
            ("CAP", _) => {
                // CAP * LS [*] :list — a `*` before the list means more follows.
                let sub = m.params.get(1).map(|s| s.to_ascii_uppercase());
                if sub.as_deref() == Some("LS") && m.params.get(2) != Some(&"*") {
                    reply.push("CAP END".to_owned());
                }
                Step::Pending
            }
            ("PING", _) => {
                reply.push(pong(m));
                Step::Pending
            }
            ("ERROR", _) => Step::Failed(format!(
                "the server closed the connection: {}",
                escaped(&m.params.join(" "), Escapes::Caret)
            )),
            (_, Some(1)) => Step::Registered(m.params.first().map_or_else(|| self.nick.clone(), |n| (*n).to_owned())),
            (_, Some(433 | 436 | 437)) => {
                if self.retries >= MAX_NICK_RETRIES {
                    return Step::Failed(format!(
                        "no free nick: {} and {} variants are taken",
                        self.nick, self.retries
                    ));
                }
                self.retries += 1;
                self.nick.push('_');
                reply.push(Message::new("NICK").param(&self.nick).to_line());
                Step::Pending
            }
            (_, Some(432)) => {
                Step::Failed(format!("the server refuses the nick {:?}: {}", self.nick, describe_numeric(m)))
            }
            (_, Some(461 | 464 | 465)) => Step::Failed(format!("registration refused: {}", describe_numeric(m))),
            _ => Step::Pending,
        }
    }
}

/// The PONG answering a PING (same parameters).
pub(crate) fn pong(ping: &Message<'_>) -> String {
    let mut m = Message::new("PONG");
    for p in &ping.params {
        m.params.push(p);
    }
    m.trailing = ping.trailing;
    m.to_line()
}

/// Connects to the first address that answers.
fn connect(addrs: &[SocketAddr], timeout: Duration) -> anyhow::Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((addr, e)) => Err(anyhow::anyhow!("cannot connect to {addr}: {e}")),
        None => Err(anyhow::anyhow!("no address to connect to")),
    }
}

// ---------------------------------------------------------------------------
// One-shot mode

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
struct OneShot<'a> {
    args: &'a ConnectConfig,
    joins: &'a [String],
    target: &'a str,
    text: &'a str,
}

impl OneShot<'_> {
    fn run(&self, addrs: &[SocketAddr], interrupt: &Interrupt) -> anyhow::Result<Exit> {
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

/// A number that differs between calls (PING tokens).
fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

// ---------------------------------------------------------------------------
// Interactive mode

/// What the threads tell the main loop.
#[derive(Debug)]
enum Event {
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
enum Typed {
    Line(String),
    End,
}

/// The connection to the server while it is up, and what is known of it.
#[derive(Debug)]
struct ServerConn {
    stream: TcpStream,
    connected: Instant,
    last_heard: Instant,
    /// Shut down by us; its reader will report the close.
    closing: bool,
    pinged: bool,
    registered: bool,
    registrar: Registrar,
}

/// The interactive client's state; see the module documentation.
#[derive(Debug)]
struct Interactive<'a> {
    args: &'a ConnectConfig,
    /// The nick we want (the last one asked for).
    wanted: String,
    /// Our nick as the server knows it.
    nick: String,
    /// Channels joined (or being joined), in order.
    channels: Vec<String>,
    current: Option<String>,
    live: Option<ServerConn>,
    generation: u64,
    pending: VecDeque<Typed>,
    /// Set by /quit: the deadline for the server to close.
    quitting: Option<Instant>,
    /// When to try connecting again, and how many attempts failed in a row.
    retry_at: Option<Instant>,
    failures: u32,
}

/// Prints `[HH:MM] text` on stdout (ignoring a closed stdout), its
/// control characters shown escaped ([`visible`]): what other users send
/// must not drive the terminal.
fn say(text: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "[{}] {}", hhmm(), escaped(text, Escapes::Caret));
    let _ = out.flush();
}

/// A `-!-` notice.
fn note(text: &str) {
    say(&format!("-!- {text}"));
}

impl<'a> Interactive<'a> {
    fn new(args: &'a ConnectConfig, joins: Vec<String>) -> Self {
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

    fn run(mut self, addrs: &[SocketAddr], interrupt: &Interrupt) -> anyhow::Result<Exit> {
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

    fn event_loop(
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

    fn schedule_retry(&mut self, why: &str) {
        self.failures += 1;
        let delay = Duration::from_secs(1u64 << (self.failures - 1).min(5)).min(Duration::from_secs(30));
        note(&format!("{why}; reconnecting in {} s", delay.as_secs()));
        self.retry_at = Some(Instant::now() + delay);
    }

    fn connect(&mut self, addrs: &[SocketAddr], tx: &Sender<Event>) -> anyhow::Result<()> {
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
    fn send_raw(&mut self, line: &str) {
        let Some(live) = &mut self.live else { return };
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        if let Err(e) = live.stream.write_all(&bytes) {
            note(&format!("write failed: {e}"));
            let _ = live.stream.shutdown(Shutdown::Both);
        }
    }

    fn keepalive(&mut self) {
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

    fn registered(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.registered)
    }

    // --- typed input

    fn typed(&mut self, typed: Typed) {
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

    fn quit(&mut self, reason: &str) {
        self.quitting = Some(Instant::now() + QUIT_WAIT);
        self.retry_at = None;
        self.send_raw(&Message::new("QUIT").trailing(reason).to_line());
    }

    fn command(&mut self, line: &str) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return;
        }
        let Some(body) = line.strip_prefix('/') else { return self.say_to_current(line) };
        if body.starts_with('/') {
            return self.say_to_current(body);
        }
        let (cmd, rest) = body.split_once(' ').unwrap_or((body, ""));
        let rest = rest.trim();
        let word = |s: &str| -> (String, String) {
            let (a, b) = s.split_once(' ').unwrap_or((s, ""));
            (a.to_owned(), b.trim().to_owned())
        };
        match cmd.to_ascii_lowercase().as_str() {
            "quit" | "exit" => self.quit(if rest.is_empty() { "leaving" } else { rest }),
            "help" => {
                for l in CONNECT_HELP.lines().take_while(|l| !l.starts_with("Examples")).filter(|l| !l.is_empty()) {
                    note(l);
                }
            }
            _ if self.live.is_none() => note("Not connected: not sent"),
            "join" | "j" => {
                let (list, key) = word(rest);
                if list.is_empty() {
                    return note("Usage: /join #room[,#other] [key]");
                }
                let names: Vec<String> = list.split(',').filter(|c| !c.is_empty()).map(channel_name).collect();
                let mut m = Message::new("JOIN");
                let joined = names.join(",");
                m = m.param(&joined);
                if !key.is_empty() {
                    m = m.param(&key);
                }
                let line = m.to_line();
                self.send_raw(&line);
                for name in names {
                    self.add_channel(&name);
                    self.current = Some(name);
                }
            }
            "part" | "leave" => {
                let (chan, reason) = match rest.starts_with('#') {
                    true => word(rest),
                    false => (self.current.clone().unwrap_or_default(), rest.to_owned()),
                };
                if chan.is_empty() {
                    return note("Not in a channel");
                }
                let mut m = Message::new("PART").param(&chan);
                if !reason.is_empty() {
                    m = m.trailing(&reason);
                }
                let line = m.to_line();
                self.send_raw(&line);
            }
            "msg" | "query" => {
                let (target, text) = word(rest);
                if target.is_empty() || text.is_empty() {
                    return note("Usage: /msg NICK|#room TEXT");
                }
                self.privmsg(&target, &text, false);
            }
            "me" | "action" => match self.current.clone() {
                Some(chan) if !rest.is_empty() => self.privmsg(&chan, rest, true),
                Some(_) => note("Usage: /me TEXT"),
                None => note("Not in a channel (/join #room first)"),
            },
            "nick" => {
                let (nick, _) = word(rest);
                if nick.is_empty() {
                    return note(&format!("Your nick is {}", self.nick));
                }
                self.wanted = nick.clone();
                self.send_raw(&Message::new("NICK").param(&nick).to_line());
            }
            "who" => match non_empty(rest).or(self.current.clone()) {
                Some(target) => self.send_raw(&Message::new("WHO").param(&target).to_line()),
                None => note("Usage: /who #room|NICK"),
            },
            "names" => match non_empty(rest).or(self.current.clone()) {
                Some(chan) => self.send_raw(&Message::new("NAMES").param(&chan).to_line()),
                None => note("Usage: /names #room"),
            },
            "topic" => {
                let (chan, text) = match rest.starts_with('#') {
                    true => word(rest),
                    false => (self.current.clone().unwrap_or_default(), rest.to_owned()),
                };
                if chan.is_empty() {
                    return note("Usage: /topic [#room] [TEXT]");
                }
                let mut m = Message::new("TOPIC").param(&chan);
                if !text.is_empty() {
                    m = m.trailing(&text);
                }
                let line = m.to_line();
                self.send_raw(&line);
            }
            "quote" | "raw" => {
                if !rest.is_empty() {
                    self.send_raw(rest);
                }
            }
            other => note(&format!("Unknown command /{other} (try /help)")),
        }
    }

    fn say_to_current(&mut self, text: &str) {
        if self.live.is_none() {
            return note("Not connected: not sent");
        }
        match self.current.clone() {
            Some(chan) => self.privmsg(&chan, text, false),
            None => note("Not in a channel: /join #room first, or /msg NICK text"),
        }
    }

    /// Sends (split if long) and echoes a message.
    fn privmsg(&mut self, target: &str, text: &str, action: bool) {
        let max = max_text(&self.nick, target) - if action { 9 } else { 0 };
        for piece in split_text(text, max) {
            let body = if action { format!("\u{1}ACTION {piece}\u{1}") } else { piece.to_owned() };
            self.send_raw(&Message::new("PRIVMSG").param(target).trailing(&body).to_line());
            let is_channel = target.starts_with('#');
            let here = self.is_current(target);
            let shown = match (action, is_channel, here) {
                (true, _, true) => format!("* {} {piece}", self.nick),
                (true, _, false) => format!("{target} * {} {piece}", self.nick),
                (false, true, true) => format!("<{}> {piece}", self.nick),
                (false, true, false) => format!("{target} <{}> {piece}", self.nick),
                (false, false, _) => format!("-> *{target}* {piece}"),
            };
            say(&shown);
        }
    }

    fn is_current(&self, chan: &str) -> bool {
        self.current.as_deref().is_some_and(|c| fold(c) == fold(chan))
    }

    fn add_channel(&mut self, name: &str) {
        if !self.channels.iter().any(|c| fold(c) == fold(name)) {
            self.channels.push(name.to_owned());
        }
    }

    fn remove_channel(&mut self, name: &str) {
        self.channels.retain(|c| fold(c) != fold(name));
        if self.is_current(name) {
            self.current = self.channels.last().cloned();
        }
    }

    fn is_me(&self, nick: &str) -> bool {
        fold(nick) == fold(&self.nick)
    }

    // --- server lines

    fn server_line(&mut self, line: &str) -> anyhow::Result<()> {
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

    fn registering(&mut self, m: &Message<'_>) -> anyhow::Result<()> {
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
                if !self.channels.is_empty() {
                    let list = self.channels.join(",");
                    self.send_raw(&Message::new("JOIN").param(&list).to_line());
                }
                while let Some(typed) = self.pending.pop_front() {
                    self.typed(typed);
                }
            }
        }
        Ok(())
    }

    /// Shows one server message.
    fn show(&mut self, m: &Message<'_>) {
        let who = prefix_nick(m.prefix).to_owned();
        let p = &m.params;
        let arg = |i: usize| p.get(i).copied().unwrap_or("");
        let command = m.command.to_ascii_uppercase();
        if let Some(code) = numeric(m.command) {
            return self.show_numeric(code, m);
        }
        match command.as_str() {
            "PING" => self.send_raw(&pong(m)),
            "PONG" | "CAP" => {}
            "PRIVMSG" | "NOTICE" => self.show_message(&who, arg(0), arg(1), command == "NOTICE"),
            "JOIN" => {
                let chan = arg(0);
                if self.is_me(&who) {
                    self.add_channel(chan);
                    if self.current.is_none() {
                        self.current = Some(chan.to_owned());
                    }
                    note(&format!("You have joined {chan}"));
                } else {
                    note(&format!("{who} has joined {chan}"));
                }
            }
            "PART" => {
                let chan = arg(0);
                let reason = if p.len() > 1 && !arg(1).is_empty() { format!(" ({})", arg(1)) } else { String::new() };
                if self.is_me(&who) {
                    self.remove_channel(chan);
                    note(&format!("You have left {chan}{reason}"));
                } else {
                    note(&format!("{who} has left {chan}{reason}"));
                }
            }
            "KICK" => {
                let (chan, victim) = (arg(0), arg(1));
                if self.is_me(victim) {
                    self.remove_channel(chan);
                }
                note(&format!("{victim} was kicked from {chan} by {who} ({})", arg(2)));
            }
            "QUIT" => note(&format!("{who} has quit ({})", arg(0))),
            "NICK" => {
                let new = arg(0);
                if self.is_me(&who) {
                    self.nick = new.to_owned();
                    note(&format!("You are now known as {new}"));
                } else {
                    note(&format!("{who} is now known as {new}"));
                }
            }
            "TOPIC" => note(&format!("{who} changed the topic of {} to: {}", arg(0), arg(1))),
            "ERROR" => note(&format!("ERROR: {}", p.join(" "))),
            "MODE" => note(&format!("mode {} by {}", p.join(" "), if who.is_empty() { "the server" } else { &who })),
            _ => note(&format!("{} {}", m.command, p.join(" "))),
        }
    }

    fn show_message(&mut self, who: &str, target: &str, text: &str, notice: bool) {
        if let Some(ctcp) = text.strip_prefix('\u{1}') {
            let ctcp = ctcp.strip_suffix('\u{1}').unwrap_or(ctcp);
            let (kind, rest) = ctcp.split_once(' ').unwrap_or((ctcp, ""));
            if kind.eq_ignore_ascii_case("ACTION") {
                return if target.starts_with('#') && !self.is_current(target) {
                    say(&format!("{target} * {who} {rest}"))
                } else {
                    say(&format!("* {who} {rest}"))
                };
            }
            if !notice && !who.is_empty() {
                let answer = match kind.to_ascii_uppercase().as_str() {
                    "VERSION" => Some(format!("VERSION {}", super::hub::VERSION)),
                    "PING" => Some(ctcp.to_owned()),
                    _ => None,
                };
                if let Some(answer) = answer {
                    let body = format!("\u{1}{answer}\u{1}");
                    self.send_raw(&Message::new("NOTICE").param(who).trailing(&body).to_line());
                }
            }
            return note(&format!("CTCP {kind} from {who}"));
        }
        let server = who.is_empty() || !target.starts_with('#') && who.contains('.');
        let shown = if notice {
            if server { format!("-!- {text}") } else { format!("-{who}- {text}") }
        } else if !target.starts_with('#') {
            format!("*{who}* {text}")
        } else if self.is_current(target) {
            format!("<{who}> {text}")
        } else {
            format!("{target} <{who}> {text}")
        };
        say(&shown);
    }

    fn show_numeric(&mut self, code: u16, m: &Message<'_>) {
        let p = &m.params;
        let arg = |i: usize| p.get(i).copied().unwrap_or("");
        let text = p.last().copied().unwrap_or("");
        match code {
            // Machine-readable or end-of-list markers.
            4 | 5 | 315 | 366 | 333 | 329 => {}
            1 => {
                if let Some(first) = p.first() {
                    self.nick = (*first).to_owned();
                }
                note(text);
            }
            331 => note(&format!("No topic is set for {}", arg(1))),
            332 => note(&format!("Topic for {}: {}", arg(1), text)),
            353 => note(&format!("Users on {}: {}", arg(2), text)),
            352 => {
                // me chan user host server nick flags :hops realname
                let realname = text.split_once(' ').map_or(text, |(_, r)| r);
                note(&format!("{} {} ({}@{}) {} {realname}", arg(1), arg(5), arg(2), arg(3), arg(6)));
            }
            322 => note(&format!("{} {} users: {}", arg(1), arg(2), text)),
            // The text repeats the numbers; no MOTD is not an error to show.
            265 | 266 | 422 => note(text),
            400..=599 => {
                // A failed join: the channel was never joined.
                if matches!(code, 403 | 405 | 437 | 471 | 473 | 474 | 475 | 476 | 477) && arg(1).starts_with('#') {
                    let chan = arg(1).to_owned();
                    self.remove_channel(&chan);
                }
                if matches!(code, 432 | 433 | 436) {
                    self.wanted = self.nick.clone();
                }
                note(&format!("Error: {}", describe_numeric(m)));
            }
            _ => {
                let middle: Vec<&str> = p.iter().skip(1).copied().collect();
                note(&middle.join(" "));
            }
        }
    }
}

/// The local time of day as `HH:MM` (TZ and /etc/localtime, through libc;
/// UTC if it cannot be known).
pub(crate) fn hhmm() -> String {
    let now = std::time::SystemTime::now();
    let (h, m) = match crate::sys::local_time(now) {
        Some(tm) => (u64::try_from(tm.tm_hour).unwrap_or(0), u64::try_from(tm.tm_min).unwrap_or(0)),
        None => {
            let secs = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
            (secs / 3600, secs / 60 % 60)
        }
    };
    format!("{h:02}:{m:02}")
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.split_whitespace().next().unwrap_or("");
    (!s.is_empty()).then(|| s.to_owned())
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
    fn split_respects_limits_and_characters() {
        assert_eq!(split_text("hello", 10), vec!["hello"]);
        let long = "é".repeat(300); // 600 bytes
        let pieces = split_text(&long, 101);
        assert!(pieces.iter().all(|p| p.len() <= 101));
        assert_eq!(pieces.concat(), long);
        let words = "word ".repeat(50);
        let pieces = split_text(&words, 42);
        assert!(pieces.iter().all(|p| p.len() <= 42 && p.ends_with(' ')), "{pieces:?}");
        assert_eq!(pieces.concat(), words);
    }

    #[test]
    fn registrar_handles_cap_nick_in_use_and_welcome() {
        let mut r = Registrar::new("alice");
        assert_eq!(r.hello(Some("pw"), "A"), ["CAP LS 302", "PASS pw", "NICK alice", "USER trident 0 * :A"]);
        let mut reply = Vec::new();
        let step = r.on_message(&Message::parse(":srv CAP * LS * :a b").unwrap(), &mut reply);
        assert_eq!((step, reply.len()), (Step::Pending, 0));
        r.on_message(&Message::parse(":srv CAP * LS :c").unwrap(), &mut reply);
        assert_eq!(reply, ["CAP END"]);
        reply.clear();
        r.on_message(&Message::parse(":srv 433 * alice :Nickname is already in use").unwrap(), &mut reply);
        assert_eq!(reply, ["NICK alice_"]);
        reply.clear();
        r.on_message(&Message::parse("PING :tok en").unwrap(), &mut reply);
        assert_eq!(reply, ["PONG :tok en"]);
        let step = r.on_message(&Message::parse(":srv 001 alice_ :Welcome").unwrap(), &mut reply);
        assert_eq!(step, Step::Registered("alice_".into()));
        let mut r = Registrar::new("bob");
        let step = r.on_message(&Message::parse(":srv 464 * :Password incorrect").unwrap(), &mut reply);
        assert!(matches!(step, Step::Failed(why) if why.contains("Password incorrect (464)")));
    }

    #[test]
    fn hhmm_is_a_time_of_day() {
        let s = hhmm();
        assert_eq!((s.len(), &s[2..3]), (5, ":"), "{s}");
        assert!(s[..2].parse::<u32>().unwrap() < 24 && s[3..].parse::<u32>().unwrap() < 60);
    }

    #[test]
    fn numerics_are_described() {
        let m = Message::parse(":srv 401 me nobody :No such nick/channel").unwrap();
        assert_eq!(describe_numeric(&m), "nobody: No such nick/channel (401)");
        let m = Message::parse(":srv 451 * :You have not registered").unwrap();
        assert_eq!(describe_numeric(&m), "You have not registered (451)");
        assert_eq!(prefix_nick(Some("bob!u@h")), "bob");
        assert_eq!(prefix_nick(Some("irc.test")), "irc.test");
        assert_eq!(numeric("001"), Some(1));
        assert_eq!(numeric("PRIVMSG"), None);
    }
}
