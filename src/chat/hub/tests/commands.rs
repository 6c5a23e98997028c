//! The commands IRC users reach for, as exact lines: channel operators
//! and modes, KICK, INVITE, bans, keys and limits, WHOIS and WHOWAS,
//! USERHOST, ISON, AWAY, LUSERS, the server queries, OPER and KILL.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};

use super::*;

/// An argon2id hash of `password`, cheap to verify (tests only).
pub(crate) fn cheap_hash(password: &str) -> String {
    let params = Params::new(8, 1, 1, None).expect("params");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    argon.hash_password(password.as_bytes()).expect("hash").to_string()
}

/// alice (1) opened #chat, bob (2) joined it.
fn chat() -> H {
    let mut h = two();
    h.send(1, "JOIN #chat");
    h.send(2, "JOIN #chat");
    h
}

#[test]
fn the_first_member_is_operator_and_gives_ops_and_voice() {
    let mut h = chat();
    h.script(&[
        (
            2,
            "NAMES #chat",
            &[(2, ":irc.test 353 bob = #chat :@alice bob"), (2, ":irc.test 366 bob #chat :End of /NAMES list")],
        ),
        (2, "MODE #chat +v bob", &[(2, ":irc.test 482 bob #chat :You're not channel operator")]),
        (
            1,
            "MODE #chat +ov bob bob",
            &[
                (1, ":alice!alice@127.0.0.1 MODE #chat +ov bob bob"),
                (2, ":alice!alice@127.0.0.1 MODE #chat +ov bob bob"),
            ],
        ),
        // Already set: nothing to say.
        (1, "MODE #chat +o bob", &[]),
        (
            2,
            "NAMES #chat",
            &[(2, ":irc.test 353 bob = #chat :@alice @bob"), (2, ":irc.test 366 bob #chat :End of /NAMES list")],
        ),
        (
            2,
            "MODE #chat -o+x alice",
            &[
                (2, ":irc.test 472 bob x :is unknown mode char to me"),
                (1, ":bob!bob@10.0.0.2 MODE #chat -o alice"),
                (2, ":bob!bob@10.0.0.2 MODE #chat -o alice"),
            ],
        ),
        (2, "MODE #chat +o carol", &[(2, ":irc.test 401 bob carol :No such nick/channel")]),
    ]);
    h.hub.set_multi_prefix(ClientId(1), true);
    h.script(&[
        (
            1,
            "NAMES #chat",
            &[(1, ":irc.test 353 alice = #chat :alice @+bob"), (1, ":irc.test 366 alice #chat :End of /NAMES list")],
        ),
        (
            1,
            "WHO #chat",
            &[
                (1, ":irc.test 352 alice #chat alice 127.0.0.1 irc.test alice H :0 alice Example"),
                (1, ":irc.test 352 alice #chat bob 10.0.0.2 irc.test bob H@+ :0 bob Example"),
                (1, ":irc.test 315 alice #chat :End of WHO list"),
            ],
        ),
    ]);
    h.hub.check();
}

