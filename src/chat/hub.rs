//! The chat server's shared state and its command handling, sans-IO.
//!
//! A [`Hub`] holds every client (registration state, nick, channels) and
//! every channel (name, topic, members in join order). Everything that
//! happens to it is a method call with the client it concerns and the
//! current time, and everything it wants sent is appended to an [`Outbox`]:
//! a list of [`Delivery`]s (recipient, line), in the order they must be
//! written to each recipient, plus the clients to close once what was
//! delivered to them is flushed. It never blocks, reads a clock or touches
//! a socket, so the same hub serves every engine: behind a mutex (threads),
//! owned by one task (async) or by the process every worker talks to
//! (processes).
//!
//! Broadcast order is defined: a channel's members in the order they
//! joined; for a nick change or a quit, the client's channels in the order
//! it joined them, each member once, at its first appearance (the nick
//! changer first).
//!
//! Limits that need a clock or a socket (flood control, send queues,
//! registration and ping timeouts, connection counts) belong to the I/O
//! shell: it decides when, and calls [`Hub::close`] or
//! [`Hub::disconnected`] with the reason.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::line::{LineEvent, MAX_LINE};
use super::message::Message;
use super::names::{fold, valid_channel};

/// Seconds since the Unix epoch, passed in by the shell.
pub type Timestamp = u64;

/// One line to send, `\r\n` included; shared by every recipient of a
/// broadcast.
pub type Line = Arc<str>;

/// The longest topic kept (`TOPICLEN`), in bytes.
pub const TOPICLEN: usize = 390;
/// The most targets in one PRIVMSG or NOTICE (`MAXTARGETS`).
pub const MAXTARGETS: usize = 4;
/// The longest user name kept, in bytes.
pub const USERLEN: usize = 10;
/// The longest real name kept, in bytes.
pub const REALNAMELEN: usize = 100;
/// What the server answers in 002/004.
pub const VERSION: &str = concat!("trident-", env!("CARGO_PKG_VERSION"));

/// A connection, named by the I/O shell (unique among connected clients).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientId(pub u64);

/// One line for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The recipient.
    pub to: ClientId,
    /// The line, `\r\n` included, at most [`MAX_LINE`] bytes.
    pub line: Line,
}

/// What the hub wants done after one call.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Lines to send, in order (per recipient, the order to write them).
    pub deliveries: Vec<Delivery>,
    /// Connections to close once what was delivered to them is flushed;
    /// the hub has already forgotten them.
    pub closes: Vec<ClientId>,
    /// Registrations and departures, in order, for the server's log (not
    /// counted by [`is_empty`](Self::is_empty): nothing to send).
    pub presence: Vec<Presence>,
}

/// A client registered or left (see [`Outbox::presence`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// A client completed registration.
    Registered {
        /// The client.
        id: ClientId,
        /// `nick!user@host`.
        prefix: String,
    },
    /// A client left (QUIT, closed by the server, connection gone).
    Left {
        /// The client.
        id: ClientId,
        /// Its nick, if it had one.
        nick: Option<String>,
        /// Whether it had registered.
        registered: bool,
        /// The reason its channels saw.
        reason: String,
    },
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Outbox::default()
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty() && self.closes.is_empty()
    }

    /// Empties it, keeping the allocations.
    pub fn clear(&mut self) {
        self.deliveries.clear();
        self.closes.clear();
        self.presence.clear();
    }

    fn send(&mut self, to: ClientId, line: &Line) {
        self.deliveries.push(Delivery { to, line: Arc::clone(line) });
    }
}

/// The chat server's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HubConfig {
    /// The server's name: the prefix of its own messages.
    pub server_name: String,
    /// The network's name (001, `NETWORK=`).
    pub network: String,
    /// If set, clients must send `PASS` with it before registering (464).
    pub password: Option<String>,
    /// The message of the day, lines separated by `\n`; none: 422.
    pub motd: Option<String>,
    /// The most channels one client may be in (`CHANLIMIT`, 405 beyond).
    pub max_channels: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            server_name: "irc.trident.local".into(),
            network: "trident".into(),
            password: None,
            motd: None,
            max_channels: 50,
        }
    }
}

#[derive(Debug)]
struct Client {
    /// As shown in prefixes (an IPv6 address starting with `:` gets a `0`).
    host: String,
    nick: Option<String>,
    /// User name and real name, from USER.
    user: Option<(String, String)>,
    pass: Option<String>,
    /// CAP LS or REQ seen and no CAP END yet: registration waits.
    cap_negotiating: bool,
    registered: bool,
    invisible: bool,
    /// `nick!user@host`, once registered.
    prefix: String,
    /// Folded names of the channels it is in, in join order.
    channels: Vec<String>,
}

