//! The store of accepted notifications: one type, [`Spool`], over three backends ([`Store`]), each
//! operation one `match` on which it is.
//!
//! - **File** ([`file`], `delivery.spool.path`): every accepted notification is on disk before
//!   amrelay answers 200.
//! - **Memory** ([`memory`], no path): nothing survives the process; dead letters are kept in a
//!   bounded list so the dead-letter API works the same way.
//! - **Shared** ([`nats`], `delivery.nats`): JetStream is the queue itself, shared by replicas;
//!   acceptance publishes there ([`crate::accept`] takes that path) and every replica consumes.
//!
//! With `delivery.spool.path` set, a batch's notifications (one per receiver) are appended in one
//! group commit (see [`writer`]) before the request is answered; each stays in the spool until
//! it is delivered or dead-lettered. On start, pending notifications are restored in their
//! original order with their remaining retry budget, so a crash, a `kill -9` or a reboot loses
//! nothing that was accepted. Dead letters are kept there too, bounded, and can be replayed.
//!
//! The store is redb, an embedded, crash-safe B-tree made for this (checksummed pages, atomic
//! commits, repair after an unclean shutdown), rather than a hand-written log.
//!
//! The file also keeps each threaded receiver's groups, by the SHA-256 of their groupKey (see
//! [`record`]), and the key of dead letters' destination identities ([`Spool::destination_identity`]).
//! [`Spool::bytes`] (`amrelay_spool_bytes`) counts every key and value it holds, and
//! `delivery.spool.max_bytes` bounds that count: headers, attempt counts, dead letters and thread
//! state included, not only bodies.

mod dead;
mod file;
mod history;
mod memory;
pub mod nats;
mod open;
mod private;
pub mod record;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

pub use dead::{DeadEntry, DeadPage, DeadTotals, ReplayCursor};
use file::FileStore;
use memory::MemoryStore;
use open::random_identity_key;
pub(crate) use private::private_file;
pub use record::{DeadInfo, GroupHash, Header, group_hash};
use writer::Op;
pub use writer::{Stored, ThreadList};

use crate::config::HistoryConfig;
use crate::history::{Limits as HistoryLimits, Page as HistoryPage, Query as HistoryQuery, Record};
use crate::memory::Budget;

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

/// The store: which backend, and what all three share.
pub struct Spool {
    store: Store,
    /// Dead letters kept and their bytes (the memory and file backends; JetStream reads its
    /// stream's).
    dead: Arc<DeadTotals>,
    /// The key of dead letters' destination identity (see [`Spool::destination_identity`]):
    /// kept in the spool file, so identities recorded before a restart still compare; random per
    /// process in memory mode; `None` with the shared queue (replicas share no key).
    identity: Option<ring::hmac::Key>,
    /// `history:` as it applies now.
    history: Arc<HistoryLimits>,
    /// `history.export`: records are handed to the exporter too (set once at start).
    export: std::sync::OnceLock<tokio::sync::mpsc::Sender<Record>>,
}

/// Where accepted notifications are kept. The shared queue keeps the history in a stream too,
/// each replica a copy of it in memory (see [`nats::history`]).
enum Store {
    Memory(MemoryStore),
    File(FileStore),
    Shared(Arc<nats::Backend>),
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.store {
            Store::Memory(_) => "memory",
            Store::File(file) => return f.debug_struct("Spool").field("path", &file.path).finish(),
            Store::Shared(..) => "nats",
        };
        f.debug_struct("Spool").field("kind", &kind).finish()
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

impl Spool {
    /// A memory-only store: nothing persists. Its dead letters are charged to `budget`, the
    /// process budget the runtime state owns.
    pub fn memory(max_dead: usize, budget: Arc<Budget>) -> Spool {
        let (dead, history) = (DeadTotals::new(), HistoryLimits::new(&HistoryConfig::default(), false));
        let store = Store::Memory(MemoryStore::new(max_dead, dead.clone(), budget, history.clone()));
        Spool { store, dead, identity: Some(random_identity_key()), history, export: Default::default() }
    }

    /// The shared JetStream queue of `delivery.nats` (see [`nats`]): acceptance publishes
    /// to it, and delivery acknowledges there.
    pub fn shared(backend: Arc<nats::Backend>) -> Spool {
        let history = backend.history().limits().clone();
        let store = Store::Shared(backend);
        Spool { store, dead: DeadTotals::new(), identity: None, history, export: Default::default() }
    }

