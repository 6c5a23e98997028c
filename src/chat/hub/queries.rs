//! Read-only queries about channels: NAMES, WHO and LIST. A non-member
//! sees nothing of a secret (`+s`) channel and only the members who are
//! not invisible (`+i`) of another.

use super::state::Channel;
use super::{ClientId, Hub, Message, Outbox, finish};
use crate::chat::line::MAX_LINE;
use crate::chat::names::fold;

impl Hub {
    /// 353 lines (as many as needed to stay within 512 bytes) and 366.
    pub(super) fn names(&self, id: ClientId, name: &str, out: &mut Outbox) {
        if let Some(channel) = self.channels.get(&fold(name)).filter(|c| self.sees_channel(id, c)) {
            let server = &self.config.server_name;
            let Some(client) = self.client(id) else { return };
            let target = client.target();
            let kind = if channel.modes.secret { '@' } else { '=' };
            let head = format!(":{server} 353 {target} {kind} {} :", channel.name);
            let mut line = head.clone();
            let inside = channel.members.contains(&id);
            for &member in channel.members.iter().filter(|&&m| inside || self.visible(m)) {
                let prefixes = channel.status(member).prefixes(client.multi_prefix);
                let nick = self.target(member);
                if line.len() > head.len() && line.len() + 1 + prefixes.len() + nick.len() > MAX_LINE - 2 {
                    out.send(id, &finish(std::mem::replace(&mut line, head.clone())));
                }
                if line.len() > head.len() {
                    line.push(' ');
                }
                line.push_str(prefixes);
                line.push_str(nick);
            }
            out.send(id, &finish(line));
            self.numeric(id, "366", &[&channel.name], "End of /NAMES list", out);
        } else {
            self.numeric(id, "366", &[name], "End of /NAMES list", out);
        }
    }

    pub(super) fn who(&self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let mask = p.first().copied().unwrap_or("*");
        let server = &self.config.server_name;
        let multi_prefix = self.client(id).is_some_and(|c| c.multi_prefix);
        let reply = |channel: Option<&Channel>, member: ClientId, out: &mut Outbox| {
            let Some(c) = self.client(member) else { return };
            let (user, realname) = c.user.as_ref().map_or(("", ""), |(u, r)| (u.as_str(), r.as_str()));
            let mut flags = String::from(if c.away().is_some() { "G" } else { "H" });
            if c.oper {
                flags.push('*');
            }
            flags.push_str(channel.map_or("", |ch| ch.status(member).prefixes(multi_prefix)));
            let message =
                Message::new("352").prefix(server).param(self.target(id)).param(channel.map_or("*", |ch| &ch.name));
            let message = message.param(user).param(&c.host).param(server).param(c.target()).param(&flags);
            out.send(id, &finish(message.trailing(&format!("0 {realname}")).to_line()));
        };
        if mask.starts_with('#') {
            if let Some(channel) = self.channels.get(&fold(mask)).filter(|c| self.sees_channel(id, c)) {
                let inside = channel.members.contains(&id);
                for &member in channel.members.iter().filter(|&&m| inside || self.visible(m)) {
                    reply(Some(channel), member, out);
                }
            }
        } else if let Some(&member) = self.nicks.get(&fold(mask)) {
            if self.registered(member) {
                reply(None, member, out);
            }
        }
        self.numeric(id, "315", &[mask], "End of WHO list", out);
    }

    pub(super) fn list(&self, id: ClientId, p: &[&str], out: &mut Outbox) {
        self.numeric(id, "321", &["Channel"], "Users  Name", out);
        let reply = |channel: &Channel, out: &mut Outbox| {
            let count = channel.members.len().to_string();
            let topic = channel.topic.as_ref().map_or("", |t| t.text.as_str());
            self.numeric(id, "322", &[&channel.name, &count], topic, out);
        };
        match p.first() {
            Some(list) => {
                for name in list.split(',').filter(|n| !n.is_empty()) {
                    if let Some(channel) = self.channels.get(&fold(name)).filter(|c| self.sees_channel(id, c)) {
                        reply(channel, out);
                    }
                }
            }
            None => self.channels.values().filter(|c| self.sees_channel(id, c)).for_each(|c| reply(c, out)),
        }
        self.numeric(id, "323", &[], "End of /LIST", out);
    }

    /// Whether `id` may see `channel` at all: it is not secret, or `id` is
    /// a member.
    pub(super) fn sees_channel(&self, id: ClientId, channel: &Channel) -> bool {
        !channel.modes.secret || channel.members.contains(&id)
    }

    /// Whether `member` shows in NAMES and WHO of a channel to those
    /// outside it: it is not invisible (`+i`).
    fn visible(&self, member: ClientId) -> bool {
        !self.client(member).is_some_and(|c| c.invisible)
    }
}
