//! Message history: what is stored of each PRIVMSG and NOTICE, and the
//! queries `draft/chathistory` asks (LATEST, BEFORE, AFTER, AROUND,
//! BETWEEN, TARGETS), each answering at most [`MAX_QUERY`] messages in
//! time order, oldest first.
//!
//! A message belongs to a [`Conversation`]: a channel, or the pair of
//! nicks of a private message (the same conversation seen from either
//! side). Messages are ordered by their server time in milliseconds, then
//! by their storage order; a position in that order is named by a msgid or
//! by a time ([`Bound`]); every bound is exclusive (AROUND's middle aside).
//! Who may read which conversation (a channel's members, a pair's two
//! nicks) is the caller's decision, not the store's.

use std::collections::HashMap;
use std::fmt::Write as _;

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError};
use crate::chat::names::fold;

/// The most messages (or targets) one query answers; a larger limit is cut
/// to it (advertised as `CHATHISTORY=` by the server that serves them).
pub const MAX_QUERY: usize = 1000;

/// PRIVMSG or NOTICE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `PRIVMSG`.
    Privmsg,
    /// `NOTICE`.
    Notice,
}

impl Kind {
    /// The IRC command.
    pub fn command(self) -> &'static str {
        match self {
            Kind::Privmsg => "PRIVMSG",
            Kind::Notice => "NOTICE",
        }
    }

    fn parse(command: &str) -> Option<Kind> {
        match command {
            "PRIVMSG" => Some(Kind::Privmsg),
            "NOTICE" => Some(Kind::Notice),
            _ => None,
        }
    }
}

/// Which conversation a message belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Conversation {
    /// A channel, by its folded name.
    Channel(String),
    /// A private conversation: the two folded nicks, sorted.
    Direct(String, String),
}

impl Conversation {
    /// The channel `name` (any case).
    pub fn channel(name: &str) -> Conversation {
        Conversation::Channel(fold(name))
    }

    /// The private conversation of nicks `a` and `b` (any case, any order).
    pub fn direct(a: &str, b: &str) -> Conversation {
        let (a, b) = (fold(a), fold(b));
        if a <= b { Conversation::Direct(a, b) } else { Conversation::Direct(b, a) }
    }

    /// Its key in the database: the folded channel name, or the two nicks
    /// joined by a space (which neither a nick nor a channel contains).
    pub fn key(&self) -> String {
        match self {
            Conversation::Channel(name) => name.clone(),
            Conversation::Direct(a, b) => format!("{a} {b}"),
        }
    }

    fn nicks(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Conversation::Channel(_) => (None, None),
            Conversation::Direct(a, b) => (Some(a), Some(b)),
        }
    }
}

/// What the hub asks to store of one message (see
/// [`Outbox::history`](crate::chat::Outbox::history)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRecord {
    /// PRIVMSG or NOTICE.
    pub kind: Kind,
    /// The sender's `nick!user@host`.
    pub sender: String,
    /// The target as the sender wrote it (a channel or a nick).
    pub target: String,
    /// The conversation it belongs to.
    pub convo: Conversation,
    /// The text.
    pub text: String,
    /// The sender's account, if logged in.
    pub account: Option<String>,
}

/// A record with the msgid and server time it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped {
    /// Unique among every message of the database.
    pub msgid: String,
    /// Server time, milliseconds since the epoch.
    pub time_ms: i64,
    /// What was said.
    pub record: HistoryRecord,
}

/// Gives messages their msgid and server time: msgids are the server
/// run's start (milliseconds, base 36) and a counter, so they never repeat
/// across restarts (runs start at different milliseconds) and need no
/// look-up; times never go backwards within a run.
#[derive(Debug)]
pub struct Stamper {
    run: String,
    next: u64,
    last_ms: i64,
}

impl Stamper {
    /// A stamper for a run starting at `now_ms`.
    pub fn new(now_ms: i64) -> Stamper {
        Stamper { run: base36(now_ms.max(0).unsigned_abs()), next: 0, last_ms: 0 }
    }

    /// `record` stamped at `now_ms` (or the last stamp's time, if later).
    pub fn stamp(&mut self, record: HistoryRecord, now_ms: i64) -> Stamped {
        self.last_ms = self.last_ms.max(now_ms);
        let mut msgid = String::with_capacity(self.run.len() + 8);
        let _ = write!(msgid, "{}-{}", self.run, base36(self.next));
        self.next += 1;
        Stamped { msgid, time_ms: self.last_ms, record }
    }
}

