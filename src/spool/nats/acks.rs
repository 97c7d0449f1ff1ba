//! The notifications this replica is delivering: held until delivered, kept ours while their
//! retries run, handed back at shutdown.

use super::*;

impl Backend {
    /// Remembers a pulled message until its delivery ends. False if it was already in flight here
    /// (a redelivery to the same replica): the acker is renewed and nothing is queued again.
    pub(crate) fn hold(&self, seq: u64, acker: Message) -> bool {
        let inflight = self.inflight.pin();
        let fresh = inflight.insert(seq, Inflight { acker: Arc::new(acker) }).is_none();
        metrics::gauge!(m::NATS_PARTITIONS_OWNED).set(inflight.len() as f64);
        fresh
    }

    pub(super) fn release(&self, seq: u64) -> Option<Arc<Message>> {
        let inflight = self.inflight.pin();
        let acker = inflight.remove(&seq).map(|i| i.acker.clone());
        metrics::gauge!(m::NATS_PARTITIONS_OWNED).set(inflight.len() as f64);
        acker
    }

    pub(super) fn send_ack(acker: Arc<Message>, kind: AckKind, operation: &'static str) {
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
    pub(super) async fn confirm_ack(message: Arc<Message>) {
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

    /// Releases a pulled message at once (shutdown, unknown receiver): another replica takes it.
    pub(crate) fn nak(acker: Message, delay: Option<Duration>) {
        Self::send_ack(Arc::new(acker), AckKind::Nak(delay), "nak");
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
