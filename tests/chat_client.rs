//! `trident chat connect` and `trident chat load`, driven like a user,
//! against a real IRC server.
//!
//! Every test runs once per server in `client_tests!`: ngircd (a reference
//! server we did not write; it must be installed: `apt-get install
//! ngircd`) and `trident chat serve` on each engine. A server is started
//! per test on a free loopback port ([`Server::start`]); to add or remove
//! a server, edit the list in the macro.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::chat_harness::Irc;
use crate::util::{stderr, stdout, trident};

/// How long any expected event may take.
const WAIT: Duration = Duration::from_secs(10);

/// Generates one `#[test]` per server: `client_tests! { fn name(server)
/// { ... } }` gives `name::ngircd`, `name::trident_async`, ...
macro_rules! client_tests {
    ($(fn $name:ident($kind:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($kind: Kind) $body
            #[test] fn ngircd() { body(Kind::Ngircd) }
            #[test] fn trident_async() { body(Kind::Trident("async")) }
            #[test] fn trident_threads() { body(Kind::Trident("threads")) }
            #[test] fn trident_processes() { body(Kind::Trident("processes")) }
        }
    )*};
}
pub(crate) use client_tests;

/// Which server.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// ngircd, with a config written to a temporary directory.
    Ngircd,
    /// `trident chat serve -e ENGINE`.
    Trident(&'static str),
}

/// A running IRC server on 127.0.0.1; killed on drop.
pub struct Server {
    kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `kind` on a free port.
    pub fn start(kind: Kind) -> Server {
        for _ in 0..5 {
            if let Some(server) = Server::start_on(kind, free_port()) {
                return server;
            }
        }
        panic!("{kind:?}: could not start on a free port");
    }

    /// Starts `kind` on `port`; None if the port was taken meanwhile.
    pub fn start_on(kind: Kind, port: u16) -> Option<Server> {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let (mut command, dir) = match kind {
            Kind::Ngircd => {
                let dir = tempfile::tempdir().expect("temp dir");
                let config = dir.path().join("ngircd.conf");
                std::fs::write(&config, ngircd_config(port, &dir.path().join("ngircd.pid")))
                    .expect("write ngircd.conf");
                let mut command = Command::new(ngircd_path());
                command.arg("-n").arg("-f").arg(&config);
                (command, Some(dir))
            }
            Kind::Trident(engine) => {
                let mut command = trident();
                command.args(["chat", "serve", "--listen", &addr.to_string(), "-e", engine, "--max-per-ip", "1000"]);
                if engine == "processes" {
                    command.args(["--workers", "2"]);
                }
                (command, None)
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {kind:?}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        collect_lines(child.stdout.take().expect("stdout"), &log);
        collect_lines(child.stderr.take().expect("stderr"), &log);
        let mut server = Server { kind, addr, child, log, _dir: dir };
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.child.try_wait() {
                // Most likely the port was taken between free_port() and now.
                return None;
            }
            if TcpStream::connect(addr).is_ok() {
                return Some(server);
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("{kind:?} is not listening on {addr}:\n{}", server.log_text());
    }

    fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// Kills the server (an abrupt end for every client).
    pub fn kill(mut self) -> (Kind, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.kind, self.addr.port())
    }

    /// A registered raw client.
    pub fn client(&self, nick: &str) -> Irc {
        Irc::register(self.addr, nick)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ngircd_path() -> &'static str {
    for path in ["/usr/sbin/ngircd", "/usr/local/sbin/ngircd", "/usr/bin/ngircd"] {
        if std::path::Path::new(path).exists() {
            return path;
        }
    }
    panic!("ngircd is not installed (apt-get install ngircd): the chat client tests use it as a reference server")
}

/// A private ngircd: loopback only, no DNS/ident/PAM lookups, no
/// connection limits, no penalty delays (it would throttle the load test),
/// 30-byte nicks like trident's. Its PID file goes in the test's directory:
/// ngircd deletes it when it exits (it once pointed at /dev/null, which
/// ngircd, running as root, then deleted for the whole machine).
fn ngircd_config(port: u16, pid_file: &std::path::Path) -> String {
    format!(
        "[Global]\n\
         Name = irc.test\n\
         Info = trident client tests\n\
         AdminInfo1 = test\nAdminInfo2 = test\nAdminEMail = test@localhost\n\
         Listen = 127.0.0.1\n\
         Ports = {port}\n\
         MotdPhrase = ngircd for trident tests\n\
         PidFile = {pid}\n\
         [Limits]\n\
         MaxConnections = 0\nMaxConnectionsIP = 0\nMaxJoins = 0\nMaxNickLength = 30\n\
         MaxPenaltyTime = 0\nPingTimeout = 120\nPongTimeout = 20\n\
         [Options]\n\
         PAM = no\nIdent = no\nDNS = no\n",
        pid = pid_file.display()
    )
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn collect_lines(pipe: impl std::io::Read + Send + 'static, sink: &Arc<Mutex<Vec<String>>>) {
    let sink = Arc::clone(sink);
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            sink.lock().expect("lines").push(line);
        }
    });
}

/// Runs trident with `args` (stdin closed), killing it after `WAIT`.
fn run_trident(args: &[&str]) -> Output {
    let child = trident()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trident");
    let id = child.id();
    let watchdog = thread::spawn(move || {
        let deadline = Instant::now() + WAIT + WAIT;
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            // SAFETY: signal 0 only checks that the process exists.
            if unsafe { libc::kill(id as i32, 0) } != 0 {
                return false;
            }
        }
        // SAFETY: kill(2) on our own child, which has overstayed.
        unsafe { libc::kill(id as i32, libc::SIGKILL) };
        true
    });
    let output = child.wait_with_output().expect("wait for trident");
    assert!(!watchdog.join().expect("watchdog"), "trident {args:?} hung and was killed");
    output
}

