//! The chapter's own programs as bench contenders: the Python scanners,
//! downloaders and echo server of `bench/chapter/`, which do what the
//! chapter's listings do (its readers' baseline) with the target, ports or
//! URLs as parameters.
//!
//! Their sources are compiled into the binary and written into a bench's
//! scratch directory when it starts ([`Programs::install`]), so that a
//! bench runs them from any working directory and from an installed
//! `trident`, and the version run is always the one the binary was built
//! with. They run under one interpreter, Debian's `/usr/bin/python3` when
//! there is one (the one `scripts/test` installs `python3-aiohttp` for),
//! else `python3` from PATH ([`python`]), so that they compare with each
//! other as well as with trident.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::harness::find_program;

/// One of the chapter's programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// The threaded port scanner (Project 8.1).
    ScanThreads,
    /// The multiprocessing port scanner (Project 8.2).
    ScanProcesses,
    /// The asyncio port scanner (Project 8.3).
    ScanAsyncio,
    /// What the three scanners share: arguments and report (imported).
    ScanCommon,
    /// The threaded downloader (section 8.2).
    FetchThreads,
    /// The asyncio downloader (section 8.2, integrated with threads).
    FetchAsyncio,
    /// What the two downloaders share: arguments and file names (imported).
    FetchCommon,
    /// The asyncio echo server (section 8.4).
    EchoServer,
}

impl Program {
    /// Every program.
    pub const ALL: [Program; 8] = [
        Program::ScanThreads,
        Program::ScanProcesses,
        Program::ScanAsyncio,
        Program::ScanCommon,
        Program::FetchThreads,
        Program::FetchAsyncio,
        Program::FetchCommon,
        Program::EchoServer,
    ];

    /// Its file name in `bench/chapter/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Program::ScanThreads => "scan_threads.py",
            Program::ScanProcesses => "scan_processes.py",
            Program::ScanAsyncio => "scan_asyncio.py",
            Program::ScanCommon => "scan_common.py",
            Program::FetchThreads => "fetch_threads.py",
            Program::FetchAsyncio => "fetch_asyncio.py",
            Program::FetchCommon => "fetch_common.py",
            Program::EchoServer => "echo_server.py",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Program::ScanThreads => include_str!("../../bench/chapter/scan_threads.py"),
            Program::ScanProcesses => include_str!("../../bench/chapter/scan_processes.py"),
            Program::ScanAsyncio => include_str!("../../bench/chapter/scan_asyncio.py"),
            Program::ScanCommon => include_str!("../../bench/chapter/scan_common.py"),
            Program::FetchThreads => include_str!("../../bench/chapter/fetch_threads.py"),
            Program::FetchAsyncio => include_str!("../../bench/chapter/fetch_asyncio.py"),
            Program::FetchCommon => include_str!("../../bench/chapter/fetch_common.py"),
            Program::EchoServer => include_str!("../../bench/chapter/echo_server.py"),
        }
    }
}

/// The programs written out for a bench; they live as long as the
/// directory they were written into.
#[derive(Debug)]
pub struct Programs {
    dir: PathBuf,
}

impl Programs {
    /// Writes every program into `DIR/chapter/`.
    pub fn install(dir: &Path) -> anyhow::Result<Programs> {
        let dir = dir.join("chapter");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for program in Program::ALL {
            let path = dir.join(program.file_name());
            fs::write(&path, program.source()).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(Programs { dir })
    }

    /// Where `program` was written.
    pub fn path(&self, program: Program) -> PathBuf {
        self.dir.join(program.file_name())
    }

    /// `PYTHON PROGRAM`, arguments to be added.
    pub fn command(&self, python: &Path, program: Program) -> Command {
        let mut cmd = Command::new(python);
        cmd.arg(self.path(program));
        cmd
    }
}

/// The interpreter the chapter's programs run under: Debian's
/// `/usr/bin/python3` if present, else `python3` from PATH.
pub fn python() -> Option<PathBuf> {
    let debian = Path::new("/usr/bin/python3");
    if debian.is_file() { Some(debian.to_path_buf()) } else { find_program("python3") }
}

/// Where the chapter's peers were not found: the reason and how to fix it.
pub const NO_PYTHON: &str = "python3 is not installed (scripts/test installs it: apt-get install python3)";

/// [`python`], if it can import aiohttp (the asyncio downloader's client);
/// else why not, and what to install.
pub fn python_with_aiohttp() -> Result<PathBuf, String> {
    let python = python().ok_or_else(|| NO_PYTHON.to_string())?;
    let imports = Command::new(&python).args(["-c", "import aiohttp"]).output().is_ok_and(|o| o.status.success());
    if imports {
        Ok(python)
    } else {
        Err(format!(
            "aiohttp is not installed for {} (scripts/test installs it: apt-get install python3-aiohttp)",
            python.display()
        ))
    }
}

/// `Python 3.11.2`: what `python --version` says (empty if it says nothing).
pub fn version(python: &Path) -> String {
    let said = Command::new(python).arg("--version").output();
    said.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_is_written_out_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let programs = Programs::install(dir.path()).expect("install");
        for program in Program::ALL {
            let written = fs::read_to_string(dir.path().join("chapter").join(program.file_name())).expect("written");
            assert_eq!(written, program.source());
            let module = matches!(program, Program::ScanCommon | Program::FetchCommon);
            assert!(module || written.starts_with("#!/usr/bin/env python3\n"), "{}", program.file_name());
            let cmd = programs.command(Path::new("/usr/bin/python3"), program);
            assert!(cmd.get_args().next().is_some_and(|a| a.to_string_lossy().ends_with(program.file_name())));
        }
    }
}
