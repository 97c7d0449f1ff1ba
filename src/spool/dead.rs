//! Dead letters as the store lists, pages and replays them, and their running totals.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::record::Header;
use crate::metrics as m;

/// Dead letters kept, and their body bytes, against `delivery.max_dead_letters` and
/// `delivery.max_dead_letter_bytes`: shared by the spool and its writer thread.
#[derive(Debug)]
pub struct DeadTotals {
    pub(super) count: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) max_bytes: AtomicU64,
}

impl DeadTotals {
    pub(super) fn new() -> Arc<DeadTotals> {
        Arc::new(DeadTotals {
            count: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            max_bytes: AtomicU64::new(crate::config::DEFAULT_MAX_DEAD_LETTER_BYTES),
        })
    }

    /// Records the totals now (after a change).
    pub(crate) fn set(&self, count: u64, bytes: u64) {
        self.count.store(count, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        metrics::gauge!(m::DEAD_LETTERS).set(count as f64);
        metrics::gauge!(m::DEAD_LETTER_BYTES).set(bytes as f64);
    }

    /// Dead letters kept and their bytes, as last recorded.
    pub(super) fn get(&self) -> (u64, u64) {
        (self.count.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }

    /// `delivery.max_dead_letter_bytes`.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::Relaxed)
    }
}

/// One dead letter as listed: its header and body size, not its body.
#[derive(Debug, Clone)]
pub struct DeadEntry {
    pub seq: u64,
    pub header: Header,
    pub bytes: usize,
}

/// A page of dead letters, oldest first; `next_after` continues it.
#[derive(Debug, Default)]
pub struct DeadPage {
    pub entries: Vec<DeadEntry>,
    pub next_after: Option<u64>,
}

/// Where a replay in batches stands: continue after sequence `after`, up to `until` (for the
/// shared queue, its dead-letter stream's last sequence when the replay began, so dead letters a
/// replay puts back are not taken again by the same replay). The default starts a replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayCursor {
    pub after: u64,
    pub until: Option<u64>,
}
