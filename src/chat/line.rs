//! IRC line framing: bytes in, complete lines out.
//!
//! A [`LineReader`] is fed the chunks a connection reads, in any sizes, and
//! yields [`LineEvent`]s in order: a complete line (terminated by CRLF or a
//! bare LF, the terminator removed), an overlong line, or a line that is not
//! valid UTF-8. Its memory is bounded: it never holds more than one partial
//! line of at most [`MAX_LINE`] bytes plus the events of the last chunk
//! pushed (a shell that drains the events before reading again holds at most
//! one read's worth). Its splitting, a [`LineSplitter`], lends each line
//! without copying it; `chat load` reads the server's lines with it.

use std::collections::VecDeque;

/// The longest line accepted, in bytes, terminator (CRLF or LF) included:
/// RFC 1459's 512.
pub const MAX_LINE: usize = 512;

/// What the reader found in the stream, in stream order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LineEvent {
    /// A complete line, without its terminator; never empty (empty lines are
    /// skipped, as RFC 1459 asks).
    Line(String),
    /// A line longer than the limit: reported once, when the limit is
    /// crossed; its bytes are discarded up to and including the next LF.
    TooLong,
    /// A line that is not valid UTF-8: dropped.
    InvalidUtf8,
    /// A line containing a NUL or a CR other than the terminator's: dropped
    /// (relayed, it could split into two lines at some receivers).
    ForbiddenByte,
}

/// What [`LineSplitter::split`] finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A complete line, its terminator (LF, or CRLF) removed; may be empty.
    Line(&'a [u8]),
    /// A line longer than the limit: reported once, when the limit is
    /// crossed; its bytes are discarded up to and including the next LF.
    TooLong,
}

/// Splits a byte stream into lines without copying them, except for the
/// unfinished end of a read (kept until its LF comes, never as much as the
/// limit). [`LineReader`] is this plus IRC's checks; the load generator
/// uses it as it is.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    /// The unfinished line (no LF yet), shorter than `max`.
    partial: Vec<u8>,
    /// Inside an overlong line: drop bytes until the next LF.
    discarding: bool,
}

impl LineSplitter {
    /// A splitter accepting lines of up to `max` bytes, terminator included
    /// (at least 2).
    pub fn with_limit(max: usize) -> Self {
        assert!(max >= 2, "a line limit below 2 bytes leaves no room for text");
        LineSplitter { max, partial: Vec::new(), discarding: false }
    }

    /// Feeds the next bytes of the stream; `each` gets what they complete,
    /// in stream order.
    pub fn split(&mut self, mut data: &[u8], mut each: impl FnMut(Piece<'_>)) {
        let line = |l: &[u8]| -> usize { if l.last() == Some(&b'\r') { l.len() - 1 } else { l.len() } };
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let segment = &data[..i];
                    if self.discarding {
                        self.discarding = false;
                    } else if self.partial.len() + segment.len() + 1 > self.max {
                        self.partial.clear();
                        each(Piece::TooLong);
                    } else if self.partial.is_empty() {
                        each(Piece::Line(&segment[..line(segment)]));
                    } else {
                        self.partial.extend_from_slice(segment);
                        each(Piece::Line(&self.partial[..line(&self.partial)]));
                        // Keeps the allocation for the next partial line.
                        self.partial.clear();
                    }
                    data = &data[i + 1..];
                }
                None => {
                    if !self.discarding {
                        // A partial line of `max` bytes cannot end within the
                        // limit: its LF would be byte max + 1.
                        if self.partial.len() + data.len() >= self.max {
                            self.partial.clear();
                            self.discarding = true;
                            each(Piece::TooLong);
                        } else {
                            self.partial.extend_from_slice(data);
                        }
                    }
                    break;
                }
            }
        }
    }

    /// Bytes of the unfinished line held (always below the limit).
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }
}

/// Splits a byte stream into IRC line events; see the module documentation.
#[derive(Debug)]
pub struct LineReader {
    splitter: LineSplitter,
    ready: VecDeque<LineEvent>,
}

impl Default for LineReader {
    fn default() -> Self {
        LineReader::new()
    }
}

impl LineReader {
    /// A reader with the IRC limit, [`MAX_LINE`].
    pub fn new() -> Self {
        LineReader::with_limit(MAX_LINE)
    }

