//! Server replies (numerics) as one readable line each, for the
//! interactive client: `alice (trident@127.0.0.1): Alice` for a WHOIS
//! 311, `Inviting bob to #room` for a 341, and so on. Pure functions of
//! the message, so each one is tested on its own; the interactive client
//! prints what they return. Numerics not known here are shown as their
//! parameters after our nick, errors (400-599) as `Error: ...`.

use std::time::{Duration, UNIX_EPOCH};

use super::describe_numeric;
use crate::chat::message::Message;

/// The line to show for numeric `code`, or None for the ones that are
/// only markers (end of NAMES, of WHO...) or machine-readable (005).
pub(super) fn numeric_text(code: u16, m: &Message<'_>) -> Option<String> {
    let p = &m.params;
    let arg = |i: usize| p.get(i).copied().unwrap_or("");
    let text = p.last().copied().unwrap_or("");
    let line = match code {
        4 | 5 | 315 | 321 | 366 | 333 | 369 => return None,
        // The text repeats the numbers; no MOTD is not an error to show.
        1 | 265 | 266 | 422 => text.to_owned(),
        // Our own user modes.
        221 => format!("Your modes: {}", p.get(1..).unwrap_or(&[]).join(" ")),
        // USERHOST and ISON: the answer is the text.
        302 => format!("Userhost: {}", if text.is_empty() { "(nobody)" } else { text }),
        303 => format!("Online: {}", if text.is_empty() { "(nobody)" } else { text }),
        301 => format!("{} is away: {text}", arg(1)),
        305 => "You are no longer marked as away".to_owned(),
        306 => "You have been marked as away".to_owned(),
        // WHOIS: me nick user host * :realname; WHOWAS the same in 314.
        311 => format!("{} ({}@{}): {text}", arg(1), arg(2), arg(3)),
        314 => format!("{} was ({}@{}): {text}", arg(1), arg(2), arg(3)),
        312 => format!("{} on {} ({text})", arg(1), arg(2)),
        313 => format!("{} is an IRC operator", arg(1)),
        // me nick idle signon :seconds idle, signon time
        317 => {
            let idle = arg(2).parse::<u64>().map_or_else(|_| arg(2).to_owned(), |s| span(Duration::from_secs(s)));
            match arg(3).parse::<u64>() {
                Ok(signon) if p.len() > 4 => format!("{} idle {idle}, signed on {}", arg(1), when(signon)),
                _ => format!("{} idle {idle}", arg(1)),
            }
        }
        318 => format!("End of WHOIS for {}", arg(1)),
        319 => format!("{} is on {text}", arg(1)),
        330 => format!("{} is logged in as {}", arg(1), arg(2)),
        322 => format!("{} {} users: {text}", arg(1), arg(2)),
        323 => "End of channel list".to_owned(),
        // me chan modes [args...]
        324 => format!("Modes of {}: {}", arg(1), p[2.min(p.len())..].join(" ")),
        329 => match arg(2).parse::<u64>() {
            Ok(t) => format!("{} created {}", arg(1), when(t)),
            Err(_) => return None,
        },
        331 => format!("No topic is set for {}", arg(1)),
        332 => format!("Topic for {}: {text}", arg(1)),
        341 => format!("Inviting {} to {}", arg(1), arg(2)),
        // me chan mask [setter [time]]
        367 => {
            let mut line = format!("{} ban: {}", arg(1), arg(2));
            if p.len() > 3 {
                line.push_str(&format!(" (set by {}", arg(3)));
                if let Ok(t) = arg(4).parse::<u64>() {
                    line.push_str(&format!(" {}", when(t)));
                }
                line.push(')');
            }
            line
        }
        368 => format!("End of ban list for {}", arg(1)),
        353 => format!("Users on {}: {text}", arg(2)),
        352 => {
            // me chan user host server nick flags :hops realname
            let realname = text.split_once(' ').map_or(text, |(_, r)| r);
            format!("{} {} ({}@{}) {} {realname}", arg(1), arg(5), arg(2), arg(3), arg(6))
        }
        381 => "You are now an IRC operator".to_owned(),
        400..=599 => format!("Error: {}", describe_numeric(m)),
        _ => p.iter().skip(1).copied().collect::<Vec<_>>().join(" "),
    };
    Some(line)
}

/// A span of time for people: `42 s`, `3 min 5 s`, `2 h 10 min`, `4 d 3 h`.
pub(super) fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s / 60 % 60),
        _ => format!("{} d {} h", s / 86_400, s / 3600 % 24),
    }
}

