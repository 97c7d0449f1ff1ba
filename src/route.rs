//! Routing one batch: which receiver gets which alerts, and acceptance into their queues.
//!
//! [`plan`] evaluates every enabled receiver's rule on every alert against one snapshot and
//! encodes each receiver's payload. [`accept`] then reserves a queue slot at every receiver
//! before queuing anything (see [`crate::queue`]): all receivers take the batch, or none does.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::config::ReceiverConfig;
use crate::dedup::Dedup;
use crate::payload::{Alert, Notification, Status, encode};
use crate::queue::{Queued, next_id};
use crate::snapshot::{ActiveReceiver, Snapshot};
use crate::spool::{Header, NewRecord, Spool, SpoolError, unix_ms};

/// One receiver's share of a batch, encoded and ready to queue.
#[derive(Debug)]
pub struct Planned<'s> {
    pub receiver: &'s ActiveReceiver,
    pub body: Bytes,
    /// Alerts forwarded (after `max_alerts`).
    pub alerts: usize,
    /// Alerts the rule accepted, and those it (or `send_resolved: false`) left out.
    pub matched: usize,
    pub filtered: usize,
    /// Identity for `delivery.dedup_window` (0 when deduplication is off).
    pub dedup_key: u64,
}

/// Which receivers a batch is for.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'s> {
    /// `POST /webhook`: every enabled receiver.
    All,
    /// `POST /webhook/{receiver}`: only this one (if enabled).
    Only(&'s ActiveReceiver),
}

/// Evaluates the rules and encodes a payload for each receiver left with alerts; receivers left
/// with none get an empty plan, so that their filtered alerts are counted on acceptance only.
pub fn plan<'s>(snapshot: &'s Snapshot, n: &Notification<'_>, destination: Destination<'s>) -> Vec<Planned<'s>> {
    let dedup = snapshot.delivery.dedup_window.is_some();
    let receivers: &[ActiveReceiver] = match destination {
        Destination::All => &snapshot.receivers,
        Destination::Only(receiver) => std::slice::from_ref(receiver),
    };
    let mut matched = Vec::with_capacity(n.alerts.len());
    let mut plans = Vec::new();
    for receiver in receivers.iter().filter(|r| r.config.enabled) {
        let config = &receiver.config;
        matched.clear();
        for (index, alert) in n.alerts.iter().enumerate() {
            if takes(config, alert) {
                matched.push(index);
            }
        }
        if matched.is_empty() {
            // Nothing to send, but its filtered alerts are counted if the batch is accepted.
            if !n.alerts.is_empty() {
                plans.push(Planned {
                    receiver,
                    body: Bytes::new(),
                    alerts: 0,
                    matched: 0,
                    filtered: n.alerts.len(),
                    dedup_key: 0,
                });
            }
            continue;
        }
        let size_hint = 256 + matched.iter().map(|&i| n.alerts[i].raw.len() + 1).sum::<usize>();
        let mut body = Vec::with_capacity(size_hint);
        encode(n, &matched, config.max_alerts, &mut body);
        let alerts = if config.max_alerts == 0 { matched.len() } else { matched.len().min(config.max_alerts) };
        plans.push(Planned {
            receiver,
            body: Bytes::from(body),
            alerts,
            matched: matched.len(),
            filtered: n.alerts.len() - matched.len(),
            dedup_key: if dedup { dedup_key(&config.name, n, &matched) } else { 0 },
        });
    }
    plans
}

/// Whether an enabled receiver takes an alert: the filter of [`plan`], which route explanations
/// ([`crate::explain`]) use too, so the two never disagree.
#[inline]
pub fn takes(config: &ReceiverConfig, alert: &Alert<'_>) -> bool {
    (config.send_resolved || alert.status == Status::Firing) && config.rule.matches(&alert.labels)
}

/// Why a batch was refused; nothing was queued anywhere.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    #[error("the queue of receiver {0:?} is full")]
    QueueFull(String),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// What a batch's acceptance did, per receiver: alerts queued, or a duplicate dropped.
#[derive(Debug, Default)]
pub struct Accepted<'s> {
    pub queued: Vec<(&'s str, usize)>,
    pub duplicates: Vec<&'s str>,
}

