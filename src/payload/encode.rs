//! Building the payload one receiver gets: a truthful version "4" notification of only its alerts
//! (or, for Grafana's version "1", Grafana's shape: its `state` follows the recomputed status,
//! its other fields and each alert's are kept).
//!
//! `status`, `commonLabels`, `commonAnnotations` and `truncatedAlerts` are recomputed as
//! Alertmanager's webhook notifier computes them: `max_alerts` truncates first (the cut alerts
//! are counted in `truncatedAlerts`), then the other three describe the alerts actually sent. A
//! missing annotation reads as `""` (Go's map lookup), so `summary: ""` on one alert and no
//! `summary` on another keeps `summary: ""` in `commonAnnotations`.
//!
//! `notification_reason` (Alertmanager 0.32+) describes the whole group; see [`reason_for`] for
//! when it still holds for the receiver's alerts. Everything else is copied byte for byte:
//! alerts as received and in their order, `groupKey`, `groupLabels`, `receiver`, `externalURL`,
//! `routeLabels` (0.34+) and unknown top-level fields.

use std::io::Write;

use super::alert::{Alert, Status};
use super::decode::{Notification, Source};
use super::labels::LabelSet;

/// Writes the payload for `matched` (indices into `n.alerts`, in order), keeping at most
/// `max_alerts` of them (0 = all).
pub fn encode(n: &Notification<'_>, matched: &[usize], max_alerts: usize, out: &mut Vec<u8>) {
    let kept = if max_alerts == 0 { matched.len() } else { matched.len().min(max_alerts) };
    let cut = (matched.len() - kept) as u64;
    let any_firing = |alerts: &[usize]| alerts.iter().any(|&i| n.alerts[i].status == Status::Firing);
    let reason = reason_for(n.alerts.len(), matched.len(), any_firing(matched));
    let matched = &matched[..kept];
    let status = if any_firing(matched) { Status::Firing } else { Status::Resolved };

    out.extend_from_slice(b"{\"receiver\":");
    out.extend_from_slice(n.receiver.map_or("\"\"", |r| r.get()).as_bytes());
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"alerts\":[");
    for (position, &i) in matched.iter().enumerate() {
        if position > 0 {
            out.push(b',');
        }
        out.extend_from_slice(n.alerts[i].raw.as_bytes());
    }
    out.extend_from_slice(b"],\"groupLabels\":");
    out.extend_from_slice(n.group_labels.map_or("{}", |r| r.get()).as_bytes());
    out.extend_from_slice(b",\"commonLabels\":");
    write_common(out, n, matched, |a| &a.labels);
    out.extend_from_slice(b",\"commonAnnotations\":");
    write_common(out, n, matched, |a| &a.annotations);
    out.extend_from_slice(b",\"externalURL\":");
    out.extend_from_slice(n.external_url.map_or("\"\"", |r| r.get()).as_bytes());
    out.extend_from_slice(b",\"version\":\"");
    out.extend_from_slice(n.source.version().as_bytes());
    out.extend_from_slice(b"\",\"groupKey\":");
    write_json_str(out, n.group_key.as_str());
    let _ = write!(out, ",\"truncatedAlerts\":{}", n.truncated_alerts.saturating_add(cut));
    for (key, value) in &n.extras {
        if key.as_str() == "notification_reason" && !reason(value.get()) {
            continue;
        }
        out.push(b',');
        write_json_str(out, key.as_str());
        out.push(b':');
        if n.source == Source::Grafana && key.as_str() == "state" {
            // Grafana's group state follows the status of the alerts sent.
            out.extend_from_slice(if status == Status::Firing { b"\"alerting\"" } else { b"\"ok\"" });
        } else {
            out.extend_from_slice(value.get().as_bytes());
        }
    }
    out.push(b'}');
}

