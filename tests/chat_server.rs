//! `trident chat serve` on every engine, driven by raw IRC clients on real
//! sockets: exact replies, broadcasts, limits and chaos (everyone else
//! keeps chatting).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::chat_harness::{ChatServer, Irc, pair, still_chatting};
use crate::engine_tests;

/// Threads of a process (1 for a single-threaded one).
fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Open descriptors of a process.
fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        if after.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            kids.push(child);
        }
    }
    kids
}

/// Peak resident memory (VmHWM) of a process tree, KiB.
fn tree_hwm_kib(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    own + children_of(pid).into_iter().map(tree_hwm_kib).sum::<u64>()
}

/// Waits until `cond` holds (bounded).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

engine_tests! {
    fn registration_gets_the_welcome_numerics(engine) {
        let server = ChatServer::start(engine, &[]);
        let mut c = Irc::connect(server.addr);
        c.nick = "carol".into();
        c.send("CAP LS 302");
        assert_eq!(c.line().as_deref(), Some(":irc.trident.local CAP * LS :"));
        c.send("NICK carol");
        c.send("USER carol 0 * :Carol C");
        c.send("CAP END");
        assert_eq!(
            c.line().as_deref(),
            Some(":irc.trident.local 001 carol :Welcome to the trident IRC Network carol!carol@127.0.0.1")
        );
        let rest: Vec<String> = (0..5).filter_map(|_| c.line()).collect();
        assert!(rest[0].starts_with(":irc.trident.local 002 carol :Your host is irc.trident.local"), "{rest:?}");
        assert!(rest[1].starts_with(":irc.trident.local 003 carol :"), "{rest:?}");
        assert!(rest[2].starts_with(":irc.trident.local 004 carol irc.trident.local trident-"), "{rest:?}");
        assert!(rest[3].starts_with(":irc.trident.local 005 carol ") && rest[3].contains("NETWORK=trident"), "{rest:?}");
        assert_eq!(rest[4], ":irc.trident.local 422 carol :MOTD File is missing");
    }

    fn password_and_motd_end_to_end(engine) {
        let server = ChatServer::start(engine, &["--password", "s3cret", "--motd", "Welcome!\nBe kind."]);
        // No PASS, or a wrong one: 464 and closed, never registered.
        for pass in [None, Some("wrong")] {
            let mut c = Irc::connect(server.addr);
            c.nick = "nopass".into();
            if let Some(pass) = pass {
                c.send(&format!("PASS {pass}"));
            }
            c.send("NICK nopass");
            c.send("USER nopass 0 * :x");
            let lines = c.until_closed();
            assert_eq!(
                lines,
                [":irc.trident.local 464 nopass :Password incorrect", "ERROR :Closing Link: 127.0.0.1 (Bad Password)"],
                "PASS {pass:?}"
            );
        }
        let mut c = Irc::connect(server.addr);
        c.nick = "carol".into();
        c.send("PASS s3cret");
        c.send("NICK carol");
        c.send("USER carol 0 * :Carol");
        c.expect(" 001 carol ");
        assert_eq!(c.expect(" 375 "), ":irc.trident.local 375 carol :- irc.trident.local Message of the Day -");
        assert_eq!(c.line().as_deref(), Some(":irc.trident.local 372 carol :- Welcome!"));
        assert_eq!(c.line().as_deref(), Some(":irc.trident.local 372 carol :- Be kind."));
        assert_eq!(c.line().as_deref(), Some(":irc.trident.local 376 carol :End of /MOTD command."));
        c.send("MOTD");
        c.expect(" 375 ");
        c.expect(" 376 ");
        // The nick of a refused client was not kept.
        c.send("WHO nopass");
        assert_eq!(c.line().as_deref(), Some(":irc.trident.local 315 carol nopass :End of WHO list"));
    }

    fn channel_private_nick_and_quit_messages_reach_the_right_clients(engine) {
        let server = ChatServer::start(engine, &[]);
        let (mut alice, mut bob) = pair(&server);
        still_chatting(&mut bob, &mut alice, "hello all");
        alice.send("PRIVMSG bob :psst");
        assert_eq!(bob.expect("psst"), ":alice!alice@127.0.0.1 PRIVMSG bob :psst");
        bob.send("NICK robert");
        assert_eq!(bob.expect(" NICK "), ":bob!bob@127.0.0.1 NICK robert");
        assert_eq!(alice.expect(" NICK "), ":bob!bob@127.0.0.1 NICK robert");
        alice.send("PRIVMSG bob :are you there");
        assert_eq!(alice.expect(" 401 "), ":irc.trident.local 401 alice bob :No such nick/channel");
        alice.send("QUIT :bye now");
        assert_eq!(bob.expect(" QUIT "), ":alice!alice@127.0.0.1 QUIT :Quit: bye now");
        let last = alice.until_closed();
        assert_eq!(last.last().map(String::as_str), Some("ERROR :Closing Link: 127.0.0.1 (Quit: bye now)"));
    }

    fn error_numerics_for_common_mistakes(engine) {
        let server = ChatServer::start(engine, &[]);
        let mut early = Irc::connect(server.addr);
        early.nick = "early".into();
        early.send("JOIN #x");
        assert_eq!(early.line().as_deref(), Some(":irc.trident.local 451 * :You have not registered"));
        let _alice = server.client("alice");
        early.send("NICK alice");
        assert_eq!(early.line().as_deref(), Some(":irc.trident.local 433 * alice :Nickname is already in use"));
        let mut bob = server.client("bob");
        bob.send("FROB");
        assert_eq!(bob.line().as_deref(), Some(":irc.trident.local 421 bob FROB :Unknown command"));
        bob.send("PRIVMSG #nowhere :x");
        assert_eq!(bob.line().as_deref(), Some(":irc.trident.local 403 bob #nowhere :No such channel"));
    }

    fn a_slowloris_does_not_hold_anyone_up_and_is_cut(engine) {
        let server = ChatServer::start(engine, &["--registration-timeout", "2s"]);
        let (mut alice, mut bob) = pair(&server);
        let mut slow = Irc::connect(server.addr);
        slow.nick = "slow".into();
        // One byte at a time, never a whole line: the others keep chatting
        // between every two bytes (no clock: each round waits for its line).
        for (i, b) in b"NICK slo".iter().enumerate() {
            slow.stream.write_all(&[*b]).expect("one byte");
            still_chatting(&mut alice, &mut bob, &format!("while the slowloris sends byte {i}"));
            // Pacing of the attacker, not synchronisation.
            thread::sleep(Duration::from_millis(50));
        }
        // It never registers: cut, and told why.
        assert_eq!(slow.until_closed(), ["ERROR :Closing Link: 127.0.0.1 (Registration timed out)"]);
        still_chatting(&mut alice, &mut bob, "after the slowloris was cut");
    }

    fn a_megabyte_line_gets_417_and_memory_stays_bounded(engine) {
        let server = ChatServer::start(engine, &[]);
        let (mut alice, mut bob) = pair(&server);
        let mut big = server.client("big");
        big.sync("ready");
        // The peak (VmHWM), not the RSS after: a buffered line freed
        // again would not show in the RSS.
        let before = tree_hwm_kib(server.pid());
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..32 {
            big.stream.write_all(&chunk).expect("send");
        }
        big.send("");
        assert_eq!(big.expect(" 417 "), ":irc.trident.local 417 big :Input line was too long");
        still_chatting(&mut alice, &mut bob, "after the big line");
        big.send("JOIN #room");
        big.expect(" 366 big #room ");
        let after = tree_hwm_kib(server.pid());
        // A server holding the 2 MiB line would peak at least 2 MiB higher.
        assert!(after < before + 512, "the server's peak memory grew from {before} KiB to {after} KiB");
    }

    fn an_invalid_utf8_line_is_dropped_with_a_notice(engine) {
        let server = ChatServer::start(engine, &[]);
        let (mut alice, mut bob) = pair(&server);
        alice.stream.write_all(b"PRIVMSG #room :caf\xe9\r\n").expect("send");
        assert_eq!(alice.expect(" NOTICE "), ":irc.trident.local NOTICE alice :Line dropped: it is not valid UTF-8");
        still_chatting(&mut alice, &mut bob, "valid again");
        let seen = bob.sync("t");
        assert!(seen.is_empty(), "bob saw {seen:?}");
    }

    fn a_client_that_never_reads_is_cut_at_its_send_queue(engine) {
        let server = ChatServer::start(engine, &["--sendq", "65536", "--flood-rate", "0"]);
        let (mut alice, mut bob) = pair(&server);
        let mut deaf = server.client("deaf");
        deaf.send("JOIN #room");
        deaf.expect(" 366 deaf #room ");
        alice.expect(" JOIN #room");
        bob.expect(" JOIN #room");
        // deaf reads nothing from now on; its socket buffers fill, then its queue.
        let text = "y".repeat(400);
        let mut quit = None;
        'sending: for batch in 0..200 {
            for n in batch * 100..(batch + 1) * 100 {
                alice.send(&format!("PRIVMSG #room :{n} {text}"));
            }
            alice.sync(&format!("s{batch}"));
            // bob keeps reading and gets everything, in order, whatever deaf does.
            for n in batch * 100..(batch + 1) * 100 {
                let mut line = bob.line().expect("bob's line");
                if line.contains(" QUIT ") {
                    quit = Some(line);
                    line = bob.line().expect("bob's line");
                }
                assert!(line.starts_with(&format!(":alice!alice@127.0.0.1 PRIVMSG #room :{n} y")), "{n}: {line:.60}");
            }
            if quit.is_some() {
                break 'sending;
            }
        }
        assert_eq!(quit.as_deref(), Some(":deaf!deaf@127.0.0.1 QUIT :SendQ exceeded"));
        still_chatting(&mut alice, &mut bob, "after the deaf one left");
        let _ = deaf.stream.read(&mut [0u8; 1]);
    }

    fn a_thousand_abrupt_disconnects_leak_nothing(engine) {
        let server = ChatServer::start(engine, &[]);
        let (mut alice, mut bob) = pair(&server);
        let pid = server.pid();
        let workers = children_of(pid);
        let count = |pid: u32| if engine == "processes" {
            children_of(pid).iter().map(|&w| fds_of(w)).sum::<usize>()
        } else {
            fds_of(pid) + threads_of(pid)
        };
        // Workers finish starting (runtime, sockets) at their own pace on a
        // busy machine: the baseline is taken once the count stops moving.
        let mut baseline = count(pid);
        eventually("the server's descriptor count is steady", || {
            thread::sleep(Duration::from_millis(300));
            let now = count(pid);
            let steady = now == baseline;
            baseline = now;
            steady
        });
        for round in 0..10 {
            let mut batch = Vec::new();
            for i in 0..100 {
                let mut s = TcpStream::connect(server.addr).expect("connect");
                if i % 2 == 0 {
                    let _ = s.write_all(format!("NICK n{round}x{i}\r\nUSER u 0 * :u\r\nJOIN #room\r\n").as_bytes());
                }
                batch.push(s);
            }
            for s in batch {
                // SO_LINGER 0: the close is a reset.
                let sock = socket2::SockRef::from(&s);
                sock.set_linger(Some(Duration::ZERO)).expect("linger");
                drop(s);
            }
        }
        still_chatting(&mut alice, &mut bob, "after a thousand resets");
        eventually("the server is back to its baseline of descriptors and threads", || count(pid) <= baseline);
        assert_eq!(children_of(pid), workers, "worker processes changed");
        // Whoever joined #room and vanished has quit it: NAMES is exact.
        // (The processes engine's hub may still be reading the last quits.)
        let mut names = String::new();
        eventually("NAMES #room shows only alice and bob", || {
            alice.send("NAMES #room");
            names = alice.expect(" 353 ");
            names == ":irc.trident.local 353 alice = #room :@alice bob"
        });
    }

    fn a_flood_is_delayed_then_disconnected(engine) {
        let server = ChatServer::start(engine, &["--flood-burst", "5", "--flood-rate", "20", "--flood-queue", "10"]);
        let (mut alice, mut bob) = pair(&server);
        // Within the limits: 12 lines at once arrive, the last ones delayed.
        let start = Instant::now();
        let lines: String = (0..12).map(|i| format!("PRIVMSG #room :burst {i}\r\n")).collect();
        alice.stream.write_all(lines.as_bytes()).expect("send");
        for i in 0..12 {
            bob.expect(&format!("burst {i}"));
        }
        assert!(start.elapsed() >= Duration::from_millis(250), "7 lines over the burst at 20/s take ~350 ms");
        // Far beyond: disconnected, and the others keep chatting.
        let flood: String = (0..200).map(|i| format!("PRIVMSG #room :flood {i}\r\n")).collect();
        alice.stream.write_all(flood.as_bytes()).expect("send");
        assert_eq!(bob.expect(" QUIT "), ":alice!alice@127.0.0.1 QUIT :Excess Flood");
        let mut carol = server.client("carol");
        carol.send("JOIN #room");
        carol.expect(" 366 ");
        still_chatting(&mut carol, &mut bob, "the flood is over");
    }

    fn over_max_clients_and_per_ip_an_error_line_then_close(engine) {
        let server = ChatServer::start(engine, &["--max-clients", "3"]);
        let (mut alice, mut bob) = pair(&server);
        let _third = server.client("third");
        let mut fourth = Irc::connect(server.addr);
        fourth.nick = "fourth".into();
        let lines = fourth.until_closed();
        assert_eq!(lines, ["ERROR :Closing Link: 127.0.0.1 (Server is full)"]);
        still_chatting(&mut alice, &mut bob, "still room for us");
        drop(server);
        let server = ChatServer::start(engine, &["--max-per-ip", "1"]);
        let _one = server.client("one");
        let mut two = Irc::connect(server.addr);
        two.nick = "two".into();
        assert_eq!(two.until_closed(), ["ERROR :Closing Link: 127.0.0.1 (Too many connections from your address)"]);
    }

    fn a_client_that_saw_its_close_gets_its_slot_back_at_once(engine) {
        // One slot: the previous connection must have given it back by the
        // time its client sees the end of it, or the next is refused.
        let server = ChatServer::start(engine, &["--max-clients", "1", "--max-per-ip", "1"]);
        for round in 0..100 {
            let mut c = server.client(&format!("r{round}"));
            c.send("QUIT");
            assert_eq!(c.until_closed().last().map(String::as_str), Some("ERROR :Closing Link: 127.0.0.1 (Client Quit)"));
        }
        server.client("last").sync("admitted");
    }

    fn silent_clients_are_pinged_and_unregistered_ones_timed_out(engine) {
        let server = ChatServer::start(engine, &["--ping-interval", "300ms", "--ping-timeout", "300ms", "--registration-timeout", "500ms"]);
        let mut lurker = Irc::connect(server.addr);
        lurker.nick = "lurker".into();
        // Pinged after 300 ms of silence like everyone, then timed out.
        let lines = lurker.until_closed();
        assert!(lines.contains(&"PING :irc.trident.local".to_string()), "{lines:?}");
        assert_eq!(lines.last().map(String::as_str), Some("ERROR :Closing Link: 127.0.0.1 (Registration timed out)"));
        let mut alice = server.client("alice");
        let mut bob = server.client("bob");
        alice.send("JOIN #room");
        alice.expect(" 366 ");
        bob.send("JOIN #room");
        bob.expect(" 366 ");
        // bob answers pings (expect does), alice does not: she reads until
        // her PING (bob's JOIN may come before or after it) and stays silent.
        let mut seen = Vec::new();
        while let Some(line) = alice.line() {
            if line == "PING :irc.trident.local" {
                break;
            }
            seen.push(line);
        }
        assert!(seen.iter().all(|l| l == ":bob!bob@127.0.0.1 JOIN #room"), "{seen:?}");
        let quit = bob.expect(" QUIT ");
        assert!(quit.starts_with(":alice!alice@127.0.0.1 QUIT :Ping timeout: "), "{quit}");
    }

    fn shutdown_tells_every_client_and_exits_in_time(engine) {
        let mut server = ChatServer::start(engine, &[]);
        let mut clients: Vec<Irc> = (0..100).map(|i| server.client(&format!("c{i}"))).collect();
        for c in &mut clients {
            c.send("JOIN #all");
        }
        for c in &mut clients {
            c.expect(" 366 ");
        }
        // terminate() has its own generous hang guard; speed is the bench's.
        let (status, _took) = server.terminate();
        assert!(status.success(), "exit status {status}");
        for c in &mut clients {
            let lines = c.until_closed();
            assert_eq!(lines.last().map(String::as_str), Some("ERROR :Server shutting down"), "{}: {lines:?}", c.nick);
            // Everyone leaves at once: nobody's quit is broadcast.
            assert!(!lines.iter().any(|l| l.contains(" QUIT ")), "{}: {lines:?}", c.nick);
        }
    }
}

