//! Quiet hours and silences: whether a receiver's notification is sent now, sent with fewer
//! alerts, or muted.
//!
//! **Evaluated when the notification is about to be delivered**, not when it is accepted. That
//! is what Alertmanager does (its pipeline checks mutes when the dispatcher flushes a group), and
//! for amrelay it is the only correct place: a notification may wait in the queue (behind its
//! group, behind a slow downstream, across a restart), and what counts is whether the receiver
//! is muted when the message would reach people. A silence created while notifications are
//! queued therefore catches them, and one expired while they wait lets them go.
//!
//! The order: a receiver muted by `mute_time_intervals` (or outside `active_time_intervals`)
//! sends nothing; otherwise each alert matched by an active silence that covers the receiver is
//! left out, and a notification left with no alert is muted too. [`verdict`] is pure (the
//! instant is an argument), so tests need no clock.

mod explain;
mod silence;
mod store;

use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;

pub use explain::{MutedAlert, MutedView, muted_view, to_text as muted_text};
pub use silence::{Posted, Silence, State};
pub use store::{EXPIRED_RETENTION, Silences, StoreError};

use crate::config::mute::{Mute, MutedBy};

/// What to do with a notification now.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Send it as it is.
    Send,
    /// Send this body instead: the same notification without its silenced alerts.
    SendFewer { body: Bytes, alerts: usize },
    /// Send nothing now.
    Muted(Reason),
}

/// Why a notification is muted.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    TimeInterval(MutedBy),
    /// Every alert is silenced; the id of the silence of the first.
    Silence(String),
}

impl Reason {
    /// The `reason` label of `amrelay_notifications_muted_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::TimeInterval(_) => "time_interval",
            Reason::Silence(_) => "silence",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::TimeInterval(by) => write!(f, "{by}"),
            Reason::Silence(id) => write!(f, "silence {id}"),
        }
    }
}

/// The silence that mutes an alert with these labels for `receiver` at `now`, if any.
pub fn silenced_by<'s>(
    silences: &'s [Arc<Silence>],
    receiver: &str,
    labels: &crate::payload::LabelSet<'_>,
    now: Timestamp,
) -> Option<&'s Silence> {
    silences.iter().map(|s| &**s).find(|s| s.state(now) == State::Active && s.covers(receiver) && s.matches(labels))
}

/// Decides what `receiver` does with `body` (a version "4" payload of its alerts) at `now`.
pub fn verdict(mute: &Mute, silences: &[Arc<Silence>], receiver: &str, body: &[u8], now: Timestamp) -> Verdict {
    if let Some(by) = mute.muted_by(now) {
        return Verdict::Muted(Reason::TimeInterval(by));
    }
    if !silences.iter().any(|s| s.state(now) == State::Active && s.covers(receiver)) {
        return Verdict::Send;
    }
    let Ok(notification) = crate::payload::decode(body) else {
        // amrelay encoded it; if it cannot be read back it is sent as it is, never lost.
        return Verdict::Send;
    };
    let mut first = None;
    let kept: Vec<usize> = (0..notification.alerts.len())
        .filter(|&i| match silenced_by(silences, receiver, &notification.alerts[i].labels, now) {
            Some(s) => {
                first.get_or_insert_with(|| s.id.clone());
                false
            }
            None => true,
        })
        .collect();
    match first {
        None => Verdict::Send,
        Some(id) if kept.is_empty() => Verdict::Muted(Reason::Silence(id)),
        Some(_) => {
            let mut out = Vec::with_capacity(body.len());
            crate::payload::encode(&notification, &kept, 0, &mut out);
            Verdict::SendFewer { body: out.into(), alerts: kept.len() }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2026-12-07T20:00:00Z".parse().unwrap()
    }

    fn silence(id: &str, matchers: &str, receivers: &[&str]) -> Arc<Silence> {
        let posted: Posted = serde_json::from_value(json!({
            "matchers": matchers, "endsAt": "2026-12-07T21:00:00Z", "createdBy": "ops", "comment": "c",
            "receivers": receivers,
        }))
        .unwrap();
        let mut s = Silence::from_posted(posted, now()).unwrap();
        s.id = id.into();
        Arc::new(s)
    }

    fn body(names: &[&str]) -> Vec<u8> {
        let alerts: Vec<_> = names
            .iter()
            .map(|n| json!({"status": "firing", "labels": {"alertname": n}, "annotations": {}, "startsAt": "2026-12-07T19:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": n}))
            .collect();
        serde_json::to_vec(&json!({"receiver": "r", "status": "firing", "alerts": alerts, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "", "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0})).unwrap()
    }

    #[test]
    fn silenced_alerts_are_left_out_and_all_silenced_is_muted() {
        let silences = [silence("s1", "alertname=\"Disk\"", &[])];
        let mute = Mute::default();
        let Verdict::SendFewer { body: fewer, alerts } = verdict(&mute, &silences, "r", &body(&["Disk", "Cpu"]), now())
        else {
            panic!("one alert should be left out");
        };
        assert_eq!(alerts, 1);
        let sent: serde_json::Value = serde_json::from_slice(&fewer).unwrap();
        assert_eq!(sent["alerts"][0]["labels"]["alertname"], "Cpu");
        assert_eq!(sent["commonLabels"]["alertname"], "Cpu");
        assert_eq!(
            verdict(&mute, &silences, "r", &body(&["Disk"]), now()),
            Verdict::Muted(Reason::Silence("s1".into()))
        );
        assert_eq!(verdict(&mute, &silences, "r", &body(&["Cpu"]), now()), Verdict::Send);
    }

    #[test]
    fn a_silence_for_one_receiver_leaves_the_others_alone() {
        let silences = [silence("s1", "alertname=\"Disk\"", &["pager"])];
        let mute = Mute::default();
        assert!(matches!(verdict(&mute, &silences, "pager", &body(&["Disk"]), now()), Verdict::Muted(_)));
        assert_eq!(verdict(&mute, &silences, "chat", &body(&["Disk"]), now()), Verdict::Send);
        // Expired by the clock: sent again.
        let later = "2026-12-07T21:00:00Z".parse().unwrap();
        assert_eq!(verdict(&mute, &silences, "pager", &body(&["Disk"]), later), Verdict::Send);
    }
}
