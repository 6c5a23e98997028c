//! Guards against scanning far more than was meant, and memory that does
//! not grow with the target.
//!
//! Every command here that names a non-loopback target runs inside
//! `unshare -n` (a network namespace with no route at all), so even a
//! guard that failed could not send a packet out of the machine. The
//! memory test routes its /16 into a veth pair inside such a namespace
//! whose far end drops everything: an all-DROP network of 65,536 hosts.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddrV4, TcpListener};
use std::process::{Command, Output, Stdio};

use crate::util;

/// `trident ARGS` inside a fresh network namespace without routes.
fn isolated(args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", env!("CARGO_BIN_EXE_trident")]).args(args).stdin(Stdio::null());
    cmd
}

fn output(mut cmd: Command) -> Output {
    cmd.output().expect("unshare runs (package util-linux)")
}

fn describe(o: &Output) -> String {
    format!("status {}\n--- stdout\n{}--- stderr\n{}", o.status, util::stdout(o), util::stderr(o))
}

/// Exit 2 with one line on stderr containing every one of `needles`.
fn assert_bad_input(args: &[&str], needles: &[&str]) {
    let o = output(isolated(args));
    let context = format!("{args:?}\n{}", describe(&o));
    assert_eq!(o.status.code(), Some(2), "{context}");
    let err = util::stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line\n{context}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} missing\n{context}");
    }
    assert!(o.stdout.is_empty(), "nothing scanned\n{context}");
}

#[test]
fn endless_target_lists_are_refused_not_read_whole() {
    // /dev/zero never ends: read whole it would fill memory.
    let too_big = "more than 16777216 bytes";
    assert_bad_input(&["scan", "-iL", "/dev/zero", "-p", "80"], &["target list /dev/zero", too_big]);
    assert_bad_input(
        &["scan", "127.0.0.1", "--excludefile", "/dev/zero", "-p", "80"],
        &["exclude file /dev/zero", too_big],
    );
}

#[test]
fn cidr_with_host_bits_is_bad_input_naming_the_network() {
    assert_bad_input(&["scan", "10.0.0.0/0", "-p", "80"], &["\"10.0.0.0/0\"", "the network is 0.0.0.0/0"]);
    assert_bad_input(&["scan", "10.1.2.3/8", "-p", "80"], &["\"10.1.2.3/8\"", "the network is 10.0.0.0/8"]);
    assert_bad_input(&["scan", "127.0.0.1/24", "-p", "80"], &["the network is 127.0.0.0/24"]);
    assert_bad_input(&["scan", "fe80::1/64", "-p", "80"], &["the network is fe80::/64"]);
}

#[test]
fn huge_scans_need_allow_huge() {
    assert_bad_input(&["scan", "10.0.0.0/7", "-p", "80"], &["33554432 addresses", "--allow-huge"]);
    assert_bad_input(&["scan", "0.0.0.0/0", "-p", "80"], &["4294967296 addresses", "--allow-huge"]);
    assert_bad_input(&["scan", "fd00::/64", "-p", "80"], &["--allow-huge"]);
    assert_bad_input(&["scan", "10.20.0.0/15", "-p-"], &["probes (more than 2^32)", "--allow-huge"]);
    assert_bad_input(&["scan", "-iL", "/dev/null", "10.0.0.0/8", "10.1.0.0/16", "-p", "80"], &["--allow-huge"]);

    // With --allow-huge the scan starts (here every probe meets "network
    // unreachable" at once: the namespace has no route).
    let mut cmd = isolated(&["scan", "10.0.0.0/7", "-p", "80", "--allow-huge", "-f", "jsonl", "-q", "-e", "async"]);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("unshare");
    let mut first = String::new();
    let read = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first);
    let _ = child.kill();
    let _ = child.wait();
    assert!(read.is_ok_and(|n| n > 0), "a first result");
    let line: util::PortLine = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{first:?}: {e}"));
    assert_eq!((line.state.as_str(), line.reason.as_str()), ("filtered", "net-unreach"), "{first}");
}