#[test]
fn flags_key_and_limit_are_set_shown_and_enforced() {
    let mut h = chat();
    h.register(3, "carol", "10.0.0.3");
    h.script(&[
        (
            1,
            "MODE #chat +imsk-t+l sesame 2",
            &[
                (1, ":alice!alice@127.0.0.1 MODE #chat +imsk-t+l sesame 2"),
                (2, ":alice!alice@127.0.0.1 MODE #chat +imsk-t+l sesame 2"),
            ],
        ),
        (
            2,
            "MODE #chat",
            &[(2, ":irc.test 324 bob #chat +imnskl sesame 2"), (2, ":irc.test 329 bob #chat 1700000100")],
        ),
        (3, "MODE #chat", &[(3, ":irc.test 324 carol #chat +imnskl * 2"), (3, ":irc.test 329 carol #chat 1700000100")]),
        (3, "JOIN #chat", &[(3, ":irc.test 473 carol #chat :Cannot join channel (+i)")]),
        // +m: bob (no voice) may not speak; -t: he may set the topic.
        (2, "PRIVMSG #chat :hi", &[(2, ":irc.test 404 bob #chat :Cannot send to channel")]),
        (2, "TOPIC #chat :t", &[(1, ":bob!bob@10.0.0.2 TOPIC #chat :t"), (2, ":bob!bob@10.0.0.2 TOPIC #chat :t")]),
        // +s: hidden from outsiders.
        (3, "LIST", &[(3, ":irc.test 321 carol Channel :Users  Name"), (3, ":irc.test 323 carol :End of /LIST")]),
        (3, "TOPIC #chat", &[(3, ":irc.test 442 carol #chat :You're not on that channel")]),
        (3, "NAMES #chat", &[(3, ":irc.test 366 carol #chat :End of /NAMES list")]),
    ]);
    h.script_owned(3, "WHOIS alice", &whois_alice(3, "carol", None));
    h.script(&[
        (
            1,
            "MODE #chat -imsk+t *",
            &[(1, ":alice!alice@127.0.0.1 MODE #chat -imsk+t *"), (2, ":alice!alice@127.0.0.1 MODE #chat -imsk+t *")],
        ),
        (3, "JOIN #chat", &[(3, ":irc.test 471 carol #chat :Cannot join channel (+l)")]),
        (
            1,
            "MODE #chat -l+k sesame",
            &[
                (1, ":alice!alice@127.0.0.1 MODE #chat -l+k sesame"),
                (2, ":alice!alice@127.0.0.1 MODE #chat -l+k sesame"),
            ],
        ),
        (3, "JOIN #chat wrong", &[(3, ":irc.test 475 carol #chat :Cannot join channel (+k)")]),
        (
            3,
            "JOIN #chat sesame",
            &[
                (1, ":carol!carol@10.0.0.3 JOIN #chat"),
                (2, ":carol!carol@10.0.0.3 JOIN #chat"),
                (3, ":carol!carol@10.0.0.3 JOIN #chat"),
                (3, ":irc.test 332 carol #chat :t"),
                (3, ":irc.test 333 carol #chat bob!bob@10.0.0.2 1700000100"),
                (3, ":irc.test 353 carol = #chat :@alice bob carol"),
                (3, ":irc.test 366 carol #chat :End of /NAMES list"),
            ],
        ),
    ]);
    h.hub.check();
}

/// WHOIS alice as seen by `id`, with her channels line if any.
fn whois_alice(id: u64, nick: &str, channels: Option<&str>) -> Vec<(u64, String)> {
    let mut lines = vec![(id, format!(":irc.test 311 {nick} alice alice 127.0.0.1 * :alice Example"))];
    if let Some(channels) = channels {
        lines.push((id, format!(":irc.test 319 {nick} alice :{channels}")));
    }
    lines.push((id, format!(":irc.test 312 {nick} alice irc.test :trident chat server")));
    lines.push((id, format!(":irc.test 317 {nick} alice 0 1700000100 :seconds idle, signon time")));
    lines.push((id, format!(":irc.test 318 {nick} alice :End of /WHOIS list")));
    lines
}

impl H {
    fn script_owned(&mut self, id: u64, input: &str, want: &[(u64, String)]) {
        assert_eq!(self.send(id, input), want.to_vec(), "{id} sends {input:?}");
    }
}

#[test]
fn bans_match_masks_list_and_are_bounded() {
    let mut h = H::with(HubConfig { max_bans: 2, ..config() });
    for (id, nick, host) in [(1, "alice", "127.0.0.1"), (2, "bob", "10.0.0.2")] {
        h.connect(id, host);
        h.send(id, &format!("NICK {nick}"));
        assert!(h.send(id, &format!("USER {nick} 0 * :{nick}"))[4].1.contains(" MAXLIST=b:2 "));
    }
    h.send(1, "JOIN #chat");
    h.script(&[
        (
            1,
            "MODE #chat +bb *@10.0.0.* Mallory",
            &[(1, ":alice!alice@127.0.0.1 MODE #chat +bb *!*@10.0.0.* mallory!*@*")],
        ),
        (1, "MODE #chat +b eve", &[(1, ":irc.test 478 alice #chat eve!*@* :Channel ban list is full")]),
        (
            2,
            "MODE #chat b",
            &[
                (2, ":irc.test 367 bob #chat *!*@10.0.0.* alice!alice@127.0.0.1 1700000100"),
                (2, ":irc.test 367 bob #chat mallory!*@* alice!alice@127.0.0.1 1700000100"),
                (2, ":irc.test 368 bob #chat :End of channel ban list"),
            ],
        ),
        (2, "JOIN #chat", &[(2, ":irc.test 474 bob #chat :Cannot join channel (+b)")]),
        (
            1,
            "INVITE bob #chat",
            &[(1, ":irc.test 341 alice bob #chat"), (2, ":alice!alice@127.0.0.1 INVITE bob #chat")],
        ),
    ]);
    // The invitation lets bob past the ban once; banned, he may not speak.
    let got = h.send(2, "JOIN #chat");
    assert_eq!(got[0], (1, ":bob!bob@10.0.0.2 JOIN #chat".to_owned()));
    h.script(&[
        (2, "PRIVMSG #chat :let me", &[(2, ":irc.test 404 bob #chat :Cannot send to channel")]),
        (
            1,
            "MODE #chat -b *@10.0.0.*",
            &[
                (1, ":alice!alice@127.0.0.1 MODE #chat -b *!*@10.0.0.*"),
                (2, ":alice!alice@127.0.0.1 MODE #chat -b *!*@10.0.0.*"),
            ],
        ),
        (2, "PRIVMSG #chat :thanks", &[(1, ":bob!bob@10.0.0.2 PRIVMSG #chat :thanks")]),
    ]);
    h.hub.check();
}

