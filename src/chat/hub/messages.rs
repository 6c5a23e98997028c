//! PRIVMSG and NOTICE: relaying text to channels (under `+n`, `+m` and
//! bans) and nicks (301 if away).

use super::mask;
use super::state::{Channel, Client, Status};
use super::{ClientId, Hub, MAXTARGETS, Message, Outbox, finish};
use crate::chat::names::fold;
use crate::chat::store::{Conversation, HistoryRecord, Kind};

impl Hub {
    pub(super) fn message(&mut self, id: ClientId, command: &str, p: &[&str], out: &mut Outbox) {
        let notice = command == "NOTICE";
        // No automatic reply to a NOTICE, errors included (RFC 1459).
        let error = |code: &str, middle: &[&str], text: &str, out: &mut Outbox| {
            if !notice {
                self.numeric(id, code, middle, text, out);
            }
        };
        let Some(targets) = p.first().filter(|t| !t.is_empty()) else {
            return error("411", &[], &format!("No recipient given ({command})"), out);
        };
        let Some(text) = p.get(1).filter(|t| !t.is_empty()) else {
            return error("412", &[], "No text to send", out);
        };
        let Some(sender) = self.client(id) else { return };
        for (i, target) in targets.split(',').filter(|t| !t.is_empty()).enumerate() {
            if i == MAXTARGETS {
                error("407", &[target], "Too many recipients", out);
                break;
            }
            if target.starts_with('#') {
                let key = fold(target);
                let Some(channel) = self.channels.get(&key) else {
                    error("403", &[target], "No such channel", out);
                    continue;
                };
                if !may_speak(channel, id, sender.channels.contains(&key), &sender.prefix) {
                    error("404", &[&channel.name], "Cannot send to channel", out);
                    continue;
                }
                let line =
                    finish(Message::new(command).prefix(&sender.prefix).param(&channel.name).trailing(text).to_line());
                for &member in channel.members.iter().filter(|&&m| m != id) {
                    out.send(member, &line);
                }
                if self.config.history {
                    out.history.push(record(command, sender, &channel.name, Conversation::channel(&key), text));
                }
            } else {
                let recipient = self.nicks.get(&fold(target)).copied().filter(|&r| self.registered(r));
                let Some(recipient) = recipient else {
                    error("401", &[target], "No such nick/channel", out);
                    continue;
                };
                let Some(to) = self.client(recipient) else { continue };
                let nick = to.target();
                let line = finish(Message::new(command).prefix(&sender.prefix).param(nick).trailing(text).to_line());
                out.send(recipient, &line);
                if self.config.history {
                    let convo = Conversation::direct(sender.target(), nick);
                    out.history.push(record(command, sender, nick, convo, text));
                }
                if let Some(away) = to.away() {
                    error("301", &[nick], away, out);
                }
            }
        }
        let now = self.now;
        if let Some(client) = self.client_mut(id) {
            client.last_spoke = now;
        }
    }
}

/// Whether a client may send to `channel`: members unless the channel is
/// moderated (`+m`: operators and voiced members only) or they are banned
/// (`+b`, unless operator or voiced); non-members only if it is not `+n`
/// and they are not banned.
fn may_speak(channel: &Channel, id: ClientId, member: bool, prefix: &str) -> bool {
    let status = if member { channel.status(id) } else { Status::default() };
    if status.op || status.voice {
        return true;
    }
    if channel.modes.moderated || (!member && channel.modes.no_external) {
        return false;
    }
    !mask::any_matches(channel.bans.iter().map(|b| b.mask.as_str()), prefix)
}

/// What the history keeps of `sender`'s `command` to `target`.
fn record(command: &str, sender: &Client, target: &str, convo: Conversation, text: &str) -> HistoryRecord {
    HistoryRecord {
        kind: if command == "NOTICE" { Kind::Notice } else { Kind::Privmsg },
        sender: sender.prefix.clone(),
        target: target.to_string(),
        convo,
        text: text.to_string(),
        account: None,
    }
}
