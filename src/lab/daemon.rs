//! `trident lab up/down/list`: labs that outlive the command.
//!
//! `lab up` starts this binary again, detached (`setsid`, stdin from
//! /dev/null, stderr to `<state dir>/NAME.log`), as the hidden subcommand
//! `__lab-serve`. That daemon builds the lab ([`Lab::up_named`], namespace
//! `trident-NAME`), writes `<state dir>/NAME.json` ([`LabState`]), reports
//! readiness (or its error) on its stdout pipe as one JSON line, and then
//! waits for SIGTERM/SIGINT/SIGHUP to tear the lab down. `lab down` signals
//! it, waits, and cleans up after it if it does not go in time.
//!
//! The state directory is /run/trident/labs (`$TRIDENT_LAB_DIR` overrides it).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};

use super::{Lab, LabError, LabSpec, delay, format_ranges, netns};
use crate::error::{BadInput, Exit};

/// The hidden subcommand the lab daemon runs as.
pub const SERVE_SUBCOMMAND: &str = "__lab-serve";
/// Environment variable overriding the state directory.
pub const STATE_DIR_ENV: &str = "TRIDENT_LAB_DIR";
/// Where state files and daemon logs live.
pub const DEFAULT_STATE_DIR: &str = "/run/trident/labs";
/// A lab NAME lives in the network namespace `trident-NAME`.
pub const NETNS_PREFIX: &str = "trident-";
/// How long `lab up` waits for the daemon to report.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `lab down` waits after SIGTERM before SIGKILL.
const DOWN_GRACE: Duration = Duration::from_secs(5);

/// How `lab up` and `lab list` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabFormat {
    /// For people.
    Text,
    /// One JSON document.
    Json,
}

/// A running lab, as its state file and `lab up -f json` describe it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    /// Lab name.
    pub name: String,
    /// The address to scan.
    pub ip: Ipv4Addr,
    /// The root namespace's end of the veth pair.
    pub host_ip: Ipv4Addr,
    /// Network namespace name.
    pub netns: String,
    /// Host-side veth interface.
    pub host_if: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The open ports: the ground truth.
    pub open: Vec<u16>,
    /// What the lab was built from.
    pub spec: LabSpec,
}

/// What the daemon reports to `lab up` (one JSON line).
#[derive(Debug, Serialize, Deserialize)]
enum Ready {
    Up(LabState),
    Failed { error: String, user_error: bool },
}

/// A lab error as the CLI reports it: the user's to fix → exit 2.
fn cli_error(e: LabError) -> anyhow::Error {
    if e.is_user_error() { BadInput(e.to_string()).into() } else { e.into() }
}

/// The state directory.
pub fn state_dir() -> PathBuf {
    std::env::var_os(STATE_DIR_ENV).map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from)
}

fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

fn validate_name(name: &str) -> Result<(), BadInput> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok { Ok(()) } else { Err(BadInput(format!("invalid lab name {name:?} (letters, digits, - and _, at most 32)"))) }
}

/// Reads the state file of `name`, if there is one.
pub fn read_state(dir: &Path, name: &str) -> Option<LabState> {
    let text = fs::read_to_string(state_path(dir, name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Every lab with a state file, by name.
pub fn all_states(dir: &Path) -> Vec<LabState> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut states: Vec<LabState> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".json")?.to_string();
            if name.starts_with('.') {
                return None;
            }
            read_state(dir, &name)
        })
        .collect();
    states.sort_by(|a, b| a.name.cmp(&b.name));
    states
}

