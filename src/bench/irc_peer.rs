//! The chat servers `trident bench chat` measures: `trident chat serve` on
//! each engine, and stock IRC servers beside them (InspIRCd, ngircd, or
//! any IRC server given as a command), each started by the bench on its
//! own loopback port and stopped after the step.
//!
//! A stock server runs with the config the project ships for it
//! (`bench/irc/*.conf`, built into the binary and written with the port,
//! a scratch directory and the client count filled in): loopback only, no
//! DNS or ident lookups, room for every bench client from one address, no
//! flood control, as trident's servers run under load. That config is
//! what makes the comparison fair, so it is part of the project and not
//! of the machine.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::fixture::{Served, TempDir, free_port};
use super::harness::find_program;
use super::pin::Pinning;
use crate::engine::EngineKind;

/// The stock IRC servers the bench knows how to configure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrcKind {
    /// InspIRCd 3.
    Inspircd,
    /// ngircd.
    Ngircd,
}

impl IrcKind {
    /// The kind a `--peer-irc` name stands for: its prefix.
    pub fn of_name(name: &str) -> Option<IrcKind> {
        if name.starts_with("inspircd") {
            Some(IrcKind::Inspircd)
        } else if name.starts_with("ngircd") {
            Some(IrcKind::Ngircd)
        } else {
            None
        }
    }

