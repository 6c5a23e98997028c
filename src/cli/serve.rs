//! What every server subcommand shares (`--listen`, `-e`, `--workers`). (A
//! server's worker process, `__serve-worker`, is started without clap: see
//! `server::processes`.)

use clap::Args;

use super::{parse_concurrency, parse_engine};
use crate::engine::EngineKind;
use crate::error::BadInput;

/// Options shared by every server subcommand.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 takes a free port (the bound address is
    /// printed on stderr). [default: 127.0.0.1 and the protocol's port]
    #[arg(short = 'l', long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Concurrency engine: async, threads or processes. async = a tokio task
    /// per connection; threads = a thread per connection; processes =
    /// pre-forked worker processes sharing the listening socket.
    #[arg(short = 'e', long, default_value = "async", value_parser = parse_engine)]
    pub engine: EngineKind,
    /// Worker processes (-e processes) or runtime threads (-e async).
    /// [default: one per core]
    // -c was --workers before -c meant --continue in fetch: kept hidden.
    #[arg(long = "workers", short_alias = 'c', value_name = "N", value_parser = parse_concurrency)]
    pub workers: Option<u32>,
}

impl ServeArgs {
    /// The validated server config; `default_listen` when --listen is not given.
    pub fn into_config(self, default_listen: &str) -> Result<crate::server::ServerConfig, BadInput> {
        let listen = self.listen.as_deref().unwrap_or(default_listen);
        let addr = crate::server::resolve(listen)?[0];
        let mut config = crate::server::ServerConfig::new(self.engine, addr);
        if let Some(n) = self.workers {
            if !self.engine.serves_with_workers() {
                return Err(BadInput(
                    "--workers applies to -e processes and -e async; -e threads runs one thread per connection".into(),
                ));
            }
            config.workers = n as usize;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::server::ServerConfig;

    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn config(args: &[&str]) -> Result<ServerConfig, BadInput> {
        let parsed = Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map_err(|e| BadInput(e.to_string()))?;
        parsed.args.into_config("127.0.0.1:0")
    }

    #[test]
    fn workers_are_set_where_the_engine_has_them() {
        for engine in ["processes", "async"] {
            assert_eq!(config(&["-e", engine, "-c", "3"]).map(|c| c.workers), Ok(3), "{engine}");
        }
        let refused = config(&["-e", "threads", "-c", "3"]).map(|c| c.workers);
        assert!(refused.is_err_and(|e| e.0.starts_with("--workers applies to -e processes and -e async")));
    }
}
