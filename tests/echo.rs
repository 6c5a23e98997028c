//! `trident echo`: the chapter's echo server and client, on every engine.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::engine_tests;
use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A running `trident echo serve` and its stderr, line by line.
struct Server {
    process: LoggedServer,
    addr: SocketAddr,
}

impl Server {
    fn start(engine: &str, extra: &[&str]) -> Server {
        let process =
            LoggedServer::spawn(trident().args(["echo", "serve", "--listen", "127.0.0.1:0", "-e", engine]).args(extra));
        let line = process.wait_for(|l| l.starts_with("Serving on "));
        // Serving on ('127.0.0.1', 40059)
        let inner = line.trim_start_matches("Serving on ('").trim_end_matches(')');
        let (ip, port) = inner.split_once("', ").unwrap_or_else(|| panic!("bad line {line:?}"));
        let addr = format!("{ip}:{port}").parse().unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
        Server { process, addr }
    }

    fn wait_for(&self, pred: impl Fn(&str) -> bool) -> String {
        self.process.wait_for(pred)
    }

    fn log_text(&self) -> String {
        self.process.log_text()
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect to the echo server");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        s
    }

    fn terminate(&mut self) -> (ExitStatus, Duration) {
        self.process.terminate()
    }
}

/// Reads exactly `n` bytes.
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).expect("the answer");
    buf
}

/// Sends `msg` and reads its whole answer (one chunk: `msg` is at most 100 bytes).
fn exchange(s: &mut TcpStream, msg: &str) -> String {
    s.write_all(msg.as_bytes()).expect("send");
    String::from_utf8(read_n(s, "Server received: ".len() + msg.len())).expect("utf-8")
}

/// Nothing more arrives within a short while.
fn assert_quiet(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
        other => panic!("unexpected extra answer: {other:?}"),
    }
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
}

fn py(addr: SocketAddr) -> String {
    format!("('{}', {})", addr.ip(), addr.port())
}

/// Live `trident __serve-worker` children of `pid`.
fn serve_workers(pid: u32) -> Vec<u32> {
    trident::sys::children(pid).into_iter().filter(|&c| is_serve_worker(c)).collect()
}

fn is_serve_worker(pid: u32) -> bool {
    let live = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')));
    live && std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"__serve-worker"))
}

/// The chapter's client, verbatim but for its obsolete `loop=` argument
/// (removed in Python 3.10) and the port.
const CHAPTER_CLIENT: &str = r#"#Client
import asyncio

async def tcp_echo_client(message: str, loop: asyncio.AbstractEventLoop):
    """
    A simple client to connect and send a message to the server.
    """
    reader, writer = await asyncio.open_connection('127.0.0.1', 8888)

    print(f'Send: {message!r}')
    writer.write(message.encode())
    await writer.drain()

    data = await reader.read(100)
    print(f'Received: {data.decode()!r}')

    print('Close the connection')
    writer.close()
    await writer.wait_closed()


if __name__ == '__main__':
    message = "Hello Server!"
    loop = asyncio.get_event_loop()
    loop.run_until_complete(tcp_echo_client(message, loop))
"#;

const CHAPTER_OUTPUT: &str =
    "Send: 'Hello Server!'\nReceived: 'Server received: Hello Server!'\nClose the connection\n";

