//! The durable spool: every accepted notification is on disk before amrelay answers 200.
//!
//! With `delivery.spool.path` set, a batch's notifications (one per receiver) are appended in one
//! group commit (see [`writer`]) before the request is answered; each stays in the spool until
//! it is delivered or dead-lettered. On start, pending notifications are restored in their
//! original order with their remaining retry budget, so a crash, a `kill -9` or a reboot loses
//! nothing that was accepted. Dead letters are kept there too, bounded, and can be replayed.
//!
//! Without a path the spool is memory-only: nothing survives the process, and dead letters are
//! kept in a bounded in-memory list so the dead-letter API works the same way.
//!
//! The store is redb, an embedded, crash-safe B-tree made for this (checksummed pages, atomic
//! commits, repair after an unclean shutdown), rather than a hand-written log.
//!
//! The file also keeps each threaded receiver's groups, by the SHA-256 of their groupKey (see
//! [`record`]), and the key of dead letters' destination identities ([`Spool::destination_identity`]).
//! [`Spool::bytes`] (`amrelay_spool_bytes`) counts every key and value it holds, and
//! `delivery.spool.max_bytes` bounds that count: headers, attempt counts, dead letters and thread
//! state included, not only bodies.

#![allow(clippy::disallowed_types)] // The memory-mode dead letters: written by deliveries, off the request path.

mod dead;
pub mod nats;
mod open;
mod private;
pub mod record;
mod writer;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use redb::{Database, ReadableDatabase};
use tokio::sync::oneshot;

pub use dead::{DeadEntry, DeadPage, DeadTotals, ReplayCursor};
use open::{
    OpenError, aside_name, dead_totals, identity_key, migrate_threads, open_database, other_bytes, random_identity_key,
    restore,
};
use private::private_dir;
pub(crate) use private::private_file;
pub use record::{DeadInfo, GroupHash, Header, group_hash};
use writer::{DEAD, Op, PENDING, Writer, seq_key_bytes};
pub use writer::{Stored, ThreadList};

use crate::memory::{Budget, Charge};
use crate::metrics as m;

pub use crate::config::SpoolConfig;

/// redb's page cache (its default is 1 GiB, four times the shipped pod's memory limit). Appends
/// and removals touch the newest and oldest pages only; reading a body back is one lookup.
pub const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Why the spool could not take a batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full (delivery.spool.max_bytes = {0})")]
    Full(u64),
    #[error("the spool cannot persist: {0}")]
    Io(String),
    /// The shared queue (`delivery.nats`) did not take the batch: unreachable, or an error.
    #[error("{0}")]
    Unavailable(String),
    /// A notification larger than the NATS server takes in one message (`max_payload`): no
    /// retry can store it, so it is refused as too large rather than as unavailable.
    #[error(
        "a notification of {size} bytes (with its record header) exceeds the NATS server's max_payload ({max} bytes): \
         raise max_payload in nats-server's configuration (at most 64 MiB) or lower server.max_request_bytes"
    )]
    TooLarge { size: usize, max: usize },
}

/// Dead letters taken for replay, and where the next batch starts (`None`: none left).
#[derive(Debug, Default)]
pub struct DeadBatch {
    pub taken: Vec<Stored>,
    pub next: Option<ReplayCursor>,
}

/// A new record to append.
#[derive(Debug)]
pub struct NewRecord {
    pub receiver: Arc<str>,
    pub header: Header,
    pub body: Bytes,
}

