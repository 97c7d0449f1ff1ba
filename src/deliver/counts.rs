//! Per-receiver delivery counts for the status API and the console: totals since start and the
//! recent rate, in ten-second buckets.
//!
//! Prometheus has the same totals as counters, but a status page cannot read them back, and the
//! console's sparkline wants a few minutes of history the moment it opens. Each bucket is one
//! atomic holding its bucket number and its count, so recording is lock-free and needs no timer:
//! a bucket found holding an older number is simply started again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The width of one bucket of the recent rate.
pub const BUCKET_SECONDS: u64 = 10;
/// How many buckets are kept: five minutes.
pub const BUCKETS: usize = 30;

/// Counts of one receiver since the process started.
#[derive(Debug, Default)]
pub struct DeliveryCounts {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    dead_lettered: AtomicU64,
    recent_delivered: Recent,
    recent_failed: Recent,
}

/// What [`DeliveryCounts::view`] shows.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CountsView {
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dead_lettered: u64,
    pub recent: RecentView,
}

/// The last [`BUCKETS`] buckets, oldest first; the last one is the current, partial bucket.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecentView {
    pub bucket_seconds: u64,
    pub delivered: Vec<u64>,
    pub failed_attempts: Vec<u64>,
}

impl DeliveryCounts {
    /// A notification was delivered.
    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.recent_delivered.record(now_bucket());
    }

    /// An attempt failed (it may be retried).
    pub fn failed_attempt(&self) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        self.recent_failed.record(now_bucket());
    }

    /// A notification was dead-lettered.
    pub fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals and the recent buckets, now.
    pub fn view(&self) -> CountsView {
        self.view_at(now_bucket())
    }

    fn view_at(&self, bucket: u64) -> CountsView {
        CountsView {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            recent: RecentView {
                bucket_seconds: BUCKET_SECONDS,
                delivered: self.recent_delivered.read(bucket),
                failed_attempts: self.recent_failed.read(bucket),
            },
        }
    }
}

/// A ring of buckets, each `bucket number << 32 | count`.
#[derive(Debug, Default)]
struct Recent([AtomicU64; BUCKETS]);

impl Recent {
    fn record(&self, bucket: u64) {
        let slot = &self.0[bucket as usize % BUCKETS];
        let stamp = bucket & 0xffff_ffff;
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
            let count =
                if packed >> 32 == stamp { (packed & 0xffff_ffff).saturating_add(1).min(0xffff_ffff) } else { 1 };
            Some(stamp << 32 | count)
        });
    }

    fn read(&self, bucket: u64) -> Vec<u64> {
        (0..BUCKETS as u64)
            .rev()
            .map(|back| {
                let wanted = bucket.wrapping_sub(back);
                let packed = self.0[wanted as usize % BUCKETS].load(Ordering::Relaxed);
                if packed >> 32 == wanted & 0xffff_ffff { packed & 0xffff_ffff } else { 0 }
            })
            .collect()
    }
}

fn now_bucket() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / BUCKET_SECONDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_their_own_period_and_age_out() {
        let counts = DeliveryCounts::default();
        counts.recent_delivered.record(1000);
        counts.recent_delivered.record(1000);
        counts.recent_delivered.record(1002);
        let view = counts.view_at(1002);
        assert_eq!(view.recent.delivered[BUCKETS - 1], 1);
        assert_eq!(view.recent.delivered[BUCKETS - 3], 2);
        assert_eq!(view.recent.delivered.iter().sum::<u64>(), 3);
        // A full ring later the old buckets read as zero, and reusing a slot restarts it.
        let later = 1002 + BUCKETS as u64;
        assert_eq!(counts.view_at(later).recent.delivered.iter().sum::<u64>(), 0);
        counts.recent_delivered.record(later);
        let mut expected = vec![0; BUCKETS];
        expected[BUCKETS - 1] = 1;
        assert_eq!(counts.view_at(later).recent.delivered, expected);
    }

    #[test]
    fn totals_count_every_event() {
        let counts = DeliveryCounts::default();
        counts.delivered();
        counts.failed_attempt();
        counts.failed_attempt();
        counts.dead_lettered();
        let view = counts.view();
        assert_eq!((view.delivered, view.failed_attempts, view.dead_lettered), (1, 2, 1));
        assert_eq!(view.recent.failed_attempts.iter().sum::<u64>(), 2);
    }
}
