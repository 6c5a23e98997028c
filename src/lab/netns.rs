//! A network namespace reached over a veth pair: a real remote host whose
//! firewall (iptables inside the namespace) and listeners we control.
//!
//! [`Netns::new`] creates a namespace named `<prefix>-<pid>-<counter>`
//! ([`Netns::with_name`]: an exact name), a veth pair (host side in the
//! root namespace, peer `eth0` inside), and a /30 from the labs' pool that no
//! address or route of the root namespace overlaps. [`Netns::listen`]
//! opens listeners *inside* the namespace from this very process (a thread
//! that `setns`es in, binds, and hands the sockets back: a socket stays in
//! the namespace it was created in). [`Netns::iptables`] edits the
//! namespace's firewall. Dropping the value closes the listeners and
//! deletes the namespace and the veth pair ([`Netns::close`] does the same
//! and reports failures).
//!
//! The pool is one /16 of 10.0.0.0/8 (the highest of 10.254/16 down to
//! 10.200/16) that holds no address, route or DNS server (resolv.conf) of
//! this machine. While any such namespace exists, the root namespace also
//! has an `unreachable` route for the whole pool ([`GUARD_METRIC`]) under
//! the namespaces' own /30s: an address of a namespace that is gone (a scan
//! outliving its target, an address copied by hand) then fails at once with
//! "no route to host" instead of following the default route out of the
//! machine. The pool is kept narrow so that the guard never hides anything
//! the machine reaches through its default route (a DNS server in 10/8, a
//! proxy); a guard that holds a DNS server (one left by an older version
//! covering all of 10/8) is removed and replaced. The last namespace to go
//! removes the guard (see [`remove`]).
//!
//! Needs root, iproute2's `ip` and `iptables`; without them creation fails
//! with a [`LabError`] naming what is missing.

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use super::LabError;

/// Where `ip netns add` pins namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";
/// Name of the veth peer inside the namespace.
pub const PEER_IF: &str = "eth0";
/// Serialises namespace creation between trident processes (best effort).
const LOCK_FILE: &str = "/run/trident/netns.lock";

/// The guard route's metric: it tells our `unreachable` route from anyone
/// else's route to the same prefix.
const GUARD_METRIC: &str = "4242";
/// The second octets of the /16s the labs' pool may be, tried in order.
const POOL_OCTETS: std::ops::RangeInclusive<u8> = 200..=254;
/// Name prefixes of the namespaces trident makes (tests, benches, labs).
const OWN_PREFIXES: [&str; 3] = ["trt-", "tlab-", "trident-"];

/// Serialises namespace creation within this process: concurrent
/// `ip netns add` calls race on the first mount of /run/netns, and the
/// subnet collision check is only meaningful one creation at a time.
static CREATE: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace reachable from the root namespace at [`Netns::ip`].
#[derive(Debug)]
pub struct Netns {
    name: String,
    host_if: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
    stop: Arc<AtomicBool>,
    /// Clones of the listening sockets, shut down on drop to end the accept threads.
    listeners: Mutex<Vec<TcpListener>>,
    acceptors: Mutex<Vec<JoinHandle<()>>>,
    closed: bool,
}

