//! What a response means for a download: the decisions of an attempt,
//! without I/O, the same on every engine. A response head becomes a
//! [`Head`]; [`answer`] says what to do with it given what was asked
//! ([`Asked`]: the whole body, the rest of a part file, a fresh split, a
//! split part file's gap): save it, continue, follow a redirect (http and
//! https only, at most [`MAX_REDIRECTS`], user info dropped), start over,
//! split, or fail ([`Failure`]: retried, final, or out of time). Errors
//! below HTTP are classed here too ([`transport_failure`]).

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use url::Url;

use super::{FetchOptions, MAX_REDIRECTS, Status};
use crate::fetch::auth::without_userinfo;
use crate::fetch::http::{self, MAX_HEADER_BYTES, MAX_HEADER_FIELDS};
use crate::fetch::retry::{StatusClass, classify_status, parse_retry_after};
use crate::fetch::split::{Span, pieces_for};
use crate::fetch::store::Validators;

/// Why an attempt did not end with a saved file.
#[derive(Debug)]
pub(super) enum Failure {
    /// Worth another attempt (after at least `after`, if the server said).
    Retry { reason: String, after: Option<Duration> },
    /// Final.
    Fatal { status: Status, reason: String },
    /// `--max-time` ran out: final, but what came is kept like a retry's
    /// (with `-c`, for a later run).
    OutOfTime(String),
}

pub(super) fn retry(reason: impl Into<String>) -> Failure {
    Failure::Retry { reason: reason.into(), after: None }
}

pub(super) fn fatal(status: Status, reason: impl Into<String>) -> Failure {
    Failure::Fatal { status, reason: reason.into() }
}

pub(super) fn local(what: &str, e: &std::io::Error) -> Failure {
    fatal(Status::LocalError, format!("{what}: {e}"))
}

/// The parts of a response head that decide what happens next.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) status: u16,
    pub(super) location: Option<String>,
    pub(super) retry_after: Option<String>,
    pub(super) content_length: Option<u64>,
    pub(super) etag: Option<String>,
    pub(super) last_modified: Option<String>,
    pub(super) content_range: Option<String>,
    pub(super) content_disposition: Option<String>,
    /// Header fields in the response.
    pub(super) fields: usize,
    /// Their size: names, values and 4 bytes each.
    pub(super) header_bytes: usize,
}

impl Head {
    /// What a whole body (200) can be resumed with, if anything: a strong
    /// ETag or Last-Modified.
    pub(super) fn validators(&self) -> Option<Validators> {
        let etag = self.etag.as_deref().map(str::trim).filter(|e| e.starts_with('"') && e.len() >= 2);
        let v = Validators {
            etag: etag.map(String::from),
            last_modified: self.last_modified.clone(),
            total: self.content_length,
        };
        v.if_range().is_some().then_some(v)
    }
}

/// A request that continues a part file: `Range: bytes=OFFSET-` with
/// `If-Range`.
#[derive(Debug, Clone)]
pub(super) struct Resume {
    pub(super) offset: u64,
    pub(super) validators: Validators,
}

impl Resume {
    pub(super) fn range(&self) -> String {
        format!("bytes={}-", self.offset)
    }

    pub(super) fn if_range(&self) -> &str {
        self.validators.if_range().unwrap_or_default()
    }
}

pub(super) enum Next {
    /// A whole body, written from zero.
    Body {
        expected: Option<u64>,
    },
    /// The rest of the body after the resume offset, `total` bytes in all.
    Rest {
        total: u64,
    },
    /// The part file cannot be continued: start over without `Range`.
    Restart,
    Redirect(Url),
    /// Ranges are not usable: one plain request, as with `-s 1`.
    Plain,
    /// A fresh body of `total` bytes, to split.
    Split {
        total: u64,
        validators: Validators,
    },
    /// The gap of a split part file asked for is coming.
    Piece,
}

/// Fails a response whose head is larger than allowed.
pub(super) fn check_head(head: &Head) -> Result<(), Failure> {
    if head.fields > MAX_HEADER_FIELDS || head.header_bytes > MAX_HEADER_BYTES {
        return Err(fatal(
            Status::Failed,
            format!(
                "response header too large: {} fields, {} bytes (at most {MAX_HEADER_FIELDS} fields, {} KiB)",
                head.fields,
                head.header_bytes,
                MAX_HEADER_BYTES / 1024
            ),
        ));
    }
    Ok(())
}

