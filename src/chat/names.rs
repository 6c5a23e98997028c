//! Nicknames and channel names: case mapping and validity.
//!
//! Case mapping is RFC 1459's (advertised as `CASEMAPPING=rfc1459`): ASCII
//! letters fold to lower case and `[]\~` fold to `{}|^`; other characters
//! are compared as they are.

/// The longest nickname, in bytes (`NICKLEN`).
pub const NICKLEN: usize = 30;
/// The longest channel name, `#` included, in bytes (`CHANNELLEN`).
pub const CHANNELLEN: usize = 50;

/// The RFC 1459 case-folded form of a nickname or channel name: equal
/// folded forms name the same nick or channel.
pub fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            _ => c,
        })
        .collect()
}

/// RFC 2812's nickname, with a longer limit: a letter or one of
/// ``[]\`_^{|}``, then letters, digits, those and `-`; 1 to [`NICKLEN`]
/// bytes.
pub fn valid_nick(nick: &str) -> bool {
    let special = |b: u8| matches!(b, b'[' | b']' | b'\\' | b'`' | b'_' | b'^' | b'{' | b'|' | b'}');
    let bytes = nick.as_bytes();
    match bytes.split_first() {
        Some((&first, rest)) => {
            bytes.len() <= NICKLEN
                && (first.is_ascii_alphabetic() || special(first))
                && rest.iter().all(|&b| b.is_ascii_alphanumeric() || special(b) || b == b'-')
        }
        None => false,
    }
}

/// A `#` channel of 2 to [`CHANNELLEN`] bytes without spaces, commas,
/// colons or control characters (any other UTF-8 is allowed).
pub fn valid_channel(name: &str) -> bool {
    name.len() >= 2
        && name.len() <= CHANNELLEN
        && name.starts_with('#')
        && !name.chars().any(|c| c.is_control() || matches!(c, ' ' | ',' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_is_rfc1459() {
        assert_eq!(fold("Alice[]\\~"), "alice{}|^");
        assert_eq!(fold("#Chat-Room"), "#chat-room");
        assert_eq!(fold("#Été"), "#Été");
        assert_eq!(fold("nick{}|^"), "nick{}|^");
    }

    #[test]
    fn validity_table() {
        for (nick, ok) in [
            ("alice", true),
            ("Alice_", true),
            ("[away]", true),
            ("a-1", true),
            ("`x", true),
            ("1abc", false),
            ("-abc", false),
            ("", false),
            ("a b", false),
            ("a!b", false),
            ("a@b", false),
            ("é", false),
            ("#chan", false),
            (&"a".repeat(NICKLEN), true),
            (&"a".repeat(NICKLEN + 1), false),
        ] {
            assert_eq!(valid_nick(nick), ok, "{nick:?}");
        }
        for (name, ok) in [
            ("#chat", true),
            ("#Été", true),
            ("#", false),
            ("chat", false),
            ("&chat", false),
            ("#a,b", false),
            ("#a b", false),
            ("#a:b", false),
            ("#a\x07", false),
            (&format!("#{}", "a".repeat(CHANNELLEN - 1)), true),
            (&format!("#{}", "a".repeat(CHANNELLEN)), false),
        ] {
            assert_eq!(valid_channel(name), ok, "{name:?}");
        }
    }
}
