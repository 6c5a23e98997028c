//! WeeChat against `chat serve` on every engine (and ngircd, the
//! reference): real `weechat-headless` processes, driven through WeeChat's
//! FIFO plugin (`buffer *text` is what typing `text` into that buffer
//! does) and read through its logger plugin, which writes each buffer's
//! lines as WeeChat shows them (`prefix<TAB>message`), flushed at once.
//! A step waits for a line of a buffer's log matching a pattern (`*` =
//! any run of characters; the log line's time stamp dropped and its tab
//! shown as a space); the log keeps everything, so a pattern may match a
//! line written before the step and names text unique to it.
//!
//! weechat-headless and its plugins: `scripts/test` installs them
//! (Debian's `weechat-headless`, `weechat-plugins`).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::chat_client::{Kind, Server, client_tests, glob};
use crate::chat_irssi::{Tmux, irssi};

/// How long any expected line may take.
const WAIT: Duration = Duration::from_secs(20);

/// The server's name inside WeeChat: buffers are `irc.server.t`,
/// `irc.t.#room`, `irc.t.NICK`.
const SERVER: &str = "t";

/// A running `weechat-headless` with its own home; killed on drop.
struct Weechat {
    nick: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Weechat {
    /// Starts WeeChat as `nick`, connected to `server`, and waits for the
    /// welcome in its server buffer.
    fn start(server: &Server, nick: &str) -> Weechat {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path();
        let setup = [
            format!("/set fifo.file.path {}", home.join("fifo").display()),
            format!("/set logger.file.path {}", home.join("logs").display()),
            "/set logger.file.flush_delay 0".to_owned(),
            "/set logger.level.irc 9".to_owned(),
            format!("/server add {SERVER} 127.0.0.1/{} -notls", server.addr.port()),
            format!("/set irc.server.{SERVER}.nicks {nick}"),
            format!("/set irc.server.{SERVER}.username tester"),
            format!("/set irc.server.{SERVER}.realname \"weechat tester\""),
            format!("/set irc.server.{SERVER}.autoreconnect off"),
            // WeeChat's own outgoing flood queue (2 s a line by default).
            format!("/set irc.server.{SERVER}.anti_flood_prio_high 0"),
            format!("/set irc.server.{SERVER}.anti_flood_prio_low 0"),
            format!("/connect {SERVER}"),
        ]
        .join(";");
        let child = Command::new("weechat-headless")
            .arg("--dir")
            .arg(home)
            .args(["--plugins", "irc,fifo,logger", "--run-command", &setup])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start weechat-headless: {e} (scripts/test installs it)"));
        let weechat = Weechat { nick: nick.to_owned(), child, dir };
        weechat.expect(&format!("irc.server.{SERVER}"), &format!("* Welcome to the *{nick}!*"));
        weechat
    }

    fn log_path(&self, buffer: &str) -> PathBuf {
        self.dir.path().join("logs").join(format!("{}.weechatlog", buffer.to_lowercase()))
    }

    /// Types `text` into `buffer` (a `/command` or a message), through
    /// the FIFO.
    fn type_in(&self, buffer: &str, text: &str) {
        let deadline = Instant::now() + WAIT;
        // Non-blocking: the open fails, rather than hangs, while WeeChat
        // is not reading the FIFO (not yet, or no longer).
        let mut fifo = loop {
            match OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(self.dir.path().join("fifo")) {
                Ok(fifo) => break fifo,
                Err(e) => assert!(Instant::now() < deadline, "{}: cannot open WeeChat's FIFO: {e}", self.nick),
            }
            thread::sleep(Duration::from_millis(50));
        };
        fifo.write_all(format!("{buffer} *{text}\n").as_bytes()).expect("write to WeeChat's FIFO");
    }

    /// The lines of `buffer`'s log, time stamp dropped, tab as a space.
    fn lines(&self, buffer: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.log_path(buffer)).unwrap_or_default();
        text.lines().map(|l| l.split_once('\t').map_or(l, |(_, rest)| rest).replacen('\t', " ", 1)).collect()
    }

    /// Waits for a line of `buffer`'s log matching `pattern`; returns it.
    fn expect(&self, buffer: &str, pattern: &str) -> String {
        self.expect_times(buffer, pattern, 1)
    }

