//! Thread state: each alert group's message at its destination, so that a later notification of
//! the group updates that message instead of posting a new one.
//!
//! Kept per receiver in memory and, with a spool file, in its `thread_groups` table: a new or
//! changed reference is committed durably before [`super::deliver`] returns, and the queue sends a
//! group's next notification only after that (per-groupKey order), so a restart never posts a
//! group twice. Bounded by `max_groups` (the least recently used group is forgotten first) and by
//! `expire`. A group is known by the SHA-256 of its groupKey, with only the groupKey's first
//! bytes kept for the listing, so a group costs the same few dozen bytes, in memory and on disk,
//! however long its groupKey; what the map holds is charged to the process byte budget.
// The map is touched once per delivered notification (not on the request path), for a lookup or
// an insert, never across an `.await`.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::memory::{Budget, Charge};
use crate::spool::record::{self, GroupHash};
use crate::spool::{Spool, unix_ms};

/// What one remembered group costs in memory beyond its strings: the entry, its key and the
/// map's share of a node.
const ENTRY_OVERHEAD: u64 = std::mem::size_of::<ThreadEntry>() as u64 + 32 + 48;

/// The most groups one page of the threads API lists (and the default).
pub const MAX_PAGE: usize = 1000;

/// A group's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadEntry {
    /// The destination's message reference (Discord: the message id).
    pub message_id: String,
    /// When it was posted or last updated.
    pub updated_unix_ms: u64,
    /// The start of the group's groupKey (at most [`record::GROUP_PREVIEW_BYTES`]), for the
    /// listing: the group itself is known by the hash of the whole groupKey.
    pub group_key: Box<str>,
}

impl ThreadEntry {
    /// As the spool keeps it: the preview, then the time and the reference (the entry's format
    /// before groups were keyed by hash, so old spools' entries move over unchanged).
    fn encode(&self) -> Vec<u8> {
        let mut entry = self.updated_unix_ms.to_le_bytes().to_vec();
        entry.extend_from_slice(self.message_id.as_bytes());
        record::encode_thread(&self.group_key, &entry)
    }

    fn decode(bytes: &[u8]) -> Option<ThreadEntry> {
        let (preview, entry) = record::decode_thread(bytes)?;
        let (time, id) = entry.split_at_checked(8)?;
        Some(ThreadEntry {
            message_id: std::str::from_utf8(id).ok()?.to_owned(),
            updated_unix_ms: u64::from_le_bytes(time.try_into().ok()?),
            group_key: preview.into(),
        })
    }

    /// Bytes it holds in memory, charged to the process budget.
    fn cost(&self) -> u64 {
        ENTRY_OVERHEAD + self.message_id.len() as u64 + self.group_key.len() as u64
    }
}

/// A page of remembered groups, in hash order; `next_after` continues it.
#[derive(Debug, Default)]
pub struct ThreadPage {
    pub entries: Vec<(GroupHash, ThreadEntry)>,
    pub next_after: Option<GroupHash>,
}

/// The loaded state: groups by hash, and their bytes' charge to the process budget.
#[derive(Debug)]
struct State {
    map: BTreeMap<GroupHash, ThreadEntry>,
    bytes: u64,
    charge: Charge,
}

impl State {
    fn insert(&mut self, group: GroupHash, entry: ThreadEntry) {
        self.bytes += entry.cost();
        if let Some(old) = self.map.insert(group, entry) {
            self.bytes -= old.cost();
        }
    }

    fn remove(&mut self, group: &GroupHash) {
        if let Some(old) = self.map.remove(group) {
            self.bytes -= old.cost();
        }
    }

    /// Charges what the map holds now (held anyway: the groups were delivered).
    fn charged(&mut self) {
        self.charge.resize(self.bytes);
    }
}

/// One receiver's thread state.
#[derive(Debug)]
pub struct ThreadMemory {
    /// `None` until loaded from the spool (at the first notification that needs it).
    state: Mutex<Option<State>>,
    load: tokio::sync::OnceCell<()>,
    /// The process budget the entries are charged to.
    budget: Arc<Budget>,
}