/// Parses `bytes FIRST-LAST/TOTAL`.
pub(super) fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.trim();
    let rest = v.get(..6).filter(|u| u.eq_ignore_ascii_case("bytes "))?;
    let (range, total) = v[rest.len()..].trim().split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// Whether a 206 to `resume` continues the part file exactly: the range
/// starts at the offset and runs to the end of a body of the known length,
/// with the same validator. `Ok(total)`, or why to start over.
fn check_partial(head: &Head, resume: &Resume) -> Result<u64, String> {
    check_range(head, resume.offset, None, Some(&resume.validators))
}

/// Whether a 206 carries exactly `[start, end)` (to the end of the body
/// when `end` is `None`), and, given `v`, of the body it describes (same
/// length and validator). `Ok(total)`, or why not.
pub(super) fn check_range(head: &Head, start: u64, end: Option<u64>, v: Option<&Validators>) -> Result<u64, String> {
    let cr = head.content_range.as_deref().unwrap_or("");
    let Some((first, last, total)) = parse_content_range(cr) else {
        return Err(format!("HTTP 206 with Content-Range {cr:?}"));
    };
    let length_ok =
        head.content_length.is_none_or(|len| Some(len) == last.checked_add(1).and_then(|n| n.checked_sub(first)));
    let end_ok = last.checked_add(1) == Some(end.unwrap_or(total)) && last < total;
    if first != start || !end_ok || v.and_then(|v| v.total).is_some_and(|t| t != total) || !length_ok {
        let asked = match end {
            Some(end) => format!("bytes={start}-{}", end.saturating_sub(1)),
            None => format!("bytes={start}-"),
        };
        return Err(format!("HTTP 206 with Content-Range {cr:?} to Range: {asked}"));
    }
    let Some(v) = v else { return Ok(total) };
    let changed = match (&v.etag, &head.etag, &head.last_modified) {
        (Some(ours), Some(theirs), _) => ours != theirs.trim(),
        (None, _, Some(theirs)) => v.last_modified.as_deref() != Some(theirs.as_str()),
        _ => false,
    };
    if changed {
        return Err("HTTP 206 with another validator: the file changed".into());
    }
    Ok(total)
}

pub(super) fn status_text(code: u16) -> String {
    let reason = hyper::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason());
    match reason {
        Some(r) => format!("HTTP {code} {r}"),
        None => format!("HTTP {code}"),
    }
}

/// What the first request of an attempt asks for.
#[derive(Debug)]
pub(super) enum Asked {
    /// The whole body, or with a part file to continue, its rest
    /// (`Range: bytes=OFFSET-` with `If-Range`).
    Body(Option<Resume>),
    /// `Range: bytes=0-`, to split a fresh download (`-s K`).
    Fresh,
    /// The first gap of a split download's part file, with `If-Range`.
    Piece { span: Span, validators: Validators },
}

impl Asked {
    /// Its `Range` and `If-Range` values.
    pub(super) fn range(&self) -> Option<(String, Option<&str>)> {
        match self {
            Asked::Body(None) => None,
            Asked::Body(Some(r)) => Some((r.range(), Some(r.if_range()))),
            Asked::Fresh => Some(("bytes=0-".into(), None)),
            Asked::Piece { span, validators } => {
                Some((piece_range(*span), Some(validators.if_range().unwrap_or_default())))
            }
        }
    }
}

/// `Range: bytes=A-B` for `[A, B+1)`.
pub(super) fn piece_range((start, end): Span) -> String {
    format!("bytes={start}-{}", end.saturating_sub(1))
}

