//! What a port scan is: targets × ports → one [`ProbeTask`] each, run on any
//! engine, results streamed into a [`Report`].
//!
//! - [`target`]: addresses, CIDR blocks, ranges, host names;
//! - [`ports`]: port specifications and the built-in top-ports list;
//! - [`probe`]: one connect probe and nmap's state/reason semantics;
//! - [`timing`]: adaptive timeouts and the retry policy (the rounds
//!   themselves run per window of the order: `rounds.rs`);
//! - [`order`]: the permuted probe order and shards;
//! - [`plan`]: the size of a scan, `--allow-huge` and `--list-targets`;
//! - [`report`]: the output formats ([`nmap_format`]: nmap's grep and XML;
//!   `json_format.rs`: JSON); `outputs.rs`: a report per destination;
//! - [`services`]: service names of ports (nmap-services, /etc/services);
//! - [`host_clock`]: `--host-timeout`, a clock per address.
//!
//! This module only builds the task stream and consumes outcomes; how the
//! probes run concurrently is the engine's business.

mod connect;
pub mod host_clock;
mod json_format;
pub mod nmap_format;
pub mod order;
mod outputs;
pub mod plan;
pub mod ports;
pub mod probe;
pub mod report;
mod rounds;
mod run;
pub mod services;
pub mod target;
pub mod timing;
pub mod top_ports;

use std::net::IpAddr;
use std::path::PathBuf;

use crate::engine::EngineConfig;
use crate::error::{BadInput, Exit};
pub use order::{Order, Shard};
pub use plan::Plan;
pub use ports::PortList;
pub use probe::{BannerGrab, PortState, ProbeResult, ProbeTask, Reason};
pub use report::{Counts, Format, Report, Summary};
pub use run::{list_targets, run};
pub use target::{Family, TargetError, TargetSet};
pub use timing::{Retries, Timing, TimingConfig};

/// A validated scan request.
#[derive(Clone, Debug)]
pub struct ScanConfig {
    /// Addresses to scan (host names already resolved).
    pub targets: TargetSet,
    /// Targets that were skipped (unresolvable), reported with the results.
    pub skipped: Vec<TargetError>,
    /// Ports to probe on every address.
    pub ports: PortList,
    /// Which engine, how many probes in flight, how fast.
    pub engine: EngineConfig,
    /// Timeouts and retries.
    pub timing: TimingConfig,
    /// Key of the probe order (same seed, same order: needed for shards).
    pub seed: u64,
    /// The part of the (address × port) space this run scans.
    pub shard: Shard,
    /// Read what open ports' services say first (`--banners`).
    pub banner: Option<BannerGrab>,
    /// Where results go, each in its format (nmap's `-oN`/`-oX`/`-oG`/`-oA`
    /// give several at once); never empty.
    pub outputs: Vec<Destination>,
    /// List only open ports.
    pub open_only: bool,
    /// JSON: list closed ports one by one instead of summarising them.
    pub show_closed: bool,
    /// Draw a progress bar on stderr (only honoured on a terminal).
    pub progress: bool,
    /// Say more on stderr.
    pub verbose: bool,
    /// Only print the plan ([`Plan::write_listing`]); send nothing.
    pub list_targets: bool,
    /// Send only through this network interface (its index): `--lab`
    /// binds a scan to its lab's veth, so nothing can route out.
    pub device: Option<u32>,
    /// Keep at least this many probes per second going (`--min-rate`):
    /// enough probes in flight for it, and a word at the end if not met.
    pub min_rate: Option<f64>,
    /// Give each address at most this long from its first probe
    /// (`--host-timeout`; see `host_clock`).
    pub host_timeout: Option<std::time::Duration>,
}

/// One place the results are written, in one format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The layout.
    pub format: Format,
    /// A file (see [`crate::output::OutputFile`]), or `None` for stdout.
    pub path: Option<PathBuf>,
}

/// How a scan ended.
#[derive(Clone, Debug)]
pub struct ScanOutcome {
    /// The summary that was printed.
    pub summary: Summary,
}

impl ScanOutcome {
    /// The process exit status: 130 interrupted, 1 if a probe could not be
    /// run or a port's state is an error, else 0.
    pub fn exit(&self) -> Exit {
        let s = &self.summary;
        if s.interrupted {
            Exit::Interrupted
        } else if s.failed_probes > 0 || s.counts.error > 0 {
            Exit::Failure
        } else {
            Exit::Success
        }
    }
}

/// The (address × port) space, indexed `0..total` host-major, so that a
/// permutation of indices is a permutation of probes.
pub(crate) struct Space<'a> {
    targets: &'a TargetSet,
    ports: &'a [u16],
    /// Global index of each block's first address.
    block_starts: Vec<u64>,
    pub(crate) total: u64,
}

impl<'a> Space<'a> {
    /// Largest space a scan may have (the permutation works below 2^62).
    const LIMIT: u64 = 1 << 62;

    pub(crate) fn new(targets: &'a TargetSet, ports: &'a PortList) -> Result<Self, BadInput> {
        let too_big =
            || BadInput(format!("the scan is too large: more than 2^62 probes ({} ports per address)", ports.len()));
        let mut block_starts = Vec::with_capacity(targets.blocks.len());
        let mut hosts: u64 = 0;
        for b in &targets.blocks {
            block_starts.push(hosts);
            hosts = u64::try_from(b.count).ok().and_then(|c| hosts.checked_add(c)).ok_or_else(too_big)?;
        }
        let total = hosts.checked_mul(ports.len() as u64).filter(|t| *t < Self::LIMIT).ok_or_else(too_big)?;
        Ok(Space { targets, ports: ports.as_slice(), block_starts, total })
    }

    pub(crate) fn hosts(&self) -> u64 {
        self.total / self.ports.len().max(1) as u64
    }

    /// The probe with global index `i`: (block, address, port).
    pub(crate) fn locate(&self, i: u64) -> (u32, IpAddr, u16) {
        let per_host = self.ports.len() as u64;
        let (host, port) = (i / per_host, self.ports[(i % per_host) as usize]);
        let block = self.block_starts.partition_point(|&start| start <= host) - 1;
        let ip = self.targets.blocks[block].nth(u128::from(host - self.block_starts[block]));
        (u32::try_from(block).unwrap_or(u32::MAX), ip, port)
    }
}