fn base36(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().map(|&d| char::from(d)).collect()
}

/// A stored message, as a query answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its msgid.
    pub msgid: String,
    /// Its server time, milliseconds since the epoch.
    pub time_ms: i64,
    /// PRIVMSG or NOTICE.
    pub kind: Kind,
    /// The sender's `nick!user@host`.
    pub sender: String,
    /// The target as the sender wrote it.
    pub target: String,
    /// The text.
    pub text: String,
    /// The sender's account, if it was logged in.
    pub account: Option<String>,
}

/// A position in a conversation's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// The message with this msgid.
    MsgId(String),
    /// This server time, milliseconds since the epoch.
    Time(i64),
}

/// A conversation with messages in a TARGETS window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSeen {
    /// The channel (folded name), or the other nick (folded) of a private
    /// conversation.
    pub target: String,
    /// Its latest message's time in the window.
    pub latest_ms: i64,
}

/// A bound resolved to the order's key `(time_ms, seq)`: a msgid is one
/// message's key; a time sits before every message of that millisecond
/// (`before`) or after them (`after`).
#[derive(Clone, Copy, Debug)]
struct Point {
    before: (i64, i64),
    after: (i64, i64),
}

const COLUMNS: &str = "msgid, time_ms, command, sender, target, text, account";

fn message(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    let command: String = row.get(2)?;
    let kind = Kind::parse(&command).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, format!("command {command}").into())
    })?;
    Ok(StoredMessage {
        msgid: row.get(0)?,
        time_ms: row.get(1)?,
        kind,
        sender: row.get(3)?,
        target: row.get(4)?,
        text: row.get(5)?,
        account: row.get(6)?,
    })
}

/// Which end of a range a query reads first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// The newest messages of the range (answered oldest first all the same).
    Newest,
    /// The oldest.
    Oldest,
}

/// The lower end of a range: a key, and whether it is included.
type Floor = Option<((i64, i64), bool)>;

/// Stores `batch` in one transaction (the writer's commit); a msgid
/// stored already is skipped.
pub(crate) fn insert(conn: &mut rusqlite::Connection, batch: &[Stamped]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO messages (msgid, time_ms, convo, dm_a, dm_b, command, sender, target, text, account)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (msgid) DO NOTHING",
        )?;
        for s in batch {
            let r = &s.record;
            let (a, b) = r.convo.nicks();
            stmt.execute(params![
                s.msgid,
                s.time_ms,
                r.convo.key(),
                a,
                b,
                r.kind.command(),
                r.sender,
                r.target,
                r.text,
                r.account
            ])?;
        }
    }
    tx.commit()
}

impl Store {
    fn point(&self, convo: &Conversation, bound: &Bound) -> Result<Option<Point>, StoreError> {
        match bound {
            Bound::Time(t) => Ok(Some(Point { before: (*t, i64::MIN), after: (*t, i64::MAX) })),
            Bound::MsgId(id) => {
                let conn = self.conn();
                let mut stmt =
                    conn.prepare_cached("SELECT time_ms, seq FROM messages WHERE msgid = ?1 AND convo = ?2")?;
                let key = stmt.query_row(params![id, convo.key()], |row| Ok((row.get(0)?, row.get(1)?))).optional()?;
                Ok(key.map(|key| Point { before: key, after: key }))
            }
        }
    }