    /// Its program's name.
    pub fn program(self) -> &'static str {
        match self {
            IrcKind::Inspircd => "inspircd",
            IrcKind::Ngircd => "ngircd",
        }
    }

    /// Where it is installed (PATH, /opt/NAME/bin, then the sbin
    /// directories Debian puts servers in).
    pub fn locate(self) -> Result<PathBuf, String> {
        let program = self.program();
        find_program(program)
            .or_else(|| {
                ["/usr/sbin", "/usr/local/sbin"].iter().map(|dir| Path::new(dir).join(program)).find(|p| p.is_file())
            })
            .ok_or_else(|| format!("{program} is not installed (apt-get install {program})"))
    }

    /// The config the project ships for it, with `{port}`, `{dir}` and
    /// `{clients}` to fill in.
    fn template(self) -> &'static str {
        match self {
            IrcKind::Inspircd => include_str!("../../bench/irc/inspircd.conf"),
            IrcKind::Ngircd => include_str!("../../bench/irc/ngircd.conf"),
        }
    }

    /// The arguments that run it in the foreground on `config`.
    fn args(self, config: &Path) -> String {
        let config = shell_quote(&config.to_string_lossy());
        match self {
            // InspIRCd refuses to start as root unless told to.
            IrcKind::Inspircd if is_root() => format!("--nofork --nopid --runasroot --config {config}"),
            IrcKind::Inspircd => format!("--nofork --nopid --config {config}"),
            IrcKind::Ngircd => format!("--nodaemon --config {config}"),
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A stock IRC server to measure: a name for the reports, its kind (the
/// shipped config it gets) and the command that runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IrcPeer {
    /// The name in reports.
    pub name: String,
    /// The shipped config it runs with (None: the command configures it).
    pub kind: Option<IrcKind>,
    /// A shell command, `{port}`, `{config}` and `{dir}` filled in; None:
    /// the kind's installed program.
    pub command: Option<String>,
}

impl IrcPeer {
    /// The installed `kind` under its own name (`--vs inspircd`).
    pub fn builtin(kind: IrcKind) -> IrcPeer {
        IrcPeer { name: kind.program().into(), kind: Some(kind), command: None }
    }

    /// Parses `--peer-irc NAME=COMMAND`. A NAME starting with `inspircd`
    /// or `ngircd` gets that server's shipped config, and its foreground
    /// and config arguments are added unless COMMAND has `{config}`; any
    /// other NAME is a server COMMAND starts by itself on `{port}`.
    pub fn parse(spec: &str) -> Result<IrcPeer, String> {
        let bad = || {
            format!(
                "invalid --peer-irc {spec:?}: expected NAME=COMMAND (inspircd=/usr/sbin/inspircd, \
                 ngircd=ngircd, or any NAME with {{port}} in COMMAND)"
            )
        };
        let (name, command) = spec.split_once('=').ok_or_else(bad)?;
        let (name, command) = (name.trim(), command.trim());
        if name.is_empty() || command.is_empty() || name.contains(char::is_whitespace) {
            return Err(bad());
        }
        let kind = IrcKind::of_name(name);
        if kind.is_none() && !command.contains("{port}") {
            return Err(bad());
        }
        Ok(IrcPeer { name: name.into(), kind, command: Some(command.into()) })
    }

    /// Whether it can run here, or why not (saying what to install).
    pub fn check(&self) -> Result<(), String> {
        match (&self.command, self.kind) {
            (None, Some(kind)) => kind.locate().map(drop),
            (Some(command), _) => {
                let program = command.split_whitespace().next().unwrap_or_default();
                let found =
                    if program.contains('/') { Path::new(program).is_file() } else { find_program(program).is_some() };
                if found { Ok(()) } else { Err(format!("{program} is not installed")) }
            }
            (None, None) => Err(format!("{} has no command", self.name)),
        }
    }

    /// The shell line that runs it with `config` on `port`.
    fn command_line(&self, port: u16, config: &Path, dir: &Path) -> anyhow::Result<String> {
        let program = match (&self.command, self.kind) {
            (Some(command), _) => command.clone(),
            (None, Some(kind)) => shell_quote(&kind.locate().map_err(anyhow::Error::msg)?.to_string_lossy()),
            (None, None) => anyhow::bail!("{} has no command", self.name),
        };
        let mut line = program
            .replace("{port}", &port.to_string())
            .replace("{dir}", &shell_quote(&dir.to_string_lossy()))
            .replace("{config}", &shell_quote(&config.to_string_lossy()));
        if let Some(kind) = self.kind
            && !program.contains("{config}")
        {
            line = format!("{line} {}", kind.args(config));
        }
        Ok(line)
    }

    /// Starts it on a free loopback port for `clients` clients, in a
    /// scratch directory holding its config, log and PID file.
    fn start(&self, clients: usize, pin: Option<Pinning>) -> anyhow::Result<Running> {
        let scratch = TempDir::new("trident-bench-irc")?;
        let port = free_port()?;
        let config = scratch.path().join(format!("{}.conf", self.name));
        if let Some(kind) = self.kind {
            let text = kind
                .template()
                .replace("{port}", &port.to_string())
                .replace("{dir}", &scratch.path().to_string_lossy())
                .replace("{clients}", &(clients + 64).to_string());
            fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
        }
        let line = self.command_line(port, &config, scratch.path())?;
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("exec {line}")]).current_dir(scratch.path());
        if let Some(pin) = pin {
            pin.pin_server(&mut cmd);
        }
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let served = Served::start(cmd, addr, &self.name)?;
        Ok(Running { served, _scratch: Some(scratch) })
    }
}

/// A chat server under test, stopped (and its scratch directory removed)
/// when dropped.
#[derive(Debug)]
pub struct Running {
    /// The server process and its address.
    pub served: Served,
    /// Dropped after the server stopped.
    _scratch: Option<TempDir>,
}

/// What a started server is for: a load (senders, a big channel) or idle
/// connections held for a memory probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Traffic: no flood control, queues large enough for the load.
    Load,
    /// Idle: no registration or ping timeout while the connections wait.
    Idle,
}

/// One chat server contender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatServer {
    /// `trident chat serve` on an engine.
    Trident(EngineKind),
    /// A stock IRC server.
    Irc(IrcPeer),
}

impl ChatServer {
    /// The name in reports: `trident-ENGINE` or the peer's name.
    pub fn label(&self) -> String {
        match self {
            ChatServer::Trident(engine) => format!("trident-{engine}"),
            ChatServer::Irc(peer) => peer.name.clone(),
        }
    }