/// The spool: persistent (redb) or memory-only.
///
/// The request path only sends to the writer thread (`append`: a channel send, no lock); the
/// lock below guards the memory-mode dead letters, off the request path.
pub struct Spool {
    /// `None` in memory mode. `Op::Stop` ends the writer thread.
    writer: Option<mpsc::Sender<Op>>,
    /// The writer's open database, for reads that need not pass through it (`None` in memory
    /// mode, and while the writer reopens the file).
    readers: Arc<ArcSwapOption<Database>>,
    /// Memory-mode dead letters, each with its body's charge to the process budget.
    memory_dead: Mutex<VecDeque<(Stored, Charge)>>,
    next_memory_seq: AtomicU64,
    dead: Arc<DeadTotals>,
    /// Bytes of keys and values the spool file holds, as its writer last committed them.
    stored: Arc<AtomicU64>,
    /// Bytes of appends sent to the writer and not yet answered: counted against `max_bytes`
    /// with `stored`, so concurrent batches cannot overshoot it together.
    reserved: AtomicU64,
    max_bytes: u64,
    max_dead: usize,
    healthy: Arc<AtomicBool>,
    path: Option<PathBuf>,
    /// `delivery.nats`: the shared JetStream queue takes every hook below.
    shared: Option<Arc<nats::Backend>>,
    /// `server.limits.max_memory_bytes` (see [`crate::memory`]).
    budget: Arc<Budget>,
    /// `delivery.spool.memory_window_bytes`: only with a spool file.
    window: Option<Arc<Budget>>,
    /// The key of dead letters' destination identity (see [`Spool::destination_identity`]):
    /// kept in the spool file, so identities recorded before a restart still compare; random per
    /// process in memory mode; `None` with the shared queue (replicas share no key).
    identity: Option<ring::hmac::Key>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("path", &self.path).field("stored", &self.stored).finish()
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

impl Spool {
    /// A memory-only spool: nothing persists.
    pub fn memory(max_dead: usize) -> Spool {
        Spool {
            writer: None,
            readers: Arc::new(ArcSwapOption::empty()),
            memory_dead: Mutex::new(VecDeque::new()),
            next_memory_seq: AtomicU64::new(1),
            dead: DeadTotals::new(),
            stored: Arc::new(AtomicU64::new(0)),
            reserved: AtomicU64::new(0),
            max_bytes: u64::MAX,
            max_dead,
            healthy: Arc::new(AtomicBool::new(true)),
            path: None,
            shared: None,
            budget: Budget::process(),
            window: None,
            identity: Some(random_identity_key()),
        }
    }

    /// The shared JetStream queue of `delivery.nats` (see [`nats`]): acceptance publishes
    /// to it, and delivery acknowledges there.
    pub fn shared(backend: Arc<nats::Backend>, max_dead: usize) -> Spool {
        Spool { shared: Some(backend), identity: None, ..Spool::memory(max_dead) }
    }

    /// The shared queue, when `delivery.nats` is set.
    pub fn backend(&self) -> Option<&Arc<nats::Backend>> {
        self.shared.as_ref()
    }

    /// Whether batches can be taken now (the shared queue is reachable).
    pub fn is_ready(&self) -> bool {
        self.shared.as_ref().is_none_or(|b| b.is_connected())
    }

    /// Opens (or creates) the spool file and returns the notifications still pending, in
    /// acceptance order. A file that cannot be opened is moved aside and a new one started; a
    /// record that does not decode is dropped; both with an error log.
    pub fn open(config: &SpoolConfig, max_dead: usize) -> Result<(Spool, Vec<Stored>), String> {
        if let Some(parent) = config.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_dir(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        private_file(&config.path).map_err(|e| format!("cannot create spool {}: {e}", config.path.display()))?;
        let db = match open_database(&config.path) {
            Ok(db) => db,
            Err(OpenError::Other(e)) => return Err(format!("cannot open spool {}: {e}", config.path.display())),
            Err(OpenError::Corrupt(e)) => {
                let aside = aside_name(&config.path);
                tracing::error!(path = %config.path.display(), moved_to = %aside.display(), error = %e,
                    "spool file is unreadable; moving it aside and starting an empty spool");
                std::fs::rename(&config.path, &aside)
                    .map_err(|e| format!("cannot move {} aside: {e}", config.path.display()))?;
                private_file(&config.path)
                    .map_err(|e| format!("cannot create spool {}: {e}", config.path.display()))?;
                Database::builder()
                    .set_cache_size(CACHE_BYTES)
                    .create(&config.path)
                    .map_err(|e| format!("cannot create spool {}: {e}", config.path.display()))?
            }
        };
        migrate_threads(&db)?;
        let identity = identity_key(&db)?;
        let (restored, next_seq, pending_bytes) = restore(&db, config.memory_window_bytes)?;
        let dead = DeadTotals::new();
        let (count, dead_bytes) = dead_totals(&db)?;
        dead.set(count, dead_bytes);
        let stored = Arc::new(AtomicU64::new(pending_bytes + other_bytes(&db)?));
        let db = Arc::new(db);
        let readers = Arc::new(ArcSwapOption::from(Some(db.clone())));
        let healthy = Arc::new(AtomicBool::new(true));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            path: config.path.clone(),
            db: Some(db.clone()),
            readers: readers.clone(),
            next_seq,
            group_commit: config.group_commit,
            dead_limit: max_dead,
            dead: dead.clone(),
            healthy: healthy.clone(),
            stored: stored.clone(),
        };
        std::thread::Builder::new()
            .name("amrelay-spool".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("cannot start the spool writer: {e}"))?;
        metrics::gauge!(m::SPOOL_HEALTHY).set(1.0);
        metrics::gauge!(m::SPOOL_MAX_BYTES).set(config.max_bytes as f64);
        metrics::gauge!(m::SPOOL_BYTES).set(stored.load(Ordering::Relaxed) as f64);
        let spool = Spool {
            writer: Some(tx),
            readers,
            memory_dead: Mutex::new(VecDeque::new()),
            next_memory_seq: AtomicU64::new(1),
            dead,
            stored,
            reserved: AtomicU64::new(0),
            max_bytes: config.max_bytes,
            max_dead,
            healthy,
            path: Some(config.path.clone()),
            shared: None,
            budget: Budget::process(),
            window: Some(Budget::new(m::SPOOL_MEMORY_WINDOW_BYTES, config.memory_window_bytes)),
            identity: Some(identity),
        };
        Ok((spool, restored))
    }

