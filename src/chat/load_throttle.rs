//! Telling, after `trident chat load`, that the server throttled the
//! senders rather than lost messages on its own.
//!
//! IRC servers hold back a client that sends faster than their flood
//! limit and, past a queue, disconnect it (`ERROR :Closing Link: ...
//! (Excess Flood)`, trident's own server included at 10 lines/s after a
//! burst of 20); some answer with a numeric first (263 RPL_TRYAGAIN, 439
//! ERR_TARGETTOOFAST). A load above that limit then "loses" messages that
//! were never accepted. The load generator looks at each line the server
//! sends a client (sans-IO: [`evidence`]), counts the clients that met
//! such a line, and the report names it with the remedy ([`hint`]).

use crate::chat::serve::Limits;

/// What one server line (its prefix stripped) says of throttling: a
/// short, stable label for the report, or `None`.
pub fn evidence(rest: &[u8]) -> Option<&'static str> {
    if let Some(text) = rest.strip_prefix(b"ERROR") {
        let flood = text.windows(5).any(|w| w.eq_ignore_ascii_case(b"flood"));
        return flood.then_some("ERROR (Excess Flood)");
    }
    match rest.get(..4)? {
        b"263 " => Some("263 RPL_TRYAGAIN"),
        b"439 " => Some("439 ERR_TARGETTOOFAST"),
        _ => None,
    }
}

/// The remedy, for a load of `rate` messages/s over `senders` clients.
pub fn hint(rate: f64, senders: usize) -> String {
    let limits = Limits::default();
    format!(
        "the server throttled the senders: lower --rate ({:.1} msg/s per sender now; trident chat serve allows \
         {} lines/s after a burst of {}), spread it over more senders (-k), or serve with \
         `trident chat serve --flood-rate 0`",
        rate / senders.max(1) as f64,
        limits.flood_rate,
        limits.flood_burst
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_lines_are_told_apart() {
        for (line, want) in [
            (&b"ERROR :Closing Link: 127.0.0.1 (Excess Flood)"[..], Some("ERROR (Excess Flood)")),
            (b"ERROR :excess flood", Some("ERROR (Excess Flood)")),
            (b"ERROR :Closing Link: 127.0.0.1 (Ping timeout)", None),
            (b"263 me PRIVMSG :Please wait a while and try again.", Some("263 RPL_TRYAGAIN")),
            (b"439 me #room :Target change too fast", Some("439 ERR_TARGETTOOFAST")),
            (b"4390 me", None),
            (b"PRIVMSG #room :flood", None),
            (b"", None),
        ] {
            assert_eq!(evidence(line), want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn the_hint_gives_the_rate_per_sender_and_the_servers_limit() {
        let h = hint(1000.0, 20);
        assert!(h.contains("50.0 msg/s per sender now"), "{h}");
        assert!(h.contains("10 lines/s after a burst of 20"), "{h}");
        assert!(h.contains("--flood-rate 0"), "{h}");
    }
}
