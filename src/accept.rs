//! Acceptance: the one path by which a notification enters a receiver's queue.
//!
//! A batch from `/webhook`, a replayed dead letter and a notification restored from the spool all
//! come in here, so the guarantees are written once:
//!
//! 1. **Reserve** a place in every receiver's queue first (lock-free, never waits), and each
//!    notification's bytes in the process budget ([`crate::memory`]): its body and its header
//!    ([`header_bytes`]: the groupKey and id it holds while queued). One full queue, or a spent budget,
//!    refuses the whole batch, and what was already reserved is given back: all receivers take
//!    the batch, or none does, and a 503 leaves no trace.
//! 2. **Deduplicate** (`delivery.dedup_window`): a notification identical to one accepted within
//!    the window is dropped and reported; its claim is released if the batch is then refused, so
//!    Alertmanager's retry is not mistaken for a duplicate.
//! 3. **Spool**: with a spool, every notification of the batch is on disk in one commit before
//!    anything is queued.
//! 4. **Push** to each receiver's dispatcher. With a spool file, a body is kept in memory only
//!    while it fits in the spool's window; otherwise the queue holds its header and the body is
//!    read back from the file when its turn comes.
//!
//! Notifications restored at start skip 2 and 3 (they were accepted before the restart) and may
//! exceed a queue's capacity.
//!
//! With the shared JetStream queue (`delivery.nats`, see [`crate::spool::nats`]) steps 1 and 4 do not
//! apply: the batch is published, every message acknowledged by the server, and nothing is
//! queued here — every replica delivers from the stream, and a notification pulled from it comes
//! back through [`restore`]. The server drops a notification already in the stream (same
//! `Nats-Msg-Id`, within `duplicate_window`), which is reported as a duplicate.

use std::time::Duration;

use crate::dedup::Dedup;
use crate::deliver::Outbound;
use crate::memory::{Charge, Held};
use crate::queue::{Pipeline, Queued, Shared};
use crate::route::DedupKey;
use crate::spool::{NewRecord, Spool, SpoolError, Stored};

/// One notification offered to one receiver.
#[derive(Debug)]
pub struct Offer<'a> {
    pub pipeline: &'a Pipeline,
    pub outbound: Outbound,
    /// Identity for `delivery.dedup_window`; `None` when it does not apply.
    pub dedup_key: Option<crate::route::DedupKey>,
}

/// Why a batch was refused; nothing was queued anywhere.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    #[error("the queue of receiver {0:?} is full")]
    QueueFull(String),
    #[error("the memory budget is spent (server.limits.max_memory_bytes = {0})")]
    Memory(u64),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl Refused {
    /// The `reason` label of `amrelay_batches_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::QueueFull(_) => "queue_full",
            Refused::Memory(_) => "memory",
            Refused::Spool(SpoolError::Full(_)) => "spool_full",
            Refused::Spool(SpoolError::Io(_)) => "spool_error",
            Refused::Spool(SpoolError::Unavailable(_)) => "backend_unavailable",
            Refused::Spool(SpoolError::TooLarge { .. }) => "too_large",
        }
    }
}

/// What acceptance did with each offer, in the order given: queued, or dropped as a duplicate.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    Queued,
    Duplicate,
}

/// The duplicate filter and its window, when `delivery.dedup_window` is set.
pub type DedupWindow<'a> = Option<(&'a Dedup, Duration)>;

/// Accepts every offer or none (see the module docs).
pub async fn accept(offers: Vec<Offer<'_>>, shared: &Shared, dedup: DedupWindow<'_>) -> Result<Vec<Taken>, Refused> {
    let (spool, budget) = (&*shared.spool, &shared.budget);
    // The one branch on the store here: the shared queue is published to, not queued locally.
    if let Some(backend) = spool.backend() {
        return accept_shared(offers, backend, dedup).await;
    }
    let mut slots = Vec::with_capacity(offers.len());
    for offer in &offers {
        match offer.pipeline.reserve() {
            Some(slot) => slots.push(slot),
            // Dropping `slots` gives back every place reserved so far.
            None => return Err(Refused::QueueFull(offer.pipeline.downstream().name.to_string())),
        }
    }
    let mut charges = Vec::with_capacity(offers.len());
    for offer in &offers {
        match budget.try_charge(offer.outbound.body.len() as u64 + header_bytes(&offer.outbound)) {
            Some(charge) => charges.push(charge),
            // Dropping `slots` and `charges` gives back everything reserved so far.
            None => return Err(Refused::Memory(budget.limit())),
        }
    }
    let (taken, claimed) = deduplicate(&offers, dedup);
    let (offers, held): (Vec<_>, Vec<_>) = offers
        .into_iter()
        .zip(slots.into_iter().zip(charges))
        .zip(&taken)
        .filter(|(_, t)| **t == Taken::Queued)
        .map(|(pair, _)| pair)
        .unzip();
    let seqs = match persist(&offers, spool).await {
        Ok(seqs) => seqs,
        Err(e) => {
            release(dedup, claimed);
            return Err(e.into());
        }
    };
    for ((offer, (slot, charge)), seq) in offers.into_iter().zip(held).zip(seqs) {
        let mut outbound = offer.outbound;
        outbound.seq = seq;
        let memory = keep_or_leave_on_disk(spool, &mut outbound, charge);
        offer.pipeline.push(Queued { outbound, slot, memory });
    }
    Ok(taken)
}