    /// The process byte budget (`server.limits.max_memory_bytes`).
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The window of spooled bodies kept in memory; `None` without a spool file (memory mode
    /// and the shared queue keep every queued body in memory, under the process budget).
    pub fn window(&self) -> Option<&Arc<Budget>> {
        self.window.as_ref()
    }

    /// Reads back the body of a pending notification kept only on disk (see [`crate::memory`]),
    /// in a read transaction of its own: it waits for no commit of the writer thread.
    pub async fn load(&self, receiver: &Arc<str>, seq: u64) -> Result<Bytes, String> {
        let (receiver, readers) = (receiver.clone(), self.readers.clone());
        let read = move || -> Result<Bytes, String> {
            let db = readers.load_full().ok_or("the spool is being reopened")?;
            let txn = db.begin_read().map_err(|e| e.to_string())?;
            let pending = txn.open_table(PENDING).map_err(|e| e.to_string())?;
            let value = pending.get((&*receiver, seq)).map_err(|e| e.to_string())?;
            let value = value.ok_or_else(|| format!("notification {seq} of {receiver} is not in the spool"))?;
            record::decode(value.value())
                .map(|(_, body)| body)
                .ok_or_else(|| format!("notification {seq} of {receiver} is corrupt in the spool"))
        };
        tokio::task::spawn_blocking(read).await.unwrap_or_else(|e| Err(e.to_string()))
    }

    /// Whether accepted notifications survive a crash.
    pub fn is_persistent(&self) -> bool {
        self.writer.is_some() || self.shared.is_some()
    }

    /// The spool file, if persistent.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn send(&self, op: Op) {
        if let Some(writer) = &self.writer {
            // Sending never blocks; after `close` the writer is gone and the op is dropped.
            let _ = writer.send(op);
        }
    }

    /// Stores a batch's `count` records durably; returns their sequence numbers, in order. A
    /// memory-only spool only numbers them (and may be given no records).
    pub async fn append(&self, records: Vec<NewRecord>, count: usize) -> Result<Vec<u64>, SpoolError> {
        if self.writer.is_none() {
            let first = self.next_memory_seq.fetch_add(count as u64, Ordering::Relaxed);
            return Ok((first..first + count as u64).collect());
        }
        debug_assert_eq!(records.len(), count);
        let encoded: Vec<_> = records.into_iter().map(|r| (r.receiver, record::encode(&r.header, &r.body))).collect();
        // What the file will hold for them: headers (the groupKey among them) and keys too.
        let size: u64 = encoded.iter().map(|(receiver, record)| seq_key_bytes(receiver) + record.len() as u64).sum();
        let reserved = self.reserved.fetch_add(size, Ordering::Relaxed) + size;
        if self.stored.load(Ordering::Relaxed) + reserved > self.max_bytes {
            self.reserved.fetch_sub(size, Ordering::Relaxed);
            return Err(SpoolError::Full(self.max_bytes));
        }
        let (reply, answer) = oneshot::channel();
        self.send(Op::Append { records: encoded, reply });
        let result = match answer.await {
            Ok(Ok(seqs)) => Ok(seqs),
            Ok(Err(e)) => Err(SpoolError::Io(e)),
            Err(_) => Err(SpoolError::Io("the spool writer stopped".into())),
        };
        // Committed, they are counted in `stored` now (or were refused).
        self.reserved.fetch_sub(size, Ordering::Relaxed);
        result
    }

