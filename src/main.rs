//! The `trident` binary: everything lives in the library; this maps its
//! result to an exit code and an error line. Output cut short because its
//! reader has gone (`trident scan ... | head -1`) ends silently with 0, as
//! ripgrep does: the reader took what it wanted.

use std::process::ExitCode;

use trident::error::{BadInput, Exit};

fn main() -> ExitCode {
    match trident::run(std::env::args_os()) {
        Ok(exit) => exit.into(),
        Err(err) => {
            let broken_pipe = err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe && trident::sys::stdout_closed() {
                return Exit::Success.into();
            }
            if let Some(bad) = err.downcast_ref::<BadInput>() {
                eprintln!("trident: {bad}");
                return Exit::BadInput.into();
            }
            let error = trident::term::paint(trident::term::color_stderr(), trident::term::ERROR, "error:");
            eprintln!("trident: {error} {err:#}");
            Exit::Failure.into()
        }
    }
}
