//! History in memory (no spool file, or a replica's copy of `delivery.nats`'s shared stream):
//! records with their indexes, bounded by `history.max_bytes` (8 MiB by default) and
//! `history.retention`.
//!
//! Each record is held packed ([`super::packed`]), then the hashes it is indexed by, appended to
//! [`SEGMENT`]-sized buffers that are freed whole once every record in them has gone (records go
//! oldest first, in the order they came). No allocation per record, and none interleaved with
//! the request path's short-lived ones: what is counted against `max_bytes` is what the process
//! holds (held as structs of a dozen strings, 8 MiB of counted history took ~35 MB of memory at
//! the defaults; held as one allocation each, still ~17 MB through fragmentation). A listing
//! decodes only the records it reads.
//!
//! Memory: at most `max_bytes` counted, plus two segments (the one being filled, and the oldest
//! one's records already gone).

#![allow(clippy::disallowed_types)] // Written by finished deliveries and read by the API, off the request path.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use super::{Limits, Page, Query, Record, set_totals, walk};

/// The size of the buffers records are appended to (a larger record gets one of its own).
pub const SEGMENT: usize = 64 * 1024;

/// Where a record is, when it finished (for `retention`), what it counts, and how many hashes
/// follow its packed form (its receiver's, then its fingerprints').
#[derive(Debug)]
struct Held {
    segment: u64,
    offset: u32,
    packed: u32,
    hashes: u32,
    finished_unix_ms: u64,
    bytes: u64,
}

/// What a record of `packed` bytes and `fingerprints` fingerprints counts (see
/// [`Record::memory_bytes`]): its packed form and keys in a segment, its map entry, and an
/// index entry (key and sequence) for its receiver and each fingerprint.
pub(super) fn held_bytes(packed: usize, fingerprints: usize) -> u64 {
    /// A B-tree entry's share of its node, besides its key and value.
    const SLOT: usize = 32;
    let keys = (1 + fingerprints) * 8;
    let entry = 8 + std::mem::size_of::<Held>() + SLOT;
    let indexes = (1 + fingerprints) * (8 + 8 + SLOT);
    (packed + keys + entry + indexes) as u64
}

/// A buffer of appended records, and how many of them are still kept.
#[derive(Debug)]
struct Segment {
    data: Vec<u8>,
    live: usize,
}

/// The records and their indexes. The indexes hold a keyed hash of the receiver or fingerprint
/// with the sequence — 16 bytes an entry, no string copied, cheap to compare — and a listing
/// checks every record it reads against its query anyway, so a collision only costs a read.
/// The key is random per process: a sender cannot craft fingerprints that collide.
#[derive(Debug, Default)]
struct Kept {
    records: BTreeMap<u64, Held>,
    by_receiver: BTreeSet<(u64, u64)>,
    by_fingerprint: BTreeSet<(u64, u64)>,
    segments: VecDeque<Segment>,
    /// The number of `segments[0]`.
    first_segment: u64,
    next_seq: u64,
    bytes: u64,
}

impl Kept {
    /// Appends a packed record and its index keys (how many, and the keys); says where.
    fn append(&mut self, record: &Record, packed: usize, keys: (u32, impl Iterator<Item = u64>)) -> (u64, u32) {
        let (count, keys) = keys;
        let size = packed + count as usize * 8;
        let fits = self.segments.back().is_some_and(|s| s.data.len() + size <= s.data.capacity());
        if !fits {
            self.segments.push_back(Segment { data: Vec::with_capacity(SEGMENT.max(size)), live: 0 });
        }
        let segment = self.segments.back_mut().expect("a segment");
        let offset = segment.data.len() as u32;
        super::packed::pack(record, &mut segment.data);
        for key in keys {
            segment.data.extend_from_slice(&key.to_le_bytes());
        }
        segment.live += 1;
        (self.first_segment + self.segments.len() as u64 - 1, offset)
    }

    fn record(&self, held: &Held) -> Option<Record> {
        let segment = &self.segments[(held.segment - self.first_segment) as usize];
        super::packed::unpack(&segment.data[held.offset as usize..][..held.packed as usize])
    }

    /// Adds (or removes) a record's index entries, read from the keys stored after it: the
    /// first is its receiver's, the others its fingerprints'.
    fn index(&mut self, seq: u64, held: &Held, add: bool) {
        let segment = &self.segments[(held.segment - self.first_segment) as usize];
        let keys = &segment.data[held.offset as usize + held.packed as usize..][..held.hashes as usize * 8];
        for (n, key) in keys.chunks_exact(8).enumerate() {
            let entry = (u64::from_le_bytes(key.try_into().expect("8 bytes")), seq);
            let index = if n == 0 { &mut self.by_receiver } else { &mut self.by_fingerprint };
            if add {
                index.insert(entry);
            } else {
                index.remove(&entry);
            }
        }
    }

