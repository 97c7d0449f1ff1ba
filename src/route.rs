//! Routing one batch: which receiver gets which alerts, and acceptance into their queues.
//!
//! [`plan`] evaluates every enabled receiver's rule on every alert against one snapshot and
//! encodes each receiver's payload. [`accept`] then reserves a queue slot at every receiver
//! before queuing anything (see [`crate::queue`]): all receivers take the batch, or none does.

use std::sync::Arc;

use bytes::Bytes;

use crate::payload::{Notification, Status, encode};
use crate::snapshot::{ActiveReceiver, Snapshot};

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
}

/// Which receivers a batch is for.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'s> {
    /// `POST /webhook`: every enabled receiver.
    All,
    /// `POST /webhook/{receiver}`: only this one (if enabled).
    Only(&'s ActiveReceiver),
}

/// Evaluates the rules and encodes a payload for each receiver left with alerts.
pub fn plan<'s>(snapshot: &'s Snapshot, n: &Notification<'_>, destination: Destination<'s>) -> Vec<Planned<'s>> {
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
            if (config.send_resolved || alert.status == Status::Firing) && config.rule.matches(&alert.labels) {
                matched.push(index);
            }
        }
        if matched.is_empty() {
            if !n.alerts.is_empty() {
                receiver.pipeline.shared().metrics.filtered.increment(n.alerts.len() as u64);
            }
            continue;
        }
        let size_hint = 256 + matched.iter().map(|&i| n.alerts[i].raw.get().len() + 1).sum::<usize>();
        let mut body = Vec::with_capacity(size_hint);
        encode(n, &matched, config.max_alerts, &mut body);
        let alerts = if config.max_alerts == 0 { matched.len() } else { matched.len().min(config.max_alerts) };
        plans.push(Planned {
            receiver,
            body: Bytes::from(body),
            alerts,
            matched: matched.len(),
            filtered: n.alerts.len() - matched.len(),
        });
    }
    plans
}

/// The queue of this receiver is full; nothing was queued anywhere.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the queue of receiver {receiver:?} is full")]
pub struct QueueFull {
    pub receiver: String,
}

/// Queues every plan, or none: returns (receiver, alerts) for the summary.
pub fn accept<'s>(plans: Vec<Planned<'s>>, group_key: &str) -> Result<Vec<(&'s str, usize)>, QueueFull> {
    let mut slots = Vec::with_capacity(plans.len());
    for plan in &plans {
        match plan.receiver.pipeline.reserve() {
            Some(slot) => slots.push(slot),
            // Dropping `slots` releases every place reserved so far.
            None => {
                return Err(QueueFull { receiver: plan.receiver.config.name.clone() });
            }
        }
    }
    let group_key: Arc<str> = group_key.into();
    let mut summary = Vec::with_capacity(plans.len());
    for (plan, slot) in plans.into_iter().zip(slots) {
        let metrics = &plan.receiver.pipeline.shared().metrics;
        metrics.matched.increment(plan.matched as u64);
        metrics.filtered.increment(plan.filtered as u64);
        plan.receiver.pipeline.push(group_key.clone(), plan.body, plan.alerts, slot);
        summary.push((plan.receiver.config.name.as_str(), plan.alerts));
    }
    Ok(summary)
}
