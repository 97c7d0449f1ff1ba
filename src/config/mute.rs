//! A receiver's quiet hours: `mute_time_intervals`, `active_time_intervals` and `on_mute`,
//! meaning what the first two mean on an Alertmanager route. Names are resolved against the
//! top-level `time_intervals:` at load, so an unknown name is an error at its position and the
//! runtime never looks a name up.

use std::sync::Arc;

use serde_saphyr::Spanned;

use super::issues::Issues;
use super::time_interval::{TimeInterval, TimeIntervals};

/// What happens to a notification of a muted receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnMute {
    /// Not sent, counted (Alertmanager's behaviour).
    #[default]
    Drop,
    /// Kept; the latest of each group is delivered when the mute ends.
    Hold,
}

impl OnMute {
    pub fn as_str(self) -> &'static str {
        match self {
            OnMute::Drop => "drop",
            OnMute::Hold => "hold",
        }
    }
}

/// One named set of intervals, resolved.
pub type Named = (String, Arc<[TimeInterval]>);

/// A receiver's quiet hours.
#[derive(Debug, Clone, Default)]
pub struct Mute {
    /// Muted while any of these contains the instant.
    pub mute_time_intervals: Vec<Named>,
    /// When set, muted while none of these contains the instant.
    pub active_time_intervals: Vec<Named>,
    pub on_mute: OnMute,
}

/// Why a receiver is muted at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MutedBy {
    /// A `mute_time_intervals` entry contains the instant.
    MuteInterval(String),
    /// No `active_time_intervals` entry contains it.
    OutsideActive,
}

impl std::fmt::Display for MutedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MutedBy::MuteInterval(name) => write!(f, "mute_time_intervals {name}"),
            MutedBy::OutsideActive => write!(f, "outside active_time_intervals"),
        }
    }
}

impl Mute {
    /// Whether the receiver has any quiet hours at all (most do not: nothing to evaluate).
    pub fn is_set(&self) -> bool {
        !self.mute_time_intervals.is_empty() || !self.active_time_intervals.is_empty()
    }

    /// Why the receiver is muted at `now`, or `None` when it may send.
    pub fn muted_by(&self, now: jiff::Timestamp) -> Option<MutedBy> {
        let contains = |(_, set): &&Named| set.iter().any(|i| i.contains(now));
        if let Some((name, _)) = self.mute_time_intervals.iter().find(contains) {
            return Some(MutedBy::MuteInterval(name.clone()));
        }
        if !self.active_time_intervals.is_empty() && !self.active_time_intervals.iter().any(|n| contains(&n)) {
            return Some(MutedBy::OutsideActive);
        }
        None
    }
}

/// `on_mute: hold` keeps a notification unacknowledged while it is muted, and with
/// `delivery.nats` that would block its partition (one message in flight per partition) for every
/// other group: refused until held notifications have their own place in JetStream.
pub(super) fn hold_needs_a_local_queue(
    issues: &mut Issues,
    at: &serde_saphyr::Location,
    receivers: &[super::ReceiverConfig],
) {
    for receiver in receivers.iter().filter(|r| r.mute.on_mute == OnMute::Hold) {
        issues.add(
            Some(at),
            format!("receivers.{}.on_mute", receiver.name),
            "on_mute: hold is not supported with delivery.nats yet (a held notification would block its partition); use drop",
        );
    }
}

/// Resolves a receiver's keys; each unknown name is an error at its position.
pub(super) fn receiver_mute(
    issues: &mut Issues,
    field: &str,
    mute: &[Spanned<String>],
    active: &[Spanned<String>],
    on_mute: Option<&Spanned<String>>,
    intervals: &TimeIntervals,
) -> Mute {
    let mut resolve = |names: &[Spanned<String>], key: &str| -> Vec<Named> {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match intervals.by_name.get(&name.value) {
                Some(set) => out.push((name.value.clone(), set.clone())),
                None => issues.add(
                    Some(&name.referenced),
                    format!("{field}.{key}[{i}]"),
                    format!("time interval {:?} is not defined in time_intervals", name.value),
                ),
            }
        }
        out
    };
    let mute_time_intervals = resolve(mute, "mute_time_intervals");
    let active_time_intervals = resolve(active, "active_time_intervals");
    let on_mute = match on_mute.map(|s| s.value.as_str()) {
        None | Some("drop") => OnMute::Drop,
        Some("hold") => OnMute::Hold,
        Some(other) => {
            let at = on_mute.map(|s| &s.referenced);
            issues.add(at, format!("{field}.on_mute"), format!("{other:?} is not one of drop, hold"));
            OnMute::Drop
        }
    };
    Mute { mute_time_intervals, active_time_intervals, on_mute }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Environment, from_str};

    // As Alertmanager's docs write it: a block pasted as is.
    const ALERTMANAGER_BLOCK: &str = "time_intervals:
  - name: offhours
    time_intervals:
      - times:
          - start_time: '18:00'
            end_time: '24:00'
          - start_time: '00:00'
            end_time: '08:00'
        location: 'Europe/Berlin'
      - weekdays: ['saturday', 'sunday']
  - name: holidays
    time_intervals:
      - months: ['december']
        days_of_month: ['24:26']
        years: ['2026']
