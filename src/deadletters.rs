//! Dead letters: listing them and sending them again.
//!
//! A replayed dead letter is accepted anew — written to the spool as a pending notification with
//! a fresh retry budget and queued at its receiver — keeping its idempotency key, so a downstream
//! that did get it after all can drop the duplicate. One whose receiver is gone from the config
//! or whose queue is full stays a dead letter.
//!
//! **A replay goes where the dead letter was meant to go.** Each dead letter records its
//! receiver's destination identity (a keyed hash of the resolved URL and preset, never the URL:
//! see [`crate::spool::Spool::destination_identity`]). When a receiver of that name now sends
//! elsewhere — it was removed and re-created, or its URL changed — or the identity was not
//! recorded, the replay is refused (`409`, naming the receivers and what changed) unless it is
//! forced: alerts are not sent to a destination nobody chose for them. The shared queue's
//! replicas share no key, so there dead letters are replayed without the check.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::accept::{self, Offer};
use crate::deliver::Outbound;
use crate::queue::Shared;
use crate::snapshot::{ActiveReceiver, Snapshot};
use crate::spool::{DeadInfo, ReplayCursor, Spool, SpoolError, Stored};

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
    /// Where its receiver sends now, against where it was recorded for: `same`, `changed` or
    /// `unknown` (not recorded) — a replay of `changed` or `unknown` needs `force=true`; `null`
    /// when no receiver has its name or the shared queue records no destinations.
    pub destination: Option<&'static str>,
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
/// `receiver` (or all), without their bodies; each says whether its receiver in `snapshot` still
/// sends where it was recorded for.
///
/// Only those of receivers `seen` accepts are listed (a viewer's tenants'): a page may then hold
/// fewer than `limit`, `next_after` still continues it, and `total` and `bytes` count the page.
pub async fn list(
    spool: &Spool,
    snapshot: &Snapshot,
    after: u64,
    limit: usize,
    receiver: Option<&str>,
    seen: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Listing, SpoolError> {
    let page = spool.dead_letter_page(after, limit.clamp(1, MAX_PAGE), receiver).await?;
    let all = page.entries.len();
    let data: Vec<DeadLetterView> = page
        .entries
        .into_iter()
        .filter(|entry| entry.header.dead.as_ref().is_some_and(|d| seen(&d.receiver)))
        .map(|entry| {
            let destination = entry
                .header
                .dead
                .as_ref()
                .and_then(|d| snapshot.receiver(&d.receiver))
                .and_then(|active| compare(active, entry.header.dead.as_ref()))
                .map(Destination::as_str);
            view(entry.seq, entry.header, entry.bytes, destination)
        })
        .collect();
    let (total, bytes) = if data.len() == all {
        spool.dead_letter_totals().await?
    } else {
        (data.len() as u64, data.iter().map(|d| d.bytes as u64).sum())
    };
    Ok(Listing { data, total, bytes, next_after: page.next_after })
}

fn view(seq: u64, header: crate::spool::Header, bytes: usize, destination: Option<&'static str>) -> DeadLetterView {
    let dead = header.dead.unwrap_or_else(|| crate::spool::DeadInfo {
        receiver: String::new(),
        reason: String::new(),
        error: String::new(),
        at_unix_ms: 0,
        destination: None,
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
        destination,
    }
}

/// One dead letter's receiver and body, as it was to be sent; `None` if there is no such dead
/// letter.
pub async fn body(spool: &Spool, seq: u64) -> Result<Option<(String, bytes::Bytes)>, SpoolError> {
    Ok(spool.dead_letter_body(seq).await?.map(|stored| (stored.receiver, stored.body)))
}

/// Why a replay was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Nothing was replayed: some receivers' destinations are not the ones their dead letters
    /// were recorded for (the words say which; no URL, no secret).
    #[error("{0}")]
    DestinationChanged(String),
}

/// How a dead letter's recorded destination compares with its receiver's now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    Same,
    Changed,
    Unknown,
}

impl Destination {
    fn as_str(self) -> &'static str {
        match self {
            Destination::Same => "same",
            Destination::Changed => "changed",
            Destination::Unknown => "unknown",
        }
    }
}

/// `None` when the store records no identities (the shared queue: its replicas share no key).
fn compare(active: &ActiveReceiver, dead: Option<&DeadInfo>) -> Option<Destination> {
    let now = crate::deliver::destination_identity(active.pipeline.downstream())?;
    Some(match dead.and_then(|d| d.destination.as_deref()) {
        Some(then) if then == now => Destination::Same,
        Some(_) => Destination::Changed,
        None => Destination::Unknown,
    })
}

