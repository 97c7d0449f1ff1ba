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

mod consume;
mod provision;

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

/// What a published message's headers add to its size against `max_payload` (NATS counts
/// headers and payload together): the version line, `Nats-Msg-Id` and `Amrelay-Receiver`, each
/// with its separators, and the closing blank line.
fn message_headers_size(receiver: &str, msg_id: &str) -> usize {
    "NATS/1.0\r\n".len()
        + "Nats-Msg-Id: \r\n".len()
        + msg_id.len()
        + RECEIVER_HEADER.len()
        + ": \r\n".len()
        + receiver.len()
        + "\r\n".len()
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
    /// Connects. Fails with a message naming what is wrong (unreachable, refused credentials).
    /// The streams and consumers are made by [`Backend::provision`], once the relay answers its
    /// health checks.
    pub async fn connect(config: &NatsConfig, max_dead: usize) -> Result<Arc<Backend>, String> {
        let urls = config.redacted_urls().join(", ");
        let mut options = match &config.auth {
            NatsAuth::None => async_nats::ConnectOptions::new(),
            NatsAuth::Credentials(creds) => async_nats::ConnectOptions::with_credentials(creds.expose())
                .map_err(|e| format!("delivery.nats.credentials_file: {e}"))?,
            NatsAuth::Token(token) => async_nats::ConnectOptions::with_token(token.expose().to_owned()),
            NatsAuth::UserPassword { user, password } => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.expose().to_owned())
            }
        };
        if let Some(tls) = &config.tls {
            let client_config =
                crate::tls::ClientConfigs::new().get(tls).map_err(|e| format!("delivery.nats.tls_config: {e}"))?;
            options = options.tls_client_config((*client_config).clone()).require_tls(true);
        }
        let options = options
            .name("amrelay")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(REQUEST_TIMEOUT))
            .max_reconnects(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => {
                        metrics::gauge!(m::NATS_CONNECTED).set(1.0);
                        tracing::info!("NATS connection (re)established");
                    }
                    async_nats::Event::Disconnected => {
                        metrics::gauge!(m::NATS_CONNECTED).set(0.0);
                        tracing::error!("NATS connection lost; refusing batches with 503 until it is back");
                    }
                    other => tracing::warn!(event = %other, "NATS connection event"),
                }
            });
        let addresses = config
            .urls
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("delivery.nats.urls: {e}"))?;
        let client = tokio::time::timeout(CONNECT_TIMEOUT, options.connect(addresses))
            .await
            .map_err(|_| format!("cannot connect to NATS at {urls}: no answer within {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot connect to NATS at {urls}: {e}"))?;
        metrics::gauge!(m::NATS_CONNECTED).set(1.0);
        let js = jetstream::ContextBuilder::new().timeout(REQUEST_TIMEOUT).build(client.clone());
        let dead_stream = format!("{}_DEAD", config.stream);
        let backend = Backend {
            config: config.clone(),
            client,
            js,
            dead_stream,
            max_dead,
            inflight: papaya::HashMap::new(),
            pending: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            closing: CancellationToken::new(),
            pullers: tokio_util::task::TaskTracker::new(),
            stop: CancellationToken::new(),
        };
        Ok(Arc::new(backend))
    }

    /// Creates the streams and the partition consumers, or updates them to the config, trying
    /// again with a growing pause for as long as it takes (servers busy with other replicas'
    /// requests, or electing); `Err` only for a conflict no wait resolves (see [`provision`]).
    /// The relay is alive and not ready meanwhile.
    pub async fn provision(&self) -> Result<(), String> {
        let started = Instant::now();
        let wanted = provision::Wanted {
            streams: vec![self.work_stream_config(), self.dead_stream_config()],
            consumers: (0..self.config.partitions).map(|p| self.consumer_config(p)).collect(),
        };
        let changed = provision::provision(&self.js, &wanted).await?;
        let config = &self.config;
        metrics::gauge!(m::NATS_PARTITIONS).set(f64::from(config.partitions));
        metrics::gauge!(m::NATS_PARTITIONS_OWNED).set(0.0);
        let _ = self.refresh_stats().await;
        tracing::info!(urls = %config.redacted_urls().join(", "), stream = %config.stream, replicas = config.replicas,
            partitions = config.partitions, created_or_updated = changed, took = ?started.elapsed(),
            "NATS JetStream backend ready");
        Ok(())
    }

    fn work_stream_config(&self) -> stream::Config {
        let c = &self.config;
        stream::Config {
            name: c.stream.clone(),
            description: Some("amrelay: accepted notifications, until delivered or dead-lettered".into()),
            subjects: vec![format!("{}.p.*", c.stream)],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: c.replicas,
            duplicate_window: c.duplicate_window,
            max_bytes: c.max_bytes as i64,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        }
    }

    fn dead_stream_config(&self) -> stream::Config {
        let c = &self.config;
        stream::Config {
            name: self.dead_stream.clone(),
            description: Some("amrelay: dead letters, until replayed".into()),
            subjects: vec![format!("{}.dead", c.stream)],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: c.replicas,
            max_messages: self.max_dead as i64,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }

    fn consumer_config(&self, partition: u32) -> jetstream::consumer::pull::Config {
        jetstream::consumer::pull::Config {
            durable_name: Some(consumer_name(partition)),
            description: Some(format!("amrelay delivery, partition {partition}")),
            filter_subject: partition_subject(&self.config.stream, partition),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            // One notification in flight per partition across every replica: per-groupKey order.
            max_ack_pending: 1,
            max_deliver: -1,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        }
    }

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

    /// Reads the stream's message and byte counts into the gauges.
    pub async fn refresh_stats(&self) -> Result<(), String> {
        let info = self.js.get_stream(&self.config.stream).await.map_err(err)?;
        let state = &info.cached_info().state;
        self.pending.store(state.messages, Ordering::Relaxed);
        self.bytes.store(state.bytes, Ordering::Relaxed);
        metrics::gauge!(m::NATS_PENDING).set(state.messages as f64);
        metrics::gauge!(m::NATS_STREAM_BYTES).set(state.bytes as f64);
        Ok(())
    }

    /// Publishes a batch, all messages at once, and waits for every acknowledgement. Any
    /// failure fails the batch (the messages already stored are delivered; Alertmanager's retry
    /// of the batch is then dropped by the duplicate window for them).
    pub async fn publish(&self, batch: Vec<Publication>) -> Result<Vec<Published>, SpoolError> {
        if !self.is_connected() {
            metrics::counter!(m::NATS_ERRORS, "operation" => "publish").increment(1);
            return Err(SpoolError::Unavailable("not connected to NATS".into()));
        }
        let started = Instant::now();
        // Every record is checked against the server's max_payload before any is published, so
        // a batch is stored whole or not at all.
        let max = self.client.max_payload();
        let records: Vec<Vec<u8>> = batch.iter().map(|p| record::encode(&p.header, &p.body)).collect();
        for (p, record) in batch.iter().zip(&records) {
            let size = record.len() + message_headers_size(&p.receiver, &p.msg_id);
            if size > max {
                return Err(SpoolError::TooLarge { size, max });
            }
        }
        let mut acks = Vec::with_capacity(batch.len());
        for (p, record) in batch.into_iter().zip(records) {
            let subject = partition_subject(
                &self.config.stream,
                partition(&p.receiver, &p.header.group_key, self.config.partitions),
            );
            let message = PublishMessage::build()
                .payload(Bytes::from(record))
                .message_id(&p.msg_id)
                .header(RECEIVER_HEADER, p.receiver.as_ref());
            match self.js.send_publish(subject, message).await {
                Ok(ack) => acks.push(ack),
                Err(e) => return Err(self.publish_error(e)),
            }
        }
        let mut published = Vec::with_capacity(acks.len());
        for ack in acks {
            match ack.await {
                Ok(ack) => published.push(Published { seq: ack.sequence, duplicate: ack.duplicate }),
                Err(e) => return Err(self.publish_error(e)),
            }
        }
        metrics::histogram!(m::NATS_PUBLISH_DURATION).record(started.elapsed().as_secs_f64());
        Ok(published)
    }

    /// Says at start when the server's `max_payload` is below `server.max_request_bytes`: a
    /// batch between the two is read, then refused with 413 (see [`SpoolError::TooLarge`]).
    pub fn warn_if_smaller_than(&self, max_request_bytes: usize) {
        let max_payload = self.client.max_payload();
        if max_payload < max_request_bytes {
            tracing::warn!(
                max_payload,
                max_request_bytes,
                "the NATS server's max_payload is below server.max_request_bytes: a notification larger than max_payload \
                 is refused with 413; raise max_payload in nats-server's configuration (at most 64 MiB) or lower \
                 server.max_request_bytes"
            );
        }
    }

    fn publish_error(&self, e: impl std::fmt::Display) -> SpoolError {
        metrics::counter!(m::NATS_ERRORS, "operation" => "publish").increment(1);
        let text = e.to_string();
        if text.contains("maximum bytes") || text.contains("resource limits") || text.contains("maximum messages") {
            SpoolError::Full(self.config.max_bytes)
        } else {
            SpoolError::Unavailable(format!("JetStream did not store the batch: {text}"))
        }
    }

    /// Remembers a pulled message until its delivery ends. False if it was already in flight here
    /// (a redelivery to the same replica): the acker is renewed and nothing is queued again.
    pub(crate) fn hold(&self, seq: u64, acker: Message) -> bool {
        let inflight = self.inflight.pin();
        let fresh = inflight.insert(seq, Inflight { acker: Arc::new(acker) }).is_none();
        metrics::gauge!(m::NATS_PARTITIONS_OWNED).set(inflight.len() as f64);
        fresh
    }

    fn release(&self, seq: u64) -> Option<Arc<Message>> {
        let inflight = self.inflight.pin();
        let acker = inflight.remove(&seq).map(|i| i.acker.clone());
        metrics::gauge!(m::NATS_PARTITIONS_OWNED).set(inflight.len() as f64);
        acker
    }

    fn send_ack(acker: Arc<Message>, kind: AckKind, operation: &'static str) {
        tokio::spawn(async move {
            if let Err(e) = acker.ack_with(kind).await {
                metrics::counter!(m::NATS_ERRORS, "operation" => operation).increment(1);
                tracing::warn!(error = %e, operation, "JetStream acknowledgement failed; the notification may be delivered again");
            }
        });
    }

    /// Delivered: acknowledge, the stream forgets it and the partition moves on.
    pub fn delivered(&self, seq: u64) {
        if let Some(acker) = self.release(seq) {
            tokio::spawn(Self::confirm_ack(acker));
        }
    }

    /// Acknowledges and waits for the server to confirm, retrying while a consumer leader is
    /// being elected: an acknowledgement lost there would mean a second delivery.
    async fn confirm_ack(message: Arc<Message>) {
        let mut last = String::new();
        for attempt in 0..5u32 {
            match message.double_ack().await {
                Ok(()) => return,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200) * (attempt + 1)).await;
        }
        metrics::counter!(m::NATS_ERRORS, "operation" => "ack").increment(1);
        tracing::warn!(error = %last, "JetStream did not confirm an acknowledgement; the notification may be delivered again");
    }

    /// An attempt failed and another follows: keep the message ours (resets `ack_wait`).
    pub fn attempted(&self, seq: u64) {
        if let Some(acker) = self.inflight.pin().get(&seq).map(|i| i.acker.clone()) {
            Self::send_ack(acker, AckKind::Progress, "progress");
        }
    }

    /// Given up: stored in the dead-letter stream first, then acknowledged. If storing fails the
    /// message is released for another try rather than lost.
    pub fn dead_letter(self: &Arc<Self>, receiver: &str, seq: u64, header: Header, body: Bytes) {
        let acker = self.release(seq);
        let backend = self.clone();
        let receiver = receiver.to_owned();
        tokio::spawn(async move {
            match backend.store_dead(&receiver, &header, &body).await {
                Ok(()) => {
                    if let Some(acker) = acker {
                        Self::confirm_ack(acker).await;
                    }
                }
                Err(e) => {
                    metrics::counter!(m::NATS_ERRORS, "operation" => "dead_letter").increment(1);
                    tracing::error!(receiver = %receiver, group_key = %header.group_key, error = %e,
                        "cannot store the dead letter in JetStream; the notification is released for another delivery");
                    if let Some(acker) = acker {
                        Self::send_ack(acker, AckKind::Nak(Some(Duration::from_secs(5))), "nak");
                    }
                }
            }
        });
    }

    /// Releases a pulled message at once (shutdown, unknown receiver): another replica takes it.
    pub(crate) fn nak(acker: Message, delay: Option<Duration>) {
        Self::send_ack(Arc::new(acker), AckKind::Nak(delay), "nak");
    }

    async fn store_dead(&self, receiver: &str, header: &Header, body: &[u8]) -> Result<(), String> {
        let message = PublishMessage::build()
            .payload(Bytes::from(record::encode(header, body)))
            .header(RECEIVER_HEADER, receiver);
        let subject = format!("{}.dead", self.config.stream);
        self.js.send_publish(subject, message).await.map_err(err)?.await.map_err(err)?;
        Ok(())
    }

    /// Puts a dead letter taken for replay back.
    pub fn return_dead_letter(self: &Arc<Self>, stored: Stored) {
        let backend = self.clone();
        tokio::spawn(async move {
            if let Err(e) = backend.store_dead(&stored.receiver, &stored.header, &stored.body).await {
                tracing::error!(receiver = %stored.receiver, error = %e, "cannot put a dead letter back in JetStream");
            }
        });
    }

    /// The dead-letter stream and its last sequence now (0 when it never held one): a listing or
    /// a replay stops there, so dead letters stored meanwhile (a replay's returns among them)
    /// wait for the next one.
    async fn dead_stream(&self) -> Result<(stream::Stream, u64), SpoolError> {
        let stream = self.js.get_stream(&self.dead_stream).await.map_err(dead_unavailable)?;
        let last = stream.cached_info().state.last_sequence;
        Ok((stream, last))
    }

    /// The dead letters in the stream and the bytes it stores for them (records and headers).
    pub async fn dead_letter_totals(&self) -> Result<(u64, u64), SpoolError> {
        let stream = self.js.get_stream(&self.dead_stream).await.map_err(dead_unavailable)?;
        let state = &stream.cached_info().state;
        Ok((state.messages, state.bytes))
    }

    /// The first dead letter at sequence `from` or after, one request (the server skips deleted
    /// sequences); `None` past the end.
    async fn next_dead(&self, stream: &stream::Stream, from: u64) -> Result<Option<StreamMessage>, SpoolError> {
        match stream.get_first_raw_message_by_subject(self.dead_subject(), from).await {
            Ok(message) => Ok(Some(message)),
            Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(dead_unavailable(e)),
        }
    }

    fn dead_subject(&self) -> String {
        format!("{}.dead", self.config.stream)
    }

    /// Up to `limit + 1` dead letters after sequence `after`, oldest first, of `receiver` (or
    /// all), headers and body sizes only ([`Spool::dead_letter_page`](super::Spool::dead_letter_page)
    /// keeps `limit` and says where the next page starts). Read one message at a time, from
    /// `after + 1` to the stream's last sequence when the page began: what it holds is the page's
    /// headers plus the one message being decoded, never the bodies of the others.
    pub async fn dead_letter_page(
        &self,
        after: u64,
        limit: usize,
        receiver: Option<&str>,
    ) -> Result<Vec<DeadEntry>, SpoolError> {
        let (stream, last) = self.dead_stream().await?;
        let mut entries = Vec::new();
        let mut from = after.saturating_add(1);
        while from <= last && entries.len() <= limit {
            let Some(message) = self.next_dead(&stream, from).await? else { break };
            let seq = message.sequence;
            if seq > last {
                break;
            }
            from = seq.saturating_add(1);
            let Some((header, bytes)) = record::header_only(&message.payload) else {
                tracing::error!(seq, "JetStream dead letter does not decode; skipped");
                continue;
            };
            let owner = header.dead.as_ref().map_or("", |d| d.receiver.as_str());
            if receiver.is_none_or(|r| r == owner) {
                entries.push(DeadEntry { seq, header, bytes });
            }
        }
        Ok(entries)
    }

    /// One dead letter's header and body, fetched by its sequence (one request); `None` if there
    /// is none (replayed, or dropped beyond `max_dead_letters`).
    pub async fn dead_letter_body(&self, seq: u64) -> Result<Option<Stored>, SpoolError> {
        let stream = self.js.get_stream_no_info(&self.dead_stream).await.map_err(dead_unavailable)?;
        let message = match stream.get_raw_message(seq).await {
            Ok(message) => message,
            Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) => return Err(dead_unavailable(e)),
        };
        let receiver = receiver_of(&message);
        match record::decode(&message.payload) {
            Some((header, body)) => Ok(Some(Stored { receiver, seq, header, body })),
            None => {
                tracing::error!(seq, "JetStream dead letter does not decode");
                Ok(None)
            }
        }
    }

    /// Removes and returns the next batch of dead letters of `receiver` (or all) for replay,
    /// oldest first, from `cursor.after + 1` to the stream's last sequence when the replay began:
    /// at most `max_bytes` of bodies (or one dead letter, whatever its size), so a replay holds
    /// `max(max_bytes, one body)` at once, never the whole stream. `next` continues it; `None`
    /// when it reached the end (or JetStream failed after this batch was taken: what was taken
    /// is replayed, the rest stays). A dead letter another replica removed first (a concurrent
    /// replay) is left to it.
    pub async fn take_dead_letters(
        &self,
        receiver: Option<&str>,
        cursor: ReplayCursor,
        max_bytes: usize,
    ) -> Result<DeadBatch, SpoolError> {
        let (stream, last) = self.dead_stream().await?;
        let until = cursor.until.unwrap_or(last);
        let mut batch = DeadBatch::default();
        let mut held = 0usize;
        let mut from = cursor.after.saturating_add(1);
        while from <= until {
            let message = match self.next_dead(&stream, from).await {
                Ok(Some(message)) if message.sequence <= until => message,
                Ok(_) => break,
                Err(e) if batch.taken.is_empty() => return Err(e),
                Err(e) => {
                    tracing::error!(error = %e, "replaying JetStream dead letters stopped; the others stay dead letters");
                    return Ok(batch);
                }
            };
            let seq = message.sequence;
            if receiver.is_some_and(|r| r != receiver_of(&message)) {
                from = seq.saturating_add(1);
                continue;
            }
            let Some((header, body)) = record::decode(&message.payload) else {
                tracing::error!(seq, "JetStream dead letter does not decode; left in the stream");
                from = seq.saturating_add(1);
                continue;
            };
            if !batch.taken.is_empty() && held + body.len() > max_bytes {
                // Not taken: the next batch starts with it.
                batch.next = Some(ReplayCursor { after: seq.saturating_sub(1), until: Some(until) });
                return Ok(batch);
            }
            from = seq.saturating_add(1);
            // Taken only if this replica removed it; otherwise another replica is replaying it.
            if let Ok(true) = stream.delete_message(seq).await {
                held += body.len();
                let receiver = receiver_of(&message);
                drop(message);
                batch.taken.push(Stored { receiver, seq, header, body });
            }
        }
        Ok(batch)
    }

    /// Keeps every held message ours while its delivery runs, and refreshes the stream gauges.
    pub(crate) async fn keep_alive(self: Arc<Self>) {
        let every = (self.config.ack_wait / 3).max(Duration::from_millis(300));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.stop.cancelled() => return,
            }
            let ackers: Vec<_> = self.inflight.pin().values().map(|i| i.acker.clone()).collect();
            for acker in ackers {
                Self::send_ack(acker, AckKind::Progress, "progress");
            }
            if self.is_connected()
                && let Err(e) = self.refresh_stats().await
            {
                tracing::debug!(error = %e, "cannot read the JetStream stream's state");
            }
        }
    }

    /// At shutdown: stop pulling, and hand back every notification not yet finished so that
    /// another replica takes it now rather than after `ack_wait`.
    pub async fn close(&self) {
        self.closing.cancel();
        self.pullers.close();
        let held: Vec<_> = {
            let inflight = self.inflight.pin();
            let held = inflight.values().map(|i| i.acker.clone()).collect();
            inflight.clear();
            held
        };
        let count = held.len();
        for acker in held {
            if let Err(e) = acker.ack_with(AckKind::Nak(None)).await {
                tracing::warn!(error = %e, "cannot hand a notification back to JetStream; it returns after ack_wait");
            }
        }
        if count > 0 {
            tracing::info!(
                notifications = count,
                "notifications in delivery handed back to JetStream for the other replicas"
            );
        }
        // The last pull requests end within their expiry; what they bring is handed back too.
        let _ = tokio::time::timeout(PULL_EXPIRES + Duration::from_secs(2), self.pullers.wait()).await;
        self.stop.cancel();
        let _ = self.client.flush().await;
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