impl Client {
    /// The nick as the target of numerics: `*` until there is one.
    fn target(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }
}

#[derive(Debug)]
struct Channel {
    /// As first spelled.
    name: String,
    created: Timestamp,
    topic: Option<Topic>,
    /// In join order.
    members: Vec<ClientId>,
}

#[derive(Debug)]
struct Topic {
    text: String,
    /// The setter's `nick!user@host`.
    setter: String,
    time: Timestamp,
}

/// The shared state of a chat server; see the module documentation.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    created: Timestamp,
    clients: HashMap<ClientId, Client>,
    /// Folded nick -> its owner (registered or not).
    nicks: HashMap<String, ClientId>,
    /// Folded name -> channel; ordered, so LIST is.
    channels: BTreeMap<String, Channel>,
}

/// Commands that need registration (451 before it), beside those in
/// [`Hub::handle`]'s first arms.
const REGISTERED_COMMANDS: &[&str] =
    &["JOIN", "PART", "PRIVMSG", "NOTICE", "NAMES", "TOPIC", "WHO", "LIST", "MOTD", "MODE"];

impl Hub {
    /// An empty hub; `now` is shown as its creation time (003).
    pub fn new(config: HubConfig, now: Timestamp) -> Self {
        Hub { config, created: now, clients: HashMap::new(), nicks: HashMap::new(), channels: BTreeMap::new() }
    }

    /// The settings.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// A new connection from `host` (an IP address as text); false, and
    /// nothing changes, if `id` is already connected. Nothing is sent.
    pub fn connect(&mut self, id: ClientId, host: &str) -> bool {
        if self.clients.contains_key(&id) {
            return false;
        }
        let host = if host.starts_with(':') { format!("0{host}") } else { host.to_owned() };
        self.clients.insert(
            id,
            Client {
                host,
                nick: None,
                user: None,
                pass: None,
                cap_negotiating: false,
                registered: false,
                invisible: false,
                prefix: String::new(),
                channels: Vec::new(),
            },
        );
        true
    }

    /// Whether `id` is connected (and not closed by the hub).
    pub fn contains(&self, id: ClientId) -> bool {
        self.clients.contains_key(&id)
    }

    /// Whether `id` has completed registration (for the registration timeout).
    pub fn is_registered(&self, id: ClientId) -> bool {
        self.clients.get(&id).is_some_and(|c| c.registered)
    }

    /// `id`'s nick, if it has one.
    pub fn nick(&self, id: ClientId) -> Option<&str> {
        self.clients.get(&id)?.nick.as_deref()
    }

    /// Connected clients, registered or not.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Channels (a channel exists while it has members).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The server's keep-alive probe, `PING :server` (the shell sends it
    /// after an idle period and closes the client if nothing comes back).
    pub fn ping_line(&self) -> Line {
        finish(Message::new("PING").trailing(&self.config.server_name).to_line())
    }

    /// The last words to every client when the server stops.
    pub fn shutdown_line(&self) -> Line {
        finish(Message::new("ERROR").trailing("Server shutting down").to_line())
    }

    /// One event from `id`'s [`super::LineReader`].
    /// Ignored if `id` is not connected (a line read after its QUIT).
    pub fn handle_event(&mut self, id: ClientId, event: &LineEvent, now: Timestamp, out: &mut Outbox) {
        if !self.contains(id) {
            return;
        }
        match event {
            LineEvent::Line(line) => self.handle_line(id, line, now, out),
            LineEvent::TooLong => self.numeric(id, "417", &[], "Input line was too long", out),
            LineEvent::InvalidUtf8 => self.server_notice(id, "Line dropped: it is not valid UTF-8", out),
            LineEvent::ForbiddenByte => self.server_notice(id, "Line dropped: it contains a NUL or CR", out),
        }
    }

    /// One line from `id` (without its terminator). Lines without a
    /// command are ignored.
    pub fn handle_line(&mut self, id: ClientId, line: &str, now: Timestamp, out: &mut Outbox) {
        if let Ok(message) = Message::parse(line) {
            self.handle(id, &message, now, out);
        }
    }

