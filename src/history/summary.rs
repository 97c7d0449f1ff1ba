//! What a history record needs of a notification's alerts — its status, their fingerprints and
//! alert names — gathered when the batch is routed, where the alerts are already decoded, so that
//! finishing a notification does not decode its body a second time (which cost about as much
//! as accepting it). A notification without one (restored from the spool or a stream, or sent
//! with fewer alerts because some were muted) has its body decoded when it finishes.

use crate::payload::{Alert, Status};

use super::MAX_ALERTS_KEPT;

/// The alerts' facts, packed: one string and the end of each entry in it, so a queued
/// notification holds two allocations for them, whatever its number of alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    firing: bool,
    /// The fingerprints, then the distinct non-empty alert names, one after the other (sized
    /// for the fingerprints and a few names up front: no growing).
    text: String,
    ends: Vec<u32>,
    /// How many of the entries are fingerprints.
    fingerprints: usize,
}

impl Summary {
    /// The facts of `alerts` (at most [`MAX_ALERTS_KEPT`] of them are kept, as a record does).
    pub fn of<'a, 'b: 'a>(alerts: impl Iterator<Item = &'a Alert<'b>> + Clone) -> Summary {
        let mut firing = false;
        let kept = || alerts.clone().take(MAX_ALERTS_KEPT);
        let fingerprints_len: usize = kept().filter_map(|a| a.fingerprint.as_ref()).map(|f| f.as_str().len()).sum();
        let mut text = String::with_capacity(fingerprints_len + 64);
        let mut ends = Vec::with_capacity(kept().count() + 4);
        for alert in kept() {
            firing |= alert.status == Status::Firing;
            if let Some(fingerprint) = &alert.fingerprint {
                text.push_str(fingerprint.as_str());
                ends.push(text.len() as u32);
            }
        }
        let fingerprints = ends.len();
        for alert in kept() {
            let Some(name) = alert.labels.value("alertname").filter(|n| !n.is_empty()) else { continue };
            let mut start = ends.get(fingerprints.wrapping_sub(1)).map_or(0, |&e| e as usize);
            let seen = ends[fingerprints..].iter().any(|&end| {
                let known = &text[start..end as usize];
                start = end as usize;
                known == name
            });
            if !seen {
                text.push_str(name);
                ends.push(text.len() as u32);
            }
        }
        Summary { firing, text, ends, fingerprints }
    }

    /// The notification's `status`: `firing` when one of its alerts fires.
    pub fn status(&self) -> &'static str {
        if self.firing { "firing" } else { "resolved" }
    }

    fn entries(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let entry = &self.text[start..end as usize];
            start = end as usize;
            entry
        })
    }

    pub fn fingerprints(&self) -> impl Iterator<Item = &str> {
        self.entries().take(self.fingerprints)
    }

    pub fn alertnames(&self) -> impl Iterator<Item = &str> {
        self.entries().skip(self.fingerprints)
    }

    /// The heap it holds (for the memory budget of a queued notification).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Summary>() + self.text.capacity() + self.ends.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_fingerprints_in_order_and_each_alert_name_once() {
        let body = r#"{"version":"4","status":"firing","groupKey":"g","alerts":[
            {"status":"resolved","labels":{"alertname":"Disk"},"fingerprint":"aa01"},
            {"status":"firing","labels":{"alertname":"Cpu"},"fingerprint":"bb02"},
            {"status":"firing","labels":{"alertname":"Disk"},"fingerprint":"cc03"},
            {"status":"firing","labels":{"alertname":""}},
            {"status":"firing","labels":{"x":"y"},"fingerprint":7}]}"#;
        let n = crate::payload::decode(body.as_bytes()).unwrap();
        let summary = Summary::of(n.alerts.iter());
        assert_eq!(summary.status(), "firing");
        assert_eq!(summary.fingerprints().collect::<Vec<_>>(), ["aa01", "bb02", "cc03"]);
        assert_eq!(summary.alertnames().collect::<Vec<_>>(), ["Disk", "Cpu"]);
        let resolved = Summary::of(n.alerts.iter().take(1));
        assert_eq!(resolved.status(), "resolved");
        assert_eq!(resolved.alertnames().collect::<Vec<_>>(), ["Disk"]);
    }

    #[test]
    fn keeps_at_most_max_alerts_kept() {
        let alerts: Vec<String> = (0..MAX_ALERTS_KEPT + 5)
            .map(|i| format!(r#"{{"status":"firing","labels":{{"alertname":"A{i}"}},"fingerprint":"f{i}"}}"#))
            .collect();
        let body = format!(r#"{{"version":"4","status":"firing","alerts":[{}]}}"#, alerts.join(","));
        let n = crate::payload::decode(body.as_bytes()).unwrap();
        let summary = Summary::of(n.alerts.iter());
        assert_eq!(summary.fingerprints().count(), MAX_ALERTS_KEPT);
        assert_eq!(summary.alertnames().count(), MAX_ALERTS_KEPT);
        assert_eq!(summary.fingerprints().last(), Some(format!("f{}", MAX_ALERTS_KEPT - 1).as_str()));
    }
}
