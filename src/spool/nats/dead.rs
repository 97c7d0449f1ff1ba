//! Dead letters in the `<stream>_DEAD` stream: listed, read and replayed one message at a time.

use super::*;

impl Backend {
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
}