#[test]
fn a_secret_channels_bans_are_not_listed_to_outsiders() {
    let mut h = two();
    h.send(1, "JOIN #hide");
    h.send(1, "MODE #hide +sb mallory");
    h.script(&[
        (2, "MODE #hide b", &[(2, ":irc.test 368 bob #hide :End of channel ban list")]),
        (
            1,
            "MODE #hide b",
            &[
                (1, ":irc.test 367 alice #hide mallory!*@* alice!alice@127.0.0.1 1700000100"),
                (1, ":irc.test 368 alice #hide :End of channel ban list"),
            ],
        ),
        (1, "MODE #hide -s", &[(1, ":alice!alice@127.0.0.1 MODE #hide -s")]),
        (
            2,
            "MODE #hide +b",
            &[
                (2, ":irc.test 367 bob #hide mallory!*@* alice!alice@127.0.0.1 1700000100"),
                (2, ":irc.test 368 bob #hide :End of channel ban list"),
            ],
        ),
    ]);
}

#[test]
fn kick_and_invite() {
    let mut h = chat();
    h.register(3, "carol", "10.0.0.3");
    h.script(&[
        (2, "KICK #chat alice", &[(2, ":irc.test 482 bob #chat :You're not channel operator")]),
        (3, "KICK #chat bob", &[(3, ":irc.test 442 carol #chat :You're not on that channel")]),
        (1, "KICK #chat carol", &[(1, ":irc.test 441 alice carol #chat :They aren't on that channel")]),
        (1, "KICK #none bob", &[(1, ":irc.test 403 alice #none :No such channel")]),
        (1, "KICK #chat", &[(1, ":irc.test 461 alice KICK :Not enough parameters")]),
        (
            1,
            "KICK #chat bob :behave",
            &[
                (1, ":alice!alice@127.0.0.1 KICK #chat bob :behave"),
                (2, ":alice!alice@127.0.0.1 KICK #chat bob :behave"),
            ],
        ),
        (2, "PRIVMSG #chat :hey", &[(2, ":irc.test 404 bob #chat :Cannot send to channel")]),
        (
            1,
            "INVITE carol #chat",
            &[(1, ":irc.test 341 alice carol #chat"), (3, ":alice!alice@127.0.0.1 INVITE carol #chat")],
        ),
        (1, "INVITE alice #chat", &[(1, ":irc.test 443 alice alice #chat :is already on channel")]),
        (2, "INVITE carol #chat", &[(2, ":irc.test 442 bob #chat :You're not on that channel")]),
        (1, "INVITE nobody #chat", &[(1, ":irc.test 401 alice nobody :No such nick/channel")]),
        (1, "MODE #chat +i", &[(1, ":alice!alice@127.0.0.1 MODE #chat +i")]),
        (2, "JOIN #chat", &[(2, ":irc.test 473 bob #chat :Cannot join channel (+i)")]),
        (1, "KICK #chat alice", &[(1, ":alice!alice@127.0.0.1 KICK #chat alice :alice")]),
    ]);
    assert_eq!(h.hub.channel_count(), 0);
    // carol's invitation was to the channel that is gone, not to a new
    // one of the same name.
    h.send(1, "JOIN #chat");
    h.send(1, "MODE #chat +i");
    h.script(&[(3, "JOIN #chat", &[(3, ":irc.test 473 carol #chat :Cannot join channel (+i)")])]);
    h.hub.check();
}

