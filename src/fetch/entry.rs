//! One entry of a fetch run as an engine task: a [`FetchTask`] plus what an
//! input-file entry may add (see `input`) — mirrors tried in order, a name
//! from `out=`, a directory from `dir=` — or a bad input line, reported as
//! a `bad-url` result without any request. Command-line URLs are entries
//! without any of these, so every engine runs one task type.
//!
//! Mirrors are tried inside the task, so they work the same on every engine
//! (a worker process tries them itself): the next mirror after a download
//! `failed` (after its own retries) or did not match its checksum.
//!
//! Without `out=`, a file is named after the entry's first URL, whichever
//! mirror serves it.
//!
//! `out=` (and mirrors whose URLs would give different names) sets the
//! download's own name ([`FetchTask::name`]): the file is written, checked
//! and committed under it by the same code as any other, with the run's
//! collision rule, and resumes like any other.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use super::auth::without_password;
use super::beneath;
use super::input::{BadLine, Entry};
use super::name::name_from_url;
use super::task::{FetchResult, FetchTask, Status};
use crate::engine::{Ctx, Task};
use crate::output::{Escapes, escaped};

/// A `dir=` option: `fetch.dir` is `base` joined with `sub`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubDir {
    /// The run's download directory (`-d DIR`).
    pub base: PathBuf,
    /// The path beneath it (relative, without `..`: checked when read).
    pub sub: PathBuf,
    /// Where the input file gave it (`LIST:LINE`), for messages.
    pub place: String,
}

/// One URL (with its mirrors and options) to download, or a bad input line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EntryTask {
    /// The first URL, the directory and the options (with the entry's
    /// checksum); for a bad line, its text as the URL.
    pub fetch: FetchTask,
    /// More URLs for the same file, tried in order when one fails.
    pub mirrors: Vec<String>,
    /// `out=`: the final name, sanitised (also in `fetch.name`).
    pub out: Option<String>,
    /// `fetch.dir` comes from `dir=`: made beneath `-d DIR` first (see
    /// `beneath`); its files are synced with their names like any other.
    pub sub_dir: Option<SubDir>,
    /// A bad input line: this is the error, nothing is downloaded.
    pub bad: Option<String>,
}

impl EntryTask {
    /// A plain download (a command-line URL).
    pub fn plain(fetch: FetchTask) -> Self {
        EntryTask { fetch, mirrors: Vec::new(), out: None, sub_dir: None, bad: None }
    }

    /// A bad input line: `fetch.url` holds its text.
    pub fn bad(fetch: FetchTask, reason: String) -> Self {
        EntryTask { bad: Some(reason), ..EntryTask::plain(fetch) }
    }

    /// The task for one item of an input file called `list`; `base` holds
    /// the index, the run's directory and options.
    pub fn from_input(base: FetchTask, list: &str, item: Result<Entry, BadLine>) -> Self {
        match item {
            Err(bad) => {
                let place = if bad.line > 0 { format!("{list}:{}", bad.line) } else { list.to_string() };
                let text = if bad.text.is_empty() { list.to_string() } else { bad.text };
                EntryTask::bad(FetchTask { url: text, ..base }, format!("{place}: {}", bad.reason))
            }
            Ok(entry) => {
                // Mirrors serve the same file: it is named after the first
                // URL whichever serves it.
                let names: Vec<String> =
                    entry.urls.iter().filter_map(|u| Url::parse(u).ok()).map(|u| name_from_url(&u)).collect();
                let out = match entry.out {
                    None if names.iter().any(|n| *n != names[0]) => Some(names[0].clone()),
                    out => out,
                };
                let mut urls = entry.urls.into_iter();
                let mut fetch = FetchTask { url: urls.next().unwrap_or_default(), name: out.clone(), ..base };
                if let Some(digest) = entry.sha256 {
                    fetch.options.sha256 = Some(digest);
                }
                let sub_dir = entry.dir.map(|sub| {
                    let base = fetch.dir.clone();
                    // Relative and without `..` (see `input`): beneath DIR.
                    fetch.dir = base.join(&sub);
                    SubDir { base, sub, place: format!("{list}:{}", entry.line) }
                });
                EntryTask { fetch, mirrors: urls.collect(), out, sub_dir, bad: None }
            }
        }
    }

