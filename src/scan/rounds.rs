//! Retry rounds per window of the probe order, so that what a scan holds
//! depends on its concurrency, not on its target.
//!
//! The permuted order is cut into windows of a few thousand probes. Each
//! window runs its own rounds: round 0 probes it; once every probe of the
//! round has an outcome, the silent ones are probed again (if the retry
//! policy wants it) or become final (`filtered/no-response`). A window's
//! retry batch goes out ahead of new probes, so windows overlap in one
//! stream of tasks and the engine never drains between them. Only the
//! silent probes of the few windows in progress are held (each at most
//! one window), and a filtered port is reported a few timeouts after it
//! was first probed, instead of at the end of the scan.
//!
//! The adaptive policy keeps its whole-scan meaning: a window's next round
//! runs if it is expected to reveal an open port with at least its share
//! of the scan's budget (see `timing::Evidence::worth_another_in`).
//!
//! Sans-IO: [`Rounds`] says which probe goes next and is told outcomes;
//! `run.rs` runs the probes on an engine.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use super::timing::{Evidence, Retries};

/// A probe target: (block, address, port).
pub(crate) type Probe = (u32, IpAddr, u16);

/// Probes per window: a few waves of the engine, within 4,096-65,536.
pub(crate) fn window_size(concurrency: usize) -> usize {
    concurrency.saturating_mul(2).clamp(4096, 65_536)
}

#[derive(Debug, Default)]
struct Window {
    /// Probes in this window's round 0.
    size: usize,
    /// Every probe of the current round has been handed out.
    closed: bool,
    /// Probes of the current round without an outcome yet.
    outstanding: usize,
    /// The current round (0 = first probe of each port).
    round: u8,
    /// Silent in the current round.
    silent: Vec<Probe>,
    /// The answers of this window's ports, by try.
    evidence: Evidence,
}

/// Which window each probe belongs to, and every window's rounds.
#[derive(Debug)]
pub(crate) struct Rounds {
    window_size: usize,
    /// Round-0 probes of the whole scan (this shard): windows' shares.
    total: u64,
    retries: Retries,
    /// Every answer so far, by try (the scan-wide rates).
    evidence: Evidence,
    windows: BTreeMap<u64, Window>,
    /// The window of each probe handed out and not yet answered.
    inflight: HashMap<Probe, u64>,
    /// Retry batches ready to go: (window, round, probes).
    queue: VecDeque<(u64, u8, std::vec::IntoIter<Probe>)>,
    /// The window new probes join, and the next window's number.
    current: Option<u64>,
    next_id: u64,
    order_done: bool,
    /// Probes that became final: silent on every try (with their tries).
    finals: Vec<(Probe, u32)>,
    /// Most silent probes held at once (for tests and `-v`).
    pub(crate) peak_held: usize,
    held: usize,
}

impl Rounds {
    pub(crate) fn new(window_size: usize, total: u64, retries: Retries) -> Self {
        Rounds {
            window_size: window_size.max(1),
            total: total.max(1),
            retries,
            evidence: Evidence::default(),
            windows: BTreeMap::new(),
            inflight: HashMap::new(),
            queue: VecDeque::new(),
            current: None,
            next_id: 0,
            order_done: false,
            finals: Vec::new(),
            peak_held: 0,
            held: 0,
        }
    }

