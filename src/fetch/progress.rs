//! Live progress of `trident fetch` on stderr (indicatif), only when stderr
//! is a terminal and `-q` is not given: one line per active download (name,
//! bytes, %, speed, ETA; at most [`MAX_LINES`] of them) and a total line
//! (files done/total, bytes, speed).
//!
//! Where the numbers come from: the run loop says when a download starts
//! (the engine takes its task) and ends (its result comes back); in between,
//! a ticker thread looks at the size of the download's `NAME.part` file.
//! That works the same on every engine — a worker process has no channel to
//! the parent's bars, but its `.part` file is in DIR like everyone else's —
//! and needs no change to the download code. The expected length (for %
//! and ETA) comes from the `.part` file's resume state (`NAME.part.state`,
//! written at each checkpoint of a resumable download); until then, and for
//! bodies that are not resumable, the line shows bytes and speed only (the
//! Content-Length itself stays inside the task; [`Progress::set_length`]
//! takes it if a task ever reports it).
//! The total is "done/started+" while the input is still being read.
//! Speeds appear once they have been measured for a second, and leave out
//! what was on disk before (a resumed `.part`): a first tick would divide
//! it by a few milliseconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::report::human_bytes;
use super::store;

/// Download lines shown at most; the total line counts the others.
pub const MAX_LINES: usize = 8;
/// How often `.part` sizes are looked at and the lines redrawn.
const TICK: Duration = Duration::from_millis(200);

/// Progress lines, or nothing at all (not a terminal, `-q`).
#[derive(Debug)]
pub struct Progress {
    drawing: Option<Drawing>,
}

/// The lines being drawn, and the ticker thread that redraws them.
#[derive(Debug)]
struct Drawing {
    shared: Arc<Shared>,
    stop: Sender<()>,
    ticker: Option<thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    multi: MultiProgress,
    total: ProgressBar,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    active: BTreeMap<u64, Active>,
    started: u64,
    ended: u64,
    input_done: bool,
    bytes_done: u64,
    /// Bytes already in `.part` files when their downloads were first seen.
    bytes_before: u64,
    since: Instant,
}