    /// One message from `id`; ignored if `id` is not connected.
    pub fn handle(&mut self, id: ClientId, message: &Message<'_>, now: Timestamp, out: &mut Outbox) {
        let Some(client) = self.clients.get(&id) else { return };
        let registered = client.registered;
        let command = message.command.to_ascii_uppercase();
        let p = message.params.as_slice();
        match command.as_str() {
            "PASS" => self.pass(id, p, out),
            "NICK" => self.nick_command(id, p, out),
            "USER" => self.user(id, p, out),
            "CAP" => self.cap(id, p, out),
            "PING" => match p.first() {
                Some(token) => {
                    let server = &self.config.server_name;
                    out.send(id, &finish(Message::new("PONG").prefix(server).param(server).trailing(token).to_line()));
                }
                None => self.numeric(id, "461", &["PING"], "Not enough parameters", out),
            },
            "PONG" => {}
            "QUIT" => {
                let reason = match p.first() {
                    Some(text) if !text.is_empty() => format!("Quit: {text}"),
                    _ => "Client Quit".to_owned(),
                };
                self.close(id, &reason, out);
            }
            c if !registered && REGISTERED_COMMANDS.contains(&c) => {
                self.numeric(id, "451", &[], "You have not registered", out)
            }
            "JOIN" => self.join(id, p, now, out),
            "PART" => self.part(id, p, out),
            "PRIVMSG" => self.message(id, "PRIVMSG", p, out),
            "NOTICE" => self.message(id, "NOTICE", p, out),
            "NAMES" => match p.first() {
                Some(list) => {
                    for name in list.split(',').filter(|n| !n.is_empty()) {
                        self.names(id, name, out);
                    }
                }
                None => self.numeric(id, "366", &["*"], "End of /NAMES list", out),
            },
            "TOPIC" => self.topic(id, p, now, out),
            "WHO" => self.who(id, p, out),
            "LIST" => self.list(id, p, out),
            "MOTD" => self.motd(id, out),
            "MODE" => self.mode(id, p, out),
            _ => self.numeric(id, "421", &[message.command], "Unknown command", out),
        }
    }

    /// The shell closes `id` (ping or registration timeout, flood, send
    /// queue...): its channels' members see it quit with `reason`, it gets
    /// `ERROR :Closing Link: HOST (reason)` and the outbox asks to close it.
    /// Nothing happens if `id` is not connected.
    pub fn close(&mut self, id: ClientId, reason: &str, out: &mut Outbox) {
        if let Some(client) = self.remove(id, reason, out) {
            let text = format!("Closing Link: {} ({reason})", client.host);
            out.send(id, &finish(Message::new("ERROR").trailing(&text).to_line()));
            out.closes.push(id);
        }
    }

    /// `id`'s connection is gone (end of stream, reset, error): its
    /// channels' members see it quit with `reason`. Nothing happens if the
    /// hub has already closed it, so a quit is broadcast once.
    pub fn disconnected(&mut self, id: ClientId, reason: &str, out: &mut Outbox) {
        self.remove(id, reason, out);
    }

    /// Forgets `id`, broadcasting its QUIT to the members of its channels.
    fn remove(&mut self, id: ClientId, reason: &str, out: &mut Outbox) -> Option<Client> {
        let peers = self.peers(id);
        let client = self.clients.remove(&id)?;
        if let Some(nick) = &client.nick {
            self.nicks.remove(&fold(nick));
        }
        out.presence.push(Presence::Left {
            id,
            nick: client.nick.clone(),
            registered: client.registered,
            reason: reason.to_owned(),
        });
        if client.registered {
            let line = finish(Message::new("QUIT").prefix(&client.prefix).trailing(reason).to_line());
            for peer in peers {
                out.send(peer, &line);
            }
        }
        for key in &client.channels {
            self.leave(key, id);
        }
        Some(client)
    }

    /// Removes `id` from the channel `key` (not from the client's list);
    /// an empty channel is deleted.
    fn leave(&mut self, key: &str, id: ClientId) {
        if let Some(channel) = self.channels.get_mut(key) {
            channel.members.retain(|&m| m != id);
            if channel.members.is_empty() {
                self.channels.remove(key);
            }
        }
    }

    /// Everyone sharing a channel with `id`, once each, `id` excluded, in
    /// broadcast order.
    fn peers(&self, id: ClientId) -> Vec<ClientId> {
        let Some(client) = self.clients.get(&id) else { return Vec::new() };
        let mut seen = HashSet::from([id]);
        let mut peers = Vec::new();
        for key in &client.channels {
            for &member in self.channels.get(key).map_or(&[][..], |c| &c.members) {
                if seen.insert(member) {
                    peers.push(member);
                }
            }
        }
        peers
    }