/// Whether the group's `notification_reason` (raw JSON) still holds for a receiver given
/// `matched` of the group's `total` alerts (before `max_alerts`, which Alertmanager applies after
/// deciding the reason too), `matched_firing` telling whether any of them fires.
///
/// Alertmanager decides the reason from its notification log, which amrelay cannot see, so:
/// every alert matched → the group's reason is the receiver's, whatever it says. Otherwise
/// `first notification` and `repeat interval elapsed` hold for any subset with a firing alert
/// (nothing in the group was notified before / nothing in it changed), and `all alerts resolved`
/// for any subset (no alert in the group fires). `new alerts added` and `some alerts resolved`
/// may concern only alerts the receiver does not get, so they are dropped, as is any other value
/// and any reason for a subset with no firing alert where it needed one.
fn reason_for(total: usize, matched: usize, matched_firing: bool) -> impl Fn(&str) -> bool {
    move |raw| {
        matched == total
            || match raw {
                r#""first notification""# | r#""repeat interval elapsed""# => matched_firing,
                r#""all alerts resolved""# => true,
                _ => false,
            }
    }
}

/// Writes the name/value pairs shared by every alert sent, sorted by name; a name an alert
/// lacks reads as `""` there, as in Alertmanager.
fn write_common<'a>(
    out: &mut Vec<u8>,
    n: &'a Notification<'_>,
    matched: &[usize],
    set: impl Fn(&'a Alert<'_>) -> &'a LabelSet<'a>,
) {
    out.push(b'{');
    let mut rest = matched.iter().map(|&i| set(&n.alerts[i]));
    if let Some(first) = rest.next() {
        let others: Vec<&LabelSet> = rest.collect();
        let mut written = 0;
        for (name, value) in first.pairs() {
            if others.iter().all(|o| o.value(name).unwrap_or("") == value) {
                if written > 0 {
                    out.push(b',');
                }
                write_json_str(out, name);
                out.push(b':');
                write_json_str(out, value);
                written += 1;
            }
        }
    }
    out.push(b'}');
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::payload::decode;

    fn encode_json(body: &str, matched: &[usize], max_alerts: usize) -> Value {
        let n = decode(body.as_bytes()).unwrap();
        let mut out = Vec::new();
        encode(&n, matched, max_alerts, &mut out);
        serde_json::from_slice(&out).expect("encoded payload is valid JSON")
    }

    fn alert(status: &str, labels: Value, annotations: Value) -> Value {
        json!({"status": status, "labels": labels, "annotations": annotations, "startsAt": "2026-01-01T00:00:00Z",
               "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://p", "fingerprint": "f"})
    }

    fn batch(alerts: Vec<Value>) -> String {
        json!({"receiver": "am\\.hook", "status": "firing", "alerts": alerts, "groupLabels": {"alertname": "A"},
               "commonLabels": {"stale": "x"}, "commonAnnotations": {}, "externalURL": "http://am", "version": "4",
               "groupKey": "{}:{alertname=\"A\"}", "truncatedAlerts": 2, "notification_reason": "r",
               "routeLabels": {"team": "a"}, "futureField": [1, {"x": null}]})
        .to_string()
    }

    #[test]
    fn recomputes_common_fields_and_status_over_the_matched_alerts() {
        let body = batch(vec![
            alert("firing", json!({"alertname": "A", "sev": "crit", "ns": "a"}), json!({"s": "x", "d": "1"})),
            alert("resolved", json!({"alertname": "A", "sev": "warn", "ns": "a"}), json!({"s": "x", "d": "2"})),
            alert("resolved", json!({"alertname": "A", "sev": "warn", "ns": "b"}), json!({"s": "x", "d": "2"})),
        ]);
        let out = encode_json(&body, &[1, 2], 0);
        assert_eq!(out["status"], "resolved");
        assert_eq!(out["commonLabels"], json!({"alertname": "A", "sev": "warn"}));
        assert_eq!(out["commonAnnotations"], json!({"s": "x", "d": "2"}));
        assert_eq!(out["alerts"].as_array().unwrap().len(), 2);
        assert_eq!(out["alerts"][0]["labels"]["ns"], "a");
        assert_eq!(out["truncatedAlerts"], 2);
        // Passed through untouched.
        assert_eq!(out["receiver"], "am\\.hook");
        assert_eq!(out["groupKey"], "{}:{alertname=\"A\"}");
        assert_eq!(out["groupLabels"], json!({"alertname": "A"}));
        assert_eq!(out["externalURL"], "http://am");
        assert_eq!(out["version"], "4");
        assert_eq!(out["routeLabels"], json!({"team": "a"}));
        assert_eq!(out["futureField"], json!([1, {"x": null}]));
        // An unknown reason cannot be decided for a subset of the group.
        assert!(out.get("notification_reason").is_none());

        let firing = encode_json(&body, &[0, 1], 0);
        assert_eq!(firing["status"], "firing");
        assert_eq!(firing["commonLabels"], json!({"alertname": "A", "ns": "a"}));
    }

    #[test]
    fn max_alerts_truncates_and_counts_the_cut() {
        let body = batch((0..5).map(|i| alert("firing", json!({"i": i.to_string()}), json!({}))).collect());
        let out = encode_json(&body, &[0, 1, 2, 3, 4], 3);
        assert_eq!(out["alerts"].as_array().unwrap().len(), 3);
        assert_eq!(out["truncatedAlerts"], 2 + 2);
    }

    /// Regression: status and common fields were computed over the alerts `max_alerts` cut too.
    #[test]
    fn max_alerts_truncates_before_status_and_common_fields_are_computed() {
        let body = batch(vec![
            alert("resolved", json!({"alertname": "A", "ns": "a"}), json!({"s": "x"})),
            alert("resolved", json!({"alertname": "A", "ns": "a"}), json!({"s": "x"})),
            alert("firing", json!({"alertname": "A", "ns": "b"}), json!({"s": "y"})),
        ]);
        let out = encode_json(&body, &[0, 1, 2], 2);
        assert_eq!(out["status"], "resolved");
        assert_eq!(out["commonLabels"], json!({"alertname": "A", "ns": "a"}));
        assert_eq!(out["commonAnnotations"], json!({"s": "x"}));
        assert_eq!(out["truncatedAlerts"], 2 + 1);
    }

    /// Regression: a missing annotation is `""` in Alertmanager, so an empty one stays common.
    #[test]
    fn a_missing_annotation_reads_as_empty() {
        let body = batch(vec![
            alert("firing", json!({"alertname": "A"}), json!({"summary": "", "d": "1"})),
            alert("firing", json!({"alertname": "A"}), json!({"d": "1"})),
        ]);
        assert_eq!(encode_json(&body, &[0, 1], 0)["commonAnnotations"], json!({"summary": "", "d": "1"}));
        assert_eq!(encode_json(&body, &[1, 0], 0)["commonAnnotations"], json!({"d": "1"}));
    }

    #[test]
    fn notification_reason_is_kept_only_where_it_holds_for_the_receivers_alerts() {
        let with_reason = |reason: &str| {
            let mut v: Value = serde_json::from_str(&batch(vec![
                alert("firing", json!({"alertname": "A", "i": "1"}), json!({})),
                alert("resolved", json!({"alertname": "A", "i": "2"}), json!({})),
            ]))
            .unwrap();
            v["notification_reason"] = json!(reason);
            v.to_string()
        };
        let reason = |body: &str, matched: &[usize]| encode_json(body, matched, 0).get("notification_reason").cloned();
        for r in ["first notification", "new alerts added", "some alerts resolved", "x"] {
            assert_eq!(reason(&with_reason(r), &[0, 1]), Some(json!(r)), "all alerts matched: {r}");
        }
        assert_eq!(reason(&with_reason("first notification"), &[0]), Some(json!("first notification")));
        assert_eq!(reason(&with_reason("first notification"), &[1]), None);
        assert_eq!(reason(&with_reason("repeat interval elapsed"), &[0]), Some(json!("repeat interval elapsed")));
        assert_eq!(reason(&with_reason("repeat interval elapsed"), &[1]), None);
        assert_eq!(reason(&with_reason("all alerts resolved"), &[1]), Some(json!("all alerts resolved")));
        assert_eq!(reason(&with_reason("new alerts added"), &[0]), None);
        assert_eq!(reason(&with_reason("some alerts resolved"), &[1]), None);
        assert_eq!(reason(&with_reason("unknown"), &[0]), None);
    }

    #[test]
    fn alerts_pass_through_byte_for_byte() {
        let raw = r#"{"status":"firing","labels":{"a":"1"},"extra":{"nested":[1,2.50,"\u00e9"]}}"#;
        let body = format!(r#"{{"version":"4","alerts":[{raw}]}}"#);
        let n = decode(body.as_bytes()).unwrap();
        let mut out = Vec::new();
        encode(&n, &[0], 0, &mut out);
        assert!(String::from_utf8(out).unwrap().contains(raw));
    }
}
