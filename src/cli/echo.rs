//! `trident echo serve|send`: their flags, turned into the server's and the
//! echo service's configs, or the client's address and message.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::parse_duration_or_zero;
use super::serve::ServeArgs;
use crate::echo::{DEFAULT_ADDR, DEFAULT_MAX_CONNECTIONS, EchoConfig};
use crate::error::BadInput;
use crate::server::{ServerConfig, resolve};

/// `trident echo --help` epilogue.
pub const ECHO_EXAMPLES: &str = "\
Examples:
  trident echo serve                                  127.0.0.1:8888, async
  trident echo serve --listen 127.0.0.1:0 -e processes --workers 4
  trident echo send 'Hello Server!'
  trident echo send 127.0.0.1:9000 'Hello Server!'

The server prints 'Serving on (ADDR, PORT)' and its connection log on
stderr; Ctrl-C or SIGTERM stops it gracefully (exit 0).";

/// `trident echo` subcommands.
#[derive(Debug, Subcommand)]
pub enum EchoCommand {
    /// Serve: read up to 100 bytes at a time, answer each chunk with
    /// "Server received: <chunk>".
    Serve(EchoServeArgs),
    /// The chapter's client: connect, send MESSAGE, read once (up to 100
    /// bytes), print what was sent and received.
    Send(EchoSendArgs),
}

/// `trident echo serve` options.
#[derive(Debug, Args)]
pub struct EchoServeArgs {
    /// Server options.
    #[command(flatten)]
    pub server: ServeArgs,
    /// Connections served at once (-e processes: shared among the
    /// workers); one more is closed at once. Each connection costs a thread
    /// with -e threads.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: usize,
    /// Close a connection that sends nothing, or reads nothing we send,
    /// for this long (0: never).
    #[arg(long, default_value = "60s", value_parser = parse_duration_or_zero, value_name = "DUR")]
    pub idle_timeout: Duration,
}

/// `trident echo send` arguments.
#[derive(Debug, Args)]
pub struct EchoSendArgs {
    /// [ADDR] MESSAGE: the server (default 127.0.0.1:8888) and what to send.
    #[arg(value_name = "[ADDR] MESSAGE", num_args = 1..=2, required = true)]
    pub words: Vec<String>,
}

impl EchoServeArgs {
    /// The validated server and echo configs.
    pub fn into_config(self) -> Result<(ServerConfig, EchoConfig), BadInput> {
        let server = self.server.into_config(DEFAULT_ADDR)?;
        if self.max_connections == 0 {
            return Err(BadInput("--max-connections must be at least 1".into()));
        }
        let echo = EchoConfig {
            quiet: crate::term::quiet(),
            max_connections: self.max_connections,
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(self.idle_timeout),
        };
        Ok((server, echo))
    }
}

impl EchoSendArgs {
    /// The server's addresses and the message.
    pub fn into_config(self) -> Result<(Vec<SocketAddr>, String), BadInput> {
        let (addr, message) = match self.words.as_slice() {
            [message] => (DEFAULT_ADDR, message),
            [addr, message] => (addr.as_str(), message),
            _ => return Err(BadInput("expected [ADDR] MESSAGE".into())),
        };
        Ok((resolve(addr)?, message.clone()))
    }
}
