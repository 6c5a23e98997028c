//! The server side of the hub: the [`Hub`] plus what it needs from a
//! server and does not know itself — admission (max clients, per-IP
//! limit), registration timeouts, send-queue overflows — and the routing
//! of its [`Outbox`] to connections through a [`Router`].
//!
//! One `Core` per server: behind a mutex in the async and threads engines,
//! in the parent process of the processes engine. Every connection gets
//! exactly one [`Core::connect`] and one [`Core::gone`]; between them, its
//! events in order.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::chat::message::Message;
use crate::chat::store::{HistorySink, Stamper};
use crate::chat::{ClientId, Hub, Line, LineEvent, Outbox};

use super::Limits;
use super::log::{LogSettings, ServerLog};

/// Where the hub's lines go: connections in this process, or the worker
/// processes that hold them.
pub(crate) trait Router {
    /// Queues `line` for `to`; false if that overflowed `to`'s send queue
    /// (the core then closes it with "SendQ exceeded").
    fn deliver(&mut self, to: ClientId, line: &Line) -> bool;
    /// `id` is to be closed once what was delivered to it is written.
    fn close(&mut self, id: ClientId);
    /// Other connections the router cut while delivering (the process's
    /// send-queue budget was exhausted and theirs were the longest); the
    /// core closes them with "SendQ exceeded" too.
    fn overflowed(&mut self) -> Vec<ClientId> {
        Vec::new()
    }
}

/// The hub and the server-wide limits; see the module documentation.
#[derive(Debug)]
pub(crate) struct Core {
    hub: Hub,
    limits: Limits,
    /// Every admitted connection and its address.
    clients: HashMap<ClientId, IpAddr>,
    per_ip: HashMap<IpAddr, usize>,
    /// Admitted connections in connection order, for the registration
    /// timeout (same timeout for all: the front expires first).
    unregistered: VecDeque<(Instant, ClientId)>,
    outbox: Outbox,
    /// What is told on stderr (nothing unless [`with_log`](Self::with_log)).
    log: ServerLog,
    /// Where the hub's history records go, stamped (a server with
    /// `--data`; see [`with_history`](Self::with_history)).
    history: Option<(HistorySink, Stamper)>,
}

/// A line that panics the core in tests (a NUL: no line reader passes one).
#[cfg(test)]
pub(crate) const INJECTED_FAULT: &str = "\0panic";

