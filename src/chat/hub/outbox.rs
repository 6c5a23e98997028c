//! What the [`Hub`](super::Hub) hands back to its I/O shell after each
//! call: the lines to write to whom, the connections to close, and the
//! registrations and departures for the server's log.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::chat::store::HistoryRecord;

/// One line to send, `\r\n` included; shared by every recipient of a
/// broadcast.
pub type Line = Arc<str>;

/// A connection, named by the I/O shell (unique among connected clients).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientId(pub u64);

/// One line for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The recipient.
    pub to: ClientId,
    /// The line, `\r\n` included, at most [`MAX_LINE`](crate::chat::MAX_LINE) bytes.
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
    /// Messages to store in the history, in order (only with
    /// [`HubConfig::history`](super::HubConfig::history); not counted by
    /// [`is_empty`](Self::is_empty)).
    pub history: Vec<HistoryRecord>,
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
        self.history.clear();
    }

    pub(super) fn send(&mut self, to: ClientId, line: &Line) {
        self.deliveries.push(Delivery { to, line: Arc::clone(line) });
    }
}
