//! The TCP handshake of one probe, with as few system calls as the kernel
//! allows, blocking (threads, processes) or async (tokio).
//!
//! The socket is non-blocking and `connect()` returns at once. On loopback
//! and for local refusals the answer is already there when it returns, so
//! the socket is asked again at once — with a second `connect()`, which
//! returns the pending error (`ECONNREFUSED`), 0 when connected, or
//! `EALREADY` while the handshake is still under way. A refused socket is
//! left unconnected by that second call (Linux resets a TCP socket whose
//! connect failed), so it is kept and reused for the next probe on this
//! thread: a closed port costs two system calls (connect, connect) instead
//! of four (socket, connect, getsockopt, close), and creating and closing a
//! socket was a third of the CPU time of a loopback scan. Kept sockets
//! share one local port per process (see [`share_source_port`]). A reused
//! socket that does not behave is closed and the probe starts again on a
//! fresh one.
//!
//! Otherwise the blocking path waits in `ppoll` (microsecond timeouts) and
//! the async path registers with tokio and awaits writability; such
//! sockets are closed, not reused. `SO_LINGER {1,0}` is set only on
//! connected sockets, the only ones whose close would send a FIN and leave
//! a TIME_WAIT: they are closed with an RST instead. A socket closed while
//! its SYN is unanswered sends nothing.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// How a handshake started.
pub(super) enum Started {
    /// Connected already (loopback, fast paths).
    Connected(Socket),
    /// The answer is not in yet.
    Pending(Socket),
    /// Refused, unreachable, or a local failure: `classify` says which.
    Failed(io::Error),
}

/// Refused sockets kept for reuse, per thread and address family. A probe
/// takes one and gives it back within the same poll (loopback) or call
/// (blocking engines), so a few are enough; the cap bounds the descriptors
/// held beyond the engine's concurrency.
const SPARES_PER_FAMILY: usize = 4;

thread_local! {
    static SPARES: RefCell<[Vec<Socket>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

fn family(addr: &SocketAddr) -> usize {
    usize::from(addr.is_ipv6())
}

fn take_spare(addr: &SocketAddr) -> Option<Socket> {
    SPARES.try_with(|s| s.borrow_mut()[family(addr)].pop()).ok().flatten()
}

/// Keeps a refused socket for the next probe; a `fresh` one (not a spare
/// already) is first bound to the shared source port, if there is one.
fn give_back(addr: &SocketAddr, socket: Socket, fresh: bool) {
    if fresh {
        bind_own_port(addr, &socket);
    }
    // During thread teardown the socket is simply closed.
    let _ = SPARES.try_with(|s| {
        let mut spares = s.borrow_mut();
        let spares = &mut spares[family(addr)];
        if spares.len() < SPARES_PER_FAMILY {
            spares.push(socket);
        }
    });
}

/// Whether spares bind to this process's shared source port.
static SHARE_PORT: AtomicBool = AtomicBool::new(false);
/// That port, per address family, picked on first use (`None`: none free).
static OWN_PORT: [OnceLock<Option<u16>>; 2] = [OnceLock::new(), OnceLock::new()];

/// Lets the spare sockets of this process share one local port
/// (`SO_REUSEPORT`), so that their connects skip the kernel's search for a
/// free ephemeral port (a tenth of a loopback scan's CPU time) and their
/// refusals keep the port. The kernel picks it once per family (bind to
/// port 0 on a throw-away socket: within `ip_local_port_range`, never a
/// reserved port).
///
/// One port for the whole process, not one per thread: two of our sockets
/// on two ports A and B, probing B and A at the same instant, would meet
/// in a TCP simultaneous open and both report a false "open". Sockets that
/// share their port cannot: the only crossed SYN possible is a socket's
/// own, a self-connect, which is detected. For the same reason the scan
/// turns this on only when the probes run in its own process (threads,
/// async), not in worker processes, which would each pick a port.
pub(crate) fn share_source_port(on: bool) {
    SHARE_PORT.store(on, Ordering::Relaxed);
}

fn own_port(addr: &SocketAddr) -> Option<u16> {
    if !SHARE_PORT.load(Ordering::Relaxed) {
        return None;
    }
    *OWN_PORT[family(addr)].get_or_init(|| {
        let picker = Socket::new(Domain::for_address(*addr), Type::STREAM.cloexec(), Some(Protocol::TCP)).ok()?;
        picker.bind(&SocketAddr::new(unspecified(addr), 0).into()).ok()?;
        picker.local_addr().ok()?.as_socket().map(|a| a.port())
    })
}

fn unspecified(addr: &SocketAddr) -> IpAddr {
    if addr.is_ipv6() { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() }
}

/// Binds a new spare to the shared port; if that fails (another program
/// took the port), the spare stays unbound and connects from ephemeral
/// ports.
fn bind_own_port(addr: &SocketAddr, socket: &Socket) {
    if let Some(port) = own_port(addr)
        && socket.set_reuse_port(true).is_ok()
    {
        let _ = socket.bind(&SocketAddr::new(unspecified(addr), port).into());
    }
}

/// Creates (or reuses) a socket and sends the SYN.
pub(super) fn start(addr: &SocketAddr, device: Option<u32>) -> Started {
    // A spare probing its own port would only connect to itself: that port
    // is probed from an ephemeral one.
    let spare = if own_port(addr) == Some(addr.port()) { None } else { take_spare(addr) };
    if let Some(socket) = spare {
        match handshake(socket, addr, false) {
            // A reused socket the kernel does not take back as unconnected
            // says nothing about the port: start again on a fresh one.
            Err(e) if reuse_refused(&e) => {}
            started => return started.unwrap_or_else(Started::Failed),
        }
    }
    let socket =
        match Socket::new(Domain::for_address(*addr), Type::STREAM.nonblocking().cloexec(), Some(Protocol::TCP)) {
            Ok(s) => s,
            Err(e) => return Started::Failed(e),
        };
    if let Some(index) = device {
        if let Err(e) = bind_to_interface(&socket, index) {
            return Started::Failed(e);
        }
    }
    handshake(socket, addr, true).unwrap_or_else(Started::Failed)
}

/// `SO_BINDTOIFINDEX` (Linux 5.7; not exported by every libc version).
const SO_BINDTOIFINDEX: libc::c_int = 62;

/// Lets `socket` send only through interface `index` (`--lab`): if that
/// interface is gone, the probe fails here instead of taking the default
/// route out of the machine. Spares keep the binding (one device per scan).
fn bind_to_interface(socket: &Socket, index: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(index).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    // SAFETY: setsockopt on a socket we own, with a c_int option value.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_BINDTOIFINDEX,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Errors after which a spare is replaced by a fresh socket rather than
/// reported: those a clean unconnected socket never returns from
/// `connect()`, and EADDRNOTAVAIL (its own port already has a connection
/// to that address and port; a fresh socket gets another port).
fn reuse_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EISCONN | libc::EALREADY | libc::EINVAL | libc::EBADF | libc::ECONNABORTED | libc::EADDRNOTAVAIL)
    )
}

