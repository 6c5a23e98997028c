//! `trident scan`'s output flags, as nmap users type them: `-f`, `-o FILE`
//! (format from `-f`, else from the extension), and nmap's `-oN`, `-oX`,
//! `-oG`, `-oA BASE` plus `-oJ` (JSON lines), several at once. They become
//! the scan's list of [`Destination`]s. nmap's two-letter spellings are
//! rewritten to the long flags by [`nmap_output_flag`] before clap parses,
//! since a clap short option is one letter (`-oX` would be `-o X`).
//!
//! As with nmap, writing files does not silence the terminal: a text
//! report still goes to stdout when it is a terminal (a pipe gets only
//! what `-f` asks for, so `-oX f | other` stays clean).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::error::BadInput;
use crate::scan::{Destination, Format};

/// Output options of `trident scan`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format: text, json, jsonl (one line per port, streamed), csv,
    /// grep (as nmap -oG) or xml (as nmap -oX: for ndiff and nmap tools).
    /// [default: text; with -o FILE, the one FILE's extension names]
    #[arg(short = 'f', long)]
    pub format: Option<Format>,
    /// Write results to FILE (appears only when complete), in the -f format,
    /// else the one its extension names (.txt .nmap .json .jsonl .csv .gnmap
    /// .xml), else text. A device or FIFO is written into, never replaced.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// -oN FILE: the text report to FILE (nmap's normal output).
    #[arg(long = "output-normal", value_name = "FILE")]
    pub normal: Vec<PathBuf>,
    /// -oX FILE: nmap's XML to FILE.
    #[arg(long = "output-xml", value_name = "FILE")]
    pub xml: Vec<PathBuf>,
    /// -oG FILE: nmap's grepable lines to FILE.
    #[arg(long = "output-grep", value_name = "FILE")]
    pub grep: Vec<PathBuf>,
    /// -oJ FILE: JSON lines to FILE.
    #[arg(long = "output-jsonl", value_name = "FILE")]
    pub jsonl: Vec<PathBuf>,
    /// -oA BASE: BASE.nmap, BASE.xml and BASE.gnmap, as nmap writes them.
    #[arg(long = "output-all", value_name = "BASE")]
    pub all: Vec<PathBuf>,
    /// JSON: list every closed port instead of a per-host summary
    /// ("closed": {"count", "ports" as ranges}), as nmap's "Not shown".
    #[arg(long)]
    pub show_closed: bool,
}

/// The long flag of nmap's `-oN`, `-oX`, `-oG`, `-oA` and trident's `-oJ`.
pub fn nmap_output_flag(arg: &str) -> Option<&'static str> {
    Some(match arg {
        "-oN" => "--output-normal",
        "-oX" => "--output-xml",
        "-oG" => "--output-grep",
        "-oJ" => "--output-jsonl",
        "-oA" => "--output-all",
        _ => return None,
    })
}

impl OutputArgs {
    /// Where the results go. `-` as a file is stdout (as in nmap);
    /// `stdout_is_terminal` decides whether a text report also goes there
    /// when everything else goes to files.
    pub fn destinations(&self, stdout_is_terminal: bool) -> Result<Vec<Destination>, BadInput> {
        let mut files: Vec<(Format, PathBuf)> = Vec::new();
        if let Some(path) = &self.output {
            // -oS, -oM and the like arrive as -o S: nmap output types
            // trident does not write, not a file name.
            if let Some(kind) = path.to_str().filter(|p| p.len() == 1 && p.chars().all(|c| c.is_ascii_uppercase())) {
                return Err(BadInput(format!(
                    "-o{kind} is not an output type trident writes (-oN, -oX, -oG, -oA BASE, -oJ); a file named {kind} is -o ./{kind}"
                )));
            }
            files.push((self.format.or_else(|| Format::from_path(path)).unwrap_or(Format::Text), path.clone()));
        }
        for (format, paths) in [
            (Format::Text, &self.normal),
            (Format::Xml, &self.xml),
            (Format::Grep, &self.grep),
            (Format::Jsonl, &self.jsonl),
        ] {
            files.extend(paths.iter().map(|p| (format, p.clone())));
        }
        for base in &self.all {
            for (format, ext) in [(Format::Text, "nmap"), (Format::Xml, "xml"), (Format::Grep, "gnmap")] {
                let mut name = base.clone().into_os_string();
                name.push(format!(".{ext}"));
                files.push((format, PathBuf::from(name)));
            }
        }
        let mut seen = BTreeSet::new();
        let mut stdout = None;
        let mut out = Vec::new();
        for (format, path) in files {
            if path.as_os_str() == "-" {
                if stdout.replace(format).is_some() {
                    return Err(BadInput("more than one output goes to stdout (-)".into()));
                }
            } else if !seen.insert(path.clone()) {
                return Err(BadInput(format!("{} is given as an output twice", path.display())));
            } else {
                out.push(Destination { format, path: Some(path) });
            }
        }
        // -f names stdout's format unless -o FILE took it.
        let free_format = self.format.filter(|_| self.output.is_none());
        let stdout = match (stdout, free_format) {
            (Some(format), _) => Some(format),
            (None, Some(format)) => Some(format),
            (None, None) if out.is_empty() || stdout_is_terminal => Some(Format::Text),
            (None, None) => None,
        };
        if let Some(format) = stdout {
            out.insert(0, Destination { format, path: None });
        }
        Ok(out)
    }
}