/// Refuses the replay if a dead letter it would take is bound for a receiver whose destination
/// is not the one recorded (or was not recorded), saying which receivers and how many.
async fn check_destinations(spool: &Spool, snapshot: &Snapshot, receiver: Option<&str>) -> Result<(), ReplayError> {
    if !spool.records_destinations() {
        return Ok(());
    }
    // Receiver → (changed, unknown).
    let mut found: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = spool.dead_letter_page(after, MAX_PAGE, receiver).await?;
        for entry in &page.entries {
            let dead = entry.header.dead.as_ref();
            // A dead letter of an unknown receiver is not replayed anyway.
            let Some(active) = dead.and_then(|d| snapshot.receiver(&d.receiver)) else { continue };
            match compare(active, dead) {
                Some(Destination::Same) | None => {}
                Some(Destination::Changed) => found.entry(active.config.name.clone()).or_default().0 += 1,
                Some(Destination::Unknown) => found.entry(active.config.name.clone()).or_default().1 += 1,
            }
        }
        match page.next_after {
            Some(next) => after = next,
            None => break,
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    let words: Vec<String> = found
        .iter()
        .map(|(name, &(changed, unknown))| match (changed, unknown) {
            (changed, 0) => format!(
                "receiver {name:?} now sends to another destination (its URL or preset changed) than the one {changed} of its dead letters were recorded for"
            ),
            (0, unknown) => format!(
                "{unknown} dead letter(s) of receiver {name:?} were recorded without their destination (before this check, or after the receiver was removed)"
            ),
            (changed, unknown) => format!(
                "receiver {name:?} now sends to another destination (its URL or preset changed) than the one {changed} of its dead letters were recorded for, and {unknown} more were recorded without their destination"
            ),
        })
        .collect();
    Err(ReplayError::DestinationChanged(format!(
        "nothing replayed: {}; replay with force=true to send them to the current destination",
        words.join("; ")
    )))
}

/// What a replay did.
#[derive(Debug, Default, Serialize)]
pub struct Replayed {
    pub replayed: usize,
    /// Left as dead letters: receiver unknown, queue full, or the spool refused.
    pub skipped: usize,
}

/// Replays the dead letters of `receiver` (or all) into the current receivers' queues, each
/// through the same acceptance as a new notification (queue place, spool, push). Unless
/// `force`, refused when one would go to a destination other than the one recorded (see the
/// module docs).
pub async fn replay(
    shared: &Shared,
    snapshot: &Snapshot,
    receiver: Option<&str>,
    force: bool,
) -> Result<Replayed, ReplayError> {
    let spool = &*shared.spool;
    if !force {
        check_destinations(spool, snapshot, receiver).await?;
    }
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
        replay_batch(shared, snapshot, batch.taken, force, &mut outcome).await;
        match batch.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    Ok(outcome)
}

/// Offers one batch of taken dead letters (all of them for a spool file or memory mode, at most
/// `REPLAY_BATCH_BYTES` of bodies for the shared queue).
async fn replay_batch(shared: &Shared, snapshot: &Snapshot, taken: Vec<Stored>, force: bool, outcome: &mut Replayed) {
    let spool = &*shared.spool;
    // Held in memory until each is offered: counted while waiting, and given back just before
    // acceptance charges it again as a queued body.
    let held: Vec<_> = taken.iter().map(|s| shared.budget.charge(s.body.len() as u64)).collect();
    for (stored, waiting) in taken.into_iter().zip(held) {
        drop(waiting);
        let Some(active) = snapshot.receiver(&stored.receiver) else {
            outcome.skipped += 1;
            spool.return_dead_letter(stored);
            continue;
        };
        // Dead-lettered after the check, for a destination changed since: left as it is.
        if !force
            && matches!(compare(active, stored.header.dead.as_ref()), Some(Destination::Changed | Destination::Unknown))
        {
            outcome.skipped += 1;
            spool.return_dead_letter(stored);
            continue;
        }
        let (seq, header, body) = (stored.seq, stored.header.clone(), stored.body.clone());
        let offer = Offer { pipeline: &active.pipeline, outbound: Outbound::replayed(stored), dedup_key: None };
        match accept::accept(vec![offer], shared, None).await {
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