/// Queues every plan, or none: reserves a place in each receiver's queue, writes them all to the
/// spool in one commit, and only then hands them to the receivers. With a dedup window, plans
/// identical to one accepted within it are dropped (and reported) instead.
pub async fn accept<'s>(
    plans: Vec<Planned<'s>>,
    group_key: &str,
    spool: &Spool,
    dedup: Option<(&Dedup, Duration)>,
) -> Result<Accepted<'s>, Refused> {
    let mut accepted = Accepted::default();
    let (plans, nothing): (Vec<Planned<'s>>, Vec<Planned<'s>>) = plans.into_iter().partition(|p| p.matched > 0);
    let plans: Vec<Planned<'s>> = match dedup {
        None => plans,
        Some((seen, window)) => plans
            .into_iter()
            .filter(|plan| {
                let claimed = seen.claim(plan.dedup_key, window);
                if !claimed {
                    plan.receiver.pipeline.shared().metrics.deduplicated.increment(1);
                    accepted.duplicates.push(plan.receiver.config.name.as_str());
                }
                claimed
            })
            .collect(),
    };
    match queue_all(plans, group_key, spool, &mut accepted).await {
        Ok(()) => {
            for plan in nothing {
                plan.receiver.pipeline.shared().metrics.filtered.increment(plan.filtered as u64);
            }
            Ok(accepted)
        }
        Err((refused, claimed)) => {
            if let Some((seen, _)) = dedup {
                seen.release(claimed);
            }
            Err(refused)
        }
    }
}

/// Reserves, spools and queues the plans; on refusal returns the dedup keys claimed for them.
async fn queue_all<'s>(
    plans: Vec<Planned<'s>>,
    group_key: &str,
    spool: &Spool,
    accepted: &mut Accepted<'s>,
) -> Result<(), (Refused, Vec<u64>)> {
    let claimed = || plans.iter().map(|p| p.dedup_key).collect::<Vec<_>>();
    let mut slots = Vec::with_capacity(plans.len());
    for plan in &plans {
        match plan.receiver.pipeline.reserve() {
            Some(slot) => slots.push(slot),
            // Dropping `slots` releases every place reserved so far.
            None => return Err((Refused::QueueFull(plan.receiver.config.name.clone()), claimed())),
        }
    }
    let group_key: Arc<str> = group_key.into();
    let accepted_unix_ms = unix_ms(SystemTime::now());
    let ids: Vec<String> = plans.iter().map(|_| next_id()).collect();
    // A memory-only spool keeps nothing: skip building records for it.
    let records = plans
        .iter()
        .filter(|_| spool.is_persistent())
        .zip(&ids)
        .map(|(plan, id)| NewRecord {
            receiver: plan.receiver.pipeline.shared().name.clone(),
            header: Header {
                group_key: group_key.to_string(),
                id: id.clone(),
                accepted_unix_ms,
                attempts: 0,
                alerts: plan.alerts,
                dead: None,
            },
            body: plan.body.clone(),
        })
        .collect();
    let seqs = match spool.append(records, plans.len()).await {
        Ok(seqs) => seqs,
        Err(e) => return Err((e.into(), claimed())),
    };
    let accepted_at = Instant::now();
    for (((plan, slot), id), seq) in plans.into_iter().zip(slots).zip(ids).zip(seqs) {
        let metrics = &plan.receiver.pipeline.shared().metrics;
        metrics.matched.increment(plan.matched as u64);
        metrics.filtered.increment(plan.filtered as u64);
        accepted.queued.push((plan.receiver.config.name.as_str(), plan.alerts));
        plan.receiver.pipeline.push(Queued {
            id,
            seq,
            group_key: group_key.clone(),
            body: plan.body,
            alerts: plan.alerts,
            accepted_at,
            accepted_unix_ms,
            attempts: 0,
            slot,
        });
    }
    Ok(())
}

/// Identity of a receiver's notification for deduplication: receiver, groupKey, and each
/// forwarded alert's labels and status, in order.
fn dedup_key(receiver: &str, n: &Notification<'_>, matched: &[usize]) -> u64 {
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(receiver.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(n.group_key.as_str().as_bytes());
    for &i in matched {
        let alert = &n.alerts[i];
        bytes.push(1);
        bytes.extend_from_slice(alert.status.as_str().as_bytes());
        for (name, value) in alert.labels.pairs() {
            bytes.push(2);
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(3);
            bytes.extend_from_slice(value.as_bytes());
        }
    }
    crate::fingerprint::fnv1a(&bytes)
}
