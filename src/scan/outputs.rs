//! The scan's outputs: one [`Report`] per [`Destination`] (stdout and any
//! number of files, as nmap's `-oN -oX -oG -oA` write several at once),
//! each fed every result. Files are opened before the first probe, so an
//! unwritable path is bad input before anything is sent, and each appears
//! under its name only when complete (see [`OutputFile`]).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use anyhow::Context;

use super::{Counts, ProbeResult, Report, ScanConfig, Summary, TargetError};
use crate::error::BadInput;
use crate::output::OutputFile;

/// One destination: its report and, for a file, what commits it.
struct Output {
    report: Report<Sink>,
    file: Option<OutputFile>,
    /// `stdout` or the path as given, for messages.
    name: String,
}

/// Every destination of a scan.
pub(super) struct Outputs {
    each: Vec<Output>,
}

impl Outputs {
    /// Opens every destination of `config` for a scan of `probes` probes
    /// of `hosts` addresses (see [`Report::for_scan`]).
    pub(super) fn open(config: &ScanConfig, probes: u64, hosts: u64) -> Result<Self, BadInput> {
        let mut each = Vec::with_capacity(config.outputs.len());
        for dest in &config.outputs {
            let (sink, file, name) = match &dest.path {
                Some(path) => {
                    let file = OutputFile::create(path)?;
                    let handle = file.file().map_err(|e| BadInput(format!("cannot write {}: {e}", path.display())))?;
                    (Sink::File(BufWriter::new(handle)), Some(file), path.display().to_string())
                }
                None => (Sink::Stdout(BufWriter::new(io::stdout())), None, "stdout".to_string()),
            };
            let report = Report::for_scan(dest.format, config.open_only, sink, probes, hosts)
                .coloured(file.is_none() && crate::term::color_stdout())
                .listing_closed(config.show_closed)
                .sorting_rows(dest.path.is_some());
            each.push(Output { report, file, name });
        }
        Ok(Outputs { each })
    }

    /// Gives `r` to every report; an error names the destination and keeps
    /// the kind (a closed stdout is `BrokenPipe`). A closed stdout beside
    /// files is dropped, so that `-oX f | head` still writes `f` whole.
    pub(super) fn record(&mut self, host: Option<&Arc<str>>, r: ProbeResult) -> io::Result<()> {
        let count = self.each.len();
        let mut r = Some(r);
        let mut closed = None;
        for (i, out) in self.each.iter_mut().enumerate() {
            // The last report takes the result, the others a copy.
            let Some(this) = (if i + 1 == count { r.take() } else { r.clone() }) else { break };
            match out.report.record(host, this) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe && out.file.is_none() && count > 1 => closed = Some(i),
                Err(e) => return Err(named(&out.name, e)),
            }
        }
        if let Some(i) = closed {
            self.each.remove(i);
        }
        Ok(())
    }

    /// Totals over every port so far (every report counts the same).
    pub(super) fn counts(&self) -> Counts {
        self.each.first().map(|o| o.report.counts()).unwrap_or_default()
    }

    /// Writes each report's closing part and commits the files. A closed
    /// stdout (`| head`) is not an error, and does not cost the files.
    pub(super) fn finish(self, summary: &Summary, skipped: &[TargetError]) -> anyhow::Result<()> {
        for out in self.each {
            let cannot = || format!("cannot write the results to {}", out.name);
            match out.report.finish(summary, skipped) {
                Ok(Sink::File(w)) => {
                    w.into_inner().map_err(io::IntoInnerError::into_error).with_context(cannot)?;
                    if let Some(file) = out.file {
                        file.commit()?;
                    }
                }
                Ok(Sink::Stdout(_)) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe && out.file.is_none() => {}
                Err(e) => return Err(e).with_context(cannot),
            }
        }
        Ok(())
    }
}

fn named(name: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write the results to {name}: {e}"))
}

/// Where one report goes: stdout or an output file.
enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File(BufWriter<File>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(w) => w.write(buf),
            Sink::File(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(w) => w.flush(),
            Sink::File(w) => w.flush(),
        }
    }
}
