//! `chat serve --data DIR` on every engine: channel and private messages
//! land in the SQLite history (read back with the store's own query API),
//! survive a restart and a kill -9 within the stated bound; and `chat
//! account` on the command line and on a terminal.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use trident::chat::store::{Conversation, Kind, Store, StoredMessage};

use crate::chat_harness::{ChatServer, Irc};
use crate::engine_tests;
use crate::util::{run, stderr, stdout, trident};

/// The history's batch window the tests serve with.
const WINDOW: Duration = Duration::from_millis(50);

/// How much later than one window a message may still be committed: the
/// commit under way and its own (fsyncs on a busy machine): generous.
const COMMIT_SLACK: Duration = Duration::from_secs(1);

fn serve(engine: &str, dir: &std::path::Path) -> ChatServer {
    let data = dir.to_str().expect("utf-8 temp dir");
    ChatServer::start(engine, &["--data", data, "--history-window", "50ms", "--flood-rate", "0"])
}

fn texts(found: &[StoredMessage]) -> Vec<&str> {
    found.iter().map(|m| m.text.as_str()).collect()
}

/// `a` and `b` registered and both in `channel` (each has seen both joins).
fn two_in(server: &ChatServer, channel: &str) -> (Irc, Irc) {
    let mut a = server.client("alice");
    let mut b = server.client("bob");
    a.send(&format!("JOIN {channel}"));
    a.expect(" 366 ");
    b.send(&format!("JOIN {channel}"));
    b.expect(" 366 ");
    a.expect(" JOIN ");
    (a, b)
}