    /// Opens (or creates) the spool file and returns the notifications still pending, in
    /// acceptance order. A file that cannot be opened is moved aside and a new one started; a
    /// record that does not decode is dropped; both with an error log.
    pub fn open(config: &SpoolConfig, max_dead: usize) -> Result<(Spool, Vec<Stored>), String> {
        let (dead, history) = (DeadTotals::new(), HistoryLimits::new(&HistoryConfig::default(), true));
        let opened = FileStore::open(config, max_dead, &dead, history.clone())?;
        let identity = Some(opened.identity);
        let spool = Spool { store: Store::File(opened.store), dead, identity, history, export: Default::default() };
        Ok((spool, opened.restored))
    }

    /// The shared queue, when `delivery.nats` is set: acceptance publishes to it, and the relay
    /// provisions and consumes it.
    pub fn backend(&self) -> Option<&Arc<nats::Backend>> {
        match &self.store {
            Store::Shared(backend) => Some(backend),
            Store::Memory(_) | Store::File(_) => None,
        }
    }

    /// Whether a notification may wait in this process (held while muted) without holding up
    /// others: not with the shared queue, where it would block its partition's consumer.
    pub fn holds_locally(&self) -> bool {
        match &self.store {
            Store::Memory(_) | Store::File(_) => true,
            Store::Shared(..) => false,
        }
    }

    /// Whether accepted notifications survive a crash.
    pub fn is_persistent(&self) -> bool {
        match &self.store {
            Store::Memory(_) => false,
            Store::File(_) | Store::Shared(..) => true,
        }
    }

    /// Whether batches can be taken now (the shared queue is reachable).
    pub fn is_ready(&self) -> bool {
        match &self.store {
            Store::Shared(backend) => backend.is_connected(),
            Store::Memory(_) | Store::File(_) => true,
        }
    }

    /// The window of spooled bodies kept in memory; `None` without a spool file (memory mode
    /// and the shared queue keep every queued body in memory, under the process budget).
    pub fn window(&self) -> Option<&Arc<Budget>> {
        match &self.store {
            Store::File(file) => Some(&file.window),
            Store::Memory(_) | Store::Shared(..) => None,
        }
    }