    /// Remembers (`Some`, see [`record::encode_thread`]) or forgets (`None`) a group's thread
    /// entry, durably, under the hash of its groupKey; a memory-only spool keeps nothing (the
    /// caller's memory is the store).
    pub async fn set_thread(
        &self,
        receiver: &Arc<str>,
        group: GroupHash,
        entry: Option<Vec<u8>>,
    ) -> Result<(), String> {
        if self.writer.is_none() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.send(Op::Thread { receiver: receiver.clone(), group, entry, reply });
        answer.await.unwrap_or_else(|_| Err("the spool writer stopped".into()))
    }

    /// A receiver's remembered thread entries, by group hash.
    pub async fn list_threads(&self, receiver: &Arc<str>) -> Result<ThreadList, String> {
        if self.writer.is_none() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.send(Op::ListThreads { receiver: receiver.clone(), reply });
        answer.await.unwrap_or_else(|_| Err("the spool writer stopped".into()))
    }

    /// The notification was delivered: forget it.
    pub fn delivered(&self, receiver: &Arc<str>, seq: u64) {
        if let Some(shared) = &self.shared {
            return shared.delivered(seq);
        }
        // The writer counts the bytes the removal frees.
        self.send(Op::Remove { receiver: receiver.clone(), seq });
    }

    /// Records how many attempts were made, so a restart resumes the retry budget.
    pub fn attempted(&self, receiver: &Arc<str>, seq: u64, attempts: u32) {
        if let Some(shared) = &self.shared {
            return shared.attempted(seq);
        }
        self.send(Op::Attempted { receiver: receiver.clone(), seq, attempts });
    }

    /// Moves a notification to the dead letters. An empty `body` (a restored notification whose
    /// body stayed on disk) is taken from the spool file.
    pub fn dead_letter(&self, receiver: &Arc<str>, seq: u64, mut header: Header, body: Bytes, info: DeadInfo) {
        header.dead = Some(info);
        if let Some(shared) = &self.shared {
            shared.dead_letter(receiver, seq, header, body);
        } else if self.writer.is_some() {
            self.send(Op::Dead { receiver: receiver.clone(), seq, record: record::encode(&header, &body) });
        } else {
            self.keep_in_memory(Stored { receiver: receiver.to_string(), seq, header, body });
        }
    }

    /// Puts back a dead letter taken for replay that could not be replayed.
    pub fn return_dead_letter(&self, stored: Stored) {
        if let Some(shared) = &self.shared {
            return shared.return_dead_letter(stored);
        }
        if self.writer.is_some() {
            let receiver: Arc<str> = stored.receiver.as_str().into();
            self.send(Op::Dead { receiver, seq: stored.seq, record: record::encode(&stored.header, &stored.body) });
        } else {
            self.keep_in_memory(stored);
        }
    }

    /// A memory-mode dead letter, charged to the byte budget (body and header); the oldest
    /// (lowest sequence) go beyond `max_dead_letters` or `max_dead_letter_bytes`.
    fn keep_in_memory(&self, stored: Stored) {
        let header = stored.header.group_key.len() + stored.header.id.len() + std::mem::size_of::<Stored>();
        let charge = self.budget.charge((stored.body.len() + header) as u64);
        let mut dead = self.memory_dead.lock().expect("dead letters");
        // Kept in sequence order, as the spool file's table is: deliveries end out of order,
        // and the listing pages by sequence (`after`).
        let at = dead.partition_point(|(kept, _)| kept.seq < stored.seq);
        dead.insert(at, (stored, charge));
        let mut bytes: u64 = dead.iter().map(|(s, _)| s.body.len() as u64).sum();
        while dead.len() > self.max_dead || bytes > self.dead.max_bytes() && dead.len() > 1 {
            if let Some((oldest, _)) = dead.pop_front() {
                bytes -= oldest.body.len() as u64;
                tracing::warn!(
                    limit = self.max_dead,
                    max_bytes = self.dead.max_bytes(),
                    "dead-letter limit reached; the oldest dead letter was dropped"
                );
            }
        }
        self.dead.set(dead.len() as u64, bytes);
    }

