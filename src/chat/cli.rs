//! `trident chat ...`: command-line syntax, converted once into configs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::serve::{self, ChatConfig, Limits};
use crate::chat::HubConfig;
use crate::cli::{ServeArgs, parse_duration};
use crate::engine::Interrupt;
use crate::error::{BadInput, Exit};

/// Examples shown under `trident chat --help`.
pub const CHAT_EXAMPLES: &str = "\
Examples:
  trident chat serve                                  127.0.0.1:6667, async
  trident chat serve -e threads --max-per-ip 3 --motd 'Welcome!'
  trident chat serve -e processes -c 4 --listen 127.0.0.1:0
  trident chat serve --listen 127.0.0.1:6697 --tls-cert cert.pem --tls-key key.pem
  irssi -c 127.0.0.1 -p 6667        (any IRC client works)

The server speaks the IRC core clients use (RFC 1459/2812): NICK USER PASS
CAP PING/PONG JOIN PART PRIVMSG NOTICE QUIT NAMES TOPIC WHO LIST MOTD.
Ctrl-C or SIGTERM: every client gets 'ERROR :Server shutting down', exit 0.";

/// `trident chat` subcommands.
#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// Serve IRC clients on any engine.
    Serve(ChatServeArgs),
    /// An IRC client: interactive (slash commands, reconnects), or
    /// --send TEXT for scripts (exit 0 once the server has taken it).
    Connect(super::client::ConnectArgs),
    /// A load generator: N clients in M channels, a paced message rate,
    /// deliveries/s, gaps and latency percentiles (or --idle connections).
    Load(super::load::LoadArgs),
}

/// `trident chat serve` options.
#[derive(Debug, Args)]
pub struct ChatServeArgs {
    /// Server options.
    #[command(flatten)]
    pub server: ServeArgs,
    /// The server's name, the prefix of its messages.
    #[arg(long, default_value = "irc.trident.local", value_name = "NAME")]
    pub server_name: String,
    /// Clients must send PASS with this password before registering.
    #[arg(long, value_name = "P")]
    pub password: Option<String>,
    /// Message of the day (lines separated by \n).
    #[arg(long, value_name = "TEXT")]
    pub motd: Option<String>,
    /// Connections at once; more get an ERROR line and are closed.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_clients: usize,
    /// Connections at once from one IP address (IPv6: one /64). A handful,
    /// as IRC networks allow: one address cannot take every slot. Raise it
    /// for load tests from one machine.
    #[arg(long, default_value_t = Limits::default().max_per_ip, value_name = "N")]
    pub max_per_ip: usize,
    /// Bytes queued for a client that does not read before it is
    /// disconnected ("SendQ exceeded").
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub sendq: usize,
    /// Bytes queued for all clients together (per worker process: this
    /// divided by -c); beyond it, the client with the longest queue is
    /// disconnected ("SendQ exceeded"), so many slow readers cannot
    /// exhaust memory.
    #[arg(long, default_value_t = Limits::default().sendq_total, value_name = "BYTES")]
    pub sendq_total: usize,
    /// Flood control: lines a client may send at once.
    #[arg(long, default_value_t = 20, value_name = "LINES")]
    pub flood_burst: u32,
    /// Flood control: lines per second after the burst (0: no flood control).
    #[arg(long, default_value_t = 10.0, value_name = "PER_S")]
    pub flood_rate: f64,
    /// Flood control: lines that may wait for the rate; beyond, the client
    /// is disconnected ("Excess Flood").
    #[arg(long, default_value_t = 100, value_name = "LINES")]
    pub flood_queue: usize,
    /// Time to register (NICK + USER) after connecting.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DUR")]
    pub registration_timeout: Duration,
    /// Silence after which the server sends PING.
    #[arg(long, default_value = "120s", value_parser = parse_duration, value_name = "DUR")]
    pub ping_interval: Duration,
    /// Time to answer the server's PING before "Ping timeout".
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DUR")]
    pub ping_timeout: Duration,
    /// Serve TLS (IRC over TLS, like port 6697) with this PEM certificate
    /// chain; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ChatServeArgs {
    /// The validated chat config.
    pub fn into_config(self) -> Result<(crate::server::ServerConfig, ChatConfig), BadInput> {
        let server = self.server.into_config(serve::DEFAULT_ADDR)?;
        if !(self.flood_rate >= 0.0 && self.flood_rate.is_finite()) {
            return Err(BadInput(format!(
                "invalid --flood-rate {}: expected lines per second, 0 or more",
                self.flood_rate
            )));
        }
        if self.max_clients == 0 || self.max_per_ip == 0 {
            return Err(BadInput("--max-clients and --max-per-ip must be at least 1".into()));
        }
        if self.sendq_total < crate::chat::MAX_LINE {
            return Err(BadInput(format!(
                "--sendq-total {} is below one line ({} bytes)",
                self.sendq_total,
                crate::chat::MAX_LINE
            )));
        }
        if self.sendq < crate::chat::MAX_LINE {
            return Err(BadInput(format!(
                "--sendq {} is below one line ({} bytes)",
                self.sendq,
                crate::chat::MAX_LINE
            )));
        }
        if self.server_name.is_empty() || self.server_name.contains([' ', ':', '\r', '\n', '\0']) {
            return Err(BadInput(format!("invalid --server-name {:?}: one word, no ':'", self.server_name)));
        }
        let hub = HubConfig {
            server_name: self.server_name,
            password: self.password,
            motd: self.motd,
            ..HubConfig::default()
        };
        let limits = Limits {
            max_clients: self.max_clients,
            max_per_ip: self.max_per_ip,
            sendq: self.sendq,
            sendq_total: self.sendq_total,
            flood_burst: self.flood_burst.max(1),
            flood_rate: self.flood_rate,
            flood_queue: self.flood_queue,
            registration_timeout: self.registration_timeout,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
        };
        let tls = self.tls_cert.zip(self.tls_key);
        Ok((server, ChatConfig { hub, limits, tls }))
    }
}

/// Runs `trident chat ...`.
pub fn run(command: ChatCommand, interrupt: impl FnOnce() -> anyhow::Result<Interrupt>) -> anyhow::Result<Exit> {
    match command {
        ChatCommand::Serve(args) => {
            let (server, chat) = args.into_config()?;
            let interrupt = interrupt()?;
            serve::serve(&server, chat, &interrupt)?;
            Ok(Exit::Success)
        }
        ChatCommand::Connect(args) => super::client::run(args, &interrupt()?),
        ChatCommand::Load(args) => super::load::run(args, &interrupt()?),
    }
}
