//! The command line as a user meets it first: clap's errors whole, the
//! command lists of bare command groups, help into a closed pipe.

use std::process::Stdio;

use crate::util::{run, stderr, stdout, trident};

/// The block a syntax error prints: everything clap says, no blank line,
/// ending with where the help is; nothing on stdout, exit 2.
fn error_block(args: &[&str]) -> String {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(stdout(&o), "", "{args:?}");
    assert!(err.starts_with("trident: ") && !err.contains("\n\n"), "{args:?}: one block:\n{err}");
    err
}

#[test]
fn syntax_errors_show_claps_whole_message_and_where_help_is() {
    let err = error_block(&["chat", "connect", "--to", "bob"]);
    assert!(err.contains("required arguments were not provided:\n  --send <TEXT>\n"), "{err}");
    assert!(err.contains("Usage: trident chat connect"), "{err}");
    assert!(err.ends_with("see 'trident chat connect --help'\n"), "{err}");

    let err = error_block(&["fetch", "--retires", "3", "http://127.0.0.1:9/x"]);
    assert!(err.contains("'--retires'") && err.contains("tip: a similar argument exists: '--retries'"), "{err}");
    assert!(err.ends_with("see 'trident fetch --help'\n"), "{err}");

    // A bad value stays one line.
    let err = error_block(&["scan", "-f", "yaml", "127.0.0.1"]);
    assert!(err.contains("'yaml'") && err.ends_with(" (see 'trident scan --help')\n"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_command_group_alone_prints_its_command_list() {
    let groups: &[(&[&str], &[&str])] = &[
        (&[], &["scan", "fetch", "echo", "chat", "demo", "bench", "lab"]),
        (&["chat"], &["serve", "connect", "load", "account"]),
        (&["chat", "account"], &["add", "list", "del"]),
        (&["lab"], &["up", "down", "list"]),
        (&["echo"], &["serve", "send"]),
        (&["bench"], &["scan", "fetch", "chat"]),
    ];
    for (args, commands) in groups {
        let o = run(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        let list = err.split_once("Commands:\n").map(|(_, list)| list).unwrap_or_else(|| panic!("{args:?}: {err}"));
        for command in *commands {
            assert!(list.lines().any(|l| l.trim_start().starts_with(command)), "{args:?}: no {command} in\n{err}");
        }
    }
}

#[test]
fn help_into_a_closed_pipe_ends_quietly() {
    for args in [&["--help"][..], &["scan", "--help"], &["fetch", "-h"], &["chat", "load", "--help"], &["--version"]] {
        // The reader is gone before trident writes a byte.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let o = trident().args(args).stdin(Stdio::null()).stdout(writer).output().expect("run trident");
        assert_eq!((o.status.code(), stderr(&o).as_str()), (Some(0), ""), "{args:?}");
    }
}

fn help(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn short_help_fits_a_screen_and_long_help_has_it_all() {
    let short = help(&["fetch", "-h"]);
    let long = help(&["fetch", "--help"]);
    assert!(short.lines().count() <= 70, "{} lines:\n{short}", short.lines().count());
    assert!(short.contains("Examples:") && !short.contains("Exit status"), "{short}");
    assert!(long.contains("Exit status (the most severe wins") && long.contains("Split downloads (-s K)"), "{long}");
    assert!(long.lines().count() > 150, "--help has every word");
}

#[test]
fn help_says_what_the_flags_do() {
    // The lab delays what comes in (see lab/delay.rs), not what it sends.
    let up = help(&["lab", "up", "--help"]);
    assert!(up.contains("Delay every packet that reaches the lab"), "{up}");
    // fetch -q hides the progress too, not only warnings.
    // bench chat says it measures more than idle memory and echo.
    let bench = help(&["bench", "-h"]);
    assert!(bench.contains("fan-out deliveries per second") && bench.contains("InspIRCd"), "{bench}");
    let fetch = help(&["fetch", "--help"]);
    assert!(fetch.contains("-q, --quiet") && fetch.contains("no progress, warnings"), "{fetch}");
}

#[test]
fn every_command_takes_v_and_q() {
    let leaves: &[&[&str]] = &[
        &["scan"],
        &["fetch"],
        &["echo", "serve"],
        &["echo", "send"],
        &["chat", "serve"],
        &["chat", "connect"],
        &["chat", "load"],
        &["chat", "account", "add"],
        &["chat", "account", "list"],
        &["chat", "account", "del"],
        &["demo"],
        &["bench", "scan"],
        &["bench", "fetch"],
        &["bench", "chat"],
        &["lab", "up"],
        &["lab", "down"],
        &["lab", "list"],
    ];
    for leaf in leaves {
        let text = help(&[leaf, &["-h"][..]].concat());
        assert!(text.contains("-v, --verbose") && text.contains("-q, --quiet"), "{leaf:?}:\n{text}");
    }
    // The short-flag table is in the short help too.
    let top = help(&["-h"]);
    assert!(top.contains("-j N      tasks in flight") && top.contains("-n NICK"), "{top}");
    // After the command's own options, not among them.
    let serve = help(&["echo", "serve", "-h"]);
    assert!(serve.find("--idle-timeout") < serve.find("-v, --verbose"), "{serve}");
    assert!(serve.contains("Concurrency engine: async, threads or processes"), "{serve}");
    // -v explains, -q keeps quiet; both are real on a quick command.
    let listed = ["scan", "127.0.0.1", "-p", "1-3", "--list-targets"];
    let o = run(&[&listed[..], &["-v"]].concat());
    assert!(o.status.success() && stderr(&o).contains("trident: done in "), "{}", stderr(&o));
    let o = run(&[&["-q"][..], &listed].concat());
    assert!(o.status.success() && stderr(&o).is_empty(), "{}", stderr(&o));
    let err = error_block(&["scan", "-q", "-v", "127.0.0.1"]);
    assert!(err.contains("cannot be used with"), "{err}");
}
