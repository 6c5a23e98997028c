//! Shared test harness: run the real binary, start loopback listeners, and
//! generate one test per engine.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

/// Engine names as the CLI takes them.
pub const ENGINES: [&str; 3] = ["threads", "processes", "async"];

/// Generates one `#[test]` per engine: `engine_tests! { fn name(engine) { ... } }`
/// becomes `name::threads`, `name::processes`, `name::async_`.
#[macro_export]
macro_rules! engine_tests {
    ($(fn $name:ident($engine:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($engine: &str) $body
            #[test] fn threads() { body("threads") }
            #[test] fn processes() { body("processes") }
            #[test] fn async_() { body("async") }
        }
    )*};
}

/// A command for the trident binary under test.
pub fn trident() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trident"))
}

/// Runs trident with `args` and returns its output (stdin closed).
pub fn run(args: &[&str]) -> Output {
    trident().args(args).stdin(Stdio::null()).output().expect("trident runs")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A loopback address no other test uses: 127.<pid-derived>.<counter>.1.
pub fn unique_loopback() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    Ipv4Addr::new(127, 100 + (pid % 100) as u8, (n % 250) as u8 + 1, (pid / 100 % 250) as u8 + 2)
}

/// Listeners on `ip`, accepting and dropping connections until the process ends.
pub struct Listeners {
    pub ip: Ipv4Addr,
    pub ports: BTreeSet<u16>,
}

impl Listeners {
    /// Binds `count` listeners on ephemeral ports of a fresh loopback address.
    pub fn start(count: usize) -> Self {
        let ip = unique_loopback();
        let mut ports = BTreeSet::new();
        for _ in 0..count {
            let listener = TcpListener::bind(SocketAddrV4::new(ip, 0)).expect("bind loopback listener");
            ports.insert(listener.local_addr().expect("local addr").port());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    drop(conn);
                }
            });
        }
        Listeners { ip, ports }
    }

    /// A port spec covering every listener plus `extra` ports.
    pub fn spec_with(&self, extra: &[u16]) -> String {
        self.ports.iter().chain(extra).map(ToString::to_string).collect::<Vec<_>>().join(",")
    }
}

/// One line of `-f jsonl` output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct PortLine {
    #[serde(default)]
    pub host: Option<String>,
    pub ip: String,
    pub port: u16,
    pub proto: String,
    pub state: String,
    pub reason: String,
    pub rtt_us: Option<u64>,
    pub tries: u32,
}

/// Parses `-f jsonl` output.
pub fn jsonl(o: &Output) -> Vec<PortLine> {
    stdout(o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad jsonl line {l:?}: {e}"))).collect()
}

/// Ports with the given state in jsonl output.
pub fn ports_in(lines: &[PortLine], state: &str) -> BTreeSet<u16> {
    lines.iter().filter(|l| l.state == state).map(|l| l.port).collect()
}

/// A server process under test, its stderr collected line by line; killed
/// and reaped on drop.
pub struct LoggedServer {
    pub child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The thread reading stderr; it ends at end of file, once every
    /// process holding the pipe (the server and its workers) has exited.
    reader: Option<thread::JoinHandle<()>>,
}

impl LoggedServer {
    /// Spawns `cmd` (stdin and stdout null, stderr collected).
    pub fn spawn(cmd: &mut Command) -> LoggedServer {
        use std::io::BufRead;
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn the server");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&log);
        let reader = thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("log").push(line);
            }
        });
        LoggedServer { child, log, reader: Some(reader) }
    }

    /// Everything the server logged, once its stderr is closed (after it
    /// and its workers exited): lines written after one that `wait_for`
    /// saw are never missed. Hang guard: 15 s.
    pub fn whole_log(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let start = std::time::Instant::now();
            while !reader.is_finished() {
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(15),
                    "stderr was never closed:\n{}",
                    self.log_text()
                );
                thread::sleep(std::time::Duration::from_millis(10));
            }
            reader.join().expect("the log reader");
        }
        self.log_text()
    }

    /// The first log line matching `pred`, waiting for it (10 s at most).
    pub fn wait_for(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(line) = self.log.lock().expect("log").iter().find(|l| pred(l)) {
                return line.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no such line in the server's log:\n{}", self.log_text());
            thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// SIGTERM, then wait: the exit status and how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, std::time::Duration) {
        let start = std::time::Instant::now();
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) }, 0);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, start.elapsed());
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(15),
                "the server did not stop:\n{}",
                self.log_text()
            );
            thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