#[test]
fn list_targets_prints_the_plan_and_sends_nothing() {
    let o = output(isolated(&["scan", "10.20.0.0/16", "10.0.0.1", "-p", "1-1000", "--list-targets", "--shard", "1/4"]));
    let context = describe(&o);
    assert_eq!(o.status.code(), Some(0), "{context}");
    let lines: Vec<String> = util::stdout(&o).lines().map(String::from).collect();
    let want = [
        "target 10.20.0.0-10.20.255.255: 65536 addresses",
        "target 10.0.0.1",
        "addresses 65537",
        "ports     1000",
        "probes    65537000 (before retries)",
        "shard     1/4 (about 16384250 probes)",
        "huge      no",
    ];
    assert_eq!(lines, want, "{context}");

    // A huge plan is listed, not refused, and says what it would need.
    let o = output(isolated(&["scan", "0.0.0.0/0", "-p", "80", "--list-targets"]));
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(util::stdout(&o).contains("huge      4294967296 addresses"), "{}", describe(&o));
    assert!(util::stdout(&o).contains("needs --allow-huge"), "{}", describe(&o));

    // Nothing is sent: a listener on the target sees no connection.
    let ip = util::unique_loopback();
    let listener = TcpListener::bind(SocketAddrV4::new(ip, 0)).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port().to_string();
    let o = util::run(&["scan", &ip.to_string(), "-p", &port, "--list-targets"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(listener.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "no probe was sent");
}

/// Peak RSS (KiB) of `trident scan TARGET -p 1` of an all-DROP network
/// (run to completion), with its output lines counted.
// The child is reaped by wait4 (which also gives its peak RSS), not wait().
#[allow(clippy::zombie_processes)]
fn peak_rss_of_silent_scan(target: &str, format: &str) -> (u64, usize) {
    // Inside `unshare -n`: 10.20.0.0/16 goes into a veth pair without ARP
    // whose far end is up but forwards nothing: every SYN vanishes.
    let script = concat!(
        "set -e; ip link set lo up; ip link add d0 type veth peer name d1; ip link set d1 up; ",
        "ip link set d0 arp off; ip link set d0 up; ip addr add 10.21.0.1/32 dev d0; ",
        "ip route add 10.20.0.0/16 dev d0 src 10.21.0.1; exec \"$@\""
    );
    let bin = env!("CARGO_BIN_EXE_trident");
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "sh", "-c", script, "sh", bin, "scan", target, "-p", "1", "-e", "async", "-q"])
        .args(["--timeout", "5ms", "--retries", "0", "-f", format])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("unshare");
    let stdout = child.stdout.take().expect("stdout");
    let lines = BufReader::new(stdout).lines().map_while(Result::ok).count();
    let pid = i32::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers.
    let waited = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    assert_eq!(waited, pid, "wait4");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "scan of {target} exited with {status}");
    (u64::try_from(usage.ru_maxrss).unwrap_or(0), lines)
}

#[test]
fn memory_does_not_grow_with_a_silent_target() {
    // 16,384 then 65,536 silent hosts: a scan that keeps state per host or
    // every silent probe until the end needs ~20 MB more for the second
    // (measured: +24 MiB before the rounds ran per window); one that is
    // bounded by its concurrency and window needs the same for both.
    let (small, small_lines) = peak_rss_of_silent_scan("10.20.0.0/18", "jsonl");
    let (large, large_lines) = peak_rss_of_silent_scan("10.20.0.0/16", "jsonl");
    assert_eq!((small_lines, large_lines), (16_384, 65_536), "every port reported once");
    let growth = large.saturating_sub(small);
    assert!(growth < 8 * 1024, "peak RSS {small} KiB for a /18, {large} KiB for a /16: +{growth} KiB");

    // -f json keeps no state for hosts that never answered.
    let (json, _) = peak_rss_of_silent_scan("10.20.0.0/16", "json");
    let growth = json.saturating_sub(small);
    assert!(growth < 8 * 1024, "peak RSS {small} KiB for a /18 (jsonl), {json} KiB for a /16 (json)");
}
