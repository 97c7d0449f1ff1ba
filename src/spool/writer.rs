//! The spool's one writer thread, and group commit.
//!
//! Every change goes through one thread that owns the redb database. It takes the first waiting
//! operation, then everything else already queued (with group commit on), applies them all in one
//! write transaction and commits once: concurrent requests share one fsync. Appends (and
//! flushes) commit with `Durability::Immediate` — a request is answered 200 only after its
//! notification is on disk. Removals and attempt counts alone commit without an fsync; they are
//! made durable by the next immediate commit, at the latest a second later. A crash in between
//! can only cause a notification to be delivered again (with the same idempotency key), never to
//! be lost.
//!
//! The writer also counts what the file holds — every key and value of the pending, attempts,
//! dead-letter and thread tables — as it changes them, and publishes it after each commit
//! (`amrelay_spool_bytes`): exact, and free of any scan of the file.
//!
//! On an I/O error the transaction's callers get an error (the request answers 503), the spool
//! is marked unhealthy, and the next operation reopens the database: when the disk recovers, so
//! does the spool, without a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use redb::{Database, Durability, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::record::{self, GroupHash, Header};
use crate::metrics as m;

/// Pending notifications: (receiver, sequence) → record. Sequence order is acceptance order.
pub const PENDING: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("pending");
/// Attempts made so far, kept apart so that counting one does not rewrite the body.
pub const ATTEMPTS: TableDefinition<(&str, u64), u32> = TableDefinition::new("attempts");
/// Dead letters: sequence → record with `dead` set.
pub const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead");

/// Thread state: (receiver, SHA-256 of the groupKey) → the group's message, with the start of
/// its groupKey ([`record::encode_thread`]); see `crate::deliver::Threads`.
pub const THREAD_GROUPS: TableDefinition<(&str, &GroupHash), &[u8]> = TableDefinition::new("thread_groups");
/// Thread state as spools before `thread_groups` kept it, keyed by the whole groupKey: moved to
/// [`THREAD_GROUPS`] when such a spool is opened, then deleted.
pub const LEGACY_THREADS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("threads");
/// Settings of the spool file itself (the key of the dead letters' destination identity).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Bytes a dead-letter key takes: its sequence. Counted the same by the writer and at open.
pub const DEAD_KEY_BYTES: u64 = 8;

/// Bytes a pending or attempts key takes: the receiver's name and the sequence.
pub fn seq_key_bytes(receiver: &str) -> u64 {
    receiver.len() as u64 + 8
}

/// Bytes a thread key takes: the receiver's name and the group's hash.
pub fn thread_key_bytes(receiver: &str) -> u64 {
    receiver.len() as u64 + 32
}

/// How often non-durable changes are made durable when nothing else commits.
const IDLE_FLUSH: Duration = Duration::from_secs(1);
/// Operations applied in one transaction at most.
const MAX_BATCH: usize = 4096;

/// A stored record: where it is and what it holds.
#[derive(Debug, Clone)]
pub struct Stored {
    pub receiver: String,
    pub seq: u64,
    pub header: Header,
    pub body: Bytes,
}

/// A receiver's thread entries: (group hash, stored entry, see [`record::encode_thread`]).
pub type ThreadList = Vec<(GroupHash, Vec<u8>)>;

