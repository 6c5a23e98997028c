//! What trident says on a terminal and how: how much beyond errors and
//! results (`-q`, `-v`, which every command takes), whether progress is
//! drawn, how rates read on it, and colour (`--color`, `NO_COLOR`).
//!
//! The verbosity is set once, from the command line, before any work
//! starts, and read wherever a note or a progress display would be written
//! (as ripgrep keeps its message switches): the notes come from deep inside
//! workloads, and passing a flag down every call for them would touch every
//! signature on the way.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use indicatif::{HumanCount, ProgressState};

/// How much is said on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// `-q`: errors only (results still go to stdout).
    Quiet = 0,
    /// Progress on a terminal, warnings, a server's log.
    Normal = 1,
    /// `-v`: also what is being done and why.
    Verbose = 2,
}

static VERBOSITY: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

/// Sets the verbosity for the rest of the run.
pub fn set_verbosity(level: Verbosity) {
    VERBOSITY.store(level as u8, Ordering::Relaxed);
}

/// The verbosity of this run.
pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        1 => Verbosity::Normal,
        _ => Verbosity::Verbose,
    }
}

/// `-q` was given.
pub fn quiet() -> bool {
    verbosity() == Verbosity::Quiet
}

/// `-v` was given.
pub fn verbose() -> bool {
    verbosity() == Verbosity::Verbose
}

/// With `-v`: `trident: WHAT` on stderr.
pub fn explain(what: std::fmt::Arguments<'_>) {
    if verbose() {
        eprintln!("trident: {what}");
    }
}

/// `--color`: when to colour what goes to a terminal (states, errors).
/// `auto` colours a terminal unless `NO_COLOR` is set or `TERM=dumb`
/// (anstream's rules, which clap's help and errors follow too).
pub fn set_color(choice: anstream::ColorChoice) {
    choice.write_global();
}

/// Whether what is written to stdout gets colour.
pub fn color_stdout() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// Whether what is written to stderr gets colour.
pub fn color_stderr() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// `text` in `style` when `on`, else as it is.
pub fn paint(on: bool, style: anstyle::Style, text: &str) -> String {
    if on { format!("{style}{text}{style:#}") } else { text.to_string() }
}

/// The style of an error's "error:".
pub const ERROR: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();

/// Whether progress may be drawn on stderr: not `-q`, a terminal, and one
/// that moves its cursor (`TERM=dumb` gets none of the escapes a redraw
/// needs).
pub fn progress_wanted() -> bool {
    !quiet() && std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// A rate is shown once it has been measured this long: the first ticks
/// divide what came at once (a buffer, a resumed file) by almost nothing.
pub const RATE_SETTLES: Duration = Duration::from_secs(1);

/// `159,583/s`: a per-second rate, whole, grouped in thousands.
pub fn whole_rate(per_sec: f64) -> String {
    format!("{}/s", HumanCount(per_sec.max(0.0).round() as u64))
}

/// A bar's per-second rate, once it has been measured for
/// [`RATE_SETTLES`]: what every rate key shows (blank before).
pub fn settled_rate(state: &ProgressState) -> Option<f64> {
    (state.elapsed() >= RATE_SETTLES).then(|| state.per_sec())
}

/// An indicatif key (`{rate}`): the bar's rate as [`whole_rate`], blank
/// until it has settled.
pub fn rate_key(state: &ProgressState, out: &mut dyn std::fmt::Write) {
    if let Some(rate) = settled_rate(state) {
        let _ = out.write_str(&whole_rate(rate));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_whole_and_grouped() {
        assert_eq!(whole_rate(159_582.781_8), "159,583/s");
        assert_eq!(whole_rate(0.4), "0/s");
        assert_eq!(whole_rate(f64::NAN), "0/s");
        assert_eq!(whole_rate(1234.5), "1,235/s");
    }
}
