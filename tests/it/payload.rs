//! What a receiver gets: a truthful version "4" payload of only its alerts.

use serde_json::{Value, json};

use crate::support::{Downstream, TestRelay};

const MULTI: &str = include_str!("../fixtures/am-payload-multi.json");
const RESOLVED: &str = include_str!("../fixtures/am-payload-resolved.json");

/// Common fields and status are recomputed, the rest passes through, truncation is counted.
#[tokio::test]
async fn payload_is_recomputed_for_the_matching_alerts() {
    let downstream = Downstream::start().await;
    let yaml = format!(
        "receivers:
  - name: pay-critical
    url: {}
    conditions: [{{label: severity, operator: In, values: [critical]}}]
  - name: pay-truncated
    url: {}
    max_alerts: 1
",
        downstream.url("/critical"),
        downstream.url("/truncated")
    );
    let relay = TestRelay::start(&yaml).await;
    // A newer Alertmanager's extra fields must reach the downstream untouched.
    let mut body: Value = serde_json::from_str(MULTI).unwrap();
    body["notification_reason"] = json!("first notification");
    body["routeLabels"] = json!({"team": "shop"});
    let reply = relay.post("/webhook", body.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["alerts"], 3);

    let received = downstream.wait_for(2).await;
    let critical = &received.iter().find(|r| r.path == "/critical").unwrap().body;
    let original: Value = serde_json::from_str(MULTI).unwrap();
    assert_eq!(critical["alerts"], json!([original["alerts"][2]]));
    assert_eq!(critical["status"], "firing");
    assert_eq!(critical["commonLabels"], original["alerts"][2]["labels"], "recomputed over the one alert");
    assert_eq!(critical["commonAnnotations"], json!({}));
    for kept in ["receiver", "groupKey", "groupLabels", "externalURL", "version"] {
        assert_eq!(critical[kept], original[kept], "{kept} is passed through");
    }
    assert_eq!(critical["truncatedAlerts"], 0);
    assert_eq!(critical["notification_reason"], "first notification", "holds for a firing subset");
    assert_eq!(critical["routeLabels"], json!({"team": "shop"}));

    let truncated = &received.iter().find(|r| r.path == "/truncated").unwrap().body;
    assert_eq!(truncated["alerts"], json!([original["alerts"][0]]), "first alert kept, in order");
    assert_eq!(truncated["truncatedAlerts"], 2);
    assert_eq!(truncated["commonLabels"], original["alerts"][0]["labels"], "computed over the alerts sent");
}

/// A resolved notification stays resolved; status follows the forwarded alerts.
#[tokio::test]
async fn resolved_notifications_are_forwarded_as_resolved() {
    let downstream = Downstream::start().await;
    let yaml = format!("receivers:\n  - name: pay-resolved\n    url: {}\n", downstream.url("/r"));
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", RESOLVED).await.status, 200);
    let received = downstream.wait_for(1).await;
    assert_eq!(received[0].body["status"], "resolved");
    assert_eq!(received[0].body["alerts"][0]["endsAt"], "2026-11-29T04:37:07.837Z");
}

/// `POST /webhook/{receiver}` delivers to that receiver only; an unknown name is a 404 naming it.
#[tokio::test]
async fn targeted_webhook_reaches_only_the_named_receiver() {
    let downstream = Downstream::start().await;
    let yaml = format!(
        "receivers:\n  - name: pay-one\n    url: {}\n  - name: pay-two\n    url: {}\n",
        downstream.url("/one"),
        downstream.url("/two")
    );
    let relay = TestRelay::start(&yaml).await;
    let reply = relay.post("/webhook/pay-two", MULTI).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["receivers"], json!({"pay-two": 3}));
    let received = downstream.wait_for(1).await;
    downstream.assert_stays_at(1, std::time::Duration::from_millis(200)).await;
    assert_eq!(received[0].path, "/two");

    let unknown = relay.post("/webhook/nope", MULTI).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "unknown receiver \"nope\"");
}
