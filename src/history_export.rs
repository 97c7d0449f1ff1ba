//! `history.export`: every history record is also posted to an outside sink, in JSON batches, as
//! notification-manager's history webhook and Alertmanager's `event_recorder` webhook outputs do,
//! for those who keep history elsewhere.
//!
//! A record is handed over without waiting (a bounded buffer, [`buffer_size`] records; beyond it
//! new records are dropped and counted in `amrelay_history_dropped_total{reason="export_behind"}`),
//! so exporting never slows delivery. A batch is posted when it holds `batch_max_events` records
//! or its first record has waited `flush_interval`, as
//! `{"version": "1", "records": [...]}` with an `Idempotency-Key` of its records' ids, through the
//! endpoint's auth and TLS like a receiver's. A batch the sink does not take is retried, with the
//! endpoint's backoff, until it does — at least once — unless the answer is final (a 4xx other
//! than 408/429: dropped, counted `reason="export_refused"`, logged). What is in the buffer when
//! the process ends is not posted; the records stay in amrelay's own history.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::history::HistoryExport;
use crate::deliver::{Target, delay};
use crate::history::Record;
use crate::metrics as m;

/// Records waiting for export at most: ten batches, within 10,000.
pub fn buffer_size(export: &HistoryExport) -> usize {
    (export.batch_max_events * 10).clamp(100, 10_000)
}

/// Starts the exporter; returns where records go in.
pub fn start(export: &HistoryExport) -> Result<mpsc::Sender<Record>, String> {
    let client_config = crate::tls::ClientConfigs::new()
        .get(&export.endpoint.tls.client)
        .map_err(|e| format!("history.export: {e}"))?;
    let target = Target::new(&export.endpoint, None, &client_config);
    let (tx, rx) = mpsc::channel(buffer_size(export));
    metrics::counter!(m::HISTORY_EXPORTED).increment(0);
    for reason in ["export_behind", "export_refused"] {
        metrics::counter!(m::HISTORY_DROPPED, "reason" => reason).increment(0);
    }
    tokio::spawn(run(rx, target, export.batch_max_events, export.flush_interval));
    Ok(tx)
}

async fn run(mut records: mpsc::Receiver<Record>, target: Target, max: usize, flush_interval: Duration) {
    while let Some(first) = records.recv().await {
        let deadline = tokio::time::Instant::now() + flush_interval;
        let mut batch = vec![first];
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, records.recv()).await {
                Ok(Some(record)) => batch.push(record),
                Ok(None) | Err(_) => break,
            }
        }
        post(&target, &batch).await;
    }
}

/// Posts one batch until the sink takes it (or refuses it for good).
async fn post(target: &Target, batch: &[Record]) {
    let body = Bytes::from(
        serde_json::to_vec(&serde_json::json!({"version": "1", "records": batch})).expect("records serialize"),
    );
    let ids: String = batch.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join("\n");
    let key = format!("{:016x}", crate::fnv1a(ids.as_bytes()));
    let mut attempt = 0;
    loop {
        match target.send(body.clone(), Some(&key)).await {
            Ok(_) => {
                metrics::counter!(m::HISTORY_EXPORTED).increment(batch.len() as u64);
                return;
            }
            Err(failure) if !failure.is_retryable() => {
                metrics::counter!(m::HISTORY_DROPPED, "reason" => "export_refused").increment(batch.len() as u64);
                tracing::error!(records = batch.len(), error = %failure, "history export refused a batch; it is dropped");
                return;
            }
            Err(failure) => {
                attempt += 1;
                let wait = delay(&target.retry, attempt, failure.retry_after);
                tracing::warn!(records = batch.len(), attempt, error = %failure,
                    retry_in = %crate::config::duration::format(wait), "history export failed, will retry");
                tokio::time::sleep(wait).await;
            }
        }
    }
}