/// How the namespace is named.
#[derive(Clone, Copy)]
enum Naming<'a> {
    /// `<prefix>-<pid>-<counter>`, a fresh counter per attempt.
    Prefix(&'a str),
    /// Exactly this name.
    Exact(&'a str),
}

impl Netns {
    /// Creates a namespace named `<prefix>-<pid>-<counter>`, the veth pair
    /// and the addresses, links up, ICMP error rate limits off.
    pub fn new(prefix: &str) -> Result<Self, LabError> {
        Self::create(Naming::Prefix(prefix))
    }

    /// As [`Netns::new`], with exactly this namespace name; fails with
    /// [`LabError::Exists`] if a namespace of that name exists.
    pub fn with_name(name: &str) -> Result<Self, LabError> {
        Self::create(Naming::Exact(name))
    }

    fn create(naming: Naming<'_>) -> Result<Self, LabError> {
        require_facilities()?;
        let _one_at_a_time = CREATE.lock().unwrap_or_else(PoisonError::into_inner);
        let _across_processes = lock_across_processes();
        CREATING.with(|c| c.set(true));
        let _creating = CreatingFlag;
        let pid = std::process::id();
        let mut errors = Vec::new();
        for attempt in 0..12u32 {
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let name = match naming {
                Naming::Prefix(prefix) => format!("{prefix}-{pid}-{n}"),
                Naming::Exact(name) => name.to_string(),
            };
            if exists(&name) {
                match naming {
                    Naming::Exact(_) => return Err(LabError::Exists { name }),
                    Naming::Prefix(_) => continue,
                }
            }
            match Self::try_create(name, pid, n, attempt) {
                Ok(ns) => return Ok(ns),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(LabError::Create(errors.join("; ")))
    }

    fn try_create(name: String, pid: u32, n: u32, attempt: u32) -> Result<Self, LabError> {
        // IFNAMSIZ is 16: "tr" + at most 7 hex digits of pid + "h" + counter.
        let host_if = format!("tr{pid:x}h{n:x}");
        if host_if.len() > 15 {
            return Err(LabError::Create(format!("interface name {host_if} too long")));
        }
        let used = used_prefixes()?;
        let pool = pool(&used)?;
        let block = (0..64)
            .map(|k| candidate_block(pool, pid, n, attempt * 64 + k))
            .find(|&b| !used.iter().any(|&p| overlaps(p, (b, 30))))
            .ok_or_else(|| LabError::Create(format!("no free /30 found in {}", show_prefix(pool))))?;
        let host_ip = Ipv4Addr::from(block + 1);
        let ns_ip = Ipv4Addr::from(block + 2);

        // Before anything routes to the new namespace, nothing else in the
        // pool may route out (idempotent: `replace`).
        ip(&["route", "replace", "unreachable", &show_prefix(pool), "metric", GUARD_METRIC])?;
        ip(&["netns", "add", &name])?;
        // From here on, dropping `ns` removes whatever was created.
        let ns = Netns {
            name,
            host_if,
            host_ip,
            ns_ip,
            stop: Arc::new(AtomicBool::new(false)),
            listeners: Mutex::new(Vec::new()),
            acceptors: Mutex::new(Vec::new()),
            closed: false,
        };
        let (name, host_if) = (ns.name.as_str(), ns.host_if.as_str());
        ip(&["link", "add", host_if, "type", "veth", "peer", "name", PEER_IF, "netns", name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", host_if])?;
        ip(&["link", "set", host_if, "up"])?;
        ip(&["-n", name, "addr", "add", &format!("{ns_ip}/30"), "dev", PEER_IF])?;
        ip(&["-n", name, "link", "set", PEER_IF, "up"])?;
        ip(&["-n", name, "link", "set", "lo", "up"])?;

        // Another process may have picked the same block at the same time.
        let holders = addresses()?.into_iter().filter(|&p| overlaps(p, (block, 30))).count();
        if holders != 1 {
            return Err(LabError::Create(format!("{host_ip}/30 is also used elsewhere ({holders} addresses in it)")));
        }

        // The kernel rate-limits ICMP errors per destination (a burst of 6,
        // then one a second): without this, REJECT rules with ICMP answers
        // turn into silence after a few probes. The sysctls are per namespace.
        ns.sysctl("net/ipv4/icmp_ratelimit", "0")?;
        ns.sysctl("net/ipv4/icmp_ratemask", "0")?;
        Ok(ns)
    }

    /// The namespace side's address: what a scan targets.
    pub fn ip(&self) -> Ipv4Addr {
        self.ns_ip
    }

    /// The root namespace side's address (the scanner's source address).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host side of the veth pair (in the root namespace).
    pub fn host_if(&self) -> &str {
        &self.host_if
    }

    /// Runs `f` on a thread that has entered the namespace, and returns its
    /// result (a panic in `f` is re-raised here). Sockets created by `f`
    /// belong to the namespace for their whole life.
    pub fn run_inside<R, F>(&self, f: F) -> Result<R, LabError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let path = netns_path(&self.name);
        let file = File::open(&path).map_err(|e| LabError::io(format!("cannot open {}", path.display()), e))?;
        let inside = thread::Builder::new()
            .name(format!("in-{}", self.name))
            .spawn(move || {
                // SAFETY: setns with a valid namespace fd; it changes only this
                // thread's network namespace, and the thread ends after `f`.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                drop(file);
                Ok(f())
            })
            .map_err(|e| LabError::io("cannot start a thread".into(), e))?;
        match inside.join() {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(LabError::io(format!("setns({}, CLONE_NEWNET) failed", path.display()), e)),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Writes a sysctl of the namespace (`key` as a path under /proc/sys).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), LabError> {
        let path = format!("/proc/sys/{key}");
        let value = value.to_string();
        let what = format!("cannot set {key} in namespace {}", self.name);
        self.run_inside(move || fs::write(path, value))?.map_err(|e| LabError::io(what, e))
    }

    /// Opens a TCP listener on 0.0.0.0:`port` inside the namespace for each
    /// of `ports`; every one accepts and drops connections until `self` drops.
    pub fn listen(&self, ports: &[u16]) -> Result<(), LabError> {
        let wanted = ports.to_vec();
        let bound: Vec<TcpListener> = self
            .run_inside(move || {
                wanted
                    .iter()
                    .map(|&port| {
                        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).map_err(|error| (port, error))
                    })
                    .collect::<Result<_, _>>()
            })?
            .map_err(|(port, error)| LabError::Listen { port, netns: self.name.clone(), error })?;
        // The accept threads run in the root namespace: only the sockets
        // need to be inside, and they stay there.
        for listener in bound {
            let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
            let keep =
                listener.try_clone().map_err(|error| LabError::Listen { port, netns: self.name.clone(), error })?;
            self.listeners.lock().unwrap_or_else(PoisonError::into_inner).push(keep);
            let stop = Arc::clone(&self.stop);
            let acceptor = thread::Builder::new()
                .name(format!("accept-{port}"))
                .stack_size(64 * 1024)
                .spawn(move || {
                    for conn in listener.incoming() {
                        match conn {
                            Ok(conn) => drop(conn),
                            Err(_) if stop.load(Ordering::SeqCst) => break,
                            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                            Err(_) => {}
                        }
                    }
                })
                .map_err(|e| LabError::io("cannot start an accept thread".into(), e))?;
            self.acceptors.lock().unwrap_or_else(PoisonError::into_inner).push(acceptor);
        }
        Ok(())
    }

    /// Runs `iptables ARGS` inside the namespace.
    pub fn iptables(&self, args: &[&str]) -> Result<(), LabError> {
        iptables_in(&self.name, args)
    }

    /// Closes the listeners, then deletes the veth pair and the namespace,
    /// reporting what could not be removed.
    pub fn close(mut self) -> Result<(), LabError> {
        self.cleanup()
    }

    fn cleanup(&mut self) -> Result<(), LabError> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        self.stop.store(true, Ordering::SeqCst);
        let listeners = std::mem::take(&mut *self.listeners.lock().unwrap_or_else(PoisonError::into_inner));
        for l in &listeners {
            // Wakes the accept() blocked on it (with EINVAL).
            // SAFETY: shutdown on a socket fd we own.
            unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
        }
        for acceptor in std::mem::take(&mut *self.acceptors.lock().unwrap_or_else(PoisonError::into_inner)) {
            let _ = acceptor.join();
        }
        // Only now the last socket of the namespace is closed, so the
        // namespace (and its end of the veth pair) can really go away.
        drop(listeners);
        remove(&self.name, Some(&self.host_if))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            eprintln!("trident: {e}");
        }
    }
}

/// The bind-mounted namespace file of `name`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether a namespace named `name` exists (is pinned under /var/run/netns).
pub fn exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Deletes the veth pair `host_if` (if given and present) and the
/// namespace `name` (if present): also for namespaces whose owner died.
pub fn remove(name: &str, host_if: Option<&str>) -> Result<(), LabError> {
    let mut errors = Vec::new();
    // Deleting one end deletes both; the device may not exist if creation
    // failed early or the namespace already went.
    if let Some(host_if) = host_if {
        if let Err(e) = ip(&["link", "del", host_if]) {
            if !e.to_string().contains("Cannot find device") {
                errors.push(e.to_string());
            }
        }
    }
    if exists(name) {
        if let Err(e) = ip(&["netns", "del", name]) {
            errors.push(e.to_string());
        }
    }
    remove_guard_if_unused();
    if errors.is_empty() { Ok(()) } else { Err(LabError::Remove { name: name.to_string(), reason: errors.join("; ") }) }
}

/// Clears [`CREATING`] when dropped (also on an early return).
struct CreatingFlag;

impl Drop for CreatingFlag {
    fn drop(&mut self) {
        CREATING.with(|c| c.set(false));
    }
}

thread_local! {
    /// Set while this thread holds the creation lock (in `Netns::create`):
    /// a namespace it removes on a failed attempt must not wait for it.
    static CREATING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Removes the guard route once no namespace of ours is left. It waits for
/// a creation in progress elsewhere (which may need the guard), so that the
/// last namespace to go does remove it; inside a creation it does nothing.
fn remove_guard_if_unused() {
    if CREATING.with(std::cell::Cell::get) {
        return;
    }
    let Some(_lock) = lock_across_processes() else { return };
    let ours = fs::read_dir(NETNS_DIR).map(|entries| {
        entries.flatten().any(|e| e.file_name().to_str().is_some_and(|n| OWN_PREFIXES.iter().any(|p| n.starts_with(p))))
    });
    if matches!(ours, Ok(false) | Err(_)) {
        for guard in guard_routes() {
            let _ = ip(&["route", "del", "unreachable", &show_prefix(guard), "metric", GUARD_METRIC]);
        }
    }
}

/// The prefix of `line` of `ip route show` if it is a guard route.
fn guard_route(line: &str) -> Option<Prefix> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.first() != Some(&"unreachable") || !words.windows(2).any(|w| w == ["metric", GUARD_METRIC]) {
        return None;
    }
    parse_prefix(words.get(1)?)
}

/// Whether `line` of `ip route show` is a guard route.
fn is_guard_route(line: &str) -> bool {
    guard_route(line).is_some()
}

/// The guard routes present now (any prefix: older versions guarded all of 10/8).
fn guard_routes() -> Vec<Prefix> {
    ip(&["-4", "route", "show", "table", "main"])
        .map(|t| t.lines().filter_map(guard_route).collect())
        .unwrap_or_default()
}

/// The labs' pool for a new namespace: the present guard's prefix if there
/// is one that holds no DNS server, else the first /16 of [`POOL_OCTETS`]
/// that nothing of this machine is in. A guard holding a DNS server is removed.
fn pool(used: &[Prefix]) -> Result<Prefix, LabError> {
    let servers = nameservers();
    let holds_server = |p: Prefix| servers.iter().any(|&s| overlaps(p, (s, 32)));
    for guard in guard_routes() {
        if guard.1 >= 16 && !holds_server(guard) {
            return Ok(guard);
        }
        ip(&["route", "del", "unreachable", &show_prefix(guard), "metric", GUARD_METRIC])?;
    }
    POOL_OCTETS
        .rev()
        .map(|b| (0x0A00_0000 | u32::from(b) << 16, 16))
        .find(|&p| !holds_server(p) && !used.iter().any(|&u| overlaps(u, p)))
        .ok_or_else(|| LabError::Create("every /16 from 10.200/16 to 10.254/16 is in use here".into()))
}

/// The IPv4 DNS servers of /etc/resolv.conf: a guard must never hide them.
fn nameservers() -> Vec<u32> {
    parse_nameservers(&fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
}

fn parse_nameservers(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .map(u32::from)
        .collect()
}

fn show_prefix((addr, len): Prefix) -> String {
    format!("{}/{len}", Ipv4Addr::from(addr))
}

/// Checks that namespaces can be made here: Linux network namespaces,
/// root, iproute2's `ip` and `iptables`.
pub fn require_facilities() -> Result<(), LabError> {
    if !Path::new("/proc/self/ns/net").exists() {
        return Err(LabError::NoNetns("/proc/self/ns/net does not exist".into()));
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(LabError::NotRoot { euid });
    }
    require_tool("ip", &["-V"], "iproute2")?;
    require_tool("iptables", &["-V"], "iptables")?;
    Ok(())
}

fn require_tool(tool: &'static str, args: &[&str], package: &'static str) -> Result<(), LabError> {
    match Command::new(tool).args(args).stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(LabError::MissingTool {
            tool,
            package,
            reason: format!("`{tool} {}` failed ({})", args.join(" "), o.status),
        }),
        Err(e) => Err(LabError::MissingTool { tool, package, reason: e.to_string() }),
    }
}

/// Runs `iptables -w ARGS` inside namespace `name` (entered with setns
/// between fork and exec: cheaper than `ip netns exec`).
pub(crate) fn iptables_in(name: &str, args: &[&str]) -> Result<(), LabError> {
    let path = netns_path(name);
    let ns = File::open(&path).map_err(|e| LabError::io(format!("cannot open {}", path.display()), e))?;
    let fd: RawFd = ns.as_raw_fd();
    let mut cmd = Command::new("iptables");
    cmd.arg("-w").args(args).stdin(Stdio::null());
    // SAFETY: the closure runs between fork and exec and only calls setns,
    // an async-signal-safe system call, on a descriptor `ns` keeps open.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            LabError::MissingTool { tool: "iptables", package: "iptables", reason: e.to_string() }
        }
        _ => LabError::io(format!("cannot run iptables in namespace {name}"), e),
    })?;
    drop(ns);
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: format!("iptables {} (in namespace {name})", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `ip ARGS`; its stdout, or an error naming the command and its stderr.
fn ip(args: &[&str]) -> Result<String, LabError> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => LabError::MissingTool { tool: "ip", package: "iproute2", reason: e.to_string() },
        _ => LabError::io("cannot run ip".into(), e),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: format!("ip {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// An exclusive lock on [`LOCK_FILE`], held while the returned file lives,
/// so that trident processes creating namespaces at the same time do not
/// pick the same subnet. Best effort: `None` if the file cannot be used.
fn lock_across_processes() -> Option<File> {
    lock_file(libc::LOCK_EX)
}

fn lock_file(how: libc::c_int) -> Option<File> {
    let path = Path::new(LOCK_FILE);
    fs::create_dir_all(path.parent()?).ok()?;
    let file = File::options().create(true).truncate(false).write(true).open(path).ok()?;
    // SAFETY: flock on a descriptor we own; released when `file` closes.
    (unsafe { libc::flock(file.as_raw_fd(), how) } == 0).then_some(file)
}

/// An IPv4 prefix as (network as u32, length).
type Prefix = (u32, u8);

fn parse_prefix(s: &str) -> Option<Prefix> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse().ok()?),
        None => (s, 32),
    };
    let addr: Ipv4Addr = addr.parse().ok()?;
    (len <= 32).then_some((u32::from(addr), len))
}

