//! A real HTTP/1.1 server (hyper) on 127.0.0.1:0 for the fetch tests, with
//! misbehaviour chosen by the request path:
//!
//! | path | response |
//! |---|---|
//! | `/file/SIZE/NAME` | 200, `content(NAME, SIZE)`, Content-Length |
//! | `/chunked/SIZE/NAME` | 200, same bytes, chunked (no length) |
//! | `/truncated/SIZE/NAME` | Content-Length SIZE, half the body, then the connection is cut |
//! | `/flaky/N/SIZE/NAME` | truncated the first N times, then whole |
//! | `/busy/N/SECS/SIZE/NAME` | 503 + `Retry-After: SECS` the first N times, then whole |
//! | `/status/CODE/NAME` | that status, a short body |
//! | `/redirect/N/SIZE/NAME` | 302 to `/redirect/N-1/...` (absolute URL); at 0, 302 to `/file/SIZE/target.bin` (relative) |
//! | `/to-file/NAME` | 302 to `file:///etc/passwd` |
//! | `/slow/SIZE/CHUNK/MS/NAME` | 200, Content-Length, CHUNK bytes every MS milliseconds |
//! | `/range/FLAGS/SIZE/NAME` | Range support, see below |
//! | `/disposition/SIZE/NAME?CD` | 200, `content(NAME, SIZE)`, `Content-Disposition`: CD percent-decoded (raw bytes; none without a query) |
//! | `/disposition-redirect/SIZE/NAME?CD` | 302 with that `Content-Disposition` to `/disposition/SIZE/NAME` (without one) |
//! | `/redirect-to/NAME?LOCATION` | 302 to LOCATION percent-decoded |
//! | `/headers/COUNT/SIZE/NAME` | 200, `content(NAME, 100)`, plus COUNT headers `x-pad-I` of SIZE bytes each |
//! | `/body/NAME?BODY` | 200, BODY percent-decoded (raw bytes) |
//! | `/moved/CODE/SIZE/NAME` | CODE (a 3xx) to `/only-get/SIZE/NAME` |
//! | `/only-get/SIZE/NAME` | 200, `content(NAME, SIZE)` to a GET without a body; 400 to anything else |
//! | `/too-many/N/SIZE/NAME?WHEN` | 429 + `Retry-After: WHEN` (percent-decoded) the first N times, then whole |
//!
//! `/range/...` answers `Range: bytes=N-` and `bytes=N-M` with 206 and `Content-Range`,
//! honours `If-Range` (another validator: 200 and the whole body), sends
//! `ETag: "NAME-SIZE-vV"` and a `Last-Modified`, and serves
//! [`versioned`]`(NAME, SIZE, V)` where V is 1 unless the ETag changes.
//! FLAGS is `-` or a comma-separated list of:
//! - `cut=N`: the first response is cut (connection aborted) after N body bytes;
//! - `cuthits=H`: with `cut`, the first H responses are;
//! - `cutevery=N`: every response is;
//! - `norange`: Range is ignored (always 200);
//! - `etag`: V is the request's number (the file changes with every request);
//! - `etag206`: same, and If-Range is ignored (206 with the new ETag);
//! - `badcr`: a 206's Content-Range says `bytes 0-(LEN-1)/LEN` for its LEN bytes;
//! - `lm`: no ETag (Last-Modified only); `weak`: a weak ETag only;
//! - `chunk=B`, `ms=T`: B-byte pieces (default 64 KiB) T ms apart;
//! - `ms1=T`: the first response's pieces T ms apart (the others `ms`).
//!
//! Every request is counted per path, every accepted connection too; for
//! `/range/` paths, the Range and If-Range of each request and the body
//! bytes handed to the connection are recorded. Every request is also
//! logged in order with its Range, Authorization and Cookie headers
//! ([`TestServer::log`]).
//!
//! [`TestServer::start_tls`] serves the same over HTTPS with a self-signed
//! certificate for 127.0.0.1 and localhost (rcgen, rustls).

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

type Body = BoxBody<Bytes, std::io::Error>;

/// The bytes served as `NAME` of `size` bytes: deterministic, differs per name.
pub fn content(name: &str, size: usize) -> Vec<u8> {
    let mut x: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        x = (x ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of version `version` of `NAME` (`/range/` paths).
pub fn versioned(name: &str, size: usize, version: u32) -> Vec<u8> {
    if version == 1 { content(name, size) } else { content(&format!("{name}@v{version}"), size) }
}

/// One request, as logged: path (with the query), and some headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
}

/// One request to a `/range/` path: its `Range` and `If-Range` headers,
/// the status sent, and the body bytes of that path sent (to anyone)
/// before it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRequest {
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub status: u16,
    pub served_before: u64,
}

