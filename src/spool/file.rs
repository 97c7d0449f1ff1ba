//! The spool file (`delivery.spool.path`): a redb database written by one thread ([`super::writer`],
//! group commit) and read apart from it, in read transactions of their own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use redb::{Database, ReadableDatabase};
use tokio::sync::oneshot;

use super::open::{
    OpenError, aside_name, dead_totals, identity_key, migrate_threads, open_database, other_bytes, restore,
};
use super::private::{private_dir, private_file};
use super::writer::{DEAD, Op, PENDING, Writer, seq_key_bytes};
use super::{
    CACHE_BYTES, DeadEntry, DeadTotals, GroupHash, NewRecord, SpoolConfig, SpoolError, Stored, ThreadList, record,
};
use crate::memory::Budget;
use crate::metrics as m;

/// The open spool file and its writer thread.
#[derive(Debug)]
pub(super) struct FileStore {
    /// `Op::Stop` ends the writer thread.
    writer: mpsc::Sender<Op>,
    /// The writer's open database, for reads that need not pass through it (`None` while the
    /// writer reopens the file).
    readers: Arc<ArcSwapOption<Database>>,
    /// Bytes of keys and values the file holds, as its writer last committed them.
    stored: Arc<AtomicU64>,
    /// Bytes of appends sent to the writer and not yet answered: counted against `max_bytes`
    /// with `stored`, so concurrent batches cannot overshoot it together.
    reserved: AtomicU64,
    max_bytes: u64,
    healthy: Arc<AtomicBool>,
    pub(super) path: PathBuf,
    /// `delivery.spool.memory_window_bytes`.
    pub(super) window: Arc<Budget>,
}

/// What opening the file gives: the store, the notifications still pending, the key of
/// destination identities kept in it.
pub(super) struct Opened {
    pub store: FileStore,
    pub restored: Vec<Stored>,
    pub identity: ring::hmac::Key,
}

