//! Acceptance: a batch's notifications published to the work stream, stored whole or not at all.

use super::*;

impl Backend {
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