#[derive(Default)]
struct State {
    hits: Mutex<HashMap<String, u32>>,
    connections: AtomicU32,
    requests: Mutex<HashMap<String, Vec<RangeRequest>>>,
    served: Mutex<HashMap<String, Arc<AtomicU64>>>,
    bodies: Mutex<HashMap<(String, usize, u32), Bytes>>,
    log: Mutex<Vec<Logged>>,
}

impl State {
    fn served_counter(&self, path: &str) -> Arc<AtomicU64> {
        Arc::clone(self.served.lock().expect("served").entry(path.to_string()).or_default())
    }

    fn body(&self, name: &str, size: usize, version: u32) -> Bytes {
        let mut bodies = self.bodies.lock().expect("bodies");
        bodies
            .entry((name.to_string(), size, version))
            .or_insert_with(|| Bytes::from(versioned(name, size, version)))
            .clone()
    }
}

/// A running server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    scheme: &'static str,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl TestServer {
    /// Binds 127.0.0.1:0 and serves on a thread of its own.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// The same over HTTPS, with a new self-signed certificate for
    /// 127.0.0.1 and localhost.
    pub fn start_tls() -> Self {
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names).expect("certificate");
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .expect("server certificate");
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let state = Arc::new(State::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = Arc::clone(&state);
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(serve(listener, served, stopped, tls));
        });
        TestServer { addr, scheme, state, stop: Some(stop), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT` (or `https://`) + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Every request so far, in the order received.
    pub fn log(&self) -> Vec<Logged> {
        self.state.log.lock().expect("log").clone()
    }

    /// Requests received for `path`.
    pub fn hits(&self, path: &str) -> u32 {
        self.state.hits.lock().expect("hits").get(path).copied().unwrap_or(0)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u32 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// The requests to a `/range/` path so far.
    pub fn requests(&self, path: &str) -> Vec<RangeRequest> {
        self.state.requests.lock().expect("requests").get(path).cloned().unwrap_or_default()
    }

    /// Body bytes of a `/range/` path handed to connections so far.
    pub fn served(&self, path: &str) -> u64 {
        self.state.served_counter(path).load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let addr = listener.local_addr().expect("local addr");
    let base = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
            _ = &mut stopped => return,
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let (state, base, tls) = (Arc::clone(&state), base.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, state, base).await,
                // A client that refuses the certificate ends here.
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(stream, state, base).await;
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(stream: S, state: Arc<State>, base: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let (state, base) = (Arc::clone(&state), base.clone());
        async move {
            log(&state, &req);
            let response = match req.uri().path().strip_prefix("/range/") {
                Some(rest) => ranged(&state, req.uri().path(), rest, &req),
                None => respond(&state, &base, &req),
            };
            Ok::<_, Infallible>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

fn log(state: &State, req: &Request<Incoming>) {
    let header =
        |h: header::HeaderName| req.headers().get(h).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let path = req.uri().path_and_query().map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    state.log.lock().expect("log").push(Logged {
        path,
        range: header(header::RANGE),
        authorization: header(header::AUTHORIZATION),
        cookie: header(header::COOKIE),
    });
}

fn full(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let len = body.len();
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_LENGTH, len.into());
    r
}

fn redirect(location: &str) -> Response<Body> {
    let mut r = full(StatusCode::FOUND, b"moved".to_vec());
    r.headers_mut().insert(header::LOCATION, location.parse().expect("location header"));
    r
}

/// `data` sent as `chunk`-byte frames `delay` apart; with `cut`, the stream
/// fails after half the data (the connection is aborted mid-body).
fn streamed(data: Vec<u8>, chunk: usize, delay: Duration, cut: bool, length: bool) -> Response<Body> {
    let total = data.len();
    let limit = if cut { total / 2 } else { total };
    let stream = futures_util::stream::unfold((data, 0usize), move |(data, sent)| async move {
        if sent >= limit {
            if cut && sent < total {
                let err = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "cut by the test server");
                return Some((Err(err), (data, total)));
            }
            return None;
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let end = (sent + chunk).min(limit);
        let frame = Frame::data(Bytes::copy_from_slice(&data[sent..end]));
        Some((Ok(frame), (data, end)))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    if length {
        r.headers_mut().insert(header::CONTENT_LENGTH, total.into());
    }
    r
}

fn respond(state: &State, base: &str, req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let hit = {
        let mut hits = state.hits.lock().expect("hits");
        let n = hits.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let num = |s: &str| s.parse::<usize>().unwrap_or(0);
    match parts.as_slice() {
        ["file", size, name] => full(StatusCode::OK, content(name, num(size))),
        ["chunked", size, name] => streamed(content(name, num(size)), 4096, Duration::ZERO, false, false),
        ["truncated", size, name] => streamed(content(name, num(size)), 4096, Duration::ZERO, true, true),
        ["flaky", fails, size, name] => {
            streamed(content(name, num(size)), 4096, Duration::ZERO, hit as usize <= num(fails), true)
        }
        ["busy", fails, secs, size, name] => {
            if hit as usize <= num(fails) {
                let mut r = full(StatusCode::SERVICE_UNAVAILABLE, b"busy".to_vec());
                r.headers_mut().insert(header::RETRY_AFTER, secs.parse().expect("retry-after"));
                r
            } else {
                full(StatusCode::OK, content(name, num(size)))
            }
        }
        ["status", code, _] => {
            full(StatusCode::from_u16(num(code) as u16).unwrap_or(StatusCode::IM_A_TEAPOT), b"no".to_vec())
        }
        ["redirect", "0", size, _] => redirect(&format!("../../../file/{size}/target.bin")),
        ["redirect", n, size, name] => redirect(&format!("{base}/redirect/{}/{size}/{name}", num(n) - 1)),
        ["to-file", _] => redirect("file:///etc/passwd"),
        ["disposition", size, name] => {
            let mut r = full(StatusCode::OK, content(name, num(size)));
            if let Some(query) = req.uri().query() {
                let raw: Vec<u8> = percent_encoding::percent_decode_str(query).collect();
                let value = header::HeaderValue::from_bytes(&raw).expect("Content-Disposition value");
                r.headers_mut().insert(header::CONTENT_DISPOSITION, value);
            }
            r
        }
        ["disposition-redirect", size, name] => {
            let mut r = redirect(&format!("/disposition/{size}/{name}"));
            if let Some(query) = req.uri().query() {
                let raw: Vec<u8> = percent_encoding::percent_decode_str(query).collect();
                let value = header::HeaderValue::from_bytes(&raw).expect("Content-Disposition value");
                r.headers_mut().insert(header::CONTENT_DISPOSITION, value);
            }
            r
        }
        ["redirect-to", _] => {
            let location = percent_encoding::percent_decode_str(req.uri().query().unwrap_or("")).decode_utf8_lossy();
            redirect(&location)
        }
        ["headers", count, size, name] => {
            let mut r = full(StatusCode::OK, content(name, 100));
            let value = header::HeaderValue::from_str(&"a".repeat(num(size))).expect("header value");
            for i in 0..num(count) {
                let name = header::HeaderName::from_bytes(format!("x-pad-{i}").as_bytes()).expect("header name");
                r.headers_mut().insert(name, value.clone());
            }
            r
        }
        ["moved", code, size, name] => {
            let status = StatusCode::from_u16(num(code) as u16).unwrap_or(StatusCode::FOUND);
            let mut r = full(status, b"moved".to_vec());
            let location = format!("/only-get/{size}/{name}");
            r.headers_mut().insert(header::LOCATION, location.parse().expect("location header"));
            r
        }
        ["only-get", size, name] => {
            let h = req.headers();
            let no_body = h.get(header::TRANSFER_ENCODING).is_none()
                && h.get(header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0");
            if req.method() == hyper::Method::GET && no_body {
                full(StatusCode::OK, content(name, num(size)))
            } else {
                full(StatusCode::BAD_REQUEST, format!("{} with a body: {}", req.method(), !no_body).into_bytes())
            }
        }
        ["too-many", fails, size, name] => {
            if hit as usize <= num(fails) {
                let mut r = full(StatusCode::TOO_MANY_REQUESTS, b"slow down".to_vec());
                let when = percent_encoding::percent_decode_str(req.uri().query().unwrap_or("")).decode_utf8_lossy();
                r.headers_mut().insert(header::RETRY_AFTER, when.parse().expect("retry-after"));
                r
            } else {
                full(StatusCode::OK, content(name, num(size)))
            }
        }
        ["slow", size, chunk, ms, name] => {
            streamed(content(name, num(size)), num(chunk), Duration::from_millis(num(ms) as u64), false, true)
        }
        ["body", _] => {
            let body: Vec<u8> = percent_encoding::percent_decode_str(req.uri().query().unwrap_or("")).collect();
            full(StatusCode::OK, body)
        }
        _ => full(StatusCode::NOT_FOUND, b"no such route".to_vec()),
    }
}

/// `/range/FLAGS/SIZE/NAME` (see the module documentation).
fn ranged(state: &State, path: &str, rest: &str, req: &Request<Incoming>) -> Response<Body> {
    let hit = {
        let mut hits = state.hits.lock().expect("hits");
        let n = hits.entry(path.to_string()).or_default();
        *n += 1;
        *n
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [flags, size, name] = parts.as_slice() else { return full(StatusCode::NOT_FOUND, b"bad range path".to_vec()) };
    let size: usize = size.parse().unwrap_or(0);
    let mut flag = HashMap::new();
    for f in flags.split(',').filter(|f| *f != "-") {
        let (k, v) = f.split_once('=').unwrap_or((f, ""));
        flag.insert(k, v.parse::<u64>().unwrap_or(0));
    }
    let has = |k: &str| flag.contains_key(k);
    let version = if has("etag") || has("etag206") { hit } else { 1 };
    let etag = if has("weak") { format!("W/\"{name}-{size}\"") } else { format!("\"{name}-{size}-v{version}\"") };
    let last_modified = "Sun, 06 Nov 1994 08:49:37 GMT";
    let header = |h: header::HeaderName| req.headers().get(h).and_then(|v| v.to_str().ok()).map(String::from);
    let (range, if_range) = (header(header::RANGE), header(header::IF_RANGE));

    let validator_ok = match &if_range {
        None => true,
        Some(v) if has("etag206") => !v.is_empty(),
        Some(v) if has("lm") || has("weak") => v == last_modified,
        Some(v) => *v == etag,
    };
    // `bytes=N-` or `bytes=N-M`: (N, M + 1 or None).
    let asked = range
        .as_deref()
        .filter(|_| !has("norange") && validator_ok)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(first, last)| {
            let first = first.parse::<usize>().ok()?;
            if last.is_empty() {
                return Some((first, None));
            }
            let last = last.parse::<usize>().ok().filter(|&l| l >= first)?;
            Some((first, Some(last + 1)))
        });
    let start = asked.map(|(first, _)| first);
    let to = asked.and_then(|(_, end)| end).map_or(size, |end| end.min(size));
    let served_before = state.served_counter(path).load(Ordering::SeqCst);
    let mut record = RangeRequest { range, if_range, status: 200, served_before };
    let body = state.body(name, size, version);
    let mut response = match start {
        Some(n) if n >= size => {
            record.status = 416;
            let mut r = full(StatusCode::RANGE_NOT_SATISFIABLE, Vec::new());
            r.headers_mut().insert(header::CONTENT_RANGE, format!("bytes */{size}").parse().expect("header"));
            r
        }
        start => {
            let (from, to) = match start {
                Some(from) => (from, to),
                None => (0, size),
            };
            let cut_hits = flag.get("cuthits").copied().unwrap_or(1);
            let cut =
                flag.get("cutevery").or(flag.get("cut").filter(|_| u64::from(hit) <= cut_hits)).map(|&n| n as usize);
            let chunk = flag.get("chunk").map_or(64 * 1024, |&c| c as usize).max(1);
            let ms = if hit == 1 { flag.get("ms1").or(flag.get("ms")) } else { flag.get("ms") };
            let delay = Duration::from_millis(ms.copied().unwrap_or(0));
            let counter = state.served_counter(path);
            let mut r = counted(body.slice(from..to), chunk, delay, cut, counter);
            if start.is_some() {
                record.status = 206;
                *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                let cr = if has("badcr") {
                    format!("bytes 0-{}/{}", to - from - 1, to - from)
                } else {
                    format!("bytes {from}-{}/{size}", to - 1)
                };
                r.headers_mut().insert(header::CONTENT_RANGE, cr.parse().expect("header"));
            }
            r
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, "bytes".parse().expect("header"));
    if !has("lm") {
        headers.insert(header::ETAG, etag.parse().expect("header"));
    }
    if !has("weak") {
        headers.insert(header::LAST_MODIFIED, last_modified.parse().expect("header"));
    }
    state.requests.lock().expect("requests").entry(path.to_string()).or_default().push(record);
    response
}

/// `data` with its Content-Length, sent as `chunk`-byte frames `delay`
/// apart, counted into `counter`; with `cut`, the connection is aborted
/// after that many bytes.
fn counted(data: Bytes, chunk: usize, delay: Duration, cut: Option<usize>, counter: Arc<AtomicU64>) -> Response<Body> {
    let total = data.len();
    let limit = cut.map_or(total, |c| c.min(total));
    let stream = futures_util::stream::unfold((data, 0usize), move |(data, sent)| {
        let counter = Arc::clone(&counter);
        async move {
            if sent >= limit {
                if sent < total {
                    // Let what was sent reach the client before the abort.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let err = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "cut by the test server");
                    return Some((Err(err), (data, total)));
                }
                return None;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let end = (sent + chunk).min(limit);
            counter.fetch_add((end - sent) as u64, Ordering::SeqCst);
            Some((Ok(Frame::data(data.slice(sent..end))), (data, end)))
        }
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(header::CONTENT_LENGTH, total.into());
    r
}
