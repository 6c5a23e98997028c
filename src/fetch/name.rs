//! File names for downloads: taken from the URL, made safe, numbered on
//! collision. Pure functions; the file system is touched in `store`.
//!
//! A name never contains `/`, `\`, NUL or control characters, never starts
//! with a dot (so it is never `.`, `..` or a hidden file) and is at most
//! [`MAX_NAME_BYTES`] bytes: joined to the download directory it always
//! names an entry directly inside that directory.
//!
//! Nor is it ever a name the tool itself uses next to a download (see
//! [`is_reserved`]: `NAME.part`, `NAME.part.N`, their `.state` and
//! `.state.tmp`): such a name gets a `_` appended. Otherwise a server
//! naming a file `x.part` and `x.part.state` (by its URL or by
//! `Content-Disposition`) would plant the state a later download of `x`
//! resumes from.

use percent_encoding::percent_decode_str;
use url::Url;

/// The name used when the URL path gives none (`http://host/`, `/dir/`).
pub const FALLBACK_NAME: &str = "index.html";

/// Longest name produced, in bytes: leaves room below the usual 255-byte
/// limit for a collision number and the `.part` suffix.
pub const MAX_NAME_BYTES: usize = 200;

/// The file name for `url`: its last path segment, percent-decoded and
/// sanitised (see [`sanitize`]), or [`FALLBACK_NAME`].
pub fn name_from_url(url: &Url) -> String {
    let last = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or("");
    let decoded = percent_decode_str(last).decode_utf8_lossy();
    sanitize(&decoded).unwrap_or_else(|| FALLBACK_NAME.to_string())
}

/// Makes `raw` safe as a single file name, or `None` if nothing usable is
/// left. Separators count after decoding: only what follows the last `/` or
/// `\` is kept (`..%2F..%2Fetc%2Fpasswd` gives `passwd`). Control
/// characters (NUL included) become `_`; leading dots and surrounding white
/// space are dropped; over-long names are cut, keeping a short extension.
pub fn sanitize(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().map(|c| if c.is_control() { '_' } else { c }).collect();
    let trimmed = cleaned.trim().trim_start_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() {
        return None;
    }
    let mut name = truncate(trimmed);
    if is_reserved(&name) {
        name.push('_');
    }
    Some(name)
}

/// Whether `name` has the form of a file the tool keeps next to a
/// download: it ends in `.part`, `.part.N` (N digits), or either of them
/// followed by `.state` or `.state.tmp`.
pub fn is_reserved(name: &str) -> bool {
    let base = name.strip_suffix(".state.tmp").or_else(|| name.strip_suffix(".state")).unwrap_or(name);
    is_part_name(base)
}

/// Ends in `.part` or `.part.N`.
fn is_part_name(name: &str) -> bool {
    let rest = match name.rsplit_once('.') {
        Some((before, digits)) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => before,
        _ => name,
    };
    rest.ends_with(".part")
}

/// The file name a `Content-Disposition` header value asks for, sanitised
/// (see [`sanitize`]); `None` when it names none, cannot be parsed, or
/// nothing usable is left.
pub fn name_from_disposition(value: &str) -> Option<String> {
    sanitize(&disposition_filename(value)?)
}

/// The raw file name of a `Content-Disposition` header value (RFC 6266):
/// `filename*` (RFC 8187: `UTF-8` or `ISO-8859-1`, percent-encoded)
/// preferred over `filename` (token or quoted-string, backslash escapes
/// undone, not percent-decoded). `None` when neither parses.
pub fn disposition_filename(value: &str) -> Option<String> {
    let (mut plain, mut extended) = (None, None);
    // The first piece is the disposition type (attachment, inline...).
    for param in split_params(value).into_iter().skip(1) {
        let Some((key, v)) = param.split_once('=') else { continue };
        let key = key.trim();
        if key.eq_ignore_ascii_case("filename*") {
            if extended.is_none() {
                extended = decode_ext_value(v.trim());
            }
        } else if key.eq_ignore_ascii_case("filename") && plain.is_none() {
            plain = param_value(v.trim());
        }
    }
    extended.or(plain).filter(|n| !n.is_empty())
}

/// Splits on `;` outside quoted strings.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

/// A token, or a quoted-string with its escapes undone (`None` if the
/// quotes do not close, or something follows them).
fn param_value(v: &str) -> Option<String> {
    let Some(inner) = v.strip_prefix('"') else {
        return (!v.is_empty() && !v.contains('"')).then(|| v.to_string());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.as_str().trim().is_empty().then_some(out),
            c => out.push(c),
        }
    }
    None
}

