//! What `route-test` (CLI, API, console) adds about muting: for each receiver that would get
//! alerts, which of them are muted now and by what — an interval (`mute_time_intervals NAME`,
//! `outside active_time_intervals`) or a silence (`silence ID`). The same checks as delivery
//! ([`super::verdict`]), at the instant given.

use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use super::Silence;
use crate::config::mute::Mute;
use crate::payload::Notification;

/// One receiver's muted alerts.
#[derive(Debug, Clone, Serialize)]
pub struct MutedView {
    pub receiver: String,
    /// `drop` or `hold`: what happens to the notification if every alert is muted.
    pub on_mute: &'static str,
    pub alerts: Vec<MutedAlert>,
}

/// One muted alert (an index into the batch) and what mutes it.
#[derive(Debug, Clone, Serialize)]
pub struct MutedAlert {
    pub alert: usize,
    /// `time_interval` or `silence`.
    pub kind: &'static str,
    pub by: String,
}

/// The muted alerts among `taken` (the alerts `receiver` would get), or `None` when none is.
pub fn muted_view(
    receiver: &str,
    mute: &Mute,
    silences: &[Arc<Silence>],
    n: &Notification<'_>,
    taken: &[usize],
    now: Timestamp,
) -> Option<MutedView> {
    let alerts: Vec<MutedAlert> = match mute.muted_by(now) {
        Some(by) => {
            taken.iter().map(|&alert| MutedAlert { alert, kind: "time_interval", by: by.to_string() }).collect()
        }
        None => taken
            .iter()
            .filter_map(|&alert| {
                let silence = super::silenced_by(silences, receiver, &n.alerts.get(alert)?.labels, now)?;
                Some(MutedAlert { alert, kind: "silence", by: format!("silence {}", silence.id) })
            })
            .collect(),
    };
    (!alerts.is_empty()).then(|| MutedView { receiver: receiver.to_owned(), on_mute: mute.on_mute.as_str(), alerts })
}

/// The views as text lines for the CLI.
pub fn to_text(views: &[MutedView]) -> String {
    let mut out = String::new();
    for view in views {
        out += &format!("muted at {} (on_mute: {}):\n", view.receiver, view.on_mute);
        for alert in &view.alerts {
            out += &format!("  alert {}: {}\n", alert.alert, alert.by);
        }
    }
    out
}
