//! Payloads held to what Alertmanager itself sends, from fixtures captured from Alertmanager 0.25
//! (tests/fixtures/alertmanager-0.25/README.md says how).

use serde_json::{Value, json};

use crate::support::{Downstream, TestRelay};

const GROUP: &str = include_str!("../fixtures/alertmanager-0.25/truncation-group.json");
const MAX2: &str = include_str!("../fixtures/alertmanager-0.25/truncation-max-alerts-2.json");
const EMPTY_ANNOTATION: &str = include_str!("../fixtures/alertmanager-0.25/empty-annotation.json");

/// What Alertmanager computes, and the groupKey.
fn fields(payload: &Value) -> Value {
    let mut fields = crate::support::computed_fields(payload);
    fields["groupKey"] = payload["groupKey"].clone();
    fields
}

/// Regression: `max_alerts` now truncates before status and common fields are computed, so
/// amrelay's `max_alerts: 2` payload is Alertmanager's own `max_alerts: 2` payload.
#[tokio::test]
async fn max_alerts_payload_is_the_one_alertmanager_sends() {
    let downstream = Downstream::start().await;
    let yaml = format!(
        "receivers:\n  - name: all\n    url: {}\n  - name: two\n    url: {}\n    max_alerts: 2\n",
        downstream.url("/all"),
        downstream.url("/two")
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", GROUP).await.status, 200);
    let received = downstream.wait_for(2).await;
    let got = |path: &str| received.iter().find(|r| r.path == path).unwrap().body.clone();

    let alertmanager: Value = serde_json::from_str(MAX2).unwrap();
    assert_eq!(fields(&got("/two")), fields(&alertmanager));
    assert_eq!(got("/two")["status"], "resolved", "the two alerts sent are resolved");
    let group: Value = serde_json::from_str(GROUP).unwrap();
    assert_eq!(fields(&got("/all")), fields(&group));
}

/// Regression: a missing annotation reads as `""`, so `summary: ""` stays common.
#[tokio::test]
async fn an_empty_annotation_stays_common_as_in_alertmanager() {
    let downstream = Downstream::start().await;
    let yaml =
        format!("receivers:\n  - name: warn\n    url: {}\n    matchers: ['severity=warning']\n", downstream.url("/w"));
    let relay = TestRelay::start(&yaml).await;
    let mut body: Value = serde_json::from_str(EMPTY_ANNOTATION).unwrap();
    // Hide Alertmanager's answer: amrelay must compute it, not pass it through.
    body["commonAnnotations"] = json!({});
    assert_eq!(relay.post("/webhook", body.to_string()).await.status, 200);
    let received = downstream.wait_for(1).await;
    let alertmanager: Value = serde_json::from_str(EMPTY_ANNOTATION).unwrap();
    assert_eq!(received[0].body["commonAnnotations"], json!({"description": "d", "summary": ""}));
    assert_eq!(fields(&received[0].body), fields(&alertmanager));
}

/// `notification_reason` kept for a receiver that gets the whole group or where it still holds,
/// dropped where it cannot be decided; `routeLabels` and unknown fields pass through unchanged.
/// (Alertmanager 0.25 sends neither field; the shape follows Alertmanager 0.34's `template.Data`.)
#[tokio::test]
async fn notification_reason_is_recomputed_for_each_receivers_alerts() {
    let downstream = Downstream::start().await;
    let yaml = format!(
        "receivers:\n  - name: all\n    url: {}\n  - name: critical\n    url: {}\n    matchers: ['severity=critical']\n  \
         - name: warning\n    url: {}\n    matchers: ['severity=warning']\n",
        downstream.url("/all"),
        downstream.url("/critical"),
        downstream.url("/warning")
    );
    let relay = TestRelay::start(&yaml).await;
    for (round, (reason, all, critical, warning)) in [
        ("new alerts added", true, false, false),
        ("first notification", true, true, false),
        ("repeat interval elapsed", true, true, false),
        ("some alerts resolved", true, false, false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body: Value = serde_json::from_str(GROUP).unwrap();
        body["notification_reason"] = json!(reason);
        body["routeLabels"] = json!({"team": "db", "alertname": "Trunc"});
        body["fromTheFuture"] = json!({"x": [1, 2]});
        // A group of its own per round, so no round is taken for another's duplicate.
        body["groupKey"] = json!(format!("{{}}:{{alertname=\"Trunc\", round=\"{round}\"}}"));
        assert_eq!(relay.post("/webhook", body.to_string()).await.status, 200);
        let received = downstream.wait_for(3 * (round + 1)).await;
        let got = |path: &str| received.iter().rev().find(|r| r.path == path).unwrap().body.clone();
        for (path, kept) in [("/all", all), ("/critical", critical), ("/warning", warning)] {
            let payload = got(path);
            assert_eq!(payload.get("notification_reason").is_some(), kept, "{reason}: {path}");
            if kept {
                assert_eq!(payload["notification_reason"], reason);
            }
            assert_eq!(payload["routeLabels"], json!({"team": "db", "alertname": "Trunc"}));
            assert_eq!(payload["fromTheFuture"], json!({"x": [1, 2]}));
        }
    }
}
