//! MODE: channel modes (`+o`/`+v` prefixes, the `+b` list, `+k`, `+l`
//! and the flags `+imnst`) and user modes (`+i`, and `-o` to drop
//! operator status).
//!
//! A channel MODE is applied left to right; changes need channel operator
//! status (482 once, the rest skipped), at most [`MODES`] parameter modes
//! count, and what actually changed is broadcast to the channel as one
//! MODE line. A bare `b` (or `+b` without a mask) lists the bans to anyone
//! who may see the channel: an outsider of a secret (`+s`) channel gets
//! only the end of the list.

use super::mask;
use super::state::Ban;
use super::{ClientId, Hub, KEYLEN, MODES, Message, Outbox, Timestamp, finish, truncate};
use crate::chat::names::fold;

/// One applied channel mode change, for the broadcast.
struct Change {
    add: bool,
    mode: char,
    param: Option<String>,
}

impl Hub {
    pub(super) fn mode(&mut self, id: ClientId, p: &[&str], now: Timestamp, out: &mut Outbox) {
        let Some(&target) = p.first() else {
            return self.numeric(id, "461", &["MODE"], "Not enough parameters", out);
        };
        if target.starts_with('#') {
            self.channel_mode(id, target, &p[1..], now, out);
        } else {
            self.user_mode(id, target, p.get(1).copied(), out);
        }
    }

    fn channel_mode(&mut self, id: ClientId, name: &str, p: &[&str], now: Timestamp, out: &mut Outbox) {
        let key = fold(name);
        let Some(channel) = self.channels.get(&key) else {
            return self.numeric(id, "403", &[name], "No such channel", out);
        };
        let name = channel.name.clone();
        let member = channel.members.contains(&id);
        let Some(&modestring) = p.first() else {
            let (flags, params) = channel.modes.describe(member);
            let mut reply = vec![name.as_str(), flags.as_str()];
            reply.extend(params.iter().map(String::as_str));
            self.numeric_plain(id, "324", &reply, out);
            let created = channel.created.to_string();
            return self.numeric_plain(id, "329", &[&name, &created], out);
        };
        let is_op = channel.is_op(id);
        let Some(setter) = self.client(id).map(|c| c.prefix.clone()) else { return };
        let mut args = p[1..].iter().copied();
        let mut changes: Vec<Change> = Vec::new();
        let (mut add, mut with_param, mut denied, mut listed) = (true, 0, false, false);
        // Whether this change may go ahead: counts a parameter mode, and
        // says 482 once to a non-operator.
        let mut allowed = |takes_param: bool, hub: &Hub, out: &mut Outbox| {
            if takes_param {
                if with_param == MODES {
                    return false;
                }
                with_param += 1;
            }
            if !is_op && !denied {
                denied = true;
                hub.numeric(id, "482", &[&name], "You're not channel operator", out);
            }
            is_op
        };
        for c in modestring.chars() {
            match c {
                '+' | '-' => add = c == '+',
                'b' => {
                    let Some(arg) = args.next() else {
                        if !listed {
                            listed = true;
                            self.ban_list(id, &key, out);
                        }
                        continue;
                    };
                    if !allowed(true, self, out) {
                        continue;
                    }
                    let Some(ban) = mask::normalise(arg) else { continue };
                    let max = self.config.max_bans;
                    let Some(channel) = self.channels.get_mut(&key) else { return };
                    let at = channel.bans.iter().position(|b| b.mask == ban);
                    match (add, at) {
                        (true, None) if channel.bans.len() >= max => {
                            self.numeric(id, "478", &[&name, &ban], "Channel ban list is full", out);
                            continue;
                        }
                        (true, None) => channel.bans.push(Ban { mask: ban.clone(), setter: setter.clone(), time: now }),
                        (false, Some(at)) => {
                            channel.bans.remove(at);
                        }
                        _ => continue,
                    }
                    changes.push(Change { add, mode: 'b', param: Some(ban) });
                }
                'o' | 'v' => {
                    let Some(nick) = args.next() else { continue };
                    if !allowed(true, self, out) {
                        continue;
                    }
                    let Some(target) = self.nicks.get(&fold(nick)).copied().filter(|&t| self.registered(t)) else {
                        self.numeric(id, "401", &[nick], "No such nick/channel", out);
                        continue;
                    };
                    let target_nick = self.target(target).to_owned();
                    let Some(channel) = self.channels.get_mut(&key) else { return };
                    if !channel.members.contains(&target) {
                        self.numeric(id, "441", &[&target_nick, &name], "They aren't on that channel", out);
                        continue;
                    }
                    if channel.set_status(target, c == 'v', add) {
                        changes.push(Change { add, mode: c, param: Some(target_nick) });
                    }
                }
                'k' => {
                    let arg = args.next();
                    if (add && arg.is_none()) || !allowed(true, self, out) {
                        continue;
                    }
                    let Some(channel) = self.channels.get_mut(&key) else { return };
                    if add {
                        let mut k: String = arg.unwrap_or_default().chars().filter(|c| valid_key_char(*c)).collect();
                        truncate(&mut k, KEYLEN);
                        if k.is_empty() || channel.modes.key.as_ref() == Some(&k) {
                            continue;
                        }
                        channel.modes.key = Some(k.clone());
                        changes.push(Change { add, mode: 'k', param: Some(k) });
                    } else if channel.modes.key.take().is_some() {
                        changes.push(Change { add, mode: 'k', param: Some("*".into()) });
                    }
                }
                'l' => {
                    let limit = if add {
                        match args.next().and_then(|a| a.parse::<usize>().ok()).filter(|&l| l > 0) {
                            Some(limit) => Some(limit),
                            None => continue,
                        }
                    } else {
                        None
                    };
                    if !allowed(add, self, out) {
                        continue;
                    }
                    let Some(channel) = self.channels.get_mut(&key) else { return };
                    if channel.modes.limit != limit {
                        channel.modes.limit = limit;
                        changes.push(Change { add, mode: 'l', param: limit.map(|l| l.to_string()) });
                    }
                }
                'i' | 'm' | 'n' | 's' | 't' => {
                    if !allowed(false, self, out) {
                        continue;
                    }
                    let Some(channel) = self.channels.get_mut(&key) else { return };
                    let modes = &mut channel.modes;
                    let flag = match c {
                        'i' => &mut modes.invite_only,
                        'm' => &mut modes.moderated,
                        'n' => &mut modes.no_external,
                        's' => &mut modes.secret,
                        _ => &mut modes.topic_ops,
                    };
                    if *flag != add {
                        *flag = add;
                        changes.push(Change { add, mode: c, param: None });
                    }
                }
                other => {
                    let text = "is unknown mode char to me";
                    self.numeric(id, "472", &[other.encode_utf8(&mut [0; 4])], text, out);
                }
            }
        }
        if changes.is_empty() {
            return;
        }
        let (mut flags, mut params, mut sign) = (String::new(), Vec::new(), None);
        for change in changes {
            if sign != Some(change.add) {
                sign = Some(change.add);
                flags.push(if change.add { '+' } else { '-' });
            }
            flags.push(change.mode);
            params.extend(change.param);
        }
        let mut message = Message::new("MODE").prefix(&setter).param(&name).param(&flags);
        for param in &params {
            message = message.param(param);
        }
        let line = finish(message.to_line());
        let Some(channel) = self.channels.get(&key) else { return };
        for &member in &channel.members {
            out.send(member, &line);
        }
    }