#[test]
fn whois_whowas_userhost_ison_and_away() {
    let mut h = chat();
    let later = NOW + 42;
    h.hub.handle_line(ClientId(1), "PRIVMSG bob :hi", later, &mut h.out);
    h.take();
    h.script_owned(
        2,
        "WHOIS nobody",
        &[
            (2, ":irc.test 401 bob nobody :No such nick/channel".to_owned()),
            (2, ":irc.test 318 bob nobody :End of /WHOIS list".to_owned()),
        ],
    );
    h.script(&[
        (2, "AWAY :lunch", &[(2, ":irc.test 306 bob :You have been marked as being away")]),
        (
            1,
            "PRIVMSG bob :back?",
            &[(2, ":alice!alice@127.0.0.1 PRIVMSG bob :back?"), (1, ":irc.test 301 alice bob :lunch")],
        ),
        (1, "NOTICE bob :fyi", &[(2, ":alice!alice@127.0.0.1 NOTICE bob :fyi")]),
        (
            1,
            "WHOIS irc.test BOB",
            &[
                (1, ":irc.test 311 alice bob bob 10.0.0.2 * :bob Example"),
                (1, ":irc.test 319 alice bob :#chat"),
                (1, ":irc.test 312 alice bob irc.test :trident chat server"),
                (1, ":irc.test 301 alice bob :lunch"),
                (1, ":irc.test 317 alice bob 42 1700000100 :seconds idle, signon time"),
                (1, ":irc.test 318 alice bob :End of /WHOIS list"),
            ],
        ),
        (1, "USERHOST bob alice nobody", &[(1, ":irc.test 302 alice :bob=-bob@10.0.0.2 alice=+alice@127.0.0.1")]),
        (1, "ISON Bob nobody :alice", &[(1, ":irc.test 303 alice :bob alice")]),
        (2, "AWAY", &[(2, ":irc.test 305 bob :You are no longer marked as being away")]),
        (
            1,
            "WHO bob",
            &[
                (1, ":irc.test 352 alice * bob 10.0.0.2 irc.test bob H :0 bob Example"),
                (1, ":irc.test 315 alice bob :End of WHO list"),
            ],
        ),
        (2, "NICK robert", &[(2, ":bob!bob@10.0.0.2 NICK robert"), (1, ":bob!bob@10.0.0.2 NICK robert")]),
        (
            1,
            "WHOWAS bob",
            &[
                (1, ":irc.test 314 alice bob bob 10.0.0.2 * :bob Example"),
                (1, ":irc.test 312 alice bob irc.test :Tue, 14 Nov 2023 22:15:42 GMT"),
                (1, ":irc.test 369 alice bob :End of WHOWAS"),
            ],
        ),
        (
            1,
            "WHOWAS carol",
            &[
                (1, ":irc.test 406 alice carol :There was no such nickname"),
                (1, ":irc.test 369 alice carol :End of WHOWAS"),
            ],
        ),
    ]);
    h.script_owned(1, "WHOIS alice", &whois_alice(1, "alice", Some("@#chat")));
    h.hub.check();
}

#[test]
fn whowas_is_bounded_newest_first() {
    let mut h = H::with(HubConfig { whowas: 2, ..config() });
    h.register(1, "alice", "127.0.0.1");
    for nick in ["a1", "a2", "a3"] {
        h.send(1, &format!("NICK {nick}"));
    }
    h.script(&[
        (
            1,
            "WHOWAS alice",
            &[(1, ":irc.test 406 a3 alice :There was no such nickname"), (1, ":irc.test 369 a3 alice :End of WHOWAS")],
        ),
        (
            1,
            "WHOWAS a2 1",
            &[
                (1, ":irc.test 314 a3 a2 alice 127.0.0.1 * :alice Example"),
                (1, ":irc.test 312 a3 a2 irc.test :Tue, 14 Nov 2023 22:15:00 GMT"),
                (1, ":irc.test 369 a3 a2 :End of WHOWAS"),
            ],
        ),
    ]);
    h.hub.check();
}

