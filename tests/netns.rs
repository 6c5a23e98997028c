//! A network namespace per test, reached over a veth pair: a real remote
//! host whose firewall (iptables inside the namespace) the test controls.
//!
//! A thin wrapper over the library's [`trident::lab::Netns`] (namespaces
//! named `trt-<pid>-<counter>`) that panics with the [`LabError`] instead of
//! returning it: a missing facility (root, `ip`, `iptables`) fails the test
//! instead of skipping it. Dropping the value closes the listeners and
//! deletes the namespace and the veth pair, also when the test panics; a
//! failure to remove them fails the test (unless it is already failing).
//!
//! [`LabError`]: trident::lab::LabError

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::thread;

use trident::lab;

/// A network namespace reachable from the root namespace at [`Netns::ip`].
#[derive(Debug)]
pub struct Netns(Option<lab::Netns>);

impl Netns {
    /// Creates the namespace, the veth pair and the addresses, links up.
    ///
    /// # Panics
    /// When not root, when `ip` or `iptables` is missing, or when creation
    /// keeps failing.
    pub fn new() -> Self {
        match lab::Netns::new("trt") {
            Ok(ns) => Netns(Some(ns)),
            Err(e) => panic!("cannot create a network namespace for the test: {e}"),
        }
    }

    fn inner(&self) -> &lab::Netns {
        self.0.as_ref().unwrap_or_else(|| unreachable!("present until drop"))
    }

    /// The namespace side's address: what the tests scan.
    pub fn ip(&self) -> Ipv4Addr {
        self.inner().ip()
    }

    /// The root namespace side's address (the scanner's source address).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.inner().host_ip()
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        self.inner().name()
    }

    /// Runs `f` on a thread that has entered the namespace, and returns its
    /// result (a panic in `f` is re-raised here).
    pub fn run_inside<R, F>(&self, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        self.inner().run_inside(f).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Writes a sysctl of the namespace (`key` as a path under /proc/sys).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), lab::LabError> {
        self.inner().sysctl(key, value)
    }

    /// Opens a TCP listener on 0.0.0.0:`port` inside the namespace for each
    /// of `ports`; every one accepts and drops connections until `self` drops.
    ///
    /// # Panics
    /// If a port cannot be bound.
    pub fn listen(&self, ports: &[u16]) {
        self.inner().listen(ports).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `iptables ARGS` inside the namespace.
    ///
    /// # Panics
    /// If iptables cannot be run or fails (with its stderr).
    pub fn iptables(&self, args: &[&str]) {
        self.inner().iptables(args).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let Some(ns) = self.0.take() else { return };
        if let Err(e) = ns.close() {
            if thread::panicking() {
                eprintln!("{e}");
            } else {
                panic!("{e}");
            }
        }
    }
}
