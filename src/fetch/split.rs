//! Splitting one download into ranged parts (`-s K`, aria2's `-s`/`-k`),
//! without any I/O: which byte ranges are done, which wait for a worker,
//! which a worker is fetching, and when a part far behind is cut in two for
//! an idle worker. The engines' code (`task/ranged.rs`) moves the bytes.
//!
//! A [`Plan`] starts with the bytes still missing cut into at most K pieces
//! of at least the minimum split size. Workers (scoped threads, or futures
//! of one task) [`claim`](Plan::claim) a piece, [`reserve`](Plan::reserve)
//! each chunk they read before writing it at its offset, and report it
//! [`wrote`](Plan::wrote). A worker left without a piece takes the second
//! half of the part with the most bytes left, if both halves would still
//! be at least the minimum split size: the other worker's part now ends
//! where the new one starts, and it stops there (dropping its connection).
//! A worker that fails [`release`](Plan::release)s the rest of its part,
//! which the next idle worker takes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A half-open byte range `[start, end)`.
pub type Span = (u64, u64);

/// Sorted, disjoint, non-adjacent, non-empty byte ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet(Vec<Span>);

impl RangeSet {
    /// The ranges of `spans` within `[0, limit)`, merged.
    pub fn from_spans(spans: impl IntoIterator<Item = Span>, limit: u64) -> Self {
        let mut set = RangeSet::default();
        for (start, end) in spans {
            set.insert((start, end.min(limit)));
        }
        set
    }

    /// Adds a range (merged with what it touches).
    pub fn insert(&mut self, (start, end): Span) {
        if start >= end {
            return;
        }
        // The first range that ends at or after `start`.
        let i = self.0.partition_point(|&(_, e)| e < start);
        let mut j = i;
        let (mut s, mut e) = (start, end);
        while j < self.0.len() && self.0[j].0 <= e {
            s = s.min(self.0[j].0);
            e = e.max(self.0[j].1);
            j += 1;
        }
        self.0.splice(i..j, [(s, e)]);
    }

    /// Removes a range.
    pub fn remove(&mut self, (start, end): Span) {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        for &(s, e) in &self.0 {
            if e <= start || s >= end {
                out.push((s, e));
                continue;
            }
            if s < start {
                out.push((s, start));
            }
            if e > end {
                out.push((end, e));
            }
        }
        self.0 = out;
    }

    /// The ranges, in order.
    pub fn spans(&self) -> &[Span] {
        &self.0
    }

    /// Bytes covered.
    pub fn bytes(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }

    /// Length of the range that starts at 0 (0 if none does).
    pub fn prefix(&self) -> u64 {
        match self.0.first() {
            Some(&(0, end)) => end,
            _ => 0,
        }
    }

    /// The ranges of `[0, total)` not covered.
    pub fn gaps(&self, total: u64) -> Vec<Span> {
        let mut gaps = Vec::new();
        let mut at = 0;
        for &(s, e) in &self.0 {
            if s >= total {
                break;
            }
            if s > at {
                gaps.push((at, s));
            }
            at = at.max(e);
        }
        if at < total {
            gaps.push((at, total));
        }
        gaps
    }

    /// Whether `[0, total)` is covered.
    pub fn covers(&self, total: u64) -> bool {
        self.gaps(total).is_empty()
    }
}

/// Pieces the missing bytes `[0, total)` are cut into on a fresh start:
/// at most `workers`, none smaller than `min_split` (1 when the file is
/// smaller than two of them: it is fetched as one stream).
pub fn pieces_for(total: u64, workers: usize, min_split: u64) -> usize {
    let by_size = total / min_split.max(1);
    usize::try_from(by_size).unwrap_or(usize::MAX).clamp(1, workers.max(1))
}