    /// Up to `limit` messages of `convo` from `floor` (None: the first)
    /// to below `ceiling` (None: the last), the `from` end's, oldest first.
    fn read(
        &self,
        convo: &Conversation,
        floor: Floor,
        ceiling: Option<(i64, i64)>,
        from: End,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let limit = limit.min(MAX_QUERY);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let ((lo_t, lo_s), op) = match floor {
            Some((key, true)) => (key, ">="),
            Some((key, false)) => (key, ">"),
            None => ((i64::MIN, i64::MIN), ">="),
        };
        let (hi_t, hi_s) = ceiling.unwrap_or((i64::MAX, i64::MAX));
        let order = if from == End::Newest { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM messages
             WHERE convo = ?1 AND (time_ms, seq) {op} (?2, ?3) AND (time_ms, seq) < (?4, ?5)
             ORDER BY time_ms {order}, seq {order} LIMIT ?6"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![convo.key(), lo_t, lo_s, hi_t, hi_s, limit as i64], message)?;
        let mut found: Vec<StoredMessage> = rows.collect::<Result<_, _>>()?;
        if from == End::Newest {
            found.reverse();
        }
        Ok(found)
    }

    /// The newest `limit` messages of `convo`, only those after `after` if
    /// given (LATEST `*` or LATEST with a bound).
    pub fn latest(
        &self,
        convo: &Conversation,
        after: Option<&Bound>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let floor = match after {
            None => None,
            Some(bound) => match self.point(convo, bound)? {
                Some(p) => Some((p.after, false)),
                None => return Ok(Vec::new()),
            },
        };
        self.read(convo, floor, None, End::Newest, limit)
    }

    /// Up to `limit` messages of `convo` just before `bound`.
    pub fn before(&self, convo: &Conversation, bound: &Bound, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let Some(p) = self.point(convo, bound)? else { return Ok(Vec::new()) };
        self.read(convo, None, Some(p.before), End::Newest, limit)
    }

    /// Up to `limit` messages of `convo` just after `bound`.
    pub fn after(&self, convo: &Conversation, bound: &Bound, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let Some(p) = self.point(convo, bound)? else { return Ok(Vec::new()) };
        self.read(convo, Some((p.after, false)), None, End::Oldest, limit)
    }

    /// Up to `limit` messages of `convo` around `bound`: half of them
    /// before it, the rest from it on (a msgid's own message included).
    pub fn around(&self, convo: &Conversation, bound: &Bound, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let limit = limit.min(MAX_QUERY);
        let Some(p) = self.point(convo, bound)? else { return Ok(Vec::new()) };
        let mut found = self.read(convo, None, Some(p.before), End::Newest, limit / 2)?;
        let rest = limit - found.len();
        found.extend(self.read(convo, Some((p.before, true)), None, End::Oldest, rest)?);
        Ok(found)
    }

    /// Up to `limit` messages of `convo` strictly between `from` and `to`,
    /// those nearest to `from` (either may be the later one).
    pub fn between(
        &self,
        convo: &Conversation,
        from: &Bound,
        to: &Bound,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let (Some(a), Some(b)) = (self.point(convo, from)?, self.point(convo, to)?) else { return Ok(Vec::new()) };
        if a.before <= b.before {
            self.read(convo, Some((a.after, false)), Some(b.before), End::Oldest, limit)
        } else {
            self.read(convo, Some((b.after, false)), Some(a.before), End::Newest, limit)
        }
    }

    /// The conversations of `nick` (its private ones, and those of
    /// `channels`, which the caller says it may read) with a message
    /// strictly between `from_ms` and `to_ms`, each with its latest such
    /// time, oldest first, at most `limit`.
    pub fn targets(
        &self,
        nick: &str,
        channels: &[String],
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<TargetSeen>, StoreError> {
        let (lo, hi) = (from_ms.min(to_ms), from_ms.max(to_ms));
        let me = fold(nick);
        let mut seen: HashMap<String, i64> = HashMap::new();
        let conn = self.conn();
        for column in ["dm_a", "dm_b"] {
            let sql = format!(
                "SELECT dm_a, dm_b, MAX(time_ms) FROM messages
                 WHERE {column} = ?1 AND time_ms > ?2 AND time_ms < ?3 GROUP BY convo"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![me, lo, hi], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?))
            })?;
            for row in rows {
                let (a, b, latest) = row?;
                let other = if a == me { b } else { a };
                seen.insert(other, latest);
            }
        }
        let mut stmt = conn
            .prepare_cached("SELECT MAX(time_ms) FROM messages WHERE convo = ?1 AND time_ms > ?2 AND time_ms < ?3")?;
        for channel in channels {
            let name = fold(channel);
            let latest: Option<i64> = stmt.query_row(params![name, lo, hi], |row| row.get(0))?;
            if let Some(latest) = latest {
                seen.insert(name, latest);
            }
        }
        let mut seen: Vec<TargetSeen> =
            seen.into_iter().map(|(target, latest_ms)| TargetSeen { target, latest_ms }).collect();
        seen.sort_by(|x, y| (x.latest_ms, &x.target).cmp(&(y.latest_ms, &y.target)));
        seen.truncate(limit.min(MAX_QUERY));
        Ok(seen)
    }

    /// Messages stored, all conversations together.
    pub fn message_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row("SELECT COUNT(*) FROM messages", [], |row| row.get(0))?;
        Ok(n.max(0).unsigned_abs())
    }
}
