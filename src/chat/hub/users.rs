//! Queries about users and the server, and AWAY: WHOIS, WHOWAS, USERHOST,
//! ISON, AWAY, LUSERS, VERSION, TIME, ADMIN and INFO.

use std::time::{Duration, UNIX_EPOCH};

use super::{AWAYLEN, ClientId, Hub, MAX_LINE, MAXTARGETS, Outbox, Timestamp, VERSION, truncate};
use crate::chat::names::fold;

/// USERHOST answers at most this many nicks (RFC 2812).
const USERHOST_MAX: usize = 5;

/// What 312 says about this server.
const SERVER_INFO: &str = "trident chat server";

impl Hub {
    /// `WHOIS [server] nick[,nick...]`: 311, 319, 312, 301, 313, 317, then
    /// 318 (401 first for a nick nobody has).
    pub(super) fn whois(&self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let Some(list) = p.last().filter(|l| !l.is_empty()) else {
            return self.numeric(id, "431", &[], "No nickname given", out);
        };
        for nick in list.split(',').filter(|n| !n.is_empty()).take(MAXTARGETS) {
            self.whois_one(id, nick, out);
        }
    }

    fn whois_one(&self, id: ClientId, nick: &str, out: &mut Outbox) {
        let who = self.nicks.get(&fold(nick)).copied().filter(|&w| self.registered(w));
        let Some(c) = who.and_then(|w| self.client(w)) else {
            self.numeric(id, "401", &[nick], "No such nick/channel", out);
            return self.numeric(id, "318", &[nick], "End of /WHOIS list", out);
        };
        let who = who.unwrap_or(id);
        let nick = c.target();
        let (user, realname) = c.user.as_ref().map_or(("", ""), |(u, r)| (u.as_str(), r.as_str()));
        self.numeric(id, "311", &[nick, user, &c.host, "*"], realname, out);
        let asker_multi = self.client(id).is_some_and(|a| a.multi_prefix);
        // 319 lines, split to stay within 512 bytes.
        let head_len = format!(":{} 319 {} {nick} :", self.config.server_name, self.target(id)).len();
        let mut list = String::new();
        for channel in c.channels.iter().filter_map(|k| self.channels.get(k)) {
            if !self.sees_channel(id, channel) {
                continue;
            }
            let entry = format!("{}{}", channel.status(who).prefixes(asker_multi), channel.name);
            if !list.is_empty() && head_len + list.len() + 1 + entry.len() > MAX_LINE - 2 {
                self.numeric(id, "319", &[nick], &std::mem::take(&mut list), out);
            }
            if !list.is_empty() {
                list.push(' ');
            }
            list.push_str(&entry);
        }
        if !list.is_empty() {
            self.numeric(id, "319", &[nick], &list, out);
        }
        self.numeric(id, "312", &[nick, &self.config.server_name], SERVER_INFO, out);
        if let Some(away) = c.away() {
            self.numeric(id, "301", &[nick], away, out);
        }
        if c.oper {
            self.numeric(id, "313", &[nick], "is an IRC operator", out);
        }
        let idle = self.now.saturating_sub(c.last_spoke).to_string();
        let signon = c.signon.to_string();
        self.numeric(id, "317", &[nick, &idle, &signon], "seconds idle, signon time", out);
        self.numeric(id, "318", &[nick], "End of /WHOIS list", out);
    }

    /// `WHOWAS nick [count]`: the newest departures of that nick (314 and
    /// 312 each), then 369; 406 if none.
    pub(super) fn whowas(&self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let Some(&nick) = p.first().filter(|n| !n.is_empty()) else {
            return self.numeric(id, "431", &[], "No nickname given", out);
        };
        let count = p.get(1).and_then(|c| c.parse::<usize>().ok()).filter(|&c| c > 0).unwrap_or(usize::MAX);
        let key = fold(nick);
        let mut found = 0;
        for entry in self.whowas.iter().filter(|e| fold(&e.nick) == key).take(count) {
            found += 1;
            self.numeric(id, "314", &[&entry.nick, &entry.user, &entry.host, "*"], &entry.realname, out);
            self.numeric(id, "312", &[&entry.nick, &self.config.server_name], &http_date(entry.time), out);
        }
        if found == 0 {
            self.numeric(id, "406", &[nick], "There was no such nickname", out);
        }
        self.numeric(id, "369", &[nick], "End of WHOWAS", out);
    }

    /// `USERHOST nick...`: `nick[*]=[+|-]user@host` for up to five nicks
    /// (`*`: operator; `-`: away).
    pub(super) fn userhost(&self, id: ClientId, p: &[&str], out: &mut Outbox) {
        if p.is_empty() {
            return self.numeric(id, "461", &["USERHOST"], "Not enough parameters", out);
        }
        let nicks = p.iter().flat_map(|n| n.split(' ')).filter(|n| !n.is_empty()).take(USERHOST_MAX);
        let mut replies = Vec::new();
        for nick in nicks {
            let who = self.nicks.get(&fold(nick)).copied().filter(|&w| self.registered(w));
            let Some(c) = who.and_then(|w| self.client(w)) else { continue };
            let user = c.user.as_ref().map_or("", |(u, _)| u.as_str());
            let oper = if c.oper { "*" } else { "" };
            let away = if c.away().is_some() { '-' } else { '+' };
            replies.push(format!("{}{oper}={away}{user}@{}", c.target(), c.host));
        }
        self.numeric(id, "302", &[], &replies.join(" "), out);
    }