fn write_state(dir: &Path, state: &LabState) -> anyhow::Result<()> {
    let path = state_path(dir, &state.name);
    let tmp = dir.join(format!(".{}.json.tmp", state.name));
    let json = serde_json::to_string_pretty(state)?;
    fs::write(&tmp, json + "\n").with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

/// Whether `pid` is a live (not zombie) lab daemon serving `name`.
pub fn daemon_alive(pid: u32, name: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    if matches!(state, None | Some("Z" | "X")) {
        return false;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    args.contains(&SERVE_SUBCOMMAND.as_bytes()) && args.windows(2).any(|w| w[0] == b"--name" && w[1] == name.as_bytes())
}

/// The running lab `name` and the index of its host-side interface, for
/// `trident scan --lab NAME`; bad input if it is not running (a lab's
/// address outlives the lab in people's notes, and without the lab it
/// routes out of the machine).
pub fn running_lab(name: &str) -> Result<(LabState, u32), BadInput> {
    validate_name(name)?;
    let dir = state_dir();
    let gone = |why: &str| {
        BadInput(format!(
            "lab {name} {why} ({}); start it with: trident lab up --name {name}",
            names_text(&running_names(&dir))
        ))
    };
    let state = read_state(&dir, name).ok_or_else(|| gone("does not exist"))?;
    if !daemon_alive(state.pid, name) {
        return Err(gone("is not running"));
    }
    let index = fs::read_to_string(Path::new("/sys/class/net").join(&state.host_if).join("ifindex"))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .ok_or_else(|| gone(&format!("has lost its interface {}", state.host_if)))?;
    Ok((state, index))
}

fn wait_gone(pid: u32, name: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while daemon_alive(pid, name) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

fn running_names(dir: &Path) -> Vec<String> {
    all_states(dir).into_iter().filter(|s| daemon_alive(s.pid, &s.name)).map(|s| s.name).collect()
}

fn names_text(names: &[String]) -> String {
    if names.is_empty() { "none is running".into() } else { format!("running: {}", names.join(", ")) }
}

// ---------------------------------------------------------------------------
// lab up

/// Runs `trident lab up`: starts lab `name` (or the first free `labN`)
/// built from `spec`, and prints it.
pub fn up(name: Option<&str>, spec: &LabSpec, format: LabFormat) -> anyhow::Result<Exit> {
    netns::require_facilities().map_err(cli_error)?;
    if spec.latency.is_some() {
        delay::require_nfqueue().map_err(cli_error)?;
    }
    let dir = state_dir();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = match name {
        Some(name) => {
            validate_name(name)?;
            name.to_owned()
        }
        None => (1..)
            .map(|i| format!("lab{i}"))
            .find(|n| !state_path(&dir, n).exists() && !netns::exists(&format!("{NETNS_PREFIX}{n}")))
            .unwrap_or_else(|| unreachable!("some lab name is free")),
    };
    if let Some(state) = read_state(&dir, &name) {
        if daemon_alive(state.pid, &name) {
            return Err(BadInput(format!(
                "lab {name} is already running at {} (pid {}); stop it first: trident lab down {name}",
                state.ip, state.pid
            ))
            .into());
        }
        eprintln!("trident: removing what is left of lab {name} (its daemon {} is gone)", state.pid);
        netns::remove(&state.netns, Some(&state.host_if))?;
        let _ = fs::remove_file(state_path(&dir, &name));
    }
    let netns_name = format!("{NETNS_PREFIX}{name}");
    if netns::exists(&netns_name) {
        return Err(BadInput(format!(
            "network namespace {netns_name} exists, but no lab {name} is running; remove it with: trident lab down {name}"
        ))
        .into());
    }

    let state = start_daemon(&dir, &name, spec)?;
    match format {
        LabFormat::Json => println!("{}", serde_json::to_string_pretty(&state)?),
        LabFormat::Text => print_text(&state, &dir),
    }
    Ok(Exit::Success)
}

/// Starts the daemon and waits for its report.
fn start_daemon(dir: &Path, name: &str, spec: &LabSpec) -> anyhow::Result<LabState> {
    let exe = std::env::current_exe().context("cannot find the trident executable")?;
    let log = log_path(dir, name);
    let log_file = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args([SERVE_SUBCOMMAND, "--name", name, "--spec", &serde_json::to_string(spec)?])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe; it runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the lab daemon")?;
    let stdout = child.stdout.take().context("the lab daemon has no stdout pipe")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(READY_TIMEOUT).unwrap_or_default();
    let failure = match serde_json::from_str::<Ready>(line.trim()) {
        Ok(Ready::Up(state)) => return Ok(state),
        Ok(Ready::Failed { error, user_error }) => {
            let _ = child.wait();
            let _ = fs::remove_file(&log);
            return Err(if user_error { BadInput(error).into() } else { anyhow!(error) });
        }
        Err(_) => {
            // No report: it died, or hangs.
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            let text = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
            format!("the lab daemon ended ({status}) without reporting; its log:\n{}", tail.join("\n"))
        }
    };
    let _ = fs::remove_file(&log);
    if netns::exists(&format!("{NETNS_PREFIX}{name}")) {
        let _ = netns::remove(&format!("{NETNS_PREFIX}{name}"), None);
    }
    let _ = fs::remove_file(state_path(dir, name));
    Err(anyhow!(failure))
}

fn print_text(s: &LabState, dir: &Path) {
    let spec = &s.spec;
    let open: Vec<String> = s.open.iter().map(ToString::to_string).collect();
    let none = |t: String| if t.is_empty() { "none".to_string() } else { t };
    println!("lab {} is up: {}", s.name, s.ip);
    println!("  open      {} port(s): {}", s.open.len(), none(open.join(",")));
    println!("  filtered  {} (DROP)", none(format_ranges(&spec.filtered)));
    println!("  rejected  {} (REJECT with icmp-port-unreachable: closed)", none(format_ranges(&spec.rejected)));
    println!("  loss      {}% of incoming TCP packets", spec.loss_pct);
    println!("  latency   {}", spec.latency.map_or("none".into(), |l| format!("{l:?}")));
    println!("  seed      {}", spec.seed);
    println!("  namespace {} (daemon pid {}, log {})", s.netns, s.pid, log_path(dir, &s.name).display());
    println!("scan it: trident scan --lab {} -p-", s.name);
    println!("stop it: trident lab down {}", s.name);
}

// ---------------------------------------------------------------------------
// The daemon

/// Runs `trident __lab-serve`: builds lab `name` from `spec` (a [`LabSpec`]
/// as JSON), reports, serves until a signal.
pub fn serve(name: &str, spec: &str) -> anyhow::Result<Exit> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Before anything is built: a signal during the build is kept for later.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let report = |ready: &Ready| -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(ready)?)?;
        out.flush()?;
        Ok(())
    };
    let fail = |e: anyhow::Error, user_error: bool| -> anyhow::Result<Exit> {
        eprintln!("trident: lab {name}: {e:#}");
        report(&Ready::Failed { error: format!("{e:#}"), user_error })?;
        Ok(Exit::Failure)
    };
    let spec: LabSpec = match serde_json::from_str(spec) {
        Ok(spec) => spec,
        Err(e) => return fail(anyhow!("invalid lab spec {spec:?}: {e}"), true),
    };
    let dir = state_dir();
    let netns_name = format!("{NETNS_PREFIX}{name}");
    let lab = match Lab::up_named(&spec, &netns_name) {
        Ok(lab) => lab,
        Err(e) => {
            let user = e.is_user_error();
            return fail(e.into(), user);
        }
    };
    let state = LabState {
        name: name.to_owned(),
        ip: lab.ip(),
        host_ip: lab.netns().host_ip(),
        netns: netns_name,
        host_if: lab.netns().host_if().to_string(),
        pid: std::process::id(),
        open: lab.truth().iter().copied().collect(),
        spec,
    };
    if let Err(e) = write_state(&dir, &state) {
        drop(lab);
        return fail(e, false);
    }
    if let Some(signal) = signals.pending().next() {
        drop(lab);
        let _ = fs::remove_file(state_path(&dir, name));
        return fail(anyhow!("interrupted by signal {signal} while starting"), false);
    }
    report(&Ready::Up(state.clone()))?;
    // Nobody reads stdout any more: later writes must not fail.
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1 with a descriptor we own.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
    eprintln!("trident: lab {} up at {} (namespace {}, pid {})", state.name, state.ip, state.netns, state.pid);

    let signal = signals.forever().next();
    eprintln!("trident: lab {}: signal {}, tearing down", state.name, signal.unwrap_or_default());
    if let Some(stats) = lab.delay_stats() {
        eprintln!(
            "trident: lab {}: delayed {} packet(s), at most {} us late; kernel queue drops {}, undelivered {}",
            state.name, stats.packets, stats.max_late_us, stats.queue_dropped, stats.user_dropped
        );
    }
    let result = lab.down();
    // Remove the state file only if it is still ours.
    if read_state(&dir, &state.name).is_some_and(|s| s.pid == state.pid) {
        let _ = fs::remove_file(state_path(&dir, &state.name));
    }
    match result {
        Ok(()) => {
            // Nothing went wrong, so nothing in the log is worth keeping.
            let _ = fs::remove_file(log_path(&dir, &state.name));
            Ok(Exit::Success)
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------
// lab down, lab list

/// Runs `trident lab down`: stops lab `name` (or the only one running),
/// or with `all` every lab and leftover namespace.
pub fn down(name: Option<&str>, all: bool) -> anyhow::Result<Exit> {
    netns::require_facilities().map_err(cli_error)?;
    let dir = state_dir();
    let names: Vec<String> = if all {
        let mut names: BTreeSet<String> = all_states(&dir).into_iter().map(|s| s.name).collect();
        names.extend(orphan_namespaces());
        names.into_iter().collect()
    } else if let Some(name) = name {
        validate_name(name)?;
        vec![name.to_owned()]
    } else {
        let running = running_names(&dir);
        match running.as_slice() {
            [one] => vec![one.clone()],
            [] => return Err(BadInput("no lab is running".into()).into()),
            _ => {
                return Err(BadInput(format!(
                    "several labs are running ({}): name one, or use --all",
                    running.join(", ")
                ))
                .into());
            }
        }
    };
    if all && names.is_empty() {
        println!("no labs to stop");
    }
    for name in names {
        down_one(&dir, &name, all)?;
    }
    Ok(Exit::Success)
}

/// Namespaces named `trident-*` (labs whose state file is gone).
fn orphan_namespaces() -> Vec<String> {
    let Ok(entries) = fs::read_dir(netns::NETNS_DIR) else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.strip_prefix(NETNS_PREFIX).map(String::from)).collect()
}

/// Stops lab `name`. With `listed` (--all), a lab that stopped on its own or
/// through another `lab down` since the listing is not an error: it is down.
fn down_one(dir: &Path, name: &str, listed: bool) -> anyhow::Result<()> {
    let netns_name = format!("{NETNS_PREFIX}{name}");
    let Some(state) = read_state(dir, name) else {
        if netns::exists(&netns_name) {
            netns::remove(&netns_name, None)?;
            println!("lab {name}: removed its leftover namespace {netns_name}");
            return Ok(());
        }
        if listed {
            println!("lab {name} is down (it stopped meanwhile)");
            return Ok(());
        }
        return Err(BadInput(format!("no lab named {name} ({})", names_text(&running_names(dir)))).into());
    };
    let mut how = "stopped";
    if daemon_alive(state.pid, name) {
        // SAFETY: kill with the pid of a process checked to be our daemon.
        unsafe { libc::kill(state.pid as libc::pid_t, libc::SIGTERM) };
        if !wait_gone(state.pid, name, DOWN_GRACE) {
            eprintln!("trident: lab {name}: daemon {} did not stop within {DOWN_GRACE:?}; killing it", state.pid);
            // SAFETY: as above.
            unsafe { libc::kill(state.pid as libc::pid_t, libc::SIGKILL) };
            wait_gone(state.pid, name, Duration::from_secs(2));
            how = "killed";
        }
    } else {
        how = "cleaned up; its daemon was gone";
    }
    // Whatever the daemon did not remove.
    if netns::exists(&state.netns) || Path::new("/sys/class/net").join(&state.host_if).exists() {
        netns::remove(&state.netns, Some(&state.host_if))?;
    }
    let _ = fs::remove_file(state_path(dir, name));
    let _ = fs::remove_file(log_path(dir, name));
    println!("lab {name} is down ({how})");
    Ok(())
}

/// `lab list -f json` rows.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    state: &'a LabState,
    running: bool,
}

/// Runs `trident lab list`.
pub fn list(format: LabFormat) -> anyhow::Result<Exit> {
    let states = all_states(&state_dir());
    let rows: Vec<Listed<'_>> =
        states.iter().map(|state| Listed { state, running: daemon_alive(state.pid, &state.name) }).collect();
    match format {
        LabFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        LabFormat::Text if rows.is_empty() => println!("no labs (start one with: trident lab up)"),
        LabFormat::Text => {
            println!("{:<16} {:<15} {:>5} {:>6} {:>8} {:>8}  STATUS", "NAME", "IP", "OPEN", "LOSS", "LATENCY", "PID");
            for r in &rows {
                let s = r.state;
                let latency = s.spec.latency.map_or("-".into(), |l| format!("{l:?}"));
                let status = if r.running { "running" } else { "dead (trident lab down cleans up)" };
                println!(
                    "{:<16} {:<15} {:>5} {:>5}% {:>8} {:>8}  {status}",
                    s.name,
                    s.ip,
                    s.open.len(),
                    s.spec.loss_pct,
                    latency,
                    s.pid
                );
            }
        }
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names() {
        for ok in ["lab1", "a", "my_lab-2"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(33)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
