//! What trident says instead of running a command: its help, in two
//! lengths, and clap's errors.
//!
//! `-h` fits a screen: each option's first sentence and a command's first
//! epilogue paragraph (its examples); `--help` has every word. The split is
//! made here, once, from the doc comments and epilogues as written, so an
//! option added anywhere gets both lengths without its text written twice.
//! An error is clap's whole message (what is wrong, the near flag, the
//! usage) kept to one block that says where the help is.

use std::ffi::OsString;

use clap::Command;

use super::Cli;
use crate::error::Exit;

/// Epilogues up to this many lines are shown whole by `-h` too.
const SHORT_EPILOGUE_LINES: usize = 20;

/// The command line's definition, with the short and the long help of
/// every option and epilogue.
pub(super) fn command() -> Command {
    use clap::CommandFactory;
    two_lengths(Cli::command())
}

fn two_lengths(command: Command) -> Command {
    let mut command = command.mut_args(|arg| {
        let (Some(help), None) = (arg.get_help(), arg.get_long_help()) else { return arg };
        let whole = help.to_string();
        match first_sentence(&whole) {
            Some(short) => {
                let short = short.to_string();
                arg.help(short).long_help(whole)
            }
            None => arg,
        }
    });
    if command.get_after_long_help().is_none()
        && let Some(after) = command.get_after_help().map(ToString::to_string)
        && after.lines().count() > SHORT_EPILOGUE_LINES
        && let Some((first, _)) = after.split_once("\n\n")
    {
        let short = format!("{first}\n\nMore in --help.");
        command = command.after_help(short).after_long_help(after);
    }
    command.mut_subcommands(two_lengths)
}

/// The first sentence or clause of `text` (without its full stop) when
/// more follows: outside parentheses, a full stop followed by a space and a
/// capital letter ends it ("Seed of the order. The same seed..."), and so
/// does a semicolon; "e.g. 2s" and "(more; and more)" do not.
fn first_sentence(text: &str) -> Option<&str> {
    let mut depth = 0u32;
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            ';' if text[i + 1..].starts_with(' ') => return Some(&text[..i]),
            '.' if text[i + 1..].starts_with(' ') => {
                let capital = text[i + 2..].chars().next().is_some_and(char::is_uppercase);
                let abbreviation = ["e.g", "i.e", "etc", "vs"].iter().any(|a| text[..i].ends_with(a));
                if capital && !abbreviation {
                    return Some(&text[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Prints what clap has to say and gives the exit status.
pub(super) fn report(e: &clap::Error, args: &[OsString]) -> Exit {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => match e.print() {
            // `trident scan --help | head -1` got what it wanted.
            Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Exit::Failure,
            _ => Exit::Success,
        },
        // `trident`, `trident chat`: the command list, on stderr.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Exit::BadInput
        }
        _ => {
            eprintln!("trident: {}", error_block(&e.render().to_string(), &command_path(args)));
            Exit::BadInput
        }
    }
}

/// clap's whole error (what is wrong, its tip, the usage) as one block
/// without blank lines, saying where the help is: at the end of a one-line
/// error (a bad value stays one line), else on a last line.
fn error_block(rendered: &str, path: &str) -> String {
    let lines: Vec<&str> = rendered
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    match lines.as_slice() {
        [line] => format!("{line} (see '{path} --help')"),
        _ => format!("{}\nsee '{path} --help'", lines.join("\n")),
    }
}

/// `trident chat connect`: the subcommands named in `args`.
fn command_path(args: &[OsString]) -> String {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut path = vec!["trident".to_string()];
    for arg in args.iter().skip(1).map(|a| a.to_string_lossy()) {
        if arg.starts_with('-') {
            continue;
        }
        let Some(sub) = command.find_subcommand(arg.as_ref()).cloned() else { break };
        path.push(sub.get_name().to_string());
        command = sub;
    }
    path.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_help_is_the_first_sentence() {
        let cases = [
            ("Seed of the order. The same seed gives the same order.", Some("Seed of the order")),
            ("Fixed time (e.g. 500ms, 2s) of one attempt", None),
            ("Tasks in flight. [default: 512]", None),
            ("Wait, e.g. For a while. Then go", Some("Wait, e.g. For a while")),
            ("Jobs (a; b) at once; more", Some("Jobs (a; b) at once")),
            ("Engine (a. B) here. More", Some("Engine (a. B) here")),
            ("One sentence.", None),
        ];
        for (text, want) in cases {
            assert_eq!(first_sentence(text), want, "{text}");
        }
    }

    #[test]
    fn short_help_fits_a_screen_and_long_help_has_every_word() {
        let mut command = command();
        let fetch = command.find_subcommand_mut("fetch").expect("fetch");
        let short = fetch.render_help().to_string();
        let long = fetch.render_long_help().to_string();
        assert!(short.lines().count() <= 70, "{} lines:\n{short}", short.lines().count());
        assert!(long.contains("Exit status (the most severe wins") && !short.contains("Exit status"), "{short}");
        assert!(short.contains("Examples:") && short.contains("More in --help."), "{short}");
    }

    #[test]
    fn an_error_is_claps_whole_message_in_one_block() {
        let rendered = "error: unexpected argument '--retires' found\n\n  tip: a similar argument exists: \
                        '--retries'\n\nUsage: trident fetch --retries <N> [URL]...\n\nFor more information, try '--help'.\n";
        assert_eq!(
            error_block(rendered, "trident fetch"),
            "unexpected argument '--retires' found\n  tip: a similar argument exists: '--retries'\n\
             Usage: trident fetch --retries <N> [URL]...\nsee 'trident fetch --help'"
        );
        let rendered =
            "error: invalid value 'x' for '-j <N>': expected a number\n\nFor more information, try '--help'.\n";
        assert_eq!(
            error_block(rendered, "trident scan"),
            "invalid value 'x' for '-j <N>': expected a number (see 'trident scan --help')"
        );
        let args = ["trident", "chat", "connect", "-n", "x", "extra"].map(OsString::from);
        assert_eq!(command_path(&args), "trident chat connect");
        assert_eq!(command_path(&["trident", "-x"].map(OsString::from)), "trident");
    }
}
