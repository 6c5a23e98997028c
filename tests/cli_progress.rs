//! Progress and colour as a terminal shows them: whole rates, no `?%`, no
//! bogus first speed, no cursor escapes where the terminal cannot take
//! them; states and errors in colour unless NO_COLOR or --color never.

use std::process::{Command, Stdio};

use crate::engine_tests;
use crate::http_server::TestServer;
use crate::util::{Listeners, run, stderr, stdout};

/// `trident ARGS` on a pseudo-terminal (script(1)) with `TERM`: what the
/// terminal got.
fn on_terminal(args: &[&str], term: &str) -> String {
    on_terminal_with(args, term, &[])
}

/// [`on_terminal`] with more environment.
fn on_terminal_with(args: &[&str], term: &str, env: &[(&str, &str)]) -> String {
    let bin = env!("CARGO_BIN_EXE_trident");
    let command = std::iter::once(bin).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    let o = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("TERM", term)
        .env("COLUMNS", "120")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every `N/s` on `screen` has no fractional digits.
fn rates_are_whole(screen: &str) -> bool {
    screen.split("/s").all(|before| {
        let number: String =
            before.chars().rev().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',').collect();
        !number.contains('.')
    })
}

engine_tests! {
    fn scan_progress_has_whole_rates_and_no_escapes_on_a_dumb_terminal(engine) {
        let l = Listeners::start(1);
        let ip = l.ip.to_string();
        // ~1.5 s at 400/s: the rate is drawn after its first second.
        let args = ["scan", &ip, "-p", "1-600", "--max-rate", "400", "-e", engine];
        let screen = on_terminal(&args, "xterm");
        assert!(screen.contains("/600 ports") && screen.contains("/s"), "no bar or no rate: {screen:?}");
        assert!(rates_are_whole(&screen), "{screen:?}");
        let screen = on_terminal(&args, "dumb");
        assert!(screen.contains("Scanned 1 host x 600 ports"), "{screen:?}");
        assert!(!screen.contains("/600 ports") && !screen.contains('\x1b'), "a redraw on TERM=dumb: {screen:?}");
    }

    fn fetch_progress_without_a_length_shows_no_question_marks(engine) {
        let s = TestServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8");
        // 12 KB in 1 KB pieces every 100 ms: no length known to the bar.
        let url = s.url("/slow/12000/1000/100/stream.bin");
        let screen = on_terminal(&["fetch", "-e", engine, "-d", d, &url], "xterm");
        // The result line names the file too: the total line proves the
        // bars were drawn, so that the absence below means something.
        assert!(screen.contains("stream.bin") && screen.contains("files 0/1"), "no progress drawn: {screen:?}");
        assert!(!screen.contains("?%") && !screen.contains("ETA ?"), "{screen:?}");
    }
}

#[test]
fn states_and_errors_are_coloured_on_a_terminal_unless_told_not_to() {
    let l = Listeners::start(1);
    let ip = l.ip.to_string();
    let port = l.ports.first().expect("a listener").to_string();
    let scan = ["scan", &ip, "-p", &port, "-q"];
    let green_open = "\x1b[1m\x1b[32mopen\x1b[0m";
    let screen = on_terminal(&scan, "xterm");
    assert!(screen.contains(green_open), "{screen:?}");
    let screen = on_terminal_with(&scan, "xterm", &[("NO_COLOR", "1")]);
    assert!(screen.contains("open") && !screen.contains('\x1b'), "NO_COLOR: {screen:?}");
    let screen = on_terminal(&[&scan[..], &["--color", "never"]].concat(), "xterm");
    assert!(screen.contains("open") && !screen.contains('\x1b'), "--color never: {screen:?}");
    // Into a pipe: plain, unless --color always.
    let piped = stdout(&run(&scan));
    assert!(piped.contains("open") && !piped.contains('\x1b'), "{piped:?}");
    let piped = stdout(&run(&[&["--color=always"][..], &scan].concat()));
    assert!(piped.contains(green_open), "{piped:?}");
    // fetch's status words too.
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8");
    let url = server.url("/file/100/x.bin");
    let screen = on_terminal(&["fetch", "-q", "-d", d, &url], "xterm");
    assert!(screen.contains("\x1b[1m\x1b[32mdone\x1b[0m      x.bin"), "{screen:?}");
    let screen = on_terminal_with(&["fetch", "-q", "--overwrite", "-d", d, &url], "xterm", &[("NO_COLOR", "1")]);
    assert!(screen.contains("done      x.bin") && !screen.contains('\x1b'), "{screen:?}");
    // An error's "error:" in red on a terminal, plain into a pipe.
    let refused = ["chat", "connect", "127.0.0.1:1", "-n", "x", "--to", "y", "--send", "hi", "--timeout", "2s"];
    let screen = on_terminal(&refused, "xterm");
    assert!(screen.contains("trident: \x1b[1m\x1b[31merror:\x1b[0m "), "{screen:?}");
    let err = stderr(&run(&refused));
    assert!(err.starts_with("trident: error: "), "{err:?}");
}
