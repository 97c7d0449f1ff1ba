//! The history record of a notification that finished (see [`crate::history`]), built when it is
//! delivered or given up, off the request path, from what the notification carries: its alerts'
//! [`Summary`], gathered when it was routed, or else its body, decoded once more.

use std::borrow::Cow;

use crate::history::{Outcome, Record, Summary, now_ms};
use crate::spool::Stored;

use super::Outbound;

/// How a notification ended, besides its outcome.
#[derive(Debug, Default)]
pub struct Ending {
    pub attempts: u32,
    /// The dead-letter reason.
    pub reason: Option<&'static str>,
    pub http_status: Option<u16>,
    /// Already free of secrets (see [`super::Failure`]).
    pub error: Option<String>,
    /// What a threaded receiver did (see [`Record::thread`]).
    pub thread: Option<&'static str>,
}

/// The notification a record is about.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    pub group_key: &'a str,
    pub id: &'a str,
    pub accepted_unix_ms: u64,
    pub alerts: usize,
    /// The version "4" payload (empty when it stayed on disk); read only without a summary.
    pub body: &'a [u8],
    pub summary: Option<&'a Summary>,
}

impl<'a> Finished<'a> {
    pub fn outbound(item: &'a Outbound) -> Finished<'a> {
        Finished {
            group_key: &item.group_key,
            id: &item.id,
            accepted_unix_ms: item.accepted_unix_ms,
            alerts: item.alerts,
            body: &item.body,
            summary: item.summary.as_ref(),
        }
    }

    pub fn stored(stored: &'a Stored) -> Finished<'a> {
        let header = &stored.header;
        Finished {
            group_key: &header.group_key,
            id: &header.id,
            accepted_unix_ms: header.accepted_unix_ms,
            alerts: header.alerts,
            body: &stored.body,
            summary: None,
        }
    }

    /// The alerts' facts: the summary, or the body decoded (empty facts when it does not decode).
    fn summary(&self) -> Option<Cow<'a, Summary>> {
        if let Some(summary) = self.summary {
            return Some(Cow::Borrowed(summary));
        }
        let notification = crate::payload::decode(self.body).ok()?;
        Some(Cow::Owned(Summary::of(notification.alerts.iter())))
    }
}

/// The record of a notification to `receiver`, which ended in `outcome`.
pub fn record(receiver: &str, tenant: Option<&str>, of: Finished<'_>, outcome: Outcome, ending: Ending) -> Record {
    let summary = of.summary();
    let finished = now_ms();
    Record {
        seq: 0,
        receiver: receiver.to_owned(),
        tenant: tenant.map(str::to_owned),
        group_key: of.group_key.to_owned(),
        status: summary.as_ref().map_or("", |s| s.status()).to_owned(),
        alerts: of.alerts,
        fingerprints: summary.as_ref().map_or_else(Vec::new, |s| s.fingerprints().map(str::to_owned).collect()),
        alertnames: summary.as_ref().map_or_else(Vec::new, |s| s.alertnames().map(str::to_owned).collect()),
        id: of.id.to_owned(),
        attempts: ending.attempts,
        outcome,
        reason: ending.reason.map(str::to_owned),
        http_status: ending.http_status,
        error: ending.error,
        thread: ending.thread.map(str::to_owned),
        accepted_unix_ms: of.accepted_unix_ms,
        finished_unix_ms: finished,
        latency_ms: finished.saturating_sub(of.accepted_unix_ms),
    }
}

/// Records how a notification to `downstream` ended, with its receiver's tenant now: the one way
/// delivery and muting write history. Nothing is built when history is off.
pub fn finished(downstream: &super::Downstream, of: Finished<'_>, outcome: Outcome, ending: Ending) {
    if !downstream.spool.keeps_history() {
        return;
    }
    let tenant = downstream.target.load().tenant.clone();
    downstream.spool.record_history(record(&downstream.name, tenant.as_deref(), of, outcome, ending));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary gathered when a batch is routed says what decoding the receiver's payload
    /// would: the record is the same either way (here with a filter and `max_alerts` cutting).
    #[test]
    fn the_routed_summary_matches_the_payload_it_describes() {
        // Alertmanager 0.25's payload of several alerts, as captured.
        let body = std::fs::read("tests/fixtures/am-payload-multi.json").unwrap();
        let n = crate::payload::decode(&body).unwrap();
        let every: Vec<usize> = (0..n.alerts.len()).collect();
        for (matched, max_alerts) in [(every.clone(), 0), (every.iter().copied().skip(1).collect(), 1)] {
            let kept = if max_alerts == 0 { matched.len() } else { matched.len().min(max_alerts) };
            let mut payload = Vec::new();
            crate::payload::encode(&n, &matched, max_alerts, &mut payload);
            let summary = Summary::of(matched[..kept].iter().map(|&i| &n.alerts[i]));
            let of = |summary| Finished {
                group_key: "g",
                id: "id",
                accepted_unix_ms: 1,
                alerts: kept,
                body: &payload,
                summary,
            };
            let mut routed = record("r", None, of(Some(&summary)), Outcome::Delivered, Ending::default());
            let mut decoded = record("r", None, of(None), Outcome::Delivered, Ending::default());
            assert!(!routed.fingerprints.is_empty(), "{routed:?}");
            (routed.finished_unix_ms, routed.latency_ms) = (0, 0);
            (decoded.finished_unix_ms, decoded.latency_ms) = (0, 0);
            assert_eq!(routed, decoded);
        }
    }
}
