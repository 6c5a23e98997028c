//! Channel membership: JOIN (with the checks of `+i`, `+b`, `+k`, `+l`),
//! PART, KICK, INVITE and TOPIC (`+t`). The first member of a new channel
//! is its operator.

use super::mask;
use super::state::{Channel, Topic};
use super::{ClientId, Hub, MAX_INVITES, Message, Outbox, TOPICLEN, Timestamp, finish, truncate};
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
        let mut keys = p.get(1).map_or("", |k| k).split(',');
        for name in list.split(',').filter(|n| !n.is_empty()) {
            let given_key = keys.next().filter(|k| !k.is_empty());
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
            if let Some(channel) = self.channels.get(&key) {
                let invited = client.invited().contains(&channel.serial);
                if let Some((code, mode)) = refusal(channel, &prefix, invited, given_key) {
                    let text = format!("Cannot join channel (+{mode})");
                    self.numeric(id, code, &[&channel.name], &text, out);
                    continue;
                }
                let serial = channel.serial;
                if let Some(client) = self.client_mut(id) {
                    if let Some(rare) = &mut client.rare {
                        rare.invited.retain(|&s| s != serial);
                    }
                }
            }
            let serial = &mut self.channel_serial;
            let channel = self.channels.entry(key.clone()).or_insert_with(|| {
                *serial += 1;
                Channel::new(name, *serial, now)
            });
            if channel.members.is_empty() {
                channel.set_status(id, false, true);
            }
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
            if !self.sees_channel(id, channel) {
                return self.numeric(id, "442", &[&channel.name], "You're not on that channel", out);
            }
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
        if channel.modes.topic_ops && !channel.is_op(id) {
            return self.numeric(id, "482", &[&channel.name], "You're not channel operator", out);
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

    /// `KICK #channel nick[,nick...] [:reason]`, by a channel operator.
    pub(super) fn kick(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let [name, nicks, ..] = p else {
            return self.numeric(id, "461", &["KICK"], "Not enough parameters", out);
        };
        let key = fold(name);
        let Some(channel) = self.channels.get(&key) else {
            return self.numeric(id, "403", &[name], "No such channel", out);
        };
        let Some(kicker) = self.client(id) else { return };
        if !kicker.channels.contains(&key) {
            return self.numeric(id, "442", &[&channel.name], "You're not on that channel", out);
        }
        if !channel.is_op(id) {
            return self.numeric(id, "482", &[&channel.name], "You're not channel operator", out);
        }
        let mut reason =
            p.get(2).filter(|r| !r.is_empty()).map_or_else(|| kicker.target().to_owned(), |r| (*r).to_owned());
        truncate(&mut reason, TOPICLEN);
        let kicker_prefix = kicker.prefix.clone();
        for nick in nicks.split(',').filter(|n| !n.is_empty()).take(super::MAXTARGETS) {
            let Some(channel) = self.channels.get(&key) else { return };
            let target = self.nicks.get(&fold(nick)).copied().filter(|&t| self.registered(t));
            let Some(target) = target else {
                self.numeric(id, "401", &[nick], "No such nick/channel", out);
                continue;
            };
            if !channel.members.contains(&target) {
                self.numeric(id, "441", &[nick, &channel.name], "They aren't on that channel", out);
                continue;
            }
            let line = finish(
                Message::new("KICK")
                    .prefix(&kicker_prefix)
                    .param(&channel.name)
                    .param(self.target(target))
                    .trailing(&reason)
                    .to_line(),
            );
            for &member in &channel.members {
                out.send(member, &line);
            }
            if let Some(client) = self.client_mut(target) {
                client.channels.retain(|k| *k != key);
            }
            self.leave(&key, target);
        }
    }

    /// `INVITE nick #channel`: by a member (an operator if the channel is
    /// `+i`); the invitation lets the nick past `+i`, `+b`, `+k` and `+l`
    /// once.
    pub(super) fn invite(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let [nick, name, ..] = p else {
            return self.numeric(id, "461", &["INVITE"], "Not enough parameters", out);
        };
        let target = self.nicks.get(&fold(nick)).copied().filter(|&t| self.registered(t));
        let Some(target) = target else {
            return self.numeric(id, "401", &[nick], "No such nick/channel", out);
        };
        let key = fold(name);
        let Some(channel) = self.channels.get(&key) else {
            return self.numeric(id, "403", &[name], "No such channel", out);
        };
        if !channel.members.contains(&id) {
            return self.numeric(id, "442", &[&channel.name], "You're not on that channel", out);
        }
        if channel.modes.invite_only && !channel.is_op(id) {
            return self.numeric(id, "482", &[&channel.name], "You're not channel operator", out);
        }
        let target_nick = self.target(target).to_owned();
        if channel.members.contains(&target) {
            return self.numeric(id, "443", &[&target_nick, &channel.name], "is already on channel", out);
        }
        let (channel_name, serial) = (channel.name.clone(), channel.serial);
        self.numeric_plain(id, "341", &[&target_nick, &channel_name], out);
        if let Some(away) = self.client(target).and_then(|c| c.away()) {
            self.numeric(id, "301", &[&target_nick], away, out);
        }
        let Some(inviter) = self.client(id) else { return };
        let line =
            finish(Message::new("INVITE").prefix(&inviter.prefix).param(&target_nick).param(&channel_name).to_line());
        out.send(target, &line);
        let Some(client) = self.client_mut(target) else { return };
        let invited = &mut client.rare_mut().invited;
        if !invited.contains(&serial) {
            if invited.len() >= MAX_INVITES {
                invited.remove(0);
            }
            invited.push(serial);
        }
    }
}

/// Why `prefix` may not join `channel` (numeric and mode letter), if it
/// may not. An invitation lets it past every check.
fn refusal(channel: &Channel, prefix: &str, invited: bool, key: Option<&str>) -> Option<(&'static str, char)> {
    if invited {
        return None;
    }
    if channel.modes.invite_only {
        return Some(("473", 'i'));
    }
    if mask::any_matches(channel.bans.iter().map(|b| b.mask.as_str()), prefix) {
        return Some(("474", 'b'));
    }
    if channel.modes.key.as_deref().is_some_and(|k| Some(k) != key) {
        return Some(("475", 'k'));
    }
    if channel.modes.limit.is_some_and(|limit| channel.members.len() >= limit) {
        return Some(("471", 'l'));
    }
    None
}
