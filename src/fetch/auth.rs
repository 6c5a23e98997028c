//! Credentials and where they may go.
//!
//! The only credentials trident sends are the ones in the URL given
//! (`https://user:pass@host/file`): as `Authorization: Basic`, and only to
//! that URL's origin — same scheme, host and port. A redirect to another
//! origin (another host, another port, or https to http on the same host)
//! is followed without them; a redirect back to the origin gets them
//! again. URLs handed to the HTTP clients never carry user info (so neither
//! client adds credentials of its own, and error messages never show a
//! password), and user info in a redirect's `Location` is ignored. trident
//! sends no cookies and no other headers of the user's.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;
use url::{Origin, Url};

/// `Authorization: Basic` for one origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    origin: Origin,
    header: String,
}

impl Credentials {
    /// The credentials in `url`'s user info, if any (percent-decoded).
    pub fn from_url(url: &Url) -> Option<Self> {
        if url.username().is_empty() && url.password().is_none() {
            return None;
        }
        let decode = |s: &str| percent_decode_str(s).collect::<Vec<u8>>();
        let mut pair = decode(url.username());
        pair.push(b':');
        pair.extend(decode(url.password().unwrap_or("")));
        Some(Credentials { origin: url.origin(), header: format!("Basic {}", STANDARD.encode(pair)) })
    }

    /// The `Authorization` value for a request to `url`: only to the
    /// origin the credentials were given for.
    pub fn for_url(&self, url: &Url) -> Option<&str> {
        (url.origin() == self.origin).then_some(self.header.as_str())
    }
}

/// The URL `given` as reports and state files show it: without its
/// password (the user name stays, as curl shows it). A string that does
/// not parse as a URL (a bad input line) gets the same treatment from
/// [`redact_passwords`].
pub fn without_password(given: &str) -> String {
    if !given.contains('@') {
        return given.to_string();
    }
    match Url::parse(given) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(None);
            url.into()
        }
        Ok(_) => given.to_string(),
        Err(_) => redact_passwords(given).into_owned(),
    }
}

/// `text` (an error message, a bad line) with the password of every URL
/// in it removed: after each `://`, the authority runs to the first `/`,
/// `?`, `#`, `\`, quote, angle bracket or white space (as a URL parser
/// reads it), and what follows the first `:` of its user info (before its
/// last `@`) is dropped.
pub fn redact_passwords(text: &str) -> Cow<'_, str> {
    if !text.contains('@') || !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '\\' | '"' | '\'' | '<' | '>') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                out.push_str(userinfo.split_once(':').map_or(userinfo, |(user, _)| user));
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `url` without user name and password.
pub fn without_userinfo(url: &Url) -> Url {
    let mut url = url.clone();
    // Only fails for URLs that cannot have user info, which then have none.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn credentials_go_to_their_origin_only() {
        let given = url("https://al%40ice:p%3Ass@files.example:8443/a.iso");
        let c = Credentials::from_url(&given).expect("credentials");
        // base64("al@ice:p:ss")
        let basic = Some("Basic YWxAaWNlOnA6c3M=");
        assert_eq!(c.for_url(&url("https://files.example:8443/other/b.iso")), basic);
        assert_eq!(c.for_url(&without_userinfo(&given)), basic);
        for elsewhere in [
            "https://files.example/a.iso",
            "http://files.example:8443/a.iso",
            "https://mirror.example:8443/a.iso",
            "https://files.example.evil:8443/a.iso",
        ] {
            assert_eq!(c.for_url(&url(elsewhere)), None, "{elsewhere}");
        }
        let plain = Credentials::from_url(&url("http://bob@h/x")).expect("user only");
        assert_eq!(plain.for_url(&url("http://h:80/y")), Some("Basic Ym9iOg=="), "default port is the same origin");
        assert_eq!(Credentials::from_url(&url("http://h/x")), None);
        assert_eq!(without_userinfo(&given).as_str(), "https://files.example:8443/a.iso");
        assert_eq!(without_password(given.as_str()), "https://al%40ice@files.example:8443/a.iso");
        assert_eq!(without_password("http://h/x"), "http://h/x");
        assert_eq!(without_password("not a url"), "not a url");
        assert_eq!(without_password("http://u:s3cret@[bad/x"), "http://u@[bad/x");
    }

    #[test]
    fn passwords_are_removed_from_any_text() {
        let cases = [
            (
                "invalid URL \"http://u:s3cret@[bad/x\": invalid IPv6 address",
                "invalid URL \"http://u@[bad/x\": invalid IPv6 address",
            ),
            ("unsupported URL \"ftp://u:s3cret@h/x\"", "unsupported URL \"ftp://u@h/x\""),
            ("a http://u:p@h b https://v:q@i:8/x?y=@z", "a http://u@h b https://v@i:8/x?y=@z"),
            ("http://u:p:q@r@h", "http://u@h"),
            ("no password http://u@h/@x and http://h/p@q", "no password http://u@h/@x and http://h/p@q"),
            ("http://u:s3cret@h", "http://u@h"),
            ("plain text @ nothing", "plain text @ nothing"),
            ("http://u:s3cret@", "http://u@"),
        ];
        for (text, want) in cases {
            assert_eq!(redact_passwords(text), want, "{text}");
        }
    }
}
