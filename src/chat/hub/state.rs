//! The hub's records of one client and one channel, and the bounded
//! history of departed nicks (WHOWAS).

use std::collections::HashMap;

use super::{ClientId, Timestamp};

/// A connection as the hub knows it, registered or not.
#[derive(Debug)]
pub(super) struct Client {
    /// As shown in prefixes (an IPv6 address starting with `:` gets a `0`).
    pub(super) host: String,
    pub(super) nick: Option<String>,
    /// User name and real name, from USER.
    pub(super) user: Option<(String, String)>,
    pub(super) pass: Option<String>,
    /// CAP LS or REQ seen and no CAP END yet: registration waits.
    pub(super) cap_negotiating: bool,
    pub(super) registered: bool,
    pub(super) invisible: bool,
    /// `nick!user@host`, once registered.
    pub(super) prefix: String,
    /// Folded names of the channels it is in, in join order.
    pub(super) channels: Vec<String>,
    /// When it registered (WHOIS 317).
    pub(super) signon: Timestamp,
    /// When it last sent PRIVMSG or NOTICE (WHOIS idle time).
    pub(super) last_spoke: Timestamp,
    /// Whether it is a server operator (OPER; user mode `o`).
    pub(super) oper: bool,
    /// NAMES and WHO show every prefix of a member, not just the highest
    /// (the `multi-prefix` capability).
    pub(super) multi_prefix: bool,
    /// What few clients ever have (away, invited, a failed OPER), out of
    /// line so that every client does not carry its size.
    pub(super) rare: Option<Box<Rare>>,
}

/// The parts of a [`Client`] most never use.
#[derive(Debug, Default)]
pub(super) struct Rare {
    /// Its AWAY message, if away.
    pub(super) away: Option<String>,
    /// No OPER attempt is checked before this time (one per
    /// [`OPER_RETRY`](super::OPER_RETRY) seconds).
    pub(super) oper_not_before: Timestamp,
    /// The [`Channel::serial`]s of the channels it was invited to, oldest
    /// first, at most [`MAX_INVITES`](super::MAX_INVITES): an invitation
    /// is to one channel, not to a later one of the same name.
    pub(super) invited: Vec<u64>,
}

impl Client {
    /// The nick as the target of numerics: `*` until there is one.
    pub(super) fn target(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }

    /// Its AWAY message, if away.
    pub(super) fn away(&self) -> Option<&str> {
        self.rare.as_ref()?.away.as_deref()
    }

    /// The serials of the channels it is invited to.
    pub(super) fn invited(&self) -> &[u64] {
        self.rare.as_ref().map_or(&[], |r| &r.invited)
    }

    /// When its next OPER attempt may be checked.
    pub(super) fn oper_not_before(&self) -> Timestamp {
        self.rare.as_ref().map_or(0, |r| r.oper_not_before)
    }

    /// The rare parts, made if it had none.
    pub(super) fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
}

/// A channel; it exists while it has members.
#[derive(Debug)]
pub(super) struct Channel {
    /// As first spelled.
    pub(super) name: String,
    /// Unique among the channels the hub ever had.
    pub(super) serial: u64,
    pub(super) created: Timestamp,
    pub(super) topic: Option<Topic>,
    /// In join order.
    pub(super) members: Vec<ClientId>,
    /// Members with a prefix (operator, voice); absent: none. Every key
    /// is a member.
    pub(super) status: HashMap<ClientId, Status>,
    pub(super) modes: ChannelModes,
    /// Ban masks (`nick!user@host`, folded, `*` and `?` wildcards), oldest
    /// first, at most [`HubConfig::max_bans`](super::HubConfig::max_bans).
    pub(super) bans: Vec<Ban>,
}

impl Channel {
    /// A new empty channel with the default modes (`+nt`).
    pub(super) fn new(name: &str, serial: u64, now: Timestamp) -> Channel {
        Channel {
            name: name.to_owned(),
            serial,
            created: now,
            topic: None,
            members: Vec::new(),
            status: HashMap::new(),
            modes: ChannelModes { no_external: true, topic_ops: true, ..ChannelModes::default() },
            bans: Vec::new(),
        }
    }

