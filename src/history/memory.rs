//! History in memory (no spool file, or a replica's copy of `delivery.nats`'s shared stream):
//! records with their indexes, bounded by `history.max_bytes` (8 MiB by default) and
//! `history.retention`.
//!
//! Each record is held encoded (its JSON, one allocation) with the hashes it is indexed by
//! (another), not as a struct of a dozen strings: what is counted against `max_bytes` is then
//! what the process really holds, and a full history's pages are few. A listing decodes only
//! the records it reads.

#![allow(clippy::disallowed_types)] // Written by finished deliveries and read by the API, off the request path.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use super::{Limits, Page, Query, Record, set_totals, walk};

/// A record as held: its encoding, when it finished (for `retention`), what it counts, and the
/// hashes of its receiver and fingerprints (to take it out of the indexes).
#[derive(Debug)]
struct Held {
    encoded: Box<[u8]>,
    finished_unix_ms: u64,
    bytes: u64,
    hashes: Box<[u64]>,
}

/// What a held record's map value takes besides its heap (for [`Record::held_bytes`]).
pub const HELD: usize = std::mem::size_of::<Held>();

/// The records and their indexes. The indexes hold a keyed hash of the receiver or fingerprint
/// with the sequence — 16 bytes an entry, no string copied, cheap to compare — and a listing
/// checks every record it reads against its query anyway, so a collision only costs a read.
/// The key is random per process: a sender cannot craft fingerprints that collide.
#[derive(Debug, Default)]
struct Kept {
    records: BTreeMap<u64, Held>,
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
        let seq = record.seq;
        kept.next_seq = kept.next_seq.max(seq + 1);
        let encoded = record.encode().into_boxed_slice();
        let bytes = Record::held_bytes(encoded.len(), record.fingerprints.len());
        let hashes: Box<[u64]> =
            std::iter::once(&record.receiver).chain(&record.fingerprints).map(|key| self.hash(key)).collect();
        let held = Held { encoded, finished_unix_ms: record.finished_unix_ms, bytes, hashes };
        drop(record);
        kept.by_receiver.insert((held.hashes[0], seq));
        for &fingerprint in &held.hashes[1..] {
            kept.by_fingerprint.insert((fingerprint, seq));
        }
        kept.bytes += bytes;
        kept.records.insert(seq, held);
        let oldest_kept = self.limits.oldest_kept(super::now_ms());
        while let Some((_, oldest)) = kept.records.first_key_value() {
            if kept.bytes <= self.limits.max_bytes() && oldest.finished_unix_ms >= oldest_kept {
                break;
            }
            let Some((seq, oldest)) = kept.records.pop_first() else { break };
            kept.by_receiver.remove(&(oldest.hashes[0], seq));
            for &fingerprint in &oldest.hashes[1..] {
                kept.by_fingerprint.remove(&(fingerprint, seq));
            }
            kept.bytes -= oldest.bytes;
        }
        set_totals(kept.records.len() as u64, kept.bytes);
    }

    /// A page of records, newest first.
    pub fn page(&self, query: &Query) -> Page {
        let kept = self.kept.lock().expect("history");
        let below = query.after.unwrap_or(u64::MAX);
        let get = |seq: u64| Ok(kept.records.get(&seq).and_then(|held| Record::decode(&held.encoded)));
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