    /// The entry's URLs in the order they are tried.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.fetch.url.as_str()).chain(self.mirrors.iter().map(String::as_str))
    }

    /// The name shown while downloading: `out=`, or the first URL's name.
    pub fn display_name(&self) -> String {
        match (&self.out, Url::parse(&self.fetch.url)) {
            (Some(out), _) => out.clone(),
            (None, Ok(url)) => name_from_url(&url),
            (None, Err(_)) => escaped(&without_password(&self.fetch.url), Escapes::Backslash).into_owned(),
        }
    }

    /// Where the body grows while a URL of this entry is downloaded (one
    /// path per URL: mirrors may have other names). Empty for a bad line.
    pub fn part_paths(&self) -> Vec<PathBuf> {
        if self.bad.is_some() {
            return Vec::new();
        }
        let dir = &self.fetch.dir;
        if let Some(out) = &self.out {
            return vec![dir.join(format!("{out}.part"))];
        }
        self.urls()
            .filter_map(|u| Url::parse(u).ok())
            .map(|u| dir.join(format!("{}.part", name_from_url(&u))))
            .collect()
    }

    /// A result without any download.
    fn early(&self, status: Status, name: Option<String>, error: Option<String>) -> FetchResult {
        FetchResult { status, name, error, ..FetchResult::engine_failure(&self.fetch, String::new()) }
    }

    /// Bad line, directory to create: the result if it ends here.
    fn precheck(&self) -> Option<FetchResult> {
        if let Some(why) = &self.bad {
            return Some(self.early(Status::BadUrl, None, Some(why.clone())));
        }
        if let Some(SubDir { base, sub, place }) = &self.sub_dir
            && let Err(e) = beneath::make_beneath(base, sub)
        {
            let why = format!("{place}: dir={}: cannot use it beneath {}: {e}", sub.display(), base.display());
            return Some(self.early(Status::LocalError, None, Some(why)));
        }
        None
    }

    /// The download of URL `url`, one of the entry's mirrors.
    fn attempt(&self, url: &str) -> FetchTask {
        FetchTask { url: url.to_string(), ..self.fetch.clone() }
    }
}

/// The combined result of the URLs tried so far.
#[derive(Debug, Default)]
struct Tried {
    worst: Option<FetchResult>,
    errors: Vec<String>,
    attempts: u32,
}

impl Tried {
    /// Takes one URL's result: `Some` when the entry ends with it.
    fn take(&mut self, mut result: FetchResult, last: bool) -> Option<FetchResult> {
        self.attempts += result.attempts;
        result.attempts = self.attempts;
        let next_mirror = matches!(result.status, Status::Failed | Status::ChecksumMismatch | Status::BadUrl);
        if !next_mirror || (last && self.errors.is_empty()) {
            return Some(result);
        }
        self.errors.push(format!("{}: {}", result.url, result.error.as_deref().unwrap_or("failed")));
        let worse = self.worst.as_ref().is_none_or(|w| result.status.exit_code() > w.status.exit_code());
        if worse {
            self.worst = Some(result);
        }
        if !last {
            return None;
        }
        let mut worst = self.worst.take()?;
        worst.attempts = self.attempts;
        worst.error = Some(format!("every mirror failed: {}", self.errors.join("; ")));
        Some(worst)
    }
}

impl Task for EntryTask {
    type Output = FetchResult;
    const NAME: &'static str = "fetch-entry";

    fn run_blocking(self, ctx: &Ctx) -> FetchResult {
        if let Some(result) = self.precheck() {
            return result;
        }
        let urls: Vec<String> = self.urls().map(String::from).collect();
        let mut tried = Tried::default();
        for (i, url) in urls.iter().enumerate() {
            let result = self.attempt(url).run_blocking(ctx);
            if let Some(result) = tried.take(result, i + 1 == urls.len()) {
                return result;
            }
        }
        self.early(Status::BadUrl, None, Some("no URL".into()))
    }

    async fn run_async(self, ctx: Ctx) -> FetchResult {
        if let Some(result) = self.precheck() {
            return result;
        }
        let urls: Vec<String> = self.urls().map(String::from).collect();
        let mut tried = Tried::default();
        for (i, url) in urls.iter().enumerate() {
            let result = self.attempt(url).run_async(ctx.clone()).await;
            if let Some(result) = tried.take(result, i + 1 == urls.len()) {
                return result;
            }
        }
        self.early(Status::BadUrl, None, Some("no URL".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result (through JSON, so that new fields with defaults need no change here).
    fn result(url: &str, status: Status, attempts: u32) -> FetchResult {
        serde_json::from_value(serde_json::json!({
            "index": 0, "url": url, "status": status, "name": null, "bytes": 0, "sha256": null,
            "http_status": null, "attempts": attempts, "resumed_from": 0,
            "error": format!("{} error", status.name()), "elapsed_ms": 0,
        }))
        .expect("a FetchResult")
    }

    #[test]
    fn mirrors_table() {
        use Status::*;
        // (statuses of the URLs tried, expected final status, URLs tried)
        let cases: [(&[Status], Status, usize); 7] = [
            (&[Done], Done, 1),
            (&[Failed, Done], Done, 2),
            (&[ChecksumMismatch, Failed, Done], Done, 3),
            (&[Failed, Failed], Failed, 2),
            (&[ChecksumMismatch, Failed], ChecksumMismatch, 2),
            (&[LocalError, Done], LocalError, 1),
            (&[Skipped], Skipped, 1),
        ];
        for (statuses, want, want_tried) in cases {
            let mut tried = Tried::default();
            let mut end = None;
            let mut used = 0;
            for (i, s) in statuses.iter().enumerate() {
                used += 1;
                if let Some(r) = tried.take(result(&format!("http://m{i}/x"), *s, 2), i + 1 == statuses.len()) {
                    end = Some(r);
                    break;
                }
            }
            let end = end.expect("an end");
            assert_eq!((end.status, used, end.attempts), (want, want_tried, 2 * want_tried as u32), "{statuses:?}");
            if statuses.len() > 1 && want != Done && want_tried > 1 {
                let error = end.error.unwrap_or_default();
                assert!(error.starts_with("every mirror failed: http://m0/x: "), "{error}");
            }
        }
    }
}