    /// A reader accepting lines of up to `max` bytes, terminator included
    /// (at least 2).
    pub fn with_limit(max: usize) -> Self {
        LineReader { splitter: LineSplitter::with_limit(max), ready: VecDeque::new() }
    }

    /// Feeds the next bytes of the stream; the events they complete are
    /// then returned by [`LineReader::next_event`].
    pub fn push(&mut self, data: &[u8]) {
        let ready = &mut self.ready;
        self.splitter.split(data, |piece| match piece {
            Piece::TooLong => ready.push_back(LineEvent::TooLong),
            Piece::Line(line) => {
                if let Some(event) = event(line) {
                    ready.push_back(event);
                }
            }
        });
    }

    /// The next event, in stream order, if any is complete.
    pub fn next_event(&mut self) -> Option<LineEvent> {
        self.ready.pop_front()
    }

    /// How many events are waiting.
    pub fn pending(&self) -> usize {
        self.ready.len()
    }

    /// Bytes of the unfinished line held (always below the limit).
    pub fn buffered(&self) -> usize {
        self.splitter.buffered()
    }
}

/// The event of a complete line (without its terminator); none for an
/// empty line.
fn event(line: &[u8]) -> Option<LineEvent> {
    if line.is_empty() {
        return None;
    }
    Some(if line.iter().any(|&b| b == 0 || b == b'\r') {
        LineEvent::ForbiddenByte
    } else {
        match std::str::from_utf8(line) {
            Ok(text) => LineEvent::Line(text.to_owned()),
            Err(_) => LineEvent::InvalidUtf8,
        }
    })
}

impl Iterator for LineReader {
    type Item = LineEvent;

