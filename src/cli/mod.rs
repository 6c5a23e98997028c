//! All command-line syntax: clap derive types, a file per command, each
//! turned once into the plain, validated `*Config` its workload runs on.
//! Nothing here does the work, and nothing outside `lib.rs` imports from
//! here: workloads, engines and servers know no clap.
//!
//! - [`scan`], [`fetch`], [`echo`], [`chat`], [`lab`], [`bench`](mod@bench), [`demo`]:
//!   one command each;
//! - [`serve`]: the options every server shares;
//! - `help`: what is said instead of running a command (short and long
//!   help, clap's errors); [`scan_output`]: scan's
//!   output flags (`-o`, nmap's `-oN/-oX/-oG/-oA`);
//! - this file: the top-level [`Cli`], the engine options batch commands
//!   share, and value parsers used by several commands.

pub mod bench;
pub mod chat;
pub mod chat_account;
pub mod demo;
pub mod echo;
pub mod fetch;
mod help;
pub mod lab;
pub mod scan;
pub mod scan_output;
pub mod serve;

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{AsyncRuntime, EngineConfig, EngineKind};
use crate::error::Exit;
use crate::term::Verbosity;

const TABLE_HELP: &str = "\
Short flags mean one thing in every command (as nmap for scan, wget, curl
and aria2 for fetch, irssi for chat connect):
  -e ENGINE   threads, processes or async      -j N      tasks in flight
  -p PORTS    ports (scan) or port (chat)      -f FMT    output format
  -o FILE     output file (scan)               -i FILE   input list (fetch; scan: -iL)
  -c          continue partial files (fetch)   -d DIR    download directory (fetch)
  -s K        split a file into K parts        -n NICK   nickname (chat connect)
  -l ADDR     listen address (servers)         -T0..-T5  timing preset (scan)
  -q          nothing but errors on stderr     -v        explain on stderr
  --color WHEN  auto (on a terminal, unless NO_COLOR is set), always, never
  -h          short help (--help: all of it)
scan also reads nmap's own: -sT -Pn -n -F -iL -oN -oX -oG -oA (and -oJ).

Engines: threads = a pool of OS threads, one blocking task each;
processes = worker processes (this binary re-run), one task each;
async = futures on a tokio runtime.";

/// Port scanning, downloading and chat on three interchangeable concurrency
/// engines: OS threads, worker processes and async (tokio).
#[derive(Debug, Parser)]
#[command(name = "trident", version, propagate_version = true, after_help = TABLE_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Explain on stderr what is being done.
    // display_order: after every command's own options, in each help.
    #[arg(short = 'v', long, global = true, conflicts_with = "quiet", display_order = 900)]
    pub verbose: bool,
    /// Less on stderr: no progress, warnings or per-message log (errors are
    /// still shown; results and reports still go to stdout).
    #[arg(short = 'q', long, global = true, display_order = 901)]
    pub quiet: bool,
    /// Colour on a terminal: auto (unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_name = "WHEN", value_enum, default_value_t = ColorArg::Auto, display_order = 902)]
    pub color: ColorArg,
}

/// `--color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    /// On a terminal, unless NO_COLOR is set or TERM=dumb.
    Auto,
    /// Always, also into pipes and files.
    Always,
    /// Never.
    Never,
}

impl From<ColorArg> for anstream::ColorChoice {
    fn from(arg: ColorArg) -> Self {
        match arg {
            ColorArg::Auto => anstream::ColorChoice::Auto,
            ColorArg::Always => anstream::ColorChoice::Always,
            ColorArg::Never => anstream::ColorChoice::Never,
        }
    }
}

/// The `--color` of `args`, read before clap parses them so that clap's
/// own help and errors follow it too.
fn color_in(args: &[OsString]) -> Option<ColorArg> {
    let args: Vec<_> = args.iter().map(|a| a.to_string_lossy()).take_while(|a| a != "--").collect();
    let value = args.iter().enumerate().rev().find_map(|(i, a)| match a.strip_prefix("--color") {
        Some("") => args.get(i + 1).map(|v| v.to_string()),
        Some(rest) => rest.strip_prefix('=').map(str::to_string),
        None => None,
    })?;
    ColorArg::from_str(&value, true).ok()
}

