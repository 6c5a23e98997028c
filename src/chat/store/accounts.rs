//! Accounts: a name (a valid nickname, compared case-folded as nicks are)
//! and an argon2id hash of its password, in PHC form
//! (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`, a random salt each).
//!
//! [`Store::verify`] costs one argon2id evaluation (tens of
//! milliseconds, by design): SASL code runs it off the event loop.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::chat::names::{NICKLEN, fold, valid_nick};

/// The longest password taken, in bytes (SASL PLAIN fits far less in one
/// line; the limit keeps a hostile caller from hashing megabytes).
pub const MAX_PASSWORD: usize = 1024;

/// Why an account could not be added or found.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Not a valid nickname.
    #[error(
        "invalid account name {0:?}: 1 to {NICKLEN} characters, a letter or one of []\\`_^{{|}} first, then also digits and -"
    )]
    BadName(String),
    /// Empty or longer than [`MAX_PASSWORD`].
    #[error("the password must be 1 to {MAX_PASSWORD} bytes")]
    BadPassword,
    /// The name (case-folded) is taken.
    #[error("account {0} exists already")]
    Exists(String),
    /// No such account.
    #[error("no account {0}")]
    Missing(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AccountError {
    fn from(e: rusqlite::Error) -> Self {
        AccountError::Store(StoreError::Sqlite(e))
    }
}

/// One account, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    /// The name as it was given.
    pub name: String,
    /// When it was created, seconds since the epoch.
    pub created: i64,
}

/// `name`'s folded form, if it is a valid account name.
fn key(name: &str) -> Result<String, AccountError> {
    if valid_nick(name) { Ok(fold(name)) } else { Err(AccountError::BadName(name.to_string())) }
}

/// The PHC string of an argon2id hash of `password` with a fresh salt.
pub fn hash_password(password: &[u8]) -> Result<String, AccountError> {
    if password.is_empty() || password.len() > MAX_PASSWORD {
        return Err(AccountError::BadPassword);
    }
    Argon2::default().hash_password(password).map(|h| h.to_string()).map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (false for a hash
/// that does not parse).
pub fn password_matches(password: &[u8], hash: &str) -> bool {
    password.len() <= MAX_PASSWORD && Argon2::default().verify_password(password, hash).is_ok()
}

impl Store {
    /// Adds account `name` with `password`; `now` is its creation time.
    pub fn add_account(&self, name: &str, password: &[u8], now: i64) -> Result<(), AccountError> {
        let key = key(name)?;
        let hash = hash_password(password)?;
        let added = self.conn().execute(
            "INSERT INTO accounts (name, display, hash, created) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![key, name, hash, now],
        )?;
        if added == 0 {
            return Err(AccountError::Exists(name.to_string()));
        }
        Ok(())
    }

    /// Deletes account `name`.
    pub fn delete_account(&self, name: &str) -> Result<(), AccountError> {
        let key = key(name)?;
        match self.conn().execute("DELETE FROM accounts WHERE name = ?1", [key])? {
            0 => Err(AccountError::Missing(name.to_string())),
            _ => Ok(()),
        }
    }

    /// Every account, by folded name.
    pub fn accounts(&self) -> Result<Vec<AccountInfo>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT display, created FROM accounts ORDER BY name")?;
        let rows = stmt.query_map([], |row| Ok(AccountInfo { name: row.get(0)?, created: row.get(1)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The account `name` as it was spelled when added, if it exists
    /// (nick reservation: a nick that is an account's name).
    pub fn account(&self, name: &str) -> Result<Option<String>, StoreError> {
        if !valid_nick(name) {
            return Ok(None);
        }
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT display FROM accounts WHERE name = ?1")?;
        Ok(stmt.query_row([fold(name)], |row| row.get(0)).optional()?)
    }

    /// The account `name` if `password` is its password (the name as
    /// spelled when added), None for a wrong password or no such account.
    pub fn verify(&self, name: &str, password: &[u8]) -> Result<Option<String>, StoreError> {
        if !valid_nick(name) {
            return Ok(None);
        }
        let found: Option<(String, String)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached("SELECT display, hash FROM accounts WHERE name = ?1")?;
            stmt.query_row([fold(name)], |row| Ok((row.get(0)?, row.get(1)?))).optional()?
        };
        // The hash is checked with the connection unlocked.
        Ok(found.and_then(|(display, hash)| password_matches(password, &hash).then_some(display)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_added_listed_verified_and_deleted_case_insensitively() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.add_account("Alice[1]", b"hunter2", 100).unwrap();
        assert!(matches!(store.add_account("alice{1}", b"x", 101), Err(AccountError::Exists(_))));
        assert_eq!(store.accounts().unwrap(), [AccountInfo { name: "Alice[1]".into(), created: 100 }]);
        assert_eq!(store.verify("ALICE{1}", b"hunter2").unwrap().as_deref(), Some("Alice[1]"));
        assert_eq!(store.verify("alice[1]", b"hunter3").unwrap(), None);
        assert_eq!(store.verify("bob", b"hunter2").unwrap(), None);
        assert_eq!(store.account("alice{1}").unwrap().as_deref(), Some("Alice[1]"));
        assert!(matches!(store.delete_account("bob"), Err(AccountError::Missing(_))));
        store.delete_account("alice[1]").unwrap();
        assert!(store.accounts().unwrap().is_empty());
    }

    #[test]
    fn bad_names_and_passwords_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for name in ["", "1abc", "a b", "#chan", &"a".repeat(NICKLEN + 1)] {
            assert!(matches!(store.add_account(name, b"pw", 0), Err(AccountError::BadName(_))), "{name:?}");
        }
        assert!(matches!(store.add_account("ok", b"", 0), Err(AccountError::BadPassword)));
        assert!(matches!(store.add_account("ok", &[b'x'; MAX_PASSWORD + 1], 0), Err(AccountError::BadPassword)));
        assert!(store.accounts().unwrap().is_empty());
    }

    #[test]
    fn hashes_are_salted_argon2id() {
        let a = hash_password(b"same").unwrap();
        let b = hash_password(b"same").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(password_matches(b"same", &a) && password_matches(b"same", &b));
        assert!(!password_matches(b"other", &a));
        assert!(!password_matches(b"same", "not a hash"));
    }
}
