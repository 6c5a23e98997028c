//! The chat server's protocol core: a subset of IRC (RFC 1459/2812 as
//! clients use it), sans-IO.
//!
//! Split as mini-redis splits frames from commands:
//! - [`line`]: bytes to lines ([`LineReader`]: CRLF or LF, 512-byte limit
//!   with resync, strict UTF-8), one per connection;
//! - [`message`]: a line to a [`Message`] (`:prefix COMMAND params
//!   :trailing`, tags skipped) and back;
//! - [`names`]: RFC 1459 case mapping, nickname and channel validity;
//! - [`hub`]: the shared state (clients, nicks, channels) and every
//!   command, as calls `(client, message, now) -> deliveries` on a [`Hub`];
//! - [`store`]: accounts and message history in SQLite (`--data DIR`),
//!   written through a group-commit writer (not sans-IO: the shells own it).
//!
//! An I/O shell (one per engine) owns the sockets and, per connection, a
//! [`LineReader`]; it hands each [`LineEvent`] to [`Hub::handle_event`],
//! writes each [`Delivery`] of the [`Outbox`] to its recipient's
//! connection, closes the connections in [`Outbox::closes`] after flushing
//! them, and calls [`Hub::disconnected`] when a connection goes away on
//! its own. Clocks and limits (flood control, send queues, timeouts) stay
//! in the shell.

pub mod client;
pub mod hub;
pub mod line;
pub mod load;
pub mod load_throttle;
pub mod message;
pub mod names;
pub mod serve;
pub mod store;

pub use hub::{ClientId, Delivery, Hub, HubConfig, Line, Outbox, Timestamp};
pub use line::{LineEvent, LineReader, MAX_LINE};
pub use message::Message;
