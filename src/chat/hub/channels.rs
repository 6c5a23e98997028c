//! Channel membership and channel state: JOIN, PART, TOPIC and MODE.

use super::state::{Channel, Topic};
use super::{ClientId, Hub, Message, Outbox, TOPICLEN, Timestamp, finish, truncate};
use crate::chat::names::{fold, valid_channel};

impl Hub {
    pub(super) fn join(&mut self, id: ClientId, p: &[&str], now: Timestamp, out: &mut Outbox) {
        let Some(list) = p.first() else {
            return self.numeric(id, "461", &["JOIN"], "Not enough parameters", out);
        };
        if *list == "0" {
            let keys = self.client(id).map(|c| c.channels.clone()).unwrap_or_default();
            for key in keys {
                let Some(name) = self.channels.get(&key).map(|c| c.name.clone()) else { continue };
                self.part_one(id, &name, None, out);
            }
            return;
        }
        for name in list.split(',').filter(|n| !n.is_empty()) {
            if !valid_channel(name) {
                self.numeric(id, "403", &[name], "No such channel", out);
                continue;
            }
            let key = fold(name);
            let Some(client) = self.client(id) else { return };
            if client.channels.contains(&key) {
                continue;
            }
            if client.channels.len() >= self.config.max_channels {
                self.numeric(id, "405", &[name], "You have joined too many channels", out);
                continue;
            }
            let prefix = client.prefix.clone();
            let channel = self.channels.entry(key.clone()).or_insert_with(|| Channel {
                name: name.to_owned(),
                created: now,
                topic: None,
                members: Vec::new(),
            });
            channel.members.push(id);
            let line = finish(Message::new("JOIN").prefix(&prefix).param(&channel.name).to_line());
            for &member in &channel.members {
                out.send(member, &line);
            }
            if let Some(client) = self.client_mut(id) {
                client.channels.push(key.clone());
            }
            if let Some(channel) = self.channels.get(&key)
                && let Some(topic) = &channel.topic
            {
                self.numeric(id, "332", &[&channel.name], &topic.text, out);
                self.topic_who_time(id, channel, topic, out);
            }
            self.names(id, name, out);
        }
    }

    pub(super) fn topic_who_time(&self, id: ClientId, channel: &Channel, topic: &Topic, out: &mut Outbox) {
        let time = topic.time.to_string();
        self.numeric_plain(id, "333", &[&channel.name, &topic.setter, &time], out);
    }

    pub(super) fn part(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let Some(list) = p.first() else {
            return self.numeric(id, "461", &["PART"], "Not enough parameters", out);
        };
        let reason = p.get(1).copied().filter(|r| !r.is_empty());
        for name in list.split(',').filter(|n| !n.is_empty()) {
            self.part_one(id, name, reason, out);
        }
    }

    pub(super) fn part_one(&mut self, id: ClientId, name: &str, reason: Option<&str>, out: &mut Outbox) {
        let key = fold(name);
        let Some(channel) = self.channels.get(&key) else {
            return self.numeric(id, "403", &[name], "No such channel", out);
        };
        let Some(client) = self.client(id) else { return };
        let Some(position) = client.channels.iter().position(|k| *k == key) else {
            return self.numeric(id, "442", &[name], "You're not on that channel", out);
        };
        let mut message = Message::new("PART").prefix(&client.prefix).param(&channel.name);
        if let Some(reason) = reason {
            message = message.trailing(reason);
        }
        let line = finish(message.to_line());
        for &member in &channel.members {
            out.send(member, &line);
        }
        if let Some(client) = self.client_mut(id) {
            client.channels.remove(position);
        }
        self.leave(&key, id);
    }

    pub(super) fn topic(&mut self, id: ClientId, p: &[&str], now: Timestamp, out: &mut Outbox) {
        let Some(&name) = p.first() else {
            return self.numeric(id, "461", &["TOPIC"], "Not enough parameters", out);
        };
        let key = fold(name);
        let Some(channel) = self.channels.get(&key) else {
            return self.numeric(id, "403", &[name], "No such channel", out);
        };
        let Some(&text) = p.get(1) else {
            return match &channel.topic {
                Some(topic) => {
                    self.numeric(id, "332", &[&channel.name], &topic.text, out);
                    self.topic_who_time(id, channel, topic, out);
                }
                None => self.numeric(id, "331", &[&channel.name], "No topic is set", out),
            };
        };
        let Some(client) = self.client(id) else { return };
        if !client.channels.contains(&key) {
            return self.numeric(id, "442", &[&channel.name], "You're not on that channel", out);
        }
        let mut text = text.to_owned();
        truncate(&mut text, TOPICLEN);
        let line = finish(Message::new("TOPIC").prefix(&client.prefix).param(&channel.name).trailing(&text).to_line());
        for &member in &channel.members {
            out.send(member, &line);
        }
        let setter = client.prefix.clone();
        let Some(channel) = self.channels.get_mut(&key) else { return };
        channel.topic = (!text.is_empty()).then_some(Topic { text, setter, time: now });
    }

    /// Just enough MODE for clients that ask on connect and join: channels
    /// are `+n` (members only may speak) and have no operators; the one
    /// user mode is `i`, recorded and not used.
    pub(super) fn mode(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let Some(&target) = p.first() else {
            return self.numeric(id, "461", &["MODE"], "Not enough parameters", out);
        };
        if target.starts_with('#') {
            let Some(channel) = self.channels.get(&fold(target)) else {
                return self.numeric(id, "403", &[target], "No such channel", out);
            };
            match p.get(1).map(|m| m.trim_start_matches('+')) {
                None => {
                    self.numeric_plain(id, "324", &[&channel.name, "+n"], out);
                    let created = channel.created.to_string();
                    self.numeric_plain(id, "329", &[&channel.name, &created], out);
                }
                Some("b") => self.numeric(id, "368", &[&channel.name], "End of channel ban list", out),
                Some(_) => self.numeric(id, "482", &[&channel.name], "You're not channel operator", out),
            }
            return;
        }
        let Some(&owner) = self.nicks.get(&fold(target)).filter(|&&o| self.registered(o)) else {
            return self.numeric(id, "401", &[target], "No such nick/channel", out);
        };
        if owner != id {
            return self.numeric(id, "502", &[], "Can't change mode for other users", out);
        }
        match p.get(1).copied() {
            None => {}
            Some(change @ ("+i" | "-i")) => {
                let Some(client) = self.client_mut(id) else { return };
                if client.invisible != (change == "+i") {
                    client.invisible = change == "+i";
                    let nick = client.target();
                    out.send(id, &finish(Message::new("MODE").prefix(nick).param(nick).trailing(change).to_line()));
                }
                return;
            }
            Some(_) => return self.numeric(id, "501", &[], "Unknown MODE flag", out),
        }
        let modes = if self.client(id).is_some_and(|c| c.invisible) { "+i" } else { "+" };
        self.numeric_plain(id, "221", &[modes], out);
    }
}
