//! The chat server's log on stderr: with `-v` a line per connection,
//! registration and departure; by default a summary line every
//! `--stats-every` (clients, channels, lines in and out per second), only
//! when something changed since the last one, so an idle server stays
//! quiet.
//!
//! It lives in the [`Core`](super::core::Core), which every connection's
//! connect, events and departure pass through on every engine (in the
//! parent process with `-e processes`), and whose registration-timeout
//! tick every engine runs: the log needs no hook of its own in the shells.
//! The hub reports registrations and departures in its outbox
//! ([`Presence`]), since only it knows the nick and the reason then.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::chat::ClientId;
use crate::chat::hub::Presence;
use crate::output::{Escapes, escaped};

/// What the server logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSettings {
    /// A line per connect, registration and departure.
    pub verbose: bool,
    /// How often a summary may be printed (None: never).
    pub every: Option<Duration>,
}

/// Counts since the last summary, and what it showed.
#[derive(Debug, Default)]
pub(crate) struct ServerLog {
    settings: LogSettings,
    /// Clients registered now.
    registered: usize,
    lines_in: u64,
    lines_out: u64,
    connects: u64,
    departures: u64,
    /// When the current period began (None: before the first tick).
    since: Option<Instant>,
    /// (clients, registered, channels) of the last summary.
    shown: Option<(usize, usize, usize)>,
}

impl ServerLog {
    pub fn new(settings: LogSettings) -> ServerLog {
        // An empty server has nothing to tell.
        ServerLog { settings, shown: Some((0, 0, 0)), ..ServerLog::default() }
    }

    /// A connection was admitted.
    pub fn connected(&mut self, id: ClientId, ip: IpAddr) {
        self.connects += 1;
        if self.settings.verbose {
            eprintln!("connect  #{} from {ip}", id.0);
        }
    }

    /// A connection was refused with `why`.
    pub fn refused(&mut self, id: ClientId, ip: IpAddr, why: &str) {
        if self.settings.verbose {
            eprintln!("refused  #{} from {ip}: {why}", id.0);
        }
    }

    /// `n` lines were read from clients.
    pub fn lines_in(&mut self, n: u64) {
        self.lines_in += n;
    }

    /// `n` lines were queued for clients.
    pub fn lines_out(&mut self, n: u64) {
        self.lines_out += n;
    }

    /// A registration or a departure the hub reported.
    pub fn presence(&mut self, p: &Presence) {
        match p {
            Presence::Registered { .. } => self.registered += 1,
            Presence::Left { registered, .. } => {
                self.departures += 1;
                if *registered {
                    self.registered = self.registered.saturating_sub(1);
                }
            }
        }
        if self.settings.verbose {
            eprintln!("{}", presence_line(p));
        }
    }

    /// The tick: prints the summary when one is due and something changed.
    pub fn tick(&mut self, now: Instant, clients: usize, channels: usize) {
        let Some(every) = self.settings.every else { return };
        let since = *self.since.get_or_insert(now);
        let elapsed = now.saturating_duration_since(since);
        if elapsed < every {
            return;
        }
        let state = (clients, self.registered, channels);
        let quiet = self.lines_in == 0 && self.lines_out == 0 && self.connects == 0 && self.departures == 0;
        if !(quiet && self.shown == Some(state)) {
            eprintln!("{}", self.summary(state, elapsed));
            self.shown = Some(state);
        }
        self.since = Some(now);
        (self.lines_in, self.lines_out, self.connects, self.departures) = (0, 0, 0, 0);
    }

    fn summary(&self, (clients, registered, channels): (usize, usize, usize), elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(0.001);
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        format!(
            "chat: {} ({registered} registered), {}; {:.0} lines/s in, {:.0} lines/s out; \
             {} connected, {} left in {:.1} s",
            plural(clients, "client"),
            plural(channels, "channel"),
            self.lines_in as f64 / secs,
            self.lines_out as f64 / secs,
            self.connects,
            self.departures,
            secs,
        )
    }
}

/// The `-v` line of a registration or departure. The user name and a
/// quit reason are the client's text: escaped, so that none of it can
/// drive the operator's terminal.
fn presence_line(p: &Presence) -> String {
    let clean = |text: &str| escaped(text, Escapes::Caret).into_owned();
    match p {
        Presence::Registered { id, prefix } => format!("register #{} as {}", id.0, clean(prefix)),
        Presence::Left { id, nick, reason, .. } => {
            format!("quit     #{} {}: {}", id.0, clean(nick.as_deref().unwrap_or("(no nick)")), clean(reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_counts_the_period_and_is_skipped_when_nothing_changed() {
        let mut log = ServerLog::new(LogSettings { verbose: false, every: Some(Duration::from_secs(10)) });
        let t0 = Instant::now();
        log.tick(t0, 0, 0);
        log.connected(ClientId(1), "127.0.0.1".parse().unwrap());
        log.presence(&Presence::Registered { id: ClientId(1), prefix: "a!a@127.0.0.1".into() });
        log.lines_in(50);
        log.lines_out(200);
        assert_eq!(
            log.summary((1, log.registered, 1), Duration::from_secs(10)),
            "chat: 1 client (1 registered), 1 channel; 5 lines/s in, 20 lines/s out; 1 connected, 0 left in 10.0 s"
        );
        log.tick(t0 + Duration::from_secs(5), 1, 1);
        assert_eq!(log.lines_in, 50, "not due yet");
        log.tick(t0 + Duration::from_secs(10), 1, 1);
        assert_eq!((log.lines_in, log.shown), (0, Some((1, 1, 1))), "printed, counts reset");
        // Nothing happened: the next period prints nothing (and stays on
        // schedule); a departure is something.
        log.tick(t0 + Duration::from_secs(20), 1, 1);
        assert_eq!(log.since, Some(t0 + Duration::from_secs(20)));
        log.presence(&Presence::Left {
            id: ClientId(1),
            nick: Some("a".into()),
            registered: true,
            reason: "bye".into(),
        });
        assert_eq!((log.registered, log.departures), (0, 1));
        log.tick(t0 + Duration::from_secs(30), 0, 0);
        assert_eq!((log.departures, log.shown), (0, Some((0, 0, 0))));
    }

    #[test]
    fn a_clients_text_in_a_presence_line_cannot_drive_the_terminal() {
        let left = Presence::Left {
            id: ClientId(7),
            nick: Some("mallory".into()),
            registered: true,
            reason: "Quit: \u{1b}]0;owned\u{7}\u{1b}[2J bye\u{202e}".into(),
        };
        assert_eq!(presence_line(&left), "quit     #7 mallory: Quit: ^[]0;owned^G^[[2J bye<U+202E>");
        let registered = Presence::Registered { id: ClientId(7), prefix: "mallory!m\u{2067}x@127.0.0.1".into() };
        assert_eq!(presence_line(&registered), "register #7 as mallory!m<U+2067>x@127.0.0.1");
        let plain = Presence::Left { id: ClientId(8), nick: None, registered: false, reason: "Client Quit".into() };
        assert_eq!(presence_line(&plain), "quit     #8 (no nick): Client Quit");
    }

    #[test]
    fn without_a_period_nothing_is_printed_nor_timed() {
        let mut log = ServerLog::new(LogSettings::default());
        log.tick(Instant::now(), 3, 1);
        assert_eq!((log.since, log.shown), (None, Some((0, 0, 0))));
    }
}