/// What to do with the response to `asked` at `current`: the one decision
/// of an attempt, on every engine. A 206 or 416 is judged against what was
/// asked; anything else by its status class (see [`decide`]).
pub(super) fn answer(
    head: &Head,
    asked: &Asked,
    current: &Url,
    hops: &mut u32,
    options: &FetchOptions,
) -> Result<Next, Failure> {
    check_head(head)?;
    match (head.status, asked) {
        (206, Asked::Body(Some(resume))) => {
            Ok(check_partial(head, resume).map_or(Next::Restart, |total| Next::Rest { total }))
        }
        (206, Asked::Fresh) => {
            let Ok(total) = check_range(head, 0, None, None) else { return Ok(Next::Plain) };
            let validators = head.validators().map(|v| Validators { total: Some(total), ..v });
            Ok(match validators {
                Some(validators) if pieces_for(total, options.split as usize, options.min_split_size) > 1 => {
                    Next::Split { total, validators }
                }
                _ => Next::Body { expected: Some(total) },
            })
        }
        (206, Asked::Piece { span, validators }) => {
            Ok(check_range(head, span.0, Some(span.1), Some(validators)).map_or(Next::Restart, |_| Next::Piece))
        }
        (416, Asked::Body(Some(_)) | Asked::Piece { .. }) => Ok(Next::Restart),
        (416, Asked::Fresh) => Ok(Next::Plain),
        _ => decide(head, current, hops),
    }
}

/// What a status means by its class, for a request for `current` whose
/// 206 or 416 was not asked for: a body, a redirect to follow, a retry or
/// the end.
pub(super) fn decide(head: &Head, current: &Url, hops: &mut u32) -> Result<Next, Failure> {
    check_head(head)?;
    match classify_status(head.status) {
        StatusClass::Success if head.status == 206 => {
            Err(fatal(Status::Failed, "HTTP 206 Partial Content to a request without Range"))
        }
        StatusClass::Success => Ok(Next::Body { expected: head.content_length }),
        StatusClass::Redirect => {
            let location = head
                .location
                .as_deref()
                .ok_or_else(|| fatal(Status::Failed, format!("{} without Location", status_text(head.status))))?;
            *hops += 1;
            if *hops > MAX_REDIRECTS {
                return Err(fatal(Status::Failed, format!("more than {MAX_REDIRECTS} redirects")));
            }
            // User info in Location is ignored: credentials come from the
            // URL given only (see `auth`).
            let next = current
                .join(location)
                .map(|next| without_userinfo(&next))
                .map_err(|e| fatal(Status::Failed, format!("redirect to an invalid URL {location:?}: {e}")))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(fatal(
                    Status::Failed,
                    format!("redirect to {}: refused (only http and https are followed)", next.scheme()),
                ));
            }
            Ok(Next::Redirect(next))
        }
        StatusClass::Retryable => Err(Failure::Retry {
            reason: status_text(head.status),
            after: head.retry_after.as_deref().and_then(|v| parse_retry_after(v, SystemTime::now())),
        }),
        StatusClass::Fatal => Err(fatal(Status::Failed, status_text(head.status))),
    }
}

/// Every error in `e`'s chain, those wrapped in an `io::Error` included
/// (its `source` skips the error it wraps).
fn error_sources<'a>(e: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(current) = next {
        out.push(current);
        if out.len() > 32 {
            break;
        }
        next = match current.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
    }
    out
}