impl FileStore {
    /// Opens (or creates) the file; a file that cannot be opened is moved aside and a new one
    /// started, with an error log.
    pub(super) fn open(
        config: &SpoolConfig,
        max_dead: usize,
        dead: &Arc<DeadTotals>,
        history: Arc<crate::history::Limits>,
    ) -> Result<Opened, String> {
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
        let (count, dead_bytes) = dead_totals(&db)?;
        dead.set(count, dead_bytes);
        let stored = Arc::new(AtomicU64::new(pending_bytes + other_bytes(&db)?));
        let history = super::history::HistoryState::open(&db, history)?;
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
            history,
        };
        std::thread::Builder::new()
            .name("amrelay-spool".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("cannot start the spool writer: {e}"))?;
        metrics::gauge!(m::SPOOL_HEALTHY).set(1.0);
        metrics::gauge!(m::SPOOL_MAX_BYTES).set(config.max_bytes as f64);
        metrics::gauge!(m::SPOOL_BYTES).set(stored.load(Ordering::Relaxed) as f64);
        let store = FileStore {
            writer: tx,
            readers,
            stored,
            reserved: AtomicU64::new(0),
            max_bytes: config.max_bytes,
            healthy,
            path: config.path.clone(),
            window: Budget::new(m::SPOOL_MEMORY_WINDOW_BYTES, config.memory_window_bytes),
        };
        Ok(Opened { store, restored, identity })
    }

    pub(super) fn send(&self, op: Op) {
        // Sending never blocks; after `close` the writer is gone and the op is dropped.
        let _ = self.writer.send(op);
    }

    /// Asks the writer thread and waits for its answer.
    async fn ask<T>(&self, op: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Op) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        self.send(op(reply));
        answer.await.unwrap_or_else(|_| Err("the spool writer stopped".into()))
    }

    /// Stores the records in one group commit, within `max_bytes`.
    pub(super) async fn append(&self, records: Vec<NewRecord>) -> Result<Vec<u64>, SpoolError> {
        let encoded: Vec<_> = records.into_iter().map(|r| (r.receiver, record::encode(&r.header, &r.body))).collect();
        // What the file will hold for them: headers (the groupKey among them) and keys too.
        let size: u64 = encoded.iter().map(|(receiver, record)| seq_key_bytes(receiver) + record.len() as u64).sum();
        let reserved = self.reserved.fetch_add(size, Ordering::Relaxed) + size;
        if self.stored.load(Ordering::Relaxed) + reserved > self.max_bytes {
            self.reserved.fetch_sub(size, Ordering::Relaxed);
            return Err(SpoolError::Full(self.max_bytes));
        }
        let result = self.ask(|reply| Op::Append { records: encoded, reply }).await.map_err(SpoolError::Io);
        // Committed, they are counted in `stored` now (or were refused).
        self.reserved.fetch_sub(size, Ordering::Relaxed);
        result
    }

    /// Reads back a pending notification's body, in a read transaction of its own.
    pub(super) async fn load(&self, receiver: &Arc<str>, seq: u64) -> Result<Bytes, String> {
        let receiver = receiver.clone();
        self.read(move |db| {
            let txn = db.begin_read().map_err(|e| e.to_string())?;
            let pending = txn.open_table(PENDING).map_err(|e| e.to_string())?;
            let value = pending.get((&*receiver, seq)).map_err(|e| e.to_string())?;
            let value = value.ok_or_else(|| format!("notification {seq} of {receiver} is not in the spool"))?;
            record::decode(value.value())
                .map(|(_, body)| body)
                .ok_or_else(|| format!("notification {seq} of {receiver} is corrupt in the spool"))
        })
        .await
    }

    /// Runs `read` on a blocking thread with the open database.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Database) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let readers = self.readers.clone();
        let run = move || read(&*readers.load_full().ok_or("the spool is being reopened")?);
        tokio::task::spawn_blocking(run).await.unwrap_or_else(|e| Err(e.to_string()))
    }

    pub(super) async fn set_thread(
        &self,
        receiver: &Arc<str>,
        group: GroupHash,
        entry: Option<Vec<u8>>,
    ) -> Result<(), String> {
        self.ask(|reply| Op::Thread { receiver: receiver.clone(), group, entry, reply }).await
    }

    pub(super) async fn list_threads(&self, receiver: &Arc<str>) -> Result<ThreadList, String> {
        self.ask(|reply| Op::ListThreads { receiver: receiver.clone(), reply }).await
    }

    /// Up to `limit + 1` dead letters after `after`, headers only, without reading a body.
    pub(super) async fn dead_page(
        &self,
        after: u64,
        limit: usize,
        receiver: Option<&str>,
    ) -> Result<Vec<DeadEntry>, String> {
        let receiver = receiver.map(str::to_owned);
        self.read(move |db| {
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
        })
        .await
    }

    pub(super) async fn dead_body(&self, seq: u64) -> Result<Option<Stored>, String> {
        self.read(move |db| {
            let txn = db.begin_read().map_err(|e| e.to_string())?;
            let dead = txn.open_table(DEAD).map_err(|e| e.to_string())?;
            let Some(value) = dead.get(seq).map_err(|e| e.to_string())? else { return Ok(None) };
            Ok(record::decode(value.value()).map(|(header, body)| {
                let receiver = header.dead.as_ref().map(|d| d.receiver.clone()).unwrap_or_default();
                Stored { receiver, seq, header, body }
            }))
        })
        .await
    }

    pub(super) async fn take_dead(&self, receiver: Option<&str>) -> Result<Vec<Stored>, String> {
        self.ask(|reply| Op::TakeDead { receiver: receiver.map(str::to_owned), reply }).await
    }

    pub(super) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// A page of history records, read apart from the writer.
    pub(super) async fn history_page(&self, query: crate::history::Query) -> Result<crate::history::Page, String> {
        self.read(move |db| super::history::page(db, &query)).await
    }

    /// Every key and value the file holds, as last committed.
    pub(super) fn bytes(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// Commits every change sent to the writer so far: after it, readers apart from the writer
    /// (the dead-letter listing) see them.
    pub(super) async fn flush(&self) -> Result<(), String> {
        self.ask(|reply| Op::Flush { reply }).await
    }

    /// Makes every change durable and stops the writer (at shutdown).
    pub(super) async fn close(&self) {
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, "final spool flush failed; pending notifications stay as last committed");
        }
        // The writer thread ends at `Stop`, closing the database file, and says when it has.
        let (done, closed) = oneshot::channel();
        self.send(Op::Stop { done });
        let _ = closed.await;
    }
}
