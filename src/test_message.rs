//! "Send test message": a synthetic notification sent straight to one receiver.
//!
//! It goes through the receiver's real URL, auth and TLS, outside its queue, ignoring its rules
//! and its `enabled` flag, so a receiver can be checked before it is switched on. The alert is
//! marked as a test in its labels (`amrelay_test="true"`) and annotations.
//!
//! It is judged as a delivery is (`Target::send_judged`): a destination that refuses in an
//! HTTP 200 (DingTalk's `errcode`, Slack's `ok: false`, …) fails the test with the vendor's
//! words, e.g. "DingTalk refused: errcode 310000 keywords not in content".
//!
//! Its answer is the downstream's status code and the error kind; the answer's body is shown
//! only as a short snippet scrubbed of the receiver's own secrets (see
//! [`crate::redact::Scrubber`]), since a test is an HTTP client anyone with the console can
//! point anywhere. Tests in flight are bounded: one per receiver and
//! [`MAX_TESTS_IN_FLIGHT`] in all ([`TestsInFlight`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use crate::deliver::Target;

/// What happened to a test message.
#[derive(Debug, Clone, Serialize)]
pub struct TestOutcome {
    pub receiver: String,
    /// True when the destination took it: a 2xx answer whose body (for a destination that
    /// answers in its body) says so.
    pub delivered: bool,
    /// The downstream's status code, when it answered.
    pub status_code: Option<u16>,
    pub latency_seconds: f64,
    /// `dns`, `connect`, `tls`, `timeout`, `http_status`, `refused` (the destination's body
    /// refused), `template` or `other`, on failure.
    pub error_kind: Option<&'static str>,
    /// The precise error, with a snippet of the body for an HTTP status: scrubbed of every
    /// secret of the receiver (credentials, token, secret headers, signing key, the URL's
    /// hidden parts), as sent or encoded.
    pub error: Option<String>,
}

/// Test messages in flight at once across all receivers and endpoints; past it, `429`.
pub const MAX_TESTS_IN_FLIGHT: usize = 4;

/// The test messages in flight: at most one per receiver name, at most [`MAX_TESTS_IN_FLIGHT`]
/// in all. Lock-free: a concurrent set of names and an atomic count.
#[derive(Debug, Default)]
pub struct TestsInFlight {
    receivers: papaya::HashSet<String>,
    total: AtomicUsize,
}

/// Why a test message was not sent now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("a test message to {0:?} is already in flight: wait for its outcome")]
    Receiver(String),
    #[error("{MAX_TESTS_IN_FLIGHT} test messages are already in flight (the most at once): try again when one is done")]
    All,
}

impl TestsInFlight {
    /// A slot for a test message to `receiver`, held until the returned guard is dropped.
    pub fn claim(&self, receiver: &str) -> Result<InFlight<'_>, Busy> {
        let claimed = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_TESTS_IN_FLIGHT).then_some(n + 1));
        if claimed.is_err() {
            return Err(Busy::All);
        }
        if !self.receivers.pin().insert(receiver.to_owned()) {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy::Receiver(receiver.to_owned()));
        }
        Ok(InFlight { tests: self, receiver: receiver.to_owned() })
    }
}

/// A test message in flight; its slot is released when dropped.
#[derive(Debug)]
pub struct InFlight<'t> {
    tests: &'t TestsInFlight,
    receiver: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.tests.receivers.pin().remove(&self.receiver);
        self.tests.total.fetch_sub(1, Ordering::AcqRel);
    }
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
    let body = prepared.attempt_body(target);
    let result = target.send_judged(url, prepared.content_type.clone(), body, Some(&id)).await;
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
                crate::deliver::FailureKind::Status(s) | crate::deliver::FailureKind::Refused { status: s, .. } => {
                    Some(s.as_u16())
                }
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
    fn tests_in_flight_are_one_per_receiver_and_capped_in_all() {
        let tests = TestsInFlight::default();
        let a = tests.claim("a").unwrap();
        assert_eq!(tests.claim("a").unwrap_err(), Busy::Receiver("a".into()));
        let held: Vec<_> = ["b", "c", "d"].iter().map(|name| tests.claim(name).unwrap()).collect();
        assert_eq!(tests.claim("e").unwrap_err(), Busy::All);
        drop(a);
        let again = tests.claim("a").unwrap();
        drop((again, held));
        assert_eq!(tests.total.load(Ordering::Acquire), 0, "every slot is released");
    }

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