/// What an error below HTTP (connecting, TLS, reading the head) means: a
/// certificate that cannot be verified or a head too large for the client
/// end the download (another attempt gets the same), the rest is retried.
pub(super) fn transport_failure(e: &(dyn StdError + 'static), head_too_large: bool) -> Failure {
    let sources = error_sources(e);
    let certificate = sources.iter().find_map(|s| match s.downcast_ref::<rustls::Error>() {
        Some(tls @ rustls::Error::InvalidCertificate(_)) => Some(tls),
        _ => None,
    });
    if let Some(tls) = certificate {
        return fatal(
            Status::Failed,
            format!("TLS certificate rejected ({tls}); --insecure skips the check (dangerous)"),
        );
    }
    let text = error_chain(e);
    // hyper's error for a head over 100 fields or its read buffer; its
    // predicate (`is_parse_too_large`) exists only with its server feature.
    if head_too_large || text.contains("message head is too large") {
        return fatal(
            Status::Failed,
            format!(
                "response header too large: {text} (at most {MAX_HEADER_FIELDS} fields, {} KiB)",
                MAX_HEADER_BYTES / 1024
            ),
        );
    }
    retry(text)
}

pub(super) fn error_chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// An error before the body as a failure.
pub(super) fn http_failure(e: &http::Error) -> Failure {
    transport_failure(e, false)
}

impl Head {
    /// The head of `r`.
    pub(super) fn of(r: &http::Response) -> Head {
        let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
        let header_bytes = r.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
        Head {
            status: r.status(),
            location: header("location"),
            retry_after: header("retry-after"),
            content_length: header("content-length").and_then(|v| v.trim().parse().ok()),
            etag: header("etag"),
            last_modified: header("last-modified"),
            content_range: header("content-range"),
            // Raw UTF-8 names are common: not only visible ASCII.
            content_disposition: r
                .headers()
                .get("content-disposition")
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                .map(String::from),
            fields: r.headers().len(),
            header_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, location: Option<&str>) -> Head {
        Head {
            status,
            location: location.map(String::from),
            retry_after: None,
            content_length: Some(3),
            etag: None,
            last_modified: None,
            content_range: None,
            content_disposition: None,
            fields: 4,
            header_bytes: 100,
        }
    }

    #[test]
    fn redirect_rules() {
        let base = Url::parse("http://a.example/dir/file.bin").expect("url");
        let mut hops = 0;
        let Ok(Next::Redirect(next)) = decide(&head(302, Some("../other.bin")), &base, &mut hops, None) else {
            panic!("relative redirect followed")
        };
        assert_eq!((next.as_str(), hops), ("http://a.example/other.bin", 1));
        for bad in ["file:///etc/passwd", "ftp://a.example/x", "data:text/plain,hi", "javascript:alert(1)"] {
            let Err(Failure::Fatal { status, reason }) = decide(&head(301, Some(bad)), &base, &mut 0, None) else {
                panic!("{bad} refused")
            };
            assert_eq!(status, Status::Failed);
            assert!(reason.contains("refused"), "{reason}");
        }
        let mut hops = MAX_REDIRECTS;
        assert!(matches!(decide(&head(307, Some("/x")), &base, &mut hops, None), Err(Failure::Fatal { .. })));
        assert!(matches!(decide(&head(302, None), &base, &mut 0, None), Err(Failure::Fatal { .. })));
    }

    #[test]
    fn statuses_decide_retries() {
        let base = Url::parse("http://a.example/f").expect("url");
        assert!(matches!(decide(&head(200, None), &base, &mut 0, None), Ok(Next::Body { expected: Some(3) })));
        let mut h = head(503, None);
        h.retry_after = Some("2".into());
        let Err(Failure::Retry { reason, after }) = decide(&h, &base, &mut 0, None) else { panic!("503 retried") };
        assert_eq!((reason.as_str(), after), ("HTTP 503 Service Unavailable", Some(Duration::from_secs(2))));
        for code in [403, 404, 410, 206] {
            assert!(matches!(decide(&head(code, None), &base, &mut 0, None), Err(Failure::Fatal { .. })), "{code}");
        }
    }

    #[test]
    fn only_an_exact_partial_response_continues_a_part_file() {
        let v = Validators { etag: Some("\"e1\"".into()), last_modified: None, total: Some(1000) };
        let resume = Resume { offset: 400, validators: v };
        let partial = |cr: &str, len: Option<u64>, etag: Option<&str>| Head {
            status: 206,
            content_length: len,
            content_range: Some(cr.into()),
            etag: etag.map(String::from),
            ..head(206, None)
        };
        assert_eq!(check_partial(&partial("bytes 400-999/1000", Some(600), Some("\"e1\"")), &resume), Ok(1000));
        assert_eq!(check_partial(&partial("BYTES 400-999/1000", None, None), &resume), Ok(1000));
        for (cr, len, etag) in [
            ("bytes 0-999/1000", None, None),
            ("bytes 401-999/1000", None, None),
            ("bytes 400-998/1000", None, None),
            ("bytes 400-1099/1100", None, None),
            ("bytes 400-999/*", None, None),
            ("bytes 400-999/1000", Some(599), None),
            ("bytes 400-999/1000", None, Some("\"e2\"")),
            ("bytes 400-999/1000", None, Some("W/\"e1\"")),
            // A last byte at the end of u64: no overflow, refused.
            ("bytes 400-18446744073709551615/1000", Some(600), None),
            ("", None, None),
        ] {
            assert!(check_partial(&partial(cr, len, etag), &resume).is_err(), "{cr} {len:?} {etag:?}");
        }
        let base = Url::parse("http://a.example/f").expect("url");
        let h = partial("bytes 0-9/10", None, None);
        assert!(matches!(decide(&h, &base, &mut 0, Some(&resume)), Ok(Next::Restart)));
        assert!(matches!(decide(&head(416, None), &base, &mut 0, Some(&resume)), Ok(Next::Restart)));
        assert!(matches!(decide(&head(200, None), &base, &mut 0, Some(&resume)), Ok(Next::Body { .. })));
        let weak = Head { etag: Some("W/\"x\"".into()), ..head(200, None) };
        assert_eq!(weak.validators(), None, "a weak ETag alone does not allow resuming");
        let lm = Head { last_modified: Some("Sun, 06 Nov 1994 08:49:37 GMT".into()), ..weak };
        assert_eq!(
            lm.validators().and_then(|v| v.if_range().map(String::from)).as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
    }

    fn options(split: u32, min: u64) -> FetchOptions {
        FetchOptions {
            retries: 0,
            timeout: Duration::from_secs(1),
            retry_wait: Duration::from_millis(1),
            retry_max_time: Duration::from_secs(1),
            sha256: None,
            report_sha256: false,
            collision: crate::fetch::store::Collision::Number,
            keep_partial: false,
            content_disposition: false,
            split,
            min_split_size: min,
            split_probe: Duration::ZERO,
            insecure: false,
            max_time: None,
            max_filesize: None,
        }
    }

    /// The answer to a request for the whole body (or, with `resume`, its rest).
    fn decide(head: &Head, current: &Url, hops: &mut u32, resume: Option<&Resume>) -> Result<Next, Failure> {
        answer(head, &Asked::Body(resume.cloned()), current, hops, &options(1, 1 << 20))
    }

    fn partial(cr: &str, etag: Option<&str>) -> Head {
        Head {
            status: 206,
            location: None,
            retry_after: None,
            content_length: None,
            etag: etag.map(String::from),
            last_modified: None,
            content_range: Some(cr.into()),
            content_disposition: None,
            fields: 5,
            header_bytes: 200,
        }
    }

    #[test]
    fn the_first_answer_decides_whether_to_split() {
        let url = Url::parse("http://h/f").expect("url");
        let o = options(4, 100);
        let decide = |h: &Head, asked: &Asked| answer(h, asked, &url, &mut 0, &o);
        let etag = Some("\"e\"");
        assert!(matches!(
            decide(&partial("bytes 0-999/1000", etag), &Asked::Fresh),
            Ok(Next::Split { total: 1000, validators }) if validators.total == Some(1000)
        ));
        // Too small for two pieces, or nothing to check the parts against: one stream.
        assert!(matches!(
            decide(&partial("bytes 0-150/151", etag), &Asked::Fresh),
            Ok(Next::Body { expected: Some(151) })
        ));
        assert!(matches!(decide(&partial("bytes 0-999/1000", None), &Asked::Fresh), Ok(Next::Body { .. })));
        // Not the whole body: a plain request.
        assert!(matches!(decide(&partial("bytes 1-999/1000", etag), &Asked::Fresh), Ok(Next::Plain)));
        assert!(matches!(decide(&partial("bytes 0-499/1000", etag), &Asked::Fresh), Ok(Next::Plain)));
        let ok = Head { status: 200, content_range: None, content_length: Some(7), ..partial("", etag) };
        assert!(matches!(decide(&ok, &Asked::Fresh), Ok(Next::Body { expected: Some(7) })));
        let none = Head { status: 416, ..partial("bytes */0", None) };
        assert!(matches!(decide(&none, &Asked::Fresh), Ok(Next::Plain)));

        let v = Validators { etag: Some("\"e\"".into()), last_modified: None, total: Some(1000) };
        let gap = Asked::Piece { span: (300, 600), validators: v };
        assert!(matches!(decide(&partial("bytes 300-599/1000", etag), &gap), Ok(Next::Piece)));
        assert!(matches!(decide(&partial("bytes 300-599/1000", Some("\"f\"")), &gap), Ok(Next::Restart)));
        assert!(matches!(decide(&partial("bytes 300-999/1000", etag), &gap), Ok(Next::Restart)));
        assert!(matches!(decide(&ok, &gap), Ok(Next::Body { .. })), "If-Range failed: a new body");
        let huge = Head { fields: 101, ..partial("bytes 0-999/1000", etag) };
        assert!(matches!(decide(&huge, &Asked::Fresh), Err(Failure::Fatal { .. })));
    }
}
