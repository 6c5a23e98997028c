//! `trident chat serve|connect|load`: their flags, turned into the chat
//! server's, the client's and the load generator's configs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::serve::ServeArgs;
use super::{parse_duration, parse_duration_or_zero};
use crate::chat::HubConfig;
use crate::chat::client::{CONNECT_HELP, ConnectConfig, DEFAULT_ADDR};
use crate::chat::load::{LoadConfig, LoadFormat};
use crate::chat::serve::log::LogSettings;
use crate::chat::serve::{self, ChatConfig, Limits, StoreSettings};
use crate::chat::store::WriterConfig;
use crate::error::BadInput;

/// Examples shown under `trident chat --help`.
pub const CHAT_EXAMPLES: &str = "\
Examples:
  trident chat serve                                  127.0.0.1:6667, async
  trident chat serve -e threads --max-per-ip 3 --motd 'Welcome!'
  trident chat serve -e processes --workers 4 --listen 127.0.0.1:0
  trident chat serve --listen 127.0.0.1:6697 --tls-cert cert.pem --tls-key key.pem
  trident chat serve --data /var/lib/trident          accounts + message history
  trident chat account add alice --data /var/lib/trident
  irssi -c 127.0.0.1 -p 6667        (any IRC client works)

The server speaks the IRC clients use (RFC 1459/2812, modern numerics):
NICK USER PASS CAP PING/PONG JOIN PART PRIVMSG NOTICE QUIT NAMES TOPIC WHO
LIST MOTD MODE WHOIS WHOWAS USERHOST ISON AWAY LUSERS VERSION TIME ADMIN
INFO KICK INVITE OPER KILL; channel operators (the first member), modes
+o +v +b +k +l +i +m +n +t +s, user mode +i.
Ctrl-C or SIGTERM: every client gets 'ERROR :Server shutting down', exit 0.";

/// `trident chat` subcommands.
#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// Serve IRC clients on any engine.
    Serve(ChatServeArgs),
    /// An IRC client: interactive (slash commands, reconnects), or
    /// --send TEXT for scripts (exit 0 once the server has taken it).
    Connect(ConnectArgs),
    /// A load generator: N clients in M channels, a paced message rate,
    /// deliveries/s, gaps and latency percentiles (or --idle connections).
    Load(LoadArgs),
    /// The accounts of a server's data directory (--data DIR): add, list,
    /// del.
    #[command(subcommand, after_help = super::chat_account::ACCOUNT_HELP)]
    Account(super::chat_account::AccountCommand),
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
    /// Channels one client may be in at once (CHANLIMIT; 405 beyond).
    #[arg(long, default_value_t = HubConfig::default().max_channels, value_name = "N")]
    pub max_channels: usize,
    /// Bans one channel keeps (MAXLIST=b:N; 478 beyond).
    #[arg(long, default_value_t = HubConfig::default().max_bans, value_name = "N")]
    pub max_bans: usize,
    /// Departed nicks remembered for WHOWAS (0: none).
    #[arg(long, default_value_t = HubConfig::default().whowas, value_name = "N")]
    pub whowas: usize,
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
    /// divided by --workers); beyond it, the client with the longest queue is
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
    /// A summary line on stderr (clients, channels, lines in and out per
    /// second) at most this often, when something changed; 0: none. -v
    /// also logs every connect, registration and departure.
    #[arg(long, default_value = "10s", value_parser = parse_duration_or_zero, value_name = "DUR")]
    pub stats_every: Duration,
    /// Server operators for OPER (then KILL): a file of `NAME HASH` lines
    /// (`#` comments), each HASH an argon2id PHC string such as Debian's
    /// argon2 tool prints: `printf %s PASSWORD | argon2 SOMESALT -id -e`
    /// (a salt of 8 or more random characters).
    #[arg(long, value_name = "FILE")]
    pub opers: Option<PathBuf>,
    /// Keep accounts and the history of channel and private messages in
    /// DIR (an SQLite database, created if missing; `chat account` manages
    /// its accounts). Without it nothing is stored.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// With --data: history is written in batches, one transaction per
    /// window; a crash (kill -9) loses at most the messages of the last
    /// window and the commit under way.
    #[arg(long, default_value = "50ms", value_parser = parse_duration, value_name = "DUR", requires = "data")]
    pub history_window: Duration,
    /// With --data: messages waiting for the history writer; beyond it
    /// (the disk slower than the chat) messages are left out of the history
    /// and counted, never held back.
    #[arg(long, default_value_t = WriterConfig::default().queue, value_name = "N", requires = "data")]
    pub history_queue: usize,
    /// With --data: the most messages the history keeps; the oldest beyond
    /// it are deleted (0: keep everything).
    #[arg(long, default_value_t = WriterConfig::default().keep, value_name = "N", requires = "data")]
    pub history_keep: u64,
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
        if self.max_clients == 0 || self.max_per_ip == 0 || self.max_channels == 0 {
            return Err(BadInput("--max-clients, --max-per-ip and --max-channels must be at least 1".into()));
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
        let opers = match &self.opers {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| BadInput(format!("cannot read --opers {}: {e}", path.display())))?;
                crate::chat::hub::parse_opers(&text)
                    .map_err(|e| BadInput(format!("invalid --opers {}: {e}", path.display())))?
            }
            None => Vec::new(),
        };
        if self.history_queue == 0 {
            return Err(BadInput("--history-queue must be at least 1".into()));
        }
        let store = self.data.map(|dir| StoreSettings {
            dir,
            writer: WriterConfig {
                window: self.history_window,
                queue: self.history_queue,
                keep: self.history_keep,
                ..WriterConfig::default()
            },
            sink: None,
        });
        let hub = HubConfig {
            server_name: self.server_name,
            password: self.password,
            motd: self.motd,
            opers,
            history: store.is_some(),
            max_channels: self.max_channels,
            max_bans: self.max_bans,
            whowas: self.whowas,
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
        if let Some((cert, key)) = &tls {
            // A missing or unreadable certificate or key is bad input, told
            // before anything is bound (each process loads them again).
            crate::server::wire::server_config(cert, key).map_err(|e| BadInput(format!("{e:#}")))?;
        }
        // -q: no summary; -v: a line per connect, registration, departure.
        let every = (!self.stats_every.is_zero() && !crate::term::quiet()).then_some(self.stats_every);
        let log = LogSettings { verbose: crate::term::verbose(), every };
        Ok((server, ChatConfig { hub, limits, tls, log, store }))
    }
}

