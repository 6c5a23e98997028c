//! The HTTP/1.1 client of every engine: hyper's connection API
//! (`hyper::client::conn::http1`) on tokio, a keep-alive pool per thread,
//! rustls for https.
//!
//! Why not reqwest (which is hyper underneath): for a downloader the
//! client is mostly a pipe from a socket to a file, and reqwest hides the
//! two settings that matter here —
//!
//! - **memory per connection**: hyper's read buffer grows (doubling while
//!   reads fill it) up to ~400 KiB per connection, so a fast download
//!   holds 400 KiB whatever the file size; reqwest cannot cap it.
//!   [`READ_BUFFER_MAX`] (68 KiB) bounds it here.
//! - **work per request**: reqwest adds a redirect policy, proxy lookup,
//!   decompression layers, a header map per client, timeouts as extra
//!   futures, and loads the system's root certificates when a client is
//!   built (once per lane), plain HTTP or not. Here redirects, retries and
//!   timeouts are the task's (as on the blocking side), and the roots are
//!   loaded on the first https connection only.
//!
//! A pool belongs to the thread that made its connections: each
//! connection's I/O is a task on that thread's runtime (the async engine
//! runs one current-thread runtime per core, its *lanes*), and a new run
//! (a new runtime) starts with an empty pool (see `Pool`). A connection
//! goes back to the pool when a response body was read to its end; one
//! dropped earlier is closed by hyper. A request on a reused connection
//! that fails before any response (the server closed it meanwhile) is sent
//! once more on a new connection.
//!
//! The blocking engines use the same client through [`block_on`]: a
//! current-thread runtime per thread that downloads (a pool thread, a
//! worker process, a part's thread), each with its own pool.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use url::{Host, Position, Url};

use crate::engine::Ctx;

/// Response header fields accepted at most (hyper stops at 100 too).
pub const MAX_HEADER_FIELDS: usize = 100;
/// Response header bytes accepted at most: names, values, and 4 bytes of
/// `": "` and CRLF per field. hyper alone would take a head as large as its
/// read buffer, which holds this much and no more.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest read buffer of a connection: hyper starts at 8 KiB and doubles
/// it only while reads fill it. It must hold the largest response head
/// trident accepts on every engine ([`MAX_HEADER_BYTES`], 64 KiB of
/// fields, plus the status line): hyper fails a head that does not fit.
/// A connection holds up to about three such buffers (the one being
/// filled, a chunk in hyper's body channel, the chunk being written).
/// Measured (`trident bench fetch`, async, loaded 2 cores):
///
/// | read buffer | per active download, 1 / 8 MiB | CPU for 4 × 256 MiB |
/// |---|---|---|
/// | exact 16 KiB | 55 / 68 KiB | 2.5 s |
/// | max 32 KiB | 78 / 109 KiB | 2.0 s |
/// | max 64 KiB | 144 / 179 KiB | 2.0 s |
/// | reqwest before (hyper's default, ~400 KiB) | 259 / 569 KiB | 1.9 s |
pub const READ_BUFFER_MAX: usize = MAX_HEADER_BYTES + 4 * 1024;
/// Idle connections kept per host and thread.
const IDLE_PER_HOST: usize = 256;

/// Where a connection goes: scheme (https?), host, port.
type Key = (bool, String, u16);
/// A connection: where requests are sent, and how long it waited for data.
#[derive(Debug)]
struct Conn {
    send: SendRequest<Empty<Bytes>>,
    meter: Arc<Meter>,
    driver: Driver,
}

/// The future that does a connection's I/O. On the async engine it is a
/// task of the runtime (`None` here); on the blocking engines it is kept
/// with the connection and polled by whoever waits on it ([`driven`]), so
/// a body's next piece is read by one blocking `recv` in the waiting
/// future itself (see [`Stepped`]) rather than by another task waking it.
struct Driver(Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>);

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Driver(kept)" } else { "Driver(spawned or ended)" })
    }
}

