//! irssi, the terminal IRC client, against `chat serve` on every engine
//! (and ngircd, the reference): real irssi processes in a private tmux
//! server, driven with `send-keys` and read with `capture-pane`, so what
//! is asserted is what a person would see on the screen.
//!
//! Each irssi gets its own home with a config that keeps everything in
//! one window (no status window, no per-channel or query windows) and
//! turns off irssi's outgoing flood queue, so each reply lands on the
//! screen being read, at once. A step waits for a line matching a pattern
//! (`*` = any run of characters) to appear; every pattern names text
//! unique to its step, as lines scroll off a screen.
//!
//! irssi, tmux: `scripts/test` installs them (Debian's `irssi`, `tmux`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::chat_client::{Kind, Server, client_tests, glob};

/// How long any expected screen line may take.
const WAIT: Duration = Duration::from_secs(20);

/// A private tmux server (its socket in a temporary directory), killed
/// with everything in it on drop.
pub struct Tmux {
    dir: tempfile::TempDir,
}

impl Tmux {
    pub fn new() -> Tmux {
        Tmux { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("tmux.sock")
    }

    /// Runs `tmux -S SOCKET args...`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(self.socket())
            .args(args)
            .env("TERM", "xterm-256color")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("tmux {args:?}: {e} (is tmux installed? scripts/test installs it)"))
    }

    /// A detached 200x60 session `name` running `command` (argv).
    pub fn session(&self, name: &str, command: &[&str]) {
        let mut args = vec!["new-session", "-d", "-s", name, "-x", "200", "-y", "60", "--"];
        args.extend_from_slice(command);
        let o = self.run(&args);
        assert!(o.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// Types `text` into session `name` (literally), then Enter.
    pub fn type_line(&self, name: &str, text: &str) {
        let o = self.run(&["send-keys", "-t", name, "-l", "--", text]);
        assert!(o.status.success(), "send-keys: {}", String::from_utf8_lossy(&o.stderr));
        self.run(&["send-keys", "-t", name, "Enter"]);
    }

    /// The screen of session `name`, wrapped lines joined; None once
    /// the session is gone (its program exited).
    pub fn screen(&self, name: &str) -> Option<String> {
        let o = self.run(&["capture-pane", "-p", "-J", "-t", name]);
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Waits until a line of `name`'s screen matches `pattern` (`*` = any
    /// run of characters; a line is matched whole, so a pattern usually
    /// starts with `*`); returns that line.
    pub fn expect(&self, name: &str, pattern: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        loop {
            if let Some(screen) = self.screen(name) {
                if let Some(line) = screen.lines().map(str::trim_end).find(|l| glob(pattern, l)) {
                    return line.to_owned();
                }
                last = screen;
            }
            assert!(Instant::now() < deadline, "no line {pattern:?} on {name}'s screen:\n{last}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until no line of `name`'s screen matches `pattern`.
    pub fn expect_gone(&self, name: &str, pattern: &str) {
        let deadline = Instant::now() + WAIT;
        while let Some(screen) = self.screen(name).filter(|s| s.lines().any(|l| glob(pattern, l.trim_end()))) {
            assert!(Instant::now() < deadline, "{pattern:?} stays on {name}'s screen:\n{screen}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until session `name` is gone (its program exited).
    pub fn expect_exit(&self, name: &str) {
        let deadline = Instant::now() + WAIT;
        while self.run(&["has-session", "-t", name]).status.success() {
            assert!(Instant::now() < deadline, "{name} did not exit:\n{}", self.screen(name).unwrap_or_default());
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Everything in one window, no outgoing flood queue, a fixed user and
/// real name (irssi's config syntax).
const IRSSI_CONFIG: &str = r#"settings = {
  core = { real_name = "irssi tester"; user_name = "tester"; };
  "irc/core" = { cmd_queue_speed = "0"; cmds_max_at_once = "0"; };
  "fe-common/core" = {
    autocreate_windows = "no";
    use_status_window = "no";
    autocreate_query_level = "NONE";
  };
};
"#;

/// Starts irssi as `nick` in session `nick`, connected to `server`, and
/// waits for the server's welcome on its screen.
pub fn irssi(tmux: &Tmux, server: &Server, nick: &str) {
    let home = tmux.dir().join(format!("irssi-{nick}"));
    std::fs::create_dir_all(&home).expect("irssi home");
    std::fs::write(home.join("config"), IRSSI_CONFIG).expect("irssi config");
    let home_arg = format!("--home={}", home.display());
    let port = server.addr.port().to_string();
    tmux.session(nick, &["irssi", &home_arg, "-n", nick, "-c", "127.0.0.1", "-p", &port]);
    // irssi sends CAP LS 302 and waits for the list before registering.
    tmux.expect(nick, "*Capabilities supported:*");
    tmux.expect(nick, &format!("*Welcome to the *{nick}!*"));
}

client_tests! {
    fn irssi_users_talk(kind) {
        let server = Server::start(kind);
        let tmux = Tmux::new();
        irssi(&tmux, &server, "alice");
        irssi(&tmux, &server, "bob");

        tmux.type_line("alice", "/join #room");
        tmux.expect("alice", "* alice [*tester@127.0.0.1] has joined #room");
        tmux.type_line("bob", "/join #room");
        tmux.expect("bob", "* bob [*tester@127.0.0.1] has joined #room");
        tmux.expect("alice", "* bob [*tester@127.0.0.1] has joined #room");

        tmux.type_line("alice", "hello bob, from irssi");
        tmux.expect("bob", "* <*alice> hello bob, from irssi");
        tmux.type_line("bob", "hi alice, from irssi too");
        tmux.expect("alice", "* <*bob> hi alice, from irssi too");
        tmux.type_line("bob", "/me waves");
        tmux.expect("alice", "* * bob waves");

        tmux.type_line("bob", "/msg alice a private word");
        tmux.expect("alice", "* [bob(*tester@127.0.0.1)] a private word");
        tmux.type_line("alice", "/topic #room irssi was here");
        tmux.expect("bob", "* alice changed the topic of #room to: irssi was here");

        tmux.type_line("bob", "/quit off to bed");
        tmux.expect_exit("bob");
        tmux.expect("alice", "* bob [*tester@127.0.0.1] has quit *off to bed*");
        tmux.type_line("alice", "/quit");
        tmux.expect_exit("alice");
    }
}

client_tests! {
// WHOIS, AWAY, op/deop, KICK as irssi shows them.
fn irssi_operator_commands(kind) {
    let server = Server::start(kind);
    let tmux = Tmux::new();
    irssi(&tmux, &server, "alice");
    irssi(&tmux, &server, "bob");
    tmux.type_line("alice", "/join #room");
    // The first member is the channel's operator.
    tmux.expect("alice", "*[@alice]*");
    tmux.type_line("bob", "/join #room");
    tmux.expect("alice", "* bob [*tester@127.0.0.1] has joined #room");

    tmux.type_line("alice", "/whois bob");
    tmux.expect("alice", "*  ircname  : irssi tester");
    tmux.expect("alice", "*  channels : #room");
    tmux.expect("alice", "*  idle     : 0 days 0 hours 0 mins * secs [signon: *]");
    tmux.expect("alice", "* End of WHOIS");

    tmux.type_line("bob", "/away gone fishing");
    tmux.expect("bob", "* You have been marked as being away");
    tmux.type_line("alice", "/msg bob are you there");
    tmux.expect("alice", "* bob is away: gone fishing");
    tmux.type_line("bob", "/away");
    tmux.expect("bob", "* You are no longer marked as being away");

    tmux.type_line("alice", "/op bob");
    tmux.expect("alice", "* mode/#room [+o bob] by alice");
    tmux.type_line("bob", "now an operator");
    tmux.expect("alice", "* <@bob> now an operator");
    tmux.type_line("alice", "/deop bob");
    tmux.expect("bob", "* mode/#room [-o bob] by alice");

    tmux.type_line("alice", "/voice bob");
    tmux.expect("alice", "* mode/#room [+v bob] by alice");
    tmux.type_line("bob", "now with a voice");
    tmux.expect("alice", "* <+bob> now with a voice");

    tmux.type_line("alice", "/kick bob behave");
    tmux.expect("bob", "* bob was kicked from #room by alice [behave]");
    tmux.expect("alice", "* bob was kicked from #room by alice [behave]");

    // Invite-only: refused until invited.
    tmux.type_line("alice", "/mode #room +i");
    tmux.expect("alice", "* mode/#room [+i] by alice");
    tmux.type_line("bob", "/join #room");
    tmux.expect("bob", "* Cannot join to channel #room (You must be invited)");
    tmux.type_line("alice", "/invite bob");
    tmux.expect("alice", "* Inviting bob to #room");
    tmux.expect("bob", "* alice invites you to #room");
    // Cleared, so that the join seen next is the new one.
    tmux.type_line("alice", "/clear");
    tmux.expect_gone("alice", "* has joined #room");
    tmux.type_line("bob", "/join #room");
    tmux.expect("alice", "* bob [*tester@127.0.0.1] has joined #room");
    tmux.type_line("bob", "back by invitation");
    tmux.expect("alice", "* < bob> back by invitation");
}
}