/// A hint for a target that is plainly not a host: a file name (`out.xml`:
/// an output flag lost its letter, or `-iL` was forgotten) or a command
/// word (`help`). Such a word is refused before any DNS lookup is made.
pub fn not_a_host(spec: &str) -> Option<String> {
    if spec.eq_ignore_ascii_case("help") {
        return Some(format!("{spec:?} is not a target; see trident scan --help"));
    }
    let path = Path::new(spec);
    let flag = match Format::from_path(path)? {
        Format::Text if path.is_file() => "-iL",
        Format::Text => "-oN",
        Format::Xml => "-oX",
        Format::Grep => "-oG",
        Format::Jsonl => "-oJ",
        Format::Json | Format::Csv => "-o",
    };
    Some(format!("{spec:?} looks like a file, not a target host: did you mean {flag} {spec}?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(format: Format, path: Option<&str>) -> Destination {
        Destination { format, path: path.map(PathBuf::from) }
    }

    fn args(format: Option<Format>, output: Option<&str>) -> OutputArgs {
        OutputArgs {
            format,
            output: output.map(PathBuf::from),
            normal: vec![],
            xml: vec![],
            grep: vec![],
            jsonl: vec![],
            all: vec![],
            show_closed: false,
        }
    }

    #[test]
    fn o_takes_its_format_from_f_then_the_extension() {
        let cases = [
            (None, None, false, vec![dest(Format::Text, None)]),
            (Some(Format::Csv), None, false, vec![dest(Format::Csv, None)]),
            (None, Some("r.xml"), false, vec![dest(Format::Xml, Some("r.xml"))]),
            (None, Some("r.gnmap"), false, vec![dest(Format::Grep, Some("r.gnmap"))]),
            (None, Some("r.out"), false, vec![dest(Format::Text, Some("r.out"))]),
            (Some(Format::Json), Some("r.xml"), false, vec![dest(Format::Json, Some("r.xml"))]),
            // A terminal still gets the text report.
            (None, Some("r.json"), true, vec![dest(Format::Text, None), dest(Format::Json, Some("r.json"))]),
            (None, Some("-"), true, vec![dest(Format::Text, None)]),
        ];
        for (format, output, tty, want) in cases {
            assert_eq!(args(format, output).destinations(tty).unwrap(), want, "{format:?} {output:?} {tty}");
        }
    }

    #[test]
    fn nmap_flags_add_files_and_f_keeps_stdout() {
        let mut a = args(Some(Format::Jsonl), None);
        a.all = vec![PathBuf::from("d/scan")];
        a.xml = vec![PathBuf::from("other.xml")];
        let got = a.destinations(false).unwrap();
        assert_eq!(
            got,
            vec![
                dest(Format::Jsonl, None),
                dest(Format::Xml, Some("other.xml")),
                dest(Format::Text, Some("d/scan.nmap")),
                dest(Format::Xml, Some("d/scan.xml")),
                dest(Format::Grep, Some("d/scan.gnmap")),
            ]
        );
        let mut twice = args(None, Some("x.xml"));
        twice.xml = vec![PathBuf::from("x.xml")];
        assert!(twice.destinations(false).unwrap_err().0.contains("x.xml is given as an output twice"));
        assert_eq!(nmap_output_flag("-oA"), Some("--output-all"));
        let err = args(None, Some("S")).destinations(false).unwrap_err().0;
        assert!(err.starts_with("-oS is not an output type trident writes"), "{err}");
        assert!(args(None, Some("./S")).destinations(false).is_ok());
        assert_eq!(nmap_output_flag("-o"), None);
    }

    #[test]
    fn file_names_and_help_are_not_hosts() {
        assert_eq!(
            not_a_host("out.xml").unwrap(),
            "\"out.xml\" looks like a file, not a target host: did you mean -oX out.xml?"
        );
        assert!(not_a_host("r.csv").unwrap().contains("did you mean -o r.csv?"));
        assert!(not_a_host("missing-hosts.txt").unwrap().contains("-oN missing-hosts.txt"));
        assert!(not_a_host("help").unwrap().contains("see trident scan --help"));
        for host in ["localhost", "example.com", "10.0.0.1", "10.0.0.0/30", "xml"] {
            assert_eq!(not_a_host(host), None, "{host}");
        }
    }
}