/// connect(), then, if the answer may already be in, connect() again to
/// read it. A refused socket goes back to the spares.
fn handshake(socket: Socket, addr: &SocketAddr, fresh: bool) -> io::Result<Started> {
    let target = socket2::SockAddr::from(*addr);
    match socket.connect(&target) {
        Ok(()) => return Ok(Started::Connected(socket)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    match socket.connect(&target) {
        Ok(()) => Ok(Started::Connected(socket)),
        Err(e) if e.raw_os_error() == Some(libc::EALREADY) => Ok(Started::Pending(socket)),
        // EISCONN: connected between the two calls.
        Err(e) if e.raw_os_error() == Some(libc::EISCONN) => Ok(Started::Connected(socket)),
        Err(e) => {
            if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                give_back(addr, socket, fresh);
            }
            Ok(Started::Failed(e))
        }
    }
}

/// Waits for a pending handshake; `TimedOut` when nothing came back.
pub(super) fn finish_blocking(socket: Socket, timeout: Duration) -> io::Result<Socket> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let mut pfd = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
        let ts = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
        };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask.
        let ready = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if ready == 0 {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match verdict(&socket) {
            Verdict::Connected => return Ok(socket),
            Verdict::Failed(e) => return Err(e),
            // Woken before the error was readable: look again.
            Verdict::Undecided => std::thread::yield_now(),
        }
    }
}

/// What a socket that was reported ready says about its handshake.
enum Verdict {
    Connected,
    Failed(io::Error),
    Undecided,
}

/// Open only with proof: a peer address. Readiness alone is not enough:
/// under load the kernel can wake a poller with POLLERR while `SO_ERROR`
/// still reads 0 for a moment (an ICMP port unreachable being handled), and
/// reading that as "connected" would report a rejected port as open.
fn verdict(socket: &impl HandshakeState) -> Verdict {
    match socket.error() {
        Ok(Some(e)) | Err(e) => return Verdict::Failed(e),
        Ok(None) => {}
    }
    match socket.peer() {
        Ok(()) => Verdict::Connected,
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Verdict::Undecided,
        Err(e) => Verdict::Failed(e),
    }
}

/// The two questions [`verdict`] asks, for socket2 and tokio sockets.
trait HandshakeState {
    fn error(&self) -> io::Result<Option<io::Error>>;
    fn peer(&self) -> io::Result<()>;
}

impl HandshakeState for Socket {
    fn error(&self) -> io::Result<Option<io::Error>> {
        self.take_error()
    }
    fn peer(&self) -> io::Result<()> {
        self.peer_addr().map(drop)
    }
}

