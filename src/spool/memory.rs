//! The memory-only store (no `delivery.spool.path`, no `delivery.nats`): accepted notifications
//! live in their receivers' queues only, so this store numbers them and keeps the dead letters,
//! bounded, so that the dead-letter API works the same way as with a spool file.

#![allow(clippy::disallowed_types)] // Its dead letters: written by deliveries, off the request path.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{DeadBatch, DeadEntry, DeadTotals, Stored};
use crate::history::Limits;
use crate::history::memory::MemoryHistory;
use crate::memory::{Budget, Charge};

/// Dead letters in sequence order, each with its charge to the process budget.
#[derive(Debug)]
pub(super) struct MemoryStore {
    dead: Mutex<VecDeque<(Stored, Charge)>>,
    next_seq: AtomicU64,
    max_dead: usize,
    totals: Arc<DeadTotals>,
    /// The process budget (`server.limits.max_memory_bytes`), owned by the runtime state.
    budget: Arc<Budget>,
    pub(super) history: MemoryHistory,
}

impl MemoryStore {
    pub(super) fn new(
        max_dead: usize,
        totals: Arc<DeadTotals>,
        budget: Arc<Budget>,
        history: Arc<Limits>,
    ) -> MemoryStore {
        let (dead, next_seq) = (Mutex::new(VecDeque::new()), AtomicU64::new(1));
        MemoryStore { dead, next_seq, max_dead, totals, budget, history: MemoryHistory::new(history) }
    }

    /// Sequence numbers for `count` notifications: nothing is kept.
    pub(super) fn number(&self, count: usize) -> Vec<u64> {
        let first = self.next_seq.fetch_add(count as u64, Ordering::Relaxed);
        (first..first + count as u64).collect()
    }

    /// A dead letter, charged to the byte budget (body and header); the oldest (lowest
    /// sequence) go beyond `max_dead_letters` or `max_dead_letter_bytes`.
    pub(super) fn keep(&self, stored: Stored) {
        let header = stored.header.group_key.len() + stored.header.id.len() + std::mem::size_of::<Stored>();
        let charge = self.budget.charge((stored.body.len() + header) as u64);
        let mut dead = self.dead.lock().expect("dead letters");
        // Kept in sequence order, as the spool file's table is: deliveries end out of order,
        // and the listing pages by sequence (`after`).
        let at = dead.partition_point(|(kept, _)| kept.seq < stored.seq);
        dead.insert(at, (stored, charge));
        let mut bytes: u64 = dead.iter().map(|(s, _)| s.body.len() as u64).sum();
        while dead.len() > self.max_dead || bytes > self.totals.max_bytes() && dead.len() > 1 {
            if let Some((oldest, _)) = dead.pop_front() {
                bytes -= oldest.body.len() as u64;
                tracing::warn!(
                    limit = self.max_dead,
                    max_bytes = self.totals.max_bytes(),
                    "dead-letter limit reached; the oldest dead letter was dropped"
                );
            }
        }
        self.totals.set(dead.len() as u64, bytes);
    }

    /// Dead letters kept and their body bytes.
    pub(super) fn totals(&self) -> (u64, u64) {
        let dead = self.dead.lock().expect("dead letters");
        (dead.len() as u64, dead.iter().map(|(s, _)| s.body.len() as u64).sum())
    }

    /// Up to `limit + 1` dead letters after `after` (the extra one says another page follows).
    pub(super) fn page(&self, after: u64, limit: usize, receiver: Option<&str>) -> Vec<DeadEntry> {
        let dead = self.dead.lock().expect("dead letters");
        dead.iter()
            .filter(|(s, _)| s.seq > after && receiver.is_none_or(|r| r == s.receiver))
            .take(limit + 1)
            .map(|(s, _)| DeadEntry { seq: s.seq, header: s.header.clone(), bytes: s.body.len() })
            .collect()
    }

    pub(super) fn body(&self, seq: u64) -> Option<Stored> {
        let dead = self.dead.lock().expect("dead letters");
        dead.iter().find(|(s, _)| s.seq == seq).map(|(s, _)| s.clone())
    }

    /// Every dead letter of `receiver` (or all), at once: `max_dead_letter_bytes` bounds them.
    pub(super) fn take(&self, receiver: Option<&str>) -> DeadBatch {
        let mut dead = self.dead.lock().expect("dead letters");
        let (taken, kept): (Vec<_>, Vec<_>) =
            dead.drain(..).partition(|(s, _)| receiver.is_none_or(|r| r == s.receiver));
        dead.extend(kept);
        self.totals.set(dead.len() as u64, dead.iter().map(|(s, _)| s.body.len() as u64).sum());
        DeadBatch { taken: taken.into_iter().map(|(s, _)| s).collect(), next: None }
    }
}
