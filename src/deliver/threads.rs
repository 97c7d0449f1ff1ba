//! Thread state: each alert group's message at its destination, so that a later notification of
//! the group updates that message instead of posting a new one.
//!
//! Kept per receiver in memory and, with a spool file, in its `threads` table: a new or changed
//! reference is committed durably before [`super::deliver`] returns, and the queue sends a group's
//! next notification only after that (per-groupKey order), so a restart never posts a group twice.
//! Bounded by `max_groups` (the least recently used group is forgotten first) and by `expire`.
// The map is touched once per delivered notification (not on the request path), for a lookup or
// an insert, never across an `.await`.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::spool::{Spool, unix_ms};

/// A group's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadEntry {
    /// The destination's message reference (Discord: the message id).
    pub message_id: String,
    /// When it was posted or last updated.
    pub updated_unix_ms: u64,
}

impl ThreadEntry {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.updated_unix_ms.to_le_bytes().to_vec();
        out.extend_from_slice(self.message_id.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<ThreadEntry> {
        let (time, id) = bytes.split_at_checked(8)?;
        Some(ThreadEntry {
            message_id: std::str::from_utf8(id).ok()?.to_owned(),
            updated_unix_ms: u64::from_le_bytes(time.try_into().ok()?),
        })
    }
}

/// One receiver's thread state.
#[derive(Debug, Default)]
pub struct Threads {
    /// `None` until loaded from the spool (at the first notification that needs it).
    map: Mutex<Option<HashMap<Arc<str>, ThreadEntry>>>,
    load: tokio::sync::OnceCell<()>,
}

impl Threads {
    async fn loaded(&self, receiver: &Arc<str>, spool: &Spool) {
        self.load
            .get_or_init(|| async {
                let listed = match spool.list_threads(receiver).await {
                    Ok(listed) => listed,
                    Err(e) => {
                        tracing::error!(receiver = %receiver, error = %e, "cannot read thread state from the spool; groups will post new messages");
                        Vec::new()
                    }
                };
                let map = listed
                    .into_iter()
                    .filter_map(|(group, bytes)| Some((Arc::from(group), ThreadEntry::decode(&bytes)?)))
                    .collect();
                *self.map.lock().expect("threads lock") = Some(map);
            })
            .await;
    }

    /// The group's message, unless it expired.
    pub async fn get(
        &self,
        receiver: &Arc<str>,
        spool: &Spool,
        group_key: &str,
        expire: Duration,
    ) -> Option<ThreadEntry> {
        self.loaded(receiver, spool).await;
        let now = unix_ms(SystemTime::now());
        let guard = self.map.lock().expect("threads lock");
        let entry = guard.as_ref()?.get(group_key)?;
        (now.saturating_sub(entry.updated_unix_ms) < expire.as_millis() as u64).then(|| entry.clone())
    }

    /// Remembers the group's message (durably, with a spool file), forgetting the least recently
    /// used groups past `max_groups` and every expired one then.
    pub async fn remember(
        &self,
        receiver: &Arc<str>,
        spool: &Spool,
        group_key: &Arc<str>,
        message_id: String,
        max_groups: usize,
        expire: Duration,
    ) -> Result<(), String> {
        self.loaded(receiver, spool).await;
        let entry = ThreadEntry { message_id, updated_unix_ms: unix_ms(SystemTime::now()) };
        let encoded = entry.encode();
        let evicted = {
            let mut guard = self.map.lock().expect("threads lock");
            let map = guard.get_or_insert_with(HashMap::new);
            map.insert(group_key.clone(), entry);
            let mut evicted = Vec::new();
            if map.len() > max_groups {
                evicted = evict(map, max_groups, expire, group_key);
            }
            evicted
        };
        // Sent together, so the writer commits them in one transaction (one fsync), not one per
        // forgotten group: an eviction forgets a 64th of `max_groups` at once.
        let forgotten = futures_util::future::join_all(evicted.iter().map(|key| spool.set_thread(receiver, key, None)));
        let (forgotten, remembered) = tokio::join!(forgotten, spool.set_thread(receiver, group_key, Some(encoded)));
        forgotten.into_iter().collect::<Result<(), String>>()?;
        remembered
    }

    /// Every remembered group, newest first, for the threads API.
    pub async fn list(&self, receiver: &Arc<str>, spool: &Spool) -> Vec<(Arc<str>, ThreadEntry)> {
        self.loaded(receiver, spool).await;
        let guard = self.map.lock().expect("threads lock");
        let mut list: Vec<_> =
            guard.as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        list.sort_by_key(|(_, e)| std::cmp::Reverse(e.updated_unix_ms));
        list
    }