/// `gaps` cut into pieces for `workers` workers: each gap in proportion to
/// its share of the bytes (at least one piece, none below `min_split`).
fn cut(gaps: &[Span], workers: usize, min_split: u64) -> VecDeque<Span> {
    let missing: u64 = gaps.iter().map(|(s, e)| e - s).sum();
    let mut pieces = VecDeque::new();
    for &(start, end) in gaps {
        let len = end - start;
        let share = (u128::from(len) * workers as u128 / u128::from(missing.max(1))) as u64;
        let n = share.min(len / min_split.max(1)).max(1);
        for i in 0..n {
            let a = start + (u128::from(len) * u128::from(i) / u128::from(n)) as u64;
            let b = start + (u128::from(len) * u128::from(i + 1) / u128::from(n)) as u64;
            pieces.push_back((a, b));
        }
    }
    pieces
}

/// When a split download that starts as one stream opens its other
/// parts: after a window (`--split-probe`) in which its connection waited
/// for data at least half of the time. Then the network, not this
/// machine, limits the stream, and more connections can go faster; when
/// the connection always had data waiting, more connections only cost CPU
/// (measured on loopback: 12% more CPU per GiB with 4 parts per file).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    window: Duration,
    started: Instant,
    waited_before: Duration,
}

impl Pace {
    /// A first window starting `now`, the connection having waited
    /// `waited` in all so far.
    pub fn new(window: Duration, now: Instant, waited: Duration) -> Self {
        Pace { window, started: now, waited_before: waited }
    }

    /// Whether a window ended by `now` in which the connection waited at
    /// least half of the time (`waited`: in all so far). A window that
    /// ended starts the next one.
    pub fn starved(&mut self, now: Instant, waited: Duration) -> bool {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed < self.window {
            return false;
        }
        let in_window = waited.saturating_sub(self.waited_before);
        *self = Pace::new(self.window, now, waited);
        in_window * 2 >= elapsed
    }
}

/// A part a worker is fetching: bytes up to `next` are reserved (being or
/// already written), the part ends at `end` (which a steal may lower).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Active {
    next: u64,
    end: u64,
}

/// The state of one split download (see the module documentation).
#[derive(Debug)]
pub struct Plan {
    total: u64,
    min_split: u64,
    done: RangeSet,
    todo: VecDeque<Span>,
    parts: Vec<Option<Active>>,
    unsynced: u64,
    steals: u32,
}

impl Plan {
    /// A plan for a body of `total` bytes of which `done` are on disk, for
    /// `workers` workers of which `open` start at once: the gaps are cut
    /// into pieces for the open workers (see [`cut`]). The others join
    /// when [`spread`](Plan::spread) cuts the rest for all of them.
    pub fn new(total: u64, done: RangeSet, workers: usize, open: usize, min_split: u64) -> Self {
        let workers = workers.max(1);
        let min_split = min_split.max(1);
        let todo = cut(&done.gaps(total), open.clamp(1, workers), min_split);
        Plan { total, min_split, done, todo, parts: vec![None; workers], unsynced: 0, steals: 0 }
    }

    /// Cuts what `worker` has left, and every waiting piece, into pieces
    /// for all the workers (see [`cut`]); `worker` keeps the first piece
    /// of its own part. The number of pieces now waiting.
    pub fn spread(&mut self, worker: usize) -> usize {
        let mut rest: Vec<Span> = self.todo.drain(..).collect();
        let active = self.parts[worker].filter(|a| a.next < a.end);
        if let Some(a) = active {
            rest.push((a.next, a.end));
        }
        rest.sort_unstable();
        let mut pieces = cut(&rest, self.parts.len(), self.min_split);
        if let Some(a) = active
            && let Some(i) = pieces.iter().position(|p| p.0 == a.next)
            && let Some((_, end)) = pieces.remove(i)
        {
            self.parts[worker] = Some(Active { next: a.next, end });
        }
        self.todo = pieces;
        self.todo.len()
    }

    /// Pieces waiting for a worker.
    pub fn waiting(&self) -> usize {
        self.todo.len()
    }

    /// Parts cut in two for an idle worker so far.
    pub fn steals(&self) -> u32 {
        self.steals
    }

