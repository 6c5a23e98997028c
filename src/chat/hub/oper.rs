//! Server operators: the operator list (`chat serve --opers FILE`: one
//! `NAME ARGON2ID-HASH` per line), `OPER name password` and `KILL`.
//!
//! A password check is an argon2 verification, deliberately slow, and the
//! hub serves everyone from one thread of control: so a client waits
//! [`OPER_RETRY`] seconds after a failed attempt (263 meanwhile), and the
//! hub checks at most [`OPER_PER_SECOND`] passwords a second in all.

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use serde::{Deserialize, Serialize};

use super::{ClientId, Hub, Message, OPER_PER_SECOND, OPER_RETRY, Outbox, TOPICLEN, Timestamp, finish, truncate};
use crate::chat::names::fold;

/// One server operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperConfig {
    /// The name given to OPER (compared exactly).
    pub name: String,
    /// An argon2id PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    pub hash: String,
}

/// The operator list: one `NAME HASH` per line; blank lines and lines
/// starting with `#` are skipped. Each hash must be an argon2id PHC
/// string. Errors name the line.
pub fn parse_opers(text: &str) -> Result<Vec<OperConfig>, String> {
    let mut opers: Vec<OperConfig> = Vec::new();
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(hash), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("line {n}: expected NAME ARGON2ID-HASH"));
        };
        match PasswordHash::new(hash) {
            Ok(parsed) if parsed.algorithm.as_str() == "argon2id" => {}
            Ok(_) => return Err(format!("line {n}: the hash of {name} is not argon2id")),
            Err(e) => return Err(format!("line {n}: the hash of {name} is not a PHC string ({e})")),
        }
        if opers.iter().any(|o| o.name == name) {
            return Err(format!("line {n}: {name} is listed twice"));
        }
        opers.push(OperConfig { name: name.to_owned(), hash: hash.to_owned() });
    }
    Ok(opers)
}

impl Hub {
    /// `OPER name password`: 381 and user mode `+o`, or 464.
    pub(super) fn oper(&mut self, id: ClientId, p: &[&str], now: Timestamp, out: &mut Outbox) {
        let [name, password, ..] = p else {
            return self.numeric(id, "461", &["OPER"], "Not enough parameters", out);
        };
        let Some(client) = self.client(id) else { return };
        if client.oper {
            return self.numeric(id, "381", &[], "You are now an IRC operator", out);
        }
        let not_before = client.oper_not_before();
        if self.oper_budget.0 != now {
            self.oper_budget = (now, 0);
        }
        if now < not_before || self.oper_budget.1 >= OPER_PER_SECOND {
            return self.numeric(id, "263", &["OPER"], "Please wait a while and try again.", out);
        }
        self.oper_budget.1 += 1;
        let entry = self.config.opers.iter().find(|o| o.name == *name);
        let verified =
            entry.is_some_and(|o| Argon2::default().verify_password(password.as_bytes(), o.hash.as_str()).is_ok());
        let Some(client) = self.client_mut(id) else { return };
        if !verified {
            client.rare_mut().oper_not_before = now + OPER_RETRY;
            return self.numeric(id, "464", &[], "Password incorrect", out);
        }
        client.oper = true;
        let nick = client.target().to_owned();
        self.numeric(id, "381", &[], "You are now an IRC operator", out);
        out.send(id, &finish(Message::new("MODE").prefix(&nick).param(&nick).trailing("+o").to_line()));
    }

    /// `KILL nick [:reason]`, by a server operator: the nick is closed
    /// with `Killed (oper (reason))`.
    pub(super) fn kill(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let Some(killer) = self.client(id) else { return };
        if !killer.oper {
            return self.numeric(id, "481", &[], "Permission Denied- You're not an IRC operator", out);
        }
        let Some(&nick) = p.first().filter(|n| !n.is_empty()) else {
            return self.numeric(id, "461", &["KILL"], "Not enough parameters", out);
        };
        let Some(&target) = self.nicks.get(&fold(nick)).filter(|&&t| self.registered(t)) else {
            return self.numeric(id, "401", &[nick], "No such nick/channel", out);
        };
        let killer_nick = killer.target();
        let mut reason = p.get(1).filter(|r| !r.is_empty()).map_or(killer_nick, |r| r).to_owned();
        truncate(&mut reason, TOPICLEN);
        let reason = format!("Killed ({killer_nick} ({reason}))");
        self.close(target, &reason, out);
    }
}
