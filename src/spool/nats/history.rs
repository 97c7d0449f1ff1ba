//! The history shared by the replicas (`history:` with `delivery.nats`): the `<stream>_HISTORY`
//! stream, subject `<stream>.history`, limits retention bounded by `history.retention`
//! (`max_age`) and `history.max_bytes` (64 MiB by default, on disk), the oldest dropped first.
//!
//! **Writing.** A finished notification's record (its JSON, [`Record::encode`]) is handed to one
//! publishing task without waiting ([`SharedHistory::record`]); the task publishes it and awaits
//! at most [`IN_FLIGHT`] acknowledgements at once. Acceptance and delivery never wait for it:
//! when the task is behind (its queue full, or [`crate::history::Limits::admit`]'s bound reached)
//! the record is dropped and counted (`amrelay_history_dropped_total{reason="behind"}`); a
//! publication that fails or is not acknowledged within the request timeout is counted
//! `reason="error"` and not tried again (NATS down: records of that time are lost, counted).
//!
//! **Reading.** Each replica keeps what it shows in a [`MemoryHistory`] (bounded like memory
//! mode: `history.max_bytes`, 8 MiB by default, and `history.retention`), fed only by an ordered
//! consumer on the stream, from the newest records that copy can hold: every replica holds every
//! replica's records, under the stream's sequence (the same `seq`, and so the same paging cursor,
//! on every replica). A
//! replica's own records are not kept when written but when they come back from the stream: one
//! path, no duplicate to recognise, and what a replica shows is what the others show. An
//! interrupted consumer (NATS restarted) is made again from the last sequence kept, and a
//! sequence at or below it is never kept twice.

use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::*;
use crate::config::HistoryConfig;
use crate::history::memory::MemoryHistory;
use crate::history::{Limits, MAX_BEHIND, Record};

/// Records waiting for the publishing task at most (the bound of
/// [`crate::history::Limits::admit`] too): ~1 KiB each.
const QUEUED: usize = MAX_BEHIND;
/// Publications awaiting their acknowledgement at once: enough to keep up with thousands of
/// records a second over a round trip of a few milliseconds.
pub const IN_FLIGHT: usize = 256;

/// The shared history's writing side, this replica's copy, and the stream's numbers.
pub struct SharedHistory {
    /// What this replica shows: every replica's records, read back from the stream.
    pub memory: MemoryHistory,
    limits: Arc<Limits>,
    queue: mpsc::Sender<Record>,
    /// `history:` as it applies now: the stream's bounds.
    config: ArcSwap<HistoryConfig>,
    /// The last stream sequence kept (0: none yet): where a new consumer starts.
    last_seq: AtomicU64,
    /// The streams exist (a reload may update the history stream's bounds from then on).
    pub(super) provisioned: AtomicBool,
    /// The stream's messages and bytes, as last refreshed.
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl SharedHistory {
    /// The history and the receiving end of its queue (for [`publish`]).
    pub fn new(capacity: usize) -> (SharedHistory, mpsc::Receiver<Record>) {
        let limits = Limits::new(&HistoryConfig::default(), false);
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let history = SharedHistory {
            memory: MemoryHistory::new(limits.clone()),
            limits,
            queue,
            config: ArcSwap::from_pointee(HistoryConfig::default()),
            last_seq: AtomicU64::new(0),
            provisioned: AtomicBool::new(false),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        (history, receiver)
    }

    /// The bounds and switch the spool applies (its `history:`), shared with the memory copy.
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// `history:` as it applies now.
    pub fn config(&self) -> HistoryConfig {
        **self.config.load()
    }

    /// Takes a (re)loaded `history:`; whether the stream's bounds changed.
    pub fn apply(&self, config: &HistoryConfig) -> bool {
        let old = self.config.swap(Arc::new(*config));
        old.retention != config.retention || old.max_bytes(true) != config.max_bytes(true)
    }

    /// Hands a record (admitted by [`Limits::admit`]) to the publishing task without waiting;
    /// one it cannot take now is dropped and counted.
    pub fn record(&self, record: Record) {
        if let Err(reason) = hand_over(&self.queue, record) {
            self.limits.written(1);
            metrics::counter!(m::HISTORY_DROPPED, "reason" => reason).increment(1);
        }
    }

    /// Keeps a record read from the stream at sequence `seq`, unless one at or after it is kept
    /// already (a consumer made again may send it twice).
    pub fn take(&self, seq: u64, payload: &[u8]) {
        if self.last_seq.fetch_max(seq, Ordering::Relaxed) >= seq {
            return;
        }
        match Record::decode(payload) {
            Some(mut record) => {
                record.seq = seq;
                self.memory.insert_numbered(record);
            }
            None => tracing::warn!(seq, "a message in the history stream is not a history record; skipped"),
        }
    }

    /// The last stream sequence kept (0: none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Relaxed)
    }

    /// The stream's messages and bytes, as last refreshed.
    pub fn stream_totals(&self) -> (u64, u64) {
        (self.messages.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }
}

/// Hands a record over, or says why not with the reason word of the dropped counter.
fn hand_over(queue: &mpsc::Sender<Record>, record: Record) -> Result<(), &'static str> {
    queue.try_send(record).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => "behind",
        mpsc::error::TrySendError::Closed(_) => "error",
    })
}

