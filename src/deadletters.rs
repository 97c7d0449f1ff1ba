//! Dead letters: listing them and sending them again.
//!
//! A replayed dead letter is accepted anew — written to the spool as a pending notification with
//! a fresh retry budget and queued at its receiver — keeping its idempotency key, so a downstream
//! that did get it after all can drop the duplicate. One whose receiver is gone from the config
//! or whose queue is full stays a dead letter.

use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::queue::Queued;
use crate::snapshot::Snapshot;
use crate::spool::{NewRecord, Spool, SpoolError, unix_ms};

/// A dead letter as the API shows it: no body, no secrets.
#[derive(Debug, Serialize)]
pub struct DeadLetterView {
    pub seq: u64,
    pub receiver: String,
    #[serde(rename = "groupKey")]
    pub group_key: String,
    pub id: String,
    pub alerts: usize,
    pub attempts: u32,
    pub reason: String,
    pub last_error: String,
    /// When it was dead-lettered, seconds since the Unix epoch.
    pub time: f64,
}

/// Every dead letter, oldest first.
pub async fn list(spool: &Spool) -> Result<Vec<DeadLetterView>, SpoolError> {
    Ok(spool
        .dead_letters()
        .await?
        .into_iter()
        .map(|(seq, header)| {
            let dead = header.dead.unwrap_or_else(|| crate::spool::DeadInfo {
                receiver: String::new(),
                reason: String::new(),
                error: String::new(),
                at_unix_ms: 0,
            });
            DeadLetterView {
                seq,
                receiver: dead.receiver,
                group_key: header.group_key,
                id: header.id,
                alerts: header.alerts,
                attempts: header.attempts,
                reason: dead.reason,
                last_error: dead.error,
                time: dead.at_unix_ms as f64 / 1000.0,
            }
        })
        .collect())
}

/// What a replay did.
#[derive(Debug, Default, Serialize)]
pub struct Replayed {
    pub replayed: usize,
    /// Left as dead letters: receiver unknown, queue full, or the spool refused.
    pub skipped: usize,
}

/// Replays the dead letters of `receiver` (or all) into the current receivers' queues.
pub async fn replay(spool: &Spool, snapshot: &Snapshot, receiver: Option<&str>) -> Result<Replayed, SpoolError> {
    let mut outcome = Replayed::default();
    for stored in spool.take_dead_letters(receiver).await? {
        let Some(active) = snapshot.receiver(&stored.receiver) else {
            outcome.skipped += 1;
            spool.return_dead_letter(stored);
            continue;
        };
        let Some(slot) = active.pipeline.reserve() else {
            outcome.skipped += 1;
            spool.return_dead_letter(stored);
            continue;
        };
        let mut header = stored.header.clone();
        header.dead = None;
        header.attempts = 0;
        header.accepted_unix_ms = unix_ms(SystemTime::now());
        let name = active.pipeline.shared().name.clone();
        let record = NewRecord { receiver: name.clone(), header: header.clone(), body: stored.body.clone() };
        match spool.append(vec![record], 1).await {
            Ok(seqs) => {
                metrics::counter!(crate::metrics::DEAD_LETTERS_REPLAYED, "receiver" => name.to_string()).increment(1);
                tracing::info!(receiver = %name, group_key = %header.group_key, id = %header.id, "dead letter replayed");
                active.pipeline.push(Queued {
                    id: header.id,
                    seq: seqs[0],
                    group_key: header.group_key.into(),
                    body: stored.body,
                    alerts: header.alerts,
                    accepted_at: Instant::now(),
                    accepted_unix_ms: header.accepted_unix_ms,
                    attempts: 0,
                    slot,
                });
                outcome.replayed += 1;
            }
            Err(_) => {
                outcome.skipped += 1;
                spool.return_dead_letter(stored);
            }
        }
    }
    Ok(outcome)
}