    /// The next range for idle `worker`: the first waiting piece, else the
    /// second half of the part with the most bytes left when both halves
    /// are at least the minimum split size. `None`: nothing left to do.
    pub fn claim(&mut self, worker: usize) -> Option<Span> {
        debug_assert!(self.parts[worker].is_none(), "worker {worker} claims while busy");
        if let Some(span) = self.todo.pop_front() {
            self.parts[worker] = Some(Active { next: span.0, end: span.1 });
            return Some(span);
        }
        let (victim, left) = self
            .parts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|a| (i, a.end.saturating_sub(a.next))))
            .max_by_key(|&(i, left)| (left, std::cmp::Reverse(i)))?;
        if left < 2 * self.min_split {
            return None;
        }
        let active = self.parts[victim].as_mut()?;
        let mid = active.next + left / 2;
        let span = (mid, active.end);
        active.end = mid;
        self.parts[worker] = Some(Active { next: mid, end: span.1 });
        self.steals += 1;
        Some(span)
    }

    /// Reserves up to `n` bytes at `worker`'s position: `(offset, allowed)`.
    /// `allowed < n`: the part ends (or was cut) there; the rest of what
    /// was read belongs to someone else.
    pub fn reserve(&mut self, worker: usize, n: usize) -> (u64, usize) {
        let Some(active) = self.parts[worker].as_mut() else { return (0, 0) };
        let room = active.end.saturating_sub(active.next);
        let allowed = usize::try_from(room).unwrap_or(usize::MAX).min(n);
        let offset = active.next;
        active.next += allowed as u64;
        (offset, allowed)
    }

    /// Whether `worker`'s part is all reserved (it has nothing more to read).
    pub fn part_done(&self, worker: usize) -> bool {
        self.parts[worker].is_none_or(|a| a.next >= a.end)
    }

    /// `[offset, offset + n)` was written; `true` when `checkpoint_bytes`
    /// or more were written since the last [`snapshot`](Plan::snapshot).
    pub fn wrote(&mut self, offset: u64, n: usize, checkpoint_bytes: u64) -> bool {
        self.done.insert((offset, offset + n as u64));
        self.unsynced += n as u64;
        self.unsynced >= checkpoint_bytes
    }

    /// `worker` stops working on its part; what it did not reserve waits
    /// for another worker.
    pub fn release(&mut self, worker: usize) {
        if let Some(active) = self.parts[worker].take()
            && active.next < active.end
        {
            self.todo.push_back((active.next, active.end));
        }
    }

    /// What is written, for a checkpoint (resets the unsynced count).
    pub fn snapshot(&mut self) -> RangeSet {
        self.unsynced = 0;
        self.done.clone()
    }

    /// The bytes written so far.
    pub fn done(&self) -> &RangeSet {
        &self.done
    }

    /// Every byte is written.
    pub fn complete(&self) -> bool {
        self.done.covers(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_sets_merge_and_find_gaps() {
        let mut s = RangeSet::default();
        for span in [(10, 20), (30, 40), (20, 25), (5, 10), (50, 50), (38, 45)] {
            s.insert(span);
        }
        assert_eq!(s.spans(), [(5, 25), (30, 45)]);
        assert_eq!((s.bytes(), s.prefix()), (35, 0));
        assert_eq!(s.gaps(60), [(0, 5), (25, 30), (45, 60)]);
        s.insert((0, 100));
        assert_eq!((s.spans(), s.prefix(), s.covers(100), s.covers(101)), (&[(0, 100)][..], 100, true, false));
        s.remove((99, 100));
        s.remove((10, 20));
        assert_eq!(s.spans(), [(0, 10), (20, 99)]);
        assert_eq!(RangeSet::from_spans([(0, 10), (90, 200), (300, 400)], 100).spans(), [(0, 10), (90, 100)]);
    }

    #[test]
    fn a_fresh_plan_cuts_k_pieces_no_smaller_than_the_minimum() {
        assert_eq!(pieces_for(4 << 20, 4, 1 << 20), 4);
        assert_eq!(pieces_for((4 << 20) - 1, 4, 1 << 20), 3);
        assert_eq!(pieces_for(1 << 20, 4, 1 << 20), 1);
        assert_eq!(pieces_for(10, 4, 1 << 20), 1);
        assert_eq!(pieces_for(100 << 20, 4, 1 << 20), 4);
        let mut p = Plan::new(1000, RangeSet::default(), 4, 4, 100);
        assert_eq!(p.waiting(), 4);
        let spans: Vec<Span> = (0..4).map(|w| p.claim(w).expect("a piece")).collect();
        assert_eq!(spans, [(0, 250), (250, 500), (500, 750), (750, 1000)]);
    }

    #[test]
    fn a_resumed_plan_only_has_the_gaps() {
        let done = RangeSet::from_spans([(0, 300), (500, 600)], 1000);
        let mut p = Plan::new(1000, done, 4, 4, 100);
        // 600 bytes missing for 4 workers: the 200-byte gap gets one piece,
        // the 400-byte one two.
        assert_eq!(p.waiting(), 3);
        let got: Vec<Option<Span>> = (0..4).map(|w| p.claim(w)).collect();
        assert_eq!(got, [Some((300, 500)), Some((600, 800)), Some((800, 1000)), Some((400, 500))]);
        assert_eq!(p.steals(), 1, "the fourth worker took half of the first part");
    }

    #[test]
    fn writes_complete_the_plan_and_parts_stop_at_their_end() {
        let mut p = Plan::new(100, RangeSet::default(), 2, 2, 10);
        assert_eq!(p.claim(0), Some((0, 50)));
        assert_eq!(p.claim(1), Some((50, 100)));
        // Worker 0 reads 64 bytes in one go: only 50 are its own.
        assert_eq!(p.reserve(0, 64), (0, 50));
        assert!(p.part_done(0));
        assert!(!p.wrote(0, 50, 1000));
        p.release(0);
        assert_eq!(p.reserve(1, 30), (50, 30));
        assert!(p.wrote(50, 30, 70), "80 bytes since the last snapshot");
        assert_eq!(p.snapshot().spans(), [(0, 80)]);
        assert!(!p.complete());
        assert_eq!(p.reserve(1, 30), (80, 20));
        p.wrote(80, 20, 1000);
        p.release(1);
        assert!(p.complete());
        assert_eq!((p.claim(0), p.waiting()), (None, 0));
    }

    #[test]
    fn an_idle_worker_takes_half_of_the_slowest_part() {
        let mut p = Plan::new(1000, RangeSet::default(), 2, 2, 100);
        assert_eq!((p.claim(0), p.claim(1)), (Some((0, 500)), Some((500, 1000))));
        // Worker 1 is done; worker 0 has read 100 of its 500.
        assert_eq!(p.reserve(1, 500), (500, 500));
        p.wrote(500, 500, u64::MAX);
        p.release(1);
        assert_eq!(p.reserve(0, 100), (0, 100));
        p.wrote(0, 100, u64::MAX);
        assert_eq!(p.claim(1), Some((300, 500)), "half of the 400 bytes left");
        assert_eq!(p.steals(), 1);
        // Worker 0 now stops at 300.
        assert_eq!(p.reserve(0, 250), (100, 200));
        assert!(p.part_done(0));
        p.wrote(100, 200, u64::MAX);
        p.release(0);
        // 200 bytes left in worker 1's part: two halves of the minimum.
        assert_eq!(p.claim(0), Some((400, 500)));
        p.release(0);
        p.release(1);
        // Nothing was written in 300..500: both pieces wait again.
        assert_eq!(p.waiting(), 2);
        assert!(!p.complete());
    }

    #[test]
    fn parts_below_twice_the_minimum_are_not_cut() {
        let mut p = Plan::new(1000, RangeSet::default(), 2, 2, 600);
        assert_eq!(p.claim(0), Some((0, 1000)));
        assert_eq!(p.claim(1), None, "1000 bytes left: halves would be below 600");
        assert_eq!(p.reserve(0, 100), (0, 100));
        p.release(0);
        assert_eq!(p.claim(1), Some((100, 1000)));
    }

    #[test]
    fn a_failed_part_waits_for_the_next_idle_worker() {
        let mut p = Plan::new(400, RangeSet::default(), 2, 2, 100);
        assert_eq!((p.claim(0), p.claim(1)), (Some((0, 200)), Some((200, 400))));
        assert_eq!(p.reserve(1, 50), (200, 50));
        p.wrote(200, 50, u64::MAX);
        p.release(1);
        assert_eq!(p.waiting(), 1);
        assert_eq!(p.claim(1), Some((250, 400)));
    }

    #[test]
    fn a_plan_started_as_one_stream_spreads_its_rest_over_all_workers() {
        let mut p = Plan::new(1000, RangeSet::default(), 4, 1, 100);
        assert_eq!((p.waiting(), p.claim(0)), (1, Some((0, 1000))));
        assert_eq!(p.claim(1), Some((500, 1000)), "unopened workers are the caller's to hold back");
        p.release(1);
        let mut p = Plan::new(1000, RangeSet::default(), 4, 1, 100);
        assert_eq!(p.claim(0), Some((0, 1000)));
        assert_eq!(p.reserve(0, 200), (0, 200));
        p.wrote(0, 200, u64::MAX);
        // 800 bytes left: worker 0 keeps the first quarter of them.
        assert_eq!(p.spread(0), 3);
        assert_eq!(p.reserve(0, 1000), (200, 200));
        assert!(p.part_done(0));
        let got: Vec<Option<Span>> = (1..4).map(|w| p.claim(w)).collect();
        assert_eq!(got, [Some((400, 600)), Some((600, 800)), Some((800, 1000))]);
        assert_eq!(p.steals(), 0);
    }

    #[test]
    fn a_resumed_plan_started_as_one_stream_spreads_its_gaps() {
        let done = RangeSet::from_spans([(0, 300), (500, 600)], 1000);
        let mut p = Plan::new(1000, done, 4, 1, 100);
        assert_eq!(p.waiting(), 2, "a piece per gap");
        assert_eq!(p.claim(0), Some((300, 500)));
        // Worker 0 is at 350 when the rest is spread: 150 + 400 bytes for 4.
        assert_eq!(p.reserve(0, 50), (300, 50));
        p.wrote(300, 50, u64::MAX);
        assert_eq!(p.spread(0), 2);
        assert_eq!(p.reserve(0, 1000), (350, 150), "150 bytes: one piece");
        let got: Vec<Option<Span>> = (1..3).map(|w| p.claim(w)).collect();
        assert_eq!(got, [Some((600, 800)), Some((800, 1000))]);
        // A spread too small to cut changes nothing.
        let mut q = Plan::new(150, RangeSet::default(), 4, 1, 100);
        assert_eq!(q.claim(0), Some((0, 150)));
        assert_eq!(q.spread(0), 0);
        assert_eq!(q.reserve(0, 1000), (0, 150));
    }

    #[test]
    fn a_connection_that_waited_half_of_a_window_is_starved() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut pace = Pace::new(ms(200), t0, ms(50));
        assert!(!pace.starved(t0 + ms(150), ms(200)), "the window has not ended");
        assert!(pace.starved(t0 + ms(200), ms(150)), "waited 100 of 200 ms");
        assert!(!pace.starved(t0 + ms(420), ms(250)), "waited 100 of 220 ms, but the window restarted");
        assert!(!pace.starved(t0 + ms(500), ms(400)), "80 ms into the next window");
        assert!(!pace.starved(t0 + ms(640), ms(300)), "waited 50 of 220 ms");
        assert!(pace.starved(t0 + ms(900), ms(450)), "waited 150 of 260 ms");
    }
}
