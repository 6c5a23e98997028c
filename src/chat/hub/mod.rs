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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::line::{LineEvent, MAX_LINE};
use super::message::Message;
use super::names::fold;
use state::{Channel, Client, Departed};

mod channels;
mod mask;
mod messages;
mod modes;
mod oper;
mod outbox;
mod queries;
mod registration;
mod state;
mod users;

#[cfg(test)]
mod check;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use oper::{OperConfig, parse_opers};
pub use outbox::{ClientId, Delivery, Line, Outbox, Presence};

/// Seconds since the Unix epoch, passed in by the shell.
pub type Timestamp = u64;

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
/// The longest AWAY message kept (`AWAYLEN`), in bytes.
pub const AWAYLEN: usize = 200;
/// The longest channel key kept (`KEYLEN`), in bytes.
pub const KEYLEN: usize = 23;
/// The most parameter modes (`+o`, `+b`, `+k`...) applied from one MODE
/// (`MODES`); the rest are ignored.
pub const MODES: usize = 4;
/// The most pending invitations a client keeps; the oldest goes first.
pub const MAX_INVITES: usize = 16;
/// Seconds between two OPER attempts of one client: each costs an argon2
/// verification.
pub const OPER_RETRY: Timestamp = 3;

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
    /// The most bans per channel (`MAXLIST=b:N`, 478 beyond).
    #[serde(default = "default_max_bans")]
    pub max_bans: usize,
    /// Departed nicks remembered for WHOWAS, newest first.
    #[serde(default = "default_whowas")]
    pub whowas: usize,
    /// Server operators (OPER name password) with argon2id hashes.
    #[serde(default)]
    pub opers: Vec<OperConfig>,
    /// List every PRIVMSG and NOTICE delivered in
    /// [`Outbox::history`] (a server with a history store).
    #[serde(default)]
    pub history: bool,
}

fn default_max_bans() -> usize {
    100
}

fn default_whowas() -> usize {
    200
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            server_name: "irc.trident.local".into(),
            network: "trident".into(),
            password: None,
            motd: None,
            max_channels: 50,
            max_bans: default_max_bans(),
            whowas: default_whowas(),
            opers: Vec::new(),
            history: false,
        }
    }
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
    /// The time of the latest call that gave one (signon, WHOWAS).
    now: Timestamp,
    /// Departed nicks, newest first, at most `config.whowas`.
    whowas: VecDeque<Departed>,
    /// The most registered clients at once (LUSERS 265/266).
    max_users: usize,
    /// The last [`Channel::serial`] given.
    channel_serial: u64,
    /// OPER verifications in the current second `.0` (at most
    /// [`OPER_PER_SECOND`] hub-wide, so a crowd cannot keep the hub busy
    /// hashing).
    oper_budget: (Timestamp, u32),
}

/// The most OPER password checks per second, all clients together.
const OPER_PER_SECOND: u32 = 4;

/// Commands that need registration (451 before it), beside those in
/// [`Hub::handle`]'s first arms.
const REGISTERED_COMMANDS: &[&str] = &[
    "JOIN", "PART", "PRIVMSG", "NOTICE", "NAMES", "TOPIC", "WHO", "LIST", "MOTD", "MODE", "WHOIS", "WHOWAS",
    "USERHOST", "ISON", "AWAY", "LUSERS", "VERSION", "TIME", "ADMIN", "INFO", "KICK", "INVITE", "OPER", "KILL",
];

impl Hub {
    /// An empty hub; `now` is shown as its creation time (003).
    pub fn new(config: HubConfig, now: Timestamp) -> Self {
        Hub {
            config,
            created: now,
            clients: HashMap::new(),
            nicks: HashMap::new(),
            channels: BTreeMap::new(),
            now,
            whowas: VecDeque::new(),
            max_users: 0,
            channel_serial: 0,
            oper_budget: (now, 0),
        }
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
                signon: self.now,
                last_spoke: self.now,
                oper: false,
                multi_prefix: false,
                rare: None,
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

    /// Whether NAMES and WHO show `id` every prefix of a member (`@+nick`)
    /// rather than the highest: the `multi-prefix` capability, for the
    /// code that negotiates it.
    pub fn set_multi_prefix(&mut self, id: ClientId, on: bool) {
        if let Some(client) = self.client_mut(id) {
            client.multi_prefix = on;
        }
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
        self.now = self.now.max(now);
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
            "MODE" => self.mode(id, p, now, out),
            "WHOIS" => self.whois(id, p, out),
            "WHOWAS" => self.whowas(id, p, out),
            "USERHOST" => self.userhost(id, p, out),
            "ISON" => self.ison(id, p, out),
            "AWAY" => self.away(id, p, out),
            "LUSERS" => self.lusers(id, out),
            "VERSION" => self.version(id, out),
            "TIME" => self.time(id, now, out),
            "ADMIN" => self.admin(id, out),
            "INFO" => self.info(id, out),
            "KICK" => self.kick(id, p, out),
            "INVITE" => self.invite(id, p, out),
            "OPER" => self.oper(id, p, now, out),
            "KILL" => self.kill(id, p, out),
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
            self.remember(Departed::of(&client, self.now));
        }
        for key in &client.channels {
            self.leave(key, id);
        }
        Some(client)
    }

    /// Records a registered client's nick for WHOWAS (it quit or changed
    /// nick), forgetting the oldest beyond the configured count.
    fn remember(&mut self, departed: Option<Departed>) {
        let Some(departed) = departed else { return };
        if self.config.whowas == 0 {
            return;
        }
        self.whowas.truncate(self.config.whowas - 1);
        self.whowas.push_front(departed);
    }

    /// Removes `id` from the channel `key` (not from the client's list);
    /// an empty channel is deleted.
    fn leave(&mut self, key: &str, id: ClientId) {
        if let Some(channel) = self.channels.get_mut(key) {
            channel.members.retain(|&m| m != id);
            channel.status.remove(&id);
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
