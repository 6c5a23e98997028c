//! The hub's behaviour as exact lines: for each input, every delivery in
//! order as `(recipient, line without CRLF)`, closes last as `(id, CLOSE)`.

use std::sync::Arc;

use super::*;
use crate::chat::line::LineReader;

const SRV: &str = "irc.test";
/// The hub's creation time: Tue, 14 Nov 2023 22:13:20 GMT.
const T0: Timestamp = 1_700_000_000;
const NOW: Timestamp = 1_700_000_100;
const CLOSE: &str = "<close>";
const ALICE: &str = "alice!alice@127.0.0.1";
const CAROL: &str = "carol!carol@0::1";

type Got = Vec<(u64, String)>;
/// A client, the line it sends, what is delivered (recipient, line).
type Step<'a> = (u64, &'a str, &'a [(u64, &'a str)]);

fn config() -> HubConfig {
    HubConfig {
        server_name: SRV.into(),
        network: "TestNet".into(),
        password: None,
        motd: Some("Be nice.\nHave fun.".into()),
        max_channels: 3,
        ..HubConfig::default()
    }
}

struct H {
    hub: Hub,
    out: Outbox,
}

impl H {
    fn new() -> H {
        H::with(config())
    }

    fn with(config: HubConfig) -> H {
        H { hub: Hub::new(config, T0), out: Outbox::new() }
    }

    /// Renders and empties the outbox, checking every line's framing.
    fn take(&mut self) -> Got {
        let mut got: Got = self
            .out
            .deliveries
            .iter()
            .map(|d| {
                let line = d.line.strip_suffix("\r\n").unwrap_or_else(|| panic!("no CRLF: {:?}", d.line));
                assert!(d.line.len() <= MAX_LINE, "{} bytes: {line}", d.line.len());
                assert!(!line.contains(['\r', '\n', '\0']), "{line:?}");
                (d.to.0, line.to_owned())
            })
            .collect();
        got.extend(self.out.closes.iter().map(|c| (c.0, CLOSE.to_owned())));
        self.out.clear();
        got
    }

    fn connect(&mut self, id: u64, host: &str) {
        assert!(self.hub.connect(ClientId(id), host));
    }

    fn send(&mut self, id: u64, line: &str) -> Got {
        self.hub.handle_line(ClientId(id), line, NOW, &mut self.out);
        self.take()
    }

    fn disconnected(&mut self, id: u64, reason: &str) -> Got {
        self.hub.disconnected(ClientId(id), reason, &mut self.out);
        self.take()
    }

    /// Feeds raw bytes through a fresh line reader.
    fn bytes(&mut self, id: u64, data: &[u8]) -> Got {
        let mut reader = LineReader::new();
        reader.push(data);
        for event in reader {
            self.hub.handle_event(ClientId(id), &event, NOW, &mut self.out);
        }
        self.take()
    }

    /// Registers `nick` (user name = nick) from `host`, checking the welcome.
    fn register(&mut self, id: u64, nick: &str, host: &str) {
        self.connect(id, host);
        assert_eq!(self.send(id, &format!("NICK {nick}")), vec![]);
        let host = if host.starts_with(':') { format!("0{host}") } else { host.to_owned() };
        let user = &nick[..nick.len().min(USERLEN)];
        let want = welcome(id, nick, &format!("{nick}!{user}@{host}"));
        assert_eq!(self.send(id, &format!("USER {nick} 0 * :{nick} Example")), want);
        assert!(self.hub.is_registered(ClientId(id)));
    }

