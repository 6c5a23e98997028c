//! One probe: a TCP connect to (address, port), classified into nmap's
//! states and reasons.
//!
//! [`ProbeTask`] is the scan's [`Task`]: the blocking version (threads and
//! processes engines) waits for the handshake in `ppoll`, the async version
//! on the tokio reactor under a timeout. Both share
//! [`classify`] and the same attempt rules, so every engine reports the same
//! thing for the same packets. Retrying silent ports is the scan's job
//! (`timing.rs`), not the probe's; the handshake itself is in `connect.rs`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::connect::{self, Started};
use crate::engine::{Ctx, Task};
use crate::output::{Escapes, escaped};

/// nmap's port states, as far as a connect scan can tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    /// Something accepted the connection.
    Open,
    /// The host answered that nothing listens there.
    Closed,
    /// No answer, or an ICMP error: a firewall is in the way.
    Filtered,
    /// This machine could not send the probe (reported, never guessed).
    Error,
}

impl PortState {
    /// The lowercase name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::Error => "error",
        }
    }
}

/// Why a port got its state (nmap's `reason` vocabulary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The handshake completed.
    SynAck,
    /// ECONNREFUSED: a TCP reset, or an ICMP port unreachable.
    ConnRefused,
    /// The connection was reset during the handshake.
    Reset,
    /// Nothing came back within the timeout, after every retry.
    NoResponse,
    /// ICMP host unreachable or administratively prohibited (EHOSTUNREACH).
    HostUnreach,
    /// ICMP network unreachable, or no route (ENETUNREACH).
    NetUnreach,
    /// ICMP protocol unreachable (ENOPROTOOPT).
    ProtoUnreach,
    /// Refused by a firewall: a local one (EPERM), or ICMPv6
    /// administratively prohibited (EACCES).
    AdminProhibited,
    /// A local failure; see the result's `error`.
    LocalError,
}

impl Reason {
    /// The kebab-case name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SynAck => "syn-ack",
            Reason::ConnRefused => "conn-refused",
            Reason::Reset => "reset",
            Reason::NoResponse => "no-response",
            Reason::HostUnreach => "host-unreach",
            Reason::NetUnreach => "net-unreach",
            Reason::ProtoUnreach => "proto-unreach",
            Reason::AdminProhibited => "admin-prohibited",
            Reason::LocalError => "local-error",
        }
    }
}

/// What one connect attempt says.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The connection was accepted; with what the service said first, when
    /// banners were asked for and it said something.
    Open(Option<String>),
    /// A final answer other than open.
    Answer(PortState, Reason),
    /// Nothing within the timeout: worth a retry.
    Silence,
    /// The kernel connected the socket to itself (loopback, ephemeral
    /// port); says nothing about the target, so it is probed again.
    SelfConnect,
    /// Out of sockets, ports or buffers here: back off and try again.
    Exhausted(String),
    /// A local error that retrying will not fix.
    Failed(String),
}

/// Maps a connect error to what it means for the port.
pub fn classify(err: &io::Error) -> Attempt {
    if err.kind() == io::ErrorKind::TimedOut {
        return Attempt::Silence;
    }
    let Some(code) = err.raw_os_error() else {
        return Attempt::Failed(err.to_string());
    };
    match code {
        libc::ECONNREFUSED => Attempt::Answer(PortState::Closed, Reason::ConnRefused),
        libc::ECONNRESET => Attempt::Answer(PortState::Closed, Reason::Reset),
        libc::ETIMEDOUT => Attempt::Silence,
        libc::EHOSTUNREACH => Attempt::Answer(PortState::Filtered, Reason::HostUnreach),
        // ICMP host unknown / isolated arrive as EHOSTDOWN / ENONET.
        libc::EHOSTDOWN | libc::ENONET => Attempt::Answer(PortState::Filtered, Reason::HostUnreach),
        libc::ENETUNREACH => Attempt::Answer(PortState::Filtered, Reason::NetUnreach),
        libc::ENOPROTOOPT => Attempt::Answer(PortState::Filtered, Reason::ProtoUnreach),
        libc::EACCES | libc::EPERM => Attempt::Answer(PortState::Filtered, Reason::AdminProhibited),
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL | libc::EAGAIN => {
            Attempt::Exhausted(err.to_string())
        }
        _ => Attempt::Failed(err.to_string()),
    }
}