engine_tests! {
    fn every_member_gets_every_message_in_each_senders_order(engine) {
        // Processes: 3 workers, so that senders and receivers sit on different ones.
        let extra: &[&str] = if engine == "processes" { &["--workers", "3", "--flood-rate", "0"] } else { &["--flood-rate", "0"] };
        let server = ChatServer::start(engine, extra);
        let n = 12;
        let per_sender = 50;
        let mut clients: Vec<Irc> = (0..n).map(|i| server.client(&format!("m{i}"))).collect();
        for c in &mut clients {
            c.send("JOIN #room");
            c.expect(" 366 ");
        }
        // Everyone has seen everyone's join once the last joiner's JOIN reached all.
        for c in &mut clients[..n - 1] {
            c.expect(&format!(":m{}!", n - 1));
        }
        if engine == "processes" {
            let holding = children_of(server.pid()).into_iter().filter(|&w| fds_of(w) > 8).count();
            assert!(holding >= 2, "the connections all landed on one worker; the test proves nothing");
        }
        let senders: Vec<thread::JoinHandle<Irc>> = clients
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                thread::spawn(move || {
                    let burst: String = (0..per_sender).map(|k| format!("PRIVMSG #room :from m{i} #{k}\r\n")).collect();
                    c.stream.write_all(burst.as_bytes()).expect("send");
                    let mut next = vec![0usize; n];
                    next[i] = per_sender;
                    while next.iter().any(|&k| k < per_sender) {
                        let line = c.line().expect("a line");
                        let Some((_, text)) = line.split_once(" PRIVMSG #room :from m") else { continue };
                        let (sender, k) = text.split_once(" #").expect("numbered");
                        let (sender, k): (usize, usize) = (sender.parse().expect("sender"), k.parse().expect("k"));
                        assert_eq!(k, next[sender], "m{i} got m{sender}'s #{k} out of order");
                        next[sender] += 1;
                    }
                    c
                })
            })
            .collect();
        for s in senders {
            s.join().expect("every member got every message in order");
        }
    }
}

