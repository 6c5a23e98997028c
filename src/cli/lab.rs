//! `trident lab up|down|list` and the hidden `__lab-serve`: their flags,
//! with `lab up`'s options applied to a preset [`LabSpec`].

use std::collections::BTreeSet;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::parse_duration;
use crate::error::BadInput;
use crate::lab::daemon::LabFormat;
use crate::lab::{LabSpec, OpenPorts, delay, parse_ranges};

const LAB_EXAMPLES: &str = "\
Examples:
  trident lab up                                  50 open ports (preset clean), named lab1
  trident lab up --name full --preset full        + 20001-30000 DROP, 30001-31000 REJECT, 3% loss
  trident lab up --open-ports 22,8080 --filtered 1000-1100 --rejected 2000-2010 -f json
  trident lab up --name slow --open 40 --loss 30 --latency 50ms --seed 7
  trident lab list
  trident lab down slow          (or: trident lab down --all)

A lab is a host in its own network namespace (trident-NAME) behind a veth
pair: scan the address `lab up` prints. Needs root, ip and iptables.";

/// `trident lab` options.
#[derive(Debug, Args)]
#[command(after_help = LAB_EXAMPLES)]
pub struct LabArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: LabCommand,
}

/// `trident lab` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start a lab and leave it running (prints its address and open ports).
    Up(UpArgs),
    /// Stop a lab and remove everything it made.
    Down(DownArgs),
    /// Show the labs that are running.
    List(ListArgs),
}

/// Output format of `lab up` and `lab list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabFormatArg {
    /// For people.
    Text,
    /// One JSON document.
    Json,
}

impl From<LabFormatArg> for LabFormat {
    fn from(arg: LabFormatArg) -> Self {
        match arg {
            LabFormatArg::Text => LabFormat::Text,
            LabFormatArg::Json => LabFormat::Json,
        }
    }
}

/// `trident lab up` options.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Lab name (letters, digits, - and _, at most 32). [default: the first
    /// free of lab1, lab2, ...]
    #[arg(long)]
    pub name: Option<String>,
    /// Starting point, changed by the options below: clean (50 open ports),
    /// full (+ 20001-30000 DROP, 30001-31000 REJECT, 3% loss), full-latency
    /// (+ 20ms latency).
    #[arg(long, default_value = "clean")]
    pub preset: String,
    /// Open N ports chosen from the seed, outside the filtered and rejected ranges.
    #[arg(long, value_name = "N", conflicts_with = "open_ports")]
    pub open: Option<u16>,
    /// Open exactly these ports (22,80,8000-8010).
    #[arg(long, value_name = "PORTS")]
    pub open_ports: Option<String>,
    /// DROP these ports, so they are filtered (1000-1100,2000; none).
    #[arg(long, value_name = "RANGES")]
    pub filtered: Option<String>,
    /// REJECT these ports with ICMP port unreachable, so they are closed.
    #[arg(long, value_name = "RANGES")]
    pub rejected: Option<String>,
    /// Drop this percentage of incoming TCP packets at random, on every port.
    #[arg(long, value_name = "PCT", value_parser = parse_loss)]
    pub loss: Option<f64>,
    /// Delay every packet that reaches the lab by DUR (e.g. 20ms; 0 for
    /// none), before its firewall sees it: each round trip takes DUR more.
    #[arg(long, value_name = "DUR", value_parser = parse_latency)]
    pub latency: Option<Duration>,
    /// Seed of the choice of open ports with --open.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value_t = LabFormatArg::Text)]
    pub format: LabFormatArg,
}

/// `trident lab down` options.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// The lab to stop [default: the only one running].
    pub name: Option<String>,
    /// Stop every lab (and remove leftover trident-* namespaces).
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
}

/// `trident lab list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value_t = LabFormatArg::Text)]
    pub format: LabFormatArg,
}

/// The hidden `__lab-serve` subcommand's options.
#[derive(Debug, Args)]
pub struct LabServeArgs {
    /// Lab name.
    #[arg(long)]
    pub name: String,
    /// The [`LabSpec`] as JSON.
    #[arg(long)]
    pub spec: String,
}

fn parse_loss(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("invalid loss {s:?} (expected a percentage 0-100, e.g. 3 or 2.5)")),
    }
}

fn parse_latency(s: &str) -> Result<Duration, String> {
    if matches!(s.trim(), "0" | "none") {
        return Ok(Duration::ZERO);
    }
    let d = parse_duration(s)?;
    if d > delay::MAX_LATENCY {
        return Err(format!("latency {s:?} is too long (at most 10s)"));
    }
    Ok(d)
}

fn parse_ranges_arg(what: &str, s: &str) -> Result<Vec<std::ops::RangeInclusive<u16>>, BadInput> {
    if s.trim() == "none" {
        return Ok(Vec::new());
    }
    parse_ranges(s).map_err(|e| BadInput(format!("--{what}: {e}")))
}

impl UpArgs {
    /// The preset with the options applied, validated.
    pub fn spec(&self) -> Result<LabSpec, BadInput> {
        let mut spec = LabSpec::preset(&self.preset).ok_or_else(|| {
            BadInput(format!("unknown lab preset {:?} (expected {})", self.preset, LabSpec::PRESETS.join(", ")))
        })?;
        if let Some(n) = self.open {
            spec.open = OpenPorts::Count(n);
        }
        if let Some(list) = &self.open_ports {
            let ports: BTreeSet<u16> = parse_ranges_arg("open-ports", list)?.into_iter().flatten().collect();
            spec.open = OpenPorts::List(ports.into_iter().collect());
        }
        if let Some(f) = &self.filtered {
            spec.filtered = parse_ranges_arg("filtered", f)?;
        }
        if let Some(r) = &self.rejected {
            spec.rejected = parse_ranges_arg("rejected", r)?;
        }
        if let Some(loss) = self.loss {
            spec.loss_pct = loss;
        }
        if let Some(latency) = self.latency {
            spec.latency = (!latency.is_zero()).then_some(latency);
        }
        if let Some(seed) = self.seed {
            spec.seed = seed;
        }
        spec.validate().map_err(|e| BadInput(e.to_string()))?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Up {
        #[command(flatten)]
        args: UpArgs,
    }

    fn spec(args: &[&str]) -> Result<LabSpec, BadInput> {
        let parsed = Up::try_parse_from(std::iter::once("up").chain(args.iter().copied()))
            .map_err(|e| BadInput(e.to_string()))?;
        parsed.args.spec()
    }

    #[test]
    fn up_options_change_the_preset() {
        let s = spec(&["--open-ports", "22,8080,9000-9002", "--filtered", "1000-1100", "--rejected", "2000-2010"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.open, OpenPorts::List(vec![22, 8080, 9000, 9001, 9002]));
        assert_eq!((s.filtered, s.rejected), (vec![1000..=1100], vec![2000..=2010]));
        let s = spec(&["--preset", "full-latency", "--latency", "0", "--loss", "30%", "--open", "40", "--seed", "7"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.open, s.latency, s.loss_pct, s.seed), (OpenPorts::Count(40), None, 30.0, 7));
        assert_eq!(s.filtered, [20001..=30000]);
        let s =
            spec(&["--preset", "full", "--filtered", "none", "--latency", "50ms"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.filtered.is_empty());
        assert_eq!(s.latency, Some(Duration::from_millis(50)));
        for bad in [
            &["--preset", "nope"][..],
            &["--loss", "101"],
            &["--latency", "11s"],
            &["--open-ports", "22", "--filtered", "20-30"],
            &["--filtered", "5-1"],
        ] {
            assert!(spec(bad).is_err(), "{bad:?}");
        }
    }
}