/// How long to wait before the next try after running out of sockets,
/// and how long in total before giving up on the port.
const EXHAUSTED_BACKOFF: Duration = Duration::from_millis(20);
const EXHAUSTED_LIMIT: Duration = Duration::from_secs(30);
/// Self-connects are rare; more than this many in a row is a bug.
const MAX_SELF_CONNECTS: u32 = 8;

/// Reading what a service says first (`--banners`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BannerGrab {
    /// Read at most this many bytes.
    pub max_bytes: u32,
    /// Wait at most this long after the connection is accepted.
    pub wait: Duration,
}

/// Probe one TCP port once. Silence is not retried here: the scan decides
/// which silent ports get another round, with what it has learnt since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTask {
    /// Index of the target block this address came from (for host names).
    pub block: u32,
    /// Address to connect to.
    pub ip: IpAddr,
    /// Port to connect to.
    pub port: u16,
    /// How long the connect attempt may take.
    pub timeout: Duration,
    /// 0 for the first probe of this port, n for its n-th retry.
    pub retry: u8,
    /// Read the service's banner when the port is open.
    pub banner: Option<BannerGrab>,
    /// Send only through the network interface of this index (`--lab`).
    pub device: Option<u32>,
}

/// What a probe found out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Index of the target block (see [`ProbeTask::block`]).
    pub block: u32,
    /// The address probed.
    pub ip: IpAddr,
    /// The port probed.
    pub port: u16,
    /// The port's state.
    pub state: PortState,
    /// Why it has that state.
    pub reason: Reason,
    /// Time from connect() to the answer, for answered probes.
    pub rtt_us: Option<u64>,
    /// Probes sent to this port (retries included).
    pub tries: u32,
    /// The local error, for [`PortState::Error`].
    pub error: Option<String>,
    /// What the service sent first (`--banners`), control bytes escaped.
    pub banner: Option<String>,
}

impl ProbeResult {
    /// Whether nothing answered (a candidate for another round).
    pub fn is_silent(&self) -> bool {
        self.reason == Reason::NoResponse
    }
}

/// The rules around one probe, shared by the blocking and async versions
/// (which differ only in how they make an attempt and how they sleep):
/// self-connects and exhausted descriptors are tried again on the spot,
/// everything else ends the probe.
struct Attempts {
    task: ProbeTask,
    self_connects: u32,
    exhausted_since: Option<Instant>,
}

enum Next {
    Again(Duration),
    Done(ProbeResult),
}

impl Attempts {
    fn new(task: ProbeTask) -> Self {
        Attempts { task, self_connects: 0, exhausted_since: None }
    }

    fn result(&self, state: PortState, reason: Reason, rtt: Option<Duration>, error: Option<String>) -> ProbeResult {
        ProbeResult {
            block: self.task.block,
            ip: self.task.ip,
            port: self.task.port,
            state,
            reason,
            rtt_us: rtt.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            tries: u32::from(self.task.retry) + 1,
            error,
            banner: None,
        }
    }

    fn after(&mut self, attempt: Attempt, rtt: Duration) -> Next {
        match attempt {
            Attempt::Open(banner) => {
                Next::Done(ProbeResult { banner, ..self.result(PortState::Open, Reason::SynAck, Some(rtt), None) })
            }
            Attempt::Answer(state, reason) => Next::Done(self.result(state, reason, Some(rtt), None)),
            Attempt::Silence => Next::Done(self.result(PortState::Filtered, Reason::NoResponse, None, None)),
            Attempt::SelfConnect if self.self_connects < MAX_SELF_CONNECTS => {
                self.self_connects += 1;
                Next::Again(Duration::ZERO)
            }
            Attempt::SelfConnect => Next::Done(self.result(
                PortState::Error,
                Reason::LocalError,
                None,
                Some("the kernel kept connecting the probe to itself".into()),
            )),
            Attempt::Exhausted(why) => {
                let since = *self.exhausted_since.get_or_insert_with(Instant::now);
                if since.elapsed() < EXHAUSTED_LIMIT {
                    Next::Again(EXHAUSTED_BACKOFF)
                } else {
                    Next::Done(self.result(PortState::Error, Reason::LocalError, None, Some(why)))
                }
            }
            Attempt::Failed(why) => Next::Done(self.result(PortState::Error, Reason::LocalError, None, Some(why))),
        }
    }
}