    /// How many groups are remembered.
    pub fn len(&self) -> usize {
        self.map.lock().expect("threads lock").as_ref().map_or(0, HashMap::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Forgets every expired group and, if still over `max_groups`, the least recently used ones
/// down to `max_groups` less a 64th: a full store pays one pass over its groups per 64th of
/// new ones, not one per new group. `newest`, just remembered, is kept. Returns the forgotten keys.
fn evict(
    map: &mut HashMap<Arc<str>, ThreadEntry>,
    max_groups: usize,
    expire: Duration,
    newest: &Arc<str>,
) -> Vec<Arc<str>> {
    let cutoff = unix_ms(SystemTime::now()).saturating_sub(expire.as_millis() as u64);
    let mut evicted: Vec<Arc<str>> =
        map.iter().filter(|(_, e)| e.updated_unix_ms <= cutoff).map(|(k, _)| k.clone()).collect();
    for key in &evicted {
        map.remove(key);
    }
    if map.len() > max_groups {
        let keep = max_groups - max_groups / 64;
        let drop = map.len() - keep;
        let mut by_age: Vec<(u64, Arc<str>)> =
            map.iter().filter(|(k, _)| *k != newest).map(|(k, e)| (e.updated_unix_ms, k.clone())).collect();
        by_age.select_nth_unstable_by_key(drop - 1, |(time, _)| *time);
        for (_, key) in by_age.into_iter().take(drop) {
            map.remove(&key);
            evicted.push(key);
        }
    }
    evicted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn least_recently_used_group_is_forgotten_past_max_groups() {
        let (threads, spool, receiver) = (Threads::default(), Spool::memory(10), Arc::<str>::from("r"));
        let week = Duration::from_secs(7 * 86400);
        for (i, group) in ["a", "b", "c"].iter().enumerate() {
            threads.remember(&receiver, &spool, &Arc::from(*group), format!("m{i}"), 2, week).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(threads.len(), 2);
        assert!(threads.get(&receiver, &spool, "a", week).await.is_none());
        assert_eq!(threads.get(&receiver, &spool, "c", week).await.unwrap().message_id, "m2");
    }

    #[tokio::test]
    async fn ten_thousand_groups_stay_within_max_groups() {
        let (threads, spool, receiver) = (Threads::default(), Spool::memory(10), Arc::<str>::from("r"));
        let week = Duration::from_secs(7 * 86400);
        for i in 0..10_000 {
            threads
                .remember(&receiver, &spool, &Arc::from(format!("g{i}")), format!("m{i}"), 1000, week)
                .await
                .unwrap();
            assert!(threads.len() <= 1000, "{} groups after {i}", threads.len());
        }
        assert!(threads.len() > 1000 - 1000 / 64 - 1, "{}", threads.len());
        // The newest group is always kept.
        assert_eq!(threads.get(&receiver, &spool, "g9999", week).await.unwrap().message_id, "m9999");
    }

    /// With a spool file, the groups forgotten by an eviction are forgotten on disk too: a
    /// restart reads back at most `max_groups`.
    #[tokio::test]
    async fn evictions_reach_the_spool_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::SpoolConfig {
            path: dir.path().join("spool.redb"),
            max_bytes: 1 << 20,
            memory_window_bytes: 1 << 20,
            group_commit: true,
        };
        let (spool, _) = Spool::open(&config, 10).unwrap();
        let (threads, receiver) = (Threads::default(), Arc::<str>::from("r"));
        let week = Duration::from_secs(7 * 86400);
        for i in 0..300 {
            threads.remember(&receiver, &spool, &Arc::from(format!("g{i}")), format!("m{i}"), 128, week).await.unwrap();
        }
        let on_disk = spool.list_threads(&receiver).await.unwrap();
        assert_eq!(on_disk.len(), threads.len(), "the file holds what memory holds");
        assert!(on_disk.len() <= 128, "{}", on_disk.len());
        assert!(on_disk.iter().any(|(group, _)| group == "g299"));
    }

    #[tokio::test]
    async fn an_expired_group_posts_anew() {
        let (threads, spool, receiver) = (Threads::default(), Spool::memory(10), Arc::<str>::from("r"));
        threads.remember(&receiver, &spool, &Arc::from("g"), "m".into(), 10, Duration::from_secs(60)).await.unwrap();
        assert!(threads.get(&receiver, &spool, "g", Duration::from_secs(60)).await.is_some());
        assert!(threads.get(&receiver, &spool, "g", Duration::ZERO).await.is_none());
    }

    #[test]
    fn entry_round_trips() {
        let entry = ThreadEntry { message_id: "1234567890".into(), updated_unix_ms: 42 };
        assert_eq!(ThreadEntry::decode(&entry.encode()), Some(entry));
        assert_eq!(ThreadEntry::decode(b"short"), None);
    }
}
