//! `trident chat connect`: an IRC client for people and for scripts.
//!
//! - **Interactive** (the default): one thread reads the terminal, one
//!   reads the socket; both feed a channel that the calling thread, which
//!   owns all state and every write, drains. Lines are printed as
//!   `[HH:MM] <nick> text` (a message to another channel than the current
//!   one is shown as `[HH:MM] #chan <nick> text`, a private one as
//!   `*nick*`); joins, parts, quits, nick and topic changes, server notices
//!   and errors are shown as `[HH:MM] -!- ...`. Slash commands: `/join
//!   /part /msg /me /nick /who /names /topic /quit`, the requests `/list
//!   /whois /whowas /away /back /invite /kick /mode /op /deop /voice
//!   /devoice` (their replies shown as sentences), plus `/quote` (a raw
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
//!
//! Split by responsibility: [`register`] (the registration state machine,
//! shared with the load generator), [`oneshot`] (`--send`), `interactive`
//! (the event loop and connection), `commands` (what is typed), `display`
//! (how server lines are shown) and `numerics` (replies as sentences).

mod commands;
mod display;
mod interactive;
mod numerics;
pub(crate) mod oneshot;
pub(crate) mod register;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::message::Message;
use super::names::{valid_channel, valid_nick};
use crate::engine::Interrupt;
use crate::error::{BadInput, Exit};
use crate::output::{Escapes, escaped};
use interactive::Interactive;
use oneshot::OneShot;
pub(crate) use register::{Registrar, Step, pong};

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
  /list [MASK]                 the channels (and their topics)
  /whois NICK   /whowas NICK   who someone is (was), idle time, channels
  /away [TEXT]  /back          mark yourself away (or back)
  /invite NICK [#room]         invite someone (to the current channel)
  /kick [#room] NICK [reason]  remove someone (channel operators)
  /op /deop /voice /devoice [#room] NICK...   give or take @ or +
  /mode [#room|NICK] [+-MODES [ARGS]]  show or change modes (+b lists bans)
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

/// The nick used when none is given: the login name (`$USER`, else
/// `$LOGNAME`) made valid by [`nick_from`], or `trident`.
pub fn default_nick() -> String {
    let login = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default();
    nick_from(&login)
}

/// A valid nick made from `name`: characters a nick cannot have become
/// `_`, a leading digit or `-` gets a `_` before it, at most 30 bytes;
/// `trident` if nothing is left.
pub fn nick_from(name: &str) -> String {
    const SPECIAL: &str = "[]\\`_^{|}";
    let mut nick = String::new();
    for c in name.chars() {
        let ok = c.is_ascii_alphanumeric() || c == '-' || SPECIAL.contains(c);
        let c = if ok { c } else { '_' };
        if nick.is_empty() && (c.is_ascii_digit() || c == '-') {
            nick.push('_');
        }
        if nick.len() == 30 {
            break;
        }
        nick.push(c);
    }
    if nick.trim_matches('_').is_empty() { "trident".to_owned() } else { nick }
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
/// A number that differs between calls (PING tokens).
fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
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
    fn default_nicks_are_valid() {
        for (login, want) in [
            ("alice", "alice"),
            ("john.doe", "john_doe"),
            ("1up", "_1up"),
            ("-x", "_-x"),
            ("", "trident"),
            ("...", "trident"),
            ("émile", "_mile"),
            ("a[b]c", "a[b]c"),
        ] {
            assert_eq!(nick_from(login), want, "{login:?}");
        }
        let long = nick_from(&"x".repeat(100));
        assert_eq!(long.len(), 30);
        for login in ["", "root", "1", "-", "a b", "ü", &"9".repeat(40), "x\u{0}y"] {
            assert!(valid_nick(&nick_from(login)), "{login:?} -> {:?}", nick_from(login));
        }
        assert!(valid_nick(&default_nick()));
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