fn is_self_connect(local: io::Result<SocketAddr>, peer: &SocketAddr) -> bool {
    local.is_ok_and(|l| l == *peer)
}

/// Bytes as text a terminal and a JSON reader can take: lossy UTF-8 with
/// what a terminal would act on escaped, trailing line ends dropped.
pub fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    escaped(text.trim_end_matches(['\r', '\n']), Escapes::Backslash).into_owned()
}

fn read_banner_blocking(stream: &mut std::net::TcpStream, grab: BannerGrab) -> Option<String> {
    use std::io::Read;
    let deadline = Instant::now() + grab.wait;
    let mut buf = vec![0u8; grab.max_bytes as usize];
    let mut len = 0;
    while len < buf.len() {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        if stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    (len > 0).then(|| printable(&buf[..len]))
}

async fn read_banner_async(stream: &mut tokio::net::TcpStream, grab: BannerGrab) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + grab.wait;
    let mut buf = vec![0u8; grab.max_bytes as usize];
    let mut len = 0;
    while len < buf.len() {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf[len..])).await {
            Ok(Ok(n)) if n > 0 => len += n,
            _ => break,
        }
    }
    (len > 0).then(|| printable(&buf[..len]))
}

/// One attempt and the time the handshake took (banner reading excluded).
fn attempt_blocking(
    addr: &SocketAddr,
    timeout: Duration,
    banner: Option<BannerGrab>,
    device: Option<u32>,
) -> (Attempt, Duration) {
    let start = Instant::now();
    let connected = match connect::start(addr, device) {
        Started::Connected(socket) => Ok(socket),
        Started::Pending(socket) => connect::finish_blocking(socket, timeout),
        Started::Failed(e) => Err(e),
    };
    let rtt = start.elapsed();
    let attempt = match connected {
        Err(e) => classify(&e),
        Ok(socket) => {
            connect::reset_on_close(&socket2::SockRef::from(&socket));
            let local =
                socket.local_addr().and_then(|a| a.as_socket().ok_or_else(|| io::Error::other("not an inet socket")));
            if is_self_connect(local, addr) {
                Attempt::SelfConnect
            } else {
                let mut stream = std::net::TcpStream::from(socket);
                // Banners are read with blocking reads under a read timeout.
                let banner = banner.filter(|_| stream.set_nonblocking(false).is_ok());
                Attempt::Open(banner.and_then(|grab| read_banner_blocking(&mut stream, grab)))
            }
        }
    };
    (attempt, rtt)
}

async fn attempt_async(
    addr: SocketAddr,
    timeout: Duration,
    banner: Option<BannerGrab>,
    device: Option<u32>,
) -> (Attempt, Duration) {
    let start = Instant::now();
    let connected = match connect::start(&addr, device) {
        Started::Connected(socket) => tokio::net::TcpStream::from_std(std::net::TcpStream::from(socket)),
        Started::Pending(socket) => connect::finish_async(socket, timeout).await,
        Started::Failed(e) => Err(e),
    };
    let rtt = start.elapsed();
    let attempt = match connected {
        Err(e) => classify(&e),
        Ok(mut stream) => {
            connect::reset_on_close(&socket2::SockRef::from(&stream));
            if is_self_connect(stream.local_addr(), &addr) {
                Attempt::SelfConnect
            } else {
                match banner {
                    Some(grab) => Attempt::Open(read_banner_async(&mut stream, grab).await),
                    None => Attempt::Open(None),
                }
            }
        }
    };
    (attempt, rtt)
}

impl Task for ProbeTask {
    type Output = ProbeResult;
    const NAME: &'static str = "scan-probe";

    fn run_blocking(self, _: &Ctx) -> ProbeResult {
        let addr = SocketAddr::new(self.ip, self.port);
        let (timeout, banner, device) = (self.timeout, self.banner, self.device);
        let mut attempts = Attempts::new(self);
        loop {
            let (attempt, rtt) = attempt_blocking(&addr, timeout, banner, device);
            match attempts.after(attempt, rtt) {
                Next::Done(result) => return result,
                Next::Again(pause) if !pause.is_zero() => std::thread::sleep(pause),
                Next::Again(_) => {}
            }
        }
    }

