//! amrelay's own metrics: every name in one place, every label bounded.
//!
//! Label values are endpoint names, receiver names (from the config), status classes and error
//! kinds — never URLs, group keys or alert labels, so cardinality is fixed by the config.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// HTTP requests served, by `handler` and `code`.
pub const HTTP_REQUESTS: &str = "amrelay_http_requests_total";
/// Time to answer an HTTP request, by `handler`.
pub const HTTP_REQUEST_DURATION: &str = "amrelay_http_request_duration_seconds";
/// Alerts in accepted and rejected webhook batches.
pub const ALERTS_RECEIVED: &str = "amrelay_alerts_received_total";
/// Batches refused, by `reason` (`decode`, `too_large`, `queue_full`, …).
pub const BATCHES_REJECTED: &str = "amrelay_batches_rejected_total";
/// How long accepted batches' answers waited for a receiver's backlog to come down (pacing;
/// only answers that waited).
pub const WEBHOOK_PACING_WAIT: &str = "amrelay_webhook_pacing_wait_duration_seconds";
/// Alerts a receiver's rule accepted, by `receiver`.
pub const ALERTS_MATCHED: &str = "amrelay_receiver_alerts_matched_total";
/// Alerts a receiver's rule (or `send_resolved: false`) left out, by `receiver`.
pub const ALERTS_FILTERED: &str = "amrelay_receiver_alerts_filtered_total";
/// Notifications queued for delivery, by `receiver`.
pub const NOTIFICATIONS_ENQUEUED: &str = "amrelay_notifications_enqueued_total";
/// Notifications delivered with a 2xx answer, by `receiver`.
pub const NOTIFICATIONS_DELIVERED: &str = "amrelay_notifications_delivered_total";
/// Notifications not sent because their receiver was muted, by `receiver` and `reason`
/// (`time_interval`, `silence`).
pub const NOTIFICATIONS_MUTED: &str = "amrelay_notifications_muted_total";
/// Muted notifications held (`on_mute: hold`) for delivery when the mute ends, by `receiver`.
pub const NOTIFICATIONS_HELD: &str = "amrelay_notifications_held";
/// Held notifications dropped because a newer one of their group came, by `receiver`.
pub const NOTIFICATIONS_HELD_SUPERSEDED: &str = "amrelay_notifications_held_superseded_total";
/// Silences by `state` (`active`, `pending`, `expired`).
pub const SILENCES: &str = "amrelay_silences";
/// Notifications given up on, by `receiver` and `reason`.
pub const NOTIFICATIONS_DEAD_LETTERED: &str = "amrelay_notifications_dead_lettered_total";
/// Delivery attempts, by `receiver` and `outcome` (`2xx`, `4xx`, `5xx`, `timeout`, `connect`, `tls`, `dns`, `other`).
pub const DELIVERY_ATTEMPTS: &str = "amrelay_delivery_attempts_total";
/// Duration of one delivery attempt, by `receiver`.
pub const DELIVERY_ATTEMPT_DURATION: &str = "amrelay_delivery_attempt_duration_seconds";
/// Time from acceptance to a 2xx answer, by `receiver`.
pub const DELIVERY_LATENCY: &str = "amrelay_delivery_latency_seconds";
/// How long notifications waited for a `rate_limit` token (those that waited), by `receiver`.
pub const RATE_LIMIT_WAIT: &str = "amrelay_rate_limit_wait_duration_seconds";
/// `thread:` sends, by `receiver` and `outcome` (`posted`, `updated`, `reposted` after the
/// message was deleted, `unreferenced` when the answer named no message, `failed`).
pub const THREAD_UPDATES: &str = "amrelay_thread_updates_total";
/// Alert groups whose message is remembered, by `receiver`.
pub const THREADS: &str = "amrelay_threads";
/// Notifications accepted and not yet delivered or dead-lettered, by `receiver`.
pub const QUEUE_DEPTH: &str = "amrelay_queue_depth";
/// The most notifications a receiver's queue holds, by `receiver`.
pub const QUEUE_CAPACITY: &str = "amrelay_queue_capacity";
/// Deliveries a receiver may have in flight now (the adaptive limit or the pinned number), by `receiver`.
pub const DELIVERY_CONCURRENCY: &str = "amrelay_delivery_concurrency";
/// 1 when the last config reload succeeded.
pub const CONFIG_LAST_RELOAD_SUCCESSFUL: &str = "amrelay_config_last_reload_successful";
/// When the config was last loaded successfully.
pub const CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP: &str = "amrelay_config_last_reload_success_timestamp_seconds";
/// Hash of the loaded config file.
pub const CONFIG_HASH: &str = "amrelay_config_hash";
/// Reload attempts, by `result`.
pub const CONFIG_RELOADS: &str = "amrelay_config_reloads_total";
/// Receiver changes made in the console, by `source` (`console`) and `action` (`create`,
/// `replace`, `delete`, `enable`, `disable`).
pub const CONFIG_CHANGES: &str = "amrelay_config_changes_total";
/// Always 1, labelled with `version`, `revision` and `rustc`.
pub const BUILD_INFO: &str = "amrelay_build_info";
/// Receivers configured with `insecure_skip_verify: true`.
pub const TLS_INSECURE_RECEIVERS: &str = "amrelay_tls_insecure_skip_verify_receivers";
/// `{receiver,tenant,source}` = 1 per configured receiver (tenant `""`: global): join on it in
/// PromQL rather than labelling every series with the tenant.
pub const RECEIVER_INFO: &str = "amrelay_receiver_info";
/// Requests refused for missing or wrong credentials, by `reason` (`missing`, `invalid`).
pub const AUTH_FAILURES: &str = "amrelay_http_auth_failures_total";
/// Inbound connections closed early, by `reason` (`max_connections`, `tls`, `timeout`, `malformed`, `other`).
pub const CONNECTION_ERRORS: &str = "amrelay_connection_errors_total";
/// Inbound connections open now.
pub const CONNECTIONS_OPEN: &str = "amrelay_connections_open";