/// `trident chat connect` options.
#[derive(Debug, Args)]
#[command(after_help = CONNECT_HELP)]
pub struct ConnectArgs {
    /// The server's address (HOST:PORT, or HOST with -p or port 6667).
    #[arg(value_name = "ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// The server's port (as irssi's -p), in place of ADDR's.
    #[arg(short = 'p', long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Nickname (default: your login name, $USER, made a valid nick); if
    /// it is taken, `_` is appended until one is free.
    #[arg(short = 'n', long, value_name = "NAME")]
    pub nick: Option<String>,
    /// A channel to join once connected (repeatable, or comma-separated);
    /// the first is the current channel.
    // -j was --join before -j meant tasks in flight: kept hidden.
    #[arg(long = "join", short_alias = 'j', value_name = "#ROOM", value_delimiter = ',')]
    pub join: Vec<String>,
    /// One-shot: send TEXT to the first --join channel (or --to), check
    /// that the server accepted it, quit. One message per line of TEXT.
    #[arg(long, value_name = "TEXT")]
    pub send: Option<String>,
    /// With --send: the recipient, a nick or a channel.
    #[arg(long, value_name = "NICK", requires = "send")]
    pub to: Option<String>,
    /// Server password (sent as PASS).
    #[arg(long, value_name = "P")]
    pub password: Option<String>,
    /// Give up connecting after this long; with --send, the whole exchange.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Interactive: exit (status 1) when the connection drops instead of
    /// reconnecting.
    #[arg(long)]
    pub no_reconnect: bool,
}

impl ConnectArgs {
    /// The client's config (nick, channels and recipient are checked when
    /// it runs).
    pub fn into_config(self) -> ConnectConfig {
        ConnectConfig {
            addr: with_port(&self.addr, self.port),
            nick: self.nick.unwrap_or_else(crate::chat::client::default_nick),
            join: self.join,
            send: self.send,
            to: self.to,
            password: self.password,
            timeout: self.timeout,
            no_reconnect: self.no_reconnect,
        }
    }
}

/// `addr` with `port` in place of its own; a bare host (or IPv6 address)
/// gets `port`, or IRC's 6667.
fn with_port(addr: &str, port: Option<u16>) -> String {
    let (host, has_port) = match addr.rsplit_once(':') {
        // A colon in the host is only a port separator after [v6].
        Some((h, p)) if p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')) => (h, true),
        _ => (addr, false),
    };
    match port {
        None if has_port => addr.to_string(),
        _ if host.contains(':') && !host.starts_with('[') => format!("[{host}]:{}", port.unwrap_or(6667)),
        _ => format!("{host}:{}", port.unwrap_or(6667)),
    }
}

/// `trident chat load --help` epilogue.
const LOAD_HELP: &str = "\
Examples:
  trident chat load --clients 20 --channels 2 --rate 200 --duration 5s
  trident chat load 127.0.0.1:6667 --clients 1000 --channels 1 --senders 10 --rate 1000 -f json
  trident chat load --clients 10000 --idle --duration 30s
