//! Notification history: one [`Record`] per finished notification — delivered, dead-lettered,
//! muted, or given up because its receiver was removed — kept bounded and queryable.
//!
//! The store keeps them ([`crate::spool`]: in the spool file, in the transaction that already
//! records the delivery; with `delivery.nats` in a JetStream stream shared by the replicas, each
//! keeping a copy in memory; or in memory), with indexes by receiver, by alert fingerprint and by
//! sequence (which is the order notifications finished in), so a listing reads only the records
//! it may return. [`Query`] is the one filter both stores apply; [`memory`] is the in-memory store.
//!
//! Recording never slows acceptance or delivery: a record is a small struct sent to the store
//! without waiting; when the store falls behind ([`MAX_BEHIND`] records waiting) records are
//! dropped and counted in `amrelay_history_dropped_total{reason="behind"}`, never a notification.

pub mod memory;
mod packed;
mod query;
mod summary;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

pub use query::{Index, Query};
pub use summary::Summary;

use crate::config::HistoryConfig;
use crate::metrics as m;

/// Records waiting to be written before new ones are dropped (counted): about 1 KiB each, so
/// at most ~8 MiB held on their way to the store.
pub const MAX_BEHIND: usize = 8192;
/// Records a listing returns at most (and by default [`DEFAULT_LIMIT`]).
pub const MAX_LIMIT: usize = 1000;
pub const DEFAULT_LIMIT: usize = 100;
/// Records one listing reads at most before it answers with what it found and a cursor: a
/// query whose filters the indexes cannot narrow costs a bounded time, and the caller goes on.
pub const MAX_SCAN: usize = 20_000;
/// Fingerprints and alert names a record keeps at most (a notification of more alerts keeps the
/// first ones; `alerts` says how many there were).
pub const MAX_ALERTS_KEPT: usize = 100;

/// How a notification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Delivered,
    DeadLettered,
    ReceiverRemoved,
    /// Not sent: muted by quiet hours or a silence (`on_mute: drop`, or superseded while held).
    Muted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::ReceiverRemoved => "receiver_removed",
            Outcome::Muted => "muted",
        }
    }

    pub fn parse(word: &str) -> Option<Outcome> {
        [Outcome::Delivered, Outcome::DeadLettered, Outcome::ReceiverRemoved, Outcome::Muted]
            .into_iter()
            .find(|o| o.as_str() == word)
    }
}

/// One finished notification, as the history API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Its place in the history (assigned by the store; finishing order).
    #[serde(default)]
    pub seq: u64,
    pub receiver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub group_key: String,
    /// The notification's `status`: `firing` or `resolved`.
    pub status: String,
    pub alerts: usize,
    pub fingerprints: Vec<String>,
    pub alertnames: Vec<String>,
    /// Sent as `Idempotency-Key`.
    pub id: String,
    pub attempts: u32,
    pub outcome: Outcome,
    /// The dead-letter reason (`max_attempts`, `non_retryable` …), for a dead letter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The downstream's last HTTP status, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The last error, redacted as every error amrelay shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a receiver with `thread:`, what delivering it did: `posted` (the group's first
    /// message), `updated` or `replied` (a follow-up), `reposted` (its message was gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    pub accepted_unix_ms: u64,
    pub finished_unix_ms: u64,
    /// From acceptance to the end.
    pub latency_ms: u64,
}

impl Record {
    /// The record as stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record serializes")
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        serde_json::from_slice(bytes).ok()
    }

    /// What a record held in memory costs (the in-memory store counts this against
    /// `history.max_bytes`; see [`memory`]): its packed form and its index hashes (appended to
    /// the store's buffers), its map entry, and an index entry (hash and sequence) for its
    /// receiver and each fingerprint, with a B-tree slot each.
    pub fn memory_bytes(&self) -> u64 {
        memory::held_bytes(packed::len(self), self.fingerprints.len())
    }

    /// The bytes a stored record counts against `history.max_bytes` in the spool file: its
    /// encoding and its index keys (sequence; receiver and fingerprints with the sequence).
    pub fn stored_bytes(encoded: usize, record: &Record) -> u64 {
        let keys = 8 + record.receiver.len() + 8 + record.fingerprints.iter().map(|f| f.len() + 8).sum::<usize>();
        (encoded + keys) as u64
    }
}

