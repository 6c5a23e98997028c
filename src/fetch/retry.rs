//! When to try a download again: which failures are worth a retry, and how
//! long to wait before it (exponential backoff with jitter, at least what
//! the server's `Retry-After` asks, all within a time budget).

use std::time::{Duration, Instant, SystemTime};

/// Longest backoff between two attempts, whatever the attempt number.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What an HTTP status means for a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx: the body is the file.
    Success,
    /// 301, 302, 303, 307, 308: follow `Location`.
    Redirect,
    /// 408, 429, 5xx: may work later.
    Retryable,
    /// Anything else (404, 403, 410, other 4xx and 3xx): will not work.
    Fatal,
}

/// Classifies an HTTP status code.
pub fn classify_status(code: u16) -> StatusClass {
    match code {
        200..=299 => StatusClass::Success,
        301 | 302 | 303 | 307 | 308 => StatusClass::Redirect,
        408 | 429 | 500..=599 => StatusClass::Retryable,
        _ => StatusClass::Fatal,
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (a date in
/// the past means now). `None` if it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The retry budget of one download.
#[derive(Debug, Clone)]
pub struct Backoff {
    retries: u32,
    base: Duration,
    deadline: Instant,
    seed: u64,
}

impl Backoff {
    /// At most `retries` retries, the first after about `base`, none that
    /// would start after `started + max_time`.
    pub fn new(retries: u32, base: Duration, started: Instant, max_time: Duration) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let seed = RandomState::new().hash_one(started);
        Backoff { retries, base, deadline: started + max_time, seed }
    }

    /// How long to wait before retry number `retry` (1 for the first), or
    /// why not to retry. The wait is `base * 2^(retry-1)` (at most
    /// [`MAX_BACKOFF`]) with jitter in its upper half, raised to what the
    /// server's `Retry-After` asked.
    pub fn wait(&mut self, retry: u32, retry_after: Option<Duration>, now: Instant) -> Result<Duration, String> {
        if retry > self.retries {
            return Err(format!("gave up after {} attempt(s)", self.retries + 1));
        }
        let exp = self.base.saturating_mul(1u32 << (retry - 1).min(20)).min(MAX_BACKOFF);
        let half = exp / 2;
        let jitter = Duration::from_nanos(self.next_random() % (half.as_nanos() as u64 + 1));
        let mut wait = half + jitter;
        if let Some(asked) = retry_after {
            wait = wait.max(asked);
        }
        // A server's Retry-After can be any number of seconds: an Instant
        // past what the clock can hold is past the deadline too.
        if now.checked_add(wait).is_none_or(|then| then > self.deadline) {
            return Err(match retry_after {
                Some(asked) if asked == wait => {
                    format!("gave up: the server asks to retry in {} s, past the retry time limit", asked.as_secs())
                }
                _ => "gave up: retry time limit reached".to_string(),
            });
        }
        Ok(wait)
    }

    /// xorshift64*: jitter needs no quality, only spread.
    fn next_random(&mut self) -> u64 {
        let mut x = self.seed | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        use StatusClass::*;
        let cases = [
            (200, Success),
            (206, Success),
            (301, Redirect),
            (302, Redirect),
            (303, Redirect),
            (307, Redirect),
            (308, Redirect),
            (304, Fatal),
            (300, Fatal),
            (400, Fatal),
            (403, Fatal),
            (404, Fatal),
            (410, Fatal),
            (408, Retryable),
            (429, Retryable),
            (500, Retryable),
            (503, Retryable),
            (599, Retryable),
            (100, Fatal),
        ];
        for (code, want) in cases {
            assert_eq!(classify_status(code), want, "{code}");
        }
    }

    #[test]
    fn retry_after_values() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_bounded() {
        let t0 = Instant::now();
        let mut b = Backoff::new(30, Duration::from_millis(100), t0, Duration::from_secs(3600));
        for retry in 1..=30 {
            let exp = (Duration::from_millis(100) * 2u32.pow((retry - 1).min(20))).min(MAX_BACKOFF);
            let w = b.wait(retry, None, t0).expect("within budget");
            assert!(w >= exp / 2 && w <= exp, "retry {retry}: {w:?} vs {exp:?}");
        }
        assert!(b.wait(31, None, t0).expect_err("out of retries").contains("31 attempt"));
    }

    #[test]
    fn a_retry_after_beyond_any_clock_is_refused_without_a_panic() {
        let t0 = Instant::now();
        let mut b = Backoff::new(5, Duration::from_millis(10), t0, Duration::from_secs(60));
        let asked = parse_retry_after(&u64::MAX.to_string(), SystemTime::now());
        assert_eq!(asked, Some(Duration::from_secs(u64::MAX)));
        assert!(b.wait(1, asked, t0).is_err_and(|why| why.contains("past the retry time limit")));
    }

    #[test]
    fn retry_after_is_honoured_within_the_time_budget() {
        let t0 = Instant::now();
        let mut b = Backoff::new(5, Duration::from_millis(10), t0, Duration::from_secs(60));
        assert_eq!(b.wait(1, Some(Duration::from_secs(2)), t0), Ok(Duration::from_secs(2)));
        let err = b.wait(2, Some(Duration::from_secs(61)), t0).expect_err("past the budget");
        assert!(err.contains("retry in 61 s"), "{err}");
        let late = t0 + Duration::from_secs(59);
        assert!(b.wait(2, Some(Duration::from_secs(2)), late).is_err());
        assert!(b.wait(1, None, late).is_ok(), "a short backoff still fits");
    }
}
