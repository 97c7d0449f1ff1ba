//! Shared delivery (`delivery.nats`): every replica pulls from every partition of the JetStream
//! queue and hands what it pulls to the receiver's local pipeline through a [`Sink`] the
//! application gives it (so the store knows nothing of pipelines or configs); the [`Backend`]
//! acknowledges it when the delivery ends.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use futures_util::StreamExt;

use super::{Backend, PULL_EXPIRES, RECEIVER_HEADER, consumer_name};
use crate::metrics as m;
use crate::spool::Stored;
use crate::spool::record::{self, DeadInfo, Header};

/// Where the consumer hands what it pulls: the application, over its current config.
pub trait Sink: Send + Sync {
    /// The queue of `receiver` in the current config (the notification is handed to it once the
    /// backend holds the message), or `None` when this replica has no such receiver.
    fn queue(&self, receiver: &str) -> Option<Box<dyn FnOnce(Stored) + Send>>;
    /// The dead letter of a notification whose receiver is gone, counted as the application
    /// counts every dead letter.
    fn receiver_removed(&self, receiver: &str, header: &Header, body: &[u8]) -> DeadInfo;
}

/// The application's [`Sink`], shared by every partition's puller.
pub type Sinks = Arc<dyn Sink>;

/// A message for a receiver this replica does not know is handed back this many times (another
/// replica, or this one after a reload, may know it) before it becomes a dead letter.
const UNKNOWN_RECEIVER_DELIVERIES: i64 = 5;
const UNKNOWN_RECEIVER_DELAY: Duration = Duration::from_secs(5);

/// Starts pulling every partition, the keep-alive, and reading the shared history. Runs until [`Backend::close`].
pub fn start(backend: Arc<Backend>, sink: Sinks) {
    tokio::spawn(backend.clone().keep_alive());
    tokio::spawn(backend.clone().read_history());
    for partition in 0..backend.config().partitions {
        backend.pullers.spawn(pull(backend.clone(), sink.clone(), partition));
    }
}

async fn pull(backend: Arc<Backend>, sink: Sinks, partition: u32) {
    let mut backoff = Duration::from_millis(250);
    while !backend.closing.is_cancelled() {
        match pull_until_error(&backend, &sink, partition).await {
            Ok(()) => return,
            Err(e) => {
                metrics::counter!(m::NATS_ERRORS, "operation" => "pull").increment(1);
                // Every partition says the same when NATS is away: log once per partition at debug.
                tracing::debug!(partition, error = %e, "pulling from JetStream failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = backend.closing.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Pulls one message per request (so the partition's work rotates between replicas) until the
/// backend closes (`Ok`) or an error. A request is never abandoned: at shutdown the last one
/// runs to its end (at most [`PULL_EXPIRES`]) and whatever it brings is handed back at once, so
/// the server never waits `ack_wait` for a message sent to a replica that stopped reading.
async fn pull_until_error(backend: &Arc<Backend>, sink: &Sinks, partition: u32) -> Result<(), String> {
    let consumer: PullConsumer = backend
        .jetstream()
        .get_consumer_from_stream(consumer_name(partition), &backend.config().stream)
        .await
        .map_err(|e| e.to_string())?;
    while !backend.closing.is_cancelled() {
        let mut batch =
            consumer.batch().max_messages(1).expires(PULL_EXPIRES).messages().await.map_err(|e| e.to_string())?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| e.to_string())?;
            if backend.closing.is_cancelled() {
                Backend::nak(message, None);
            } else {
                take(backend, sink, message);
            }
        }
    }
    Ok(())
}

/// Hands a pulled message to its receiver's pipeline.
fn take(backend: &Arc<Backend>, sink: &Sinks, message: async_nats::jetstream::Message) {
    let (seq, delivered) = match message.info() {
        Ok(info) => (info.stream_sequence, info.delivered),
        Err(e) => {
            tracing::error!(error = %e, "JetStream message without delivery metadata; ignored");
            return;
        }
    };
    let receiver = message.headers.as_ref().and_then(|h| h.get(RECEIVER_HEADER)).map(|v| v.as_str().to_owned());
    let payload = message.payload.clone();
    let acker = message;
    let (Some(receiver), Some((header, body))) = (receiver, record::decode(&payload)) else {
        tracing::error!(seq, "JetStream message is not an amrelay notification; terminated");
        tokio::spawn(async move {
            let _ = acker.ack_with(async_nats::jetstream::AckKind::Term).await;
        });
        return;
    };
    if delivered > 1 {
        metrics::counter!(m::NATS_REDELIVERED, "receiver" => receiver.clone()).increment(1);
        tracing::info!(receiver = %receiver, group_key = %header.group_key, seq, delivered,
            "taking over a notification whose earlier delivery was not acknowledged");
    }
    let Some(queue) = sink.queue(&receiver) else {
        if delivered < UNKNOWN_RECEIVER_DELIVERIES {
            tracing::warn!(receiver = %receiver, seq, "notification for a receiver not in this replica's config; handed back");
            Backend::nak(acker, Some(UNKNOWN_RECEIVER_DELAY));
        } else {
            tracing::error!(receiver = %receiver, group_key = %header.group_key,
                "notification for a receiver no longer configured; dead-lettered");
            let mut header = header;
            header.dead = Some(sink.receiver_removed(&receiver, &header, &body));
            backend.hold(seq, acker);
            backend.dead_letter(&receiver, seq, header, body);
        }
        return;
    };
    if backend.hold(seq, acker) {
        queue(Stored { receiver, seq, header, body });
    }
}