/// Seconds since the epoch, for the hub.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the epoch, for the history's server times.
fn unix_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Core {
    pub fn new(hub: Hub, limits: Limits) -> Core {
        Core {
            hub,
            limits,
            clients: HashMap::new(),
            per_ip: HashMap::new(),
            unregistered: VecDeque::new(),
            outbox: Outbox::new(),
            log: ServerLog::default(),
            history: None,
        }
    }

    /// The core, stamping the hub's history records with a msgid and a
    /// server time and pushing them to `sink` (a push never waits).
    pub fn with_history(self, sink: Option<HistorySink>) -> Core {
        let history = sink.map(|sink| (sink, Stamper::new(unix_now_ms())));
        Core { history, ..self }
    }

    /// The core, logging as `settings` say.
    pub fn with_log(self, settings: LogSettings) -> Core {
        Core { log: ServerLog::new(settings), ..self }
    }

    /// Admitted connections.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// The hub (for tests' checks).
    #[cfg(test)]
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The connections whose id satisfies `pick` (a dead worker's).
    pub fn ids(&self, pick: impl Fn(ClientId) -> bool) -> Vec<ClientId> {
        self.clients.keys().copied().filter(|&id| pick(id)).collect()
    }

    /// A new connection from `ip`: admitted, or told why not and closed.
    pub fn connect(&mut self, id: ClientId, ip: IpAddr, now: Instant, router: &mut impl Router) {
        let ip = canonical(ip);
        let key = counted_as(ip);
        let from_ip = self.per_ip.get(&key).copied().unwrap_or(0);
        let refusal = if self.clients.len() >= self.limits.max_clients {
            Some("Server is full")
        } else if from_ip >= self.limits.max_per_ip {
            Some("Too many connections from your address")
        } else {
            None
        };
        if let Some(why) = refusal {
            self.log.refused(id, ip, why);
            let text = format!("Closing Link: {ip} ({why})");
            let line: Line = format!("{}\r\n", Message::new("ERROR").trailing(&text).to_line()).into();
            router.deliver(id, &line);
            router.close(id);
            return;
        }
        self.hub.connect(id, &ip.to_string());
        self.log.connected(id, ip);
        self.clients.insert(id, key);
        *self.per_ip.entry(key).or_default() += 1;
        self.unregistered.push_back((now + self.limits.registration_timeout, id));
        // Connections that left stay queued until their deadline; a quick
        // churn of connections must not grow the queue past the live ones
        // (amortised: compacted when it doubles).
        if self.unregistered.len() > 2 * self.clients.len().max(64) {
            let clients = &self.clients;
            self.unregistered.retain(|(_, id)| clients.contains_key(id));
        }
    }

    /// `id`'s next line events, in order.
    pub fn events(&mut self, id: ClientId, events: impl IntoIterator<Item = LineEvent>, router: &mut impl Router) {
        let now = unix_now();
        let mut lines = 0;
        for event in events {
            lines += 1;
            // Nothing is read after a QUIT (or any close): the rest of the
            // read that carried it is dropped here.
            if !self.hub.contains(id) {
                break;
            }
            // Tests inject a fault with a line no reader can produce.
            #[cfg(test)]
            if matches!(&event, LineEvent::Line(line) if line == INJECTED_FAULT) {
                panic!("a fault injected by a test");
            }
            self.hub.handle_event(id, &event, now, &mut self.outbox);
        }
        self.log.lines_in(lines);
        self.route(router);
    }

    /// The server closes `id` (ping timeout, flood, send queue...): its
    /// channels see it quit with `reason`, it gets an ERROR line.
    pub fn close(&mut self, id: ClientId, reason: &str, router: &mut impl Router) {
        if self.hub.contains(id) {
            self.hub.close(id, reason, &mut self.outbox);
            self.route(router);
        } else {
            router.close(id);
        }
    }

    /// `id`'s connection has ended (every connection ends with this once).
    pub fn gone(&mut self, id: ClientId, reason: &str, router: &mut impl Router) {
        if let Some(ip) = self.clients.remove(&id) {
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
        self.hub.disconnected(id, reason, &mut self.outbox);
        self.route(router);
    }

    /// Closes the connections whose registration time is up, and prints
    /// the log's summary when it is due (every engine calls this on its tick).
    pub fn expire(&mut self, now: Instant, router: &mut impl Router) {
        self.log.tick(now, self.hub.client_count(), self.hub.channel_count());
        while let Some(&(deadline, id)) = self.unregistered.front() {
            if deadline > now {
                break;
            }
            self.unregistered.pop_front();
            if self.hub.contains(id) && !self.hub.is_registered(id) {
                self.hub.close(id, "Registration timed out", &mut self.outbox);
            }
        }
        self.route(router);
    }

    /// Sends the outbox; clients whose queue overflows are closed, which
    /// may send more (their quits), until nothing is left.
    fn route(&mut self, router: &mut impl Router) {
        let mut overflowed = Vec::new();
        loop {
            for p in self.outbox.presence.drain(..) {
                self.log.presence(&p);
            }
            if let Some((sink, stamper)) = &mut self.history {
                let now = unix_now_ms();
                for record in self.outbox.history.drain(..) {
                    sink.push(stamper.stamp(record, now));
                }
            } else {
                self.outbox.history.clear();
            }
            if self.outbox.is_empty() {
                break;
            }
            let Outbox { deliveries, closes, presence, history } = std::mem::take(&mut self.outbox);
            self.log.lines_out(deliveries.len() as u64);
            for delivery in &deliveries {
                if !router.deliver(delivery.to, &delivery.line) {
                    overflowed.push(delivery.to);
                }
            }
            for &id in &closes {
                router.close(id);
            }
            overflowed.extend(router.overflowed());
            // Keep the allocations for the next call.
            let mut deliveries = deliveries;
            deliveries.clear();
            self.outbox.deliveries = deliveries;
            self.outbox.presence = presence;
            self.outbox.history = history;
            for id in overflowed.drain(..) {
                self.hub.close(id, "SendQ exceeded", &mut self.outbox);
            }
        }
    }
}

#[cfg(test)]
impl Core {
    /// Panics unless the core's counts agree with each other and with the
    /// hub, and stay within the limits.
    pub(crate) fn check(&self) {
        self.hub.check();
        assert!(self.clients.len() <= self.limits.max_clients);
        let mut counted: HashMap<IpAddr, usize> = HashMap::new();
        for ip in self.clients.values() {
            *counted.entry(*ip).or_default() += 1;
        }
        assert_eq!(counted, self.per_ip, "per-address counts");
        assert!(self.per_ip.values().all(|&n| n > 0 && n <= self.limits.max_per_ip));
        for id in self.hub.client_ids() {
            assert!(self.clients.contains_key(&id), "the hub knows {id:?}, which the core did not admit");
        }
    }

    /// Whether nothing is held for anyone.
    pub(crate) fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.per_ip.is_empty() && self.hub.is_empty()
    }
}

/// What the per-address limit counts `ip` as: an IPv6 address as its /64
/// (one host, or one customer, usually holds a whole /64: counted one by
/// one, its 2^64 addresses would make the limit meaningless).
fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// `::ffff:a.b.c.d` counts as `a.b.c.d` for the per-address limit.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
#[path = "core_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::chat::HubConfig;

    /// Records what the core routes; overflows the clients in `full`.
    #[derive(Default)]
    struct Recorder {
        lines: Vec<(ClientId, String)>,
        closed: Vec<ClientId>,
        full: Vec<ClientId>,
    }

    impl Router for Recorder {
        fn deliver(&mut self, to: ClientId, line: &Line) -> bool {
            if self.full.contains(&to) {
                return false;
            }
            self.lines.push((to, line.to_string()));
            true
        }
        fn close(&mut self, id: ClientId) {
            self.closed.push(id);
        }
    }

    fn core(limits: Limits) -> Core {
        Core::new(Hub::new(HubConfig::default(), 0), limits)
    }

    fn register(core: &mut Core, r: &mut Recorder, id: u64, nick: &str) {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        core.connect(ClientId(id), ip, Instant::now(), r);
        let lines = [format!("NICK {nick}"), format!("USER {nick} 0 * :{nick}")];
        core.events(ClientId(id), lines.into_iter().map(LineEvent::Line), r);
    }

    #[test]
    fn over_the_per_ip_limit_a_connection_gets_an_error_line_and_is_closed() {
        let mut core = core(Limits { max_per_ip: 1, ..Limits::default() });
        let mut r = Recorder::default();
        let ip: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        core.connect(ClientId(1), ip, Instant::now(), &mut r);
        core.connect(ClientId(2), "127.0.0.1".parse().unwrap(), Instant::now(), &mut r);
        assert_eq!(
            r.lines,
            [(ClientId(2), "ERROR :Closing Link: 127.0.0.1 (Too many connections from your address)\r\n".into())]
        );
        assert_eq!(r.closed, [ClientId(2)]);
        assert_eq!(core.len(), 1);
        core.gone(ClientId(1), "bye", &mut r);
        core.connect(ClientId(3), "127.0.0.1".parse().unwrap(), Instant::now(), &mut r);
        assert_eq!(core.len(), 1, "the address's slot was freed");
    }

    #[test]
    fn the_addresses_of_one_ipv6_64_count_as_one() {
        let mut core = core(Limits { max_per_ip: 2, ..Limits::default() });
        let mut r = Recorder::default();
        for (id, ip) in
            [(1, "2001:db8:1:2::1"), (2, "2001:db8:1:2:ffff::9"), (3, "2001:db8:1:2::3"), (4, "2001:db8:1:3::1")]
        {
            core.connect(ClientId(id), ip.parse().unwrap(), Instant::now(), &mut r);
        }
        assert_eq!(
            r.lines,
            [(ClientId(3), "ERROR :Closing Link: 2001:db8:1:2::3 (Too many connections from your address)\r\n".into())]
        );
        assert_eq!(core.len(), 3, "another /64 is another address");
        core.gone(ClientId(1), "bye", &mut r);
        core.connect(ClientId(5), "2001:db8:1:2::5".parse().unwrap(), Instant::now(), &mut r);
        assert_eq!(core.len(), 3, "the /64's slot was freed");
        core.check();
    }

    #[test]
    fn a_send_queue_overflow_closes_the_client_and_its_channels_see_it_quit() {
        let mut core = core(Limits::default());
        let mut r = Recorder::default();
        register(&mut core, &mut r, 1, "alice");
        register(&mut core, &mut r, 2, "bob");
        core.events(ClientId(1), [LineEvent::Line("JOIN #a".into())], &mut r);
        core.events(ClientId(2), [LineEvent::Line("JOIN #a".into())], &mut r);
        r.lines.clear();
        r.full.push(ClientId(2));
        core.events(ClientId(1), [LineEvent::Line("PRIVMSG #a :hi".into())], &mut r);
        assert_eq!(r.lines, [(ClientId(1), ":bob!bob@127.0.0.1 QUIT :SendQ exceeded\r\n".into())]);
        assert_eq!(r.closed, [ClientId(2)]);
    }

    #[test]
    fn nothing_after_quit_is_handled_even_in_the_same_read() {
        let mut core = core(Limits::default());
        let mut r = Recorder::default();
        core.connect(ClientId(1), "127.0.0.1".parse().unwrap(), Instant::now(), &mut r);
        let events = [
            LineEvent::Line("QUIT".into()),
            LineEvent::InvalidUtf8,
            LineEvent::TooLong,
            LineEvent::ForbiddenByte,
            LineEvent::Line("NICK late".into()),
        ];
        core.events(ClientId(1), events, &mut r);
        assert_eq!(r.lines, [(ClientId(1), "ERROR :Closing Link: 127.0.0.1 (Client Quit)\r\n".into())]);
        assert_eq!(r.closed, [ClientId(1)]);
        core.events(ClientId(1), [LineEvent::InvalidUtf8], &mut r);
        core.gone(ClientId(1), "gone", &mut r);
        assert_eq!(core.len(), 0);
        assert_eq!(r.lines.len(), 1, "{:?}", r.lines);
    }

    #[test]
    fn a_churn_of_connections_does_not_grow_the_registration_queue() {
        let mut core = core(Limits::default());
        let mut r = Recorder::default();
        for id in 0..10_000 {
            core.connect(ClientId(id), "127.0.0.1".parse().unwrap(), Instant::now(), &mut r);
            core.gone(ClientId(id), "gone", &mut r);
        }
        assert!(core.unregistered.len() <= 129, "{} queued", core.unregistered.len());
    }

    #[test]
    fn unregistered_connections_time_out_and_registered_ones_do_not() {
        let timeout = Duration::from_secs(5);
        let mut core = core(Limits { registration_timeout: timeout, ..Limits::default() });
        let mut r = Recorder::default();
        register(&mut core, &mut r, 1, "alice");
        core.connect(ClientId(2), "127.0.0.1".parse().unwrap(), Instant::now(), &mut r);
        r.lines.clear();
        core.expire(Instant::now() + timeout + Duration::from_secs(1), &mut r);
        assert_eq!(r.closed, [ClientId(2)]);
        assert_eq!(r.lines, [(ClientId(2), "ERROR :Closing Link: 127.0.0.1 (Registration timed out)\r\n".into())]);
    }

    #[test]
    fn with_a_history_every_delivered_message_is_stamped_and_stored_and_refused_ones_are_not() {
        use crate::chat::store::{Conversation, Store, WriterConfig};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (sink, guard) = store.writer(WriterConfig::default()).unwrap();
        let config = HubConfig { history: true, ..HubConfig::default() };
        let mut core = Core::new(Hub::new(config, 0), Limits::default()).with_history(Some(sink));
        let mut r = Recorder::default();
        register(&mut core, &mut r, 1, "alice");
        register(&mut core, &mut r, 2, "bob");
        let lines = |texts: &[&str]| texts.iter().map(|t| LineEvent::Line((*t).into())).collect::<Vec<_>>();
        core.events(ClientId(1), lines(&["JOIN #a"]), &mut r);
        core.events(ClientId(2), lines(&["JOIN #a"]), &mut r);
        let said = ["PRIVMSG #a :one", "NOTICE #A :two", "PRIVMSG #a,bob,#none,nobody :three", "PRIVMSG #b :no"];
        core.events(ClientId(1), lines(&said), &mut r);
        core.events(ClientId(2), lines(&["NOTICE alice :four", "PRIVMSG :", "PRIVMSG #a"]), &mut r);
        let stats = guard.finish();
        assert_eq!((stats.committed, stats.dropped), (5, 0));
        let texts = |convo: Conversation| -> Vec<String> {
            store.latest(&convo, None, 10).unwrap().into_iter().map(|m| m.text).collect()
        };
        assert_eq!(texts(Conversation::channel("#a")), ["one", "two", "three"]);
        assert_eq!(texts(Conversation::direct("alice", "bob")), ["three", "four"]);
        assert_eq!(store.message_count().unwrap(), 5);
    }

    #[test]
    fn the_hub_lists_messages_to_store_only_with_a_history() {
        for history in [false, true] {
            let mut hub = Hub::new(HubConfig { history, ..HubConfig::default() }, 0);
            let mut out = Outbox::new();
            hub.connect(ClientId(1), "127.0.0.1");
            for line in ["NICK alice", "USER alice 0 * :A", "PRIVMSG alice :me"] {
                hub.handle_event(ClientId(1), &LineEvent::Line(line.into()), 0, &mut out);
            }
            assert_eq!(out.history.len(), usize::from(history), "history: {history}");
        }
    }
}