    async fn run_async(self, _: Ctx) -> ProbeResult {
        let addr = SocketAddr::new(self.ip, self.port);
        let (timeout, banner, device) = (self.timeout, self.banner, self.device);
        let mut attempts = Attempts::new(self);
        loop {
            let (attempt, rtt) = attempt_async(addr, timeout, banner, device).await;
            match attempts.after(attempt, rtt) {
                Next::Done(result) => return result,
                Next::Again(pause) if !pause.is_zero() => tokio::time::sleep(pause).await,
                Next::Again(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn errno_to_state_and_reason() {
        let table = [
            (libc::ECONNREFUSED, Attempt::Answer(PortState::Closed, Reason::ConnRefused)),
            (libc::ECONNRESET, Attempt::Answer(PortState::Closed, Reason::Reset)),
            (libc::EHOSTUNREACH, Attempt::Answer(PortState::Filtered, Reason::HostUnreach)),
            (libc::ENETUNREACH, Attempt::Answer(PortState::Filtered, Reason::NetUnreach)),
            (libc::ENOPROTOOPT, Attempt::Answer(PortState::Filtered, Reason::ProtoUnreach)),
            (libc::EHOSTDOWN, Attempt::Answer(PortState::Filtered, Reason::HostUnreach)),
            (libc::EACCES, Attempt::Answer(PortState::Filtered, Reason::AdminProhibited)),
            (libc::EPERM, Attempt::Answer(PortState::Filtered, Reason::AdminProhibited)),
            (libc::ETIMEDOUT, Attempt::Silence),
        ];
        for (code, want) in table {
            assert_eq!(classify(&err(code)), want, "errno {code}");
        }
        assert_eq!(classify(&io::Error::from(io::ErrorKind::TimedOut)), Attempt::Silence);
        for code in [libc::EMFILE, libc::ENFILE, libc::EADDRNOTAVAIL, libc::ENOBUFS] {
            assert!(matches!(classify(&err(code)), Attempt::Exhausted(_)), "errno {code}");
        }
        assert!(matches!(classify(&err(libc::EINVAL)), Attempt::Failed(_)));
    }

    fn task(retry: u8) -> ProbeTask {
        ProbeTask {
            block: 0,
            ip: "127.0.0.1".parse().unwrap(),
            port: 9,
            timeout: Duration::from_millis(10),
            retry,
            banner: None,
            device: None,
        }
    }

    #[test]
    fn silence_is_filtered_never_closed() {
        let Next::Done(res) = Attempts::new(task(2)).after(Attempt::Silence, Duration::ZERO) else { panic!() };
        assert_eq!((res.state, res.reason, res.tries, res.rtt_us), (PortState::Filtered, Reason::NoResponse, 3, None));
        assert!(res.is_silent());
    }

    #[test]
    fn answers_carry_their_rtt() {
        let Next::Done(res) =
            Attempts::new(task(0)).after(Attempt::Open(Some("SSH-2.0-x".into())), Duration::from_micros(42))
        else {
            panic!()
        };
        assert_eq!((res.state, res.reason, res.tries, res.rtt_us), (PortState::Open, Reason::SynAck, 1, Some(42)));
        assert_eq!(res.banner.as_deref(), Some("SSH-2.0-x"));
        assert!(!res.is_silent());
    }

    #[test]
    fn self_connects_are_probed_again() {
        let mut a = Attempts::new(task(0));
        assert!(matches!(a.after(Attempt::SelfConnect, Duration::ZERO), Next::Again(_)));
        let Next::Done(res) = a.after(Attempt::Answer(PortState::Closed, Reason::ConnRefused), Duration::ZERO) else {
            panic!()
        };
        assert_eq!(res.state, PortState::Closed);
    }

    #[test]
    fn banners_are_printable() {
        assert_eq!(printable(b"SSH-2.0-OpenSSH_9.2\r\n"), "SSH-2.0-OpenSSH_9.2");
        assert_eq!(printable(b"220 hi\r\n220 more\x00\x1b[31m"), "220 hi\\r\\n220 more\\x00\\x1b[31m");
        assert_eq!(printable(&[0xff, b'a']), "\u{fffd}a");
        assert_eq!(printable("a\u{202e}b\u{9b}".as_bytes()), "a\\u{202e}b\\x9b", "a right-to-left override");
    }

    #[test]
    fn exhaustion_backs_off() {
        let mut a = Attempts::new(task(0));
        assert!(
            matches!(a.after(Attempt::Exhausted("EMFILE".into()), Duration::ZERO), Next::Again(d) if d > Duration::ZERO)
        );
    }
}