";

    fn load(receiver_keys: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        let text =
            format!("{ALERTMANAGER_BLOCK}receivers:\n  - name: chat\n    url: http://127.0.0.1:1/\n{receiver_keys}");
        from_str(&text, Path::new("/nonexistent/amrelay.yml"), &Environment::empty())
    }

    fn ts(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn an_alertmanager_block_loads_and_receivers_name_its_sets() {
        let config = load("    mute_time_intervals: [offhours]\n    on_mute: hold\n").unwrap();
        let mute = &config.receivers[0].mute;
        assert_eq!(mute.on_mute, OnMute::Hold);
        // Monday 2026-12-07 10:00 in Berlin (09:00 UTC): working hours.
        assert_eq!(mute.muted_by(ts("2026-12-07T09:00:00Z")), None);
        // 19:00 in Berlin.
        assert_eq!(mute.muted_by(ts("2026-12-07T18:00:00Z")), Some(MutedBy::MuteInterval("offhours".into())));
        // Saturday noon (UTC, the second interval has no location).
        assert_eq!(mute.muted_by(ts("2026-12-12T12:00:00Z")), Some(MutedBy::MuteInterval("offhours".into())));
    }

    #[test]
    fn active_intervals_mute_outside_them() {
        let config = load("    active_time_intervals: [holidays]\n").unwrap();
        let mute = &config.receivers[0].mute;
        assert_eq!(mute.muted_by(ts("2026-12-25T12:00:00Z")), None);
        assert_eq!(mute.muted_by(ts("2026-12-27T12:00:00Z")), Some(MutedBy::OutsideActive));
    }

    #[test]
    fn unknown_names_and_bad_on_mute_are_errors_at_their_position() {
        let error = load("    mute_time_intervals: [offhours, nights]\n    on_mute: later\n").unwrap_err();
        let text = error.to_string();
        assert_eq!(error.issues.len(), 2, "{text}");
        assert!(text.contains(":19:37:") && text.contains("receivers[0].mute_time_intervals[1]"), "{text}");
        assert!(text.contains("\"nights\" is not defined in time_intervals"), "{text}");
        assert!(text.contains(":20:") && text.contains("receivers[0].on_mute"), "{text}");
    }

    #[test]
    fn interval_errors_name_their_field_and_line() {
        let text = "time_intervals:\n  - name: x\n    time_intervals:\n      - weekdays: ['friday:monday']\n";
        let error = from_str(text, Path::new("/nonexistent/amrelay.yml"), &Environment::empty()).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(":4:") && text.contains("time_intervals[0].time_intervals[0].weekdays[0]"), "{text}");
        assert!(text.contains("start day cannot be before end day"), "{text}");
    }
}

#[cfg(test)]
mod nats_tests {
    use std::path::Path;

    use crate::config::{Environment, from_str};

    // Regression guard: a held notification would block its JetStream partition for every group.
    #[test]
    fn hold_is_refused_with_the_shared_queue() {
        let text = "delivery:\n  nats: {urls: ['nats://127.0.0.1:4222']}\nreceivers:\n  - name: pager\n    url: http://127.0.0.1:1/\n    on_mute: hold\n";
        let error = from_str(text, Path::new("/nonexistent/amrelay.yml"), &Environment::empty()).unwrap_err();
        assert!(error.to_string().contains("on_mute: hold is not supported with delivery.nats"), "{error}");
    }
}