    /// The spool file, if there is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.store {
            Store::File(file) => Some(&file.path),
            Store::Memory(_) | Store::Shared(..) => None,
        }
    }

    /// Reads back the body of a pending notification kept only on disk (see [`crate::memory`]),
    /// in a read transaction of its own: it waits for no commit of the writer thread.
    pub async fn load(&self, receiver: &Arc<str>, seq: u64) -> Result<Bytes, String> {
        match &self.store {
            Store::File(file) => file.load(receiver, seq).await,
            Store::Memory(_) | Store::Shared(..) => Err("only a spool file keeps bodies on disk".into()),
        }
    }

    /// Stores a batch's `count` records durably; returns their sequence numbers, in order. The
    /// records are built (by `records`) only for a store that keeps them; memory mode only
    /// numbers them. The shared queue is published to by [`crate::accept`] instead.
    pub async fn append(&self, count: usize, records: impl FnOnce() -> Vec<NewRecord>) -> Result<Vec<u64>, SpoolError> {
        match &self.store {
            Store::Memory(memory) => Ok(memory.number(count)),
            Store::File(file) => {
                let records = records();
                debug_assert_eq!(records.len(), count);
                file.append(records).await
            }
            Store::Shared(..) => Err(SpoolError::Unavailable("the shared queue takes batches by publishing".into())),
        }
    }

    /// Remembers (`Some`, see [`record::encode_thread`]) or forgets (`None`) a group's thread
    /// entry, durably, under the hash of its groupKey; only a spool file keeps them (otherwise
    /// the caller's memory is the store).
    pub async fn set_thread(
        &self,
        receiver: &Arc<str>,
        group: GroupHash,
        entry: Option<Vec<u8>>,
    ) -> Result<(), String> {
        match &self.store {
            Store::File(file) => file.set_thread(receiver, group, entry).await,
            Store::Memory(_) | Store::Shared(..) => Ok(()),
        }
    }

    /// A receiver's remembered thread entries, by group hash.
    pub async fn list_threads(&self, receiver: &Arc<str>) -> Result<ThreadList, String> {
        match &self.store {
            Store::File(file) => file.list_threads(receiver).await,
            Store::Memory(_) | Store::Shared(..) => Ok(Vec::new()),
        }
    }

    /// The notification was delivered: forget it.
    pub fn delivered(&self, receiver: &Arc<str>, seq: u64) {
        match &self.store {
            // The writer counts the bytes the removal frees.
            Store::File(file) => file.send(Op::Remove { receiver: receiver.clone(), seq }),
            Store::Shared(backend) => backend.delivered(seq),
            Store::Memory(_) => {}
        }
    }

    /// Records how many attempts were made, so a restart resumes the retry budget.
    pub fn attempted(&self, receiver: &Arc<str>, seq: u64, attempts: u32) {
        match &self.store {
            Store::File(file) => file.send(Op::Attempted { receiver: receiver.clone(), seq, attempts }),
            Store::Shared(backend) => backend.attempted(seq),
            Store::Memory(_) => {}
        }
    }

    /// Moves a notification to the dead letters. An empty `body` (a restored notification whose
    /// body stayed on disk) is taken from the spool file.
    pub fn dead_letter(&self, receiver: &Arc<str>, seq: u64, mut header: Header, body: Bytes, info: DeadInfo) {
        header.dead = Some(info);
        match &self.store {
            Store::File(file) => {
                file.send(Op::Dead { receiver: receiver.clone(), seq, record: record::encode(&header, &body) })
            }
            Store::Shared(backend) => backend.dead_letter(receiver, seq, header, body),
            Store::Memory(memory) => memory.keep(Stored { receiver: receiver.to_string(), seq, header, body }),
        }
    }

    /// Puts back a dead letter taken for replay that could not be replayed.
    pub fn return_dead_letter(&self, stored: Stored) {
        match &self.store {
            Store::File(file) => {
                let (receiver, record) =
                    (stored.receiver.as_str().into(), record::encode(&stored.header, &stored.body));
                file.send(Op::Dead { receiver, seq: stored.seq, record })
            }
            Store::Shared(backend) => backend.return_dead_letter(stored),
            Store::Memory(memory) => memory.keep(stored),
        }
    }

    /// Whether finished notifications are recorded (`history.enabled`): a caller asks before it
    /// builds a record.
    pub fn keeps_history(&self) -> bool {
        self.history.enabled()
    }

    /// Records a finished notification in the history (`history:`), without waiting: dropped
    /// and counted when history is off or its store is behind, never holding up the caller.
    pub fn record_history(&self, record: Record) {
        if !self.history.enabled() {
            return;
        }
        if let Some(export) = self.export.get() {
            // A place first: the record is copied only when there is room for the copy.
            match export.try_reserve() {
                Ok(place) => place.send(record.clone()),
                Err(_) => metrics::counter!(crate::metrics::HISTORY_DROPPED, "reason" => "export_behind").increment(1),
            }
        }
        if !self.history.admit() {
            return;
        }
        match &self.store {
            Store::Memory(memory) => memory.history.insert(record),
            Store::File(file) => file.send(Op::History(Box::new(record))),
            Store::Shared(backend) => backend.history().record(record),
        }
    }

    /// A page of the history, newest first.
    pub async fn history_page(&self, query: HistoryQuery) -> Result<HistoryPage, SpoolError> {
        match &self.store {
            Store::Memory(memory) => Ok(memory.history.page(&query)),
            Store::File(file) => file.history_page(query).await.map_err(SpoolError::Io),
            Store::Shared(backend) => Ok(backend.history().memory.page(&query)),
        }
    }

    /// Hands every record from now on to `history.export` as well.
    pub fn export_history(&self, to: tokio::sync::mpsc::Sender<Record>) {
        let _ = self.export.set(to);
    }

    /// Applies a (re)loaded `history:`.
    pub fn apply_history(&self, config: &HistoryConfig) {
        self.history.apply(config);
        if let Store::Shared(backend) = &self.store {
            backend.apply_history(config);
        }
    }

    /// Applies `delivery.max_dead_letter_bytes` (from the next dead letter on).
    pub fn set_max_dead_letter_bytes(&self, max_bytes: u64) {
        self.dead.max_bytes.store(max_bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Dead letters kept and their body bytes; with the shared queue, its dead-letter stream's.
    pub async fn dead_letter_totals(&self) -> Result<(u64, u64), SpoolError> {
        match &self.store {
            Store::Memory(memory) => Ok(memory.totals()),
            Store::File(_) => Ok(self.dead.get()),
            Store::Shared(backend) => backend.dead_letter_totals().await,
        }
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
        let mut entries = match &self.store {
            Store::Memory(memory) => memory.page(after, limit, receiver),
            Store::File(file) => file.dead_page(after, limit, receiver).await.map_err(SpoolError::Io)?,
            Store::Shared(backend) => backend.dead_letter_page(after, limit, receiver).await?,
        };
        let next_after = (entries.len() > limit).then(|| {
            entries.truncate(limit);
            entries.last().map_or(after, |e| e.seq)
        });
        Ok(DeadPage { entries, next_after })
    }

    /// One dead letter, body included; `None` if there is none with this sequence.
    pub async fn dead_letter_body(&self, seq: u64) -> Result<Option<Stored>, SpoolError> {
        match &self.store {
            Store::Memory(memory) => Ok(memory.body(seq)),
            Store::File(file) => file.dead_body(seq).await.map_err(SpoolError::Io),
            Store::Shared(backend) => backend.dead_letter_body(seq).await,
        }
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
        match &self.store {
            Store::Memory(memory) => Ok(memory.take(receiver)),
            Store::File(file) => {
                let taken = file.take_dead(receiver).await.map_err(SpoolError::Io)?;
                Ok(DeadBatch { taken, next: None })
            }
            Store::Shared(backend) => backend.take_dead_letters(receiver, cursor, nats::REPLAY_BATCH_BYTES).await,
        }
    }

    /// Whether the last write succeeded (the shared queue: whether it is reachable).
    pub fn is_healthy(&self) -> bool {
        match &self.store {
            Store::Memory(_) => true,
            Store::File(file) => file.is_healthy(),
            Store::Shared(backend) => backend.is_connected(),
        }
    }

    /// Bytes the spool holds: with a spool file, every key and value in it (pending
    /// notifications with their headers, attempt counts, dead letters, thread state), as last
    /// committed; with the shared queue, its stream's bytes.
    pub fn bytes(&self) -> u64 {
        match &self.store {
            Store::Memory(_) => 0,
            Store::File(file) => file.bytes(),
            Store::Shared(backend) => backend.bytes(),
        }
    }

    /// `spool` in the status API: whether accepted notifications survive a crash, the file, its
    /// health and size.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "persistent": self.is_persistent(),
            "path": self.path().map(|p| p.display().to_string()),
            "healthy": self.is_healthy(),
            "bytes": self.bytes(),
        })
    }

    /// `backend` in the status API: which store holds accepted notifications, and its health.
    pub fn backend_status(&self) -> serde_json::Value {
        use serde_json::json;
        match &self.store {
            Store::Shared(nats) => {
                let config = nats.config();
                json!({
                    "kind": "nats",
                    "healthy": nats.is_connected(),
                    "urls": config.redacted_urls(),
                    "stream": config.stream,
                    "replicas": config.replicas,
                    "partitions": config.partitions,
                    "partitions_owned": nats.owned(),
                    "pending": nats.pending(),
                    "bytes": nats.bytes(),
                    "max_bytes": config.max_bytes,
                    "auth": config.auth.kind(),
                    "tls": config.tls.is_some(),
                    "history": nats.history_status(),
                })
            }
            Store::File(file) => json!({"kind": "redb", "healthy": file.is_healthy()}),
            Store::Memory(_) => json!({"kind": "memory", "healthy": true}),
        }
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

    /// Whether dead letters record their destination's identity (see
    /// [`Spool::destination_identity`]).
    pub fn records_destinations(&self) -> bool {
        self.identity.is_some()
    }

    /// Commits every change sent to the writer so far (the spool file; nothing to do otherwise).
    #[cfg(test)]
    async fn flush(&self) -> Result<(), String> {
        match &self.store {
            Store::File(file) => file.flush().await,
            Store::Memory(_) | Store::Shared(..) => Ok(()),
        }
    }

    /// Makes every change durable and stops the writer (at shutdown); hands the shared queue's
    /// notifications in delivery back to the other replicas.
    pub async fn close(&self) {
        match &self.store {
            Store::File(file) => file.close().await,
            Store::Shared(backend) => backend.close().await,
            Store::Memory(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
