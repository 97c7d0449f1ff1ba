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
    /// Whether `key` was accepted within `window`. Does not record it: see [`Dedup::record`].
    pub fn is_duplicate(&self, key: u64, window: Duration) -> bool {
        let seen = self.seen.lock().expect("dedup lock");
        seen.keys.get(&key).is_some_and(|at| at.elapsed() < window)
    }

    /// Records accepted notifications, and forgets those older than `window`.
    pub fn record(&self, keys: impl IntoIterator<Item = u64>, window: Duration) {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("dedup lock");
        if seen.last_prune.is_none_or(|at| now.duration_since(at) > window) {
            seen.keys.retain(|_, at| now.duration_since(*at) < window);
            seen.last_prune = Some(now);
        }
        for key in keys {
            seen.keys.insert(key, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_window_only() {
        let dedup = Dedup::default();
        let window = Duration::from_millis(50);
        assert!(!dedup.is_duplicate(1, window));
        dedup.record([1], window);
        assert!(dedup.is_duplicate(1, window));
        assert!(!dedup.is_duplicate(2, window));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!dedup.is_duplicate(1, window));
    }
}