    /// The next probe and its retry number: a ready retry first, else the
    /// next probe of `order`. `None` when neither is there (more retries
    /// may become ready as outcomes arrive: see [`Rounds::has_queued`]).
    pub(crate) fn next(&mut self, order: &mut impl Iterator<Item = Probe>) -> Option<(Probe, u8)> {
        while let Some((id, round, batch)) = self.queue.front_mut() {
            if let Some(p) = batch.next() {
                self.held -= 1;
                self.inflight.insert(p, *id);
                return Some((p, *round));
            }
            self.queue.pop_front();
        }
        if self.order_done {
            return None;
        }
        let Some(p) = order.next() else {
            self.order_done = true;
            if let Some(id) = self.current.take() {
                self.close(id);
            }
            return None;
        };
        let id = match self.current {
            Some(id) => id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.windows.insert(id, Window::default());
                self.current = Some(id);
                id
            }
        };
        let w = self.windows.get_mut(&id).unwrap_or_else(|| unreachable!("the current window exists"));
        w.size += 1;
        w.outstanding += 1;
        if w.size >= self.window_size {
            self.current = None;
            self.close(id);
        }
        self.inflight.insert(p, id);
        Some((p, 0))
    }

    /// Round 0 of window `id` is fully handed out.
    fn close(&mut self, id: u64) {
        if let Some(w) = self.windows.get_mut(&id) {
            w.closed = true;
            if w.outstanding == 0 {
                self.round_done(id);
            }
        }
    }

    /// Probe `p` answered (`Some(open)`) on its `tries`-th try, or stayed
    /// silent (`None`), or could not be run (`answered` with `failed`).
    pub(crate) fn outcome(&mut self, p: Probe, tries: u32, answer: Option<bool>) {
        let Some(id) = self.inflight.remove(&p) else { return };
        let Some(w) = self.windows.get_mut(&id) else { return };
        match answer {
            Some(open) => {
                w.evidence.count(tries, open);
                self.evidence.count(tries, open);
            }
            None => {
                w.silent.push(p);
                self.held += 1;
                self.peak_held = self.peak_held.max(self.held);
            }
        }
        w.outstanding = w.outstanding.saturating_sub(1);
        if w.closed && w.outstanding == 0 {
            self.round_done(id);
        }
    }

    /// A probe that the engine could not run: it ends without an answer
    /// and without a retry.
    pub(crate) fn failed(&mut self, p: Probe) {
        let Some(id) = self.inflight.remove(&p) else { return };
        let Some(w) = self.windows.get_mut(&id) else { return };
        w.outstanding = w.outstanding.saturating_sub(1);
        if w.closed && w.outstanding == 0 {
            self.round_done(id);
        }
    }

    /// Every probe of window `id`'s round has an outcome: retry the silent
    /// ones, or make them final.
    fn round_done(&mut self, id: u64) {
        let Some(w) = self.windows.get_mut(&id) else { return };
        let tries = u32::from(w.round) + 1;
        let share = w.size as f64 / self.total as f64;
        let again = !w.silent.is_empty()
            && match self.retries {
                Retries::Fixed(n) => tries <= u32::from(n),
                Retries::Adaptive { max } => {
                    tries <= u32::from(max) && (tries == 1 || self.evidence.worth_another_in(&w.evidence, tries, share))
                }
            };
        if again {
            w.round += 1;
            let batch = std::mem::take(&mut w.silent);
            w.outstanding = batch.len();
            self.queue.push_back((id, w.round, batch.into_iter()));
        } else if let Some(w) = self.windows.remove(&id) {
            self.held -= w.silent.len();
            self.finals.extend(w.silent.into_iter().map(|p| (p, tries)));
        }
    }

    /// Whether retry batches are waiting to be handed out.
    pub(crate) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Takes the probes that became final since the last call.
    pub(crate) fn take_finals(&mut self) -> std::vec::Drain<'_, (Probe, u32)> {
        self.finals.drain(..)
    }

    /// After an interrupt: every probe still silent, final as it is.
    pub(crate) fn abandon(&mut self) -> Vec<(Probe, u32)> {
        let mut out: Vec<(Probe, u32)> = std::mem::take(&mut self.finals);
        for (_, w) in std::mem::take(&mut self.windows) {
            let tries = u32::from(w.round) + 1;
            out.extend(w.silent.into_iter().map(|p| (p, tries)));
        }
        for (_, round, batch) in std::mem::take(&mut self.queue) {
            // Queued for retry `round`: silent on `round` tries so far.
            out.extend(batch.map(|p| (p, u32::from(round))));
        }
        self.held = 0;
        out
    }

    /// Counts an answer to a calibration probe (outside every window).
    pub(crate) fn count_calibration(&mut self, tries: u32, open: bool) {
        self.evidence.count(tries, open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives `n` probes through windows of `w` with a fake engine of
    /// `concurrency` slots in which `silent(probe, try)` decides silence;
    /// returns (tries per final silent probe, answers, peak held).
    fn drive(
        n: u32,
        w: usize,
        concurrency: usize,
        retries: Retries,
        silent: impl Fn(u32, u32) -> bool,
    ) -> (Vec<u32>, usize, usize) {
        let mut rounds = Rounds::new(w, u64::from(n), retries);
        let mut order = (0..n).map(|i| (i, IpAddr::from([10, 0, 0, 1]), 1u16));
        let mut finals = Vec::new();
        let mut answers = 0;
        loop {
            let mut flight = VecDeque::new();
            loop {
                while flight.len() < concurrency {
                    match rounds.next(&mut order) {
                        Some(t) => flight.push_back(t),
                        None => break,
                    }
                }
                let Some((p, retry)) = flight.pop_front() else { break };
                let tries = u32::from(retry) + 1;
                if silent(p.0, tries) {
                    rounds.outcome(p, tries, None);
                } else {
                    answers += 1;
                    rounds.outcome(p, tries, Some(false));
                }
                finals.extend(rounds.take_finals().map(|(_, t)| t));
            }
            if !rounds.has_queued() {
                break;
            }
        }
        (finals, answers, rounds.peak_held)
    }

    #[test]
    fn every_probe_ends_once_and_silence_is_held_per_window() {
        // All silent, fixed 2 retries: every probe final after 3 tries;
        // never more than a couple of windows' worth held.
        let (finals, answers, peak) = drive(100_000, 4096, 512, Retries::Fixed(2), |_, _| true);
        assert_eq!(answers, 0);
        assert_eq!(finals.len(), 100_000);
        assert!(finals.iter().all(|&t| t == 3));
        assert!(peak <= 2 * 4096 + 512, "held {peak}");
    }

    #[test]
    fn answers_on_a_retry_are_not_final_silence() {
        // Even probes answer on their second try only.
        let (finals, answers, _) = drive(10_000, 4096, 64, Retries::Fixed(3), |i, tries| !(i % 2 == 0 && tries == 2));
        assert_eq!(answers, 5_000);
        assert_eq!(finals.len(), 5_000);
        assert!(finals.iter().all(|&t| t == 4));
    }

    #[test]
    fn adaptive_policy_retries_once_when_nothing_is_recovered() {
        let (finals, _, _) = drive(20_000, 4096, 128, Retries::Adaptive { max: 10 }, |_, _| true);
        assert_eq!(finals.len(), 20_000);
        assert!(finals.iter().all(|&t| t == 2), "the first retry always runs, no more");
    }

    #[test]
    fn window_sizes() {
        assert_eq!(window_size(1), 4096);
        assert_eq!(window_size(4096), 8192);
        assert_eq!(window_size(1 << 20), 65_536);
    }
}
