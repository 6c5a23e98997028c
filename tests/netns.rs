//! A network namespace per test, reached over a veth pair: a real remote
//! host whose firewall (iptables inside the namespace) the test controls.
//!
//! [`Netns::new`] creates a namespace named `trt-<pid>-<counter>`, a veth
//! pair (host side in the root namespace, peer `eth0` inside), and a /30
//! from 10.0.0.0/8 that no address or route of the root namespace overlaps.
//! [`Netns::listen`] opens listeners *inside* the namespace from this very
//! process (a thread that `setns`es in, binds, and hands the sockets back:
//! a socket stays in the namespace it was created in). [`Netns::iptables`]
//! edits the namespace's firewall. Dropping the value closes the listeners
//! and deletes the namespace and the veth pair, also when the test panics.
//!
//! Needs root and iproute2's `ip`; without them it panics saying so, so a
//! missing facility fails the test instead of skipping it.

#![allow(dead_code)]

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

/// Where `ip netns add` pins namespaces.
const NETNS_DIR: &str = "/var/run/netns";
/// Name of the veth peer inside the namespace.
const PEER_IF: &str = "eth0";

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
}

impl Netns {
    /// Creates the namespace, the veth pair and the addresses, links up.
    ///
    /// # Panics
    /// When not root, when `ip` is missing, or when creation keeps failing.
    pub fn new() -> Self {
        require_facilities();
        let _one_at_a_time = CREATE.lock().unwrap_or_else(PoisonError::into_inner);
        let pid = std::process::id();
        let mut errors = Vec::new();
        for attempt in 0..12u32 {
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            match Self::try_create(pid, n, attempt) {
                Ok(ns) => return ns,
                Err(e) => errors.push(e),
            }
        }
        panic!("cannot create a network namespace for the test:\n  {}", errors.join("\n  "));
    }

    fn try_create(pid: u32, n: u32, attempt: u32) -> Result<Self, String> {
        let name = format!("trt-{pid}-{n}");
        // IFNAMSIZ is 16: "tr" + at most 6 hex digits of pid + "h" + counter.
        let host_if = format!("tr{pid:x}h{n:x}");
        if host_if.len() > 15 {
            return Err(format!("interface name {host_if} too long"));
        }
        let used = used_prefixes()?;
        let block = (0..64)
            .map(|k| candidate_block(pid, n, attempt * 64 + k))
            .find(|&b| !used.iter().any(|&p| overlaps(p, (b, 30))))
            .ok_or("no free 10.x /30 found")?;
        let host_ip = Ipv4Addr::from(block + 1);
        let ns_ip = Ipv4Addr::from(block + 2);

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
            return Err(format!("{host_ip}/30 is also used elsewhere ({holders} addresses in it)"));
        }

        // The kernel rate-limits ICMP errors per destination (a burst of 6,
        // then one a second): without this, REJECT rules with ICMP answers
        // turn into silence after a few probes. The sysctls are per namespace.
        ns.sysctl("net/ipv4/icmp_ratelimit", "0").map_err(|e| format!("icmp_ratelimit in {name}: {e}"))?;
        ns.sysctl("net/ipv4/icmp_ratemask", "0").map_err(|e| format!("icmp_ratemask in {name}: {e}"))?;
        Ok(ns)
    }

    /// The namespace side's address: what the tests scan.
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

    /// Runs `f` on a thread that has entered the namespace, and returns its
    /// result (a panic in `f` is re-raised here). Sockets created by `f`
    /// belong to the namespace for their whole life.
    pub fn run_inside<R, F>(&self, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let path = format!("{NETNS_DIR}/{}", self.name);
        let inside = thread::Builder::new().name(format!("in-{}", self.name)).spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
            // SAFETY: setns with a valid namespace fd; it changes only this
            // thread's network namespace, and the thread ends after `f`.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                panic!("setns({path}, CLONE_NEWNET) failed: {}", io::Error::last_os_error());
            }
            drop(file);
            f()
        });
        match inside.expect("spawn a thread for the namespace").join() {
            Ok(r) => r,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Writes a sysctl of the namespace (`key` as a path under /proc/sys).
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let path = format!("/proc/sys/{key}");
        let value = value.to_string();
        self.run_inside(move || fs::write(path, value))
    }

    /// Opens a TCP listener on 0.0.0.0:`port` inside the namespace for each
    /// of `ports`; every one accepts and drops connections until `self` drops.
    ///
    /// # Panics
    /// If a port cannot be bound.
    pub fn listen(&self, ports: &[u16]) {
        let wanted = ports.to_vec();
        let bound: Vec<TcpListener> = self.run_inside(move || {
            wanted
                .iter()
                .map(|&port| {
                    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
                        .unwrap_or_else(|e| panic!("cannot listen on port {port} in the namespace: {e}"))
                })
                .collect()
        });
        // The accept threads run in the root namespace: only the sockets
        // need to be inside, and they stay there.
        for listener in bound {
            let keep = listener.try_clone().expect("clone a listening socket");
            self.listeners.lock().unwrap_or_else(PoisonError::into_inner).push(keep);
            let stop = Arc::clone(&self.stop);
            let acceptor = thread::spawn(move || {
                for conn in listener.incoming() {
                    match conn {
                        Ok(conn) => drop(conn),
                        Err(_) if stop.load(Ordering::SeqCst) => break,
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                        Err(_) => {}
                    }
                }
            });
            self.acceptors.lock().unwrap_or_else(PoisonError::into_inner).push(acceptor);
        }
    }

    /// Runs `iptables ARGS` inside the namespace.
    ///
    /// # Panics
    /// If iptables cannot be run or fails (with its stderr).
    pub fn iptables(&self, args: &[&str]) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "iptables"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `ip netns exec {} iptables`: {e}", self.name));
        if !out.status.success() {
            panic!(
                "`iptables {}` in namespace {} failed ({}): {}",
                args.join(" "),
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }

    /// Closes the listeners, then deletes the veth pair and the namespace.
    fn cleanup(&mut self) -> Result<(), String> {
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
        let mut errors = Vec::new();
        // Deleting one end deletes both; the device may not exist if
        // creation failed early.
        if let Err(e) = ip(&["link", "del", &self.host_if]) {
            if !e.contains("Cannot find device") {
                errors.push(e);
            }
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            errors.push(e);
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            let msg = format!("cannot remove network namespace {}: {e}", self.name);
            if thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

/// Panics with the reason when the namespace tests cannot run here.
fn require_facilities() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "network-namespace tests need root (running as euid {euid}): they create namespaces, veth pairs and iptables rules"
    );
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("`ip -V` failed ({}): network-namespace tests need iproute2's `ip`", o.status),
        Err(e) => panic!("network-namespace tests need iproute2's `ip` on PATH: {e}"),
    }
}

/// Runs `ip ARGS`; its stdout, or an error naming the command and its stderr.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("`ip {}` failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
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
fn addresses() -> Result<Vec<Prefix>, String> {
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
fn used_prefixes() -> Result<Vec<Prefix>, String> {
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
    for line in routes.lines() {
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

/// A pseudo-random /30 in 10.0.0.0/8 derived from (pid, counter, k), so
/// parallel tests and test processes start from different blocks.
fn candidate_block(pid: u32, n: u32, k: u32) -> u32 {
    // splitmix64
    let mut x = (u64::from(pid) << 32 | u64::from(n)) ^ (u64::from(k) << 48) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let index = (x >> 42) as u32; // 22 bits: which /30 of the /8
    0x0A00_0000 | index << 2
}
