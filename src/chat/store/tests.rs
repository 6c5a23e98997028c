//! The store's queries and its writer, on a real database file.

use std::time::Duration;

use proptest::prelude::*;

use super::history::insert;
use super::*;

fn record(convo: &Conversation, sender: &str, text: &str) -> HistoryRecord {
    let target = match convo {
        Conversation::Channel(name) => name.clone(),
        Conversation::Direct(_, b) => b.clone(),
    };
    HistoryRecord {
        kind: Kind::Privmsg,
        sender: format!("{sender}!{sender}@127.0.0.1"),
        target,
        convo: convo.clone(),
        text: text.into(),
        account: None,
    }
}

/// A store holding, in `#a`, messages "0".."n-1" at times 1000, 1010, ...
/// (two per millisecond from `dup_from` on), interleaved with as many in
/// `#b`.
fn filled(n: usize) -> (tempfile::TempDir, Store, Vec<Stamped>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut stamper = Stamper::new(1);
    let (a, b) = (Conversation::channel("#A"), Conversation::channel("#b"));
    let mut in_a = Vec::new();
    let mut all = Vec::new();
    for i in 0..n {
        let t = 1000 + 10 * (i as i64 / 2);
        let m = stamper.stamp(record(&a, "alice", &i.to_string()), t);
        in_a.push(m.clone());
        all.push(m);
        all.push(stamper.stamp(record(&b, "bob", &format!("b{i}")), t));
    }
    insert(&mut store.conn(), &all).unwrap();
    (dir, store, in_a)
}

fn texts(found: &[StoredMessage]) -> Vec<String> {
    found.iter().map(|m| m.text.clone()).collect()
}

fn range(r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| i.to_string()).collect()
}

#[test]
fn latest_before_after_around_between_answer_in_time_order() {
    let (_dir, store, a) = filled(20);
    let ch = Conversation::channel("#a");
    let id = |i: usize| Bound::MsgId(a[i].msgid.clone());
    assert_eq!(texts(&store.latest(&ch, None, 3).unwrap()), range(17..20));
    assert_eq!(texts(&store.latest(&ch, Some(&id(15)), 100).unwrap()), range(16..20));
    assert_eq!(texts(&store.before(&ch, &id(10), 4).unwrap()), range(6..10));
    assert_eq!(texts(&store.after(&ch, &id(10), 4).unwrap()), range(11..15));
    assert_eq!(texts(&store.around(&ch, &id(10), 5).unwrap()), range(8..13));
    assert_eq!(texts(&store.between(&ch, &id(3), &id(9), 100).unwrap()), range(4..9));
    assert_eq!(texts(&store.between(&ch, &id(3), &id(9), 2).unwrap()), range(4..6));
    assert_eq!(texts(&store.between(&ch, &id(9), &id(3), 2).unwrap()), range(7..9), "nearest to the first bound");
    // Times: messages 2i and 2i+1 share time 1000 + 10i; bounds are exclusive.
    assert_eq!(texts(&store.before(&ch, &Bound::Time(1030), 100).unwrap()), range(0..6));
    assert_eq!(texts(&store.after(&ch, &Bound::Time(1030), 3).unwrap()), range(8..11));
    assert_eq!(texts(&store.around(&ch, &Bound::Time(1030), 4).unwrap()), range(4..8));
    assert_eq!(texts(&store.between(&ch, &Bound::Time(1010), &Bound::Time(1040), 100).unwrap()), range(4..8));
    // An unknown msgid, or one of another conversation, finds nothing.
    let other = store.latest(&Conversation::channel("#b"), None, 1).unwrap();
    assert!(store.before(&ch, &Bound::MsgId(other[0].msgid.clone()), 10).unwrap().is_empty());
    assert!(store.after(&ch, &Bound::MsgId("nope".into()), 10).unwrap().is_empty());
    assert!(store.latest(&Conversation::channel("#none"), None, 10).unwrap().is_empty());
    assert!(store.latest(&ch, None, 0).unwrap().is_empty());
}

