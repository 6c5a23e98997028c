//! The TCP handshake of one probe, with as few system calls as the kernel
//! allows, blocking (threads, processes) or async (tokio).
//!
//! The socket is created non-blocking and `connect()` returns at once. On
//! loopback and for local refusals the answer is already there when it
//! returns, so `SO_ERROR` is read right away and most closed ports cost
//! three calls (socket, connect, getsockopt) plus close — no poll, no epoll
//! registration. Otherwise the blocking path waits in `ppoll` (microsecond
//! timeouts) and the async path registers with tokio and awaits
//! writability. `SO_LINGER {1,0}` is set only on connected sockets, the only
//! ones whose close would send a FIN and leave a TIME_WAIT: they are closed
//! with an RST instead. A socket closed while its SYN is unanswered sends
//! nothing.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
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

/// Creates the socket and sends the SYN.
pub(super) fn start(addr: &SocketAddr) -> Started {
    let socket =
        match Socket::new(Domain::for_address(*addr), Type::STREAM.nonblocking().cloexec(), Some(Protocol::TCP)) {
            Ok(s) => s,
            Err(e) => return Started::Failed(e),
        };
    match socket.connect(&(*addr).into()) {
        Ok(()) => Started::Connected(socket),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => match socket.take_error() {
            Ok(Some(e)) | Err(e) => Started::Failed(e),
            Ok(None) => Started::Pending(socket),
        },
        Err(e) => Started::Failed(e),
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
