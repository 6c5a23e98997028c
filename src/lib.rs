//! trident: three network jobs (port scanning, downloading, chat) on three
//! interchangeable concurrency engines (OS threads, worker processes, async).
//!
//! Layout — *what* is kept apart from *how*:
//! - [`cli`]: all command-line syntax (clap), a file per command, turned
//!   once into each workload's plain, validated `*Config`; nothing but this
//!   file imports from it;
//! - [`engine`]: how batch tasks run concurrently (threads, processes,
//!   tokio); knows nothing about ports or URLs;
//! - [`frame`]: the length-prefixed frames worker processes are spoken to in;
//! - [`server`]: how connections are served (a task, a thread or a worker
//!   process per connection); knows nothing about protocols;
//! - [`scan`]: what a port scan is (targets, ports, probes, reports);
//! - [`fetch`]: what a download is (URLs, names, `.part` files, retries);
//! - [`echo`]: the chapter's echo service (sans-IO) and client;
//! - [`chat`]: the IRC chat service (a sans-IO hub, served by
//!   `chat::serve`), its client and its load generator;
//! - [`bench`](mod@bench): measuring the engines against each other and peer tools;
//! - [`demo`]: the self-contained loopback demonstration;
//! - [`lab`]: a scan target in a network namespace with a known truth;
//! - [`error`]: exit codes and the bad-input error;
//! - [`output`], [`sys`]: atomic files, OS limits and /proc readings;
//! - [`term`]: what is said on a terminal (-q/-v, progress, colour).
//!
//! [`run`] is the whole program, callable in-process: every command goes
//! flags → `*Config` → run → outcome → [`error::Exit`].

#![warn(missing_docs)]

pub mod bench;
pub mod chat;
pub mod cli;
pub mod demo;
pub mod echo;
pub mod engine;
pub mod error;
pub mod fetch;
pub mod frame;
pub mod glob;
pub mod lab;
pub mod output;
pub mod scan;
pub mod server;
pub mod sys;
pub mod term;

use std::ffi::OsString;

use crate::cli::Command;
use crate::cli::bench::BenchCommand;
use crate::cli::chat::ChatCommand;
use crate::cli::echo::EchoCommand;
use crate::cli::lab::{LabArgs, LabCommand};
use crate::engine::{Interrupt, Task};
use crate::error::{BadInput, Exit};

