//! The database's tables, and how every connection to it is set up.
//!
//! `PRAGMA user_version` holds the schema version; a file from a newer
//! trident is refused rather than misread. Every connection runs in WAL
//! mode (readers never wait for the writer, the account commands work
//! while a server runs) with `synchronous=FULL` (a commit is on disk when
//! it returns: the writer commits once per batch, so this costs one fsync
//! per batch window, not one per message), and waits up to
//! [`BUSY_TIMEOUT`] for another connection's write lock.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// The schema this program writes.
pub(crate) const VERSION: i64 = 1;

/// How long a connection waits for another one's write to finish.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Version 1: accounts, and messages with their conversation keys.
///
/// - `accounts.name` is the case-folded account name (RFC 1459 folding,
///   as nicks), `display` as it was given;
/// - `messages.seq` orders messages stored at the same millisecond;
///   `convo` is the conversation a message belongs to (a folded channel
///   name, or for a private message the two folded nicks, sorted, joined
///   by a space), `dm_a`/`dm_b` those two nicks (NULL for a channel) so the
///   conversations of one nick are found without a scan.
const SCHEMA_V1: &str = "
CREATE TABLE accounts (
    name TEXT PRIMARY KEY NOT NULL,
    display TEXT NOT NULL,
    hash TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    msgid TEXT NOT NULL UNIQUE,
    time_ms INTEGER NOT NULL,
    convo TEXT NOT NULL,
    dm_a TEXT,
    dm_b TEXT,
    command TEXT NOT NULL,
    sender TEXT NOT NULL,
    target TEXT NOT NULL,
    text TEXT NOT NULL,
    account TEXT
);
CREATE INDEX messages_by_convo ON messages (convo, time_ms, seq);
CREATE INDEX messages_by_dm_a ON messages (dm_a, time_ms) WHERE dm_a IS NOT NULL;
CREATE INDEX messages_by_dm_b ON messages (dm_b, time_ms) WHERE dm_b IS NOT NULL;
";

/// Opens `path` (created if missing) with the settings of every
/// connection, creating or checking the schema.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode answers with the mode in force.
    let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    let version = |conn: &Connection| conn.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0));
    // Most opens find the schema in place and take no write lock.
    if version(&conn)? < VERSION {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if version(&tx)? < 1 {
            tx.execute_batch(SCHEMA_V1)?;
            tx.pragma_update(None, "user_version", VERSION)?;
        }
        tx.commit()?;
    }
    let found = version(&conn)?;
    if found > VERSION {
        return Err(StoreError::NewerSchema(path.to_path_buf(), found, VERSION));
    }
    Ok(conn)
}