/// `server.limits.max_memory_bytes`: bytes held for callers, by `state` (`used`, `limit`, `peak`).
pub const MEMORY_BUDGET_BYTES: &str = "amrelay_memory_budget_bytes";
/// `delivery.spool.memory_window_bytes`: spooled bodies held in memory, by `state` (`used`,
/// `limit`, `peak`).
pub const SPOOL_MEMORY_WINDOW_BYTES: &str = "amrelay_spool_memory_window_bytes";
/// Dead letters kept (spool file or memory).
pub const DEAD_LETTERS: &str = "amrelay_dead_letters";
/// Body bytes of the dead letters kept, against `delivery.max_dead_letter_bytes`.
pub const DEAD_LETTER_BYTES: &str = "amrelay_dead_letter_bytes";
/// Notification history records kept (`history:`).
pub const HISTORY_RECORDS: &str = "amrelay_history_records";
/// Bytes of the history records kept, against `history.max_bytes`.
pub const HISTORY_BYTES: &str = "amrelay_history_bytes";
/// History records posted to `history.export`.
pub const HISTORY_EXPORTED: &str = "amrelay_history_exported_total";
/// History records not kept, by reason (`behind`: the store fell behind; `error`: it failed).
pub const HISTORY_DROPPED: &str = "amrelay_history_dropped_total";
/// Bytes of pending notifications in the spool.
pub const SPOOL_BYTES: &str = "amrelay_spool_bytes";
/// `delivery.spool.max_bytes`.
pub const SPOOL_MAX_BYTES: &str = "amrelay_spool_max_bytes";
/// 1 while the spool can persist, 0 after a failed write until one succeeds.
pub const SPOOL_HEALTHY: &str = "amrelay_spool_healthy";
/// Spool transactions committed, by `durable`.
pub const SPOOL_COMMITS: &str = "amrelay_spool_commits_total";
/// Time to apply and commit one spool transaction.
pub const SPOOL_COMMIT_DURATION: &str = "amrelay_spool_commit_duration_seconds";
/// Operations sharing one spool commit (group commit at work when above 1).
pub const SPOOL_COMMIT_OPERATIONS: &str = "amrelay_spool_commit_operations";
/// Failed spool transactions.
pub const SPOOL_ERRORS: &str = "amrelay_spool_errors_total";
/// Notifications dropped as duplicates within `delivery.dedup_window`, by `receiver`.
pub const NOTIFICATIONS_DEDUPLICATED: &str = "amrelay_notifications_deduplicated_total";
/// Notifications restored from the spool at start, by `receiver`.
pub const NOTIFICATIONS_RESTORED: &str = "amrelay_notifications_restored_total";
/// Dead letters sent again through `/api/v1/deadletters/replay`, by `receiver`.
pub const DEAD_LETTERS_REPLAYED: &str = "amrelay_dead_letters_replayed_total";