    /// `id`'s prefixes in this channel.
    pub(super) fn status(&self, id: ClientId) -> Status {
        self.status.get(&id).copied().unwrap_or_default()
    }

    /// Whether `id` is a channel operator here.
    pub(super) fn is_op(&self, id: ClientId) -> bool {
        self.status(id).op
    }

    /// Sets or clears one of `id`'s prefixes; true if it changed.
    pub(super) fn set_status(&mut self, id: ClientId, voice: bool, on: bool) -> bool {
        let mut status = self.status(id);
        let flag = if voice { &mut status.voice } else { &mut status.op };
        if *flag == on {
            return false;
        }
        *flag = on;
        if status == Status::default() {
            self.status.remove(&id);
        } else {
            self.status.insert(id, status);
        }
        true
    }
}

/// A member's prefixes in one channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Status {
    /// `+o`, shown as `@`.
    pub(super) op: bool,
    /// `+v`, shown as `+`.
    pub(super) voice: bool,
}

impl Status {
    /// The prefixes shown before the nick in NAMES and WHO: the highest
    /// only, or every one (`multi-prefix`).
    pub(super) fn prefixes(self, all: bool) -> &'static str {
        match (self.op, self.voice, all) {
            (true, true, true) => "@+",
            (true, _, _) => "@",
            (false, true, _) => "+",
            (false, false, _) => "",
        }
    }
}

/// A channel's flag and parameter modes (the lists and prefixes are kept
/// apart).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ChannelModes {
    /// `+i`: joining needs an INVITE.
    pub(super) invite_only: bool,
    /// `+m`: only operators and voiced members may speak.
    pub(super) moderated: bool,
    /// `+n`: only members may send to it.
    pub(super) no_external: bool,
    /// `+t`: only operators may set the topic.
    pub(super) topic_ops: bool,
    /// `+s`: hidden from LIST, WHOIS, NAMES and WHO of non-members.
    pub(super) secret: bool,
    /// `+k`: the key JOIN must give.
    pub(super) key: Option<String>,
    /// `+l`: the most members.
    pub(super) limit: Option<usize>,
}

impl ChannelModes {
    /// `+klimnst`-style flags and, for members, the key and limit as
    /// parameters (324).
    pub(super) fn describe(&self, show_key: bool) -> (String, Vec<String>) {
        let mut flags = String::from("+");
        let mut params = Vec::new();
        for (on, c) in [(self.invite_only, 'i'), (self.moderated, 'm'), (self.no_external, 'n')] {
            if on {
                flags.push(c);
            }
        }
        for (on, c) in [(self.secret, 's'), (self.topic_ops, 't')] {
            if on {
                flags.push(c);
            }
        }
        if let Some(key) = &self.key {
            flags.push('k');
            params.push(if show_key { key.clone() } else { "*".to_owned() });
        }
        if let Some(limit) = self.limit {
            flags.push('l');
            params.push(limit.to_string());
        }
        (flags, params)
    }
}

/// One entry of a channel's ban list.
#[derive(Clone, Debug)]
pub(super) struct Ban {
    /// The mask as set, normalised to `nick!user@host`.
    pub(super) mask: String,
    /// Who set it (`nick!user@host`).
    pub(super) setter: String,
    pub(super) time: Timestamp,
}

/// A nick that left (quit, was killed or changed nick), for WHOWAS.
#[derive(Clone, Debug)]
pub(super) struct Departed {
    pub(super) nick: String,
    pub(super) user: String,
    pub(super) host: String,
    pub(super) realname: String,
    pub(super) time: Timestamp,
}

impl Departed {
    /// What WHOWAS keeps of `client` (none without a nick and USER).
    pub(super) fn of(client: &Client, now: Timestamp) -> Option<Departed> {
        let (nick, (user, realname)) = (client.nick.as_ref()?, client.user.as_ref()?);
        Some(Departed {
            nick: nick.clone(),
            user: user.clone(),
            host: client.host.clone(),
            realname: realname.clone(),
            time: now,
        })
    }
}

/// A channel's topic and who set it when.
#[derive(Debug)]
pub(super) struct Topic {
    pub(super) text: String,
    /// The setter's `nick!user@host`.
    pub(super) setter: String,
    pub(super) time: Timestamp,
}