    /// 367 per ban (none to an outsider of a secret channel), then 368.
    fn ban_list(&self, id: ClientId, key: &str, out: &mut Outbox) {
        let Some(channel) = self.channels.get(key) else { return };
        let bans = if self.sees_channel(id, channel) { &channel.bans[..] } else { &[] };
        for ban in bans {
            let time = ban.time.to_string();
            self.numeric_plain(id, "367", &[&channel.name, &ban.mask, &ban.setter, &time], out);
        }
        self.numeric(id, "368", &[&channel.name], "End of channel ban list", out);
    }

    /// `MODE nick [modes]`: a client may see and change only its own: `i`
    /// on and off, `o` off (OPER turns it on).
    fn user_mode(&mut self, id: ClientId, target: &str, modestring: Option<&str>, out: &mut Outbox) {
        let Some(&owner) = self.nicks.get(&fold(target)).filter(|&&o| self.registered(o)) else {
            return self.numeric(id, "401", &[target], "No such nick/channel", out);
        };
        if owner != id {
            return self.numeric(id, "502", &[], "Can't change mode for other users", out);
        }
        let Some(modestring) = modestring else {
            let Some(client) = self.client(id) else { return };
            let mut modes = String::from("+");
            modes.extend([(client.invisible, 'i'), (client.oper, 'o')].into_iter().filter(|m| m.0).map(|m| m.1));
            return self.numeric_plain(id, "221", &[&modes], out);
        };
        let (mut add, mut changed, mut unknown, mut sign) = (true, String::new(), false, None);
        let Some(client) = self.client_mut(id) else { return };
        for c in modestring.chars() {
            let flag = match c {
                '+' | '-' => {
                    add = c == '+';
                    continue;
                }
                'i' => &mut client.invisible,
                // Only OPER makes an operator; anyone may stop being one.
                'o' if !add => &mut client.oper,
                'o' => continue,
                _ => {
                    unknown = true;
                    continue;
                }
            };
            if *flag != add {
                *flag = add;
                if sign != Some(add) {
                    sign = Some(add);
                    changed.push(if add { '+' } else { '-' });
                }
                changed.push(c);
            }
        }
        if !changed.is_empty() {
            let nick = client.target();
            out.send(id, &finish(Message::new("MODE").prefix(nick).param(nick).trailing(&changed).to_line()));
        }
        if unknown {
            self.numeric(id, "501", &[], "Unknown MODE flag", out);
        }
    }
}

/// What a channel key may hold: no spaces, commas, colons or control
/// characters.
fn valid_key_char(c: char) -> bool {
    !c.is_control() && !matches!(c, ' ' | ',' | ':')
}