engine_tests! {
    fn channel_and_private_messages_are_stored_and_survive_a_restart(engine) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = serve(engine, dir.path());
        let (mut alice, mut bob) = two_in(&server, "#Room");
        alice.send("PRIVMSG #room :hello room");
        bob.expect("PRIVMSG #Room :hello room");
        alice.send("NOTICE #ROOM :a notice");
        bob.expect("NOTICE #Room :a notice");
        alice.send("PRIVMSG Bob :just you");
        bob.expect("PRIVMSG bob :just you");
        bob.send("PRIVMSG alice :and you");
        alice.expect("PRIVMSG alice :and you");
        // Refused messages are not history.
        alice.send("PRIVMSG #elsewhere :nobody");
        alice.expect(" 403 ");
        alice.send("PRIVMSG nobody :nobody");
        alice.expect(" 401 ");
        let (status, _) = server.terminate();
        assert!(status.success(), "{}", server.log_text());

        let store = Store::open(dir.path()).expect("open the data directory");
        let room = store.latest(&Conversation::channel("#room"), None, 100).expect("query");
        assert_eq!(texts(&room), ["hello room", "a notice"]);
        assert_eq!(room[0].kind, Kind::Privmsg);
        assert_eq!(room[1].kind, Kind::Notice);
        assert_eq!(room[0].sender, "alice!alice@127.0.0.1");
        assert_eq!(room[0].target, "#Room", "the channel as it is spelled");
        let pair = store.latest(&Conversation::direct("BOB", "alice"), None, 100).expect("query");
        assert_eq!(texts(&pair), ["just you", "and you"]);
        assert_eq!(pair[1].sender, "bob!bob@127.0.0.1");
        assert_eq!(store.message_count().expect("count"), 4);
        drop(store);

        // A second run appends to the same history, with new msgids.
        let mut server = serve(engine, dir.path());
        let (mut alice, mut bob) = two_in(&server, "#room");
        alice.send("PRIVMSG #room :after the restart");
        bob.expect("after the restart");
        let (status, _) = server.terminate();
        assert!(status.success(), "{}", server.log_text());
        let store = Store::open(dir.path()).expect("open the data directory");
        let room = store.latest(&Conversation::channel("#room"), None, 100).expect("query");
        assert_eq!(texts(&room), ["hello room", "a notice", "after the restart"]);
        assert!(room.windows(2).all(|w| w[0].msgid != w[1].msgid && w[0].time_ms <= w[1].time_ms), "{room:?}");
    }

    fn kill_9_under_load_loses_at_most_the_last_window(engine) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = serve(engine, dir.path());
        let (mut alice, bob) = two_in(&server, "#load");
        // Bob records when each message reached him: it was handled by
        // the hub (and queued for the history) before that.
        let (seen_tx, seen_rx) = mpsc::channel::<(u64, Instant)>();
        let reader = thread::spawn(move || {
            // Until the connection ends, however it ends (EOF or reset).
            let mut lines = BufReader::new(bob.stream.try_clone().expect("clone"));
            let mut line = String::new();
            while matches!(lines.read_line(&mut line), Ok(n) if n > 0) {
                let n = line.trim_end().split(" :m").nth(1).and_then(|n| n.parse().ok());
                if let Some(n) = n
                    && seen_tx.send((n, Instant::now())).is_err()
                {
                    break;
                }
                line.clear();
            }
        });
        // Alice sends m0, m1, ... in bursts of 20 every 10 ms (~2,000/s)
        // until the server dies under her.
        let writer = thread::spawn(move || {
            let mut n = 0u64;
            loop {
                let burst: String = (n..n + 20).map(|i| format!("PRIVMSG #load :m{i}\r\n")).collect();
                if alice.stream.write_all(burst.as_bytes()).is_err() {
                    // Part of this burst may have gone out.
                    return n + 20;
                }
                n += 20;
                thread::sleep(Duration::from_millis(10));
            }
        });
        // Load for a while: wait for 1,000 messages to reach bob.
        let mut seen = Vec::new();
        while seen.len() < 1000 {
            seen.push(seen_rx.recv_timeout(Duration::from_secs(30)).expect("messages reach bob"));
        }
        let killed_at = Instant::now();
        server.process.child.kill().expect("kill -9");
        let _ = server.process.child.wait();
        let sent = writer.join().expect("sender");
        reader.join().expect("reader");
        seen.extend(seen_rx.try_iter());
        seen.retain(|&(_, at)| at <= killed_at);

        let store = Store::open(dir.path()).expect("the crashed database opens");
        let stored = store.latest(&Conversation::channel("#load"), None, usize::MAX).expect("query");
        let count = store.message_count().expect("count");
        // LATEST answers at most MAX_QUERY: read the rest forward.
        let mut all: Vec<String> = Vec::new();
        let mut after = trident::chat::store::Bound::Time(0);
        loop {
            let page = store.after(&Conversation::channel("#load"), &after, 1000).expect("query");
            let Some(last) = page.last() else { break };
            after = trident::chat::store::Bound::MsgId(last.msgid.clone());
            all.extend(page.iter().map(|m| m.text.clone()));
        }
        assert_eq!(all.len() as u64, count);
        assert!(!stored.is_empty(), "nothing was stored");
        // The history is exactly m0..mK: in order, no gaps, nothing unsent.
        for (i, text) in all.iter().enumerate() {
            assert_eq!(text, &format!("m{i}"), "history out of order or with a gap");
        }
        assert!(count <= sent);
        // Every message bob had before the last window (and the commits
        // around it) is there.
        let bound = killed_at - WINDOW - COMMIT_SLACK;
        let must = seen.iter().filter(|&&(_, at)| at < bound).map(|&(n, _)| n + 1).max().unwrap_or(0);
        assert!(
            count >= must,
            "{count} stored, but bob had m{} more than {WINDOW:?} + {COMMIT_SLACK:?} before the kill",
            must - 1
        );
        let lost = seen.len() as u64 - count.min(seen.len() as u64);
        eprintln!("{engine}: {} sent, {} seen by bob, {count} stored, {lost} seen but lost", sent, seen.len());

        // The server starts again on the crashed database and goes on.
        let mut server = serve(engine, dir.path());
        let (mut alice, mut bob) = two_in(&server, "#load");
        alice.send("PRIVMSG #load :back");
        bob.expect(":back");
        let (status, _) = server.terminate();
        assert!(status.success(), "{}", server.log_text());
        let latest = Store::open(dir.path()).and_then(|s| s.latest(&Conversation::channel("#load"), None, 1)).expect("q");
        assert_eq!(texts(&latest), ["back"]);
    }
}