    // Every command looks its client up again rather than trusting that
    // it is still there: a line read after QUIT (or any other departure)
    // must find nothing and do nothing, never panic.
    fn client(&self, id: ClientId) -> Option<&Client> {
        self.clients.get(&id)
    }

    fn client_mut(&mut self, id: ClientId) -> Option<&mut Client> {
        self.clients.get_mut(&id)
    }

    /// `id`'s nick as the target of numerics; `*` until it has one (or if
    /// it is gone).
    fn target(&self, id: ClientId) -> &str {
        self.client(id).map_or("*", Client::target)
    }

    /// Whether `id` is connected and registered.
    fn registered(&self, id: ClientId) -> bool {
        self.client(id).is_some_and(|c| c.registered)
    }

    /// `:server CODE target middle... :text` to `id`.
    fn numeric(&self, id: ClientId, code: &str, middle: &[&str], text: &str, out: &mut Outbox) {
        let Some(client) = self.client(id) else { return };
        let mut message = Message::new(code).prefix(&self.config.server_name).param(client.target());
        for param in middle {
            message = message.param(param);
        }
        out.send(id, &finish(message.trailing(text).to_line()));
    }

    /// `:server CODE target params...`, no forced trailing parameter.
    fn numeric_plain(&self, id: ClientId, code: &str, params: &[&str], out: &mut Outbox) {
        let Some(client) = self.client(id) else { return };
        let mut message = Message::new(code).prefix(&self.config.server_name).param(client.target());
        for param in params {
            message = message.param(param);
        }
        out.send(id, &finish(message.to_line()));
    }

    fn server_notice(&self, id: ClientId, text: &str, out: &mut Outbox) {
        let Some(client) = self.client(id) else { return };
        let target = client.target();
        out.send(
            id,
            &finish(Message::new("NOTICE").prefix(&self.config.server_name).param(target).trailing(text).to_line()),
        );
    }

    fn join(&mut self, id: ClientId, p: &[&str], now: Timestamp, out: &mut Outbox) {
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

    fn topic_who_time(&self, id: ClientId, channel: &Channel, topic: &Topic, out: &mut Outbox) {
        let time = topic.time.to_string();
        self.numeric_plain(id, "333", &[&channel.name, &topic.setter, &time], out);
    }

    fn part(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
        let Some(list) = p.first() else {
            return self.numeric(id, "461", &["PART"], "Not enough parameters", out);
        };
        let reason = p.get(1).copied().filter(|r| !r.is_empty());
        for name in list.split(',').filter(|n| !n.is_empty()) {
            self.part_one(id, name, reason, out);
        }
    }

    fn part_one(&mut self, id: ClientId, name: &str, reason: Option<&str>, out: &mut Outbox) {
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

    fn message(&self, id: ClientId, command: &str, p: &[&str], out: &mut Outbox) {
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

    /// 353 lines (as many as needed to stay within 512 bytes) and 366.
    fn names(&self, id: ClientId, name: &str, out: &mut Outbox) {
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

    fn topic(&mut self, id: ClientId, p: &[&str], now: Timestamp, out: &mut Outbox) {
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

    fn who(&self, id: ClientId, p: &[&str], out: &mut Outbox) {
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

    fn list(&self, id: ClientId, p: &[&str], out: &mut Outbox) {
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

    /// Just enough MODE for clients that ask on connect and join: channels
    /// are `+n` (members only may speak) and have no operators; the one
    /// user mode is `i`, recorded and not used.
    fn mode(&mut self, id: ClientId, p: &[&str], out: &mut Outbox) {
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

/// `nick!user@host` of a client with a nick and a user.
fn prefix_of(client: &Client) -> String {
    let user = client.user.as_ref().map_or("", |(u, _)| u.as_str());
    format!("{}!{user}@{}", client.target(), client.host)
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

/// A line ready to send: cut to 510 bytes (a relayed message whose prefix
/// made it longer loses the end of its text) and `\r\n` appended.
fn finish(mut line: String) -> Line {
    truncate(&mut line, MAX_LINE - 2);
    line.push_str("\r\n");
    line.into()
}

#[path = "hub_registration.rs"]
mod registration;

#[cfg(test)]
#[path = "hub_check.rs"]
mod check;

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
