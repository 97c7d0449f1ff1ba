//! History in memory (no spool file): records with their indexes, bounded by
//! `history.max_bytes` (8 MiB by default) and `history.retention`.

#![allow(clippy::disallowed_types)] // Written by finished deliveries and read by the API, off the request path.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use super::{Limits, Page, Query, Record, set_totals, walk};

/// The records and their indexes. The indexes hold a keyed hash of the receiver or fingerprint
/// with the sequence — 16 bytes an entry, no string copied, cheap to compare — and a listing
/// checks every record it reads against its query anyway, so a collision only costs a read.
/// The key is random per process: a sender cannot craft fingerprints that collide.
#[derive(Debug, Default)]
struct Kept {
    records: BTreeMap<u64, (Record, u64)>,
    by_receiver: BTreeSet<(u64, u64)>,
    by_fingerprint: BTreeSet<(u64, u64)>,
    next_seq: u64,
    bytes: u64,
}

/// History kept in this process's memory.
#[derive(Debug)]
pub struct MemoryHistory {
    kept: Mutex<Kept>,
    limits: Arc<Limits>,
    hasher: RandomState,
}

impl MemoryHistory {
    pub fn new(limits: Arc<Limits>) -> MemoryHistory {
        MemoryHistory { kept: Mutex::new(Kept { next_seq: 1, ..Kept::default() }), limits, hasher: RandomState::new() }
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Keeps a record (admitted by [`Limits::admit`]), then drops the oldest beyond the bounds.
    pub fn insert(&self, mut record: Record) {
        let kept = self.kept.lock().expect("history");
        record.seq = kept.next_seq;
        self.keep(kept, record);
        self.limits.written(1);
    }

    /// Keeps a record under the sequence it has (a shared stream's, above every one kept), then
    /// drops the oldest beyond the bounds. Not one admitted by [`Limits::admit`]: the writer
    /// (`delivery.nats`'s publishing task) gives that place back.
    pub fn insert_numbered(&self, record: Record) {
        self.keep(self.kept.lock().expect("history"), record);
    }

    fn keep(&self, mut kept: std::sync::MutexGuard<'_, Kept>, record: Record) {
        kept.next_seq = kept.next_seq.max(record.seq + 1);
        let bytes = record.memory_bytes();
        kept.by_receiver.insert((self.hash(&record.receiver), record.seq));
        for fingerprint in &record.fingerprints {
            kept.by_fingerprint.insert((self.hash(fingerprint), record.seq));
        }
        kept.bytes += bytes;
        kept.records.insert(record.seq, (record, bytes));
        let oldest_kept = self.limits.oldest_kept(super::now_ms());
        while let Some((_, (oldest, _))) = kept.records.first_key_value() {
            if kept.bytes <= self.limits.max_bytes() && oldest.finished_unix_ms >= oldest_kept {
                break;
            }
            let Some((seq, (oldest, bytes))) = kept.records.pop_first() else { break };
            kept.by_receiver.remove(&(self.hash(&oldest.receiver), seq));
            for fingerprint in &oldest.fingerprints {
                kept.by_fingerprint.remove(&(self.hash(fingerprint), seq));
            }
            kept.bytes -= bytes;
        }
        set_totals(kept.records.len() as u64, kept.bytes);
    }

    /// A page of records, newest first.
    pub fn page(&self, query: &Query) -> Page {
        let kept = self.kept.lock().expect("history");
        let below = query.after.unwrap_or(u64::MAX);
        let get = |seq: u64| Ok(kept.records.get(&seq).map(|(r, _)| r.clone()));
        let result = match query.index() {
            super::Index::All => walk(kept.records.range(..below).rev().map(|(seq, _)| Ok(*seq)), get, query),
            super::Index::Receiver(name) => {
                let hash = self.hash(name);
                walk(kept.by_receiver.range((hash, 0)..(hash, below)).rev().map(|(_, seq)| Ok(*seq)), get, query)
            }
            super::Index::Fingerprint(fingerprint) => {
                let hash = self.hash(fingerprint);
                walk(kept.by_fingerprint.range((hash, 0)..(hash, below)).rev().map(|(_, seq)| Ok(*seq)), get, query)
            }
        };
        result.unwrap_or_default()
    }
}
