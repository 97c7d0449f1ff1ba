//! When to try again: exponential backoff with jitter, and `Retry-After`.

use std::time::{Duration, SystemTime};

use crate::config::RetryPolicy;

/// The wait before attempt `attempt + 1`, after `attempt` failed attempts (1-based).
///
/// Exponential from `initial_backoff`, capped at `max_backoff`, with "equal jitter" (a random
/// point in the upper half) so that many notifications failing together do not retry in step.
/// A downstream's `Retry-After` wins, capped at `max_backoff` so it cannot stall a queue.
pub fn delay(policy: &RetryPolicy, attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(policy.max_backoff);
    }
    let exponent = attempt.saturating_sub(1).min(31);
    let base = policy.initial_backoff.saturating_mul(1 << exponent).min(policy.max_backoff);
    let half = base / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Parses a `Retry-After` value: delta-seconds (fractional too) or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // Discord's may be fractional ("0.5").
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Some(Duration::from_secs_f64(seconds.min(86_400.0)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(60),
        }
    }

    #[test]
    fn grows_exponentially_with_jitter_and_caps() {
        for _ in 0..100 {
            let first = delay(&policy(), 1, None);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
            let third = delay(&policy(), 3, None);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400), "{third:?}");
            let late = delay(&policy(), 40, None);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1), "{late:?}");
        }
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        assert_eq!(delay(&policy(), 1, Some(Duration::from_millis(700))), Duration::from_millis(700));
        assert_eq!(delay(&policy(), 1, Some(Duration::from_secs(3600))), Duration::from_secs(1));
    }

    #[test]
    fn parses_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let parsed = parse_retry_after(&soon).unwrap();
        assert!(parsed > Duration::from_secs(25) && parsed <= Duration::from_secs(30), "{parsed:?}");
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
