//! `--banners` on every engine: what a service says first is shown; a
//! silent service shows nothing; without the flag nothing is read.

use std::io::Write;
use std::net::{SocketAddrV4, TcpListener};
use std::thread;

use crate::engine_tests;
use crate::util::{jsonl, run, stderr, stdout, unique_loopback};

/// A listener that greets every client with `greeting`.
fn greeter(ip: std::net::Ipv4Addr, greeting: &'static [u8]) -> u16 {
    let listener = TcpListener::bind(SocketAddrV4::new(ip, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(greeting);
        }
    });
    port
}

fn silent(ip: std::net::Ipv4Addr) -> u16 {
    let listener = TcpListener::bind(SocketAddrV4::new(ip, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        let mut keep = Vec::new();
        for conn in listener.incoming().flatten() {
            keep.push(conn); // held open, never written to
        }
    });
    port
}

engine_tests! {
    fn banners_are_read_and_shown(engine) {
        let ip = unique_loopback();
        let ssh = greeter(ip, b"SSH-2.0-trident_test_1.0\r\n");
        let smtp = greeter(ip, b"220 mail.example ESMTP\r\n250 more\x1b[0m\xe2\x80\xaegpj.exe");
        let quiet = silent(ip);
        let ports = format!("{ssh},{smtp},{quiet}");
        let args = ["scan", &ip.to_string(), "-p", &ports, "-e", engine, "--banners", "--banner-wait", "300ms"];

        let o = run(&[&args[..], &["-f", "jsonl"]].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        let lines = jsonl(&o);
        let banner = |port: u16| {
            let v: Vec<serde_json::Value> = crate::util::stdout(&o).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
            v.into_iter().find(|x| x["port"] == port).and_then(|x| x["banner"].as_str().map(String::from))
        };
        assert!(lines.iter().all(|l| l.state == "open"), "{lines:?}");
        assert_eq!(banner(ssh).as_deref(), Some("SSH-2.0-trident_test_1.0"));
        assert_eq!(banner(smtp).as_deref(), Some("220 mail.example ESMTP\\r\\n250 more\\x1b[0m\\u{202e}gpj.exe"), "control bytes and a right-to-left override escaped");
        assert_eq!(banner(quiet), None, "a silent service has no banner");

        let o = run(&args);
        let text = stdout(&o);
        assert!(text.contains("|_ banner: SSH-2.0-trident_test_1.0\n"), "{text}");

        // Without --banners nothing is read.
        let o = run(&["scan", &ip.to_string(), "-p", &ports, "-e", engine, "-f", "jsonl"]);
        assert!(!stdout(&o).contains("banner"), "{}", stdout(&o));
    }
}
