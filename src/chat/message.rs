//! IRC messages: `[@tags] [:prefix] COMMAND [params...] [:trailing]`.
//!
//! [`Message`] borrows from the line it was parsed from (no allocation but
//! the parameter list). IRCv3 tags are skipped: this server negotiates no
//! capability, so clients should not send them, and those that do are not
//! penalised. A client's own prefix is parsed and then ignored by the hub.

use std::fmt;

/// At most this many parameters (RFC 1459): the 15th takes the rest of the
/// line, spaces included, even without a `:`.
pub const MAX_PARAMS: usize = 15;

/// Why a line is not a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing but tags, a prefix or spaces.
    NoCommand,
}

/// One parsed (or to be serialised) IRC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The source, without its `:`.
    pub prefix: Option<&'a str>,
    /// The command or three-digit numeric, as written (the hub compares it
    /// case-insensitively).
    pub command: &'a str,
    /// The parameters, the trailing one last, without its `:`.
    pub params: Vec<&'a str>,
    /// Whether the last parameter was (is to be) written after a `:`; when
    /// serialising, a last parameter that needs one gets it anyway.
    pub trailing: bool,
}

impl<'a> Message<'a> {
    /// A message without prefix or parameters.
    pub fn new(command: &'a str) -> Self {
        Message { prefix: None, command, params: Vec::new(), trailing: false }
    }

    /// Parses one line (without its terminator).
    pub fn parse(line: &'a str) -> Result<Message<'a>, ParseError> {
        let mut rest = line.trim_start_matches(' ');
        if rest.starts_with('@') {
            rest = rest.split_once(' ').map_or("", |(_, after)| after).trim_start_matches(' ');
        }
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (p, after) = after.split_once(' ').unwrap_or((after, ""));
            prefix = Some(p);
            rest = after.trim_start_matches(' ');
        }
        let (command, after) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return Err(ParseError::NoCommand);
        }
        rest = after;
        let mut params = Vec::new();
        let mut trailing = false;
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(text) = rest.strip_prefix(':') {
                params.push(text);
                trailing = true;
                break;
            }
            if params.len() == MAX_PARAMS - 1 {
                params.push(rest);
                break;
            }
            let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(param);
            rest = after;
        }
        Ok(Message { prefix, command, params, trailing })
    }

    /// Sets the prefix.
    pub fn prefix(mut self, prefix: &'a str) -> Self {
        self.prefix = Some(prefix);
        self
    }

    /// Appends a middle parameter (no space, not empty, no leading `:`).
    pub fn param(mut self, param: &'a str) -> Self {
        debug_assert!(self.params.len() < MAX_PARAMS && !self.trailing);
        self.params.push(param);
        self
    }

    /// Appends the trailing parameter, always written after a `:`.
    pub fn trailing(mut self, text: &'a str) -> Self {
        debug_assert!(self.params.len() < MAX_PARAMS && !self.trailing);
        self.params.push(text);
        self.trailing = true;
        self
    }

    /// Appends the wire form to `out`, without a terminator.
    pub fn write(&self, out: &mut String) {
        if let Some(prefix) = self.prefix {
            out.push(':');
            out.push_str(prefix);
            out.push(' ');
        }
        out.push_str(self.command);
        if let Some((last, middle)) = self.params.split_last() {
            for param in middle {
                debug_assert!(!needs_colon(param), "middle parameter {param:?}");
                out.push(' ');
                out.push_str(param);
            }
            out.push(' ');
            if self.trailing || needs_colon(last) {
                out.push(':');
            }
            out.push_str(last);
        }
    }

    /// The wire form, without a terminator.
    pub fn to_line(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}

/// Whether a last parameter must be written after a `:`.
fn needs_colon(param: &str) -> bool {
    param.is_empty() || param.starts_with(':') || param.contains(' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        /// line, prefix, command, params, trailing
        type Case<'a> = (&'a str, Option<&'a str>, &'a str, &'a [&'a str], bool);
        let cases: &[Case<'_>] = &[
            ("NICK alice", None, "NICK", &["alice"], false),
            ("USER a 0 * :Alice Liddell", None, "USER", &["a", "0", "*", "Alice Liddell"], true),
            (":alice!a@h PRIVMSG #x :hi there", Some("alice!a@h"), "PRIVMSG", &["#x", "hi there"], true),
            ("@time=2024 :p PRIVMSG #x :hi", Some("p"), "PRIVMSG", &["#x", "hi"], true),
            ("@a=b;c PING tok", None, "PING", &["tok"], false),
            ("PRIVMSG  #x   hi  ", None, "PRIVMSG", &["#x", "hi"], false),
            ("PRIVMSG #x ::-) smile", None, "PRIVMSG", &["#x", ":-) smile"], true),
            ("TOPIC #x :", None, "TOPIC", &["#x", ""], true),
            ("JOIN #a,#b", None, "JOIN", &["#a,#b"], false),
            ("quit", None, "quit", &[], false),
            (
                "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
                None,
                "CMD",
                &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15 16"],
                false,
            ),
        ];
        for &(line, prefix, command, params, trailing) in cases {
            let m = Message::parse(line).unwrap();
            assert_eq!(m.prefix, prefix, "{line}");
            assert_eq!(m.command, command, "{line}");
            assert_eq!(m.params, params, "{line}");
            assert_eq!(m.trailing, trailing, "{line}");
        }
        for bad in ["", "   ", ":prefix", ":prefix   ", "@tags", "@tags :prefix"] {
            assert_eq!(Message::parse(bad), Err(ParseError::NoCommand), "{bad:?}");
        }
    }

    #[test]
    fn serialise_table() {
        let cases = [
            (Message::new("PING").trailing("irc.test"), "PING :irc.test"),
            (Message::new("JOIN").prefix("a!u@h").param("#x"), ":a!u@h JOIN #x"),
            (Message::new("NICK").prefix("a!u@h").param("b"), ":a!u@h NICK b"),
            (Message::new("PRIVMSG").param("#x").param("hi there"), "PRIVMSG #x :hi there"),
            (Message::new("PRIVMSG").param("#x").param(":)"), "PRIVMSG #x ::)"),
            (Message::new("CAP").param("*").param("LS").param(""), "CAP * LS :"),
            (Message::new("QUIT"), "QUIT"),
        ];
        for (message, want) in cases {
            assert_eq!(message.to_line(), want);
        }
    }

    #[test]
    fn round_trip() {
        for line in [
            ":a!u@h PRIVMSG #x :hi there",
            "USER a 0 * :Alice",
            ":srv 353 a = #x :a b c",
            "JOIN #x",
            "TOPIC #x :",
            "PRIVMSG #x ::)",
        ] {
            assert_eq!(Message::parse(line).unwrap().to_line(), line);
        }
    }
}