/// A change or a query for the writer thread.
pub enum Op {
    Append {
        records: Vec<(Arc<str>, Vec<u8>)>,
        reply: oneshot::Sender<Result<Vec<u64>, String>>,
    },
    Remove {
        receiver: Arc<str>,
        seq: u64,
    },
    Attempted {
        receiver: Arc<str>,
        seq: u64,
        attempts: u32,
    },
    Dead {
        receiver: Arc<str>,
        seq: u64,
        record: Vec<u8>,
    },
    TakeDead {
        receiver: Option<String>,
        reply: oneshot::Sender<Result<Vec<Stored>, String>>,
    },
    Flush {
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Remembers (`Some`) or forgets (`None`) a group's message; durable before the reply.
    Thread {
        receiver: Arc<str>,
        group: GroupHash,
        entry: Option<Vec<u8>>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Every remembered group's message of a receiver.
    ListThreads {
        receiver: Arc<str>,
        reply: oneshot::Sender<Result<ThreadList, String>>,
    },
    /// A finished notification's history record, written with the next commit (see
    /// [`super::history`]).
    History(Box<crate::history::Record>),
    /// Makes everything durable, closes the database and answers once the file is closed.
    Stop {
        done: oneshot::Sender<()>,
    },
}

pub struct Writer {
    pub path: PathBuf,
    pub db: Option<Arc<Database>>,
    /// The open database, shared with readers ([`super::Spool::load`] and the dead-letter
    /// listing), which read in their own transactions without passing through this thread.
    pub readers: Arc<ArcSwapOption<Database>>,
    pub next_seq: u64,
    pub group_commit: bool,
    pub dead_limit: usize,
    /// Dead letters and their body bytes, kept up to date for the listing and the gauges.
    pub dead: Arc<super::DeadTotals>,
    pub healthy: Arc<AtomicBool>,
    /// Bytes of keys and values the file holds (see the module docs), shared with the spool.
    pub stored: Arc<AtomicU64>,
    /// The history records the file holds, and their bounds.
    pub history: super::history::HistoryState,
}

/// A stored record's body length, from its header alone.
fn body_length(record: &[u8]) -> u64 {
    record::header_only(record).map_or(0, |(_, length)| length as u64)
}

impl Writer {
    /// Runs until `Op::Stop` or every sender is gone, then makes everything durable.
    pub fn run(mut self, ops: Receiver<Op>) {
        let mut dirty = false;
        let mut last_durable = Instant::now();
        let mut stopped = None;
        while stopped.is_none() {
            let first = match ops.recv_timeout(IDLE_FLUSH) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    if dirty {
                        dirty = self.apply(Vec::new(), true).is_err();
                        last_durable = Instant::now();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            if self.group_commit {
                while batch.len() < MAX_BATCH {
                    match ops.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
            }
            if let Some(at) = batch.iter().position(|op| matches!(op, Op::Stop { .. })) {
                // Nothing is sent after `Stop`; anything that was is dropped with it.
                if let Some(Op::Stop { done }) = batch.drain(at..).next() {
                    stopped = Some(done);
                }
            }
            // A steady stream of removals (a backlog draining) never leaves the thread idle: make
            // them durable at least once per IDLE_FLUSH all the same, as promised above, which
            // also lets redb reclaim the pages they free.
            let durable = batch
                .iter()
                .any(|op| matches!(op, Op::Append { .. } | Op::Flush { .. } | Op::TakeDead { .. } | Op::Thread { .. }))
                || dirty && last_durable.elapsed() >= IDLE_FLUSH;
            match self.apply(batch, durable) {
                Ok(()) => {
                    dirty = !durable;
                    if durable {
                        last_durable = Instant::now();
                    }
                }
                Err(()) => dirty = true,
            }
        }
        if dirty {
            let _ = self.apply(Vec::new(), true);
        }
        self.close();
        if let Some(done) = stopped {
            let _ = done.send(());
        }
    }

    fn database(&mut self) -> Result<&Database, String> {
        if self.db.is_none() {
            super::private_file(&self.path).map_err(|e| format!("cannot open spool {}: {e}", self.path.display()))?;
            let db = Database::builder()
                .set_cache_size(super::CACHE_BYTES)
                .create(&self.path)
                .map_err(|e| format!("cannot open spool {}: {e}", self.path.display()))?;
            tracing::info!(path = %self.path.display(), "spool reopened");
            let db = Arc::new(db);
            self.readers.store(Some(db.clone()));
            self.db = Some(db);
        }
        Ok(self.db.as_ref().expect("just opened"))
    }

    /// Closes the database (to be reopened by the next operation): readers let go of it too.
    fn close(&mut self) {
        self.readers.store(None);
        self.db = None;
    }

    /// Applies a batch in one transaction; answers every caller.
    fn apply(&mut self, batch: Vec<Op>, durable: bool) -> Result<(), ()> {
        let started = Instant::now();
        let operations = batch.len();
        let mut records = Vec::new();
        let batch: Vec<Op> = batch
            .into_iter()
            .filter_map(|op| match op {
                Op::History(record) => {
                    records.push(*record);
                    None
                }
                other => Some(other),
            })
            .collect();
        let recorded = records.len();
        let mut seqs: Vec<Vec<u64>> = Vec::new();
        let mut taken: Vec<Vec<Stored>> = Vec::new();
        let mut thread_lists: Vec<ThreadList> = Vec::new();
        let result = (|| -> Result<(), String> {
            let mut next_seq = self.next_seq;
            let mut history = self.history.clone();
            let stored_bytes = std::cell::Cell::new(self.stored.load(Ordering::Relaxed));
            let dead_limit = self.dead_limit;
            let dead_max_bytes = self.dead.max_bytes();
            let (mut dead_count, mut dead_bytes) =
                (self.dead.count.load(Ordering::Relaxed), self.dead.bytes.load(Ordering::Relaxed));
            let db = self.database()?;
            let mut txn = db.begin_write().map_err(|e| e.to_string())?;
            txn.set_durability(if durable { Durability::Immediate } else { Durability::None })
                .map_err(|e| e.to_string())?;
            {
                let mut pending = txn.open_table(PENDING).map_err(|e| e.to_string())?;
                let mut attempts = txn.open_table(ATTEMPTS).map_err(|e| e.to_string())?;
                let mut dead = txn.open_table(DEAD).map_err(|e| e.to_string())?;
                let mut threads = txn.open_table(THREAD_GROUPS).map_err(|e| e.to_string())?;
                // Every change below adds or takes its key and value bytes here.
                let add = |key: u64, value: Option<usize>| {
                    stored_bytes.set(stored_bytes.get() + value.map_or(0, |v| key + v as u64))
                };
                let take = |key: u64, value: Option<usize>| {
                    stored_bytes.set(stored_bytes.get().saturating_sub(value.map_or(0, |v| key + v as u64)))
                };
                for op in &batch {
                    match op {
                        Op::Append { records, .. } => {
                            let mut assigned = Vec::with_capacity(records.len());
                            for (receiver, bytes) in records {
                                pending.insert((&**receiver, next_seq), bytes.as_slice()).map_err(|e| e.to_string())?;
                                add(seq_key_bytes(receiver), Some(bytes.len()));
                                assigned.push(next_seq);
                                next_seq += 1;
                            }
                            seqs.push(assigned);
                        }
                        Op::Remove { receiver, seq } => {
                            let key = seq_key_bytes(receiver);
                            let was = pending.remove((&**receiver, *seq)).map_err(|e| e.to_string())?;
                            take(key, was.map(|v| v.value().len()));
                            let was = attempts.remove((&**receiver, *seq)).map_err(|e| e.to_string())?;
                            take(key, was.map(|_| 4));
                        }
                        Op::Attempted { receiver, seq, attempts: count } => {
                            if pending.get((&**receiver, *seq)).map_err(|e| e.to_string())?.is_some() {
                                let was = attempts.insert((&**receiver, *seq), *count).map_err(|e| e.to_string())?;
                                if was.is_none() {
                                    add(seq_key_bytes(receiver), Some(4));
                                }
                            }
                        }
                        Op::Dead { receiver, seq, record } => {
                            let key = seq_key_bytes(receiver);
                            let was = pending.remove((&**receiver, *seq)).map_err(|e| e.to_string())?;
                            take(key, was.as_ref().map(|v| v.value().len()));
                            let had = attempts.remove((&**receiver, *seq)).map_err(|e| e.to_string())?;
                            take(key, had.map(|_| 4));
                            // An empty body stayed on disk: it is the pending record's.
                            let full = match record::header_only(record) {
                                Some((header, 0)) => {
                                    let body = was.as_ref().and_then(|v| record::decode(v.value())).map(|(_, b)| b);
                                    Some(record::encode(&header, &body.unwrap_or_default()))
                                }
                                _ => None,
                            };
                            drop(was);
                            let stored = full.as_deref().unwrap_or(record);
                            add(DEAD_KEY_BYTES, Some(stored.len()));
                            let replaced = dead.insert(*seq, stored).map_err(|e| e.to_string())?.map(|old| {
                                take(DEAD_KEY_BYTES, Some(old.value().len()));
                                body_length(old.value())
                            });
                            if let Some(length) = replaced {
                                dead_count = dead_count.saturating_sub(1);
                                dead_bytes = dead_bytes.saturating_sub(length);
                            }
                            dead_count += 1;
                            dead_bytes += body_length(stored);
                            while dead_count > dead_limit as u64 || dead_bytes > dead_max_bytes && dead_count > 1 {
                                let oldest = dead.first().map_err(|e| e.to_string())?.map(|(k, _)| k.value());
                                match oldest {
                                    Some(key) => {
                                        let removed = dead.remove(key).map_err(|e| e.to_string())?.map(|old| {
                                            take(DEAD_KEY_BYTES, Some(old.value().len()));
                                            body_length(old.value())
                                        });
                                        if let Some(length) = removed {
                                            dead_count = dead_count.saturating_sub(1);
                                            dead_bytes = dead_bytes.saturating_sub(length);
                                        }
                                        tracing::warn!(
                                            limit = dead_limit,
                                            "dead-letter limit reached; the oldest dead letter was dropped"
                                        );
                                    }
                                    None => break,
                                }
                            }
                        }
                        Op::TakeDead { receiver, .. } => {
                            let mut chosen = Vec::new();
                            for entry in dead.iter().map_err(|e| e.to_string())? {
                                let (key, value) = entry.map_err(|e| e.to_string())?;
                                let Some((header, body)) = record::decode(value.value()) else { continue };
                                let owner = header.dead.as_ref().map(|d| d.receiver.clone()).unwrap_or_default();
                                if receiver.as_ref().is_none_or(|r| *r == owner) {
                                    chosen.push(Stored { receiver: owner, seq: key.value(), header, body });
                                }
                            }
                            for stored in &chosen {
                                let was = dead.remove(stored.seq).map_err(|e| e.to_string())?;
                                take(DEAD_KEY_BYTES, was.map(|v| v.value().len()));
                                dead_count = dead_count.saturating_sub(1);
                                dead_bytes = dead_bytes.saturating_sub(stored.body.len() as u64);
                            }
                            taken.push(chosen);
                        }
                        Op::Thread { receiver, group, entry, .. } => {
                            let key = thread_key_bytes(receiver);
                            let was = match entry {
                                Some(entry) => {
                                    add(key, Some(entry.len()));
                                    threads.insert((&**receiver, group), entry.as_slice())
                                }
                                None => threads.remove((&**receiver, group)),
                            };
                            take(key, was.map_err(|e| e.to_string())?.map(|v| v.value().len()));
                        }
                        Op::ListThreads { receiver, .. } => {
                            let mut list = Vec::new();
                            let range = threads.range((&**receiver, &[0u8; 32])..).map_err(|e| e.to_string())?;
                            for entry in range {
                                let (key, value) = entry.map_err(|e| e.to_string())?;
                                let (owner, group) = key.value();
                                if owner != &**receiver {
                                    break;
                                }
                                list.push((*group, value.value().to_vec()));
                            }
                            thread_lists.push(list);
                        }
                        Op::Flush { .. } | Op::Stop { .. } | Op::History(_) => {}
                    }
                }
            }
            if !records.is_empty() {
                super::history::write(&txn, records, &mut history)?;
            }
            txn.commit().map_err(|e| e.to_string())?;
            self.next_seq = next_seq;
            if recorded > 0 {
                crate::history::set_totals(history.records, history.bytes);
                self.history = history;
            }
            self.dead.set(dead_count, dead_bytes);
            self.stored.store(stored_bytes.get(), Ordering::Relaxed);
            metrics::gauge!(m::SPOOL_BYTES).set(stored_bytes.get() as f64);
            Ok(())
        })();

        self.history.limits.written(recorded);
        if result.is_err() && recorded > 0 {
            metrics::counter!(m::HISTORY_DROPPED, "reason" => "error").increment(recorded as u64);
        }
        match &result {
            Ok(()) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(path = %self.path.display(), "spool is writable again");
                }
                metrics::gauge!(m::SPOOL_HEALTHY).set(1.0);
                metrics::counter!(m::SPOOL_COMMITS, "durable" => if durable { "true" } else { "false" }).increment(1);
                metrics::histogram!(m::SPOOL_COMMIT_DURATION).record(started.elapsed().as_secs_f64());
                metrics::histogram!(m::SPOOL_COMMIT_OPERATIONS).record(operations as f64);
            }
            Err(error) => {
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::error!(path = %self.path.display(), error = %error, "spool cannot persist; refusing new batches with 503 until it can");
                }
                metrics::gauge!(m::SPOOL_HEALTHY).set(0.0);
                metrics::counter!(m::SPOOL_ERRORS).increment(1);
                // redb refuses further writes after an I/O error: reopen on the next operation.
                self.close();
            }
        }
        let (mut seqs, mut taken) = (seqs.into_iter(), taken.into_iter());
        let mut thread_lists = thread_lists.into_iter();
        for op in batch {
            match op {
                Op::Append { reply, .. } => {
                    let _ = reply.send(result.clone().map(|()| seqs.next().unwrap_or_default()));
                }
                Op::TakeDead { reply, .. } => {
                    let _ = reply.send(result.clone().map(|()| taken.next().unwrap_or_default()));
                }
                Op::Flush { reply } | Op::Thread { reply, .. } => {
                    let _ = reply.send(result.clone());
                }
                Op::ListThreads { reply, .. } => {
                    let _ = reply.send(result.clone().map(|()| thread_lists.next().unwrap_or_default()));
                }
                Op::Remove { .. } | Op::Attempted { .. } | Op::Dead { .. } | Op::Stop { .. } | Op::History(_) => {}
            }
        }
        result.map_err(|_| ())
    }
}
