//! Registration, sans-IO: the lines a client sends to be welcomed and
//! what it answers to each server line until then. Both modes of
//! `chat connect` and the load generator's clients use it.

use super::{MAX_NICK_RETRIES, USERNAME, describe_numeric, numeric};
use crate::chat::message::Message;
use crate::output::{Escapes, escaped};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