    /// Runs `(client, input, expected deliveries)` steps.
    fn script(&mut self, steps: &[Step<'_>]) {
        for (i, &(id, input, want)) in steps.iter().enumerate() {
            assert_eq!(self.send(id, input), exp(want), "step {i}: {id} sends {input:?}");
        }
    }
}

fn exp(lines: &[(u64, &str)]) -> Got {
    lines.iter().map(|&(id, line)| (id, line.to_owned())).collect()
}

/// 001-005 and the MOTD, as sent on registration.
fn welcome(id: u64, nick: &str, prefix: &str) -> Got {
    [
        format!(":irc.test 001 {nick} :Welcome to the TestNet IRC Network {prefix}"),
        format!(":irc.test 002 {nick} :Your host is irc.test, running version {VERSION}"),
        format!(":irc.test 003 {nick} :This server was created Tue, 14 Nov 2023 22:13:20 GMT"),
        format!(":irc.test 004 {nick} irc.test {VERSION} io biklmnostv bklov"),
        format!(
            ":irc.test 005 {nick} AWAYLEN=200 CASEMAPPING=rfc1459 CHANLIMIT=#:3 CHANMODES=b,k,l,imnst CHANNELLEN=50 \
             CHANTYPES=# MAXLIST=b:100 MAXTARGETS=4 MODES=4 NETWORK=TestNet NICKLEN=30 PREFIX=(ov)@+ TOPICLEN=390 \
             :are supported by this server"
        ),
        format!(":irc.test 375 {nick} :- irc.test Message of the Day -"),
        format!(":irc.test 372 {nick} :- Be nice."),
        format!(":irc.test 372 {nick} :- Have fun."),
        format!(":irc.test 376 {nick} :End of /MOTD command."),
    ]
    .into_iter()
    .map(|line| (id, line))
    .collect()
}

/// alice (1) and bob (2) registered.
fn two() -> H {
    let mut h = H::new();
    h.register(1, "alice", "127.0.0.1");
    h.register(2, "bob", "10.0.0.2");
    h
}

#[test]
fn registration_in_either_order_with_cap() {
    let mut h = H::new();
    h.connect(1, "127.0.0.1");
    h.script(&[
        (1, "CAP LS 302", &[(1, ":irc.test CAP * LS :")]),
        (1, "USER alice 0 * :Alice A", &[]),
        (1, "NICK alice", &[]),
        (1, "CAP REQ :multi-prefix sasl", &[(1, ":irc.test CAP alice NAK :multi-prefix sasl")]),
        (1, "CAP LIST", &[(1, ":irc.test CAP alice LIST :")]),
    ]);
    assert!(!h.hub.is_registered(ClientId(1)));
    assert_eq!(h.send(1, "CAP END"), welcome(1, "alice", ALICE));
    h.script(&[
        (1, "CAP LS", &[(1, ":irc.test CAP alice LS :")]),
        (1, "CAP FOO", &[(1, ":irc.test 410 alice FOO :Invalid CAP command")]),
        (1, "CAP", &[(1, ":irc.test 461 alice CAP :Not enough parameters")]),
        // CAP after registration does not suspend anything
        (1, "PING x", &[(1, ":irc.test PONG irc.test :x")]),
    ]);
}

#[test]
fn registration_errors() {
    let mut h = H::new();
    h.connect(1, "127.0.0.1");
    h.script(&[
        (1, "JOIN #chat", &[(1, ":irc.test 451 * :You have not registered")]),
        (1, "PRIVMSG bob :hi", &[(1, ":irc.test 451 * :You have not registered")]),
        (1, "FOO", &[(1, ":irc.test 421 * FOO :Unknown command")]),
        (1, "PING :tok en", &[(1, ":irc.test PONG irc.test :tok en")]),
        (1, "PING", &[(1, ":irc.test 461 * PING :Not enough parameters")]),
        (1, "NICK", &[(1, ":irc.test 431 * :No nickname given")]),
        (1, "NICK :", &[(1, ":irc.test 431 * :No nickname given")]),
        (1, "NICK 1abc", &[(1, ":irc.test 432 * 1abc :Erroneous nickname")]),
        (1, "NICK a!b", &[(1, ":irc.test 432 * a!b :Erroneous nickname")]),
        (1, "USER alice 0 *", &[(1, ":irc.test 461 * USER :Not enough parameters")]),
        (1, "PASS", &[(1, ":irc.test 461 * PASS :Not enough parameters")]),
        (1, "NICK alice", &[]),
        (1, "JOIN #chat", &[(1, ":irc.test 451 alice :You have not registered")]),
    ]);
    assert_eq!(h.send(1, "USER alice 0 * :Alice A"), welcome(1, "alice", ALICE));
    h.script(&[
        (1, "USER alice 0 * :Alice A", &[(1, ":irc.test 462 alice :You may not reregister")]),
        (1, "PASS secret", &[(1, ":irc.test 462 alice :You may not reregister")]),
    ]);
}

#[test]
fn user_name_is_sanitised_and_ipv6_hosts_fixed() {
    let mut h = H::new();
    h.connect(3, "::1");
    h.send(3, "NICK carol");
    let got = h.send(3, "USER c@r:o!l-is-long 0 * :Carol");
    assert_eq!(got[0], (3, ":irc.test 001 carol :Welcome to the TestNet IRC Network carol!crol-is-lo@0::1".to_owned()));
}

#[test]
fn password_is_checked_at_registration() {
    let protected = || H::with(HubConfig { password: Some("sesame".into()), ..config() });
    let refused: &[(u64, &str)] = &[
        (1, ":irc.test 464 alice :Password incorrect"),
        (1, "ERROR :Closing Link: 127.0.0.1 (Bad Password)"),
        (1, CLOSE),
    ];
    for pass in [None, Some("PASS wrong"), Some("PASS Sesame")] {
        let mut h = protected();
        h.connect(1, "127.0.0.1");
        if let Some(pass) = pass {
            assert_eq!(h.send(1, pass), vec![]);
        }
        h.send(1, "NICK alice");
        assert_eq!(h.send(1, "USER alice 0 * :A"), exp(refused), "{pass:?}");
        assert!(!h.hub.contains(ClientId(1)));
        // The nick is free again, and the close happened once.
        assert_eq!(h.disconnected(1, "Connection closed"), vec![]);
        h.connect(2, "10.0.0.2");
        assert_eq!(h.send(2, "NICK alice"), vec![]);
    }
    let mut h = protected();
    h.connect(1, "127.0.0.1");
    h.send(1, "PASS sesame");
    h.send(1, "NICK alice");
    assert_eq!(h.send(1, "USER alice 0 * :Alice A"), welcome(1, "alice", ALICE));
}

#[test]
fn two_clients_join_and_talk() {
    let mut h = two();
    h.script(&[
        (
            1,
            "JOIN #chat",
            &[
                (1, ":alice!alice@127.0.0.1 JOIN #chat"),
                (1, ":irc.test 353 alice = #chat :@alice"),
                (1, ":irc.test 366 alice #chat :End of /NAMES list"),
            ],
        ),
        // Case-insensitive; the channel keeps its first spelling.
        (
            2,
            "JOIN #CHAT",
            &[
                (1, ":bob!bob@10.0.0.2 JOIN #chat"),
                (2, ":bob!bob@10.0.0.2 JOIN #chat"),
                (2, ":irc.test 353 bob = #chat :@alice bob"),
                (2, ":irc.test 366 bob #chat :End of /NAMES list"),
            ],
        ),
        (2, "JOIN #chat", &[]),
        (1, "PRIVMSG #chat :hello, bob", &[(2, ":alice!alice@127.0.0.1 PRIVMSG #chat :hello, bob")]),
        (2, "privmsg #Chat hi", &[(1, ":bob!bob@10.0.0.2 PRIVMSG #chat :hi")]),
        (2, "PRIVMSG ALICE :psst, private", &[(1, ":bob!bob@10.0.0.2 PRIVMSG alice :psst, private")]),
        (1, "NOTICE bob :a notice", &[(2, ":alice!alice@127.0.0.1 NOTICE bob :a notice")]),
        (1, "NOTICE #chat :to all", &[(2, ":alice!alice@127.0.0.1 NOTICE #chat :to all")]),
        (1, "PRIVMSG alice :me", &[(1, ":alice!alice@127.0.0.1 PRIVMSG alice :me")]),
        (
            1,
            "PRIVMSG #chat,bob :both",
            &[(2, ":alice!alice@127.0.0.1 PRIVMSG #chat :both"), (2, ":alice!alice@127.0.0.1 PRIVMSG bob :both")],
        ),
        (1, ":spoofed!x@y PRIVMSG bob ::-)", &[(2, ":alice!alice@127.0.0.1 PRIVMSG bob ::-)")]),
        (
            2,
            "PART #chat :bye now",
            &[(1, ":bob!bob@10.0.0.2 PART #chat :bye now"), (2, ":bob!bob@10.0.0.2 PART #chat :bye now")],
        ),
        (2, "PART #chat", &[(2, ":irc.test 442 bob #chat :You're not on that channel")]),
        (2, "PRIVMSG #chat :outside", &[(2, ":irc.test 404 bob #chat :Cannot send to channel")]),
        (1, "PART #chat", &[(1, ":alice!alice@127.0.0.1 PART #chat")]),
        (1, "PART #chat", &[(1, ":irc.test 403 alice #chat :No such channel")]),
    ]);
    assert_eq!(h.hub.channel_count(), 0);
}

#[test]
fn join_lists_limits_and_join_0() {
    let mut h = two();
    h.script(&[
        (
            1,
            "JOIN #a,bad,,#b,#",
            &[
                (1, ":alice!alice@127.0.0.1 JOIN #a"),
                (1, ":irc.test 353 alice = #a :@alice"),
                (1, ":irc.test 366 alice #a :End of /NAMES list"),
                (1, ":irc.test 403 alice bad :No such channel"),
                (1, ":alice!alice@127.0.0.1 JOIN #b"),
                (1, ":irc.test 353 alice = #b :@alice"),
                (1, ":irc.test 366 alice #b :End of /NAMES list"),
                (1, ":irc.test 403 alice # :No such channel"),
            ],
        ),
        (
            1,
            "JOIN #c,#d",
            &[
                (1, ":alice!alice@127.0.0.1 JOIN #c"),
                (1, ":irc.test 353 alice = #c :@alice"),
                (1, ":irc.test 366 alice #c :End of /NAMES list"),
                (1, ":irc.test 405 alice #d :You have joined too many channels"),
            ],
        ),
        (
            2,
            "JOIN #b",
            &[
                (1, ":bob!bob@10.0.0.2 JOIN #b"),
                (2, ":bob!bob@10.0.0.2 JOIN #b"),
                (2, ":irc.test 353 bob = #b :@alice bob"),
                (2, ":irc.test 366 bob #b :End of /NAMES list"),
            ],
        ),
        (1, "JOIN", &[(1, ":irc.test 461 alice JOIN :Not enough parameters")]),
        (
            1,
            "JOIN 0",
            &[
                (1, ":alice!alice@127.0.0.1 PART #a"),
                (1, ":alice!alice@127.0.0.1 PART #b"),
                (2, ":alice!alice@127.0.0.1 PART #b"),
                (1, ":alice!alice@127.0.0.1 PART #c"),
            ],
        ),
    ]);
    assert_eq!(h.hub.channel_count(), 1);
}

#[test]
fn message_errors() {
    let mut h = two();
    h.send(1, "JOIN #chat");
    h.send(2, "JOIN #other");
    h.script(&[
        (1, "PRIVMSG nobody :hi", &[(1, ":irc.test 401 alice nobody :No such nick/channel")]),
        (1, "PRIVMSG #nowhere :hi", &[(1, ":irc.test 403 alice #nowhere :No such channel")]),
        (1, "PRIVMSG #other :hi", &[(1, ":irc.test 404 alice #other :Cannot send to channel")]),
        (1, "PRIVMSG", &[(1, ":irc.test 411 alice :No recipient given (PRIVMSG)")]),
        (1, "PRIVMSG bob", &[(1, ":irc.test 412 alice :No text to send")]),
        (1, "PRIVMSG bob :", &[(1, ":irc.test 412 alice :No text to send")]),
        (
            1,
            "PRIVMSG nobody,bob :hi",
            &[(1, ":irc.test 401 alice nobody :No such nick/channel"), (2, ":alice!alice@127.0.0.1 PRIVMSG bob :hi")],
        ),
        (
            1,
            "PRIVMSG bob,bob,bob,bob,bob :x",
            &[
                (2, ":alice!alice@127.0.0.1 PRIVMSG bob :x"),
                (2, ":alice!alice@127.0.0.1 PRIVMSG bob :x"),
                (2, ":alice!alice@127.0.0.1 PRIVMSG bob :x"),
                (2, ":alice!alice@127.0.0.1 PRIVMSG bob :x"),
                (1, ":irc.test 407 alice bob :Too many recipients"),
            ],
        ),
        // A NOTICE never causes an automatic reply.
        (1, "NOTICE nobody :hi", &[]),
        (1, "NOTICE #nowhere :hi", &[]),
        (1, "NOTICE #other :hi", &[]),
        (1, "NOTICE", &[]),
        (1, "NOTICE bob", &[]),
    ]);
    // An unregistered nick is not a recipient.
    h.connect(3, "10.0.0.3");
    h.send(3, "NICK carol");
    h.script(&[(1, "PRIVMSG carol :hi", &[(1, ":irc.test 401 alice carol :No such nick/channel")])]);
}

#[test]
fn unknown_command() {
    let mut h = two();
    h.script(&[
        (1, "FOO bar baz", &[(1, ":irc.test 421 alice FOO :Unknown command")]),
        (1, "frob bob", &[(1, ":irc.test 421 alice frob :Unknown command")]),
        (1, "@tag=1 :alice FOO", &[(1, ":irc.test 421 alice FOO :Unknown command")]),
        (1, ":alice", &[]),
    ]);
}

#[test]
fn nick_collision_and_changes() {
    let mut h = two();
    h.connect(3, "::1");
    h.script(&[
        (3, "NICK Alice", &[(3, ":irc.test 433 * Alice :Nickname is already in use")]),
        // rfc1459: [ ] \ are the upper case of { } | (and ~ of ^, but ~ is not valid in a nick)
        (3, "NICK {x}|^", &[]),
        (2, "NICK [X]\\^", &[(2, ":irc.test 433 bob [X]\\^ :Nickname is already in use")]),
        (2, "NICK a~", &[(2, ":irc.test 432 bob a~ :Erroneous nickname")]),
        (2, "NICK ALICE", &[(2, ":irc.test 433 bob ALICE :Nickname is already in use")]),
        (1, "NICK b@d", &[(1, ":irc.test 432 alice b@d :Erroneous nickname")]),
        (3, "NICK carol", &[]),
    ]);
    let got = h.send(3, "USER carol 0 * :carol Example");
    assert_eq!(got, welcome(3, "carol", CAROL));
    h.send(1, "JOIN #a,#b");
    h.send(2, "JOIN #a,#b");
    h.send(3, "JOIN #b");
    h.script(&[
        // To the changer first, then each channel peer once, in channel then join order.
        (
            1,
            "NICK Alicia",
            &[
                (1, ":alice!alice@127.0.0.1 NICK Alicia"),
                (2, ":alice!alice@127.0.0.1 NICK Alicia"),
                (3, ":alice!alice@127.0.0.1 NICK Alicia"),
            ],
        ),
        (1, "NICK Alicia", &[]),
        // A change of case only is a change.
        (
            1,
            "NICK alicia",
            &[
                (1, ":Alicia!alice@127.0.0.1 NICK alicia"),
                (2, ":Alicia!alice@127.0.0.1 NICK alicia"),
                (3, ":Alicia!alice@127.0.0.1 NICK alicia"),
            ],
        ),
        (
            3,
            "NICK alice",
            &[
                (3, ":carol!carol@0::1 NICK alice"),
                (1, ":carol!carol@0::1 NICK alice"),
                (2, ":carol!carol@0::1 NICK alice"),
            ],
        ),
        (2, "PRIVMSG alicia :new name", &[(1, ":bob!bob@10.0.0.2 PRIVMSG alicia :new name")]),
        (2, "PRIVMSG alice :old name", &[(3, ":bob!bob@10.0.0.2 PRIVMSG alice :old name")]),
        (
            2,
            "NAMES #b",
            &[(2, ":irc.test 353 bob = #b :@alicia bob alice"), (2, ":irc.test 366 bob #b :End of /NAMES list")],
        ),
    ]);
    // A nick changed before registration frees the old one.
    h.connect(4, "10.0.0.4");
    h.script(&[(4, "NICK dave", &[]), (4, "NICK dan", &[])]);
    h.connect(5, "10.0.0.5");
    h.script(&[(5, "NICK dave", &[]), (5, "NICK dan", &[(5, ":irc.test 433 dave dan :Nickname is already in use")])]);
}

#[test]
fn quit_is_broadcast_once_per_peer() {
    let mut h = two();
    h.register(3, "carol", "::1");
    h.send(1, "JOIN #a,#b");
    h.send(2, "JOIN #a,#b");
    h.send(3, "JOIN #b");
    h.script(&[(
        1,
        "QUIT :see you",
        &[
            (2, ":alice!alice@127.0.0.1 QUIT :Quit: see you"),
            (3, ":alice!alice@127.0.0.1 QUIT :Quit: see you"),
            (1, "ERROR :Closing Link: 127.0.0.1 (Quit: see you)"),
            (1, CLOSE),
        ],
    )]);
    // The shell then sees the connection end: nothing more.
    assert_eq!(h.disconnected(1, "Connection closed"), vec![]);
    assert_eq!(h.send(1, "PRIVMSG bob :ghost"), vec![]);
    // An abrupt disconnect is a QUIT with the shell's reason.
    assert_eq!(
        h.disconnected(2, "Connection reset by peer"),
        exp(&[(3, ":bob!bob@10.0.0.2 QUIT :Connection reset by peer")])
    );
    assert_eq!(h.disconnected(2, "Connection reset by peer"), vec![]);
    h.script(&[
        (
            3,
            "NAMES #a,#b",
            &[
                (3, ":irc.test 366 carol #a :End of /NAMES list"),
                (3, ":irc.test 353 carol = #b :carol"),
                (3, ":irc.test 366 carol #b :End of /NAMES list"),
            ],
        ),
        (3, "QUIT", &[(3, "ERROR :Closing Link: 0::1 (Client Quit)"), (3, CLOSE)]),
    ]);
    assert_eq!((h.hub.client_count(), h.hub.channel_count()), (0, 0));
    // A shell-side close (e.g. a ping timeout) of an unregistered client.
    h.connect(4, "10.0.0.4");
    h.hub.close(ClientId(4), "Registration timeout", &mut h.out);
    assert_eq!(h.take(), exp(&[(4, "ERROR :Closing Link: 10.0.0.4 (Registration timeout)"), (4, CLOSE)]));
}

#[test]
fn overlong_and_invalid_lines() {
    let mut h = two();
    h.send(1, "JOIN #chat");
    h.send(2, "JOIN #chat");
    let mut data = b"PRIVMSG #chat :".to_vec();
    data.extend(std::iter::repeat_n(b'x', 600 - data.len()));
    data.extend_from_slice(b"\r\nPRIVMSG #chat :after\r\n");
    assert_eq!(
        h.bytes(1, &data),
        exp(
            &[(1, ":irc.test 417 alice :Input line was too long"), (2, ":alice!alice@127.0.0.1 PRIVMSG #chat :after"),]
        )
    );
    assert_eq!(
        h.bytes(1, b"PRIVMSG #chat :caf\xe9\r\nPRIVMSG #chat :caf\xc3\xa9\r\n"),
        exp(&[
            (1, ":irc.test NOTICE alice :Line dropped: it is not valid UTF-8"),
            (2, ":alice!alice@127.0.0.1 PRIVMSG #chat :café"),
        ])
    );
    assert_eq!(
        h.bytes(1, b"PRIVMSG #chat :a\rb\n"),
        exp(&[(1, ":irc.test NOTICE alice :Line dropped: it contains a NUL or CR")])
    );
    h.connect(3, "10.0.0.3");
    assert_eq!(h.bytes(3, &[b'y'; 600]), exp(&[(3, ":irc.test 417 * :Input line was too long")]));
}

#[test]
fn relayed_lines_are_cut_to_512_bytes() {
    let mut h = two();
    // The longest line a client may send: 510 bytes + CRLF.
    let text = "é".repeat(248);
    let line = format!("PRIVMSG bob :{text}");
    assert_eq!(line.len(), 509);
    let got = h.send(1, &line);
    // 36 bytes of prefix and command, then 237 whole characters (474 bytes).
    let want = format!(":{ALICE} PRIVMSG bob :{}", "é".repeat(237));
    assert_eq!(want.len(), 510);
    assert_eq!(got, vec![(2, want)]);
}

#[test]
fn topic_names_who_list_motd() {
    let mut h = two();
    h.send(1, "JOIN #chat");
    h.send(2, "JOIN #chat");
    h.send(2, "JOIN #quiet");
    h.script(&[
        (1, "TOPIC #chat", &[(1, ":irc.test 331 alice #chat :No topic is set")]),
        (
            1,
            "TOPIC #chat :Rust and sockets",
            &[
                (1, ":alice!alice@127.0.0.1 TOPIC #chat :Rust and sockets"),
                (2, ":alice!alice@127.0.0.1 TOPIC #chat :Rust and sockets"),
            ],
        ),
        (
            2,
            "topic #CHAT",
            &[
                (2, ":irc.test 332 bob #chat :Rust and sockets"),
                (2, ":irc.test 333 bob #chat alice!alice@127.0.0.1 1700000100"),
            ],
        ),
        (1, "TOPIC #quiet :mine", &[(1, ":irc.test 442 alice #quiet :You're not on that channel")]),
        (1, "TOPIC #none", &[(1, ":irc.test 403 alice #none :No such channel")]),
        (1, "TOPIC", &[(1, ":irc.test 461 alice TOPIC :Not enough parameters")]),
        (
            1,
            "NAMES #chat,#none",
            &[
                (1, ":irc.test 353 alice = #chat :@alice bob"),
                (1, ":irc.test 366 alice #chat :End of /NAMES list"),
                (1, ":irc.test 366 alice #none :End of /NAMES list"),
            ],
        ),
        (1, "NAMES", &[(1, ":irc.test 366 alice * :End of /NAMES list")]),
        (
            1,
            "WHO #chat",
            &[
                (1, ":irc.test 352 alice #chat alice 127.0.0.1 irc.test alice H@ :0 alice Example"),
                (1, ":irc.test 352 alice #chat bob 10.0.0.2 irc.test bob H :0 bob Example"),
                (1, ":irc.test 315 alice #chat :End of WHO list"),
            ],
        ),
        (
            1,
            "WHO BOB",
            &[
                (1, ":irc.test 352 alice * bob 10.0.0.2 irc.test bob H :0 bob Example"),
                (1, ":irc.test 315 alice BOB :End of WHO list"),
            ],
        ),
        (1, "WHO nobody", &[(1, ":irc.test 315 alice nobody :End of WHO list")]),
        (1, "WHO", &[(1, ":irc.test 315 alice * :End of WHO list")]),
        (
            1,
            "LIST",
            &[
                (1, ":irc.test 321 alice Channel :Users  Name"),
                (1, ":irc.test 322 alice #chat 2 :Rust and sockets"),
                (1, ":irc.test 322 alice #quiet 1 :"),
                (1, ":irc.test 323 alice :End of /LIST"),
            ],
        ),
        (
            1,
            "LIST #quiet,#none",
            &[
                (1, ":irc.test 321 alice Channel :Users  Name"),
                (1, ":irc.test 322 alice #quiet 1 :"),
                (1, ":irc.test 323 alice :End of /LIST"),
            ],
        ),
        (
            1,
            "MOTD",
            &[
                (1, ":irc.test 375 alice :- irc.test Message of the Day -"),
                (1, ":irc.test 372 alice :- Be nice."),
                (1, ":irc.test 372 alice :- Have fun."),
                (1, ":irc.test 376 alice :End of /MOTD command."),
            ],
        ),
        // An empty topic clears it.
        (2, "TOPIC #chat :", &[(2, ":irc.test 482 bob #chat :You're not channel operator")]),
        (
            1,
            "TOPIC #chat :",
            &[(1, ":alice!alice@127.0.0.1 TOPIC #chat :"), (2, ":alice!alice@127.0.0.1 TOPIC #chat :")],
        ),
        (2, "TOPIC #chat", &[(2, ":irc.test 331 bob #chat :No topic is set")]),
    ]);
    // A joiner sees the topic before the names.
    h.send(1, "TOPIC #chat :again");
    h.register(3, "carol", "::1");
    h.script(&[(
        3,
        "JOIN #chat",
        &[
            (1, ":carol!carol@0::1 JOIN #chat"),
            (2, ":carol!carol@0::1 JOIN #chat"),
            (3, ":carol!carol@0::1 JOIN #chat"),
            (3, ":irc.test 332 carol #chat :again"),
            (3, ":irc.test 333 carol #chat alice!alice@127.0.0.1 1700000100"),
            (3, ":irc.test 353 carol = #chat :@alice bob carol"),
            (3, ":irc.test 366 carol #chat :End of /NAMES list"),
        ],
    )]);
}

#[test]
fn no_motd_is_422() {
    let mut h = H::with(HubConfig { motd: None, ..config() });
    h.connect(1, "127.0.0.1");
    h.send(1, "NICK alice");
    let got = h.send(1, "USER alice 0 * :A");
    assert_eq!(got.len(), 6);
    assert_eq!(got[5], (1, ":irc.test 422 alice :MOTD File is missing".to_owned()));
}

#[test]
fn mode_queries() {
    let mut h = two();
    h.send(1, "JOIN #chat");
    h.script(&[
        (1, "MODE #chat", &[(1, ":irc.test 324 alice #chat +nt"), (1, ":irc.test 329 alice #chat 1700000100")]),
        (1, "MODE #chat b", &[(1, ":irc.test 368 alice #chat :End of channel ban list")]),
        (2, "MODE #chat +o bob", &[(2, ":irc.test 482 bob #chat :You're not channel operator")]),
        (1, "MODE #none", &[(1, ":irc.test 403 alice #none :No such channel")]),
        (1, "MODE alice", &[(1, ":irc.test 221 alice +")]),
        (1, "MODE alice +i", &[(1, ":alice MODE alice :+i")]),
        (1, "MODE alice +i", &[]),
        (1, "MODE alice", &[(1, ":irc.test 221 alice +i")]),
        (1, "MODE alice +x", &[(1, ":irc.test 501 alice :Unknown MODE flag")]),
        (1, "MODE bob", &[(1, ":irc.test 502 alice :Can't change mode for other users")]),
        (1, "MODE nobody", &[(1, ":irc.test 401 alice nobody :No such nick/channel")]),
        (1, "MODE", &[(1, ":irc.test 461 alice MODE :Not enough parameters")]),
    ]);
}

#[test]
fn names_are_split_to_fit_512_bytes() {
    let mut h = H::new();
    let mut nicks = Vec::new();
    for id in 0..40u64 {
        let nick = format!("n{id:02}{}", "x".repeat(26));
        h.register(id, &nick, "127.0.0.1");
        h.send(id, "JOIN #big");
        nicks.push(nick);
    }
    let got = h.send(0, "NAMES #big");
    let mut listed = Vec::new();
    for (to, line) in &got[..got.len() - 1] {
        assert_eq!(*to, 0);
        let names = line.strip_prefix(&format!(":irc.test 353 {} = #big :", nicks[0])).expect("a 353 line");
        listed.extend(names.split(' ').map(str::to_owned));
    }
    nicks[0].insert(0, '@');
    assert_eq!(listed, nicks);
    assert!(got.len() > 3, "{} lines", got.len());
    // A message to the channel reaches the 39 others, in join order.
    let got = h.send(5, "PRIVMSG #big :hi");
    let order: Vec<u64> = got.iter().map(|(to, _)| *to).collect();
    assert_eq!(order, (0..40).filter(|&i| i != 5).collect::<Vec<_>>());
}

#[test]
fn a_broadcast_shares_one_line() {
    let mut h = two();
    h.send(1, "JOIN #chat");
    h.send(2, "JOIN #chat");
    h.register(3, "carol", "::1");
    h.send(3, "JOIN #chat");
    h.take();
    h.hub.handle_line(ClientId(1), "PRIVMSG #chat :shared", NOW, &mut h.out);
    let [a, b] = &h.out.deliveries[..] else { panic!("{:?}", h.out.deliveries) };
    assert!(Arc::ptr_eq(&a.line, &b.line));
    assert_eq!(h.hub.ping_line().as_ref(), "PING :irc.test\r\n");
    assert_eq!(h.hub.shutdown_line().as_ref(), "ERROR :Server shutting down\r\n");
    assert!(!h.hub.connect(ClientId(1), "127.0.0.1"));
    assert_eq!(h.hub.nick(ClientId(3)), Some("carol"));
}

pub(super) mod commands;
