//! `nick!user@host` masks for channel bans: normalising what a client
//! typed, and matching with `*` (any run) and `?` (one character) under
//! the RFC 1459 case mapping.
//!
//! Matching is the greedy two-cursor algorithm with one backtrack point,
//! so it costs at most `O(mask × name)` steps whatever the masks hold: a
//! hostile ban list cannot make a JOIN or a PRIVMSG slow.

use crate::chat::names::fold;

/// The longest mask kept, in bytes; longer ones are refused.
pub const MASKLEN: usize = 128;

/// The full, folded form of a mask as typed: `nick` becomes `nick!*@*`,
/// `user@host` becomes `*!user@host`, `nick!user` becomes `nick!user@*`.
/// None if it is empty, too long, or holds spaces, commas or control
/// characters.
pub fn normalise(mask: &str) -> Option<String> {
    if mask.is_empty() || mask.starts_with(':') || mask.chars().any(|c| c.is_control() || matches!(c, ' ' | ',')) {
        return None;
    }
    let (nick, rest) = match mask.split_once('!') {
        Some((nick, rest)) => (nick, Some(rest)),
        None if mask.contains('@') => ("*", Some(mask)),
        None => (mask, None),
    };
    let (user, host) = match rest {
        Some(rest) => match rest.split_once('@') {
            Some((user, host)) => (user, host),
            None => (rest, "*"),
        },
        None => ("*", "*"),
    };
    let or_any = |part: &str| if part.is_empty() { "*".to_owned() } else { part.to_owned() };
    let full = format!("{}!{}@{}", or_any(nick), or_any(user), or_any(host));
    (full.len() <= MASKLEN).then(|| fold(&full))
}

/// Whether any of the folded `masks` matches `name` (folded once, if
/// there is a mask at all).
pub fn any_matches<'a>(masks: impl IntoIterator<Item = &'a str>, name: &str) -> bool {
    let mut masks = masks.into_iter().peekable();
    if masks.peek().is_none() {
        return false;
    }
    let name = fold(name);
    masks.any(|mask| crate::glob::matches(mask.as_bytes(), name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn matches(mask: &str, name: &str) -> bool {
        any_matches([mask], name)
    }

    #[test]
    fn masks_are_completed_and_folded() {
        assert_eq!(normalise("Alice").as_deref(), Some("alice!*@*"));
        assert_eq!(normalise("*@10.0.0.*").as_deref(), Some("*!*@10.0.0.*"));
        assert_eq!(normalise("bob!Bob").as_deref(), Some("bob!bob@*"));
        assert_eq!(normalise("!@").as_deref(), Some("*!*@*"));
        assert_eq!(normalise("a b"), None);
        assert_eq!(normalise(""), None);
        assert_eq!(normalise(&"x".repeat(200)), None);
    }

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        assert!(matches("*!*@10.0.0.*", "bob!bob@10.0.0.2"));
        assert!(!matches("*!*@10.0.0.*", "bob!bob@10.0.1.2"));
        assert!(matches("b?b!*@*", "BOB!x@y"));
        assert!(matches("alice{}!*@*", "Alice[]!a@h"));
        assert!(!matches("b?b!*@*", "bb!x@y"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYbZc"));
        assert!(!matches("a*b*c", "aXXbYYbZ"));
    }

    /// A plain recursive matcher, exponential but obviously right.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, _) => t.is_empty(),
            (Some(b'*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            (Some(&c), Some(&d)) if c == b'?' || c == d => reference(&p[1..], &t[1..]),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_the_reference(p in "[ab*?]{0,8}", t in "[ab]{0,10}") {
            prop_assert_eq!(crate::glob::matches(p.as_bytes(), t.as_bytes()), reference(p.as_bytes(), t.as_bytes()));
        }
    }
}