engine_tests! {
    fn chapter_exchange_byte_for_byte(engine) {
        let server = Server::start(engine, &[]);
        let mut client = server.connect();
        let me = py(client.local_addr().expect("local"));
        client.write_all(b"Hello Server!").expect("send");
        assert_eq!(read_n(&mut client, 30), b"Server received: Hello Server!");
        assert_quiet(&mut client);

        // Reads are 100 bytes at most: 250 bytes sent at once come back as
        // three answers (loopback delivers them in one segment).
        let long = "x".repeat(250);
        client.write_all(long.as_bytes()).expect("send");
        let want = format!("Server received: {}Server received: {}Server received: {}", &long[..100], &long[100..200], &long[200..]);
        assert_eq!(String::from_utf8(read_n(&mut client, want.len())).expect("utf-8"), want);
        assert_quiet(&mut client);
        // Bytes go back as they came, also when not UTF-8.
        client.write_all(b"\xff\xfe").expect("send");
        assert_eq!(read_n(&mut client, 19), b"Server received: \xff\xfe");
        client.shutdown(Shutdown::Write).expect("shutdown");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).expect("server closes");
        assert!(rest.is_empty());

        server.wait_for(|l| l == format!("Closing connection from {me}"));
        let log = server.log_text();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&me)).collect();
        assert_eq!(lines[0], format!("Accepted connection from {me}"), "{log}");
        assert_eq!(lines[1], format!("Received 'Hello Server!' from {me}"), "{log}");
        assert_eq!(lines.last().copied(), Some(format!("Closing connection from {me}").as_str()), "{log}");
        assert!(!log.contains("abruptly"), "{log}");
    }

    fn concurrent_clients_get_only_their_own_answers(engine) {
        let server = Server::start(engine, &[]);
        const CLIENTS: usize = 12;
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                // All connected before anyone speaks: served at the same time.
                let mut s = server.connect();
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    for j in 0..25 {
                        let msg = format!("client {i} message {j}");
                        assert_eq!(exchange(&mut s, &msg), format!("Server received: {msg}"));
                    }
                    assert_quiet(&mut s);
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client thread");
        }
        // Each was accepted (and logged) before it was answered, but the
        // log reader may still be behind: wait for the lines, then count.
        let deadline = Instant::now() + TIMEOUT;
        while server.log_text().matches("Accepted connection from").count() < CLIENTS && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let log = server.log_text();
        assert_eq!(log.matches("Accepted connection from").count(), CLIENTS, "{log}");
    }

    fn abrupt_disconnects_do_not_disturb_others(engine) {
        let server = Server::start(engine, &[]);
        let mut steady = server.connect();
        assert_eq!(exchange(&mut steady, "before"), "Server received: before");

        // A client that resets the connection (SO_LINGER 0) after an exchange.
        let mut rude = server.connect();
        let rude_addr = py(rude.local_addr().expect("local"));
        assert_eq!(exchange(&mut rude, "bye"), "Server received: bye");
        socket2::SockRef::from(&rude).set_linger(Some(Duration::ZERO)).expect("linger");
        drop(rude);
        // One that resets with an answer still unread, and one that never speaks.
        let unread = server.connect();
        (&unread).write_all(b"nobody reads this").expect("send");
        // The server has read it (and answered) before the reset.
        server.wait_for(|l| l.starts_with("Received 'nobody reads this'"));
        socket2::SockRef::from(&unread).set_linger(Some(Duration::ZERO)).expect("linger");
        drop(unread);
        drop(server.connect());

        server.wait_for(|l| l == format!("Client {rude_addr} disconnected abruptly"));
        server.wait_for(|l| l == format!("Closing connection from {rude_addr}"));
        for j in 0..10 {
            let msg = format!("still here {j}");
            assert_eq!(exchange(&mut steady, &msg), format!("Server received: {msg}"));
        }
        let mut late = server.connect();
        assert_eq!(exchange(&mut late, "late"), "Server received: late");
    }

    fn send_prints_like_the_chapter_client(engine) {
        let server = Server::start(engine, &[]);
        let addr = server.addr.to_string();
        let o = run(&["echo", "send", &addr, "Hello Server!"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), CHAPTER_OUTPUT);
        let o = run(&["echo", "send", &addr, "it's \"quoted\"\tand\\"]);
        assert_eq!(stdout(&o), "Send: 'it\\'s \"quoted\"\\tand\\\\'\nReceived: 'Server received: it\\'s \"quoted\"\\tand\\\\'\nClose the connection\n");
        let o = run(&["echo", "send", &addr, "it's"]);
        assert_eq!(stdout(&o), "Send: \"it's\"\nReceived: \"Server received: it's\"\nClose the connection\n");
    }

    fn sigterm_stops_gracefully(engine) {
        let extra: &[&str] = if engine == "processes" { &["--workers", "3"] } else { &[] };
        let mut server = Server::start(engine, extra);
        let pid = server.process.child.id();
        // Workers are started one after the other once the socket is bound.
        let deadline = Instant::now() + TIMEOUT;
        let mut workers = serve_workers(pid);
        while engine == "processes" && workers.len() < 3 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
            workers = serve_workers(pid);
        }
        if engine == "processes" {
            assert_eq!(workers.len(), 3, "--workers 3 starts 3 workers");
        } else {
            assert!(workers.is_empty());
        }
        let mut idle = server.connect();
        let mut busy = server.connect();
        assert_eq!(exchange(&mut busy, "hi"), "Server received: hi");
        // The server has accepted both before it is told to stop (on a busy
        // machine a worker may take a while to pick the idle one up).
        server.wait_for(|l| l.contains("Received 'hi'"));
        let deadline = Instant::now() + TIMEOUT;
        while server.log_text().matches("Accepted connection from").count() < 2 {
            assert!(Instant::now() < deadline, "the idle connection was never accepted:\n{}", server.log_text());
            thread::sleep(Duration::from_millis(10));
        }

        // terminate() has its own generous hang guard; speed is the bench's.
        let (status, _took) = server.terminate();
        assert_eq!(status.code(), Some(0), "{}", server.log_text());
        for s in [&mut idle, &mut busy] {
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).expect("closed by the server");
            assert!(rest.is_empty());
        }
        let left: Vec<u32> = workers.into_iter().filter(|&w| is_serve_worker(w)).collect();
        assert!(left.is_empty(), "workers left behind: {left:?}");
        assert!(TcpStream::connect(server.addr).is_err(), "nobody listens any more");
        let log = server.process.whole_log();
        assert!(log.lines().any(|l| l == "Server shutting down."), "{log}");
        assert_eq!(log.matches("Closing connection from").count(), 2, "{log}");
    }

    fn the_chapters_python_client_works(engine) {
        // No skip: scripts/test installs python3; without it this fails.
        let version = Command::new("python3").arg("--version").output();
        assert!(version.is_ok_and(|o| o.status.success()), "python3 is missing (scripts/test installs it)");
        let server = Server::start(engine, &[]);
        let code = CHAPTER_CLIENT.replace("8888", &server.addr.port().to_string());
        let o = Command::new("python3").args(["-c", &code]).stdin(Stdio::null()).output().expect("python3 runs");
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), CHAPTER_OUTPUT, "stderr: {}", stderr(&o));
    }
}