/// `f`, with the connection's I/O driven meanwhile when `driver` is kept
/// (blocking engines); `body_read` lets the driver's next read block in
/// `recv` (the caller waits for body data, nothing else: see [`Stepped`]).
async fn driven<T>(driver: &mut Driver, meter: &Meter, body_read: bool, f: impl std::future::Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(cx) {
            return std::task::Poll::Ready(out);
        }
        let Some(d) = driver.0.as_mut() else { return std::task::Poll::Pending };
        if body_read {
            meter.may_block.store(true, Ordering::Relaxed);
        }
        if d.as_mut().poll(cx).is_ready() {
            driver.0 = None;
        }
        meter.may_block.store(false, Ordering::Relaxed);
        // What the driver read may have made `f` ready.
        f.as_mut().poll(cx)
    })
    .await
}

/// A thread's idle connections, of one run: pooled connections belong to
/// the runtime they were made on, and the async engine builds new ones per
/// run (a pool of an earlier run on this thread is dropped).
#[derive(Default)]
struct Pool {
    run: Option<Ctx>,
    idle: HashMap<Key, Vec<Conn>>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

fn take_idle(key: &Key, run: &Ctx) -> Option<Conn> {
    POOL.with_borrow_mut(|pool| {
        if !pool.run.as_ref().is_some_and(|r| r.same_run(run)) {
            *pool = Pool { run: Some(run.clone()), idle: HashMap::new() };
        }
        let list = pool.idle.get_mut(key)?;
        while let Some(conn) = list.pop() {
            if !conn.send.is_closed() {
                return Some(conn);
            }
        }
        None
    })
}

fn put_idle(key: Key, conn: Conn, run: &Ctx) {
    POOL.with_borrow_mut(|pool| {
        if !pool.run.as_ref().is_some_and(|r| r.same_run(run)) || conn.send.is_closed() {
            return;
        }
        let list = pool.idle.entry(key).or_default();
        if list.len() < IDLE_PER_HOST {
            list.push(conn);
        }
    });
}

thread_local! {
    /// The blocking engines' runtime on this thread (see [`block_on`]).
    static RUNTIME: std::cell::OnceCell<tokio::runtime::Runtime> = const { std::cell::OnceCell::new() };
}

/// Whether this thread is a blocking engine's (it made a runtime in
/// [`block_on`]): its connections keep their drivers and read a body with
/// blocking `recv`s.
fn stepped() -> bool {
    RUNTIME.with(|cell| cell.get().is_some())
}

/// Runs `f` to its end on this thread's current-thread runtime, made on
/// first use: how the threads and processes engines use this client, so
/// that every engine has one HTTP/1.1 core with the same limits (the head
/// and a chunk-size line bounded before they are buffered, a body cut
/// short an error). The connections made here, their pool and their I/O
/// tasks belong to this thread: a response is read on the thread that
/// asked for it. Never called on a runtime thread (tokio forbids nesting).
pub fn block_on<F: std::future::Future>(f: F) -> io::Result<F::Output> {
    RUNTIME.with(|cell| {
        let runtime = match cell.get() {
            Some(rt) => rt,
            None => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    // A downloading thread watches a few sockets, not
                    // 1,024 (the default: 12 KiB of events per thread).
                    .max_io_events_per_tick(64)
                    .build()?;
                cell.get_or_init(|| rt)
            }
        };
        // On the heap: hyper's futures are large, and a pool thread's
        // stack small (256 KiB; a debug build overflowed it).
        Ok(runtime.block_on(Box::pin(f)))
    })
}

/// Why a request got no response.
#[derive(Debug)]
pub enum Error {
    /// The URL has no host, or a port.
    Url(String),
    /// Resolving, connecting, the TLS handshake.
    Connect(io::Error),
    /// HTTP on an established connection.
    Http(hyper::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Url(why) => write!(f, "{why}"),
            Error::Connect(_) => write!(f, "cannot connect"),
            Error::Http(_) => write!(f, "HTTP error"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Url(_) => None,
            Error::Connect(e) => Some(e),
            Error::Http(e) => Some(e),
        }
    }
}

/// The client settings of a run (the pools are per thread).
#[derive(Debug, Clone)]
pub struct Client {
    /// Connect timeout (and the TLS handshake's).
    pub timeout: Duration,
    /// Accept any certificate.
    pub insecure: bool,
    /// The run whose pool this thread's connections go to.
    pub run: Ctx,
}

