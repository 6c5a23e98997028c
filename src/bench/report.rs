//! What the benches share: medians, finding a peer program, and writing
//! `runs.csv` + `summary.json` into `--out DIR` (each file atomically).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::output::AtomicFile;

/// The median (mean of the middle two for an even count); NaN when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

/// Finds `program` on PATH, then in /opt/<program>/bin (where a bench
/// machine may have had it built with `cargo install --root`).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from(format!("/opt/{program}/bin"))])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Writes `runs` as DIR/runs.csv (a header from the record's fields, one
/// row per run) and `report` as DIR/summary.json (pretty), creating DIR.
pub fn write_out<R: Serialize>(dir: &Path, runs: &[R], report: &impl Serialize) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    for run in runs {
        csv.serialize(run)?;
    }
    let csv = csv.into_inner().map_err(|e| anyhow::anyhow!("cannot write runs.csv: {e}"))?;
    for (name, bytes) in [("runs.csv", csv), ("summary.json", serde_json::to_vec_pretty(report)?)] {
        let file = AtomicFile::create(&dir.join(name))?;
        std::io::Write::write_all(&mut file.file()?, &bytes)?;
        file.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 8.0]), 6.0);
        assert!(median(Vec::new()).is_nan());
    }
}
