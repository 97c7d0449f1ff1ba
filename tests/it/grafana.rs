//! Grafana alerting's webhook contact point as a second source, over real sockets: its payload
//! (`version: "1"`, shaped as Grafana documents it: tests/fixtures/grafana/webhook.json) is routed
//! by the same conditions, each receiver gets Grafana's shape back with only its alerts (common
//! fields and `state` recomputed, every Grafana field kept), templates and presets see its extra
//! fields, and with `server.grafana` its HMAC signature is checked: good, missing, wrong, stale.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{Downstream, Reply, TestRelay, computed_fields, post_json_with};

fn fixture() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/grafana/webhook.json")).unwrap()
}

fn config(downstream: &Downstream, server: &str) -> String {
    format!(
        "server: {{{server}}}
receivers:
  - name: eu
    url: {eu}
    conditions: [{{label: zone, operator: In, values: [eu-1]}}]
  - name: us
    url: {us}
    matchers: ['zone=\"us-1\"']
  - name: chat
    url: {chat}
    preset: slack
    conditions: [{{label: zone, operator: In, values: [eu-1]}}]
  - name: custom
    url: {custom}
    content_type: text/plain
    body: '{{{{ orgId }}}} {{{{ state }}}} {{{{ alerts[0].panelURL }}}} {{{{ alerts[0].valueString }}}}'
    conditions: [{{label: zone, operator: In, values: [eu-1]}}]
",
        eu = downstream.url("/eu"),
        us = downstream.url("/us"),
        chat = downstream.url("/chat"),
        custom = downstream.url("/custom"),
    )
}

async fn post(relay: &TestRelay, body: &str, headers: &[(&str, String)]) -> Reply {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    post_json_with(&relay.url("/webhook"), body.to_owned(), &headers).await
}

fn at(received: &[crate::support::Received], path: &str) -> Value {
    received.iter().find(|r| r.path == path).unwrap_or_else(|| panic!("nothing at {path}")).body.clone()
}

/// Regression (review): Grafana's payload was refused with 400 (not version "4"). Each receiver
/// now gets Grafana's shape with only its alerts: `version` "1", `orgId`, `title`, `message`
/// kept; `status`, `state`, `commonLabels` and `commonAnnotations` recomputed for its alerts;
/// each alert with all its Grafana fields.
#[tokio::test]
async fn grafana_alerts_are_routed_and_each_receiver_gets_grafanas_shape() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&config(&downstream, "")).await;
    let reply = post(&relay, &fixture(), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let received = downstream.wait_for(4).await;
    let sent: Value = serde_json::from_str(&fixture()).unwrap();

    let eu = at(&received, "/eu");
    assert_eq!(eu["version"], "1");
    assert_eq!((eu["orgId"].clone(), eu["title"].clone()), (sent["orgId"].clone(), sent["title"].clone()));
    assert_eq!(eu["message"], sent["message"]);
    assert_eq!(eu["alerts"], json!([sent["alerts"][0]]), "the eu-1 alert, every field as Grafana sent it");
    assert_eq!((eu["status"].clone(), eu["state"].clone()), (json!("firing"), json!("alerting")));
    assert_eq!(eu["commonLabels"]["zone"], "eu-1", "recomputed for the alerts sent");
    assert_eq!(computed_fields(&eu)["commonAnnotations"]["summary"], "Disk on eu-1 is 93% full");

    let us = at(&received, "/us");
    assert_eq!(us["alerts"], json!([sent["alerts"][1]]));
    assert_eq!((us["status"].clone(), us["state"].clone()), (json!("resolved"), json!("ok")));

    // Templates see Grafana's fields; the presets link to the panel when there is one.
    let custom = received.iter().find(|r| r.path == "/custom").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&custom.raw_body),
        "1 alerting https://grafana.example.com/d/storage01?orgId=1&viewPanel=4 \
         [ var='A' labels={zone=eu-1} value=93.2 ], [ var='C' labels={zone=eu-1} value=1 ]"
    );
    let chat = at(&received, "/chat").to_string();
    assert!(chat.contains("<https://grafana.example.com/d/storage01?orgId=1&amp;viewPanel=4|dashboard>"), "{chat}");
}