/// What the history API answers: newest first, and where the next page starts.
#[derive(Debug, Default, Serialize)]
pub struct Page {
    pub data: Vec<Record>,
    /// Give as `after` for the next page; `null` when there is none.
    pub next_after: Option<u64>,
}

/// `history:` as it applies now (a reload changes it), and the counts the metrics show.
#[derive(Debug)]
pub struct Limits {
    enabled: AtomicBool,
    retention_ms: AtomicU64,
    max_bytes: AtomicU64,
    on_disk: bool,
    /// Records sent to the store and not yet written.
    behind: AtomicUsize,
}

impl Limits {
    pub fn new(config: &HistoryConfig, on_disk: bool) -> Arc<Limits> {
        let limits = Arc::new(Limits {
            enabled: AtomicBool::new(config.enabled),
            retention_ms: AtomicU64::new(0),
            max_bytes: AtomicU64::new(0),
            on_disk,
            behind: AtomicUsize::new(0),
        });
        limits.apply(config);
        for reason in ["behind", "error"] {
            metrics::counter!(m::HISTORY_DROPPED, "reason" => reason).increment(0);
        }
        limits
    }

    /// Applies a (re)loaded `history:`.
    pub fn apply(&self, config: &HistoryConfig) {
        self.enabled.store(config.enabled, Ordering::Relaxed);
        self.retention_ms.store(config.retention.as_millis() as u64, Ordering::Relaxed);
        self.max_bytes.store(config.max_bytes(self.on_disk), Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::Relaxed)
    }

    /// Records finished before this time (ms since the epoch) are past `history.retention`.
    pub fn oldest_kept(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.retention_ms.load(Ordering::Relaxed))
    }

    /// Takes a place for one record on its way to the store; `false` (counted) when too many
    /// wait already.
    pub fn admit(&self) -> bool {
        if self.behind.fetch_add(1, Ordering::Relaxed) >= MAX_BEHIND {
            self.behind.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!(m::HISTORY_DROPPED, "reason" => "behind").increment(1);
            return false;
        }
        true
    }

    /// A record admitted was written (or dropped by the store).
    pub fn written(&self, count: usize) {
        self.behind.fetch_sub(count, Ordering::Relaxed);
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Publishes the store's totals.
pub fn set_totals(records: u64, bytes: u64) {
    metrics::gauge!(m::HISTORY_RECORDS).set(records as f64);
    metrics::gauge!(m::HISTORY_BYTES).set(bytes as f64);
}

/// Walks candidate sequences, newest first (from the index [`Query::index`] chose, below
/// `after`), reading each record with `get`, and keeps those that match, up to the query's limit
/// — the one paging rule of every store. Stops early at [`MAX_SCAN`] records read (answering a
/// cursor to go on) and once every older record finished before `since`.
pub fn walk(
    seqs: impl Iterator<Item = Result<u64, String>>,
    mut get: impl FnMut(u64) -> Result<Option<Record>, String>,
    query: &Query,
) -> Result<Page, String> {
    let mut page = Page::default();
    for (scanned, seq) in seqs.enumerate() {
        let seq = seq?;
        let Some(record) = get(seq)? else { continue };
        if query.past_since(&record) {
            break;
        }
        if query.matches(&record) {
            if page.data.len() == query.limit {
                page.next_after = page.data.last().map(|r| r.seq);
                break;
            }
            page.data.push(record);
        }
        if scanned + 1 >= MAX_SCAN {
            page.next_after = Some(seq);
            break;
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The promise of the module docs: beyond MAX_BEHIND records on their way to the store, new
    /// ones are refused (and counted), and each one written makes room again.
    #[test]
    fn at_most_max_behind_records_wait_for_the_store() {
        let limits = Limits::new(&HistoryConfig::default(), true);
        assert!((0..MAX_BEHIND).all(|_| limits.admit()));
        assert!(!limits.admit(), "the one past the bound is dropped");
        limits.written(1);
        assert!(limits.admit());
        assert!(!limits.admit());
    }
}