    /// Applies `delivery.max_dead_letter_bytes` (from the next dead letter on).
    pub fn set_max_dead_letter_bytes(&self, max_bytes: u64) {
        self.dead.max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    /// Dead letters kept and their body bytes (the shared queue's are not counted here).
    pub fn dead_letter_totals(&self) -> (u64, u64) {
        if self.writer.is_none() && self.shared.is_none() {
            let dead = self.memory_dead.lock().expect("dead letters");
            return (dead.len() as u64, dead.iter().map(|(s, _)| s.body.len() as u64).sum());
        }
        (self.dead.count.load(Ordering::Relaxed), self.dead.bytes.load(Ordering::Relaxed))
    }

    /// Up to `limit` dead letters after sequence `after`, oldest first, of `receiver` (or all):
    /// headers and sizes only. With a spool file, read in a transaction of its own, apart from
    /// the writer thread, and without reading a body.
    pub async fn dead_letter_page(
        &self,
        after: u64,
        limit: usize,
        receiver: Option<&str>,
    ) -> Result<DeadPage, SpoolError> {
        let wanted = |owner: &str| receiver.is_none_or(|r| r == owner);
        let entries: Vec<DeadEntry> = if let Some(shared) = &self.shared {
            shared.dead_letter_page(after, limit, receiver).await?
        } else if self.writer.is_none() {
            let dead = self.memory_dead.lock().expect("dead letters");
            dead.iter()
                .filter(|(s, _)| s.seq > after && wanted(&s.receiver))
                .take(limit + 1)
                .map(|(s, _)| DeadEntry { seq: s.seq, header: s.header.clone(), bytes: s.body.len() })
                .collect()
        } else {
            let readers = self.readers.clone();
            let receiver = receiver.map(str::to_owned);
            let read = move || -> Result<Vec<DeadEntry>, String> {
                let db = readers.load_full().ok_or("the spool is being reopened")?;
                let txn = db.begin_read().map_err(|e| e.to_string())?;
                let dead = txn.open_table(DEAD).map_err(|e| e.to_string())?;
                let mut entries = Vec::new();
                for entry in dead.range(after.saturating_add(1)..).map_err(|e| e.to_string())? {
                    let (key, value) = entry.map_err(|e| e.to_string())?;
                    let Some((header, bytes)) = record::header_only(value.value()) else { continue };
                    if receiver.as_deref().is_none_or(|r| header.dead.as_ref().is_some_and(|d| d.receiver == r)) {
                        entries.push(DeadEntry { seq: key.value(), header, bytes });
                        if entries.len() > limit {
                            break;
                        }
                    }
                }
                Ok(entries)
            };
            tokio::task::spawn_blocking(read)
                .await
                .map_err(|e| SpoolError::Io(e.to_string()))?
                .map_err(SpoolError::Io)?
        };
        let mut entries = entries;
        let next_after = (entries.len() > limit).then(|| {
            entries.truncate(limit);
            entries.last().map_or(after, |e| e.seq)
        });
        Ok(DeadPage { entries, next_after })
    }

    /// One dead letter, body included; `None` if there is none with this sequence.
    pub async fn dead_letter_body(&self, seq: u64) -> Result<Option<Stored>, SpoolError> {
        if let Some(shared) = &self.shared {
            return shared.dead_letter_body(seq).await;
        }
        if self.writer.is_none() {
            let dead = self.memory_dead.lock().expect("dead letters");
            return Ok(dead.iter().find(|(s, _)| s.seq == seq).map(|(s, _)| s.clone()));
        }
        let readers = self.readers.clone();
        let read = move || -> Result<Option<Stored>, String> {
            let db = readers.load_full().ok_or("the spool is being reopened")?;
            let txn = db.begin_read().map_err(|e| e.to_string())?;
            let dead = txn.open_table(DEAD).map_err(|e| e.to_string())?;
            let Some(value) = dead.get(seq).map_err(|e| e.to_string())? else { return Ok(None) };
            Ok(record::decode(value.value()).map(|(header, body)| {
                let receiver = header.dead.as_ref().map(|d| d.receiver.clone()).unwrap_or_default();
                Stored { receiver, seq, header, body }
            }))
        };
        tokio::task::spawn_blocking(read).await.map_err(|e| SpoolError::Io(e.to_string()))?.map_err(SpoolError::Io)
    }

    /// Removes and returns the next batch of dead letters of `receiver` (or all), oldest first,
    /// for replay; start with `ReplayCursor::default()` and continue with `next` until it is
    /// `None`. The shared queue gives batches of at most [`nats::REPLAY_BATCH_BYTES`] of bodies
    /// (or one dead letter); the spool file and memory mode give all of them at once, which
    /// `delivery.max_dead_letter_bytes` bounds already.
    pub async fn take_dead_letters(
        &self,
        receiver: Option<&str>,
        cursor: ReplayCursor,
    ) -> Result<DeadBatch, SpoolError> {
        if let Some(shared) = &self.shared {
            return shared.take_dead_letters(receiver, cursor, nats::REPLAY_BATCH_BYTES).await;
        }
        if self.writer.is_none() {
            let mut dead = self.memory_dead.lock().expect("dead letters");
            let (taken, kept): (Vec<_>, Vec<_>) =
                dead.drain(..).partition(|(s, _)| receiver.is_none_or(|r| r == s.receiver));
            dead.extend(kept);
            return Ok(DeadBatch { taken: taken.into_iter().map(|(s, _)| s).collect(), next: None });
        }
        let (reply, answer) = oneshot::channel();
        self.send(Op::TakeDead { receiver: receiver.map(str::to_owned), reply });
        let taken =
            answer.await.map_err(|_| SpoolError::Io("the spool writer stopped".into()))?.map_err(SpoolError::Io)?;
        Ok(DeadBatch { taken, next: None })
    }

    /// Whether the last write succeeded.
    pub fn is_healthy(&self) -> bool {
        if let Some(shared) = &self.shared {
            return shared.is_connected();
        }
        self.healthy.load(Ordering::Relaxed)
    }

    /// Bytes the spool holds: with a spool file, every key and value in it (pending
    /// notifications with their headers, attempt counts, dead letters, thread state), as last
    /// committed; with the shared queue, its stream's bytes.
    pub fn bytes(&self) -> u64 {
        if let Some(shared) = &self.shared {
            return shared.bytes();
        }
        self.stored.load(Ordering::Relaxed)
    }

    /// A receiver's destination identity, recorded with its dead letters: a keyed hash
    /// (HMAC-SHA256, 128 bits) of its resolved URL and preset, so a replay can tell that the
    /// name now points elsewhere without the spool holding the URL (secrets may be in it).
    /// `None` with the shared queue, whose replicas share no key.
    pub fn destination_identity(&self, url: &str, preset: &str) -> Option<String> {
        let key = self.identity.as_ref()?;
        let mut context = ring::hmac::Context::with_key(key);
        for field in [url, preset] {
            context.update(&(field.len() as u64).to_le_bytes());
            context.update(field.as_bytes());
        }
        Some(context.sign().as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Commits every change sent to the writer so far: after it, readers apart from the writer
    /// (the dead-letter listing) see them.
    async fn flush(&self) -> Result<(), String> {
        if self.writer.is_none() || self.shared.is_some() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.send(Op::Flush { reply });
        answer.await.unwrap_or_else(|_| Err("the spool writer stopped".into()))
    }

    /// Makes every change durable and stops the writer (at shutdown).
    pub async fn close(&self) {
        if let Some(shared) = &self.shared {
            return shared.close().await;
        }
        if self.writer.is_none() {
            return;
        }
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, "final spool flush failed; pending notifications stay as last committed");
        }
        // The writer thread ends at `Stop`, closing the database file, and says when it has.
        let (done, closed) = oneshot::channel();
        self.send(Op::Stop { done });
        let _ = closed.await;
    }
}

#[cfg(test)]
mod tests;
