//! Error types that decide exit codes, and the exit codes themselves.
//!
//! Results (a closed port, a refused connection) are never errors. Errors
//! are either bad input (exit 2, one line naming the bad value) or failures
//! to do the job at all (exit 1).

use std::process::ExitCode;

/// Input that cannot be acted on; the message names the bad value and what
/// would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// trident's exit statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The job was done.
    Success = 0,
    /// The job ran, but part of it could not be done (failed probes, a
    /// demo engine that missed the truth), or it could not run at all.
    Failure = 1,
    /// Bad command-line input; nothing was started.
    BadInput = 2,
    /// A download did not match its `--checksum` (fetch).
    ChecksumMismatch = 3,
    /// A file could not be written where it belongs (fetch).
    LocalError = 4,
    /// Ctrl-C: partial results were written.
    Interrupted = 130,
}

impl Exit {
    /// Success if `ok`, else Failure: a job that ran, fully or not.
    pub fn success_if(ok: bool) -> Exit {
        if ok { Exit::Success } else { Exit::Failure }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}
