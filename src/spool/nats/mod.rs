//! `delivery.nats`: one shared, replicated queue for several replicas, in NATS JetStream.
//!
//! **Streams.** `<stream>` (work-queue retention) holds accepted notifications under
//! `<stream>.p.<partition>`; `<stream>_DEAD` (limits retention, at most
//! `delivery.max_dead_letters`, oldest dropped) holds dead letters under `<stream>.dead`. Both,
//! and the partitions' consumers, are created, or updated to the config, at start ([`provision`]:
//! retried until done, as replicas that start together keep the servers busy); only a conflict
//! (an existing stream of another kind) stops the start, with JetStream's own words.
//!
//! **Acceptance** ([`Backend::publish`]) publishes each receiver's notification with
//! `Nats-Msg-Id` set to its identity (receiver, groupKey, alerts and their states), so the copy a
//! second Alertmanager peer posts to another replica within `duplicate_window` is dropped by the
//! server; the batch is answered 200 only once every message is acknowledged (stored on a quorum
//! for R3). Nothing is queued locally: every replica delivers from the stream.
//!
//! **Delivery** ([`consume`]): partition = hash(receiver, groupKey) mod `partitions`; each
//! partition has a durable pull consumer with `max_ack_pending: 1`, so one notification per
//! partition is in flight across all replicas, and a groupKey's notifications are delivered in
//! order even when replicas come and go. Every replica pulls from every partition; a message
//! pulled goes to the receiver's local pipeline (like a notification restored from the spool)
//! and is acknowledged when it is delivered or dead-lettered. While a delivery with retries runs,
//! an in-progress ack every `ack_wait / 3` keeps it; a replica killed mid-delivery stops sending
//! those, and after `ack_wait` the server hands the notification to another replica.
//!
//! **History** (see [`history`]): `<stream>_HISTORY`, limits retention bounded by `history:`,
//! holds every replica's records; each replica reads all of it into its own bounded memory copy.
//!
//! **Dead letters** stay in JetStream, not in this process: the listing reads one message at a
//! time by stream sequence (a page holds its `limit` headers and the one message being decoded),
//! a body is one `get` by sequence, and a replay takes them in batches of at most
//! [`REPLAY_BATCH_BYTES`] of bodies (or one dead letter, whatever its size), charged to the
//! process memory budget while they wait for acceptance. What dead letters cost this replica's
//! memory at once is therefore `limit × header + one message` for a listing, one body for a body
//! request, and `max(REPLAY_BATCH_BYTES, largest dead letter)` for a replay — whatever the stream
//! holds (`delivery.max_dead_letters` of them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::{PublishMessage, StreamMessage};
use async_nats::jetstream::{self, AckKind, Message, stream};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

mod acks;
mod connect;
mod consume;
mod dead;
pub mod history;
mod provision;
mod publish;
mod streams;

pub use consume::{Sink, Sinks, start as consume};

use super::record;
use super::{DeadBatch, DeadEntry, Header, ReplayCursor, SpoolError, Stored};
use crate::config::nats::{NatsAuth, NatsConfig};
use crate::metrics as m;

/// The most body bytes one replay batch takes from the dead-letter stream (at least one dead
/// letter, whatever its size): what a replay holds at once.
pub const REPLAY_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The header naming a message's receiver.
pub const RECEIVER_HEADER: &str = "Amrelay-Receiver";
/// How long connecting at start may take before amrelay gives up with an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one JetStream request (publish ack, API call) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one pull request waits on the server; also the most a shutdown waits for this
/// replica's last pull requests to end (see [`Backend::close`]).
pub const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// One notification to publish.
#[derive(Debug)]
pub struct Publication {
    pub receiver: Arc<str>,
    pub header: Header,
    pub body: Bytes,
    /// `Nats-Msg-Id`: the server drops a second message with the same id within the window.
    pub msg_id: String,
}

/// What the server did with a published notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub seq: u64,
    /// Already in the stream (published by this or another replica within the window).
    pub duplicate: bool,
}

/// A notification pulled and not yet finished.
struct Inflight {
    acker: Arc<Message>,
}

/// The connection, the streams, and the notifications this replica is delivering.
pub struct Backend {
    config: NatsConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    dead_stream: String,
    max_dead: usize,
    /// `<stream>_HISTORY` (see [`history`]).
    history_stream: String,
    history: history::SharedHistory,
    /// Stream sequence → the pulled message (kept to acknowledge it).
    inflight: papaya::HashMap<u64, Inflight>,
    /// Stream messages and bytes, refreshed by [`Backend::refresh_stats`].
    pending: AtomicU64,
    bytes: AtomicU64,
    /// Cancelled first at shutdown: no new pull requests; what the last ones bring is handed back.
    pub(crate) closing: CancellationToken,
    /// The partitions' pull loops.
    pub(crate) pullers: tokio_util::task::TaskTracker,
    /// Cancelled last at shutdown: keep-alives end.
    pub(crate) stop: CancellationToken,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("urls", &self.config.redacted_urls())
            .field("stream", &self.config.stream)
            .finish()
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn dead_unavailable(e: impl std::fmt::Display) -> SpoolError {
    SpoolError::Unavailable(format!("JetStream dead letters: {e}"))
}

/// The receiver a stored message names (`Amrelay-Receiver`).
fn receiver_of(message: &StreamMessage) -> String {
    message.headers.get(RECEIVER_HEADER).map(|v| v.as_str().to_owned()).unwrap_or_default()
}

/// The subject of a partition.
pub fn partition_subject(stream: &str, partition: u32) -> String {
    format!("{stream}.p.{partition}")
}

/// The durable consumer of a partition.
pub fn consumer_name(partition: u32) -> String {
    format!("amrelay-p{partition}")
}

/// Which partition a receiver's groupKey belongs to: stable across replicas and restarts.
pub fn partition(receiver: &str, group_key: &str, partitions: u32) -> u32 {
    let mut bytes = Vec::with_capacity(receiver.len() + group_key.len() + 1);
    bytes.extend_from_slice(receiver.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(group_key.as_bytes());
    (crate::fingerprint::fnv1a(&bytes) % u64::from(partitions)) as u32
}

impl Backend {
    /// The JetStream context (for [`consume`]).
    pub(crate) fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The validated settings.
    pub fn config(&self) -> &NatsConfig {
        &self.config
    }

    /// Connected to a NATS server now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Notifications in the stream (all replicas), as last refreshed.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Bytes in the stream, as last refreshed.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Partitions whose notification this replica holds now.
    pub fn owned(&self) -> usize {
        self.inflight.len()
    }

    /// Reads the streams' message and byte counts (the work stream's into the gauges).
    pub async fn refresh_stats(&self) -> Result<(), String> {
        let info = self.js.get_stream(&self.config.stream).await.map_err(err)?;
        let state = &info.cached_info().state;
        self.pending.store(state.messages, Ordering::Relaxed);
        self.bytes.store(state.bytes, Ordering::Relaxed);
        metrics::gauge!(m::NATS_PENDING).set(state.messages as f64);
        metrics::gauge!(m::NATS_STREAM_BYTES).set(state.bytes as f64);
        self.refresh_history_stats().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition("r", "{}:{a=\"1\"}", 64), partition("r", "{}:{a=\"1\"}", 64));
        let used: std::collections::HashSet<_> =
            (0..1000).map(|i| partition("r", &format!("{{}}:{{alertname=\"{i}\"}}"), 16)).collect();
        assert_eq!(used.len(), 16);
        assert!((0..1000).all(|i| partition("x", &i.to_string(), 7) < 7));
    }
}
