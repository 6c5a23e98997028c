//! The hub's records of one client and one channel.

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
}

impl Client {
    /// The nick as the target of numerics: `*` until there is one.
    pub(super) fn target(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }
}

/// A channel; it exists while it has members.
#[derive(Debug)]
pub(super) struct Channel {
    /// As first spelled.
    pub(super) name: String,
    pub(super) created: Timestamp,
    pub(super) topic: Option<Topic>,
    /// In join order.
    pub(super) members: Vec<ClientId>,
}

/// A channel's topic and who set it when.
#[derive(Debug)]
pub(super) struct Topic {
    pub(super) text: String,
    /// The setter's `nick!user@host`.
    pub(super) setter: String,
    pub(super) time: Timestamp,
}