    /// Drops the oldest record, its index entries, and the segments left with none (but the one
    /// being filled).
    fn drop_oldest(&mut self) {
        let Some((seq, held)) = self.records.pop_first() else { return };
        self.index(seq, &held, false);
        self.segments[(held.segment - self.first_segment) as usize].live -= 1;
        self.bytes -= held.bytes;
        while self.segments.len() > 1 && self.segments[0].live == 0 {
            self.segments.pop_front();
            self.first_segment += 1;
        }
    }
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

    /// The index key of a receiver or fingerprint. Alertmanager's fingerprints are 16 lowercase
    /// hex digits — a 64-bit hash already — and are read as that number: two different ones
    /// never share a key, for a tenth of SipHash's cost. Anything else is hashed with this
    /// process's random key, so no sender can aim it at another's key.
    fn hash(&self, key: &str) -> u64 {
        let hex = key.len() == 16 && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match hex.then(|| u64::from_str_radix(key, 16).ok()).flatten() {
            Some(number) => number,
            None => self.hasher.hash_one(key),
        }
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
        let packed = super::packed::len(&record);
        let keys = std::iter::once(&record.receiver).chain(&record.fingerprints).map(|key| self.hash(key));
        let hashes = 1 + record.fingerprints.len() as u32;
        let bytes = held_bytes(packed, record.fingerprints.len());
        let (segment, offset) = kept.append(&record, packed, (hashes, keys));
        let held =
            Held { segment, offset, packed: packed as u32, hashes, finished_unix_ms: record.finished_unix_ms, bytes };
        kept.index(seq, &held, true);
        kept.bytes += bytes;
        kept.records.insert(seq, held);
        let oldest_kept = self.limits.oldest_kept(super::now_ms());
        while let Some((_, oldest)) = kept.records.first_key_value() {
            if kept.bytes <= self.limits.max_bytes() && oldest.finished_unix_ms >= oldest_kept {
                break;
            }
            kept.drop_oldest();
        }
        set_totals(kept.records.len() as u64, kept.bytes);
    }

    /// A page of records, newest first.
    pub fn page(&self, query: &Query) -> Page {
        let kept = self.kept.lock().expect("history");
        let below = query.after.unwrap_or(u64::MAX);
        let get = |seq: u64| Ok(kept.records.get(&seq).and_then(|held| kept.record(held)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HistoryConfig;

    fn record(n: u64, receiver: &str) -> Record {
        let now = super::super::now_ms();
        Record {
            seq: 0,
            receiver: receiver.into(),
            tenant: None,
            fingerprints: vec![format!("{n:016x}"), "shared".into()],
            id: format!("id-{n}"),
            accepted_unix_ms: now,
            finished_unix_ms: now,
            ..super::super::query::tests::record()
        }
    }

    /// The promise of the module docs: what is held is what is counted plus at most two segments,
    /// however many records went through, and what is kept reads back whole and indexed.
    #[test]
    fn segments_are_freed_as_their_records_go() {
        let max_bytes = 200_000;
        let limits = Limits::new(&HistoryConfig { max_bytes: Some(max_bytes), ..Default::default() }, false);
        let history = MemoryHistory::new(limits);
        for n in 0..20_000 {
            history.insert(record(n, if n % 2 == 0 { "even" } else { "odd" }));
        }
        let kept = history.kept.lock().unwrap();
        assert!(kept.bytes <= max_bytes, "{} counted", kept.bytes);
        let held: usize = kept.segments.iter().map(|s| s.data.capacity()).sum();
        assert!(held <= max_bytes as usize + 2 * SEGMENT, "{held} bytes held in {} segments", kept.segments.len());
        let count = kept.records.len();
        drop(kept);
        let page = history.page(&Query::parse("limit=1000&receiver=odd").unwrap());
        assert_eq!(page.data.len(), count.div_ceil(2), "every kept record of the receiver (the newest is odd)");
        assert!(page.data.iter().all(|r| r.receiver == "odd" && r.fingerprints.len() == 2));
        assert_eq!(page.data[0].id, "id-19999", "the newest first");
        let one = history.page(&Query::parse("fingerprint=0000000000004e1e").unwrap());
        assert_eq!(one.data.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["id-19998"]);
    }
}
