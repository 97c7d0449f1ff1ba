//! `rate_limit: {per_second, burst}`: a token bucket per receiver, awaited before each attempt.
//!
//! Chat webhooks allow about one message a second; past that they answer 429 or drop messages.
//! A notification waits for its token (never dropped, never refused), so a burst of groups goes
//! out at the receiver's pace; a 429 with `Retry-After` is still honoured by the retry loop.
//!
//! The bucket is the generic cell rate algorithm on one atomic: the "theoretical arrival time"
//! of the next token. Taking a token moves it one interval on with a compare-and-swap, and the
//! caller sleeps until its reserved slot; there is no lock and no task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::RateLimit;

/// One receiver's bucket; kept across reloads that leave its settings unchanged.
#[derive(Debug)]
pub struct RateLimiter {
    pub limit: RateLimit,
    /// Nanoseconds between tokens.
    interval: u64,
    /// How far ahead of now reservations may run without waiting: (burst - 1) intervals.
    tolerance: u64,
    /// The theoretical arrival time of the next token, in nanoseconds since `origin`.
    tat: AtomicU64,
    origin: Instant,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        let interval = (1e9 / limit.per_second).clamp(1.0, u64::MAX as f64 / 4.0) as u64;
        RateLimiter {
            limit,
            interval,
            tolerance: interval.saturating_mul(u64::from(limit.burst.saturating_sub(1))),
            tat: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    /// Reserves the next token and says how long to wait for it (zero when one is at hand).
    pub fn reserve(&self) -> Duration {
        self.reserve_at(self.origin.elapsed().as_nanos() as u64)
    }

    fn reserve_at(&self, now: u64) -> Duration {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            let allowed_at = start.saturating_sub(self.tolerance);
            match self.tat.compare_exchange_weak(tat, start + self.interval, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Duration::from_nanos(allowed_at.saturating_sub(now)),
                Err(current) => tat = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_one_per_interval() {
        let limiter = RateLimiter::new(RateLimit { per_second: 2.0, burst: 3 });
        let waits: Vec<u64> = (0..6).map(|_| limiter.reserve_at(0).as_millis() as u64).collect();
        assert_eq!(waits, [0, 0, 0, 500, 1000, 1500]);
        // Idle time refills the bucket only up to its burst.
        let later = RateLimiter::new(RateLimit { per_second: 2.0, burst: 1 });
        assert_eq!(later.reserve_at(0), Duration::ZERO);
        assert_eq!(later.reserve_at(2_000_000_000), Duration::ZERO);
        assert_eq!(later.reserve_at(2_000_000_000), Duration::from_millis(500));
    }

    /// The send times of `arrivals` (ns) through `limiter`, each sent when its token is due.
    fn sent_at(limiter: &RateLimiter, arrivals: &[u64]) -> Vec<u64> {
        arrivals.iter().map(|&at| at + limiter.reserve_at(at).as_nanos() as u64).collect()
    }

    fn most_in_any_window(sent: &[u64], window: u64) -> usize {
        sent.iter().map(|&start| sent.iter().filter(|&&t| t >= start && t < start + window).count()).max().unwrap_or(0)
    }

    // Regression: the shipped DingTalk example allowed 22 in the first minute against DingTalk's
    // documented 20 (past it the robot is blocked for 10 minutes). Time is given, not waited for.
    #[test]
    fn dingtalks_default_never_sends_more_than_20_in_any_minute() {
        let (per_second, burst) = crate::template::Preset::DingTalk.default_rate_limit().unwrap();
        let minute = 60_000_000_000;
        // 40 at once, and 40 arriving in clumps over two minutes.
        let at_once = sent_at(&RateLimiter::new(RateLimit { per_second, burst }), &[0; 40]);
        assert_eq!(most_in_any_window(&at_once, minute), 20);
        let clumps: Vec<u64> = (0..40).map(|i| (i / 10) * 30_000_000_000 + i % 10).collect();
        let clumped = sent_at(&RateLimiter::new(RateLimit { per_second, burst }), &clumps);
        assert!(most_in_any_window(&clumped, minute) <= 20);
        // Every preset's default keeps its documented window: Discord's 5 per 2 s.
        let (per_second, burst) = crate::template::Preset::Discord.default_rate_limit().unwrap();
        let discord = sent_at(&RateLimiter::new(RateLimit { per_second, burst }), &[0; 40]);
        assert_eq!(most_in_any_window(&discord, 2_000_000_000), 5);
        // The old example ({per_second: 0.33, burst: 3}) sent 22 in its first minute.
        let old = sent_at(&RateLimiter::new(RateLimit { per_second: 0.33, burst: 3 }), &[0; 40]);
        assert_eq!(most_in_any_window(&old, minute), 22);
    }
}