#[test]
fn results_are_capped() {
    let (_dir, store, _) = filled(MAX_QUERY + 5);
    let ch = Conversation::channel("#a");
    assert_eq!(store.latest(&ch, None, usize::MAX).unwrap().len(), MAX_QUERY);
    assert_eq!(store.after(&ch, &Bound::Time(0), MAX_QUERY * 3).unwrap().len(), MAX_QUERY);
    assert_eq!(store.around(&ch, &Bound::Time(3000), usize::MAX).unwrap().len(), MAX_QUERY);
}

#[test]
fn private_conversations_are_one_from_either_side_and_targets_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut stamper = Stamper::new(1);
    let batch = vec![
        stamper.stamp(record(&Conversation::direct("Alice", "bob"), "Alice", "hi bob"), 100),
        stamper.stamp(record(&Conversation::direct("BOB", "alice"), "bob", "hi alice"), 200),
        stamper.stamp(record(&Conversation::direct("alice", "carol"), "carol", "psst"), 300),
        stamper.stamp(record(&Conversation::channel("#Room"), "carol", "all"), 400),
        stamper.stamp(record(&Conversation::direct("bob", "carol"), "bob", "not alice's"), 500),
    ];
    insert(&mut store.conn(), &batch).unwrap();
    let pair = Conversation::direct("bob", "ALICE");
    assert_eq!(texts(&store.latest(&pair, None, 10).unwrap()), ["hi bob", "hi alice"]);
    let seen = store.targets("Alice", &["#room".into(), "#empty".into()], 0, 1000, 10).unwrap();
    let seen: Vec<(&str, i64)> = seen.iter().map(|t| (t.target.as_str(), t.latest_ms)).collect();
    assert_eq!(seen, [("bob", 200), ("carol", 300), ("#room", 400)]);
    let seen = store.targets("alice", &[], 1000, 150, 10).unwrap();
    assert_eq!(seen.iter().map(|t| t.target.as_str()).collect::<Vec<_>>(), ["bob", "carol"]);
    assert_eq!(store.targets("alice", &["#room".into()], 0, 1000, 1).unwrap().len(), 1);
}