engine_tests! {
    fn over_max_connections_one_more_is_closed_at_once(engine) {
        // Processes: one worker, so that it holds the whole share.
        let extra: &[&str] = if engine == "processes" { &["--max-connections", "2", "--workers", "1"] } else { &["--max-connections", "2"] };
        let server = Server::start(engine, extra);
        let mut one = server.connect();
        let mut two = server.connect();
        assert_eq!(exchange(&mut one, "one"), "Server received: one");
        assert_eq!(exchange(&mut two, "two"), "Server received: two");
        let mut three = server.connect();
        let _ = three.write_all(b"three");
        let mut rest = Vec::new();
        let _ = three.read_to_end(&mut rest);
        assert!(rest.is_empty(), "the third was served: {rest:?}");
        server.wait_for(|l| l.starts_with("Refusing connection from") && l.ends_with(": 2 connections already"));
        // A slot given back is taken again.
        let me = py(one.local_addr().expect("local"));
        drop(one);
        server.wait_for(|l| l == format!("Closing connection from {me}"));
        let mut four = server.connect();
        assert_eq!(exchange(&mut four, "four"), "Server received: four");
        assert_eq!(exchange(&mut two, "two again"), "Server received: two again");
    }

    fn an_idle_connection_is_closed_and_the_server_goes_on(engine) {
        let server = Server::start(engine, &["--idle-timeout", "300ms"]);
        let mut idle = server.connect();
        let me = py(idle.local_addr().expect("local"));
        assert_eq!(exchange(&mut idle, "then silence"), "Server received: then silence");
        let mut rest = Vec::new();
        idle.read_to_end(&mut rest).expect("closed by the server, within the read timeout");
        assert!(rest.is_empty());
        server.wait_for(|l| l == format!("Client {me} idle for too long"));
        let mut next = server.connect();
        assert_eq!(exchange(&mut next, "next"), "Server received: next");
    }
}

#[test]
fn bad_input_exits_2() {
    for args in [
        &["echo", "serve", "--listen", "nowhere"][..],
        &["echo", "serve", "-e", "threads", "--workers", "2"],
        &["echo", "serve", "-e", "fibers"],
        &["echo", "send", "127.0.0.1", "hi"],
        &["echo", "serve", "--max-connections", "0"],
        &["echo", "serve", "--idle-timeout", "soon"],
        &["echo", "send"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        // One line, or for a missing argument clap's block naming it with
        // the usage.
        let err = stderr(&o);
        let lines = if *args == ["echo", "send"] { 4 } else { 1 };
        assert!(err.lines().count() == lines && !err.contains("\n\n"), "{args:?}: {err}");
    }
}

#[test]
fn busy_port_and_refused_connection_fail_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let o = run(&["echo", "serve", "--listen", &addr]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot listen on"), "{}", stderr(&o));
    drop(taken);
    let o = run(&["echo", "send", &addr, "hi"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
}

#[test]
fn a_server_worker_started_by_hand_fails_with_one_line() {
    let echo = r#"{\"quiet\":false,\"max_connections\":10,\"idle_timeout\":null}"#;
    let settings = format!(
        r#"{{"listener":987,"link":null,"number":1,"workers":1,"grace":{{"secs":1,"nanos":0}},"config":"{echo}"}}"#
    );
    for (args, code, says) in [
        (["__serve-worker", "echo", "not json"], 2, "bad server worker settings"),
        (["__serve-worker", "gopher", &settings], 2, "unknown server service"),
        (["__serve-worker", "echo", &settings], 1, "descriptor 987 is not open"),
        (["__serve-worker", "chat", &settings], 1, "bad chat config"),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{args:?}: {}", stderr(&o));
    }
}