    /// `ISON nick...`: which of the nicks are online, as they are spelled
    /// now (one 303 line, cut to fit).
    pub(super) fn ison(&self, id: ClientId, p: &[&str], out: &mut Outbox) {
        if p.is_empty() {
            return self.numeric(id, "461", &["ISON"], "Not enough parameters", out);
        }
        let mut online = String::new();
        for nick in p.iter().flat_map(|n| n.split(' ')).filter(|n| !n.is_empty()) {
            let Some(&who) = self.nicks.get(&fold(nick)).filter(|&&w| self.registered(w)) else { continue };
            let nick = self.target(who);
            if online.len() + nick.len() + 1 > MAX_LINE - 64 {
                break;
            }
            if !online.is_empty() {
                online.push(' ');
            }
            online.push_str(nick);
        }
        self.numeric(id, "303", &[], &online, out);
    }

    /// `AWAY :message` marks the client away (306), `AWAY` alone back (305).
    pub(super) fn away(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let message = p.first().filter(|m| !m.is_empty()).map(|m| {
            let mut m = (*m).to_owned();
            truncate(&mut m, AWAYLEN);
            m
        });
        let away = message.is_some();
        if let Some(client) = self.client_mut(id) {
            // Coming back allocates nothing for a client never away.
            if message.is_some() || client.rare.is_some() {
                client.rare_mut().away = message;
            }
        }
        match away {
            true => self.numeric(id, "306", &[], "You have been marked as being away", out),
            false => self.numeric(id, "305", &[], "You are no longer marked as being away", out),
        }
    }

    /// 251-255, 265 and 266: users (invisible apart), operators, unknown
    /// connections, channels; one server.
    pub(super) fn lusers(&self, id: ClientId, out: &mut Outbox) {
        let registered = self.clients.values().filter(|c| c.registered);
        let (mut users, mut invisible, mut opers) = (0, 0, 0);
        for c in registered {
            users += 1;
            invisible += usize::from(c.invisible);
            opers += usize::from(c.oper);
        }
        let unknown = self.clients.len() - users;
        let text = format!("There are {} users and {invisible} invisible on 1 servers", users - invisible);
        self.numeric(id, "251", &[], &text, out);
        if opers > 0 {
            self.numeric(id, "252", &[&opers.to_string()], "operator(s) online", out);
        }
        if unknown > 0 {
            self.numeric(id, "253", &[&unknown.to_string()], "unknown connection(s)", out);
        }
        self.numeric(id, "254", &[&self.channels.len().to_string()], "channels formed", out);
        self.numeric(id, "255", &[], &format!("I have {users} clients and 0 servers"), out);
        let (now, max) = (users.to_string(), self.max_users.max(users).to_string());
        self.numeric(id, "265", &[&now, &max], &format!("Current local users {now}, max {max}"), out);
        self.numeric(id, "266", &[&now, &max], &format!("Current global users {now}, max {max}"), out);
    }

    /// 351: the version and the server.
    pub(super) fn version(&self, id: ClientId, out: &mut Outbox) {
        let server = &self.config.server_name;
        self.numeric(id, "351", &[VERSION, server], "sans-IO IRC core, three engines", out);
    }

    /// 391: the server's time, as the shell gave it.
    pub(super) fn time(&self, id: ClientId, now: Timestamp, out: &mut Outbox) {
        self.numeric(id, "391", &[&self.config.server_name], &http_date(now), out);
    }

    /// 256-259: who runs the server (its name and network; no contact is
    /// configured).
    pub(super) fn admin(&self, id: ClientId, out: &mut Outbox) {
        let (server, network) = (&self.config.server_name, &self.config.network);
        self.numeric(id, "256", &[server], "Administrative info", out);
        self.numeric(id, "257", &[], &format!("{server}, a {network} server"), out);
        self.numeric(id, "258", &[], &format!("{VERSION}, {SERVER_INFO}"), out);
        self.numeric(id, "259", &[], "No contact address is configured", out);
    }

    /// 371 lines about the software, then 374.
    pub(super) fn info(&self, id: ClientId, out: &mut Outbox) {
        for line in [
            format!("{VERSION}: {SERVER_INFO}"),
            "The chat part of trident, a Rust network toolkit.".to_owned(),
            "One sans-IO core served by threads, processes or async tasks.".to_owned(),
            format!("Started {}", http_date(self.created)),
        ] {
            self.numeric(id, "371", &[], &line, out);
        }
        self.numeric(id, "374", &[], "End of /INFO list", out);
    }
}

/// `Tue, 14 Nov 2023 22:13:20 GMT`.
fn http_date(time: Timestamp) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(time))
}