Every client comes from this machine's address: a trident server needs
--max-per-ip (8 by default) raised to at least --clients, and its flood
limit (10 lines/s per client after a burst of 20) holds back and then
closes faster senders: the report says so (throttled, with a hint); serve
load tests with --flood-rate 0.
Exit status: 0 if every client connected and (traffic) every expected delivery
arrived / (idle) every client stayed up; 1 otherwise; 130 on Ctrl-C.";

/// `trident chat load --format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LoadFormatArg {
    /// A table for people.
    Text,
    /// One JSON document (a `LoadReport`).
    Json,
}

impl From<LoadFormatArg> for LoadFormat {
    fn from(arg: LoadFormatArg) -> Self {
        match arg {
            LoadFormatArg::Text => LoadFormat::Text,
            LoadFormatArg::Json => LoadFormat::Json,
        }
    }
}

/// `trident chat load` options.
#[derive(Debug, Args)]
#[command(after_help = LOAD_HELP)]
pub struct LoadArgs {
    /// The server's address.
    #[arg(value_name = "ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// Clients to connect.
    // -n and -d (clashing with chat connect's -n and fetch's -d) kept hidden.
    #[arg(long, short_alias = 'n', value_name = "N", default_value_t = 100)]
    pub clients: usize,
    /// Channels the clients are spread over (client i joins channel i mod M).
    #[arg(short = 'm', long, value_name = "M", default_value_t = 1)]
    pub channels: usize,
    /// Messages per second, all senders together.
    #[arg(short = 'r', long, value_name = "MSGS_PER_S", default_value_t = 1000.0)]
    pub rate: f64,
    /// How long to send (idle: how long to hold the connections).
    #[arg(long, short_alias = 'd', value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Bytes of message text (sequence number and timestamp included).
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub payload: usize,
    /// How many clients send (the first K). [default: all]
    #[arg(short = 'k', long, value_name = "K")]
    pub senders: Option<usize>,
    /// After sending, wait at most this long for messages in flight.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Only connect and register the clients, hold them for the duration,
    /// and report how many stayed up.
    #[arg(long)]
    pub idle: bool,
    /// Server password (sent as PASS).
    #[arg(long, value_name = "P")]
    pub password: Option<String>,
    /// Runtime threads for the clients (1 = one core at most).
    #[arg(long, value_name = "T", default_value_t = 1)]
    pub threads: usize,
    /// Connections being set up (connect + register + join) at once.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub connect_concurrency: usize,
    /// Give up on clients not set up after this long.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub setup_timeout: Duration,
    /// Nicks are PREFIX + client number. [default: "l" + a per-run tag]
    #[arg(long, value_name = "PREFIX")]
    pub nick_prefix: Option<String>,
    /// Output format: text or json.
    #[arg(short = 'f', long, value_enum, default_value_t = LoadFormatArg::Text, hide_possible_values = true)]
    pub format: LoadFormatArg,
}

impl LoadArgs {
    /// Validates the options into a [`LoadConfig`].
    pub fn into_config(self) -> Result<(LoadConfig, LoadFormat), BadInput> {
        let addr = crate::server::resolve(&self.addr)?[0];
        let mut config = LoadConfig::new(addr, self.clients);
        config.channels = self.channels;
        config.senders = self.senders.unwrap_or(self.clients);
        config.rate = self.rate;
        config.duration = self.duration;
        config.payload = self.payload;
        config.drain = self.drain;
        config.idle = self.idle;
        config.password = self.password;
        config.threads = self.threads;
        config.connect_concurrency = self.connect_concurrency;
        config.setup_timeout = self.setup_timeout;
        if let Some(prefix) = self.nick_prefix {
            config.nick_prefix = prefix;
        }
        config.progress = !crate::term::quiet();
        config.validate()?;
        Ok((config, self.format.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::with_port;

    #[test]
    fn port_goes_in_place_of_addrs() {
        let cases = [
            ("127.0.0.1:7000", None, "127.0.0.1:7000"),
            ("127.0.0.1:7000", Some(7001), "127.0.0.1:7001"),
            ("127.0.0.1", None, "127.0.0.1:6667"),
            ("localhost", Some(7001), "localhost:7001"),
            ("[::1]:7000", Some(7001), "[::1]:7001"),
            ("[::1]:7000", None, "[::1]:7000"),
            ("::1", None, "[::1]:6667"),
            ("::1", Some(7001), "[::1]:7001"),
            ("[::1]", None, "[::1]:6667"),
        ];
        for (addr, port, want) in cases {
            assert_eq!(with_port(addr, port), want, "{addr} {port:?}");
        }
    }
}