/// The subcommands.
// Built once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan TCP ports with connect probes (no root needed).
    #[command(after_help = scan::SCAN_EXAMPLES)]
    Scan(scan::ScanArgs),
    /// Download files over HTTP(S), many at once; a file under its final
    /// name is always complete.
    #[command(after_help = fetch::FETCH_HELP)]
    Fetch(fetch::FetchArgs),
    /// The chapter's echo server and client: every chunk read is answered
    /// with "Server received: <chunk>".
    #[command(subcommand, after_help = echo::ECHO_EXAMPLES)]
    Echo(echo::EchoCommand),
    /// A chat server that IRC clients can use, on any engine.
    #[command(subcommand, after_help = chat::CHAT_EXAMPLES)]
    Chat(chat::ChatCommand),
    /// The tour: scan, fetch and chat on loopback with every engine, each
    /// result checked, each run measured (time, CPU, memory); exit 1 if any is wrong.
    Demo(demo::DemoArgs),
    /// Measure the engines against each other and against peer tools.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// A target host in its own network namespace with known open,
    /// filtered and closed ports, loss and latency (needs root).
    Lab(lab::LabArgs),
    /// Internal: keep a lab up until SIGTERM (started by `trident lab up`).
    #[command(name = "__lab-serve", hide = true)]
    LabServe(lab::LabServeArgs),
    /// Internal: the minimal tokio echo server the echo bench compares with.
    #[command(name = "__echo-reference", hide = true)]
    EchoReference {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8888")]
        listen: String,
    },
}

/// Parses the command line (program name first). When it does not come to
/// a command, clap's help, version or error has been printed and the
/// result is the exit status: 0 for --help and --version (also into a
/// closed pipe), 2 for a syntax error or a missing subcommand.
pub fn parse(args: Vec<OsString>) -> Result<Command, Exit> {
    use clap::FromArgMatches;
    let args = normalize_args(args);
    if let Some(color) = color_in(&args) {
        crate::term::set_color(color.into());
    }
    match help::command().try_get_matches_from(&args).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => {
            crate::term::set_verbosity(match (cli.quiet, cli.verbose) {
                (true, _) => Verbosity::Quiet,
                (_, true) => Verbosity::Verbose,
                _ => Verbosity::Normal,
            });
            Ok(cli.command)
        }
        Err(e) => Err(help::report(&e, &args)),
    }
}

/// Engine choice, shared by every batch subcommand.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Concurrency engine: threads, processes or async.
    ///
    /// What each is: see the end of trident --help.
    #[arg(short = 'e', long, default_value = "async", value_parser = engine_names())]
    pub engine: EngineKind,
    /// Maximum tasks in flight (threads, worker processes or futures).
    /// [default: threads 512, processes 64, async 4096]
    #[arg(short = 'j', long, short_alias = 'c', value_name = "N", value_parser = parse_concurrency)]
    pub concurrency: Option<u32>,
    /// Tokio runtime flavour for the async engine.
    #[arg(long, value_enum, default_value_t = RuntimeArg::MultiThread)]
    pub async_runtime: RuntimeArg,
}

/// `--async-runtime` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuntimeArg {
    /// One thread runs everything.
    CurrentThread,
    /// One worker thread per core.
    MultiThread,
}

pub(crate) fn parse_engine(s: &str) -> Result<EngineKind, String> {
    s.parse()
}

/// The engine names as clap's possible values (listed in help and in
/// errors), with the singular and `tokio` spellings as hidden aliases.
pub(crate) fn engine_names() -> impl clap::builder::TypedValueParser<Value = EngineKind> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new("threads").alias("thread"),
        PossibleValue::new("processes").alias("process"),
        PossibleValue::new("async").alias("tokio"),
    ])
    .try_map(|s| s.parse::<EngineKind>())
}

