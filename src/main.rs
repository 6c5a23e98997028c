//! The `trident` binary: everything lives in the library; this maps its
//! result to an exit code and an error line.

use std::process::ExitCode;

use trident::error::{BadInput, Exit};

fn main() -> ExitCode {
    match trident::run(std::env::args_os()) {
        Ok(exit) => exit.into(),
        Err(err) => {
            if let Some(bad) = err.downcast_ref::<BadInput>() {
                eprintln!("trident: {bad}");
                return Exit::BadInput.into();
            }
            eprintln!("trident: error: {err:#}");
            Exit::Failure.into()
        }
    }
}
