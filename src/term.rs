//! How much trident says on stderr beyond errors and results: `-q` and
//! `-v`, which every command takes. It is set once, from the command line,
//! before any work starts, and read wherever a note or a progress display
//! would be written (as ripgrep keeps its message switches): the notes come
//! from deep inside workloads, and passing a flag down every call for them
//! would touch every signature on the way.

use std::sync::atomic::{AtomicU8, Ordering};

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