/// `[HH:MM] rest` → rest; panics if the stamp is missing.
fn unstamp(line: &str) -> &str {
    let b = line.as_bytes();
    assert!(
        b.len() > 8
            && b[0] == b'['
            && b[1..3].iter().all(u8::is_ascii_digit)
            && b[3] == b':'
            && b[4..6].iter().all(u8::is_ascii_digit)
            && &b[6..8] == b"] ",
        "no [HH:MM] stamp: {line:?}"
    );
    &line[8..]
}

/// Whether `text` matches `pattern`, whose `*` stands for any run of
/// characters (and nothing else is special).
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// An interactive `trident chat connect`, stdin and stdout piped.
struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
    /// Lines of `out` already matched.
    seen: usize,
}

impl Interactive {
    fn start(addr: SocketAddr, args: &[&str]) -> Interactive {
        Interactive::start_with_env(addr, args, &[])
    }

    /// As [`Interactive::start`], with `env` set for the client.
    fn start_with_env(addr: SocketAddr, args: &[&str], env: &[(&str, &str)]) -> Interactive {
        let mut child = trident()
            .args(["chat", "connect", &addr.to_string()])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn trident chat connect");
        let (out, err) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        collect_lines(child.stdout.take().expect("stdout"), &out);
        collect_lines(child.stderr.take().expect("stderr"), &err);
        let stdin = child.stdin.take();
        Interactive { child, stdin, out, err, seen: 0 }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{line}\n").as_bytes()).expect("type a line");
        stdin.flush().expect("flush");
    }

