//! `delivery.dedup_window`: the same notification twice is delivered once.
//!
//! Alertmanager HA peers each send a group's notification; amrelay, behind both, would deliver it
//! twice. Within the window, a notification identical to one already accepted — same receiver,
//! same groupKey, same alerts (labels) in the same states — is answered 200 and not queued again.
//! `externalURL` and the alerts' other fields are left out of the comparison because they differ
//! between peers.
//!
//! The map is lock-free (papaya): every batch claims its keys on the request path, and two
//! requests never wait for each other here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use papaya::{Compute, Operation};

/// The identity of a notification, for the window and JetStream's `Nats-Msg-Id`: 128 bits of
/// HMAC-SHA256 (see [`crate::route::dedup_key`]).
pub type DedupKey = u128;

/// Notifications seen recently, by key, with when they were claimed.
#[derive(Debug)]
pub struct Dedup {
    keys: papaya::HashMap<DedupKey, Instant>,
    /// The process-relative millisecond of the last prune; one request at a time wins it.
    last_prune_ms: AtomicU64,
    epoch: Instant,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup { keys: papaya::HashMap::new(), last_prune_ms: AtomicU64::new(0), epoch: Instant::now() }
    }
}

impl Dedup {
    /// Claims `key` for a notification about to be accepted: false if one identical to it was
    /// claimed within `window` (a duplicate). Check and claim are one atomic step, so two peers'
    /// copies arriving at the same instant cannot both pass. A claim for a batch that is then
    /// refused must be [`Dedup::release`]d, or Alertmanager's retry would be taken for a duplicate.
    pub fn claim(&self, key: DedupKey, window: Duration) -> bool {
        let now = Instant::now();
        self.prune(now, window);
        let keys = self.keys.pin();
        let outcome = keys.compute(key, |entry| match entry {
            Some((_, at)) if now.saturating_duration_since(*at) < window => Operation::Abort(()),
            _ => Operation::Insert(now),
        });
        !matches!(outcome, Compute::Aborted(()))
    }

    /// Gives up claims of a refused batch.
    pub fn release(&self, keys: impl IntoIterator<Item = DedupKey>) {
        let map = self.keys.pin();
        for key in keys {
            map.remove(&key);
        }
    }

    /// Forgets keys older than the window, at most once per window.
    fn prune(&self, now: Instant, window: Duration) {
        let now_ms = now.duration_since(self.epoch).as_millis() as u64;
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) <= window.as_millis() as u64 {
            return;
        }
        if self.last_prune_ms.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.keys.pin().retain(|_, at| now.saturating_duration_since(*at) < window);
        }
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_once_within_the_window() {
        let dedup = Dedup::default();
        let window = Duration::from_millis(50);
        assert!(dedup.claim(1, window));
        assert!(!dedup.claim(1, window), "a second copy is a duplicate");
        assert!(dedup.claim(2, window));
        std::thread::sleep(Duration::from_millis(60));
        assert!(dedup.claim(1, window), "the window has passed");
        dedup.release([1]);
        assert!(dedup.claim(1, window), "a released claim can be made again");
    }

    #[test]
    fn old_keys_are_pruned() {
        let dedup = Dedup::default();
        let window = Duration::from_millis(20);
        for key in 0..100 {
            assert!(dedup.claim(key, window));
        }
        std::thread::sleep(Duration::from_millis(30));
        assert!(dedup.claim(1000, window));
        assert_eq!(dedup.len(), 1, "the 100 expired keys are gone");
    }

    #[test]
    fn concurrent_claims_of_one_key_let_exactly_one_through() {
        let dedup = std::sync::Arc::new(Dedup::default());
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let dedup = dedup.clone();
                    scope.spawn(move || dedup.claim(7, Duration::from_secs(60)) as usize)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(winners, 1);
    }
}
