//! The JSON layouts: one port as a JSON object ([`PortLine`], also each
//! line of `-f jsonl`), and the `-f json` document.
//!
//! The document is one compact line: `scanner`, `version`, `summary`,
//! `unlisted_ports` (when a large scan left silent ports out),
//! `skipped_targets`, and `hosts`, each with `ip`, `host` (the name given),
//! `counts`, the listed `ports`, and its closed ports summarised rather
//! than listed, as nmap's "Not shown: N closed ports":
//! `"closed": {"count": N, "ports": "1-21,23-79"}` (the ranges only where
//! silent ports are listed too; `--show-closed` lists them one by one).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;

use super::probe::{PortState, ProbeResult};
use super::report::{Counts, HostResults, Summary};
use super::services::service_name;
use super::target::TargetError;

/// One port line in JSON and JSON lines.
#[derive(Serialize)]
pub(super) struct PortLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    ip: IpAddr,
    port: u16,
    proto: &'static str,
    state: &'static str,
    reason: &'static str,
    rtt_us: Option<u64>,
    tries: u32,
    /// The port's service name (table lookup), for open ports with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// What the service said first (`--banners`).
    #[serde(skip_serializing_if = "Option::is_none")]
    banner: Option<&'a str>,
}

impl<'a> PortLine<'a> {
    pub(super) fn new(host: Option<&'a str>, r: &'a ProbeResult) -> Self {
        PortLine {
            host,
            ip: r.ip,
            port: r.port,
            proto: "tcp",
            state: r.state.as_str(),
            reason: r.reason.as_str(),
            rtt_us: r.rtt_us,
            tries: r.tries,
            service: if r.state == PortState::Open { service_name(r.port) } else { None },
            error: r.error.as_deref(),
            banner: r.banner.as_deref(),
        }
    }
}

/// Writes the `-f json` document of `hosts` (see the module documentation);
/// `unlisted` ports were counted but not kept, `list_closed` asks for the
/// closed ports one by one.
pub(super) fn write_json<W: Write>(
    out: &mut W,
    hosts: &BTreeMap<(u32, IpAddr), HostResults>,
    s: &Summary,
    target_failures: &[TargetError],
    unlisted: u64,
    list_closed: bool,
) -> io::Result<()> {
    #[derive(Serialize)]
    struct HostDoc<'a> {
        ip: IpAddr,
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<&'a str>,
        counts: Counts,
        ports: Vec<PortLine<'a>>,
        /// Closed ports not listed in `ports` (nmap's "Not shown").
        #[serde(skip_serializing_if = "Option::is_none")]
        closed: Option<Closed>,
    }
    #[derive(Serialize)]
    struct Closed {
        count: u64,
        /// As ranges, `1-21,23-79`; only in scans small enough to
        /// list silent ports (see [`super::report::LIST_SILENT_PROBES`]).
        #[serde(skip_serializing_if = "Option::is_none")]
        ports: Option<String>,
    }
    #[derive(Serialize)]
    struct Failure {
        target: String,
        error: String,
    }
    #[derive(Serialize)]
    struct Doc<'a> {
        scanner: &'static str,
        version: &'static str,
        summary: &'a Summary,
        /// Ports counted in the summary but not listed per host (a
        /// large scan lists open and error ports only).
        #[serde(skip_serializing_if = "is_zero")]
        unlisted_ports: u64,
        skipped_targets: Vec<Failure>,
        hosts: Vec<HostDoc<'a>>,
    }
    let skipped_targets = target_failures
        .iter()
        .map(|f| Failure {
            target: match f {
                TargetError::Syntax { target, .. } | TargetError::Resolve { target, .. } => target.clone(),
            },
            error: f.to_string(),
        })
        .collect();
    let hosts = hosts
        .iter()
        .map(|((_, ip), h)| HostDoc {
            ip: *ip,
            host: h.host.as_deref(),
            counts: h.counts,
            ports: h.kept.iter().map(|r| PortLine::new(None, r)).collect(),
            closed: (!list_closed && h.counts.closed > 0).then(|| Closed {
                count: h.counts.closed,
                ports: (!h.closed_ports.is_empty()).then(|| h.closed_ports.to_string()),
            }),
        })
        .collect();
    let doc = Doc {
        scanner: "trident",
        version: env!("CARGO_PKG_VERSION"),
        summary: s,
        unlisted_ports: unlisted,
        skipped_targets,
        hosts,
    };
    serde_json::to_writer(&mut *out, &doc)?;
    out.write_all(b"\n")
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