/// The queue's default capacity.
pub fn queue_capacity() -> usize {
    QUEUED
}

/// The history stream's name.
pub fn stream_name(stream: &str) -> String {
    format!("{stream}_HISTORY")
}

/// The history stream's subject.
pub fn subject(stream: &str) -> String {
    format!("{stream}.history")
}

/// The history stream as the config wants it.
pub fn stream_config(nats: &NatsConfig, history: &HistoryConfig) -> stream::Config {
    stream::Config {
        name: stream_name(&nats.stream),
        description: Some("amrelay: notification history, shared by the replicas".into()),
        subjects: vec![subject(&nats.stream)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: nats.replicas,
        max_age: history.retention,
        max_bytes: history.max_bytes(true) as i64,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// Where a replica that starts reads the stream from: the newest records its copy can hold,
/// not the whole stream (64 MiB by default, for a copy of 8 MiB). A record held in memory counts
/// about what its JSON takes in the stream, or more (its packed form is smaller than its JSON
/// by the field names, but its index entries add ~48 bytes per key; see
/// [`Record::memory_bytes`]), so `memory_bound` bytes of the stream's newest messages hold about
/// every record that fits.
fn first_worth_reading(held: Held, memory_bound: u64) -> u64 {
    if held.messages == 0 {
        return 0;
    }
    let per_message = (held.bytes / held.messages).max(1);
    held.last.saturating_sub(memory_bound / per_message).max(held.first)
}

/// What the stream holds: its first and last sequences, messages and bytes.
#[derive(Debug, Clone, Copy)]
struct Held {
    first: u64,
    last: u64,
    messages: u64,
    bytes: u64,
}

/// The publishing task: publishes every record handed over, awaiting at most [`IN_FLIGHT`]
/// acknowledgements at once, until `stop`. Each record ends written or counted as dropped.
pub async fn publish(
    js: jetstream::Context,
    subject: String,
    mut queue: mpsc::Receiver<Record>,
    limits: Arc<Limits>,
    stop: CancellationToken,
) {
    let finished = |result: Result<(), String>| {
        limits.written(1);
        if let Err(e) = result {
            metrics::counter!(m::HISTORY_DROPPED, "reason" => "error").increment(1);
            metrics::counter!(m::NATS_ERRORS, "operation" => "history").increment(1);
            tracing::debug!(error = %e, "a history record was not stored in JetStream; dropped");
        }
    };
    let mut acks = FuturesUnordered::new();
    loop {
        tokio::select! {
            Some(result) = acks.next(), if !acks.is_empty() => finished(result),
            record = queue.recv(), if acks.len() < IN_FLIGHT => {
                let Some(record) = record else { break };
                let message = PublishMessage::build().payload(Bytes::from(record.encode()));
                match js.send_publish(subject.clone(), message).await {
                    Ok(ack) => acks.push(async move { ack.await.map(drop).map_err(err) }),
                    Err(e) => finished(Err(err(e))),
                }
            }
            () = stop.cancelled() => break,
        }
    }
}

impl Backend {
    /// The shared history (see [`self`]).
    pub fn history(&self) -> &SharedHistory {
        &self.history
    }

    /// Applies a (re)loaded `history:`: the memory copy's bounds at once (through the spool's
    /// limits), and the stream's, in one try in the background, once the streams exist.
    pub fn apply_history(self: &Arc<Self>, config: &HistoryConfig) {
        if !self.history.apply(config) || !self.history.provisioned.load(Ordering::Relaxed) {
            return;
        }
        let backend = self.clone();
        tokio::spawn(async move {
            let want = stream_config(&backend.config, &backend.history.config());
            match provision::ensure_stream_once(&backend.js, &want).await {
                Ok(_) => tracing::info!(stream = %want.name, max_age = ?want.max_age, max_bytes = want.max_bytes,
                    "history stream bounds updated"),
                Err(e) => tracing::warn!(stream = %want.name, error = %e,
                    "cannot update the history stream's bounds now; the next start applies them"),
            }
        });
    }

    /// Reads the history stream into this replica's memory, from the newest records it can hold
    /// (or after the last sequence kept), until [`Backend::close`]; made again after an
    /// interruption (counted in `amrelay_nats_errors_total{operation="history"}`).
    pub(crate) async fn read_history(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(250);
        while !self.stop.is_cancelled() {
            let Err(e) = self.read_history_until_error().await else { return };
            metrics::counter!(m::NATS_ERRORS, "operation" => "history").increment(1);
            tracing::debug!(error = %e, last_seq = self.history.last_seq(), "reading the history stream failed; again");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn read_history_until_error(&self) -> Result<(), String> {
        let stream = self.js.get_stream(&self.history_stream).await.map_err(err)?;
        let start_sequence = match self.history.last_seq() {
            0 => {
                let state = &stream.cached_info().state;
                let held = Held {
                    first: state.first_sequence,
                    last: state.last_sequence,
                    messages: state.messages,
                    bytes: state.bytes,
                };
                first_worth_reading(held, self.history.limits.max_bytes())
            }
            last => last + 1,
        };
        let deliver_policy = match start_sequence {
            0 | 1 => jetstream::consumer::DeliverPolicy::All,
            start_sequence => jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence },
        };
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                description: Some("amrelay: this replica's copy of the history".into()),
                filter_subject: subject(&self.config.stream),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(err)?;
        let mut messages = consumer.messages().await.map_err(err)?;
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                () = self.stop.cancelled() => return Ok(()),
            };
            let message = message.ok_or("the history consumer ended")?.map_err(err)?;
            let seq = message.info().map_err(err)?.stream_sequence;
            self.history.take(seq, &message.payload);
        }
    }

    /// The history stream for the status API: its name, bounds, and what it holds (as last
    /// refreshed), beside what this replica's copy holds.
    pub fn history_status(&self) -> serde_json::Value {
        let config = self.history.config();
        let (messages, bytes) = self.history.stream_totals();
        serde_json::json!({
            "stream": self.history_stream,
            "messages": messages,
            "bytes": bytes,
            "max_bytes": config.max_bytes(true),
            "max_age_seconds": config.retention.as_secs(),
            "last_seq": self.history.last_seq(),
        })
    }

    /// Reads the history stream's message and byte counts.
    pub(super) async fn refresh_history_stats(&self) -> Result<(), String> {
        let info = self.js.get_stream(&self.history_stream).await.map_err(err)?;
        let state = &info.cached_info().state;
        self.history.messages.store(state.messages, Ordering::Relaxed);
        self.history.bytes.store(state.bytes, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Query;

    /// A record as another replica publishes it (built from its JSON: fields added later keep
    /// their defaults).
    fn record(receiver: &str, id: &str) -> Record {
        let now = crate::history::now_ms();
        Record::decode(
            serde_json::json!({
                "receiver": receiver, "group_key": "{}:{}", "status": "firing", "alerts": 1,
                "fingerprints": [format!("fp-{id}")], "alertnames": ["A"], "id": id, "attempts": 1,
                "outcome": "delivered", "http_status": 200, "accepted_unix_ms": now, "finished_unix_ms": now,
                "latency_ms": 1,
            })
            .to_string()
            .as_bytes(),
        )
        .expect("a record")
    }

    fn nats(yaml: &str) -> NatsConfig {
        let path = std::path::Path::new("amrelay.yml");
        let config = crate::config::from_str(yaml, path, &crate::config::Environment::default()).unwrap();
        config.delivery.nats.unwrap()
    }

    /// The stream's bounds are `history.retention` and `history.max_bytes` (64 MiB by default:
    /// it is on disk), its replicas `delivery.nats.replicas`; the oldest records go first.
    #[test]
    fn the_history_stream_is_bounded_by_the_history_config() {
        let nats = nats("delivery: {nats: {urls: ['nats://127.0.0.1:4222'], stream: RELAY, replicas: 3}}\n");
        let config = stream_config(&nats, &HistoryConfig::default());
        assert_eq!(config.name, "RELAY_HISTORY");
        assert_eq!(config.subjects, vec!["RELAY.history".to_owned()]);
        assert_eq!(config.retention, stream::RetentionPolicy::Limits);
        assert_eq!(config.discard, stream::DiscardPolicy::Old);
        assert_eq!(config.storage, stream::StorageType::File);
        assert_eq!(config.num_replicas, 3);
        assert_eq!(config.max_age, crate::config::history::DEFAULT_RETENTION);
        assert_eq!(config.max_bytes, 64 * 1024 * 1024);
        let set = HistoryConfig { retention: Duration::from_secs(3600), max_bytes: Some(1 << 20), enabled: true };
        let config = stream_config(&nats, &set);
        assert_eq!((config.max_age, config.max_bytes), (Duration::from_secs(3600), 1 << 20));
    }

    /// Records come back from the stream under its sequence; one read twice (a consumer made
    /// again from an earlier point) is kept once.
    #[test]
    fn records_read_back_are_kept_once_under_the_stream_sequence() {
        let (history, _queue) = SharedHistory::new(4);
        history.take(7, &record("a", "one").encode());
        history.take(9, &record("b", "two").encode());
        history.take(9, &record("b", "two").encode());
        history.take(8, &record("a", "late").encode());
        history.take(10, b"not a record");
        assert_eq!(history.last_seq(), 10);
        let page = history.memory.page(&Query { limit: 10, ..Query::default() });
        let seqs: Vec<(u64, &str)> = page.data.iter().map(|r| (r.seq, r.id.as_str())).collect();
        assert_eq!(seqs, vec![(9, "two"), (7, "one")], "newest first, no duplicate");
        let only_a = history.memory.page(&Query { limit: 10, receiver: Some("a".into()), ..Query::default() });
        assert_eq!(only_a.data.len(), 1);
    }

    /// A replica that starts reads only the stream's newest records its copy can hold.
    #[test]
    fn a_starting_replica_reads_only_what_its_copy_can_hold() {
        let state = |first, last, messages, bytes| Held { first, last, messages, bytes };
        assert_eq!(first_worth_reading(state(0, 0, 0, 0), 8 << 20), 0, "empty: from the start");
        // 200,000 records of 335 bytes for a copy of 8 MiB: the newest ~25,000.
        assert_eq!(first_worth_reading(state(1, 200_000, 200_000, 67_000_000), 8 << 20), 200_000 - 25_040);
        assert_eq!(first_worth_reading(state(501, 1_000, 500, 167_500), 8 << 20), 501, "all of a small stream");
    }

    /// The promise of the module docs: a record the publishing task cannot take now is dropped
    /// and counted as `behind`, and its place is given back; the caller never waits.
    #[test]
    fn a_full_queue_drops_the_record_and_counts_it_behind() {
        let handle = crate::metrics::install();
        let behind = || {
            let text = handle.render();
            text.lines()
                .find(|l| l.starts_with("amrelay_history_dropped_total{reason=\"behind\"}"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let before = behind();
        let (history, _queue) = SharedHistory::new(1);
        assert!(history.limits.admit() && history.limits.admit());
        history.record(record("a", "queued"));
        history.record(record("a", "dropped"));
        assert!(behind() >= before + 1.0, "counted");
        assert_eq!(hand_over(&history.queue, record("a", "x")), Err("behind"));
        drop(_queue);
        assert_eq!(hand_over(&history.queue, record("a", "x")), Err("error"), "the task is gone");
    }
}
