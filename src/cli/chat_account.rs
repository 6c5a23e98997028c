//! `trident chat account add|list|del`: their flags, and the password,
//! read from the terminal without echo or, for scripts, from stdin.

use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::chat::names::valid_nick;
use crate::chat::store::accounts::{AccountError, MAX_PASSWORD};
use crate::chat::store::admin::AccountJob;
use crate::error::BadInput;

/// `trident chat account --help` epilogue.
pub const ACCOUNT_HELP: &str = "\
Examples:
  trident chat account add alice --data /var/lib/trident     (asks twice, no echo)
  printf '%s\\n' \"$PW\" | trident chat account add bob --data d --password-stdin
  trident chat account list --data /var/lib/trident
  trident chat account del alice --data /var/lib/trident
The accounts live in the database `chat serve --data DIR` keeps its
history in (editable while it runs); the server does not log users in
with them yet (no SASL). Names are nicknames, compared case-insensitively
(RFC 1459); passwords are stored as argon2id hashes. Ctrl-C at the
prompt leaves the terminal's echo on.
Exit status: 0 done; 1 the account exists (add) or does not (del); 2 bad
name or password.";

/// `trident chat account` subcommands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add an account (the password from the terminal, or --password-stdin).
    Add(AddArgs),
    /// List the accounts and when each was created.
    List(DataArg),
    /// Delete an account.
    Del(DelArgs),
}

/// The data directory every account command works on.
#[derive(Debug, Args)]
pub struct DataArg {
    /// The server's data directory (`chat serve --data DIR`); created if
    /// missing.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
}

/// `trident chat account add` options.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The account name (a valid nickname).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The data directory.
    #[command(flatten)]
    pub data: DataArg,
    /// Read the password from the first line of stdin (for scripts)
    /// instead of asking on the terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `trident chat account del` options.
#[derive(Debug, Args)]
pub struct DelArgs {
    /// The account name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The data directory.
    #[command(flatten)]
    pub data: DataArg,
}

impl AccountCommand {
    /// The job, its name checked and (add) its password read.
    pub fn into_job(self) -> anyhow::Result<AccountJob> {
        let check = |name: &str| {
            if valid_nick(name) { Ok(()) } else { Err(BadInput(AccountError::BadName(name.into()).to_string())) }
        };
        Ok(match self {
            AccountCommand::Add(args) => {
                check(&args.name)?;
                let password = if args.password_stdin {
                    let mut line = Vec::new();
                    std::io::stdin().lock().take_line(&mut line)?;
                    line
                } else {
                    ask_twice(&args.name)?
                };
                if password.is_empty() || password.len() > MAX_PASSWORD {
                    return Err(BadInput(AccountError::BadPassword.to_string()).into());
                }
                AccountJob::Add { data: args.data.data, name: args.name, password }
            }
            AccountCommand::List(data) => AccountJob::List { data: data.data },
            AccountCommand::Del(args) => {
                check(&args.name)?;
                AccountJob::Del { data: args.data.data, name: args.name }
            }
        })
    }
}

/// Reading one line, at most a little over [`MAX_PASSWORD`] bytes, its
/// line ending removed.
trait TakeLine {
    fn take_line(&mut self, line: &mut Vec<u8>) -> std::io::Result<()>;
}

impl<R: BufRead> TakeLine for R {
    fn take_line(&mut self, line: &mut Vec<u8>) -> std::io::Result<()> {
        // One byte over the limit is enough to refuse it.
        std::io::Read::take(self, MAX_PASSWORD as u64 + 2).read_until(b'\n', line)?;
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
        }
        Ok(())
    }
}

/// Asks for `name`'s password twice on the terminal, without echo.
fn ask_twice(name: &str) -> anyhow::Result<Vec<u8>> {
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty");
    let tty = match tty {
        Ok(tty) if tty.is_terminal() => tty,
        _ => return Err(BadInput("no terminal to ask the password on: use --password-stdin".into()).into()),
    };
    let first = ask(&tty, &format!("Password for {name}: "))?;
    let again = ask(&tty, "Again: ")?;
    if first != again {
        return Err(BadInput("the passwords differ".into()).into());
    }
    Ok(first)
}

/// Prompts on `tty` and reads a line with its echo off (restored after).
fn ask(tty: &std::fs::File, prompt: &str) -> anyhow::Result<Vec<u8>> {
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data that tcgetattr fills in on success.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open terminal; saved is a valid termios to fill.
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // Echo goes off (and what was typed ahead is discarded) before the
    // prompt shows: nothing typed after it is echoed or lost.
    // SAFETY: fd is an open terminal; quiet is a valid termios.
    if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // Ctrl-C (or Ctrl-\, a hangup or a TERM) while asking: echo comes back on
    // before the signal ends the program as it would have.
    let mut handlers = Vec::new();
    for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
        let restore = move || {
            // SAFETY: tcsetattr is async-signal-safe; fd and saved are
            // plain values copied into the handler.
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
            let _ = signal_hook::low_level::emulate_default_handler(signal);
        };
        // SAFETY: the handler only calls async-signal-safe functions.
        match unsafe { signal_hook::low_level::register(signal, restore) } {
            Ok(id) => handlers.push(id),
            Err(e) => {
                for id in handlers {
                    signal_hook::low_level::unregister(id);
                }
                // SAFETY: as above, with the settings read before.
                unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
                return Err(e.into());
            }
        }
    }
    let mut out = tty;
    let mut line = Vec::new();
    let read = out.write_all(prompt.as_bytes()).and_then(|()| std::io::BufReader::new(tty).take_line(&mut line));
    // SAFETY: as above, with the settings read before.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    for id in handlers {
        signal_hook::low_level::unregister(id);
    }
    read?;
    Ok(line)
}