/// NATS JetStream (`delivery.nats`): time to publish a batch and have every message acknowledged.
pub const NATS_PUBLISH_DURATION: &str = "amrelay_nats_publish_duration_seconds";
/// NATS JetStream: 1 while connected to a NATS server.
pub const NATS_CONNECTED: &str = "amrelay_nats_connected";
/// NATS JetStream: notifications in the shared stream not yet delivered or dead-lettered (all replicas).
pub const NATS_PENDING: &str = "amrelay_nats_pending_notifications";
/// NATS JetStream: bytes in the shared stream.
pub const NATS_STREAM_BYTES: &str = "amrelay_nats_stream_bytes";
/// NATS JetStream: notifications taken over after another delivery of them was not acknowledged, by `receiver`.
pub const NATS_REDELIVERED: &str = "amrelay_nats_redelivered_total";
/// NATS JetStream: delivery partitions.
pub const NATS_PARTITIONS: &str = "amrelay_nats_partitions";
/// NATS JetStream: partitions whose notification this replica is delivering now.
pub const NATS_PARTITIONS_OWNED: &str = "amrelay_nats_partitions_owned";
/// NATS JetStream: failed operations, by `operation` (`publish`, `ack`, `dead_letter`, `pull`,
/// `history`).
pub const NATS_ERRORS: &str = "amrelay_nats_errors_total";

/// Buckets for request and attempt durations: 0.5 ms to 30 s.
const DURATION_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0];
/// Buckets for end-to-end latency, which includes retries: 1 ms to 1 h.
const LATENCY_BUCKETS: [f64; 14] =
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// Process CPU, memory, file descriptors and start time (`process_*`), read at each scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector = metrics_process::Collector::default();
        collector.describe();
        collector
    })
}

/// Renders the scrape, refreshing the process metrics first.
pub fn render(handle: &PrometheusHandle) -> String {
    process_collector().collect();
    handle.render()
}

/// Buckets for operations per spool commit.
const OPERATION_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 256.0, 1024.0];