#[test]
fn accounts_are_added_listed_and_deleted_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let add = |name: &str, password: &str| {
        let mut child = trident()
            .args(["chat", "account", "add", name, "--data", data, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("trident runs");
        child.stdin.take().expect("stdin").write_all(password.as_bytes()).expect("password");
        child.wait_with_output().expect("trident ends")
    };
    let o = add("Alice", "hunter2\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = add("ALICE", "other\n");
    assert_eq!((o.status.code(), stderr(&o).as_str()), (Some(1), "trident: account ALICE exists already\n"));
    let o = add("9lives", "pw\n");
    assert_eq!(o.status.code(), Some(2), "a bad name is bad input");
    assert!(stderr(&o).starts_with("trident: invalid account name \"9lives\""), "{}", stderr(&o));
    assert_eq!(add("carol", "\n").status.code(), Some(2), "an empty password");
    assert!(add("carol", "pw\r\n").status.success());
    // Without a terminal and without --password-stdin: told what to do.
    let o = run(&["chat", "account", "add", "dave", "--data", data]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--password-stdin"), "{}", stderr(&o));

    let o = run(&["chat", "account", "list", "--data", data]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = stdout(&o);
    let names: Vec<&str> = listed.lines().map(|l| l.split('\t').next().unwrap_or("")).collect();
    assert_eq!(names, ["Alice", "carol"], "{listed}");
    assert!(listed.lines().all(|l| l.contains("\tcreated ") && l.ends_with(" GMT")), "{listed}");

    let store = Store::open(std::path::Path::new(data)).expect("open");
    assert_eq!(store.verify("alice", b"hunter2").expect("verify").as_deref(), Some("Alice"));
    assert_eq!(store.verify("carol", b"pw").expect("verify").as_deref(), Some("carol"), "CRLF is a line end");
    assert_eq!(store.verify("alice", b"hunter3").expect("verify"), None);
    drop(store);

    let o = run(&["chat", "account", "del", "alice", "--data", data]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["chat", "account", "del", "alice", "--data", data]);
    assert_eq!((o.status.code(), stderr(&o).as_str()), (Some(1), "trident: no account alice\n"));
    let o = run(&["chat", "account", "list", "--data", data]);
    assert_eq!(stdout(&o).lines().count(), 1);
}

/// Waits (bounded) until `text` has appeared in what `chunks` brought.
fn read_until(chunks: &mpsc::Receiver<Vec<u8>>, seen: &mut Vec<u8>, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(seen).contains(text) {
        let left = deadline.saturating_duration_since(Instant::now());
        match chunks.recv_timeout(left) {
            Ok(chunk) => seen.extend_from_slice(&chunk),
            Err(e) => panic!("no {text:?} ({e}) in {:?}", String::from_utf8_lossy(seen)),
        }
    }
}

/// Runs `command` on a pseudo-terminal (script(1) relays our pipes),
/// `typing` answering what it shows; whether it ended well, and all it
/// showed.
fn on_terminal(
    command: &str,
    typing: impl FnOnce(&mut dyn Write, &mpsc::Receiver<Vec<u8>>, &mut Vec<u8>),
) -> (bool, String) {
    let mut child = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("script(1) runs (util-linux)");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = child.stdout.take().expect("stdout");
    let (tx, chunks) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let guard = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| typing(&mut stdin, &chunks, &mut seen)));
    if guard.is_err() {
        // Hung: end it, so the test fails instead of waiting forever.
        let _ = child.kill();
    }
    let status = child.wait().expect("script ends");
    reader.join().expect("reader");
    seen.extend(chunks.try_iter().flatten());
    (guard.is_ok() && status.success(), String::from_utf8_lossy(&seen).into_owned())
}

#[test]
fn account_add_asks_twice_on_the_terminal_without_echo() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_str().expect("utf-8");
    let command = format!("{} chat account add erin --data {data}", env!("CARGO_BIN_EXE_trident"));
    let (ok, shown) = on_terminal(&command, |stdin, chunks, seen| {
        read_until(chunks, seen, "Password for erin: ");
        stdin.write_all(b"n0-echo-pw\n").expect("type");
        read_until(chunks, seen, "Again: ");
        stdin.write_all(b"n0-echo-pw\n").expect("type");
    });
    assert!(ok, "{shown}");
    assert!(!shown.contains("n0-echo-pw"), "the password was echoed: {shown:?}");
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(store.verify("erin", b"n0-echo-pw").expect("verify").as_deref(), Some("erin"));
}

#[test]
fn ctrl_c_at_the_password_prompt_turns_echo_back_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_str().expect("utf-8");
    // The shell outlives the Ctrl-C (a trapped signal is default again in
    // the program it starts), then shows the terminal's settings.
    let trident = env!("CARGO_BIN_EXE_trident");
    let command = format!("trap : INT; {trident} chat account add erin --data {data}; echo status=$?; stty -a");
    let (ok, shown) = on_terminal(&command, |stdin, chunks, seen| {
        read_until(chunks, seen, "Password for erin: ");
        stdin.write_all(b"\x03").expect("type Ctrl-C");
        read_until(chunks, seen, "status=130");
    });
    assert!(ok, "{shown}");
    let settings: Vec<&str> = shown.split_whitespace().collect();
    assert!(settings.contains(&"echo") && !settings.contains(&"-echo"), "echo stayed off: {shown}");
    assert_eq!(Store::open(dir.path()).expect("open").accounts().expect("list").len(), 0);
}
