//! A misbehaving HTTP/1.1 server written on raw TCP (127.0.0.1:0), for what
//! a well-behaved server library cannot be made to send. The behaviour is
//! chosen by the request path:
//!
//! | path | response |
//! |---|---|
//! | `/cut-chunk/NAME` | chunked: one whole 100-byte chunk, then a 100-byte chunk cut after 30 bytes (connection closed) |
//! | `/endless-size/NAME` | chunked, then a chunk-size line of `1` digits that never ends (until [`CAP`] bytes) |
//! | `/endless-ext/NAME` | chunked, then a chunk extension (`1;`) that never ends (until [`CAP`] bytes) |
//! | `/endless-trailer/NAME` | chunked, one chunk, the last chunk, then trailer fields that never end (until [`CAP`] bytes) |
//! | `/huge-head/NAME` | a 200 head of 100 fields of 100,000 bytes each (~10 MB) |
//! | `/drip/SIZE/MS/NAME` | Content-Length SIZE, one byte every MS ms |
//! | `/drip-redirect/SIZE/MS/NAME` | 302 to `/bytes/100/NAME`, its body SIZE bytes, one every MS ms |
//! | `/bytes/SIZE/NAME` | 200, SIZE bytes `b` |
//! | `/endless/NAME` | 200 without a length, body bytes until the client leaves (or [`CAP`]) |
//! | `/endless-chunked/NAME` | the same, chunked |
//! | `/big-length/LEN/NAME` | Content-Length LEN, then body bytes until the client leaves (or [`CAP`]) |
//! | `/stall/SENT/MS/NAME` | Content-Length 10 MiB and an ETag, SENT bytes at once, then one byte every MS ms (0: none) until the client leaves |
//!
//! While a response is being sent, [`RawServer::sending`] tells how many
//! bytes of it the server has handed to the kernel so far.
//!
//! Every connection records how many bytes the server could hand to the
//! kernel and whether the client hung up before the server was done: a
//! client that bounds what it reads closes early, one that buffers
//! everything takes it all.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Most bytes an endless response sends before it stops on its own (so a
/// client without a bound still ends, and the test can see it took all).
pub const CAP: u64 = 64 << 20;

/// What happened on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The request path.
    pub path: String,
    /// Bytes the server wrote (head included).
    pub sent: u64,
    /// The client closed before the server was done.
    pub hung_up: bool,
}

/// A running server; stops when dropped.
pub struct RawServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<Mutex<Vec<Served>>>,
    /// Bytes handed to the kernel so far, per request path.
    progress: Arc<Mutex<HashMap<String, u64>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RawServer {
    /// Binds 127.0.0.1:0 and serves each connection on a thread.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(Vec::new()));
        let progress = Arc::new(Mutex::new(HashMap::new()));
        let (stop2, served2, progress2) = (Arc::clone(&stop), Arc::clone(&served), Arc::clone(&progress));
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (stop, served, progress) = (Arc::clone(&stop2), Arc::clone(&served2), Arc::clone(&progress2));
                thread::spawn(move || serve(conn, &stop, &served, &progress));
            }
        });
        RawServer { addr, stop, served, progress, thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Bytes of responses to `path` handed to the kernel so far (head
    /// included), while they are being sent.
    pub fn sending(&self, path: &str) -> u64 {
        self.progress.lock().expect("progress").get(path).copied().unwrap_or(0)
    }

    /// The connections that ended so far, for `path`.
    pub fn served(&self, path: &str) -> Vec<Served> {
        self.served.lock().expect("served").iter().filter(|s| s.path == path).cloned().collect()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes, counting; `false` once the client is gone.
struct Out<'a> {
    conn: &'a TcpStream,
    sent: u64,
    path: &'a str,
    progress: &'a Mutex<HashMap<String, u64>>,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> bool {
        match (&*self.conn).write_all(bytes) {
            Ok(()) => {
                self.sent += bytes.len() as u64;
                *self.progress.lock().expect("progress").entry(self.path.to_string()).or_default() +=
                    bytes.len() as u64;
                true
            }
            Err(_) => false,
        }
    }
}

fn serve(conn: TcpStream, stop: &AtomicBool, served: &Mutex<Vec<Served>>, progress: &Mutex<HashMap<String, u64>>) {
    let _ = conn.set_nodelay(true);
    // A small send buffer: what the kernel takes beyond what the client
    // reads stays small, so `hung_up` tells a bounded client apart.
    let _ = set_sndbuf(&conn, 64 * 1024);
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        // The rest of the request head.
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        let mut out = Out { conn: &conn, sent: 0, path: &path, progress };
        let (done, keep) = respond(&path, &mut out, stop);
        let sent = out.sent;
        served.lock().expect("served").push(Served { path, sent, hung_up: !done });
        if !keep || !done {
            return;
        }
    }
}

