//! The streams and partition consumers this backend needs, as JetStream configurations;
//! [`super::provision`] makes them.

use super::*;

impl Backend {
    /// Creates the streams and the partition consumers, or updates them to the config, trying
    /// again with a growing pause for as long as it takes (servers busy with other replicas'
    /// requests, or electing); `Err` only for a conflict no wait resolves (see [`provision`]).
    /// The relay is alive and not ready meanwhile.
    pub async fn provision(&self) -> Result<(), String> {
        let started = Instant::now();
        let wanted = provision::Wanted {
            streams: vec![
                self.work_stream_config(),
                self.dead_stream_config(),
                history::stream_config(&self.config, &self.history.config()),
            ],
            consumers: (0..self.config.partitions).map(|p| self.consumer_config(p)).collect(),
        };
        let changed = provision::provision(&self.js, &wanted).await?;
        self.history.provisioned.store(true, std::sync::atomic::Ordering::Relaxed);
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
}
