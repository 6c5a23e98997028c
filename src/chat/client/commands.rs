//! What the interactive client does with a typed line: slash commands
//! become IRC lines, plain text goes to the current channel.

use super::display::{note, say};
use super::interactive::Interactive;
use super::{CONNECT_HELP, channel_name, max_text, non_empty, split_text};
use crate::chat::message::Message;

impl Interactive<'_> {
    pub(super) fn command(&mut self, line: &str) {
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
            other => match request(other, rest, self.current.as_deref()) {
                Some(Ok(lines)) => {
                    for line in lines {
                        self.send_raw(&line);
                    }
                }
                Some(Err(usage)) => note(usage),
                None => note(&format!("Unknown command /{other} (try /help)")),
            },
        }
    }

    pub(super) fn say_to_current(&mut self, text: &str) {
        if self.live.is_none() {
            return note("Not connected: not sent");
        }
        match self.current.clone() {
            Some(chan) => self.privmsg(&chan, text, false),
            None => note("Not in a channel: /join #room first, or /msg NICK text"),
        }
    }

    /// Sends (split if long) and echoes a message.
    pub(super) fn privmsg(&mut self, target: &str, text: &str, action: bool) {
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
}

/// Whether `word` names a channel rather than a nick.
fn is_channel(word: &str) -> bool {
    word.starts_with(['#', '&'])
}

/// The lines for the commands that only ask the server something or
/// change a state it keeps (`/whois`, `/away`, `/kick`, `/mode`...): what
/// they show comes back as replies. `command` is lowercase, `rest` what
/// follows it, `current` the current channel (the default target). None
/// if `command` is not one of these; Err with the usage if it is misused.
pub(super) fn request(command: &str, rest: &str, current: Option<&str>) -> Option<Result<Vec<String>, &'static str>> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    // A leading #channel, or the current channel, and the words after it.
    let (chan, args) = match words.first() {
        Some(w) if is_channel(w) => (Some(*w), &words[1..]),
        _ => (current, &words[..]),
    };
    let line = |m: Message<'_>| Ok(vec![m.to_line()]);
    let result = match command {
        "list" => match words.first() {
            Some(mask) => line(Message::new("LIST").param(mask)),
            None => line(Message::new("LIST")),
        },
        "whois" | "wi" => match words.first() {
            Some(nick) => line(Message::new("WHOIS").param(nick)),
            None => Err("Usage: /whois NICK"),
        },
        "whowas" => match words.first() {
            Some(nick) => line(Message::new("WHOWAS").param(nick)),
            None => Err("Usage: /whowas NICK"),
        },
        "away" if rest.is_empty() => line(Message::new("AWAY")),
        "away" => line(Message::new("AWAY").trailing(rest)),
        "back" => line(Message::new("AWAY")),
        "invite" => match (words.first(), words.get(1).copied().or(current)) {
            (Some(nick), Some(chan)) if !is_channel(nick) => line(Message::new("INVITE").param(nick).param(chan)),
            _ => Err("Usage: /invite NICK [#room]"),
        },
        "kick" => match (chan, args.first()) {
            (Some(chan), Some(nick)) => {
                let reason = args[1..].join(" ");
                let m = Message::new("KICK").param(chan).param(nick);
                if reason.is_empty() { line(m) } else { line(m.trailing(&reason)) }
            }
            _ => Err("Usage: /kick [#room] NICK [reason]"),
        },
        "mode" => match words.first() {
            // `/mode +i` or `/mode -o bob`: the current channel's modes,
            // except that user modes on oneself name the nick.
            Some(w) if !w.starts_with(['+', '-']) || chan.is_some() => {
                let target = if w.starts_with(['+', '-']) { chan.unwrap_or_default() } else { w };
                let skip = usize::from(!w.starts_with(['+', '-']));
                let mut m = Message::new("MODE").param(target);
                for a in &words[skip..] {
                    m = m.param(a);
                }
                line(m)
            }
            None if chan.is_some() => line(Message::new("MODE").param(chan.unwrap_or_default())),
            _ => Err("Usage: /mode [#room|NICK] [+-modes [args]]"),
        },
        "op" | "deop" | "voice" | "devoice" => {
            let sign = if command.starts_with("de") { '-' } else { '+' };
            let letter = if command.ends_with("op") { 'o' } else { 'v' };
            match chan {
                Some(chan) if !args.is_empty() => {
                    // Three changes a line, as servers commonly allow (MODES=3).
                    let lines = args
                        .chunks(3)
                        .map(|nicks| {
                            let flags = format!("{sign}{}", letter.to_string().repeat(nicks.len()));
                            let mut m = Message::new("MODE").param(chan).param(&flags);
                            for n in nicks {
                                m = m.param(n);
                            }
                            m.to_line()
                        })
                        .collect();
                    Ok(lines)
                }
                _ => Err("Usage: /op|/deop|/voice|/devoice [#room] NICK..."),
            }
        }
        _ => return None,
    };
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(command: &str, rest: &str) -> Result<Vec<String>, &'static str> {
        request(command, rest, Some("#here")).expect("a known command")
    }

    #[test]
    fn requests_send_the_right_lines() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("list", "", &["LIST"]),
            ("list", "#r*", &["LIST #r*"]),
            ("whois", "bob", &["WHOIS bob"]),
            ("whowas", "bob", &["WHOWAS bob"]),
            ("away", "out to lunch", &["AWAY :out to lunch"]),
            ("away", "", &["AWAY"]),
            ("back", "", &["AWAY"]),
            ("invite", "bob", &["INVITE bob #here"]),
            ("invite", "bob #there", &["INVITE bob #there"]),
            ("kick", "bob", &["KICK #here bob"]),
            ("kick", "bob go away", &["KICK #here bob :go away"]),
            ("kick", "#there bob spam", &["KICK #there bob :spam"]),
            ("mode", "", &["MODE #here"]),
            ("mode", "+nt", &["MODE #here +nt"]),
            ("mode", "#there +l 10", &["MODE #there +l 10"]),
            ("mode", "#there +b", &["MODE #there +b"]),
            ("mode", "me +i", &["MODE me +i"]),
            ("op", "bob", &["MODE #here +o bob"]),
            ("deop", "#there bob", &["MODE #there -o bob"]),
            ("voice", "a b c d", &["MODE #here +vvv a b c", "MODE #here +v d"]),
            ("devoice", "a", &["MODE #here -v a"]),
        ];
        for (command, rest, want) in cases {
            assert_eq!(lines(command, rest), Ok(want.iter().map(|l| (*l).to_owned()).collect()), "/{command} {rest}");
        }
        assert_eq!(request("nosuch", "", None), None);
    }

    #[test]
    fn misuse_gives_the_usage() {
        for (command, rest) in [("whois", ""), ("kick", ""), ("invite", ""), ("invite", "#room"), ("op", "")] {
            assert!(lines(command, rest).is_err(), "/{command} {rest}");
        }
        // Without a current channel, the channel must be named.
        for (command, rest) in [("kick", "bob"), ("op", "bob"), ("mode", ""), ("mode", "+m"), ("invite", "bob")] {
            assert!(request(command, rest, None).expect("known").is_err(), "/{command} {rest}");
        }
    }
}