fn hmac_hex(message: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"grafana-hmac-secret");
    ring::hmac::sign(&key, message).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// With `server.grafana`, a Grafana post must carry Grafana's HMAC-SHA256 of its body (lowercase
/// hex in `X-Grafana-Alerting-Signature`): missing or wrong is a 401 and nothing is delivered;
/// Alertmanager's payloads, which Grafana's setting does not concern, still get in.
#[tokio::test]
async fn a_grafana_post_needs_its_signature_when_server_grafana_is_set() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&config(&downstream, "grafana: {hmac_secret: grafana-hmac-secret}")).await;
    let body = fixture();
    let missing = post(&relay, &body, &[]).await;
    assert_eq!(missing.status, 401, "{}", missing.text());
    assert!(missing.text().contains("x-grafana-alerting-signature"), "{}", missing.text());
    let wrong = post(&relay, &body, &[("x-grafana-alerting-signature", hmac_hex(b"another body"))]).await;
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    assert!(downstream.received().is_empty());
    let good = post(&relay, &body, &[("x-grafana-alerting-signature", hmac_hex(body.as_bytes()))]).await;
    assert_eq!(good.status, 200, "{}", good.text());
    downstream.wait_for(4).await;
    let alertmanager =
        crate::support::batch("{}:{a=\"1\"}", vec![crate::support::alert("firing", json!({"zone": "eu-1"}))]);
    assert_eq!(relay.post("/webhook", alertmanager).await.status, 200);
    assert_eq!(
        relay.metric(r#"amrelay_http_auth_failures_total{reason="grafana_signature"}"#).await.map(|v| v >= 2.0),
        Some(true)
    );
}

/// With a timestamp header configured (Grafana has no default name for it), the signature
/// covers `TIMESTAMP:BODY` and a timestamp older than `server.grafana.max_age` is refused.
#[tokio::test]
async fn a_timestamped_grafana_signature_must_be_fresh() {
    let downstream = Downstream::start().await;
    let server = "grafana: {hmac_secret: grafana-hmac-secret, signature_header: X-Signature, \
                  timestamp_header: X-Signature-Timestamp, max_age: 1m}";
    let relay = TestRelay::start(&config(&downstream, server)).await;
    let body = fixture();
    let signed = |at: u64| {
        let signature = hmac_hex(format!("{at}:{body}").as_bytes());
        vec![("x-signature", signature), ("x-signature-timestamp", at.to_string())]
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let stale = post(&relay, &body, &signed(now - 120)).await;
    assert_eq!(stale.status, 401, "{}", stale.text());
    assert!(stale.text().contains("max_age"), "{}", stale.text());
    let body_only =
        post(&relay, &body, &[("x-signature", hmac_hex(body.as_bytes())), ("x-signature-timestamp", now.to_string())])
            .await;
    assert_eq!(body_only.status, 401, "the timestamp is part of what is signed");
    let fresh = post(&relay, &body, &signed(now)).await;
    assert_eq!(fresh.status, 200, "{}", fresh.text());
    downstream.wait_for(4).await;
}

/// A version Grafana's legacy alerting or anything else sends is still refused, saying which
/// versions amrelay takes.
#[tokio::test]
async fn another_version_is_refused_naming_both_accepted() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&config(&downstream, "")).await;
    let reply = post(&relay, &fixture().replace("\"version\": \"1\"", "\"version\": \"2\""), &[]).await;
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("\\\"4\\\"") && reply.text().contains("\\\"1\\\""), "{}", reply.text());
}

/// The console's route test (`POST /api/v1/route-test`) explains a Grafana payload as it
/// explains Alertmanager's: which receiver gets which alert.
#[tokio::test]
async fn the_route_test_explains_a_grafana_payload() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&config(&downstream, "")).await;
    let reply = relay.post("/api/v1/route-test", fixture()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let data = &reply.json()["data"];
    assert_eq!(data["receiving"], json!(["eu", "us", "chat", "custom"]), "{data}");
    let alerts_of = |name: &str| {
        data["receivers"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["alerts"].clone()
    };
    assert_eq!(alerts_of("eu"), json!([0]), "{data}");
    assert_eq!(alerts_of("us"), json!([1]), "{data}");
    assert!(downstream.received().is_empty(), "a route test sends nothing");
}