impl HandshakeState for tokio::net::TcpStream {
    fn error(&self) -> io::Result<Option<io::Error>> {
        self.take_error()
    }
    fn peer(&self) -> io::Result<()> {
        self.peer_addr().map(drop)
    }
}

/// Waits for a pending handshake on the tokio reactor; `TimedOut` when
/// nothing came back.
pub(super) async fn finish_async(socket: Socket, timeout: Duration) -> io::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::from_std(std::net::TcpStream::from(socket))?;
    let decided = async {
        stream.writable().await?;
        loop {
            match verdict(&stream) {
                Verdict::Connected => return Ok(()),
                Verdict::Failed(e) => return Err(e),
                // Readiness stays set; give the kernel a moment to post the error.
                Verdict::Undecided => tokio::task::yield_now().await,
            }
        }
    };
    match tokio::time::timeout(timeout, decided).await {
        // The timer can fire before the reactor has delivered a readiness
        // that is already there (a busy runtime processes timers first):
        // ask the socket itself once before calling the port silent.
        Err(_elapsed) => match verdict(&stream) {
            Verdict::Connected => Ok(stream),
            Verdict::Failed(e) => Err(e),
            Verdict::Undecided => Err(io::ErrorKind::TimedOut.into()),
        },
        Ok(result) => result.map(|()| stream),
    }
}

/// Makes the eventual close of a connected socket an RST (no TIME_WAIT).
pub(super) fn reset_on_close(socket: &socket2::SockRef<'_>) {
    let _ = socket.set_linger(Some(Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn spares(addr: &SocketAddr) -> usize {
        SPARES.with(|s| s.borrow()[family(addr)].len())
    }

    fn spare_port(addr: &SocketAddr) -> u16 {
        SPARES.with(|s| s.borrow()[family(addr)][0].local_addr().unwrap().as_socket().unwrap().port())
    }

    /// A port nothing listens on (bound then released).
    fn closed_port() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    #[test]
    fn refused_sockets_are_reused_and_still_tell_open_from_closed() {
        share_source_port(true);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let closed = closed_port();
        let mut ports = Vec::new();
        for _ in 0..3 {
            for _ in 0..2 {
                match start(&closed, None) {
                    Started::Failed(e) => assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED)),
                    _ => panic!("{closed} should be refused"),
                }
                assert_eq!(spares(&closed), 1, "a refused socket is kept");
                ports.push(spare_port(&closed));
            }
            assert_ne!(ports[ports.len() - 1], 0, "a spare gets a port of its own");
            assert_eq!(ports[ports.len() - 1], ports[ports.len() - 2], "and keeps it");
            let socket = match start(&open, None) {
                Started::Connected(s) => s,
                Started::Pending(s) => finish_blocking(s, Duration::from_secs(5)).unwrap(),
                Started::Failed(e) => panic!("{open}: {e}"),
            };
            assert_eq!(spares(&open), 0, "the open probe took the spare");
            assert_eq!(socket.peer_addr().unwrap().as_socket(), Some(open));
            let (accepted, _) = listener.accept().unwrap();
            assert_eq!(accepted.peer_addr().unwrap(), socket.local_addr().unwrap().as_socket().unwrap());
        }
    }

    #[test]
    fn threads_share_the_source_port_and_it_is_probed_truthfully() {
        share_source_port(true);
        let closed = closed_port();
        let refuse = move || {
            match start(&closed, None) {
                Started::Failed(e) => assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED)),
                _ => panic!("{closed} should be refused"),
            }
            spare_port(&closed)
        };
        let here = refuse();
        let there = std::thread::spawn(refuse).join().unwrap();
        assert_eq!(here, there, "one source port per process");
        // Nothing listens on the shared port: it is closed, not a self-connect.
        let own = SocketAddr::new(closed.ip(), here);
        for _ in 0..2 {
            match start(&own, None) {
                Started::Failed(e) => assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED)),
                _ => panic!("{own} should be refused"),
            }
        }
    }

    #[test]
    fn a_spare_that_is_not_unconnected_is_replaced() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        // A connected socket slipped into the spares must not answer for a port.
        let connected = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        connected.connect(&open.into()).unwrap();
        give_back(&open, connected, false);
        let closed = closed_port();
        match start(&closed, None) {
            Started::Failed(e) => assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED)),
            _ => panic!("{closed} should be refused"),
        }
    }

    #[test]
    fn a_socket_bound_to_a_missing_interface_sends_nothing() {
        // `--lab` binds probes to the lab's interface: once it is gone, the
        // probe fails here instead of leaving by another route.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        match start(&open, Some(999_999)) {
            Started::Failed(e) => assert_eq!(e.raw_os_error(), Some(libc::ENODEV)),
            _ => panic!("a probe bound to no interface must fail"),
        }
        // Bound to loopback (index 1), loopback is still reachable.
        assert!(!matches!(start(&open, Some(1)), Started::Failed(_)));
    }
}