/// The worker process (child of `server`) that holds the server side of
/// the connection from `client` (a local port) to `listening` (the
/// server's port), found through /proc/net/tcp and the workers' descriptors.
fn worker_holding(server: u32, listening: u16, client: u16) -> Option<u32> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port =
        |field: Option<&&str>| field.and_then(|f| f.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
    let targets: Vec<String> = tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (port(f.get(1)) == Some(listening) && port(f.get(2)) == Some(client))
                .then(|| f.get(9).map(|inode| format!("socket:[{inode}]")))
                .flatten()
        })
        .collect();
    children_of(server).into_iter().find(|w| {
        std::fs::read_dir(format!("/proc/{w}/fd")).is_ok_and(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|l| targets.contains(&l.to_string_lossy().into_owned()))
            })
        })
    })
}

/// Processes engine: a worker killed with SIGKILL takes its clients with it;
/// their channels see them quit, the others keep chatting, and a new
/// worker takes its place.
#[test]
fn a_dead_worker_is_replaced_and_its_clients_quit() {
    let server = ChatServer::start("processes", &["--workers", "2"]);
    let holder = |c: &Irc| {
        worker_holding(server.pid(), server.addr.port(), c.stream.local_addr().expect("addr").port()).expect("holder")
    };
    // Clients until both workers hold at least two (the kernel picks the
    // worker; a test with everyone on one worker would prove nothing).
    let mut clients: Vec<Irc> = Vec::new();
    let mut spread = std::collections::HashMap::new();
    while spread.len() < 2 || spread.values().any(|&n| n < 2) {
        assert!(clients.len() < 64, "64 clients and still not spread over both workers: {spread:?}");
        let mut c = server.client(&format!("w{}", clients.len()));
        c.send("JOIN #room");
        c.expect(" 366 ");
        *spread.entry(holder(&c)).or_insert(0) += 1;
        clients.push(c);
    }
    let victim = holder(&clients[0]);
    let (doomed, mut alive): (Vec<Irc>, Vec<Irc>) = clients.into_iter().partition(|c| holder(c) == victim);
    assert!(doomed.len() >= 2 && alive.len() >= 2, "spread: {} on the victim, {} elsewhere", doomed.len(), alive.len());
    // SAFETY: kill(2) on a worker of our own server.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    eventually("a new worker replaced the dead one", || {
        let now = children_of(server.pid());
        now.len() == 2 && !now.contains(&victim)
    });
    let watcher = &mut alive[0];
    let mut quits: Vec<String> = (0..doomed.len()).map(|_| watcher.expect(" QUIT ")).collect();
    quits.sort();
    let mut expected: Vec<String> =
        doomed.iter().map(|c| format!(":{0}!{0}@127.0.0.1 QUIT :Server worker died", c.nick)).collect();
    expected.sort();
    assert_eq!(quits, expected);
    let [a, b, ..] = alive.as_mut_slice() else { unreachable!("two alive, asserted above") };
    still_chatting(a, b, "after a worker died");
    let mut newcomer = server.client("newcomer");
    newcomer.send("JOIN #room");
    newcomer.expect(" 366 ");
    newcomer.send("NAMES #room");
    let names = newcomer.expect(" 353 ");
    for c in &doomed {
        assert!(!names.split([' ', ':']).any(|n| n == c.nick), "{} still in {names}", c.nick);
    }
}
