//! Latency for a lab without netem: every packet that reaches the
//! namespace through its veth end is queued to user space (iptables
//! `NFQUEUE` in the namespace's mangle PREROUTING chain, so the firewall
//! rules in INPUT still apply after it), held here for the latency, then
//! accepted.
//!
//! Why the way in and not the way out: the namespace's RSTs and ICMP errors
//! are sent from per-CPU control sockets whose send buffer (~200 KiB) stays
//! charged while a packet is held; holding the answers for 20 ms at scan
//! rates filled it, and the kernel then discarded answers (IpOutDiscards:
//! 133k of 480k RSTs in one full scan), which showed up as ports that never
//! answered. Packets coming in are no longer charged to any socket.
//!
//! The queue is a `NETLINK_NETFILTER` socket opened *inside* the namespace
//! (nfqueue instances are per namespace; a socket stays in the namespace it
//! was created in), then served by a thread in the root namespace. The
//! protocol is spoken directly (a few fixed-layout messages): the socket's
//! descriptor is needed to sleep until a packet arrives when nothing is held.
//! While packets are held, the delayer wakes on a fixed tick (1 ms at most,
//! 1/20 of the latency) and takes every notice that arrived since at once:
//! a wake-up per packet cost more CPU than the scans it was slowing.
//!
//! Every packet is held the same time (± one tick), so packets leave in the
//! order they came, and one batch verdict ("accept everything up to packet id N")
//! releases all packets that are due. Nothing is dropped: the kernel queue
//! is long, the socket buffer large, and the queue is *fail-open* (were
//! either full, the kernel would let a packet through undelayed instead of
//! dropping it). Stopping removes the iptables rule first, then releases
//! every packet still held.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::LabError;
use super::netns::{self, Netns, PEER_IF};

/// The queue number (queues are per namespace, so every lab can use 0).
pub const QUEUE_NUM: u16 = 0;
/// Longest kernel queue: packets held at once.
const QUEUE_MAX_LEN: u32 = 1 << 20;
/// Socket receive buffer for queued-packet notices.
const RCVBUF: libc::c_int = 64 << 20;
/// How often an idle delayer looks at its stop flag.
const IDLE_TICK: Duration = Duration::from_millis(50);
/// Longest latency accepted.
pub const MAX_LATENCY: Duration = Duration::from_secs(10);

/// What a delayer did, and what the kernel says about its queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DelayStats {
    /// Packets held and released.
    pub packets: u64,
    /// Most a packet was held beyond its due time (the delayer's lag), in µs.
    pub max_late_us: u64,
    /// Packets the kernel dropped because the queue was full (should be 0).
    pub queue_dropped: u64,
    /// Packets the kernel could not hand to the delayer (should be 0;
    /// with fail-open they went out undelayed).
    pub user_dropped: u64,
}