/// RFC 8187 `charset'[language]'percent-encoded`.
fn decode_ext_value(v: &str) -> Option<String> {
    let mut parts = v.splitn(3, '\'');
    let (charset, _language, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut it = encoded.bytes();
    while let Some(b) = it.next() {
        match b {
            b'%' => {
                let hi = (it.next()? as char).to_digit(16)?;
                let lo = (it.next()? as char).to_digit(16)?;
                bytes.push((hi * 16 + lo) as u8);
            }
            // attr-char: no white space, quotes or separators.
            b if b.is_ascii_graphic() && !b"\"\\;,".contains(&b) => bytes.push(b),
            _ => return None,
        }
    }
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

/// Cuts `name` to [`MAX_NAME_BYTES`] on a character boundary, keeping an
/// extension of up to 16 bytes.
fn truncate(name: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name.to_string();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if name.len() - dot <= 16 && dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    let mut cut = MAX_NAME_BYTES - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &stem[..cut])
}

/// Splits `name` into stem and extension (with its dot); `.tar.gz`-style
/// double extensions stay together. A name without a dot has no extension.
fn split_extension(name: &str) -> (&str, &str) {
    let Some(dot) = name.rfind('.').filter(|&d| d > 0) else { return (name, "") };
    let stem = &name[..dot];
    match stem.rfind('.') {
        Some(inner) if inner > 0 && &stem[inner..] == ".tar" => name.split_at(inner),
        _ => name.split_at(dot),
    }
}

/// The `n`-th alternative to `name` when it is taken: `x.bin` → `x.1.bin`,
/// `a.tar.gz` → `a.1.tar.gz`, `README` → `README.1`. `n == 0` is `name`.
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    format!("{stem}.{n}{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_urls() {
        let cases = [
            ("http://h/files/report.pdf", "report.pdf"),
            ("http://h/files/report.pdf?x=1#frag", "report.pdf"),
            ("http://h/", FALLBACK_NAME),
            ("http://h", FALLBACK_NAME),
            ("http://h/dir/", FALLBACK_NAME),
            ("http://h/a%20b.txt", "a b.txt"),
            ("http://h/caf%C3%A9.txt", "café.txt"),
            ("http://h/bad%FFutf8", "bad\u{FFFD}utf8"),
            // Decoded separators count as separators.
            ("http://h/..%2F..%2Fetc%2Fpasswd", "passwd"),
            ("http://h/x/%2e%2e%2fx", "x"),
            ("http://h/..%5C..%5Cwin.ini", "win.ini"),
            ("http://h/a%2F", FALLBACK_NAME),
            // Dot segments are resolved by the URL parser, then dots stripped.
            ("http://h/a/../b.txt", "b.txt"),
            ("http://h/a/%2e%2e/b.txt", "b.txt"),
            ("http://h/.bashrc", "bashrc"),
            ("http://h/...", FALLBACK_NAME),
            ("http://h/%2e%2e", FALLBACK_NAME),
            // NUL and control characters.
            ("http://h/a%00b", "a_b"),
            ("http://h/a%0Ab%0D%09c", "a_b__c"),
            ("http://h/%7Fdel", "_del"),
            ("http://h/%20%20spaced%20%20", "spaced"),
        ];
        for (url, want) in cases {
            let url = Url::parse(url).expect("test URL parses");
            assert_eq!(name_from_url(&url), want, "{url}");
        }
    }

    #[test]
    fn sanitize_table() {
        let cases: [(&str, Option<&str>); 14] = [
            ("plain.txt", Some("plain.txt")),
            ("../../x", Some("x")),
            ("/etc/x", Some("x")),
            ("..\\x", Some("x")),
            ("..", None),
            (".", None),
            ("", None),
            ("   ", None),
            ("dir/", None),
            ("\0", Some("_")),
            (". .hidden", Some("hidden")),
            ("a\u{85}b", Some("a_b")),
            ("x\u{1b}[31m", Some("x_[31m")),
            ("name.with.dots.tar.gz", Some("name.with.dots.tar.gz")),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn every_sanitised_name_is_a_single_safe_component() {
        let nasty = ["../a", "a/..", "..\\..\\", "\u{0}..", " ../ ", "a\\b/c", "./.", "..%2f"];
        for raw in nasty {
            if let Some(name) = sanitize(raw) {
                assert!(!name.contains(['/', '\\', '\0']) && !name.starts_with('.'), "{raw:?} -> {name:?}");
                assert_eq!(std::path::Path::new(&name).components().count(), 1, "{name:?}");
            }
        }
    }

    #[test]
    fn long_names_are_cut_on_char_boundaries_keeping_the_extension() {
        let long = format!("{}.iso", "é".repeat(300));
        let name = sanitize(&long).expect("a name");
        assert!(name.len() <= MAX_NAME_BYTES && name.ends_with(".iso"), "{} bytes", name.len());
        let no_ext = "x".repeat(500);
        assert_eq!(sanitize(&no_ext).expect("a name").len(), MAX_NAME_BYTES);
    }

    #[test]
    fn content_disposition_table() {
        let cases: [(&str, Option<&str>); 22] = [
            // Plain token and quoted string.
            ("attachment; filename=report.pdf", Some("report.pdf")),
            ("attachment; filename=\"report.pdf\"", Some("report.pdf")),
            ("ATTACHMENT;FILENAME = \"a b.txt\" ", Some("a b.txt")),
            ("inline; filename=\"semi;colon.txt\"; size=3", Some("semi;colon.txt")),
            // Quoted-string escapes.
            (r#"attachment; filename="say \"hi\".txt""#, Some("say \"hi\".txt")),
            (r#"attachment; filename="back\\slash""#, Some("back\\slash")),
            (r#"attachment; filename="\a\b""#, Some("ab")),
            // filename* with UTF-8 and percent-encoding.
            ("attachment; filename*=UTF-8''na%C3%AFve.txt", Some("naïve.txt")),
            ("attachment; filename*=utf-8'en'%E2%82%AC%20rates.txt", Some("€ rates.txt")),
            ("attachment; filename*=iso-8859-1''caf%E9.txt", Some("café.txt")),
            // Both: filename* wins, in either order.
            ("attachment; filename=\"fallback.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt", Some("été.txt")),
            ("attachment; filename*=UTF-8''%C3%A9t%C3%A9.txt; filename=\"fallback.txt\"", Some("été.txt")),
            // A broken filename* falls back to filename.
            ("attachment; filename*=UTF-8''bad%FF.txt; filename=ok.txt", Some("ok.txt")),
            ("attachment; filename*=KOI8-R''x.txt; filename=ok.txt", Some("ok.txt")),
            ("attachment; filename*=UTF-8''a%2Gb; filename=ok.txt", Some("ok.txt")),
            // Garbage.
            ("attachment", None),
            ("", None),
            ("attachment; filename", None),
            ("attachment; filename=", None),
            ("attachment; filename=\"unterminated", None),
            ("attachment; filename=\"x\" trailing", None),
            ("attachment; filename*=no-quotes", None),
        ];
        for (header, want) in cases {
            assert_eq!(disposition_filename(header).as_deref(), want, "{header:?}");
        }
    }

    #[test]
    fn disposition_names_are_sanitised() {
        let cases: [(&str, Option<&str>); 9] = [
            ("attachment; filename=\"../../x\"", Some("x")),
            ("attachment; filename=\"/etc/x\"", Some("x")),
            (r#"attachment; filename="..\\x""#, Some("x")),
            // filename is not percent-decoded: a harmless literal name.
            ("attachment; filename=\"%2e%2e%2fx\"", Some("%2e%2e%2fx")),
            // filename* is: the decoded separator counts.
            ("attachment; filename*=UTF-8''%2e%2e%2fx", Some("x")),
            ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", Some("passwd")),
            ("attachment; filename*=UTF-8''a%00b%0A", Some("a_b_")),
            ("attachment; filename=\"..\"", None),
            ("attachment; filename*=UTF-8''dir%2F", None),
        ];
        for (header, want) in cases {
            assert_eq!(name_from_disposition(header).as_deref(), want, "{header:?}");
        }
    }

    #[test]
    fn the_tools_own_names_are_never_produced() {
        let cases = [
            ("x.part", "x.part_"),
            ("x.part.state", "x.part.state_"),
            ("x.part.state.tmp", "x.part.state.tmp_"),
            ("x.part.12", "x.part.12_"),
            ("x.part.3.state", "x.part.3.state_"),
            ("x.part.3.state.tmp", "x.part.3.state.tmp_"),
            ("../a/x.part", "x.part_"),
            // Not ours: kept.
            ("x.partial", "x.partial"),
            ("x.part.gz", "x.part.gz"),
            ("x.part.state.bak", "x.part.state.bak"),
            ("x.tmp", "x.tmp"),
            ("x.state", "x.state"),
            ("part", "part"),
            ("x.part.", "x.part."),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize(raw).as_deref(), Some(want), "{raw:?}");
        }
        let url = Url::parse("http://h/d/x.part.state?q").expect("URL");
        assert_eq!(name_from_url(&url), "x.part.state_");
        assert_eq!(name_from_disposition("attachment; filename*=UTF-8''x.part").as_deref(), Some("x.part_"));
        // A long name is cut first, then marked: still not reserved.
        let long = format!("{}.part", "a".repeat(300));
        let name = sanitize(&long).expect("a name");
        assert!(!is_reserved(&name) && name.len() <= MAX_NAME_BYTES + 1, "{name}");
    }

    #[test]
    fn collision_numbers_never_make_a_reserved_name() {
        let stems = ["x", "x.part_", "x.part.state_", "a.tar.gz", "x.part.gz", "part", "x.state", "x.1"];
        for name in stems {
            let name = sanitize(name).expect("a name");
            for n in 0..30 {
                assert!(!is_reserved(&numbered(&name, n)), "{name} {n}");
            }
        }
    }

    #[test]
    fn collision_numbers() {
        let cases = [
            ("x.bin", 1, "x.1.bin"),
            ("x.bin", 12, "x.12.bin"),
            ("archive.tar.gz", 1, "archive.1.tar.gz"),
            ("a.b.c", 2, "a.b.2.c"),
            ("README", 1, "README.1"),
            ("x.bin", 0, "x.bin"),
        ];
        for (name, n, want) in cases {
            assert_eq!(numbered(name, n), want, "{name} {n}");
        }
    }
}
