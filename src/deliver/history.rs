//! The history record of a notification that finished (see [`crate::history`]): built from the
//! notification's header and body when it is delivered or given up, off the request path.

use std::borrow::Cow;

use serde::Deserialize;

use crate::history::{MAX_ALERTS_KEPT, Outcome, Record, now_ms};
use crate::spool::Header;

/// How a notification ended, besides its outcome.
#[derive(Debug, Default)]
pub struct Ending {
    pub attempts: u32,
    /// The dead-letter reason.
    pub reason: Option<&'static str>,
    pub http_status: Option<u16>,
    /// Already free of secrets (see [`super::Failure`]).
    pub error: Option<String>,
}

/// Only the field a history record needs of an alert.
#[derive(Deserialize)]
struct Fingerprint<'a> {
    #[serde(borrow, default)]
    fingerprint: Option<Cow<'a, str>>,
}

/// The record of `header`'s notification to `receiver`, which ended in `outcome`. The body (the
/// version "4" payload, or empty when it stayed on disk) gives the status, fingerprints and
/// alert names; a body that does not decode leaves them empty.
pub fn record(
    receiver: &str,
    tenant: Option<&str>,
    header: &Header,
    body: &[u8],
    outcome: Outcome,
    ending: Ending,
) -> Record {
    let (mut status, mut fingerprints, mut alertnames) = (String::new(), Vec::new(), Vec::<String>::new());
    if let Ok(notification) = crate::payload::decode(body) {
        let firing = notification.alerts.iter().any(|a| a.status == crate::payload::Status::Firing);
        status = if firing { "firing" } else { "resolved" }.to_owned();
        for alert in notification.alerts.iter().take(MAX_ALERTS_KEPT) {
            if let Ok(Fingerprint { fingerprint: Some(fingerprint) }) = serde_json::from_str(alert.raw) {
                fingerprints.push(fingerprint.into_owned());
            }
            if let Some(name) = alert.labels.value("alertname").filter(|n| !n.is_empty())
                && !alertnames.iter().any(|n| n == name)
            {
                alertnames.push(name.to_owned());
            }
        }
    }
    let finished = now_ms();
    Record {
        seq: 0,
        receiver: receiver.to_owned(),
        tenant: tenant.map(str::to_owned),
        group_key: header.group_key.clone(),
        status,
        alerts: header.alerts,
        fingerprints,
        alertnames,
        id: header.id.clone(),
        attempts: ending.attempts,
        outcome,
        reason: ending.reason.map(str::to_owned),
        http_status: ending.http_status,
        error: ending.error,
        accepted_unix_ms: header.accepted_unix_ms,
        finished_unix_ms: finished,
        latency_ms: finished.saturating_sub(header.accepted_unix_ms),
    }
}

/// Records how `header`'s notification to `downstream` ended, with its receiver's tenant now:
/// the one way delivery and muting write history.
pub fn finished(downstream: &super::Downstream, header: &Header, body: &[u8], outcome: Outcome, ending: Ending) {
    let tenant = downstream.target.load().tenant.clone();
    downstream.spool.record_history(record(&downstream.name, tenant.as_deref(), header, body, outcome, ending));
}
