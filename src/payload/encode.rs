//! Building the payload one receiver gets: a truthful version "4" notification of only its alerts.
//!
//! `status`, `commonLabels`, `commonAnnotations` and `truncatedAlerts` are recomputed, as
//! Alertmanager computes them: over every alert that matched the receiver, including any that
//! `max_alerts` then cuts (which are counted in `truncatedAlerts`). Everything else is copied
//! byte for byte: alerts as received and in their order, `groupKey`, `groupLabels`, `receiver`,
//! `externalURL`, and unknown top-level fields.

use std::io::Write;

use super::decode::{Alert, Notification, Status};
use super::labels::LabelSet;

/// Writes the payload for `matched` (indices into `n.alerts`, in order), keeping at most
/// `max_alerts` of them (0 = all).
pub fn encode(n: &Notification<'_>, matched: &[usize], max_alerts: usize, out: &mut Vec<u8>) {
    let kept = if max_alerts == 0 { matched.len() } else { matched.len().min(max_alerts) };
    let cut = (matched.len() - kept) as u64;
    let status =
        if matched.iter().any(|&i| n.alerts[i].status == Status::Firing) { Status::Firing } else { Status::Resolved };

    out.extend_from_slice(b"{\"receiver\":");
    out.extend_from_slice(n.receiver.map_or("\"\"", |r| r.get()).as_bytes());
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"alerts\":[");
    for (position, &i) in matched[..kept].iter().enumerate() {
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
    out.extend_from_slice(b",\"version\":\"4\",\"groupKey\":");
    write_json_str(out, n.group_key.as_str());
    let _ = write!(out, ",\"truncatedAlerts\":{}", n.truncated_alerts.saturating_add(cut));
    for (key, value) in &n.extras {
        out.push(b',');
        write_json_str(out, key.as_str());
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
    }
    out.push(b'}');
}

/// Writes the name/value pairs shared by every matched alert, sorted by name.
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
            if others.iter().all(|o| o.value(name) == Some(value)) {
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
               "groupKey": "{}:{alertname=\"A\"}", "truncatedAlerts": 2, "notification_reason": "r"})
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
        assert_eq!(out["notification_reason"], "r");

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