#[test]
fn lusers_and_server_queries() {
    let mut h = chat();
    h.connect(3, "10.0.0.3");
    h.send(2, "MODE bob +i");
    h.script(&[
        (
            1,
            "LUSERS",
            &[
                (1, ":irc.test 251 alice :There are 1 users and 1 invisible on 1 servers"),
                (1, ":irc.test 253 alice 1 :unknown connection(s)"),
                (1, ":irc.test 254 alice 1 :channels formed"),
                (1, ":irc.test 255 alice :I have 2 clients and 0 servers"),
                (1, ":irc.test 265 alice 2 2 :Current local users 2, max 2"),
                (1, ":irc.test 266 alice 2 2 :Current global users 2, max 2"),
            ],
        ),
        (1, "TIME", &[(1, ":irc.test 391 alice irc.test :Tue, 14 Nov 2023 22:15:00 GMT")]),
        (
            1,
            "ADMIN",
            &[
                (1, ":irc.test 256 alice irc.test :Administrative info"),
                (1, ":irc.test 257 alice :irc.test, a TestNet server"),
                (1, &format!(":irc.test 258 alice :{VERSION}, trident chat server")),
                (1, ":irc.test 259 alice :No contact address is configured"),
            ],
        ),
        (3, "LUSERS", &[(3, ":irc.test 451 * :You have not registered")]),
    ]);
    let version = h.send(1, "VERSION");
    assert_eq!(
        version,
        exp(&[(1, &format!(":irc.test 351 alice {VERSION} irc.test :sans-IO IRC core, three engines"))])
    );
    let info = h.send(1, "INFO");
    assert_eq!(info.last(), Some(&(1, ":irc.test 374 alice :End of /INFO list".to_owned())));
    assert!(info[..info.len() - 1].iter().all(|(_, l)| l.starts_with(":irc.test 371 alice :")), "{info:?}");
}

#[test]
fn oper_and_kill() {
    let opers = vec![OperConfig { name: "root".into(), hash: cheap_hash("hunter2") }];
    let mut h = H::with(HubConfig { opers, ..config() });
    h.register(1, "alice", "127.0.0.1");
    h.register(2, "bob", "10.0.0.2");
    h.register(3, "carol", "10.0.0.3");
    h.send(1, "JOIN #chat");
    h.send(2, "JOIN #chat");
    h.script(&[
        (1, "KILL bob", &[(1, ":irc.test 481 alice :Permission Denied- You're not an IRC operator")]),
        (1, "OPER root", &[(1, ":irc.test 461 alice OPER :Not enough parameters")]),
        (
            1,
            "OPER root hunter2",
            &[(1, ":irc.test 381 alice :You are now an IRC operator"), (1, ":alice MODE alice :+o")],
        ),
        (1, "MODE alice", &[(1, ":irc.test 221 alice +o")]),
        (3, "OPER root wrong", &[(3, ":irc.test 464 carol :Password incorrect")]),
        // Another try at once waits, even with the right password.
        (3, "OPER root hunter2", &[(3, ":irc.test 263 carol OPER :Please wait a while and try again.")]),
        (3, "OPER nobody hunter2", &[(3, ":irc.test 263 carol OPER :Please wait a while and try again.")]),
        (3, "USERHOST alice", &[(3, ":irc.test 302 carol :alice*=+alice@127.0.0.1")]),
        (1, "KILL nobody", &[(1, ":irc.test 401 alice nobody :No such nick/channel")]),
        (
            1,
            "KILL bob :spamming",
            &[
                (1, ":bob!bob@10.0.0.2 QUIT :Killed (alice (spamming))"),
                (2, "ERROR :Closing Link: 10.0.0.2 (Killed (alice (spamming)))"),
                (2, CLOSE),
            ],
        ),
        (1, "MODE alice -o", &[(1, ":alice MODE alice :-o")]),
        (1, "KILL carol", &[(1, ":irc.test 481 alice :Permission Denied- You're not an IRC operator")]),
    ]);
    h.hub.check();
}

#[test]
fn the_opers_file_is_checked() {
    let hash = cheap_hash("pw");
    let text = format!("# operators\n\nroot {hash}\n  admin   {hash}  \n");
    let opers = parse_opers(&text).expect("valid");
    assert_eq!(opers.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["root", "admin"]);
    assert_eq!(parse_opers("root").unwrap_err(), "line 1: expected NAME ARGON2ID-HASH");
    assert!(parse_opers("root plain-text").unwrap_err().starts_with("line 1: the hash of root is not a PHC string"));
    let argon2i = hash.replacen("$argon2id$", "$argon2i$", 1);
    assert_eq!(parse_opers(&format!("root {argon2i}")).unwrap_err(), "line 1: the hash of root is not argon2id");
    assert_eq!(parse_opers(&format!("a {hash}\na {hash}")).unwrap_err(), "line 2: a is listed twice");
}

#[test]
fn a_client_record_keeps_its_rare_parts_out_of_line() {
    // Every connection holds one; away, invitations and a failed OPER
    // are boxed apart (248 bytes before they were).
    let size = std::mem::size_of::<super::super::state::Client>();
    assert!(size <= 200, "a Client is {size} bytes");
}
