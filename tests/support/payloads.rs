//! Webhook payloads shaped as Alertmanager sends them, built from labels, so that a test
//! states only what it varies.

use serde_json::Value;

/// An alert as Alertmanager sends it.
pub fn alert(status: &str, labels: Value) -> Value {
    let fingerprint = format!("{:016x}", amrelay::fnv1a(labels.to_string().as_bytes()));
    serde_json::json!({
        "status": status, "labels": labels, "annotations": {"summary": "test"},
        "startsAt": "2026-11-29T04:36:08.227Z",
        "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2026-11-29T04:40:00Z" },
        "generatorURL": "http://prometheus.example:9090/graph", "fingerprint": fingerprint,
    })
}

/// A version "4" batch of `alerts` for `group_key`.
pub fn batch(group_key: &str, alerts: Vec<Value>) -> String {
    let firing = alerts.iter().any(|a| a["status"] == "firing");
    serde_json::json!({
        "receiver": "amrelay", "status": if firing { "firing" } else { "resolved" }, "alerts": alerts,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "version": "4", "groupKey": group_key, "truncatedAlerts": 0,
    })
    .to_string()
}

/// The fields Alertmanager computes for a notification (status, alerts, the common and group
/// labels, truncation), to compare amrelay's payload with Alertmanager's own.
pub fn computed_fields(payload: &Value) -> Value {
    serde_json::json!({
        "status": payload["status"],
        "alerts": payload["alerts"],
        "commonLabels": payload["commonLabels"],
        "commonAnnotations": payload["commonAnnotations"],
        "truncatedAlerts": payload["truncatedAlerts"],
        "groupLabels": payload["groupLabels"],
    })
}
