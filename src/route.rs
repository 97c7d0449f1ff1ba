//! Routing one batch: which receiver gets which alerts, and the payload each one is sent.
//!
//! [`plan`] evaluates every enabled receiver's rule on every alert against one snapshot and
//! encodes each receiver's payload. It is pure — no I/O, nothing async, nothing queued — so the
//! webhook, route explanations and benchmarks run the very same code; [`crate::accept`] then
//! takes the plans into the receivers' queues.

use bytes::Bytes;
use ring::hmac;

pub use crate::dedup::DedupKey;

use crate::config::ReceiverConfig;
use crate::history::Summary;
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
    pub dedup_key: Option<DedupKey>,
    /// The forwarded alerts' facts for the history record (`None` when history is off).
    pub summary: Option<Summary>,
}

/// Which receivers a batch is for.
#[derive(Debug, Clone, Copy)]
pub enum Recipients<'s> {
    /// `POST /webhook`: every enabled receiver.
    All,
    /// `POST /webhook/{receiver}`: only this one (if enabled).
    Only(&'s ActiveReceiver),
}

/// Evaluates the rules and encodes a payload for each receiver left with alerts; receivers left
/// with none get an empty plan, so that their filtered alerts are counted on acceptance only.
pub fn plan<'s>(snapshot: &'s Snapshot, n: &Notification<'_>, recipients: Recipients<'s>) -> Vec<Planned<'s>> {
    let receivers: &[ActiveReceiver] = match recipients {
        Recipients::All => &snapshot.receivers,
        Recipients::Only(receiver) => std::slice::from_ref(receiver),
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
                    summary: None,
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
            dedup_key: snapshot.dedup_identity.as_ref().map(|key| dedup_key(key, &config.name, n, &matched)),
            summary: snapshot.history.enabled.then(|| Summary::of(matched[..alerts].iter().map(|&i| &n.alerts[i]))),
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

/// The fixed key used without `delivery.dedup_key_file`: public, so the identity is stable
/// across replicas and versions with no setup, and still collision-resistant (see [`dedup_key`]).
const FIXED_IDENTITY_KEY: &[u8] = b"amrelay dedup identity v1";

/// The HMAC key of the dedup identity: `delivery.dedup_key_file`, else the fixed key. Built once
/// per config ([`Snapshot::dedup_identity`]), not per request.
pub fn identity_key(configured: Option<&crate::secret::Secret>) -> hmac::Key {
    let key = configured.map_or(FIXED_IDENTITY_KEY, |secret| secret.expose().as_bytes());
    hmac::Key::new(hmac::HMAC_SHA256, key)
}

/// Identity of a receiver's notification for deduplication: receiver, groupKey, and each
/// forwarded alert's status and labels, in order.
///
/// Every field is length-prefixed, so no two different notifications encode alike (a label value
/// holding a separator byte cannot shift a boundary), and the encoding is hashed with
/// HMAC-SHA256 truncated to 128 bits: crafting two payloads with one identity — to have a real
/// alert dropped as the "duplicate" of a crafted one — takes about 2^64 work even with the fixed
/// key, and with a secret key (`delivery.dedup_key_file`) cannot even be attempted offline. (It
/// was a 64-bit FNV-1a of separator-joined fields: collisions took seconds to compute.)
pub fn dedup_key(key: &hmac::Key, receiver: &str, n: &Notification<'_>, matched: &[usize]) -> DedupKey {
    fn field(context: &mut hmac::Context, bytes: &[u8]) {
        context.update(&(bytes.len() as u64).to_le_bytes());
        context.update(bytes);
    }
    let mut context = hmac::Context::with_key(key);
    field(&mut context, receiver.as_bytes());
    field(&mut context, n.group_key.as_str().as_bytes());
    // Tags delimit the variable-length lists: 1 before each alert and label, 0 after each list.
    for &i in matched {
        let alert = &n.alerts[i];
        context.update(&[1]);
        field(&mut context, alert.status.as_str().as_bytes());
        for (name, value) in alert.labels.pairs() {
            context.update(&[1]);
            field(&mut context, name.as_bytes());
            field(&mut context, value.as_bytes());
        }
        context.update(&[0]);
    }
    context.update(&[0]);
    let tag = context.sign();
    let mut first = [0u8; 16];
    first.copy_from_slice(&tag.as_ref()[..16]);
    u128::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::decode;
    use crate::secret::Secret;

    fn body(labels: &[(&str, &str)]) -> Vec<u8> {
        let labels: serde_json::Map<_, _> = labels.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
        serde_json::json!({"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "r",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
            "alerts": [{"status": "firing", "labels": labels, "annotations": {}}]})
        .to_string()
        .into_bytes()
    }

    fn id(key: &hmac::Key, labels: &[(&str, &str)]) -> DedupKey {
        let body = body(labels);
        let n = decode(&body).unwrap();
        dedup_key(key, "r", &n, &[0])
    }

    /// Regression (issue 15): the identity joined fields with separator bytes and hashed them with
    /// 64-bit FNV-1a, so a label value carrying a separator made two different alerts one
    /// identity, and the second was dropped as a duplicate.
    #[test]
    fn fields_cannot_be_shifted_into_each_other() {
        let key = identity_key(None);
        let real = id(&key, &[("a", "x"), ("b", "y")]);
        assert_ne!(real, id(&key, &[("a", "x\u{2}b\u{3}y")]));
        assert_ne!(real, id(&key, &[("a", "x\u{3}"), ("b", "y")]));
        assert_ne!(id(&key, &[("ab", "")]), id(&key, &[("a", "b")]));
    }

    /// The identity is also JetStream's `Nats-Msg-Id`: every replica, and every version, must
    /// compute the same one from the same key, so the fixed derivation is pinned here.
    #[test]
    fn the_identity_is_stable_and_keyed() {
        let fixed = identity_key(None);
        let labels = [("alertname", "DiskFull"), ("severity", "critical")];
        assert_eq!(id(&fixed, &labels), id(&identity_key(None), &labels));
        assert_eq!(format!("{:032x}", id(&fixed, &labels)), PINNED);
        let configured = Secret::new("0123456789abcdef0123456789abcdef");
        let keyed = identity_key(Some(&configured));
        assert_eq!(id(&keyed, &labels), id(&identity_key(Some(&configured)), &labels), "same key, same id");
        assert_ne!(id(&keyed, &labels), id(&fixed, &labels), "another key, another id");
    }

    /// Computed independently (Python's `hmac` over the documented encoding): receiver, groupKey,
    /// then per alert and label a 1 tag, each field as a u64 LE length and its bytes, 0 after
    /// each list.
    const PINNED: &str = "d71a4b14d8a9c7b84da4b92f5beee067";
}