/// A response: its head, and its body read chunk by chunk.
#[derive(Debug)]
pub struct Response {
    status: u16,
    headers: HeaderMap,
    body: Incoming,
    /// The connection, back to its run's pool once the body has ended.
    conn: Option<(Key, Conn, Ctx)>,
    meter: Arc<Meter>,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The header fields.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// How long its connection has waited for data so far (since it was
    /// made: compare two readings).
    pub fn waited(&self) -> Duration {
        self.meter.waited()
    }

    /// The next piece of the body; `None` at its end (the connection is
    /// then free for the next request).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        loop {
            let frame = match self.conn.as_mut() {
                Some((_, conn, _)) => driven(&mut conn.driver, &conn.meter, true, self.body.frame()).await,
                None => self.body.frame().await,
            };
            match frame {
                None => {
                    if let Some((key, conn, run)) = self.conn.take() {
                        put_idle(key, conn, &run);
                    }
                    return Ok(None);
                }
                Some(Err(e)) => {
                    self.conn = None;
                    return Err(e);
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

impl Client {
    /// `GET url` with `headers` (besides Host and User-Agent), on a pooled
    /// connection if one is idle. Redirects are not followed.
    pub async fn get(&self, url: &Url, headers: &[(&'static str, String)], agent: &str) -> Result<Response, Error> {
        let host = url.host_str().ok_or_else(|| Error::Url(format!("no host in {url}")))?;
        let https = url.scheme() == "https";
        let port = url.port_or_known_default().ok_or_else(|| Error::Url(format!("no port for {url}")))?;
        let key: Key = (https, host.to_string(), port);
        let mut request = hyper::Request::get(&url[Position::BeforePath..Position::AfterQuery]);
        let authority = &url[Position::BeforeHost..Position::AfterPort];
        {
            let h = request.headers_mut().ok_or_else(|| Error::Url(format!("cannot request {url}")))?;
            h.insert(hyper::header::HOST, value(authority)?);
            h.insert(hyper::header::USER_AGENT, value(agent)?);
            h.insert(hyper::header::ACCEPT, HeaderValue::from_static("*/*"));
            for (name, v) in headers {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| Error::Url(format!("bad header name {name:?}: {e}")))?;
                h.insert(name, value(v)?);
            }
        }
        let request = request.body(Empty::new()).map_err(|e| Error::Url(format!("cannot request {url}: {e}")))?;
        // A reused connection may have been closed by the server since:
        // then the request goes once more on a new one.
        if let Some(mut conn) = take_idle(&key, &self.run)
            && driven(&mut conn.driver, &conn.meter, false, conn.send.ready()).await.is_ok()
        {
            let copy = clone_request(&request);
            let sent = conn.send.send_request(copy);
            if let Ok(response) = driven(&mut conn.driver, &conn.meter, false, sent).await {
                return Ok(Response::new(response, key, conn, self.run.clone()));
            }
        }
        // Boxed: connecting (TLS included) is the largest state of this
        // future, which the blocking engines build on a small stack.
        let mut conn = Box::pin(self.connect(url, &key)).await?;
        let sent = conn.send.send_request(request);
        let response = driven(&mut conn.driver, &conn.meter, false, sent).await.map_err(Error::Http)?;
        Ok(Response::new(response, key, conn, self.run.clone()))
    }

    async fn connect(&self, url: &Url, key: &Key) -> Result<Conn, Error> {
        let (https, host, port) = key;
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![SocketAddr::from((ip, *port))],
            Some(Host::Ipv6(ip)) => vec![SocketAddr::from((ip, *port))],
            _ => tokio::net::lookup_host((host.as_str(), *port)).await.map_err(Error::Connect)?.collect(),
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
        for addr in addrs {
            match tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let meter = Arc::new(Meter::default());
                    if stepped() {
                        let stream = Stepped::new(stream, Arc::clone(&meter)).map_err(Error::Connect)?;
                        return self.speak(stream, *https, url, meter).await;
                    }
                    return self.speak(stream, *https, url, meter).await;
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr} timed out")),
            }
        }
        Err(Error::Connect(last))
    }

    /// HTTP/1.1 on `stream`, inside TLS when `https`: the same for a
    /// plain socket (async engine) and a [`Stepped`] one (blocking engines).
    async fn speak<S>(&self, stream: S, https: bool, url: &Url, meter: Arc<Meter>) -> Result<Conn, Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        if https { self.handshake_tls(stream, url, meter).await } else { handshake(stream, meter).await }
    }

    async fn handshake_tls<S>(&self, stream: S, url: &Url, meter: Arc<Meter>) -> Result<Conn, Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let name = match url.host() {
            Some(Host::Ipv4(ip)) => ServerName::from(std::net::IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => ServerName::from(std::net::IpAddr::V6(ip)),
            Some(Host::Domain(d)) => ServerName::try_from(d.to_string())
                .map_err(|e| Error::Connect(io::Error::new(io::ErrorKind::InvalidInput, e)))?,
            None => return Err(Error::Url(format!("no host in {url}"))),
        };
        let connector = tokio_rustls::TlsConnector::from(super::tls::config(self.insecure));
        let tls = tokio::time::timeout(self.timeout, connector.connect(name, stream))
            .await
            .map_err(|_| Error::Connect(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")))?
            .map_err(Error::Connect)?;
        handshake(tls, meter).await
    }
}

impl Response {
    fn new(response: hyper::Response<Incoming>, key: Key, conn: Conn, run: Ctx) -> Self {
        let (parts, body) = response.into_parts();
        let meter = Arc::clone(&conn.meter);
        Response { status: parts.status.as_u16(), headers: parts.headers, body, conn: Some((key, conn, run)), meter }
    }
}

fn value(v: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(v).map_err(|e| Error::Url(format!("bad header value {v:?}: {e}")))
}

fn clone_request(r: &hyper::Request<Empty<Bytes>>) -> hyper::Request<Empty<Bytes>> {
    let mut copy = hyper::Request::new(Empty::new());
    *copy.method_mut() = r.method().clone();
    *copy.uri_mut() = r.uri().clone();
    *copy.headers_mut() = r.headers().clone();
    copy
}

/// How long a connection waited for data: from each socket read that
/// found none to the next read. Split downloads use it to tell a stream
/// the network holds back from one this machine holds back
/// (`split::Pace`).
#[derive(Debug, Default)]
pub struct Meter {
    /// Nanoseconds after [`epoch`] of the read that found no data; 0: none.
    pending_since: AtomicU64,
    waited_ns: AtomicU64,
    /// Set while a body's reader waits and polls the driver: the next
    /// read may block in `recv` (see [`Stepped`]).
    may_block: AtomicBool,
}

/// The time origin of [`Meter`]s.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Meter {
    /// Time spent waiting for data so far.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited_ns.load(Ordering::Relaxed))
    }

    fn before_read(&self) {
        if self.pending_since.load(Ordering::Relaxed) != 0 {
            let since = self.pending_since.swap(0, Ordering::Relaxed);
            let now = nanos_since_epoch();
            self.waited_ns.fetch_add(now.saturating_sub(since), Ordering::Relaxed);
        }
    }

    fn add_wait(&self, d: Duration) {
        self.waited_ns.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn found_nothing(&self) {
        self.pending_since.store(nanos_since_epoch().max(1), Ordering::Relaxed);
    }
}

fn nanos_since_epoch() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A stream whose waits for data are timed in a [`Meter`].
struct Metered<T> {
    io: T,
    meter: Arc<Meter>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Metered<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.meter.before_read();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if polled.is_pending() {
            self.meter.found_nothing();
        }
        polled
    }
}

/// `AsyncWrite` for a reading wrapper: every write goes straight to its
/// inner stream `$field` (the wrappers only change how reads wait).
macro_rules! forward_async_write {
    ([$($generics:tt)*] $ty:ty, $field:ident) => {
        impl<$($generics)*> tokio::io::AsyncWrite for $ty {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<io::Result<usize>> {
                std::pin::Pin::new(&mut self.$field).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> std::task::Poll<io::Result<usize>> {
                std::pin::Pin::new(&mut self.$field).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.$field.is_write_vectored()
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::pin::Pin::new(&mut self.$field).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::pin::Pin::new(&mut self.$field).poll_shutdown(cx)
            }
        }
    };
}

forward_async_write!([T: tokio::io::AsyncWrite + Unpin] Metered<T>, io);

/// Longest a blocking `recv` waits before the wait goes back to the
/// runtime (its timers, Ctrl-C): a body's reader never waits in the
/// kernel for longer than this at a time.
const BLOCKING_SLICE: Duration = Duration::from_millis(50);

/// A blocking engine's TCP stream: the socket is in blocking mode with
/// receive and send timeouts of [`BLOCKING_SLICE`]. While a body's reader
/// waits for data (`Meter::may_block`, one read at a time), a read is one
/// blocking `recv`, as the blocking client before hyper did: a piece of body
/// then costs one system call and no wake-up of another task, instead of
/// an `epoll_wait`, the `recv` and a second `epoll_wait` when the reader
/// is woken (CPU per download doubled with hyper on these engines). Any
/// other read (a response head, the TLS handshake, the check of an idle
/// connection hyper makes after a body) is a non-blocking `recv` behind
/// tokio's readiness, as on the async engine; so is a read after a slice
/// that brought nothing, so the runtime's timers and Ctrl-C are seen.
struct Stepped {
    stream: TcpStream,
    meter: Arc<Meter>,
}

impl Stepped {
    fn new(stream: TcpStream, meter: Arc<Meter>) -> io::Result<Self> {
        let socket = socket2::SockRef::from(&stream);
        socket.set_read_timeout(Some(BLOCKING_SLICE))?;
        socket.set_write_timeout(Some(BLOCKING_SLICE))?;
        socket.set_nonblocking(false)?;
        Ok(Stepped { stream, meter })
    }

    /// One `recv` into `buf`; `Ok(None)`: nothing came (would block).
    fn recv(&self, buf: &mut tokio::io::ReadBuf<'_>, flags: libc::c_int) -> io::Result<Option<()>> {
        // SAFETY: `unfilled_mut` is only written by recv, never
        // de-initialised.
        let got = socket2::SockRef::from(&self.stream).recv_with_flags(unsafe { buf.unfilled_mut() }, flags);
        match got {
            Ok(n) => {
                // SAFETY: recv initialised the first `n` bytes of the
                // unfilled part.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                Ok(Some(()))
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl tokio::io::AsyncRead for Stepped {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        if self.meter.may_block.swap(false, Ordering::Relaxed) {
            let started = Instant::now();
            let got = self.recv(buf, 0);
            self.meter.add_wait(started.elapsed());
            match got {
                Ok(Some(())) => return Poll::Ready(Ok(())),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        loop {
            std::task::ready!(self.stream.poll_read_ready(cx))?;
            match self.recv(buf, libc::MSG_DONTWAIT) {
                Ok(Some(())) => return Poll::Ready(Ok(())),
                // Tokio's readiness was stale (a blocking read took what
                // it announced): clear it, so the next poll waits.
                Ok(None) => {
                    let _ = self.stream.try_io(tokio::io::Interest::READABLE, || {
                        Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
                    });
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

forward_async_write!([] Stepped, stream);

/// HTTP/1.1 on `io`, its connection driven by a task on this thread's
/// runtime (async engine) or by whoever waits on it (blocking engines,
/// see [`Driver`]).
async fn handshake<T>(io: T, meter: Arc<Meter>) -> Result<Conn, Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = Metered { io, meter: Arc::clone(&meter) };
    let (send, driver) = http1::Builder::new()
        .max_buf_size(READ_BUFFER_MAX)
        .max_headers(MAX_HEADER_FIELDS)
        .handshake(TokioIo::new(io))
        .await
        .map_err(Error::Http)?;
    let driver = async move {
        let _ = driver.await;
    };
    if stepped() {
        return Ok(Conn { send, meter, driver: Driver(Some(Box::pin(driver))) });
    }
    tokio::spawn(driver);
    Ok(Conn { send, meter, driver: Driver(None) })
}
