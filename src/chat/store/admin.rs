//! `trident chat account add|list|del`: the accounts of a data directory,
//! edited from the command line (also while a server runs on it).

use std::io::Write;
use std::path::PathBuf;

use super::{AccountError, Store};
use crate::error::{BadInput, Exit};

/// One account command, its input checked and its password read.
#[derive(Debug)]
pub enum AccountJob {
    /// Add `name` with `password`.
    Add {
        /// The data directory.
        data: PathBuf,
        /// The account name.
        name: String,
        /// Its password.
        password: Vec<u8>,
    },
    /// List every account.
    List {
        /// The data directory.
        data: PathBuf,
    },
    /// Delete `name`.
    Del {
        /// The data directory.
        data: PathBuf,
        /// The account name.
        name: String,
    },
}

/// Runs `job`: a bad name or password is bad input (exit 2), an account
/// that exists (add) or does not (del) a failure (exit 1).
pub fn run(job: AccountJob) -> anyhow::Result<Exit> {
    let open = |data: &PathBuf| Store::open(data).map_err(|e| anyhow::anyhow!("{e}"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    match job {
        AccountJob::Add { data, name, password } => {
            let store = open(&data)?;
            match store.add_account(&name, &password, now) {
                Ok(()) => {
                    crate::term::explain(format_args!("account {name} added to {}", store.path().display()));
                    Ok(Exit::Success)
                }
                Err(e) => account_failure(e),
            }
        }
        AccountJob::List { data } => {
            let store = open(&data)?;
            let mut out = std::io::stdout().lock();
            for account in store.accounts()? {
                let created =
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(account.created.max(0).unsigned_abs());
                writeln!(out, "{}\tcreated {}", account.name, httpdate::fmt_http_date(created))?;
            }
            Ok(Exit::Success)
        }
        AccountJob::Del { data, name } => match open(&data)?.delete_account(&name) {
            Ok(()) => Ok(Exit::Success),
            Err(e) => account_failure(e),
        },
    }
}

fn account_failure(e: AccountError) -> anyhow::Result<Exit> {
    match e {
        AccountError::BadName(_) | AccountError::BadPassword => Err(BadInput(e.to_string()).into()),
        AccountError::Exists(_) | AccountError::Missing(_) => {
            eprintln!("trident: {e}");
            Ok(Exit::Failure)
        }
        other => Err(other.into()),
    }
}