/// Waits `ms` ms (0: 100 ms) unless the client leaves first: `false`
/// once it has (the read sees its end of the stream).
fn wait_while_connected(conn: &TcpStream, ms: u64) -> bool {
    use std::io::Read;
    let end = std::time::Instant::now() + Duration::from_millis(if ms == 0 { 100 } else { ms });
    let mut buf = [0u8; 512];
    loop {
        let Some(left) = end.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero()) else {
            return true;
        };
        let _ = conn.set_read_timeout(Some(left.min(Duration::from_millis(100))));
        match (&*conn).read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
    }
}

fn set_sndbuf(conn: &TcpStream, bytes: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a descriptor we own, with a valid int.
    let rc = unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw const bytes).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Sends the response to `path`: (finished without the client leaving,
/// keep the connection).
fn respond(path: &str, out: &mut Out<'_>, stop: &AtomicBool) -> (bool, bool) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let body_piece = [b'x'; 16 * 1024];
    match parts.as_slice() {
        ["cut-chunk", _] => {
            let ok = out.put(b"HTTP/1.1 200 OK\r\nETag: \"cut-1\"\r\nTransfer-Encoding: chunked\r\n\r\n")
                && out.put(b"64\r\n")
                && out.put(&[b'a'; 100])
                && out.put(b"\r\n64\r\n")
                && out.put(&[b'b'; 30]);
            (ok, false)
        }
        ["endless-size", _] => {
            let mut ok = out.put(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let digits = [b'1'; 16 * 1024];
            while ok && out.sent < CAP && !stop.load(Ordering::SeqCst) {
                ok = out.put(&digits);
            }
            (ok, false)
        }
        ["endless-ext", _] => {
            let mut ok = out.put(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x=");
            let ext = [b'e'; 16 * 1024];
            while ok && out.sent < CAP && !stop.load(Ordering::SeqCst) {
                ok = out.put(&ext);
            }
            (ok, false)
        }
        ["endless-trailer", _] => {
            let mut ok = out.put(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n");
            let field = format!("x-trailer: {}\r\n", "t".repeat(1000));
            while ok && out.sent < CAP && !stop.load(Ordering::SeqCst) {
                ok = out.put(field.as_bytes());
            }
            (ok, false)
        }
        ["huge-head", _] => {
            let mut ok = out.put(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n");
            let field = format!("x-pad: {}\r\n", "p".repeat(100_000 - 11));
            for _ in 0..100 {
                ok = ok && out.put(field.as_bytes());
            }
            ok = ok && out.put(b"\r\n0123456789");
            (ok, false)
        }
        ["drip", size, ms, _] => {
            let size: u64 = size.parse().unwrap_or(0);
            let ms: u64 = ms.parse().unwrap_or(100);
            let mut ok = out.put(format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").as_bytes());
            let mut left = size;
            while ok && left > 0 && !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(ms));
                ok = out.put(b"d");
                left -= 1;
            }
            (ok, true)
        }
        ["drip-redirect", size, ms, name] => {
            let size: u64 = size.parse().unwrap_or(0);
            let ms: u64 = ms.parse().unwrap_or(100);
            let head = format!("HTTP/1.1 302 Found\r\nLocation: /bytes/100/{name}\r\nContent-Length: {size}\r\n\r\n");
            let mut ok = out.put(head.as_bytes());
            let mut left = size;
            while ok && left > 0 && !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(ms));
                ok = out.put(b"r");
                left -= 1;
            }
            (ok, false)
        }
        ["bytes", size, _] => {
            let size: usize = size.parse().unwrap_or(0);
            let ok = out.put(format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").as_bytes())
                && out.put(&vec![b'b'; size]);
            (ok, true)
        }
        ["endless", _] => {
            let mut ok = out.put(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            while ok && out.sent < CAP && !stop.load(Ordering::SeqCst) {
                ok = out.put(&body_piece);
            }
            (ok, false)
        }
        ["endless-chunked", _] => {
            let mut ok = out.put(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let mut chunk = format!("{:x}\r\n", body_piece.len()).into_bytes();
            chunk.extend_from_slice(&body_piece);
            chunk.extend_from_slice(b"\r\n");
            while ok && out.sent < CAP && !stop.load(Ordering::SeqCst) {
                ok = out.put(&chunk);
            }
            (ok, false)
        }
        ["big-length", len, _] => {
            let mut ok = out.put(format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes());
            while ok && out.sent < CAP && !stop.load(Ordering::SeqCst) {
                ok = out.put(&body_piece);
            }
            (ok, false)
        }
        ["stall", sent, ms, _] => {
            let sent: usize = sent.parse().unwrap_or(0);
            let ms: u64 = ms.parse().unwrap_or(0);
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\nETag: \"stall-1\"\r\n\r\n";
            let mut ok = out.put(head.as_bytes()) && out.put(&vec![b's'; sent]);
            while ok && !stop.load(Ordering::SeqCst) {
                ok = wait_while_connected(out.conn, ms) && (ms == 0 || out.put(b"s"));
            }
            (ok, false)
        }
        _ => (out.put(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"), true),
    }
}
