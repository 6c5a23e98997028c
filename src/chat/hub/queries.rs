//! Read-only queries about channels and users: NAMES, WHO and LIST.

use super::state::Channel;
use super::{ClientId, Hub, Message, Outbox, finish};
use crate::chat::line::MAX_LINE;
use crate::chat::names::fold;

impl Hub {
    /// 353 lines (as many as needed to stay within 512 bytes) and 366.
    pub(super) fn names(&self, id: ClientId, name: &str, out: &mut Outbox) {
        if let Some(channel) = self.channels.get(&fold(name)) {
            let server = &self.config.server_name;
            let Some(client) = self.client(id) else { return };
            let target = client.target();
            let head = format!(":{server} 353 {target} = {} :", channel.name);
            let mut line = head.clone();
            for &member in &channel.members {
                let nick = self.target(member);
                if line.len() > head.len() && line.len() + 1 + nick.len() > MAX_LINE - 2 {
                    out.send(id, &finish(std::mem::replace(&mut line, head.clone())));
                }
                if line.len() > head.len() {
                    line.push(' ');
                }
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
        let reply = |channel: &str, member: ClientId, out: &mut Outbox| {
            let Some(c) = self.client(member) else { return };
            let (user, realname) = c.user.as_ref().map_or(("", ""), |(u, r)| (u.as_str(), r.as_str()));
            let message = Message::new("352").prefix(server).param(self.target(id)).param(channel);
            let message = message.param(user).param(&c.host).param(server).param(c.target()).param("H");
            out.send(id, &finish(message.trailing(&format!("0 {realname}")).to_line()));
        };
        if mask.starts_with('#') {
            if let Some(channel) = self.channels.get(&fold(mask)) {
                for &member in &channel.members {
                    reply(&channel.name, member, out);
                }
            }
        } else if let Some(&member) = self.nicks.get(&fold(mask)) {
            if self.registered(member) {
                reply("*", member, out);
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
                    if let Some(channel) = self.channels.get(&fold(name)) {
                        reply(channel, out);
                    }
                }
            }
            None => self.channels.values().for_each(|channel| reply(channel, out)),
        }
        self.numeric(id, "323", &[], "End of /LIST", out);
    }
}