#[test]
fn msgids_are_unique_across_runs_and_times_never_go_back() {
    let mut first = Stamper::new(1_000);
    let mut second = Stamper::new(1_001);
    let r = record(&Conversation::channel("#a"), "a", "x");
    let a: Vec<Stamped> = (0..50).map(|i| first.stamp(r.clone(), 5000 - i)).collect();
    let b: Vec<Stamped> = (0..50).map(|_| second.stamp(r.clone(), 0)).collect();
    let mut ids: Vec<&str> = a.iter().chain(&b).map(|m| m.msgid.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    assert!(a.iter().all(|m| m.time_ms == 5000), "a clock going back keeps the last time");
}

#[test]
fn the_writer_commits_in_batches_and_everything_queued_on_finish() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = WriterConfig { window: Duration::from_millis(20), batch: 7, queue: 1000, keep: 0 };
    let (sink, guard) = store.writer(config).unwrap();
    let mut stamper = Stamper::new(1);
    let ch = Conversation::channel("#a");
    for i in 0..100 {
        assert!(sink.push(stamper.stamp(record(&ch, "a", &i.to_string()), i)));
    }
    let stats = guard.finish();
    assert_eq!((stats.committed, stats.dropped, stats.failed), (100, 0, 0));
    assert!(stats.batches >= 100 / 7, "{stats:?}");
    assert_eq!(texts(&store.latest(&ch, None, 1000).unwrap()), range(0..100));
    assert!(!sink.push(stamper.stamp(record(&ch, "a", "late"), 0)), "the writer is gone");
    assert_eq!(sink.stats().dropped, 1);
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Another connection holds the write lock: the writer's first commit
    // waits for it while the queue (2) fills.
    let config = WriterConfig { window: Duration::from_millis(1), batch: 1, queue: 2, keep: 0 };
    let (sink, guard) = store.writer(config).unwrap();
    let blocker = schema::open(store.path()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut stamper = Stamper::new(1);
    let ch = Conversation::channel("#a");
    let started = std::time::Instant::now();
    let pushed = (0..50).filter(|&i| sink.push(stamper.stamp(record(&ch, "a", &i.to_string()), i))).count();
    assert!(started.elapsed() < Duration::from_secs(5), "pushing never waits");
    assert!(pushed <= 3, "{pushed} queued");
    assert_eq!(sink.stats().dropped, 50 - pushed as u64);
    blocker.execute_batch("COMMIT").unwrap();
    let stats = guard.finish();
    assert_eq!(stats.committed, pushed as u64);
    assert_eq!(store.message_count().unwrap(), pushed as u64);
}

#[test]
fn only_the_newest_messages_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = WriterConfig { window: Duration::from_millis(5), batch: 3, queue: 1000, keep: 10 };
    let (sink, guard) = store.writer(config).unwrap();
    let mut stamper = Stamper::new(1);
    let ch = Conversation::channel("#a");
    for i in 0..100 {
        assert!(sink.push(stamper.stamp(record(&ch, "a", &i.to_string()), i)));
    }
    assert_eq!(guard.finish().committed, 100);
    assert_eq!(texts(&store.latest(&ch, None, 1000).unwrap()), range(90..100));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(Store::open(dir.path()), Err(StoreError::NewerSchema(_, 99, _))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any bound, any limit: answers are in order, within the limit and on
    /// the right side of the bounds, and BEFORE/AFTER are exactly the
    /// nearest messages.
    #[test]
    fn queries_agree_with_a_plain_filter(
        n in 0usize..60,
        at in 0usize..70,
        to in 0usize..70,
        time in 990i64..1400,
        limit in 0usize..80,
    ) {
        let (_dir, store, a) = filled(n);
        let ch = Conversation::channel("#a");
        let bound = |i: usize| if i < n { Bound::MsgId(a[i].msgid.clone()) } else { Bound::Time(time) };
        // The position of each message: its index (stamps are in order).
        let pos = |m: &StoredMessage| a.iter().position(|x| x.msgid == m.msgid).unwrap();
        // lo: the messages before the bound; hi: those not after it.
        let (lo, hi) = if at < n {
            (at, at + 1)
        } else {
            (a.iter().filter(|m| m.time_ms < time).count(), a.iter().filter(|m| m.time_ms <= time).count())
        };
        let before: Vec<usize> = store.before(&ch, &bound(at), limit).unwrap().iter().map(pos).collect();
        let want: Vec<usize> = (lo.saturating_sub(limit)..lo).collect();
        prop_assert_eq!(before, want);
        let after: Vec<usize> = store.after(&ch, &bound(at), limit).unwrap().iter().map(pos).collect();
        let want: Vec<usize> = (hi..n.min(hi + limit)).collect();
        prop_assert_eq!(after, want);
        let around: Vec<usize> = store.around(&ch, &bound(at), limit).unwrap().iter().map(pos).collect();
        prop_assert!(around.len() <= limit);
        prop_assert!(around.windows(2).all(|w| w[0] + 1 == w[1]), "contiguous: {:?}", around);
        let between: Vec<usize> = store.between(&ch, &bound(at), &bound(to), limit).unwrap().iter().map(pos).collect();
        prop_assert!(between.len() <= limit);
        prop_assert!(between.windows(2).all(|w| w[0] < w[1]));
        let latest: Vec<usize> = store.latest(&ch, None, limit).unwrap().iter().map(pos).collect();
        prop_assert_eq!(latest, (n.saturating_sub(limit)..n).collect::<Vec<_>>());
    }
}