/// Installs the process-wide recorder once and returns the handle that renders `/metrics`.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(DELIVERY_LATENCY.into()), &LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), &DURATION_BUCKETS))
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(SPOOL_COMMIT_OPERATIONS.into()), &OPERATION_BUCKETS)
                })
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); ours still renders.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            process_collector();
            metrics::gauge!(
                BUILD_INFO,
                "version" => env!("CARGO_PKG_VERSION"),
                "revision" => option_env!("AMRELAY_REVISION").unwrap_or("unknown"),
                "rustc" => env!("AMRELAY_RUSTC_VERSION"),
            )
            .set(1.0);
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests served, by handler and status code.");
    describe_counter!(
        CONFIG_CHANGES,
        "Receiver changes made in the console, by source, action and tenant (empty: global)."
    );
    describe_histogram!(HTTP_REQUEST_DURATION, Unit::Seconds, "Time to answer an HTTP request, by handler.");
    describe_counter!(ALERTS_RECEIVED, "Alerts received in webhook batches.");
    describe_gauge!(
        MEMORY_BUDGET_BYTES,
        Unit::Bytes,
        "The process byte budget (server.limits.max_memory_bytes): used, limit and peak."
    );
    describe_gauge!(
        SPOOL_MEMORY_WINDOW_BYTES,
        Unit::Bytes,
        "Spooled notification bodies held in memory (delivery.spool.memory_window_bytes): used, limit and peak."
    );
    describe_gauge!(DEAD_LETTERS, "Dead letters kept.");
    describe_counter!(
        NOTIFICATIONS_MUTED,
        "Notifications not sent because their receiver was muted, by receiver and reason."
    );
    describe_gauge!(NOTIFICATIONS_HELD, "Muted notifications held for delivery when the mute ends, by receiver.");
    describe_counter!(
        NOTIFICATIONS_HELD_SUPERSEDED,
        "Held notifications dropped because a newer one of their group came, by receiver."
    );
    describe_gauge!(SILENCES, "Silences by state.");
    describe_gauge!(DEAD_LETTER_BYTES, Unit::Bytes, "Body bytes of the dead letters kept.");
    describe_gauge!(HISTORY_RECORDS, "Notification history records kept.");
    describe_gauge!(HISTORY_BYTES, Unit::Bytes, "Bytes of the notification history records kept (history.max_bytes).");
    describe_counter!(
        HISTORY_DROPPED,
        "Notification history records not kept or not exported, by reason (behind, error, export_behind, export_refused)."
    );
    describe_counter!(HISTORY_EXPORTED, "Notification history records posted to history.export.");
    describe_counter!(BATCHES_REJECTED, "Webhook batches refused, by reason.");
    describe_counter!(ALERTS_MATCHED, "Alerts a receiver's conditions accepted.");
    describe_counter!(ALERTS_FILTERED, "Alerts a receiver's conditions left out.");
    describe_counter!(NOTIFICATIONS_ENQUEUED, "Notifications queued for delivery.");
    describe_counter!(NOTIFICATIONS_DELIVERED, "Notifications delivered with a 2xx answer.");
    describe_counter!(NOTIFICATIONS_DEAD_LETTERED, "Notifications given up on, by reason.");
    describe_counter!(DELIVERY_ATTEMPTS, "Delivery attempts, by outcome (status class or error kind).");
    describe_counter!(THREAD_UPDATES, "Threaded sends (one message per alert group), by outcome.");
    describe_gauge!(THREADS, "Alert groups whose message is remembered for thread:.");
    describe_histogram!(
        WEBHOOK_PACING_WAIT,
        Unit::Seconds,
        "Time an accepted batch's answer waited for a receiver's backlog to come down (pacing)."
    );
    describe_histogram!(RATE_LIMIT_WAIT, Unit::Seconds, "Time a notification waited for a rate_limit token.");
    describe_histogram!(DELIVERY_ATTEMPT_DURATION, Unit::Seconds, "Duration of one delivery attempt.");
    describe_histogram!(DELIVERY_LATENCY, Unit::Seconds, "Time from acceptance to successful delivery.");
    describe_gauge!(QUEUE_DEPTH, "Notifications accepted and not yet delivered or dead-lettered.");
    describe_gauge!(QUEUE_CAPACITY, "The most notifications a receiver's queue holds.");
    describe_gauge!(
        DELIVERY_CONCURRENCY,
        "Deliveries a receiver may have in flight now: the adaptive limit or the pinned number."
    );
    describe_gauge!(CONFIG_LAST_RELOAD_SUCCESSFUL, "Whether the last configuration reload attempt was successful.");
    describe_gauge!(
        CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP,
        Unit::Seconds,
        "Timestamp of the last successful configuration reload."
    );
    describe_gauge!(CONFIG_HASH, "Hash of the currently loaded configuration file.");
    describe_counter!(CONFIG_RELOADS, "Configuration reload attempts, by result.");
    describe_gauge!(BUILD_INFO, "A metric with a constant '1' value labeled by version, revision and rustc version.");
    describe_gauge!(SPOOL_BYTES, Unit::Bytes, "Bytes of pending notifications in the spool.");
    describe_gauge!(SPOOL_MAX_BYTES, Unit::Bytes, "The most bytes of pending notifications the spool holds.");
    describe_gauge!(SPOOL_HEALTHY, "1 while the spool can persist, 0 after a failed write.");
    describe_counter!(SPOOL_COMMITS, "Spool transactions committed, by durability.");
    describe_histogram!(SPOOL_COMMIT_DURATION, Unit::Seconds, "Time to apply and commit one spool transaction.");
    describe_histogram!(SPOOL_COMMIT_OPERATIONS, "Operations sharing one spool commit.");
    describe_counter!(SPOOL_ERRORS, "Failed spool transactions.");
    describe_counter!(NOTIFICATIONS_DEDUPLICATED, "Notifications dropped as duplicates within the dedup window.");
    describe_counter!(NOTIFICATIONS_RESTORED, "Notifications restored from the spool at start.");
    describe_counter!(DEAD_LETTERS_REPLAYED, "Dead letters sent again by a replay.");
    describe_gauge!(TLS_INSECURE_RECEIVERS, "Receivers whose TLS certificate verification is disabled.");
    describe_gauge!(
        RECEIVER_INFO,
        "1 per configured receiver, with its tenant (empty: global) and source (file, console)."
    );
    describe_counter!(AUTH_FAILURES, "Requests refused for missing or wrong credentials, by reason.");
    describe_counter!(CONNECTION_ERRORS, "Inbound connections closed early, by reason.");
    describe_gauge!(CONNECTIONS_OPEN, "Inbound connections open now.");
    describe_histogram!(
        NATS_PUBLISH_DURATION,
        Unit::Seconds,
        "Time to publish a batch to JetStream, all acknowledged."
    );
    describe_gauge!(NATS_CONNECTED, "1 while connected to a NATS server.");
    describe_gauge!(NATS_PENDING, "Notifications in the shared JetStream stream, not yet delivered.");
    describe_gauge!(NATS_STREAM_BYTES, Unit::Bytes, "Bytes in the shared JetStream stream.");
    describe_counter!(NATS_REDELIVERED, "Notifications taken over after an unacknowledged delivery.");
    describe_gauge!(NATS_PARTITIONS, "Delivery partitions of the shared JetStream stream.");
    describe_gauge!(NATS_PARTITIONS_OWNED, "Partitions whose notification this replica is delivering now.");
    describe_counter!(NATS_ERRORS, "Failed JetStream operations, by operation.");
}