/// Holds the packets coming into the namespace for a fixed latency; stops (and
/// releases everything it holds) on drop.
#[derive(Debug)]
pub struct Delayer {
    netns: String,
    latency: Duration,
    rule: Vec<String>,
    rule_installed: bool,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// Shared with the delayer thread.
#[derive(Debug, Default)]
struct Counters {
    packets: AtomicU64,
    max_late_us: AtomicU64,
}

impl Delayer {
    /// Starts delaying every packet that reaches `ns` through its veth end by
    /// `latency`: binds the queue inside the namespace, starts the delayer
    /// thread, then installs the iptables rule.
    pub fn start(ns: &Netns, latency: Duration) -> Result<Delayer, LabError> {
        if latency.is_zero() || latency > MAX_LATENCY {
            return Err(LabError::Spec(format!("latency {latency:?} is out of range (above 0, at most 10s)")));
        }
        require_nfqueue()?;
        let mut queue = ns.run_inside(|| NfQueue::open(QUEUE_NUM))?.map_err(|e| {
            LabError::NoNfqueue(format!("cannot bind queue {QUEUE_NUM} in namespace {}: {e}", ns.name()))
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let thread = {
            let (stop, counters) = (Arc::clone(&stop), Arc::clone(&counters));
            thread::Builder::new()
                .name(format!("delay-{}", ns.name()))
                .spawn(move || {
                    emulate_a_separate_machine();
                    let result = serve(&mut queue, latency, &stop, &counters);
                    if let Err(e) = &result {
                        eprintln!("trident: the delayer stopped: {e}; packets now go out undelayed");
                    }
                    result
                })
                .map_err(|e| LabError::io("cannot start the delayer thread".into(), e))?
        };
        // --queue-bypass: should the delayer's socket ever close early, packets
        // go out undelayed instead of being dropped.
        let queue_num = QUEUE_NUM.to_string();
        let rule: Vec<String> =
            ["PREROUTING", "-t", "mangle", "-i", PEER_IF, "-j", "NFQUEUE", "--queue-num", &queue_num, "--queue-bypass"]
                .map(String::from)
                .to_vec();
        let mut delayer = Delayer {
            netns: ns.name().to_string(),
            latency,
            rule,
            rule_installed: false,
            stop,
            counters,
            thread: Some(thread),
        };
        let mut add: Vec<&str> = vec!["-A"];
        add.extend(delayer.rule.iter().map(String::as_str));
        ns.iptables(&add).map_err(|e| LabError::NoNfqueue(format!("cannot install the NFQUEUE rule: {e}")))?;
        delayer.rule_installed = true;
        Ok(delayer)
    }

    /// The latency added to every outgoing packet.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Packets released so far and the kernel's drop counters of the queue.
    pub fn stats(&self) -> DelayStats {
        let mut stats = DelayStats {
            packets: self.counters.packets.load(Ordering::Relaxed),
            max_late_us: self.counters.max_late_us.load(Ordering::Relaxed),
            ..DelayStats::default()
        };
        if let Some((queue_dropped, user_dropped)) = kernel_counters(&self.netns) {
            stats.queue_dropped = queue_dropped;
            stats.user_dropped = user_dropped;
        }
        stats
    }

    /// Removes the rule, releases every held packet and ends the thread.
    pub fn stop(mut self) -> Result<DelayStats, LabError> {
        let stats = self.stats();
        self.shutdown()?;
        Ok(DelayStats { packets: self.counters.packets.load(Ordering::Relaxed), ..stats })
    }

    fn shutdown(&mut self) -> Result<(), LabError> {
        let mut error = None;
        if std::mem::replace(&mut self.rule_installed, false) {
            let mut del: Vec<&str> = vec!["-D"];
            del.extend(self.rule.iter().map(String::as_str));
            if let Err(e) = netns::iptables_in(&self.netns, &del) {
                error = Some(e);
            }
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => error = error.or(Some(LabError::io("the delayer failed".into(), e))),
                Err(_) => error = error.or(Some(LabError::Create("the delayer thread panicked".into()))),
            }
        }
        error.map_or(Ok(()), Err)
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("trident: stopping the delayer of {}: {e}", self.netns);
        }
    }
}

/// Checks that the kernel can queue packets to user space, loading
/// `nfnetlink_queue` (and `xt_NFQUEUE`) with modprobe when needed.
pub fn require_nfqueue() -> Result<(), LabError> {
    let proc_file = Path::new("/proc/net/netfilter/nfnetlink_queue");
    if !proc_file.exists() {
        let tried = modprobe("nfnetlink_queue");
        if !proc_file.exists() {
            return Err(LabError::NoNfqueue(format!(
                "the kernel has no nfnetlink_queue (CONFIG_NETFILTER_NETLINK_QUEUE); `modprobe nfnetlink_queue`: {tried}"
            )));
        }
    }
    let has_target = fs::read_to_string("/proc/net/ip_tables_targets").is_ok_and(|t| t.lines().any(|l| l == "NFQUEUE"));
    if !has_target {
        // Loaded on demand by iptables anyway; a failure shows when the rule is added.
        let _ = modprobe("xt_NFQUEUE");
    }
    Ok(())
}

fn modprobe(module: &str) -> String {
    match Command::new("modprobe").arg(module).stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => "loaded".into(),
        Ok(o) => format!("failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => format!("cannot run modprobe: {e}"),
    }
}

/// (queue_dropped, user_dropped) of our queue, from the namespace's
/// /proc/net/netfilter/nfnetlink_queue.
fn kernel_counters(netns: &str) -> Option<(u64, u64)> {
    let file = fs::File::open(netns::netns_path(netns)).ok()?;
    let reader = thread::spawn(move || {
        // SAFETY: setns on a namespace fd we own, changing only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        fs::read_to_string("/proc/thread-self/net/netfilter/nfnetlink_queue").ok()
    });
    let text = reader.join().ok()??;
    // queue_number peer_portid queue_total copy_mode copy_range queue_dropped user_dropped id_sequence 1
    text.lines().find_map(|line| {
        let f: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        (f.len() >= 7 && f[0] == u64::from(QUEUE_NUM)).then(|| (f[5], f[6]))
    })
}

/// How often a busy delayer wakes up at most: the precision of the latency.
/// Waking for every packet cost ~15 us of context switching per packet (a
/// full-range scan through a 20 ms lab: 1.25 s of the delayer's CPU, most of
/// it scheduler work, on a machine whose 2 cores the scanner also needs). So
/// while packets are held the delayer wakes every `tick`, taking every notice that arrived meanwhile at once and
/// releasing what is due by then.
fn tick_for(latency: Duration) -> Duration {
    (latency / 20).clamp(Duration::from_micros(50), Duration::from_millis(1))
}

/// The delayer loop: receive notices of queued packets, release those due.
///
/// A notice taken at a wake-up arrived some time since the previous one, so
/// it is due `latency` after the middle of that interval, and released at
/// the wake-up nearest its due time: each packet is held `latency` ± `tick`.
fn serve(queue: &mut NfQueue, latency: Duration, stop: &AtomicBool, counters: &Counters) -> io::Result<()> {
    let tick = tick_for(latency);
    let mut held: VecDeque<(Instant, u32)> = VecDeque::new();
    let mut ids = Vec::new();
    let mut last_wake = Instant::now();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let arrived = if stopping {
            true
        } else if !held.is_empty() {
            // Packets held: new notices wait in the socket until the next wake-up.
            sleep_until(last_wake + tick);
            true
        } else {
            let idle = queue.wait_readable(IDLE_TICK)?;
            last_wake = Instant::now();
            idle
        };
        let now = Instant::now();
        if arrived {
            ids.clear();
            queue.receive(&mut ids)?;
            let since = now.saturating_duration_since(last_wake);
            let due = now + latency - since / 2;
            held.extend(ids.iter().map(|&id| (due, id)));
        }
        last_wake = now;
        if let Some(&(due, _)) = held.front().filter(|_| !stopping) {
            let late = now.saturating_duration_since(due).as_micros() as u64;
            counters.max_late_us.fetch_max(late, Ordering::Relaxed);
        }
        let mut last_due = None;
        while let Some(&(due, id)) = held.front() {
            if due > now + tick / 2 && !stopping {
                break;
            }
            last_due = Some(id);
            held.pop_front();
            counters.packets.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(id) = last_due {
            queue.accept_up_to(id)?;
        }
        if stopping && held.is_empty() {
            // The rule is gone (removed before the stop flag was set), so
            // nothing new arrives; closing the socket unbinds the queue.
            return Ok(());
        }
    }
}

fn sleep_until(when: Instant) {
    let wait = when.saturating_duration_since(Instant::now());
    if !wait.is_zero() {
        thread::sleep(wait);
    }
}

// ---------------------------------------------------------------------------
// The nfnetlink_queue protocol (linux/netfilter/nfnetlink_queue.h).

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQNL_MSG_VERDICT_BATCH: u16 = 3;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NF_ACCEPT: u32 = 1;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// A bound nfqueue socket.
struct NfQueue {
    fd: OwnedFd,
    queue: u16,
    seq: u32,
    buf: Vec<u8>,
}

impl NfQueue {
    /// Opens a `NETLINK_NETFILTER` socket (in the calling thread's network
    /// namespace) and binds queue `queue`: metadata only, long, fail-open.
    fn open(queue: u16) -> io::Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned at once.
        let raw =
            unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: bind with a properly sized sockaddr_nl.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // A big buffer (forced: we are root), and no ENOBUFS errors.
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF)?;
        }
        setsockopt(&fd, libc::SOL_NETLINK, libc::NETLINK_NO_ENOBUFS, 1)?;
        let mut q = NfQueue { fd, queue, seq: 0, buf: vec![0; 64 * 1024] };
        // struct nfqnl_msg_config_cmd { u8 command; u8 _pad; be16 pf; }
        q.config(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0])?;
        // struct nfqnl_msg_config_params { be32 copy_range; u8 copy_mode; } (packed)
        let mut params = 0u32.to_be_bytes().to_vec();
        params.push(NFQNL_COPY_META);
        q.config(NFQA_CFG_PARAMS, &params)?;
        q.config(NFQA_CFG_QUEUE_MAXLEN, &QUEUE_MAX_LEN.to_be_bytes())?;
        let mut flags = Message::new(NFQNL_MSG_CONFIG, queue, true, q.next_seq());
        flags.attr(NFQA_CFG_FLAGS, &NFQA_CFG_F_FAIL_OPEN.to_be_bytes());
        flags.attr(NFQA_CFG_MASK, &NFQA_CFG_F_FAIL_OPEN.to_be_bytes());
        q.send(&flags.finish())?;
        q.wait_ack()?;
        Ok(q)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends one config attribute and waits for the kernel's ack.
    fn config(&mut self, attr: u16, value: &[u8]) -> io::Result<()> {
        let mut m = Message::new(NFQNL_MSG_CONFIG, self.queue, true, self.next_seq());
        m.attr(attr, value);
        self.send(&m.finish())?;
        self.wait_ack()
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; zeroed (pid 0) is the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: sendto with a valid buffer and address of the given sizes.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (&raw const kernel).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Blocks until the ack of the last request (or its error).
    fn wait_ack(&mut self) -> io::Result<()> {
        loop {
            let n = self.recv(0)?;
            let mut acked = false;
            for_each_message(&self.buf[..n], |kind, body| {
                if kind == libc::NLMSG_ERROR as u16 {
                    acked = true;
                    return netlink_error(body);
                }
                Ok(())
            })?;
            if acked {
                return Ok(());
            }
        }
    }

    fn recv(&mut self, flags: libc::c_int) -> io::Result<usize> {
        loop {
            // SAFETY: recv into our buffer, at most its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), flags) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Waits up to `timeout` for the socket to become readable.
    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: ppoll on one valid pollfd with a valid timespec and no
        // signal mask (libc has no ppoll wrapper for Linux).
        let rc = unsafe {
            libc::syscall(libc::SYS_ppoll, &raw mut pfd, 1 as libc::nfds_t, &raw const ts, std::ptr::null::<u8>(), 0)
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
        }
        Ok(rc > 0 && pfd.revents & libc::POLLIN != 0)
    }

    /// Reads every pending notice without blocking; appends packet ids.
    fn receive(&mut self, ids: &mut Vec<u32>) -> io::Result<()> {
        loop {
            let n = match self.recv(libc::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            for_each_message(&self.buf[..n], |kind, body| {
                if kind == (NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET) {
                    if let Some(id) = packet_id(body) {
                        ids.push(id);
                    }
                } else if kind == libc::NLMSG_ERROR as u16 {
                    // A verdict the kernel refused: report it.
                    return netlink_error(body);
                }
                Ok(())
            })?;
        }
    }

    /// Accepts every queued packet with an id up to `id` (one message).
    fn accept_up_to(&mut self, id: u32) -> io::Result<()> {
        let mut m = Message::new(NFQNL_MSG_VERDICT_BATCH, self.queue, false, self.next_seq());
        // struct nfqnl_msg_verdict_hdr { be32 verdict; be32 id; }
        let mut hdr = NF_ACCEPT.to_be_bytes().to_vec();
        hdr.extend_from_slice(&id.to_be_bytes());
        m.attr(NFQA_VERDICT_HDR, &hdr);
        self.send(&m.finish())
    }
}

fn setsockopt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt with a c_int value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// An nfnetlink request being built: nlmsghdr, nfgenmsg, attributes.
struct Message(Vec<u8>);

impl Message {
    fn new(kind: u16, queue: u16, ack: bool, seq: u32) -> Self {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        b.extend_from_slice(&(NFNL_SUBSYS_QUEUE << 8 | kind).to_ne_bytes());
        let flags = libc::NLM_F_REQUEST as u16 | if ack { libc::NLM_F_ACK as u16 } else { 0 };
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel assigns
        // struct nfgenmsg { u8 family; u8 version; be16 res_id; }
        b.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
        b.extend_from_slice(&queue.to_be_bytes());
        Message(b)
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Calls `f(type, body after the nlmsghdr)` for each netlink message in a datagram.
fn for_each_message(mut data: &[u8], mut f: impl FnMut(u16, &[u8]) -> io::Result<()>) -> io::Result<()> {
    while data.len() >= NLMSG_HDRLEN {
        let (Some(len), Some(kind)) = (u32_at(data, 0), u16_at(data, 4)) else { break };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            break;
        }
        f(kind, &data[NLMSG_HDRLEN..len])?;
        data = data.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(())
}

/// The errno of an NLMSG_ERROR body (0: an ack).
fn netlink_error(body: &[u8]) -> io::Result<()> {
    match u32_at(body, 0).map(|e| e as i32) {
        Some(0) | None => Ok(()),
        Some(e) => Err(io::Error::from_raw_os_error(e.abs())),
    }
}

/// The packet id in an NFQNL_MSG_PACKET body (nfgenmsg, then attributes).
fn packet_id(body: &[u8]) -> Option<u32> {
    let mut attrs = body.get(NFGENMSG_LEN..)?;
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0)?);
        let kind = u16_at(attrs, 2)? & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == NFQA_PACKET_HDR {
            // struct nfqnl_msg_packet_hdr { be32 packet_id; be16 hw_protocol; u8 hook; }
            return Some(u32::from_be_bytes(attrs.get(4..8)?.try_into().ok()?));
        }
        attrs = attrs.get(len.next_multiple_of(4)..)?;
    }
    None
}

/// Gives the delayer thread real-time priority (SCHED_FIFO), so that a
/// scanner keeping both cores busy cannot starve it: on a real network the
/// wire does not slow down when the scanning host is busy, and without this
/// a busy async scanner saw its answers held far beyond the latency (30k of
/// 65k ports silent in the first round at 4,096 in flight). Best effort: a
/// refusal (not root, no RT budget) leaves normal priority.
fn emulate_a_separate_machine() {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: changes only the calling thread's scheduling policy.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc != 0 {
        eprintln!(
            "trident: the delayer runs at normal priority (SCHED_FIFO refused: {})",
            io::Error::from_raw_os_error(rc)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_is_a_twentieth_of_the_latency_within_bounds() {
        assert_eq!(tick_for(Duration::from_millis(20)), Duration::from_millis(1));
        assert_eq!(tick_for(Duration::from_millis(10)), Duration::from_micros(500));
        assert_eq!(tick_for(Duration::from_micros(200)), Duration::from_micros(50));
        assert_eq!(tick_for(MAX_LATENCY), Duration::from_millis(1));
    }

    #[test]
    fn request_layout() {
        let mut m = Message::new(NFQNL_MSG_VERDICT_BATCH, 7, false, 9);
        m.attr(NFQA_VERDICT_HDR, &[0, 0, 0, 1, 0, 0, 0, 42]);
        let b = m.finish();
        assert_eq!(b.len(), 16 + 4 + 4 + 8);
        assert_eq!(u32_at(&b, 0), Some(b.len() as u32));
        assert_eq!(u16_at(&b, 4), Some(3 << 8 | 3));
        assert_eq!(&b[18..20], &7u16.to_be_bytes());
        assert_eq!(u16_at(&b, 20), Some(12));
        assert_eq!(u16_at(&b, 22), Some(NFQA_VERDICT_HDR));
    }

    #[test]
    fn parses_packet_ids_and_errors() {
        // A packet notice: nlmsghdr + nfgenmsg + a MARK attr + PACKET_HDR.
        let mut m = Message::new(NFQNL_MSG_PACKET, 0, false, 0);
        m.attr(3, &[0, 0, 0, 5]);
        m.attr(NFQA_PACKET_HDR, &[0, 0, 1, 2, 8, 0, 3]);
        let notice = m.finish();
        let mut ids = Vec::new();
        for_each_message(&notice, |kind, body| {
            assert_eq!(kind, NFNL_SUBSYS_QUEUE << 8);
            ids.extend(packet_id(body));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ids, [0x0102]);
        assert!(netlink_error(&0i32.to_ne_bytes()).is_ok());
        assert_eq!(
            netlink_error(&(-libc::EPERM).to_ne_bytes()).err().and_then(|e| e.raw_os_error()),
            Some(libc::EPERM)
        );
    }
}
