//! PRIVMSG and NOTICE: relaying text to channels and nicks.

use super::{ClientId, Hub, MAXTARGETS, Message, Outbox, finish};
use crate::chat::names::fold;

impl Hub {
    pub(super) fn message(&self, id: ClientId, command: &str, p: &[&str], out: &mut Outbox) {
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
                if !sender.channels.contains(&key) {
                    error("404", &[&channel.name], "Cannot send to channel", out);
                    continue;
                }
                let line =
                    finish(Message::new(command).prefix(&sender.prefix).param(&channel.name).trailing(text).to_line());
                for &member in channel.members.iter().filter(|&&m| m != id) {
                    out.send(member, &line);
                }
            } else {
                let recipient = self.nicks.get(&fold(target)).copied().filter(|&r| self.registered(r));
                let Some(recipient) = recipient else {
                    error("401", &[target], "No such nick/channel", out);
                    continue;
                };
                let nick = self.target(recipient);
                let line = finish(Message::new(command).prefix(&sender.prefix).param(nick).trailing(text).to_line());
                out.send(recipient, &line);
            }
        }
    }
}
