//! `trident demo`: its flags, turned into a [`DemoConfig`].

use clap::Args;

use super::parse_engine;
use crate::demo::DemoConfig;
use crate::engine::EngineKind;

/// `trident demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Engines to compare (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "threads,processes,async", value_parser = parse_engine)]
    pub engines: Vec<EngineKind>,
    /// Highest port scanned (the scan covers 1..=this).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u16).range(100..))]
    pub max_port: u16,
    /// Number of listeners to start.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub listeners: u16,
}

impl DemoArgs {
    /// The demo's config (clap has checked every value).
    pub fn into_config(self) -> DemoConfig {
        DemoConfig { engines: self.engines, max_port: self.max_port, listeners: self.listeners }
    }
}