impl ThreadMemory {
    pub fn new(budget: Arc<Budget>) -> ThreadMemory {
        ThreadMemory { state: Mutex::new(None), load: tokio::sync::OnceCell::new(), budget }
    }

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
                let mut state = State { map: BTreeMap::new(), bytes: 0, charge: Charge::empty(&self.budget) };
                for (group, bytes) in listed {
                    if let Some(entry) = ThreadEntry::decode(&bytes) {
                        state.insert(group, entry);
                    }
                }
                state.charged();
                *self.state.lock().expect("threads lock") = Some(state);
            })
            .await;
    }

    /// The group's message, unless it expired.
    pub async fn get(
        &self,
        receiver: &Arc<str>,
        spool: &Spool,
        group: &GroupHash,
        expire: Duration,
    ) -> Option<ThreadEntry> {
        self.loaded(receiver, spool).await;
        let now = unix_ms(SystemTime::now());
        let guard = self.state.lock().expect("threads lock");
        let entry = guard.as_ref()?.map.get(group)?;
        (now.saturating_sub(entry.updated_unix_ms) < expire.as_millis() as u64).then(|| entry.clone())
    }

    /// Remembers the group's message (durably, with a spool file), forgetting the least recently
    /// used groups past `max_groups` and every expired one then. `group_key` is the group's
    /// whole groupKey: only its hash and its start are kept.
    #[allow(clippy::too_many_arguments)]
    pub async fn remember(
        &self,
        receiver: &Arc<str>,
        spool: &Spool,
        group: GroupHash,
        group_key: &str,
        message_id: String,
        max_groups: usize,
        expire: Duration,
    ) -> Result<(), String> {
        self.loaded(receiver, spool).await;
        let entry = ThreadEntry {
            message_id,
            updated_unix_ms: unix_ms(SystemTime::now()),
            group_key: record::group_preview(group_key).into(),
        };
        let encoded = entry.encode();
        let evicted = {
            let mut guard = self.state.lock().expect("threads lock");
            let state = guard.get_or_insert_with(|| State {
                map: BTreeMap::new(),
                bytes: 0,
                charge: Charge::empty(&self.budget),
            });
            state.insert(group, entry);
            let mut evicted = Vec::new();
            if state.map.len() > max_groups {
                evicted = evict(state, max_groups, expire, &group);
            }
            state.charged();
            evicted
        };
        // Sent together, so the writer commits them in one transaction (one fsync), not one per
        // forgotten group: an eviction forgets a 64th of `max_groups` at once.
        let forgotten =
            futures_util::future::join_all(evicted.iter().map(|key| spool.set_thread(receiver, *key, None)));
        let (forgotten, remembered) = tokio::join!(forgotten, spool.set_thread(receiver, group, Some(encoded)));
        forgotten.into_iter().collect::<Result<(), String>>()?;
        remembered
    }

    /// Up to `limit` (at most [`MAX_PAGE`]) remembered groups after the hash `after`, in hash
    /// order, for the threads API: pages neither repeat nor skip a group that stays remembered
    /// while they are read.
    pub async fn page(&self, receiver: &Arc<str>, spool: &Spool, after: Option<GroupHash>, limit: usize) -> ThreadPage {
        self.loaded(receiver, spool).await;
        let limit = limit.clamp(1, MAX_PAGE);
        let guard = self.state.lock().expect("threads lock");
        let Some(state) = guard.as_ref() else { return ThreadPage::default() };
        let from: Bound<&GroupHash> = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut entries: Vec<_> = state
            .map
            .range::<GroupHash, _>((from, Bound::Unbounded))
            .take(limit + 1)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let next_after = (entries.len() > limit).then(|| {
            entries.truncate(limit);
            entries.last().map(|(k, _)| *k).unwrap_or_default()
        });
        ThreadPage { entries, next_after }
    }

    /// How many groups are remembered.
    pub fn len(&self) -> usize {
        self.state.lock().expect("threads lock").as_ref().map_or(0, |s| s.map.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Forgets every expired group and, if still over `max_groups`, the least recently used ones
/// down to `max_groups` less a 64th: a full store pays one pass over its groups per 64th of
/// new ones, not one per new group. `newest`, just remembered, is kept. Returns the forgotten keys.
fn evict(state: &mut State, max_groups: usize, expire: Duration, newest: &GroupHash) -> Vec<GroupHash> {
    let cutoff = unix_ms(SystemTime::now()).saturating_sub(expire.as_millis() as u64);
    let mut evicted: Vec<GroupHash> =
        state.map.iter().filter(|(_, e)| e.updated_unix_ms <= cutoff).map(|(k, _)| *k).collect();
    for key in &evicted {
        state.remove(key);
    }
    if state.map.len() > max_groups {
        let keep = max_groups - max_groups / 64;
        let drop = state.map.len() - keep;
        let mut by_age: Vec<(u64, GroupHash)> =
            state.map.iter().filter(|(k, _)| *k != newest).map(|(k, e)| (e.updated_unix_ms, *k)).collect();
        by_age.select_nth_unstable_by_key(drop - 1, |(time, _)| *time);
        for (_, key) in by_age.into_iter().take(drop) {
            state.remove(&key);
            evicted.push(key);
        }
    }
    evicted
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: Duration = Duration::from_secs(7 * 86400);

    async fn remember(
        threads: &ThreadMemory,
        spool: &Spool,
        group: &str,
        id: String,
        max_groups: usize,
        expire: Duration,
    ) {
        let receiver = Arc::<str>::from("r");
        threads.remember(&receiver, spool, record::group_hash(group), group, id, max_groups, expire).await.unwrap();
    }

    async fn get(threads: &ThreadMemory, spool: &Spool, group: &str, expire: Duration) -> Option<ThreadEntry> {
        threads.get(&Arc::from("r"), spool, &record::group_hash(group), expire).await
    }

    #[tokio::test]
    async fn least_recently_used_group_is_forgotten_past_max_groups() {
        let (threads, spool) = (ThreadMemory::new(Budget::process()), Spool::memory(10, Budget::process()));
        for (i, group) in ["a", "b", "c"].iter().enumerate() {
            remember(&threads, &spool, group, format!("m{i}"), 2, WEEK).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(threads.len(), 2);
        assert!(get(&threads, &spool, "a", WEEK).await.is_none());
        assert_eq!(get(&threads, &spool, "c", WEEK).await.unwrap().message_id, "m2");
    }

    #[tokio::test]
    async fn ten_thousand_groups_stay_within_max_groups() {
        let (threads, spool) = (ThreadMemory::new(Budget::process()), Spool::memory(10, Budget::process()));
        for i in 0..10_000 {
            remember(&threads, &spool, &format!("g{i}"), format!("m{i}"), 1000, WEEK).await;
            assert!(threads.len() <= 1000, "{} groups after {i}", threads.len());
        }
        assert!(threads.len() > 1000 - 1000 / 64 - 1, "{}", threads.len());
        // The newest group is always kept.
        assert_eq!(get(&threads, &spool, "g9999", WEEK).await.unwrap().message_id, "m9999");
    }

    /// Regression (issue 21): a 1 MiB groupKey was kept whole per remembered group, uncounted.
    /// Now a group holds its hash and a bounded preview, charged to the process budget, and the
    /// charge follows evictions.
    #[tokio::test]
    async fn a_long_group_key_costs_a_bounded_charged_entry() {
        let budget = Budget::process();
        let (threads, spool) = (ThreadMemory::new(budget.clone()), Spool::memory(10, budget.clone()));
        let before = budget.used();
        let long = "k".repeat(1 << 20);
        remember(&threads, &spool, &long, "m".into(), 10, WEEK).await;
        let charged = budget.used() - before;
        assert!(charged > 0 && charged < 512, "{charged} bytes charged");
        let entry = get(&threads, &spool, &long, WEEK).await.unwrap();
        assert_eq!(entry.group_key.len(), record::GROUP_PREVIEW_BYTES);
        for i in 0..20 {
            remember(&threads, &spool, &format!("g{i}"), "m".into(), 10, WEEK).await;
        }
        let charged = budget.used() - before;
        assert!(charged < 10 * 512, "{charged} bytes for at most 10 groups");
        drop(threads);
        assert_eq!(budget.used(), before, "given back with the state");
    }

    /// The listing's pages cover every group once, in hash order.
    #[tokio::test]
    async fn pages_list_every_group_once() {
        let (threads, spool, receiver) =
            (ThreadMemory::new(Budget::process()), Spool::memory(10, Budget::process()), Arc::<str>::from("r"));
        for i in 0..25 {
            remember(&threads, &spool, &format!("g{i}"), format!("m{i}"), 100, WEEK).await;
        }
        let (mut seen, mut after) = (Vec::new(), None);
        for _ in 0..10 {
            let page = threads.page(&receiver, &spool, after, 10).await;
            assert!(page.entries.len() <= 10);
            seen.extend(page.entries.into_iter().map(|(_, e)| e.message_id));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        seen.sort();
        let mut expected: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
        expected.sort();
        assert_eq!(seen, expected);
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
        let (threads, receiver) = (ThreadMemory::new(Budget::process()), Arc::<str>::from("r"));
        for i in 0..300 {
            remember(&threads, &spool, &format!("g{i}"), format!("m{i}"), 128, WEEK).await;
        }
        let on_disk = spool.list_threads(&receiver).await.unwrap();
        assert_eq!(on_disk.len(), threads.len(), "the file holds what memory holds");
        assert!(on_disk.len() <= 128, "{}", on_disk.len());
        assert!(on_disk.iter().any(|(group, _)| *group == record::group_hash("g299")));
        let reloaded = ThreadMemory::new(Budget::process());
        assert_eq!(get(&reloaded, &spool, "g299", WEEK).await.unwrap().group_key.as_ref(), "g299");
    }

    #[tokio::test]
    async fn an_expired_group_posts_anew() {
        let (threads, spool) = (ThreadMemory::new(Budget::process()), Spool::memory(10, Budget::process()));
        remember(&threads, &spool, "g", "m".into(), 10, Duration::from_secs(60)).await;
        assert!(get(&threads, &spool, "g", Duration::from_secs(60)).await.is_some());
        assert!(get(&threads, &spool, "g", Duration::ZERO).await.is_none());
    }

    #[test]
    fn entry_round_trips() {
        let entry =
            ThreadEntry { message_id: "1234567890".into(), updated_unix_ms: 42, group_key: "{}:{a=\"b\"}".into() };
        assert_eq!(ThreadEntry::decode(&entry.encode()), Some(entry));
        assert_eq!(ThreadEntry::decode(b"short"), None);
    }
}
