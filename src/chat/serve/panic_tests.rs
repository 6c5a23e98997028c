//! A panic in one connection's handling, on the async and threads shells:
//! the connection is closed and everything the core counted for it (its
//! slot, its address's count, its nick, its channels) is released, while
//! the server goes on.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::conn::Conn;
use super::{Backend, ChatConfig, ConnSettings, Limits, Local};
use crate::chat::{ClientId, HubConfig, LineEvent};

/// The core of `Local`, with a fault: a `PANIC` line panics (while the
/// core's lock is held, as a bug in the hub would).
struct Faulty(Local);

impl Backend for Faulty {
    fn open(&self, conn: &Arc<Conn>, ip: IpAddr) {
        self.0.open(conn, ip);
    }
    fn events(&self, id: ClientId, events: &mut Vec<LineEvent>) {
        if events.iter().any(|e| *e == LineEvent::Line("PANIC".into())) {
            let _held = self.0.lock();
            panic!("a fault injected by the test");
        }
        self.0.events(id, events);
    }
    fn close(&self, id: ClientId, reason: &str) {
        self.0.close(id, reason);
    }
    fn gone(&self, id: ClientId, reason: &str) -> super::Released {
        self.0.gone(id, reason)
    }
}

fn config() -> ChatConfig {
    // One slot per address: a slot not given back refuses the next client.
    let limits = Limits { max_per_ip: 1, ..Limits::default() };
    ChatConfig { hub: HubConfig::default(), limits, tls: None, log: Default::default(), store: None }
}

/// A client registers, joins, then sends the fatal line; returns what it read.
fn victim(addr: std::net::SocketAddr) -> String {
    let mut client = TcpStream::connect(addr).expect("connect");
    client.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    client.write_all(b"NICK alice\r\nUSER a 0 * :a\r\nJOIN #room\r\n").expect("send");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(" 366 ") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    client.write_all(b"PANIC\r\n").expect("send");
    let _ = client.read_to_end(&mut seen);
    String::from_utf8_lossy(&seen).into_owned()
}

fn assert_released(backend: &Faulty) {
    let state = backend.0.lock();
    assert_eq!(state.core.len(), 0, "the connection still holds a slot");
    assert!(state.conns.is_empty(), "the router still knows the connection");
    assert_eq!(state.core.hub().client_count(), 0);
    assert_eq!(state.core.hub().channel_count(), 0, "#room outlived its only member");
}

#[test]
fn a_panicking_async_connection_is_released() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = std::thread::spawn(move || victim(addr));
    let (stream, peer) = listener.accept().expect("accept");
    stream.set_nonblocking(true).expect("nonblocking");
    let backend = Arc::new(Faulty(Local::new(&config(), false)));
    let settings = Arc::new(ConnSettings::new(&config()).expect("settings"));
    let (_stop, stop) = crate::server::tokio::Stop::new();
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::from_std(stream).expect("tokio stream");
        super::tokio::connection(stream, peer, ClientId(1), Arc::clone(&backend), settings, stop).await;
    });
    let seen = client.join().expect("client");
    assert!(seen.contains(" 366 alice #room "), "{seen}");
    assert_released(&backend);
}

#[test]
fn a_panicking_connection_thread_is_released() {
    super::threads::install_wake_handler().expect("handler");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = std::thread::spawn(move || victim(addr));
    let (stream, peer) = listener.accept().expect("accept");
    let backend = Faulty(Local::new(&config(), true));
    let settings = ConnSettings::new(&config()).expect("settings");
    let conn = Arc::new(Conn::for_thread(
        ClientId(1),
        settings.limits.sendq,
        stream.as_raw_fd(),
        true,
        Arc::clone(&settings.budget),
    ));
    super::threads::connection(stream, peer, conn, &backend, &settings, &AtomicBool::new(false));
    let seen = client.join().expect("client");
    assert!(seen.contains(" 366 alice #room "), "{seen}");
    assert_released(&backend);
}
