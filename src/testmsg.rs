//! "Send test message": a synthetic notification sent straight to one receiver.
//!
//! It goes through the receiver's real URL, auth and TLS, outside its queue, ignoring its rules
//! and its `enabled` flag, so a receiver can be checked before it is switched on. The alert is
//! marked as a test in its labels (`amrelay_test="true"`) and annotations.

use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use crate::deliver::Target;

/// What happened to a test message.
#[derive(Debug, Clone, Serialize)]
pub struct TestOutcome {
    pub receiver: String,
    /// True on a 2xx answer.
    pub delivered: bool,
    /// The downstream's status code, when it answered.
    pub status_code: Option<u16>,
    pub latency_seconds: f64,
    /// `dns`, `connect`, `tls`, `timeout`, `http_status`, `template` or `other`, on failure.
    pub error_kind: Option<&'static str>,
    /// The precise error, with a snippet of the body for an HTTP status.
    pub error: Option<String>,
}

/// The synthetic version "4" notification.
pub fn payload(receiver: &str) -> Bytes {
    let now = rfc3339(SystemTime::now());
    let labels =
        json!({"alertname": "AmrelayTestMessage", "amrelay_test": "true", "receiver": receiver, "severity": "none"});
    let annotations = json!({
        "summary": "Test message from amrelay",
        "description": format!("This is a test notification sent by amrelay to receiver {receiver:?}. No action is needed."),
    });
    let body = json!({
        "receiver": receiver,
        "status": "firing",
        "alerts": [{
            "status": "firing", "labels": labels, "annotations": annotations,
            "startsAt": now, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "0000000000000000",
        }],
        "groupLabels": {"alertname": "AmrelayTestMessage"},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "version": "4",
        "groupKey": "{}:{alertname=\"AmrelayTestMessage\"}",
        "truncatedAlerts": 0,
    });
    Bytes::from(body.to_string())
}

/// Sends a test message to `receiver` through `target`, rendered with its template (preset,
/// `payload` or `body`) as a real notification would be.
pub async fn send(target: &Target, receiver: &str) -> TestOutcome {
    let started = std::time::Instant::now();
    let id = format!("test-{:016x}", fastrand::u64(..));
    let prepared = match crate::deliver::Prepared::new(target, &payload(receiver)) {
        Ok(prepared) => prepared,
        Err(e) => {
            return TestOutcome {
                receiver: receiver.into(),
                delivered: false,
                status_code: None,
                latency_seconds: started.elapsed().as_secs_f64(),
                error_kind: Some("template"),
                error: Some(e.to_string()),
            };
        }
    };
    let url = prepared.url(target);
    let result = target.send_to(url, prepared.content_type.clone(), prepared.body.clone(), Some(&id)).await;
    let latency_seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(status) => TestOutcome {
            receiver: receiver.into(),
            delivered: true,
            status_code: Some(status.as_u16()),
            latency_seconds,
            error_kind: None,
            error: None,
        },
        Err(failure) => TestOutcome {
            receiver: receiver.into(),
            delivered: false,
            status_code: match failure.kind {
                crate::deliver::FailureKind::Status(s) => Some(s.as_u16()),
                _ => None,
            },
            latency_seconds,
            error_kind: Some(failure.kind_name()),
            error: Some(failure.detail),
        },
    }
}

/// Formats a time as RFC 3339 in UTC with milliseconds, as Alertmanager writes `startsAt`.
pub fn rfc3339(time: SystemTime) -> String {
    let timestamp = jiff::Timestamp::try_from(time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    timestamp.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_930_031_886);
        assert_eq!(rfc3339(t), "2026-11-29T05:27:11.886Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn payload_is_a_valid_marked_v4_notification() {
        let body = payload("ops");
        let n = crate::payload::decode(&body).unwrap();
        assert_eq!(n.alerts.len(), 1);
        assert_eq!(n.alerts[0].labels.value("amrelay_test"), Some("true"));
    }
}