    /// Starts it for `clients` clients, the server pinned to `pin`'s
    /// server CPU if given.
    pub fn start(&self, clients: usize, setup: Setup, pin: Option<Pinning>) -> anyhow::Result<Running> {
        match self {
            ChatServer::Irc(peer) => peer.start(clients, pin),
            ChatServer::Trident(engine) => {
                let port = free_port()?;
                let addr: SocketAddr = ([127, 0, 0, 1], port).into();
                let mut cmd = Command::new(std::env::current_exe()?);
                let limit = (clients + 16).to_string();
                cmd.args(["chat", "serve", "-e", &engine.to_string(), "--listen", &format!("127.0.0.1:{port}")]);
                cmd.args(["--max-clients", &limit, "--max-per-ip", &limit]);
                match setup {
                    Setup::Load => {
                        cmd.args(["--flood-rate", "0", "--sendq", "16777216"]);
                        // Every client may fill its queue: the total is no limit here.
                        cmd.args(["--sendq-total", "1099511627776"]);
                    }
                    Setup::Idle => {
                        cmd.args(["--registration-timeout", "1h", "--ping-interval", "1h"]);
                    }
                }
                if let Some(pin) = pin {
                    pin.pin_server(&mut cmd);
                }
                let served = Served::start(cmd, addr, &self.label())?;
                Ok(Running { served, _scratch: None })
            }
        }
    }
}

/// The servers of a run: every engine, then each IRC peer that can run
/// here (the others named on stderr with the reason, and left out).
pub fn line_up(engines: &[EngineKind], peers: &[IrcPeer]) -> Vec<ChatServer> {
    let mut servers: Vec<ChatServer> = engines.iter().map(|&e| ChatServer::Trident(e)).collect();
    for peer in peers {
        match peer.check() {
            Ok(()) => servers.push(ChatServer::Irc(peer.clone())),
            Err(why) => eprintln!("trident: {why}; skipping {}", peer.name),
        }
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_irc_specs() {
        let p = IrcPeer::parse("inspircd=/usr/sbin/inspircd").expect("inspircd");
        assert_eq!(p.kind, Some(IrcKind::Inspircd));
        assert_eq!(p.name, "inspircd");
        let p = IrcPeer::parse("ngircd-26=ngircd").expect("ngircd");
        assert_eq!(p.kind, Some(IrcKind::Ngircd));
        let p = IrcPeer::parse("other=/opt/x/bin/ircd -p {port}").expect("generic");
        assert_eq!(p.kind, None);
        for bad in ["inspircd", "=x", "inspircd=", "other=/bin/ircd", "a b=x {port}"] {
            assert!(IrcPeer::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shipped_configs_have_their_placeholders() {
        for kind in [IrcKind::Inspircd, IrcKind::Ngircd] {
            let t = kind.template();
            assert!(t.contains("{port}") && t.contains("{dir}"), "{kind:?}");
            assert!(t.contains("127.0.0.1"), "{kind:?} listens on loopback only");
        }
    }

    #[test]
    fn command_lines_add_the_kind_arguments_unless_given() {
        let dir = Path::new("/tmp/x");
        let config = dir.join("inspircd.conf");
        let p = IrcPeer::parse("inspircd=/usr/sbin/inspircd").expect("spec");
        let line = p.command_line(7000, &config, dir).expect("line");
        assert!(line.starts_with("/usr/sbin/inspircd --nofork --nopid"), "{line}");
        assert!(line.ends_with("--config '/tmp/x/inspircd.conf'"), "{line}");
        let p = IrcPeer::parse("inspircd=/usr/sbin/inspircd --nofork --config {config}").expect("spec");
        assert_eq!(
            p.command_line(7000, &config, dir).expect("line"),
            "/usr/sbin/inspircd --nofork --config '/tmp/x/inspircd.conf'"
        );
        let p = IrcPeer::parse("x=ircd --port {port}").expect("spec");
        assert_eq!(p.command_line(7000, &config, dir).expect("line"), "ircd --port 7000");
    }
}
