//! How the interactive client shows what the server sends: one
//! `[HH:MM] ...` line per event, control characters escaped.

use std::io::{self, Write};

use super::interactive::Interactive;
use super::numerics::numeric_text;
use super::{hhmm, numeric, pong, prefix_nick};
use crate::chat::message::Message;
use crate::output::{Escapes, escaped};

/// Prints `[HH:MM] text` on stdout (ignoring a closed stdout), its
/// control characters shown escaped ([`visible`]): what other users send
/// must not drive the terminal.
pub(super) fn say(text: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "[{}] {}", hhmm(), escaped(text, Escapes::Caret));
    let _ = out.flush();
}

/// A `-!-` notice.
pub(super) fn note(text: &str) {
    say(&format!("-!- {text}"));
}

impl Interactive<'_> {
    /// Shows one server message.
    pub(super) fn show(&mut self, m: &Message<'_>) {
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
            "MODE" => {
                let by = if who.is_empty() { "the server" } else { &who };
                note(&format!("mode {} by {by}", p.join(" ")));
            }
            "INVITE" => note(&format!("{who} invites you to {}", arg(1))),
            // away-notify: another member went away or came back.
            "AWAY" if p.is_empty() || arg(0).is_empty() => note(&format!("{who} is back")),
            "AWAY" => note(&format!("{who} is away: {}", arg(0))),
            _ => note(&format!("{} {}", m.command, p.join(" "))),
        }
    }

    pub(super) fn show_message(&mut self, who: &str, target: &str, text: &str, notice: bool) {
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
                    "VERSION" => Some(format!("VERSION {}", crate::chat::hub::VERSION)),
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

    /// Shows a numeric reply, after what it changes: a failed join
    /// forgets the channel, a refused nick keeps the current one.
    pub(super) fn show_numeric(&mut self, code: u16, m: &Message<'_>) {
        let arg = |i: usize| m.params.get(i).copied().unwrap_or("");
        match code {
            1 => {
                if let Some(first) = m.params.first() {
                    self.nick = (*first).to_owned();
                }
            }
            403 | 405 | 437 | 471 | 473 | 474 | 475 | 476 | 477 if arg(1).starts_with('#') => {
                let chan = arg(1).to_owned();
                self.remove_channel(&chan);
            }
            432 | 433 | 436 => self.wanted = self.nick.clone(),
            _ => {}
        }
        if let Some(text) = numeric_text(code, m) {
            note(&text);
        }
    }
}