    fn next(&mut self) -> Option<LineEvent> {
        self.next_event()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// However a stream is cut into reads, the events are the same,
        /// and the reader never holds a line's worth of bytes.
        #[test]
        fn events_do_not_depend_on_how_the_stream_is_cut(
            stream in prop::collection::vec(prop::sample::select(b"ab\r\n\0\xff".to_vec()), 0..400),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut whole = LineReader::with_limit(16);
            whole.push(&stream);
            let want: Vec<LineEvent> = std::iter::from_fn(|| whole.next_event()).collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            at.push(0);
            at.push(stream.len());
            at.sort_unstable();
            let mut pieces = LineReader::with_limit(16);
            let mut got = Vec::new();
            for w in at.windows(2) {
                pieces.push(&stream[w[0]..w[1]]);
                prop_assert!(pieces.buffered() < 16);
                got.extend(std::iter::from_fn(|| pieces.next_event()));
            }
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_splitter_gives_lines_across_chunks_without_their_terminators() {
        let mut splitter = LineSplitter::with_limit(16);
        let mut got = Vec::new();
        for chunk in [&b"PING a\r\nPRIV"[..], b"MSG #x :1", b"\r\n\r\nEND\n", b"0123456789abcdef", b"gh\nok\n"] {
            splitter.split(chunk, |piece| {
                got.push(match piece {
                    Piece::Line(l) => String::from_utf8_lossy(l).into_owned(),
                    Piece::TooLong => "(too long)".into(),
                });
            });
        }
        assert_eq!(got, ["PING a", "PRIVMSG #x :1", "", "END", "(too long)", "ok"]);
        assert_eq!(splitter.buffered(), 0);
    }

    fn line(s: &str) -> LineEvent {
        LineEvent::Line(s.to_owned())
    }

    /// Feeds `chunks` one after the other, collecting every event.
    fn run(reader: &mut LineReader, chunks: &[&[u8]]) -> Vec<LineEvent> {
        let mut events = Vec::new();
        for chunk in chunks {
            reader.push(chunk);
            events.extend(reader.by_ref());
        }
        events
    }

    #[test]
    fn framing_table() {
        let long = vec![b'a'; 600];
        let mut long_then_ok = long.clone();
        long_then_ok.extend_from_slice(b"\r\nPING x\r\n");
        let exact_crlf = [vec![b'a'; 510], b"\r\n".to_vec()].concat();
        let exact_lf = [vec![b'a'; 511], b"\n".to_vec()].concat();
        let one_over = [vec![b'a'; 511], b"\r\n".to_vec()].concat();
        type Case<'a> = (&'a str, Vec<&'a [u8]>, Vec<LineEvent>);
        let cases: Vec<Case<'_>> = vec![
            ("crlf", vec![b"NICK a\r\nUSER b\r\n"], vec![line("NICK a"), line("USER b")]),
            ("bare lf", vec![b"NICK a\nUSER b\n"], vec![line("NICK a"), line("USER b")]),
            ("split anywhere", vec![b"NI", b"CK a\r", b"\nUS", b"ER b", b"\n"], vec![line("NICK a"), line("USER b")]),
            ("no terminator yet", vec![b"NICK a"], vec![]),
            ("empty lines skipped", vec![b"\r\n\n\r\nPING x\n"], vec![line("PING x")]),
            ("utf-8 split across chunks", vec![b"PRIVMSG #a :\xc3", b"\xa9\r\n"], vec![line("PRIVMSG #a :é")]),
            (
                "invalid utf-8",
                vec![b"PRIVMSG #a :\xff\xfe\r\nPING y\r\n"],
                vec![LineEvent::InvalidUtf8, line("PING y")],
            ),
            ("truncated utf-8", vec![b"PRIVMSG #a :\xc3\r\n"], vec![LineEvent::InvalidUtf8]),
            ("nul", vec![b"PRIVMSG #a :a\0b\r\n"], vec![LineEvent::ForbiddenByte]),
            ("inner cr", vec![b"PRIVMSG #a :a\rQUIT\r\n"], vec![LineEvent::ForbiddenByte]),
            ("600 bytes in one chunk", vec![&long_then_ok], vec![LineEvent::TooLong, line("PING x")]),
            ("600 bytes, no newline yet", vec![&long], vec![LineEvent::TooLong]),
            ("600 bytes then its end", vec![&long, b"tail\r\nPING x\r\n"], vec![LineEvent::TooLong, line("PING x")]),
            (
                "overlong reported once",
                vec![&long, &long, &long, b"\nPING x\n"],
                vec![LineEvent::TooLong, line("PING x")],
            ),
            ("510 + crlf is the limit", vec![&exact_crlf], vec![line(&"a".repeat(510))]),
            ("511 + lf is the limit", vec![&exact_lf], vec![line(&"a".repeat(511))]),
            ("511 + crlf is over", vec![&one_over], vec![LineEvent::TooLong]),
        ];
        for (name, chunks, want) in cases {
            let mut reader = LineReader::new();
            assert_eq!(run(&mut reader, &chunks), want, "{name}");
        }
    }

    #[test]
    fn byte_at_a_time_matches_one_chunk() {
        let stream: &[u8] = b"NICK a\r\nbad \xff\r\nUSER u 0 * :Real Name\n";
        let mut whole = LineReader::new();
        let want = run(&mut whole, &[stream]);
        let mut bytes = LineReader::new();
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&mut bytes, &chunks), want);
        assert_eq!(want, vec![line("NICK a"), LineEvent::InvalidUtf8, line("USER u 0 * :Real Name")]);
    }

    #[test]
    fn memory_stays_bounded_on_a_huge_line() {
        let mut reader = LineReader::new();
        let chunk = vec![b'x'; 16 * 1024];
        let mut events = Vec::new();
        for _ in 0..64 {
            // 1 MiB without a newline
            reader.push(&chunk);
            events.extend(reader.by_ref());
            assert!(reader.buffered() < MAX_LINE);
        }
        reader.push(b"\r\nPING z\r\n");
        events.extend(reader.by_ref());
        assert_eq!(events, vec![LineEvent::TooLong, line("PING z")]);
        assert_eq!(reader.buffered(), 0);
        assert!(reader.splitter.partial.capacity() <= 2 * MAX_LINE);
    }

    #[test]
    fn partial_line_is_bounded_by_the_limit() {
        let mut reader = LineReader::with_limit(8);
        reader.push(b"abcdef");
        assert_eq!(reader.buffered(), 6);
        reader.push(b"g");
        // 7 bytes + LF = 8: still possible
        assert_eq!(reader.next_event(), None);
        reader.push(b"h");
        assert_eq!(reader.next_event(), Some(LineEvent::TooLong));
        assert_eq!(reader.buffered(), 0);
        reader.push(b"ij\nabc\n");
        assert_eq!(reader.collect::<Vec<_>>(), vec![line("abc")]);
    }
}
