//! Dead letters: listing them and sending them again.
//!
//! A replayed dead letter is accepted anew — written to the spool as a pending notification with
//! a fresh retry budget and queued at its receiver — keeping its idempotency key, so a downstream
//! that did get it after all can drop the duplicate. One whose receiver is gone from the config
//! or whose queue is full stays a dead letter.

use serde::Serialize;

use crate::accept::{self, Offer};
use crate::deliver::Outbound;
use crate::snapshot::Snapshot;
use crate::spool::{ReplayCursor, Spool, SpoolError, Stored};

/// A dead letter as the API lists it: its header and body size, no body, no secrets.
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
    /// The body's size: fetch it with `GET /api/v1/deadletters/body?seq=…`.
    pub bytes: usize,
}

/// The most dead letters one page lists (and the default).
pub const MAX_PAGE: usize = 1000;

/// A page of the listing: headers, totals, and where the next page starts.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub data: Vec<DeadLetterView>,
    /// Dead letters kept, and their body bytes (all receivers; with `delivery.nats`, the bytes
    /// JetStream stores for them, headers included).
    pub total: u64,
    pub bytes: u64,
    /// Pass as `after=` for the next page; `null` on the last one.
    pub next_after: Option<u64>,
}

/// Up to `limit` (at most [`MAX_PAGE`]) dead letters after sequence `after`, oldest first, of
/// `receiver` (or all), without their bodies.
pub async fn list(spool: &Spool, after: u64, limit: usize, receiver: Option<&str>) -> Result<Listing, SpoolError> {
    let page = spool.dead_letter_page(after, limit.clamp(1, MAX_PAGE), receiver).await?;
    let data = page.entries.into_iter().map(|entry| view(entry.seq, entry.header, entry.bytes)).collect();
    let (total, bytes) = match spool.backend() {
        Some(shared) => shared.dead_letter_totals().await?,
        None => spool.dead_letter_totals(),
    };
    Ok(Listing { data, total, bytes, next_after: page.next_after })
}

fn view(seq: u64, header: crate::spool::Header, bytes: usize) -> DeadLetterView {
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
        bytes,
    }
}

/// One dead letter's body, as it was to be sent; `None` if there is no such dead letter.
pub async fn body(spool: &Spool, seq: u64) -> Result<Option<bytes::Bytes>, SpoolError> {
    Ok(spool.dead_letter_body(seq).await?.map(|stored| stored.body))
}

/// What a replay did.
#[derive(Debug, Default, Serialize)]
pub struct Replayed {
    pub replayed: usize,
    /// Left as dead letters: receiver unknown, queue full, or the spool refused.
    pub skipped: usize,
}

/// Replays the dead letters of `receiver` (or all) into the current receivers' queues, each
/// through the same acceptance as a new notification (queue place, spool, push).
pub async fn replay(spool: &Spool, snapshot: &Snapshot, receiver: Option<&str>) -> Result<Replayed, SpoolError> {
    let mut outcome = Replayed::default();
    let mut cursor = ReplayCursor::default();
    loop {
        let batch = spool.take_dead_letters(receiver, cursor).await?;
        let bytes: usize = batch.taken.iter().map(|s| s.body.len()).sum();
        tracing::info!(
            dead_letters = batch.taken.len(),
            bytes,
            more = batch.next.is_some(),
            "dead letters taken for replay"
        );
        replay_batch(spool, snapshot, batch.taken, &mut outcome).await;
        match batch.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    Ok(outcome)
}

/// Offers one batch of taken dead letters (all of them for a spool file or memory mode, at most
/// `REPLAY_BATCH_BYTES` of bodies for the shared queue).
async fn replay_batch(spool: &Spool, snapshot: &Snapshot, taken: Vec<Stored>, outcome: &mut Replayed) {
    // Held in memory until each is offered: counted while waiting, and given back just before
    // acceptance charges it again as a queued body.
    let held: Vec<_> = taken.iter().map(|s| spool.budget().charge(s.body.len() as u64)).collect();
    for (stored, waiting) in taken.into_iter().zip(held) {
        drop(waiting);
        let Some(active) = snapshot.receiver(&stored.receiver) else {
            outcome.skipped += 1;
            spool.return_dead_letter(stored);
            continue;
        };
        let (seq, header, body) = (stored.seq, stored.header.clone(), stored.body.clone());
        let offer = Offer { pipeline: &active.pipeline, outbound: Outbound::replayed(stored), dedup_key: None };
        match accept::accept(vec![offer], spool, None).await {
            Ok(_) => {
                let name = &active.config.name;
                metrics::counter!(crate::metrics::DEAD_LETTERS_REPLAYED, "receiver" => name.clone()).increment(1);
                tracing::info!(receiver = %name, group_key = %header.group_key, id = %header.id, "dead letter replayed");
                outcome.replayed += 1;
            }
            Err(_) => {
                // Queue full or spool refused: it stays a dead letter, as it was.
                outcome.skipped += 1;
                let receiver = active.config.name.clone();
                spool.return_dead_letter(Stored { receiver, seq, header, body });
            }
        }
    }
}