pub(crate) fn parse_concurrency(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of tasks in flight, at least 1".into()),
    }
}

impl EngineArgs {
    /// The validated engine config.
    pub fn config(&self) -> EngineConfig {
        let mut config = EngineConfig::new(self.engine);
        if let Some(n) = self.concurrency {
            config = config.with_concurrency(n as usize);
        }
        config.async_runtime = self.async_runtime.into();
        config
    }
}

impl From<RuntimeArg> for AsyncRuntime {
    fn from(arg: RuntimeArg) -> Self {
        match arg {
            RuntimeArg::CurrentThread => AsyncRuntime::CurrentThread,
            RuntimeArg::MultiThread => AsyncRuntime::MultiThread,
        }
    }
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`; a bare number is seconds (as nmap).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let secs = duration_secs(s)?;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("invalid duration {s:?}: must be above 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration as [`parse_duration`], or 0 (`0`, `0s`, `0ms`...) for none:
/// the options where 0 turns something off (`--idle-timeout`,
/// `--stats-every`, `--split-probe`).
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if duration_secs(s)? == 0.0 { Ok(Duration::ZERO) } else { parse_duration(s) }
}

/// The seconds `s` says (any number, with or without a unit).
fn duration_secs(s: &str) -> Result<f64, String> {
    let bad = || format!("invalid duration {s:?} (expected e.g. 250ms, 2s, 1.5s, 1m)");
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    Ok(value * scale)
}

/// Rewrites nmap-style `-iL` into `--input-list` and `-oX` (`-oN`, `-oG`,
/// `-oA`, `-oJ`) into `--output-xml` etc., since clap short options are
/// one letter.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some("-iL") => OsString::from("--input-list"),
            Some(flag) => scan_output::nmap_output_flag(flag).map_or(a, OsString::from),
            None => a,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("250ms", Duration::from_millis(250)),
            ("2s", Duration::from_secs(2)),
            ("2", Duration::from_secs(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("1m", Duration::from_secs(60)),
            ("500us", Duration::from_micros(500)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        for bad in ["", "s", "0", "-1s", "1x", "1.2.3s", "2d", "1e3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn il_is_rewritten() {
        let args = normalize_args(["trident", "scan", "-iL", "f"].map(OsString::from));
        assert_eq!(args[2], "--input-list");
        let args = normalize_args(["trident", "scan", "-oX", "f", "-oA", "b", "-o", "X"].map(OsString::from));
        assert_eq!(args[2..], ["--output-xml", "f", "--output-all", "b", "-o", "X"].map(OsString::from));
    }

    #[test]
    fn a_duration_or_zero_turns_off_with_any_zero() {
        for zero in ["0", "0s", "0ms", "0m", "0h", " 0 ", "0.0s"] {
            assert_eq!(parse_duration_or_zero(zero), Ok(Duration::ZERO), "{zero:?}");
        }
        assert_eq!(parse_duration_or_zero("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["-1", "soon", "0x", "0smh", "", "2d"] {
            assert!(parse_duration_or_zero(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("0").is_err() && parse_duration("0s").is_err());
    }

    fn parsed(args: &[&str]) -> Command {
        let argv = std::iter::once("trident").chain(args.iter().copied()).map(OsString::from);
        Cli::try_parse_from(normalize_args(argv)).unwrap_or_else(|e| panic!("{args:?}: {e}")).command
    }

    fn help_of(path: &[&str]) -> String {
        let mut command = help::command();
        let mut leaf = &mut command;
        for name in path {
            leaf = leaf.find_subcommand_mut(name).unwrap_or_else(|| panic!("no subcommand {name}"));
        }
        leaf.render_long_help().to_string()
    }

    #[test]
    fn short_flags_follow_the_table_and_old_ones_still_parse() {
        for flag in ["-j", "-c", "--concurrency"] {
            let Command::Scan(scan) = parsed(&["scan", "127.0.0.1", flag, "8"]) else { panic!("scan") };
            assert_eq!(scan.engine.concurrency, Some(8), "scan {flag}");
        }
        for flag in ["--workers", "-c"] {
            let Command::Echo(echo::EchoCommand::Serve(serve)) = parsed(&["echo", "serve", flag, "3"]) else {
                panic!("echo serve")
            };
            assert_eq!(serve.server.workers, Some(3), "echo serve {flag}");
            let Command::Chat(chat::ChatCommand::Serve(serve)) = parsed(&["chat", "serve", flag, "3"]) else {
                panic!("chat serve")
            };
            assert_eq!(serve.server.workers, Some(3), "chat serve {flag}");
        }
        for flag in ["--join", "-j"] {
            let Command::Chat(chat::ChatCommand::Connect(c)) =
                parsed(&["chat", "connect", "-n", "al", flag, "#x", "-p", "7000", "127.0.0.1"])
            else {
                panic!("chat connect")
            };
            assert_eq!((c.join, c.port), (vec!["#x".to_string()], Some(7000)), "chat connect {flag}");
        }
        for args in [["--clients", "5", "--duration", "2s"], ["-n", "5", "-d", "2s"]] {
            let Command::Chat(chat::ChatCommand::Load(load)) = parsed(&[&["chat", "load"][..], &args].concat()) else {
                panic!("chat load")
            };
            assert_eq!((load.clients, load.duration), (5, Duration::from_secs(2)), "chat load {args:?}");
        }
        let Command::Fetch(fetch) = parsed(&["fetch", "--retry", "2", "http://x/"]) else { panic!("fetch") };
        assert_eq!(fetch.retries, 2, "curl's --retry");
        // The old spellings are hidden: help shows only the table's.
        assert!(help_of(&["scan"]).contains("-j, --concurrency <N>"));
        for (path, hidden) in [
            (&["scan"][..], "-c,"),
            (&["echo", "serve"], "-c,"),
            (&["chat", "serve"], "-c,"),
            (&["chat", "connect"], "-j,"),
            (&["chat", "load"], "-n,"),
            (&["chat", "load"], "-d,"),
        ] {
            assert!(!help_of(path).contains(hidden), "{path:?} shows {hidden}");
        }
    }

    #[test]
    fn bench_chat_rates_default_per_part_and_peers_parse() {
        let config = |args: &[&str]| {
            let Command::Bench(bench::BenchCommand::Chat(chat)) = parsed(&[&["bench", "chat"][..], args].concat())
            else {
                panic!("bench chat")
            };
            chat.into_config().expect("valid")
        };
        let c = config(&["--vs", "inspircd,chapter-asyncio", "--peer-irc", "ngircd=/usr/sbin/ngircd", "--no-pin"]);
        assert_eq!(c.rates, [250.0, 500.0, 1000.0, 1500.0, 2000.0, 3000.0]);
        assert_eq!(c.ladder_rates, [100.0, 250.0, 500.0, 1000.0, 2000.0, 3000.0]);
        assert_eq!((c.vs.len(), c.irc_peers.len(), c.pin), (2, 1, false));
        let c = config(&["--rates", "10,20"]);
        assert_eq!(
            (c.rates.as_slice(), c.ladder_rates.as_slice(), c.pin),
            (&[10.0, 20.0][..], &[10.0, 20.0][..], true)
        );
    }

    #[test]
    fn top_level_help_prints_the_short_flag_table() {
        let help = help_of(&[]);
        for row in ["-e ENGINE", "-j N", "-c          continue", "-d DIR", "-n NICK", "-s K", "-i FILE"] {
            assert!(help.contains(row), "{row} missing from:\n{help}");
        }
    }

    #[test]
    fn color_is_read_before_parsing() {
        let color = |args: &[&str]| color_in(&args.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(color(&["trident", "scan", "--color", "never", "x"]), Some(ColorArg::Never));
        assert_eq!(color(&["trident", "--color=always", "scan"]), Some(ColorArg::Always));
        assert_eq!(color(&["trident", "scan", "x"]), None);
        assert_eq!(color(&["trident", "chat", "connect", "--", "--color=always"]), None);
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
