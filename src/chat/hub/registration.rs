//! Registration commands of the [`Hub`]: PASS, NICK, USER, CAP, then the
//! welcome (001-005 and the MOTD) once NICK and USER are in and CAP
//! negotiation is over.

use std::time::{Duration, UNIX_EPOCH};

use super::{
    AWAYLEN, ClientId, Hub, MAXTARGETS, MODES, Message, Outbox, Presence, REALNAMELEN, TOPICLEN, USERLEN, VERSION,
    finish, prefix_of, state, truncate,
};
use crate::chat::names::{CHANNELLEN, NICKLEN, fold, valid_nick};

impl Hub {
    pub(super) fn pass(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
        if self.registered(id) {
            self.numeric(id, "462", &[], "You may not reregister", out);
        } else if let Some(password) = p.first() {
            if let Some(client) = self.client_mut(id) {
                client.pass = Some((*password).to_owned());
            }
        } else {
            self.numeric(id, "461", &["PASS"], "Not enough parameters", out);
        }
    }

    pub(super) fn nick_command(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let Some(&new) = p.first().filter(|n| !n.is_empty()) else {
            return self.numeric(id, "431", &[], "No nickname given", out);
        };
        if !valid_nick(new) {
            return self.numeric(id, "432", &[new], "Erroneous nickname", out);
        }
        let key = fold(new);
        if self.nicks.get(&key).is_some_and(|&owner| owner != id) {
            return self.numeric(id, "433", &[new], "Nickname is already in use", out);
        }
        let now = self.now;
        let Some(client) = self.client_mut(id) else { return };
        if client.nick.as_deref() == Some(new) {
            return;
        }
        if client.registered {
            let departed = state::Departed::of(client, now);
            self.remember(departed);
        }
        let Some(client) = self.client_mut(id) else { return };
        let old = client.nick.replace(new.to_owned());
        if let Some(old) = old {
            self.nicks.remove(&fold(&old));
        }
        self.nicks.insert(key, id);
        let Some(client) = self.client_mut(id) else { return };
        if client.registered {
            let old_prefix = std::mem::take(&mut client.prefix);
            client.prefix = prefix_of(client);
            let line = finish(Message::new("NICK").prefix(&old_prefix).param(new).to_line());
            out.send(id, &line);
            for peer in self.peers(id) {
                out.send(peer, &line);
            }
        } else {
            self.try_register(id, out);
        }
    }

    pub(super) fn user(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let Some(client) = self.client(id) else { return };
        if client.registered || client.user.is_some() {
            return self.numeric(id, "462", &[], "You may not reregister", out);
        }
        let [user, _, _, realname, ..] = p else {
            return self.numeric(id, "461", &["USER"], "Not enough parameters", out);
        };
        if user.is_empty() {
            return self.numeric(id, "461", &["USER"], "Not enough parameters", out);
        }
        let mut username: String =
            user.chars().filter(|c| !c.is_control() && !matches!(c, ' ' | '@' | '!' | ':')).collect();
        truncate(&mut username, USERLEN);
        if username.is_empty() {
            username.push_str("user");
        }
        let mut realname = (*realname).to_owned();
        truncate(&mut realname, REALNAMELEN);
        if let Some(client) = self.client_mut(id) {
            client.user = Some((username, realname));
        }
        self.try_register(id, out);
    }

    pub(super) fn cap(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let Some(sub) = p.first() else {
            return self.numeric(id, "461", &["CAP"], "Not enough parameters", out);
        };
        let server = &self.config.server_name;
        let Some(client) = self.client(id) else { return };
        let reply = |what: &str, list: &str| {
            finish(Message::new("CAP").prefix(server).param(client.target()).param(what).trailing(list).to_line())
        };
        match sub.to_ascii_uppercase().as_str() {
            "LS" => {
                out.send(id, &reply("LS", ""));
                if let Some(client) = self.client_mut(id) {
                    client.cap_negotiating = !client.registered;
                }
            }
            "LIST" => out.send(id, &reply("LIST", "")),
            "REQ" => {
                // We support no capability: refuse the whole request.
                out.send(id, &reply("NAK", p.get(1).copied().unwrap_or("")));
                if let Some(client) = self.client_mut(id) {
                    client.cap_negotiating = !client.registered;
                }
            }
            "END" => {
                if let Some(client) = self.client_mut(id) {
                    client.cap_negotiating = false;
                }
                self.try_register(id, out);
            }
            _ => self.numeric(id, "410", &[sub], "Invalid CAP command", out),
        }
    }

    /// Completes registration once NICK and USER are in and CAP is done:
    /// password check (464 and close), then 001-005 and the MOTD.
    pub(super) fn try_register(&mut self, id: ClientId, out: &mut Outbox) {
        let Some(client) = self.client(id) else { return };
        if client.registered || client.nick.is_none() || client.user.is_none() || client.cap_negotiating {
            return;
        }
        if let Some(password) = &self.config.password {
            if client.pass.as_deref() != Some(password.as_str()) {
                self.numeric(id, "464", &[], "Password incorrect", out);
                return self.close(id, "Bad Password", out);
            }
        }
        let now = self.now;
        let Some(client) = self.client_mut(id) else { return };
        client.registered = true;
        client.prefix = prefix_of(client);
        client.signon = now;
        client.last_spoke = now;
        let prefix = client.prefix.clone();
        let users = self.clients.values().filter(|c| c.registered).count();
        self.max_users = self.max_users.max(users);
        out.presence.push(Presence::Registered { id, prefix: prefix.clone() });
        let (server, network) = (&self.config.server_name, &self.config.network);
        let created = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(self.created));
        self.numeric(id, "001", &[], &format!("Welcome to the {network} IRC Network {prefix}"), out);
        self.numeric(id, "002", &[], &format!("Your host is {server}, running version {VERSION}"), out);
        self.numeric(id, "003", &[], &format!("This server was created {created}"), out);
        self.numeric_plain(id, "004", &[server, VERSION, "io", "biklmnostv", "bklov"], out);
        let chanlimit = format!("CHANLIMIT=#:{}", self.config.max_channels);
        let channellen = format!("CHANNELLEN={CHANNELLEN}");
        let maxtargets = format!("MAXTARGETS={MAXTARGETS}");
        let net = format!("NETWORK={network}");
        let nicklen = format!("NICKLEN={NICKLEN}");
        let topiclen = format!("TOPICLEN={TOPICLEN}");
        let awaylen = format!("AWAYLEN={AWAYLEN}");
        let maxlist = format!("MAXLIST=b:{}", self.config.max_bans);
        let modes = format!("MODES={MODES}");
        let tokens = [
            &awaylen,
            "CASEMAPPING=rfc1459",
            &chanlimit,
            "CHANMODES=b,k,l,imnst",
            &channellen,
            "CHANTYPES=#",
            &maxlist,
            &maxtargets,
            &modes,
            &net,
            &nicklen,
            "PREFIX=(ov)@+",
            &topiclen,
        ];
        self.numeric(id, "005", &tokens, "are supported by this server", out);
        self.motd(id, out);
    }

    pub(super) fn motd(&self, id: ClientId, out: &mut Outbox) {
        let Some(motd) = &self.config.motd else {
            return self.numeric(id, "422", &[], "MOTD File is missing", out);
        };
        let server = &self.config.server_name;
        self.numeric(id, "375", &[], &format!("- {server} Message of the Day -"), out);
        for line in motd.lines() {
            self.numeric(id, "372", &[], &format!("- {line}"), out);
        }
        self.numeric(id, "376", &[], "End of /MOTD command.", out);
    }
}