    /// Waits for an output line after the last one matched whose text
    /// (after the `[HH:MM] ` stamp) matches `want`, where `*` stands for
    /// any run of characters.
    fn expect(&mut self, want: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            {
                let out = self.out.lock().expect("out");
                for (i, line) in out.iter().enumerate().skip(self.seen) {
                    let text = unstamp(line);
                    let hit = glob(want, text);
                    if hit {
                        self.seen = i + 1;
                        return text.to_owned();
                    }
                }
            }
            assert!(Instant::now() < deadline, "no line {want:?} in the client's output:\n{}", self.transcript());
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn transcript(&self) -> String {
        let out = self.out.lock().expect("out").join("\n");
        let err = self.err.lock().expect("err").join("\n");
        format!("--- stdout\n{out}\n--- stderr\n{err}")
    }

    /// Waits for the process to exit.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the client did not exit:\n{}", self.transcript());
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw client joined to `channel`, its join confirmed.
fn joined(server: &Server, nick: &str, channel: &str) -> Irc {
    let mut irc = server.client(nick);
    irc.send(&format!("JOIN {channel}"));
    irc.expect(" 366 ");
    irc
}

/// The next PRIVMSG (or other `command`) line, skipping the rest.
fn next_command(irc: &mut Irc, command: &str) -> String {
    irc.expect(&format!(" {command} "))
}

client_tests! {
    fn send_delivers(kind) {
        let server = Server::start(kind);
        let addr = server.addr.to_string();
        let mut bob = joined(&server, "bob", "#room");

        let o = run_trident(&["chat", "connect", &addr, "--nick", "alice", "--join", "#room", "--send", "hello world"]);
        assert!(o.status.success(), "exit {:?}\n{}{}", o.status, stdout(&o), stderr(&o));
        assert_eq!(stdout(&o).trim(), "delivered 1 message to #room");
        let line = next_command(&mut bob, "PRIVMSG");
        assert!(line.starts_with(":alice!") && line.ends_with(" PRIVMSG #room :hello world"), "{line}");

        // To a nick, two lines, and with our nick taken: alice_ sends.
        let _alice = server.client("alice");
        let o = run_trident(&["chat", "connect", &addr, "--nick", "alice", "--to", "bob", "--send", "one\ntwo"]);
        assert!(o.status.success(), "exit {:?}\n{}{}", o.status, stdout(&o), stderr(&o));
        assert_eq!(stdout(&o).trim(), "delivered 2 messages to bob");
        for text in ["one", "two"] {
            let line = next_command(&mut bob, "PRIVMSG");
            assert!(line.starts_with(":alice_!") && line.ends_with(&format!(" PRIVMSG bob :{text}")), "{line}");
        }
    }

    fn send_fails_without_a_recipient(kind) {
        let server = Server::start(kind);
        let addr = server.addr.to_string();
        let o = run_trident(&["chat", "connect", &addr, "--nick", "alice", "--to", "nobody", "--send", "hi"]);
        assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("not delivered") && err.contains("nobody") && err.contains("(401)"), "{err}");
        assert_eq!(stdout(&o), "");
    }

    fn interactive_session(kind) {
        let server = Server::start(kind);
        let mut bob = joined(&server, "bob", "#room");
        let mut alice = Interactive::start(server.addr, &["--nick", "alice"]);

        alice.type_line("/join #room");
        alice.expect("-!- You have joined #room");
        let line = next_command(&mut bob, "JOIN");
        assert!(line.starts_with(":alice!"), "{line}");

        bob.send("PRIVMSG #room :hi alice");
        alice.expect("<bob> hi alice");

        alice.type_line("hello bob");
        alice.expect("<alice> hello bob");
        let line = next_command(&mut bob, "PRIVMSG");
        assert!(line.starts_with(":alice!") && line.ends_with(" PRIVMSG #room :hello bob"), "{line}");

        alice.type_line("/me waves");
        let line = next_command(&mut bob, "PRIVMSG");
        assert!(line.ends_with(" PRIVMSG #room :\u{1}ACTION waves\u{1}"), "{line}");
        bob.send("PRIVMSG #room :\u{1}ACTION nods\u{1}");
        alice.expect("* bob nods");

        alice.type_line("/nick alice2");
        alice.expect("-!- You are now known as alice2");
        let line = next_command(&mut bob, "NICK");
        assert!(line.starts_with(":alice!") && line.ends_with("alice2"), "{line}");

        bob.send("NICK bob2");
        alice.expect("-!- bob is now known as bob2");
        bob.send("PRIVMSG alice2 :psst");
        alice.expect("*bob2* psst");
        alice.type_line("/msg bob2 private");
        let line = next_command(&mut bob, "PRIVMSG");
        assert!(line.starts_with(":alice2!") && line.ends_with(" PRIVMSG bob2 :private"), "{line}");

        alice.type_line("/names");
        alice.expect("-!- Users on #room: *");
        alice.type_line("/msg nobody x");
        alice.expect("-!- Error: nobody: *");

        alice.type_line("/quit see you");
        let line = next_command(&mut bob, "QUIT");
        assert!(line.starts_with(":alice2!") && line.contains("see you"), "{line}");
        let status = alice.wait();
        assert!(status.success(), "{status:?}\n{}", alice.transcript());
    }

    fn hostile_text_reaches_the_terminal_escaped(kind) {
        let server = Server::start(kind);
        let mut bob = joined(&server, "bob", "#room");
        let mut alice = Interactive::start(server.addr, &["--nick", "alice", "--join", "#room"]);
        alice.expect("-!- You have joined #room");
        next_command(&mut bob, "JOIN");
        // Clear screen, an OSC 52 clipboard write, a C1 CSI, a bidi override.
        bob.send("PRIVMSG #room :\u{1b}[2J\u{1b}]52;c;ZXZpbA==\u{7} \u{9b}31m red \u{202e}gnp.exe");
        alice.expect("<bob> ^[[2J^[]52;c;ZXZpbA==^G <U+009B>31m red <U+202E>gnp.exe");
        bob.send("TOPIC #room :\u{1b}[1;1H\u{1b}[K");
        alice.expect("-!- bob changed the topic of #room to: ^[[1;1H^[[K");
        let out = alice.out.lock().expect("out").join("\n");
        assert!(!out.contains(['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}']), "raw control characters reached stdout:\n{out:?}");
    }

    fn reconnects_after_a_drop(kind) {
        let server = Server::start(kind);
        let mut alice = Interactive::start(server.addr, &["--nick", "alice", "--join", "#room"]);
        alice.expect("-!- You have joined #room");
        let (kind, port) = server.kill();
        alice.expect("-!- disconnected*");
        let server = Server::start_on(kind, port).expect("restart on the same port");
        alice.expect("-!- Connected to*");
        alice.expect("-!- You have joined #room");
        let mut bob = joined(&server, "bob", "#room");
        alice.type_line("back again");
        let line = next_command(&mut bob, "PRIVMSG");
        assert!(line.starts_with(":alice!") && line.ends_with(" PRIVMSG #room :back again"), "{line}");
        drop(alice.stdin.take()); // end of input is /quit
        assert!(alice.wait().success(), "{}", alice.transcript());
    }

    fn load_delivers_everything(kind) {
        let server = Server::start(kind);
        let addr = server.addr.to_string();
        let o = run_trident(&[
            "chat", "load", &addr, "--clients", "20", "--channels", "2", "--rate", "100", "--duration", "1s", "-f", "json",
        ]);
        assert!(o.status.success(), "exit {:?}\n{}{}", o.status, stdout(&o), stderr(&o));
        let r: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json report");
        assert_eq!(r["connected"], 20, "{r:#}");
        assert_eq!(r["connect_failures"], 0, "{r:#}");
        // How many go in a second is the bench's business; that all of
        // them arrive is this test's.
        let sent = r["sent"].as_u64().expect("sent");
        assert!(sent > 0, "{r:#}");
        // 2 channels of 10: every message reaches the 9 others.
        assert_eq!(r["expected"].as_u64(), Some(sent * 9), "{r:#}");
        assert_eq!(r["delivered"], r["expected"], "{r:#}");
        assert_eq!(r["delivery_ratio"], 1.0, "{r:#}");
        assert_eq!((r["lost"].as_u64(), r["gaps"].as_u64(), r["out_of_order"].as_u64()), (Some(0), Some(0), Some(0)));
        let p50 = r["latency_us"]["p50"].as_u64().expect("p50");
        assert!(p50 > 0 && p50 <= r["latency_us"]["max"].as_u64().expect("max"), "{r:#}");
    }

    fn load_idle_connections_stay_up(kind) {
        let server = Server::start(kind);
        let addr = server.addr.to_string();
        let o = run_trident(&["chat", "load", &addr, "--idle", "--clients", "50", "--duration", "500ms", "-f", "json"]);
        assert!(o.status.success(), "exit {:?}\n{}{}", o.status, stdout(&o), stderr(&o));
        let r: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json report");
        assert_eq!((r["connected"].as_u64(), r["stayed_up"].as_u64()), (Some(50), Some(50)), "{r:#}");
        assert!(stderr(&o).contains("50/50 clients ready"), "{}", stderr(&o));
    }
}

client_tests! {
// `/list /whois /away /back /invite /op /deop /mode /kick` send what they
// should and show the replies as sentences.
fn requests_show_replies(kind) {
    let server = Server::start(kind);
    let mut alice = Interactive::start(server.addr, &["--nick", "alice", "--join", "#room"]);
    alice.expect("-!- You have joined #room");
    let mut bob = joined(&server, "bob", "#room");
    alice.expect("-!- bob has joined #room");
    let mut carol = server.client("carol");

    alice.type_line("/list");
    alice.expect("-!- #room 2 users:*");
    alice.expect("-!- End of channel list");

    alice.type_line("/whois bob");
    alice.expect("-!- bob (*@127.0.0.1): bob the tester");
    alice.expect("-!- bob is on *#room");
    alice.expect("-!- bob idle *, signed on *");
    alice.expect("-!- End of WHOIS for bob");

    alice.type_line("/away out to lunch");
    alice.expect("-!- You have been marked as away");
    bob.send("PRIVMSG alice :are you there?");
    let line = bob.expect(" 301 ");
    assert!(line.ends_with(" 301 bob alice :out to lunch"), "{line}");
    alice.expect("*bob* are you there?");
    alice.type_line("/back");
    alice.expect("-!- You are no longer marked as away");

    alice.type_line("/invite carol");
    alice.expect("-!- Inviting carol to #room");
    let line = carol.expect(" INVITE ");
    // The channel may come as a trailing parameter (`:#room`).
    assert!(line.starts_with(":alice!") && line.replace(":#", "#").ends_with(" INVITE carol #room"), "{line}");

    alice.type_line("/op bob");
    let line = next_command(&mut bob, "MODE");
    assert!(line.starts_with(":alice!") && line.ends_with(" MODE #room +o bob"), "{line}");
    alice.expect("-!- mode #room +o bob by alice");
    alice.type_line("/deop bob");
    let line = next_command(&mut bob, "MODE");
    assert!(line.ends_with(" MODE #room -o bob"), "{line}");
    alice.expect("-!- mode #room -o bob by alice");

    alice.type_line("/mode +b *!*@evil.example");
    alice.expect("-!- mode #room +b *!*@evil.example by alice");
    alice.type_line("/mode #room +b");
    alice.expect("-!- #room ban: *!*@evil.example*");
    alice.expect("-!- End of ban list for #room");
    alice.type_line("/mode");
    alice.expect("-!- Modes of #room: +*");

    alice.type_line("/kick bob behave");
    let line = next_command(&mut bob, "KICK");
    assert!(line.starts_with(":alice!") && line.ends_with(" KICK #room bob :behave"), "{line}");
    alice.expect("-!- bob was kicked from #room by alice (behave)");

    // Refusals are shown as errors: bob is no operator of #room.
    bob.send("JOIN #room");
    alice.expect("-!- bob has joined #room");
    bob.send("KICK #room alice");
    let line = bob.expect(" 482 ");
    assert!(line.contains(" #room "), "{line}");

    alice.type_line("/whois nobody");
    alice.expect("-!- Error: nobody: *(401)");
    alice.type_line("/quit");
    assert!(alice.wait().success(), "{}", alice.transcript());
}
}

#[test]
fn nick_defaults_to_the_login_name() {
    let server = Server::start(Kind::Trident("threads"));
    let mut bob = joined(&server, "bob", "#room");
    let mut alice = Interactive::start_with_env(server.addr, &["--join", "#room"], &[("USER", "j.doe")]);
    alice.expect("-!- You have joined #room");
    let line = next_command(&mut bob, "JOIN");
    assert!(line.starts_with(":j_doe!"), "{line}");
}

#[test]
fn send_errors_are_clear() {
    // Refused: a port nobody listens on.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let o = run_trident(&["chat", "connect", &addr, "--nick", "alice", "--to", "bob", "--send", "hi"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot connect to") && stderr(&o).contains("refused"), "{}", stderr(&o));
    // No recipient, bad nick, bad channel: bad input, nothing attempted.
    for args in [
        &["--nick", "alice", "--send", "hi"][..],
        &["--nick", "9lives", "--to", "bob", "--send", "hi"],
        &["--nick", "alice", "--join", "#a b", "--send", "hi"],
    ] {
        let o = run_trident(&[&["chat", "connect", &addr][..], args].concat());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let o = run_trident(&["chat", "load", &addr, "--clients", "2", "--duration", "1s"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no client could be set up"), "{}", stderr(&o));
}