fn overlaps(a: Prefix, b: Prefix) -> bool {
    let len = a.1.min(b.1);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a.0 & mask == b.0 & mask
}

/// Every IPv4 address (with its prefix) of the root namespace.
fn addresses() -> Result<Vec<Prefix>, LabError> {
    let text = ip(&["-4", "-o", "addr", "show"])?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|&w| w == "inet")?;
            parse_prefix(words.next()?)
        })
        .collect())
}

/// Addresses and (non-default) routes of the root namespace: what a new
/// subnet must not overlap.
fn used_prefixes() -> Result<Vec<Prefix>, LabError> {
    let mut used = addresses()?;
    let routes = ip(&["-4", "route", "show", "table", "all"])?;
    const TYPES: [&str; 10] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "blackhole",
        "unreachable",
        "prohibit",
        "throw",
        "nat",
        "anycast",
    ];
    for line in routes.lines().filter(|l| !is_guard_route(l)) {
        let mut words = line.split_whitespace();
        let mut first = words.next().unwrap_or_default();
        if TYPES.contains(&first) {
            first = words.next().unwrap_or_default();
        }
        if let Some(p) = parse_prefix(first) {
            used.push(p);
        }
    }
    Ok(used)
}

/// A pseudo-random /30 in the /16 `pool` derived from (pid, counter, k),
/// so parallel namespaces and processes start from different blocks.
fn candidate_block(pool: Prefix, pid: u32, n: u32, k: u32) -> u32 {
    let x = super::splitmix64((u64::from(pid) << 32 | u64::from(n)) ^ (u64::from(k) << 48));
    let index = (x >> 50) as u32; // 14 bits: which /30 of the /16
    pool.0 | index << 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_overlaps() {
        assert_eq!(parse_prefix("10.1.2.3/30"), Some((0x0A01_0203, 30)));
        assert_eq!(parse_prefix("10.1.2.3"), Some((0x0A01_0203, 32)));
        assert_eq!(parse_prefix("default"), None);
        assert!(overlaps((0x0A00_0000, 8), (0x0A01_0200, 30)));
        assert!(!overlaps((0x0A01_0200, 30), (0x0A01_0204, 30)));
        assert!(overlaps((0, 0), (0x0A01_0204, 30)));
    }

    #[test]
    fn the_guard_route_is_recognised() {
        assert_eq!(guard_route("unreachable 10.254.0.0/16 metric 4242 "), Some((0x0AFE_0000, 16)));
        assert!(is_guard_route("unreachable 10.0.0.0/8 metric 4242 "));
        assert!(!is_guard_route("unreachable 10.0.0.0/8 metric 1"));
        assert!(!is_guard_route("10.0.0.0/8 dev eth1 metric 4242"));
    }

    #[test]
    fn candidate_blocks_are_aligned_in_the_pool() {
        let pool = (0x0AFE_0000, 16);
        for k in 0..100 {
            let b = candidate_block(pool, 1234, 5, k);
            assert!(overlaps(pool, (b, 30)));
            assert_eq!(b & 3, 0);
        }
    }

    #[test]
    fn nameservers_are_read_from_resolv_conf() {
        let text = "# comment\nnameserver 10.255.255.53\nnameserver ::1\nsearch lan\n";
        assert_eq!(parse_nameservers(text), vec![0x0AFF_FF35]);
    }
}
