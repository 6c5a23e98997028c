//! The commands IRC users send, against `trident chat serve` on every
//! engine over real sockets, with exact replies: channel operators and
//! modes, KICK, INVITE, bans and keys, WHOIS, WHOWAS, AWAY, USERHOST,
//! ISON, LUSERS, OPER (from an `--opers` file) and KILL.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::chat_harness::{ChatServer, Irc, pair};
use crate::engine_tests;
use crate::util::{run, stderr};

const SRV: &str = ":irc.trident.local";

/// What `line` brings back to its sender (everything up to a PONG).
fn ask(c: &mut Irc, line: &str) -> Vec<String> {
    c.send(line);
    c.sync("done")
}

/// What reached `c` since the last look.
fn heard(c: &mut Irc) -> Vec<String> {
    c.sync("heard")
}

/// An `--opers` file with `root` / `hunter2`, hashed by Debian's argon2
/// tool as `chat serve --help` says (cheap parameters: -t 1 -m 10).
fn opers_file(dir: &tempfile::TempDir) -> String {
    let mut argon2 = Command::new("argon2")
        .args(["somesaltsalt", "-id", "-t", "1", "-m", "10", "-e"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("Debian's argon2 tool (scripts/test installs it)");
    argon2.stdin.take().expect("stdin").write_all(b"hunter2").expect("write the password");
    let out = argon2.wait_with_output().expect("argon2");
    assert!(out.status.success(), "argon2: {out:?}");
    let hash = String::from_utf8(out.stdout).expect("UTF-8");
    let path = dir.path().join("opers");
    std::fs::write(&path, format!("# name hash\nroot {}\n", hash.trim())).expect("write the opers file");
    path.to_string_lossy().into_owned()
}

engine_tests! {
    fn operators_modes_kick_and_invite(engine) {
        let server = ChatServer::start(engine, &[]);
        let (mut alice, mut bob) = pair(&server);
        let mut carol = server.client("carol");
        assert_eq!(ask(&mut bob, "NAMES #room"), [
            format!("{SRV} 353 bob = #room :@alice bob"),
            format!("{SRV} 366 bob #room :End of /NAMES list"),
        ]);
        assert_eq!(ask(&mut bob, "MODE #room +m"), [format!("{SRV} 482 bob #room :You're not channel operator")]);
        assert_eq!(ask(&mut alice, "MODE #room +miv bob"), [":alice!alice@127.0.0.1 MODE #room +miv bob"]);
        assert_eq!(heard(&mut bob), [":alice!alice@127.0.0.1 MODE #room +miv bob"]);
        let modes = ask(&mut alice, "MODE #room");
        assert_eq!(modes[0], format!("{SRV} 324 alice #room +imnt"));
        assert!(modes[1].starts_with(&format!("{SRV} 329 alice #room 1")), "{modes:?}");
        assert_eq!(ask(&mut carol, "JOIN #room"), [format!("{SRV} 473 carol #room :Cannot join channel (+i)")]);
        assert_eq!(ask(&mut alice, "INVITE carol #room"), [format!("{SRV} 341 alice carol #room")]);
        assert_eq!(heard(&mut carol), [":alice!alice@127.0.0.1 INVITE carol #room"]);
        let joined = ask(&mut carol, "JOIN #room");
        assert_eq!(joined[0], ":carol!carol@127.0.0.1 JOIN #room");
        assert_eq!(joined[1], format!("{SRV} 353 carol = #room :@alice +bob carol"));
        // +m: carol may not speak, voiced bob may.
        assert_eq!(ask(&mut carol, "PRIVMSG #room :hello?"), [format!("{SRV} 404 carol #room :Cannot send to channel")]);
        bob.send("PRIVMSG #room :I have a voice");
        assert_eq!(carol.expect("voice"), ":bob!bob@127.0.0.1 PRIVMSG #room :I have a voice");
        assert_eq!(ask(&mut alice, "KICK #room carol :too quiet"), [
            ":carol!carol@127.0.0.1 JOIN #room",
            ":bob!bob@127.0.0.1 PRIVMSG #room :I have a voice",
            ":alice!alice@127.0.0.1 KICK #room carol :too quiet",
        ]);
        assert_eq!(heard(&mut carol), [":alice!alice@127.0.0.1 KICK #room carol :too quiet"]);
        assert_eq!(ask(&mut carol, "KICK #room bob"), [format!("{SRV} 442 carol #room :You're not on that channel")]);
        assert_eq!(ask(&mut bob, "WHO #room"), [
            ":carol!carol@127.0.0.1 JOIN #room".to_owned(),
            ":alice!alice@127.0.0.1 KICK #room carol :too quiet".to_owned(),
            format!("{SRV} 352 bob #room alice 127.0.0.1 irc.trident.local alice H@ :0 alice the tester"),
            format!("{SRV} 352 bob #room bob 127.0.0.1 irc.trident.local bob H+ :0 bob the tester"),
            format!("{SRV} 315 bob #room :End of WHO list"),
        ]);
    }

    fn bans_and_keys_keep_people_out(engine) {
        let server = ChatServer::start(engine, &[]);
        let (mut alice, mut bob) = pair(&server);
        let mut mallory = server.client("mallory");
        assert_eq!(ask(&mut alice, "MODE #room +bk mallory!*@* sesame"), [
            ":alice!alice@127.0.0.1 MODE #room +bk mallory!*@* sesame",
        ]);
        assert_eq!(ask(&mut mallory, "MODE #room b"), [
            format!("{SRV} 367 mallory #room mallory!*@* alice!alice@127.0.0.1 {}", ban_time(&mut alice)),
            format!("{SRV} 368 mallory #room :End of channel ban list"),
        ]);
        assert_eq!(ask(&mut mallory, "JOIN #room sesame"), [format!("{SRV} 474 mallory #room :Cannot join channel (+b)")]);
        let mut carol = server.client("carol");
        assert_eq!(ask(&mut carol, "JOIN #room"), [format!("{SRV} 475 carol #room :Cannot join channel (+k)")]);
        assert_eq!(ask(&mut carol, "JOIN #room sesame")[0], ":carol!carol@127.0.0.1 JOIN #room");
        assert_eq!(heard(&mut bob), [
            ":alice!alice@127.0.0.1 MODE #room +bk mallory!*@* sesame",
            ":carol!carol@127.0.0.1 JOIN #room",
        ]);
    }

    fn whois_away_userhost_ison_whowas_lusers(engine) {
        let server = ChatServer::start(engine, &[]);
        let (mut alice, mut bob) = pair(&server);
        assert_eq!(ask(&mut bob, "AWAY :lunch"), [format!("{SRV} 306 bob :You have been marked as being away")]);
        assert_eq!(ask(&mut alice, "PRIVMSG bob :there?"), [format!("{SRV} 301 alice bob :lunch")]);
        let whois = ask(&mut alice, "WHOIS bob");
        assert_eq!(whois.len(), 6, "{whois:?}");
        assert_eq!(whois[0], format!("{SRV} 311 alice bob bob 127.0.0.1 * :bob the tester"));
        assert_eq!(whois[1], format!("{SRV} 319 alice bob :#room"));
        assert_eq!(whois[2], format!("{SRV} 312 alice bob irc.trident.local :trident chat server"));
        assert_eq!(whois[3], format!("{SRV} 301 alice bob :lunch"));
        let idle: Vec<&str> = whois[4].split(' ').collect();
        assert_eq!(idle[..4], [SRV, "317", "alice", "bob"], "{whois:?}");
        assert!(idle[5].parse::<u64>().is_ok_and(|signon| signon > 1_700_000_000), "{whois:?}");
        assert_eq!(whois[5], format!("{SRV} 318 alice bob :End of /WHOIS list"));
        assert_eq!(ask(&mut alice, "USERHOST bob alice"), [format!("{SRV} 302 alice :bob=-bob@127.0.0.1 alice=+alice@127.0.0.1")]);
        assert_eq!(ask(&mut alice, "ISON nobody BOB alice"), [format!("{SRV} 303 alice :bob alice")]);
        assert_eq!(ask(&mut bob, "AWAY"), [
            ":alice!alice@127.0.0.1 PRIVMSG bob :there?".to_owned(),
            format!("{SRV} 305 bob :You are no longer marked as being away"),
        ]);
        bob.send("QUIT :off");
        alice.expect(" QUIT ");
        let whowas = ask(&mut alice, "WHOWAS bob");
        assert_eq!(whowas.len(), 3, "{whowas:?}");
        assert_eq!(whowas[0], format!("{SRV} 314 alice bob bob 127.0.0.1 * :bob the tester"));
        assert!(whowas[1].starts_with(&format!("{SRV} 312 alice bob irc.trident.local :")), "{whowas:?}");
        assert_eq!(whowas[2], format!("{SRV} 369 alice bob :End of WHOWAS"));
        assert_eq!(ask(&mut alice, "LUSERS"), [
            format!("{SRV} 251 alice :There are 1 users and 0 invisible on 1 servers"),
            format!("{SRV} 254 alice 1 :channels formed"),
            format!("{SRV} 255 alice :I have 1 clients and 0 servers"),
            format!("{SRV} 265 alice 1 2 :Current local users 1, max 2"),
            format!("{SRV} 266 alice 1 2 :Current global users 1, max 2"),
        ]);
    }

    fn oper_from_the_opers_file_and_kill(engine) {
        let dir = tempfile::tempdir().expect("tempdir");
        let opers = opers_file(&dir);
        let server = ChatServer::start(engine, &["--opers", &opers]);
        let (mut alice, mut bob) = pair(&server);
        assert_eq!(ask(&mut bob, "KILL alice"), [format!("{SRV} 481 bob :Permission Denied- You're not an IRC operator")]);
        assert_eq!(ask(&mut bob, "OPER root wrong"), [format!("{SRV} 464 bob :Password incorrect")]);
        assert_eq!(ask(&mut alice, "OPER root hunter2"), [
            format!("{SRV} 381 alice :You are now an IRC operator"),
            ":alice MODE alice :+o".to_owned(),
        ]);
        assert_eq!(ask(&mut alice, "KILL bob :enough"), [":bob!bob@127.0.0.1 QUIT :Killed (alice (enough))"]);
        assert_eq!(bob.until_closed().last().map(String::as_str), Some("ERROR :Closing Link: 127.0.0.1 (Killed (alice (enough)))"));
    }
}

/// The time of the only ban on #room, read from alice's own ban list.
fn ban_time(alice: &mut Irc) -> String {
    let list = ask(alice, "MODE #room +b");
    list[0].rsplit(' ').next().expect("a time").to_owned()
}

#[test]
fn a_bad_opers_file_is_refused_before_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("opers");
    std::fs::write(&path, "root plain-password\n").expect("write");
    let out = run(&["chat", "serve", "--listen", "127.0.0.1:0", "--opers", &path.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("the hash of root is not a PHC string"), "{}", stderr(&out));
}

engine_tests! {
    fn list_bounds_are_configuration(engine) {
        let server = ChatServer::start(engine, &["--max-channels", "1", "--max-bans", "1", "--whowas", "0"]);
        let mut alice = server.client("alice");
        alice.send("JOIN #a");
        alice.expect(" 366 ");
        assert_eq!(ask(&mut alice, "JOIN #b"), [format!("{SRV} 405 alice #b :You have joined too many channels")]);
        assert_eq!(ask(&mut alice, "MODE #a +b x"), [":alice!alice@127.0.0.1 MODE #a +b x!*@*"]);
        assert_eq!(ask(&mut alice, "MODE #a +b y"), [format!("{SRV} 478 alice #a y!*@* :Channel ban list is full")]);
        assert_eq!(ask(&mut alice, "NICK alicia"), [":alice!alice@127.0.0.1 NICK alicia"]);
        assert_eq!(ask(&mut alice, "WHOWAS alice"), [
            format!("{SRV} 406 alicia alice :There was no such nickname"),
            format!("{SRV} 369 alicia alice :End of WHOWAS"),
        ]);
    }
}
