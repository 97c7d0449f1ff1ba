//! `delivery.dedup_window`: the same notification twice is delivered once.
//!
//! Alertmanager HA peers each send a group's notification; amrelay, behind both, would deliver it
//! twice. Within the window, a notification identical to one already accepted — same receiver,
//! same groupKey, same alerts (labels) in the same states — is answered 200 and not queued again.
//! `externalURL` and the alerts' other fields are left out of the comparison because they differ
//! between peers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Notifications seen recently, by key.
#[derive(Debug, Default)]
pub struct Dedup {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    keys: HashMap<u64, Instant>,
    last_prune: Option<Instant>,
}

impl Dedup {
    /// Claims `key` for a notification about to be accepted: false if one identical to it was
    /// claimed within `window` (a duplicate). Check and claim are one step, so two peers' copies
    /// arriving at the same instant cannot both pass. A claim for a batch that is then refused
    /// must be [`Dedup::release`]d, or Alertmanager's retry would be taken for a duplicate.
    pub fn claim(&self, key: u64, window: Duration) -> bool {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("dedup lock");
        if seen.last_prune.is_none_or(|at| now.duration_since(at) > window) {
            seen.keys.retain(|_, at| now.duration_since(*at) < window);
            seen.last_prune = Some(now);
        }
        match seen.keys.get(&key) {
            Some(at) if now.duration_since(*at) < window => false,
            _ => {
                seen.keys.insert(key, now);
                true
            }
        }
    }

    /// Gives up claims of a refused batch.
    pub fn release(&self, keys: impl IntoIterator<Item = u64>) {
        let mut seen = self.seen.lock().expect("dedup lock");
        for key in keys {
            seen.keys.remove(&key);
        }
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
}