#[derive(Debug)]
struct Active {
    name: String,
    parts: Vec<PathBuf>,
    length: Option<u64>,
    bytes: u64,
    /// Whether `bytes` has been measured once (what was there before it
    /// started counts in `bytes_before`).
    seen: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress on stderr if it is a terminal that can redraw, and not `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self::with_target(!quiet && crate::term::progress_wanted(), ProgressDrawTarget::stderr_with_hz(10))
    }

    /// No progress at all.
    pub fn off() -> Self {
        Progress { drawing: None }
    }

    fn with_target(enabled: bool, target: ProgressDrawTarget) -> Self {
        if !enabled {
            return Self::off();
        }
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new_spinner());
        total.set_style(style("{spinner} {msg}"));
        let state = State {
            active: BTreeMap::new(),
            started: 0,
            ended: 0,
            input_done: false,
            bytes_done: 0,
            bytes_before: 0,
            since: Instant::now(),
        };
        let shared = Arc::new(Shared { multi, total, state: Mutex::new(state) });
        let (stop, stopped) = bounded::<()>(1);
        let ticking = Arc::clone(&shared);
        let ticker = thread::Builder::new()
            .name("trident-progress".into())
            .spawn(move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    ticking.tick();
                }
            })
            .ok();
        if ticker.is_none() {
            return Self::off();
        }
        Progress { drawing: Some(Drawing { shared, stop, ticker }) }
    }

    /// Whether anything is drawn.
    pub fn is_live(&self) -> bool {
        self.drawing.is_some()
    }

    /// Download `index` started. `describe` gives the name shown and where
    /// its body grows (one part path per URL it may come from); it is only
    /// called when progress is shown (it parses the URLs).
    pub fn started(&self, index: u64, describe: impl FnOnce() -> (String, Vec<PathBuf>)) {
        let Some(drawing) = &self.drawing else { return };
        let (name, parts) = describe();
        let mut state = drawing.shared.lock();
        state.started += 1;
        state.active.insert(index, Active { name, parts, length: None, bytes: 0, seen: false, bar: None });
    }

    /// The expected length of download `index`, once known.
    pub fn set_length(&self, index: u64, length: u64) {
        let Some(drawing) = &self.drawing else { return };
        if let Some(active) = drawing.shared.lock().active.get_mut(&index) {
            active.length = Some(length);
        }
    }

    /// No more downloads will start (the input is read to its end).
    pub fn input_done(&self) {
        if let Some(drawing) = &self.drawing {
            drawing.shared.lock().input_done = true;
        }
    }

    /// Download `index` ended with `bytes` saved.
    pub fn ended(&self, index: u64, bytes: u64) {
        let Some(drawing) = &self.drawing else { return };
        let mut state = drawing.shared.lock();
        state.ended += 1;
        state.bytes_done += bytes;
        if let Some(bar) = state.active.remove(&index).and_then(|a| a.bar) {
            bar.finish_and_clear();
            drawing.shared.multi.remove(&bar);
        }
        drop(state);
        drawing.shared.tick();
    }

    /// Runs `f` (which writes to the terminal) with the lines cleared.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.drawing {
            Some(drawing) => drawing.shared.multi.suspend(f),
            None => f(),
        }
    }

    /// Stops drawing and clears the lines.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(mut drawing) = self.drawing.take() else { return };
        let _ = drawing.stop.send(());
        if let Some(t) = drawing.ticker.take() {
            let _ = t.join();
        }
        let mut state = drawing.shared.lock();
        for bar in state.active.values_mut().filter_map(|a| a.bar.take()) {
            bar.finish_and_clear();
        }
        drawing.shared.total.finish_and_clear();
        let _ = drawing.shared.multi.clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).with_key(
        "speed",
        |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            if let Some(rate) = crate::term::settled_rate(state) {
                let _ = write!(out, "{}/s", human_bytes(rate as u64));
            }
        },
    )
}

/// A download line: with a length, % and ETA; without, bytes and speed only.
fn line_style(length: Option<u64>) -> ProgressStyle {
    match length {
        Some(_) => style("  {prefix:32!} {bytes:>11} {percent:>3}% {speed:>13} ETA {eta}"),
        None => style("  {prefix:32!} {bytes:>11}      {speed:>13}"),
    }
}

/// Bytes in a `.part` file: its length, or the blocks it holds when that is
/// less (a split download writes its parts at their offsets: the file is
/// sparse, as long as its furthest part).
fn written(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.len().min(m.blocks().saturating_mul(512))
}

/// The length recorded in the `.part` file's resume state (written at
/// each checkpoint of a resumable download), if any.
fn length_from_state(part: &Path) -> Option<u64> {
    store::read_state(&store::state_path(part)).and_then(|s| s.validators.total)
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the `.part` sizes, gives lines to downloads without one, and
    /// redraws the total.
    fn tick(&self) {
        let mut state = self.lock();
        let mut shown = state.active.values().filter(|a| a.bar.is_some()).count();
        let mut active_bytes = 0;
        let mut state_before = 0;
        for active in state.active.values_mut() {
            let size = active.parts.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| written(&m)).max();
            // A part file vanishes when it is renamed: keep the last size.
            if let Some(size) = size {
                active.bytes = size;
            }
            if !active.seen {
                active.seen = true;
                state_before += active.bytes;
            }
            if active.length.is_none() && active.bar.is_some() {
                active.length = active.parts.iter().find_map(|p| length_from_state(p));
            }
            active_bytes += active.bytes;
            if active.bar.is_none() && shown < MAX_LINES {
                // Starting at the size already written keeps that out of the speed.
                let bar = self.multi.insert_before(&self.total, ProgressBar::no_length().with_position(active.bytes));
                bar.set_style(line_style(active.length));
                bar.set_prefix(active.name.clone());
                shown += 1;
                active.bar = Some(bar);
            }
            if let Some(bar) = &active.bar {
                if bar.length() != active.length {
                    bar.set_style(line_style(active.length));
                    if let Some(len) = active.length {
                        bar.set_length(len);
                    }
                }
                bar.set_position(active.bytes);
            }
        }
        state.bytes_before += state_before;
        let bytes = state.bytes_done + active_bytes;
        let elapsed = state.since.elapsed();
        let speed = if elapsed >= crate::term::RATE_SETTLES {
            let new = bytes.saturating_sub(state.bytes_before);
            format!("  {}/s", human_bytes((new as f64 / elapsed.as_secs_f64()) as u64))
        } else {
            String::new()
        };
        let more = if state.input_done { "" } else { "+" };
        let hidden = state.active.len().saturating_sub(shown);
        let hidden = if hidden > 0 { format!(" ({hidden} more active)") } else { String::new() };
        self.total.set_message(format!(
            "files {}/{}{more}  {}{speed}{hidden}",
            state.ended,
            state.started,
            human_bytes(bytes),
        ));
        self.total.tick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_when_not_enabled_and_harmless() {
        let p = Progress::with_target(false, ProgressDrawTarget::hidden());
        assert!(!p.is_live());
        p.started(0, || ("x".into(), vec![]));
        p.ended(0, 3);
        assert_eq!(p.suspend(|| 7), 7);
        p.finish();
    }

    #[test]
    fn counts_files_and_part_bytes() {
        let d = tempfile::tempdir().expect("tempdir");
        let part = d.path().join("a.bin.part");
        std::fs::write(&part, vec![0u8; 1500]).expect("write");
        let p = Progress::with_target(true, ProgressDrawTarget::hidden());
        p.started(0, || ("a.bin".into(), vec![part.clone(), d.path().join("other.part")]));
        p.started(1, || ("b.bin".into(), vec![]));
        let drawing = p.drawing.as_ref().expect("drawing");
        drawing.shared.tick();
        assert_eq!(drawing.shared.lock().active[&0].bytes, 1500);
        let message = drawing.shared.total.message();
        assert!(message.starts_with("files 0/2+  1.5 KiB"), "{message}");
        // What was on disk before is no speed, and a first tick shows none.
        assert_eq!(drawing.shared.lock().bytes_before, 1500);
        assert!(!message.contains("/s"), "{message}");
        p.set_length(0, 3000);
        drawing.shared.tick();
        assert_eq!(drawing.shared.lock().active[&0].bar.as_ref().and_then(ProgressBar::length), Some(3000));
        p.ended(1, 10);
        p.input_done();
        drawing.shared.tick();
        let message = drawing.shared.total.message();
        assert!(message.starts_with("files 1/2  1.5 KiB"), "{message}");
        p.finish();
    }
}
