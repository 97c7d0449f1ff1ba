//! Routing one batch: which receiver gets which alerts, and the payload each one is sent.
//!
//! [`plan`] evaluates every enabled receiver's rule on every alert against one snapshot and
//! encodes each receiver's payload. It is pure — no I/O, nothing async, nothing queued — so the
//! webhook, route explanations and benchmarks run the very same code; [`crate::accept`] then
//! takes the plans into the receivers' queues.

use bytes::Bytes;

use crate::config::ReceiverConfig;
use crate::payload::{Alert, Notification, Status, encode};
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
    /// Identity for `delivery.dedup_window` (`None` when deduplication is off).
    pub dedup_key: Option<u64>,
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
    // JetStream drops duplicates by this identity too (`Nats-Msg-Id`), across replicas.
    let dedup = snapshot.delivery.dedup_window.is_some() || snapshot.delivery.nats.is_some();
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
                    dedup_key: None,
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
            dedup_key: dedup.then(|| dedup_key(&config.name, n, &matched)),
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
