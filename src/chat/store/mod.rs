//! The chat server's durable state in one SQLite database: accounts
//! (argon2id password hashes) and the history of channel and private
//! messages.
//!
//! `chat serve --data DIR` keeps it in `DIR/trident-chat.sqlite3` (WAL
//! journal, `synchronous=FULL`); without `--data` nothing is stored, as an
//! in-memory server always did. `chat account add|list|del --data DIR`
//! edits the accounts of the same file, even while a server runs on it.
//!
//! The parts:
//! - [`Store`]: the opened database, for the account commands and for
//!   queries ([`history`]: LATEST/BEFORE/AFTER/AROUND/BETWEEN/TARGETS as
//!   `draft/chathistory` asks them, bounded result counts; [`accounts`]:
//!   add, delete, list, verify). Its calls block on SQLite (and argon2),
//!   so they belong off a server's event loop;
//! - [`writer`]: the group-commit writer the server appends history
//!   through: a bounded queue that the hub's shell only pushes to (never
//!   waiting: a full queue counts a drop), and a thread that commits what
//!   arrived in one transaction every batch window or batch size. The
//!   kill -9 bound follows from it: a message the hub has handled is on
//!   disk at most one window (plus one commit) later, so a crash loses at
//!   most the messages of the last window.
//!
//! The hub stays sans-IO: it lists what to store in its outbox
//! ([`HistoryRecord`]) and the server's core stamps each with a msgid and
//! a server time ([`Stamper`]) and pushes it to the writer.

pub mod accounts;
pub mod admin;
pub mod history;
mod schema;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub use self::accounts::{AccountError, AccountInfo};
pub use self::history::{
    Bound, Conversation, HistoryRecord, Kind, MAX_QUERY, Stamped, Stamper, StoredMessage, TargetSeen,
};
pub use self::writer::{HistorySink, WriterConfig, WriterGuard, WriterStats};

/// The database's file name inside `--data DIR`.
pub const DB_FILE: &str = "trident-chat.sqlite3";

/// A failure of the database (or of the data directory).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created or used.
    #[error("data directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file holds a newer schema than this program knows.
    #[error("database {0} has schema version {1}, newer than this trident's {2}")]
    NewerSchema(PathBuf, i64, i64),
}

/// The opened database; see the module documentation.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    conn: Mutex<rusqlite::Connection>,
}

impl Store {
    /// Opens (creating the directory and the schema when missing) the
    /// database of data directory `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir(dir.to_path_buf(), e))?;
        let path = dir.join(DB_FILE);
        let conn = schema::open(&path)?;
        Ok(Store { path, conn: Mutex::new(conn) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the group-commit writer on this database (its own
    /// connection): the sink to push records to and the guard that stops
    /// it, committing what is queued.
    pub fn writer(&self, config: WriterConfig) -> Result<(HistorySink, WriterGuard), StoreError> {
        writer::start(schema::open(&self.path)?, config)
    }

    fn conn(&self) -> MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