/// A Unix time as a local `YYYY-MM-DD HH:MM` (UTC if the local time
/// cannot be known).
pub(super) fn when(unix: u64) -> String {
    match UNIX_EPOCH.checked_add(Duration::from_secs(unix)).and_then(crate::sys::local_time) {
        Some(tm) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            // tm_year may be as large as i32 allows (a hostile server's time).
            i64::from(tm.tm_year) + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min
        ),
        None => format!("{unix} (Unix time)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(line: &str) -> Option<String> {
        let m = Message::parse(line).expect("parse");
        numeric_text(super::super::numeric(m.command).expect("numeric"), &m)
    }

    #[test]
    fn any_time_a_server_sends_is_shown_without_panicking() {
        // The last second whose year glibc can give (tm_year = i32::MAX in
        // UTC; east of it, localtime fails and the number is shown).
        let last = 67_768_036_191_676_799;
        for shown in [when(last), when(last - 86_400), when(u64::MAX)] {
            assert!(shown.starts_with("2147485") || shown.ends_with(" (Unix time)"), "{shown}");
        }
        assert!(shown(":s 329 me #a 67768036191676799").is_some_and(|s| s.starts_with("#a created ")));
    }

    #[test]
    fn whois_replies_read_as_sentences() {
        let cases = [
            (":s 311 me bob u 127.0.0.1 * :Bob B", "bob (u@127.0.0.1): Bob B"),
            (":s 312 me bob irc.test :trident chat", "bob on irc.test (trident chat)"),
            (":s 319 me bob :@#a +#b #c", "bob is on @#a +#b #c"),
            (":s 301 me bob :gone fishing", "bob is away: gone fishing"),
            (":s 313 me bob :is an IRC operator", "bob is an IRC operator"),
            (":s 330 me bob bobby :is logged in as", "bob is logged in as bobby"),
            (":s 318 me bob :End of /WHOIS list.", "End of WHOIS for bob"),
            (":s 317 me bob 65 :seconds idle", "bob idle 1 min 5 s"),
            (":s 314 me bob u h * :Bob", "bob was (u@h): Bob"),
        ];
        for (line, want) in cases {
            assert_eq!(shown(line).as_deref(), Some(want), "{line}");
        }
        let signon = shown(":s 317 me bob 7200 1700000000 :seconds idle, signon time").expect("317");
        assert_eq!(signon, format!("bob idle 2 h 0 min, signed on {}", when(1_700_000_000)));
    }

    #[test]
    fn away_invite_mode_and_list_replies() {
        let cases = [
            (":s 305 me :You are no longer marked as being away", "You are no longer marked as away"),
            (":s 306 me :You have been marked as being away", "You have been marked as away"),
            (":s 341 me bob #room", "Inviting bob to #room"),
            (":s 324 me #room +lk 10 key", "Modes of #room: +lk 10 key"),
            (":s 324 me #room", "Modes of #room: "),
            (":s 221 me +i", "Your modes: +i"),
            (":s 367 me #room *!*@evil", "#room ban: *!*@evil"),
            (":s 368 me #room :End of channel ban list", "End of ban list for #room"),
            (":s 322 me #room 3 :the topic", "#room 3 users: the topic"),
            (":s 323 me :End of /LIST", "End of channel list"),
            (":s 302 me :bob=+u@h", "Userhost: bob=+u@h"),
            (":s 303 me :", "Online: (nobody)"),
            (":s 482 me #room :You're not channel operator", "Error: #room: You're not channel operator (482)"),
            (":s 999 me a b :c d", "a b c d"),
        ];
        for (line, want) in cases {
            assert_eq!(shown(line).as_deref(), Some(want), "{line}");
        }
        let ban = shown(":s 367 me #room *!*@evil alice 1700000000").expect("367");
        assert_eq!(ban, format!("#room ban: *!*@evil (set by alice {})", when(1_700_000_000)));
        for marker in [":s 366 me #room :End", ":s 005 me A=1 :are supported", ":s 321 me Channel :Users Name"] {
            assert_eq!(shown(marker), None, "{marker}");
        }
    }

    #[test]
    fn spans_and_hostile_numbers() {
        assert_eq!(span(Duration::from_secs(0)), "0 s");
        assert_eq!(span(Duration::from_secs(3599)), "59 min 59 s");
        assert_eq!(span(Duration::from_secs(90_061)), "1 d 1 h");
        // Numbers that are not numbers are shown as they came.
        assert_eq!(shown(":s 317 me bob lots :seconds idle").as_deref(), Some("bob idle lots"));
        assert_eq!(shown(":s 329 me #room soon"), None);
        // Missing parameters never panic.
        for code in [221, 301, 311, 312, 317, 319, 324, 329, 341, 352, 353, 367] {
            let _ = shown(&format!(":s {code}"));
            let _ = shown(&format!(":s {code} me"));
        }
        assert!(!when(u64::MAX).is_empty());
    }
}
