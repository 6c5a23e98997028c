//! `trident demo`, the tour: scan, fetch and chat on every engine, a table
//! per job, and exit status 1 when a real wrong result turns up.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream};
use std::process::Output;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::util::{self, run};

fn describe(o: &Output) -> String {
    format!("status {}\n--- stdout\n{}--- stderr\n{}", o.status, util::stdout(o), util::stderr(o))
}

/// The tour's tables, in order: each a list of rows split on whitespace
/// (the header line starts with ENGINE; a table ends at a blank line; the
/// indented lines under a row say what went wrong and are left out).
fn tables(text: &str) -> Vec<Vec<Vec<&str>>> {
    let mut tables = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("ENGINE ") {
            let rows = lines
                .by_ref()
                .take_while(|l| !l.trim().is_empty())
                .filter(|l| !l.starts_with(' '))
                .map(|l| l.split_whitespace().collect())
                .collect();
            tables.push(rows);
        }
    }
    tables
}

/// A port in `range` outside the top 1,000 (other tests' default scans of
/// loopback must not meet it) where `bind` succeeds.
fn free_port_in<T>(range: std::ops::RangeInclusive<u16>, bind: impl Fn(u16) -> Option<T>) -> (u16, T) {
    let top = trident::scan::PortList::default_top();
    range
        .filter(|p| top.as_slice().binary_search(p).is_err())
        .find_map(|p| bind(p).map(|l| (p, l)))
        .expect("a free port in range")
}

#[test]
fn demo_tours_scan_fetch_and_chat_on_every_engine() {
    // A dual-stack [::] listener in the demo's range (as sshd's) is open on
    // every 127.x address: the truth must count it, or every engine
    // "misses" it. It is open on every loopback address while it lasts, so
    // it takes a port that no other test scans on loopback (3001-4000; the
    // other demo test's range goes higher but only counts it as open).
    let (dual_port, dual) =
        free_port_in(3001..=4000, |p| TcpListener::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, p, 0, 0)).ok());
    let o = run(&["demo", "--max-port", "4000", "--listeners", "3"]);
    let context = describe(&o);
    assert_eq!(o.status.code(), Some(0), "{context}");
    let text = util::stdout(&o);
    let tables = tables(&text);
    assert_eq!(tables.len(), 3, "a table for scan, fetch and chat\n{context}");
    for (job, rows) in ["scan", "fetch", "chat"].iter().zip(&tables) {
        for engine in util::ENGINES {
            let row = rows
                .iter()
                .find(|r| r.first() == Some(&engine))
                .unwrap_or_else(|| panic!("no {job} row for {engine}\n{context}"));
            assert_eq!(row.get(2), Some(&"yes"), "{job} on {engine} is correct: {row:?}\n{context}");
            if *job != "scan" {
                // fetched/expected, delivered/expected: all of it.
                let (got, want) = row[1].split_once('/').unwrap_or_else(|| panic!("{row:?}"));
                assert!(got == want && want != "0", "{job} on {engine}: {row:?}\n{context}");
            }
        }
    }
    let truth = text.lines().find_map(|l| l.strip_prefix("listening (truth): ")).unwrap_or_default();
    assert!(truth.split(", ").any(|p| p == dual_port.to_string()), "[::]:{dual_port} in the truth\n{context}");
    assert!(text.contains("trident bench all --quick"), "the pointer to the charts\n{context}");
    drop(dual);
}

/// A listener on 0.0.0.0:`port` whose accept queue is full: the kernel
/// lists it as listening (the truth counts it), but drops every new SYN, so
/// no scan can find it open. Returns it and the one connection that fills
/// its queue (backlog 0 holds one).
fn full_listener(port: u16) -> Option<(Socket, TcpStream)> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    socket.bind(&SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into()).ok()?;
    socket.listen(0).ok()?;
    let filler = TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(5))
        .expect("the first connection fills the queue");
    Some((socket, filler))
}

#[test]
fn demo_exits_1_when_an_engine_misses_a_listening_port() {
    // Ports above the other loopback-truth tests' ranges (at most 4000),
    // so that they do not meet this listener.
    let (port, full) = free_port_in(4001..=5000, full_listener);
    let o = run(&["demo", "--max-port", "5000", "--listeners", "2", "--engines", "threads,async"]);
    let context = describe(&o);
    assert_eq!(o.status.code(), Some(1), "{context}");
    let text = util::stdout(&o);
    let tables = tables(&text);
    assert_eq!(tables.len(), 3, "{context}");
    for engine in ["threads", "async"] {
        let row = tables[0].iter().find(|r| r.first() == Some(&engine)).unwrap_or_else(|| panic!("{context}"));
        assert_eq!(row.get(2), Some(&"NO"), "{engine} cannot find {port} open\n{context}");
    }
    let missed = text.lines().find_map(|l| l.trim_start().strip_prefix("missed: [")).unwrap_or_default();
    assert!(missed.contains(&port.to_string()), "{port} said missed\n{context}");
    // Only the scan went wrong: the other jobs' rows are right.
    assert!(tables[1..].iter().flatten().all(|r| r.get(2) == Some(&"yes")), "{context}");
    drop(full);
}