/// What a queued notification holds in memory besides its body: its groupKey, id and history
/// summary, and the notification itself. (A batch's notifications share one groupKey; each is
/// charged for it all the same, which errs on the side of the limit.)
pub fn header_bytes(outbound: &Outbound) -> u64 {
    let summary = outbound.summary.as_ref().map_or(0, crate::history::Summary::heap_bytes);
    (outbound.group_key.len() + outbound.id.len() + summary + std::mem::size_of::<Outbound>()) as u64
}

/// With a spool file, keeps a queued body in memory while it fits in the window, and otherwise
/// leaves it on disk only (dropping it here, and its charge, all but the header's); without
/// one, keeps it.
fn keep_or_leave_on_disk(spool: &Spool, outbound: &mut Outbound, mut budget: Charge) -> Held {
    let Some(window) = spool.window() else {
        return Held { budget, window: Charge::none() };
    };
    match window.try_charge(outbound.body.len() as u64) {
        Some(window) => Held { budget, window },
        None => {
            outbound.body = bytes::Bytes::new();
            outbound.on_disk = true;
            budget.shrink_to(header_bytes(outbound));
            Held { budget, window: Charge::none() }
        }
    }
}

/// Claims each offer's dedup key: which offers are duplicates of one accepted within the window
/// (counted), and the keys claimed, to [`release`] if the batch is then refused.
fn deduplicate(offers: &[Offer<'_>], dedup: DedupWindow<'_>) -> (Vec<Taken>, Vec<DedupKey>) {
    let mut taken = Vec::with_capacity(offers.len());
    let mut claimed = Vec::new();
    for offer in offers {
        let fresh = match (dedup, offer.dedup_key) {
            (Some((seen, window)), Some(key)) => {
                let fresh = seen.claim(key, window);
                if fresh {
                    claimed.push(key);
                } else {
                    offer.pipeline.metrics().deduplicated.increment(1);
                }
                fresh
            }
            _ => true,
        };
        taken.push(if fresh { Taken::Queued } else { Taken::Duplicate });
    }
    (taken, claimed)
}

/// Gives up the claims of a refused batch, so Alertmanager's retry is not taken for a duplicate.
fn release(dedup: DedupWindow<'_>, claimed: Vec<DedupKey>) {
    if let Some((seen, _)) = dedup {
        seen.release(claimed);
    }
}

/// Publishes every offer to the shared queue; all are stored, or the batch is refused.
async fn accept_shared(
    offers: Vec<Offer<'_>>,
    backend: &crate::spool::nats::Backend,
    dedup: DedupWindow<'_>,
) -> Result<Vec<Taken>, Refused> {
    let (mut taken, claimed) = deduplicate(&offers, dedup);
    let published_index: Vec<usize> = (0..offers.len()).filter(|&i| taken[i] == Taken::Queued).collect();
    let batch: Vec<_> = published_index
        .iter()
        .map(|&index| {
            let offer = &offers[index];
            let receiver = offer.pipeline.downstream().name.clone();
            let msg_id = match offer.dedup_key {
                // The same notification from another Alertmanager peer, at any replica, has this id.
                Some(key) => format!("{receiver}-{key:032x}"),
                // A replayed dead letter: always new (it keeps its Idempotency-Key, `outbound.id`).
                None => format!("{}-{}", offer.outbound.id, crate::queue::next_id()),
            };
            crate::spool::nats::Publication {
                receiver,
                header: offer.outbound.header(),
                body: offer.outbound.body.clone(),
                msg_id,
            }
        })
        .collect();
    if batch.is_empty() {
        return Ok(taken);
    }
    let published = match backend.publish(batch).await {
        Ok(published) => published,
        Err(e) => {
            release(dedup, claimed);
            return Err(e.into());
        }
    };
    for (index, published) in published_index.into_iter().zip(published) {
        // Not counted as enqueued here: the replica that pulls it counts it.
        if published.duplicate {
            offers[index].pipeline.metrics().deduplicated.increment(1);
            taken[index] = Taken::Duplicate;
        }
    }
    Ok(taken)
}

/// Writes the offers to the spool in one commit; returns their sequence numbers.
async fn persist(offers: &[Offer<'_>], spool: &Spool) -> Result<Vec<u64>, SpoolError> {
    // Built only for a store that keeps them (memory mode only numbers the offers).
    let records = || {
        offers
            .iter()
            .map(|offer| NewRecord {
                receiver: offer.pipeline.downstream().name.clone(),
                header: offer.outbound.header(),
                body: offer.outbound.body.clone(),
            })
            .collect()
    };
    spool.append(offers.len(), records).await
}

/// Hands a notification restored from the spool back to its receiver: it was accepted before the
/// restart, so it is neither deduplicated nor written again, and is taken even above capacity
/// and above the memory budget. A body that stayed on disk (empty) is read back for delivery; one
/// pulled from the shared queue has no local copy and is kept.
pub fn restore(pipeline: &Pipeline, stored: Stored) {
    let slot = pipeline.reserve_restored();
    let (spool, budget) = (&pipeline.downstream().spool, &pipeline.downstream().budget);
    let mut outbound = Outbound::restored(stored);
    let memory = if outbound.on_disk {
        Held { budget: budget.charge(header_bytes(&outbound)), window: Charge::none() }
    } else {
        let budget = budget.charge(outbound.body.len() as u64 + header_bytes(&outbound));
        keep_or_leave_on_disk(spool, &mut outbound, budget)
    };
    pipeline.push(Queued { outbound, slot, memory });
}