/// Runs trident with command-line `args` (including the program name).
pub fn run(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<Exit> {
    let args: Vec<OsString> = args.into_iter().collect();
    // A task worker (`trident __worker TASK`, started by the processes
    // engine, once per -j place) is not a clap subcommand: building the
    // whole command line's definition to parse two words left ~150 KiB in
    // every worker's heap.
    if let [_, subcommand, task] = args.as_slice()
        && subcommand == engine::processes::WORKER_SUBCOMMAND
    {
        return worker(&task.to_string_lossy());
    }
    // A server worker (`trident __serve-worker SERVICE SETTINGS`, started
    // by a server's processes engine) likewise.
    if let [_, subcommand, service, settings] = args.as_slice()
        && subcommand == server::processes::WORKER_SUBCOMMAND
    {
        return serve_worker(&service.to_string_lossy(), &settings.to_string_lossy());
    }
    let command = match cli::parse(args) {
        Ok(command) => command,
        Err(exit) => return Ok(exit),
    };
    let started = std::time::Instant::now();
    let exit = dispatch(command)?;
    term::explain(format_args!("done in {:.3} s, exit status {}", started.elapsed().as_secs_f64(), exit as u8));
    Ok(exit)
}

/// One shape for every command: flags -> a validated config (bad input:
/// exit 2 before anything starts), then run -> outcome -> exit status.
/// Ctrl-C is taken over only once the config is valid.
fn dispatch(command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Scan(args) => {
            let config = args.into_config()?;
            let outcome = if config.list_targets {
                scan::list_targets(&config)?
            } else {
                scan::run(&config, &install_interrupt_handler()?)?
            };
            Ok(outcome.exit())
        }
        Command::Fetch(args) => {
            let config = args.into_config()?;
            term::explain(format_args!(
                "fetch: into {}, {} engine, {} at once, {} retries, {:?} timeout",
                config.dir.display(),
                config.engine.kind.name(),
                config.engine.concurrency,
                config.options.retries,
                config.options.timeout
            ));
            Ok(fetch::run(config, &install_interrupt_handler()?)?.exit())
        }
        Command::Echo(EchoCommand::Serve(args)) => {
            let (server, echo) = args.into_config()?;
            server::serve::<echo::Echo>(&server, echo, &install_interrupt_handler()?)?;
            Ok(Exit::Success)
        }
        Command::Echo(EchoCommand::Send(args)) => {
            let (addrs, message) = args.into_config()?;
            echo::send(&addrs, &message)?;
            Ok(Exit::Success)
        }
        Command::Chat(ChatCommand::Serve(args)) => {
            let (server, chat) = args.into_config()?;
            chat::serve::serve(&server, chat, &install_interrupt_handler()?)?;
            Ok(Exit::Success)
        }
        Command::Chat(ChatCommand::Connect(args)) => {
            chat::client::run(args.into_config(), &install_interrupt_handler()?)
        }
        Command::Chat(ChatCommand::Account(command)) => chat::store::admin::run(command.into_job()?),
        Command::Chat(ChatCommand::Load(args)) => {
            let (config, format) = args.into_config()?;
            chat::load::run(&config, format, &install_interrupt_handler()?)
        }
        Command::Demo(args) => demo::run(&args.into_config()),
        Command::Bench(BenchCommand::Scan(args)) => {
            let config = args.into_config()?;
            Ok(Exit::success_if(bench::scan::run(&config)?.trident_perfect()))
        }
        Command::Bench(BenchCommand::Fetch(args)) => {
            let config = args.into_config()?;
            Ok(Exit::success_if(bench::fetch::run(&config)?.trident_correct()))
        }
        Command::Bench(BenchCommand::All(args)) if args.redraw => {
            bench::all::redraw(&args.out)?;
            Ok(Exit::Success)
        }
        Command::Bench(BenchCommand::All(args)) => {
            let config = args.into_config()?;
            Ok(Exit::success_if(bench::all::run(&config)?))
        }
        Command::Bench(BenchCommand::Chat(args)) => {
            let config = args.into_config()?;
            bench::chat::run(&config)?;
            Ok(Exit::Success)
        }
        Command::Lab(LabArgs { command: LabCommand::Up(args) }) => {
            let spec = args.spec()?;
            lab::daemon::up(args.name.as_deref(), &spec, args.format.into())
        }
        Command::Lab(LabArgs { command: LabCommand::Down(args) }) => lab::daemon::down(args.name.as_deref(), args.all),
        Command::Lab(LabArgs { command: LabCommand::List(args) }) => lab::daemon::list(args.format.into()),
        Command::LabServe(args) => lab::daemon::serve(&args.name, &args.spec),
        Command::EchoReference { listen } => {
            bench::echo_reference::run(&listen)?;
            Ok(Exit::Success)
        }
    }
}

/// The processes engine's worker side: picks the task type by name.
fn worker(task: &str) -> anyhow::Result<Exit> {
    match task {
        scan::ProbeTask::NAME => engine::processes::serve::<scan::ProbeTask>()?,
        fetch::EntryTask::NAME => engine::processes::serve::<fetch::EntryTask>()?,
        other => return Err(BadInput(format!("unknown worker task type {other:?}")).into()),
    }
    Ok(Exit::Success)
}

/// A server's worker process: picks the service by name.
fn serve_worker(service: &str, settings: &str) -> anyhow::Result<Exit> {
    use crate::server::Protocol;
    let settings: server::processes::WorkerSettings =
        serde_json::from_str(settings).map_err(|e| BadInput(format!("bad server worker settings: {e}")))?;
    match service {
        echo::Echo::NAME => server::processes::worker::<echo::Echo>(&settings)?,
        chat::serve::processes::NAME => chat::serve::processes::worker(&settings)?,
        other => return Err(BadInput(format!("unknown server service {other:?}")).into()),
    }
    Ok(Exit::Success)
}

/// Ctrl-C and SIGTERM set the returned flag (engines stop starting work and
/// the partial results are written); a second one exits at once with 130.
pub fn install_interrupt_handler() -> anyhow::Result<Interrupt> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let interrupt = Interrupt::new();
    for signal in [SIGINT, SIGTERM] {
        // Order matters: the conditional exit checks the flag before the
        // second registration sets it, so only a repeated signal exits.
        signal_hook::flag::register_conditional_shutdown(signal, 130, interrupt.flag())?;
        signal_hook::flag::register(signal, interrupt.flag())?;
    }
    Ok(interrupt)
}
