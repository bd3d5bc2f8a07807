//! One retry policy for every storage: a bounded number of attempts, exponential backoff with
//! jitter, and the server's `Retry-After` (delay seconds or an HTTP-date) when it gives one.
//! After the last attempt the error is final and says how many were made ([`Error::GaveUp`]).
//!
//! The Files REST client and SFTP's reconnects run their loops on [`REQUESTS`]; Blob goes through
//! the Azure SDK, whose pipeline is configured from the same values ([`Policy::sdk_options`]) and
//! reads `Retry-After` in both forms itself.

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use crate::error::Error;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait after the first failure; it doubles with each further one.
    pub first_backoff: Duration,
    /// No wait is longer, whatever the backoff or the server says.
    pub max_wait: Duration,
}

/// Every storage request, and SFTP's reconnects.
pub const REQUESTS: Policy = Policy {
    attempts: 5,
    first_backoff: Duration::from_millis(200),
    max_wait: Duration::from_secs(30),
};

impl Policy {
    /// Whether attempt `attempt` (1-based) may be followed by another.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.attempts
    }

    /// How long to wait after attempt `attempt` (1-based) failed: the server's `Retry-After` if
    /// it gave one, else `first_backoff · 2^(attempt−1)` spread by a random factor in
    /// [0.5, 1.5), so writers that failed together do not retry together.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let wait = retry_after.unwrap_or_else(|| {
            let exponent = attempt.saturating_sub(1).min(16);
            self.first_backoff
                .saturating_mul(1 << exponent)
                .mul_f64(jitter())
        });
        wait.min(self.max_wait)
    }

    /// The final error after `attempts` attempts ended in `last`.
    pub fn gave_up(&self, attempts: u32, last: Error) -> Error {
        Error::GaveUp {
            attempts,
            last: Box::new(last),
        }
    }

    /// The same policy for the Azure SDK's pipeline (Blob). Its attempts bound the retries,
    /// not the clock, so a long `Retry-After` is honoured.
    pub fn sdk_options(&self) -> azure_core::http::RetryOptions {
        let millis = |d: Duration| azure_core::time::Duration::milliseconds(d.as_millis() as i64);
        azure_core::http::RetryOptions::exponential(azure_core::http::ExponentialRetryOptions {
            initial_delay: millis(self.first_backoff),
            max_retries: self.attempts - 1,
            max_total_elapsed: azure_core::time::Duration::minutes(10),
            max_delay: millis(self.max_wait),
        })
    }
}

/// `Retry-After` in either form the HTTP standard allows: delay seconds or an HTTP-date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers
        .get(HeaderName::from_static("retry-after"))
        .and_then(|v| v.to_str().ok())?
        .trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = azure_core::time::parse_rfc7231(text).ok()?;
    let wait = at - azure_core::time::OffsetDateTime::now_utc();
    Some(Duration::from_secs_f64(wait.as_seconds_f64().max(0.0)))
}

/// A random factor in [0.5, 1.5).
fn jitter() -> f64 {
    let mut byte = [0u8; 2];
    let rng = ring::rand::SystemRandom::new();
    let draw = ring::rand::SecureRandom::fill(&rng, &mut byte)
        .map(|()| u16::from_le_bytes(byte))
        .unwrap_or(u16::MAX / 2);
    0.5 + f64::from(draw) / 65_536.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn backoff_doubles_within_its_jitter_and_is_capped() {
        for attempt in 1..=4 {
            let base = REQUESTS.first_backoff * 2u32.pow(attempt - 1);
            let wait = REQUESTS.wait(attempt, None);
            assert!(
                wait >= base / 2 && wait < base * 3 / 2,
                "attempt {attempt}: {wait:?}"
            );
        }
        assert_eq!(REQUESTS.wait(40, None), REQUESTS.max_wait);
        assert_eq!(
            REQUESTS.wait(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3),
            "the server's word wins"
        );
        assert_eq!(
            REQUESTS.wait(1, Some(Duration::from_secs(3600))),
            REQUESTS.max_wait
        );
        assert!(REQUESTS.allows_another(4) && !REQUESTS.allows_another(5));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later =
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::seconds(5);
        let date = azure_core::time::to_rfc7231(&later);
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(3) && wait <= Duration::from_secs(5),
            "{wait:?}"
        );
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past");
    }
}