    /// Waits until `times` lines of `buffer`'s log match `pattern`;
    /// returns the last one.
    fn expect_times(&self, buffer: &str, pattern: &str, times: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = self.lines(buffer);
            if let Some(line) = lines.iter().filter(|l| glob(pattern, l)).nth(times - 1) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{}: no line {pattern:?} in buffer {buffer}:\n{}\n(buffers: {:?})",
                self.nick,
                lines.join("\n"),
                std::fs::read_dir(self.dir.path().join("logs"))
                    .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
                    .unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for WeeChat to exit.
    fn expect_exit(&mut self) {
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "{}: WeeChat did not exit", self.nick);
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Weechat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SERVER_BUFFER: &str = "irc.server.t";
const ROOM: &str = "irc.t.#room";

client_tests! {
    fn weechat_users_talk(kind) {
        let server = Server::start(kind);
        let alice = Weechat::start(&server, "alice");
        let mut bob = Weechat::start(&server, "bob");

        alice.type_in(SERVER_BUFFER, "/join #room");
        alice.expect(ROOM, "--> alice (*tester@127.0.0.1) has joined #room");
        bob.type_in(SERVER_BUFFER, "/join #room");
        alice.expect(ROOM, "--> bob (*tester@127.0.0.1) has joined #room");
        bob.expect(ROOM, "-- Channel #room: 2 nicks *");

        alice.type_in(ROOM, "hello bob, from weechat");
        bob.expect(ROOM, "*alice hello bob, from weechat");
        bob.type_in(ROOM, "hi alice, from weechat too");
        alice.expect(ROOM, "*bob hi alice, from weechat too");
        bob.type_in(ROOM, "/me waves");
        alice.expect(ROOM, "* bob waves");

        bob.type_in(ROOM, "/msg alice a private word");
        alice.expect("irc.t.bob", "bob a private word");
        bob.expect(SERVER_BUFFER, "-- MSG(alice): a private word");
        alice.type_in(ROOM, "/topic weechat was here");
        bob.expect(ROOM, "-- alice has changed topic for #room to \"weechat was here\"");

        bob.type_in(ROOM, "/quit off to bed");
        bob.expect_exit();
        alice.expect(ROOM, "<-- bob (*tester@127.0.0.1) has quit (*off to bed*)");
    }
}

client_tests! {
    fn irssi_and_weechat_talk(kind) {
        let server = Server::start(kind);
        let tmux = Tmux::new();
        irssi(&tmux, &server, "alice");
        let mut bob = Weechat::start(&server, "bob");
        tmux.type_line("alice", "/join #room");
        tmux.expect("alice", "* alice [*tester@127.0.0.1] has joined #room");
        bob.type_in(SERVER_BUFFER, "/join #room");
        tmux.expect("alice", "* bob [*tester@127.0.0.1] has joined #room");
        bob.expect(ROOM, "-- Channel #room: 2 nicks *");

        tmux.type_line("alice", "hello weechat, from irssi");
        bob.expect(ROOM, "*alice hello weechat, from irssi");
        bob.type_in(ROOM, "hello irssi, from weechat");
        tmux.expect("alice", "* <*bob> hello irssi, from weechat");

        bob.type_in(ROOM, "/quit weechat out");
        bob.expect_exit();
        tmux.expect("alice", "* bob [*tester@127.0.0.1] has quit *weechat out*");
    }
}

client_tests! {
// WHOIS, AWAY, op/deop, KICK as WeeChat shows them.
fn weechat_operator_commands(kind) {
    let server = Server::start(kind);
    let alice = Weechat::start(&server, "alice");
    let bob = Weechat::start(&server, "bob");
    alice.type_in(SERVER_BUFFER, "/join #room");
    alice.expect(ROOM, "-- Channel #room: 1 nick *");
    bob.type_in(SERVER_BUFFER, "/join #room");
    alice.expect(ROOM, "--> bob (*tester@127.0.0.1) has joined #room");

    alice.type_in(ROOM, "/whois bob");
    alice.expect(SERVER_BUFFER, "-- [bob] (*tester@127.0.0.1): weechat tester");
    alice.expect(SERVER_BUFFER, "-- [bob] *#room");
    alice.expect(SERVER_BUFFER, "-- [bob] idle: *, signon at: *");
    alice.expect(SERVER_BUFFER, "-- [bob] End of *WHOIS*");

    bob.type_in(ROOM, "/away gone fishing");
    bob.expect(SERVER_BUFFER, "-- You have been marked as being away");
    // With a private buffer open for bob (his message opens it), the
    // away reply to alice's message is shown there.
    bob.type_in(ROOM, "/msg alice brb");
    alice.expect("irc.t.bob", "bob brb");
    alice.type_in(ROOM, "/msg bob are you there");
    alice.expect("irc.t.bob", "-- [bob] is away: gone fishing");
    bob.type_in(ROOM, "/away");
    bob.expect(SERVER_BUFFER, "-- You are no longer marked as being away");

    alice.type_in(ROOM, "/op bob");
    alice.expect(ROOM, "-- Mode #room [+o bob] by alice");
    bob.type_in(ROOM, "now an operator");
    alice.expect(ROOM, "@bob now an operator");
    alice.type_in(ROOM, "/deop bob");
    bob.expect(ROOM, "-- Mode #room [-o bob] by alice");

    alice.type_in(ROOM, "/voice bob");
    alice.expect(ROOM, "-- Mode #room [+v bob] by alice");
    bob.type_in(ROOM, "now with a voice");
    alice.expect(ROOM, "+bob now with a voice");

    alice.type_in(ROOM, "/kick bob behave");
    bob.expect(ROOM, "<-- alice has kicked bob (behave)");
    alice.expect(ROOM, "<-- alice has kicked bob (behave)");

    // Invite-only: refused until invited.
    alice.type_in(ROOM, "/mode #room +i");
    alice.expect(ROOM, "-- Mode #room [+i] by alice");
    bob.type_in(SERVER_BUFFER, "/join #room");
    bob.expect(ROOM, "-- #room: Cannot join channel (+i)*");
    alice.type_in(ROOM, "/invite bob");
    alice.expect(SERVER_BUFFER, "-- alice has invited bob to #room");
    bob.expect(SERVER_BUFFER, "-- You have been invited to #room by alice");
    bob.type_in(SERVER_BUFFER, "/join #room");
    alice.expect_times(ROOM, "--> bob (*tester@127.0.0.1) has joined #room", 2);
}
}
