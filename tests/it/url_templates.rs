//! URL templates (`url` with templates in its path and query) over real sockets: each value is
//! one percent-encoded segment or query value, hostile values cannot climb or add parameters, a
//! value that renders empty dead-letters the notification with reason `template`, and a template
//! in the scheme, host or port is a config error.

use std::path::Path;

use serde_json::json;

use crate::support::eventually::{ensure, eventually};
use crate::support::{Downstream, TestRelay, WAIT, alert, batch, get};

fn one(group: &str, labels: serde_json::Value) -> String {
    batch(&format!("{{}}:{{g=\"{group}\"}}"), vec![alert("firing", labels)])
}

/// Each notification goes to the path its labels render, encoded; hostile values stay inside
/// their segment; a missing value is a dead letter (reason `template`), not another URL.
#[tokio::test]
async fn a_url_template_renders_each_value_as_one_encoded_segment() {
    let downstream = Downstream::start().await;
    let url = format!(
        "{}/t/{{{{ commonLabels.namespace }}}}/alerts?ns={{{{ commonLabels.namespace }}}}&fixed=1",
        downstream.url("").trim_end_matches('/')
    );
    let yaml =
        format!("delivery: {{retry: {{max_attempts: 1}}}}\nreceivers:\n  - name: per-namespace\n    url: '{url}'\n");
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", one("a", json!({"alertname": "A", "namespace": "team-a"}))).await.status, 200);
    let first = downstream.wait_for(1).await;
    assert_eq!((first[0].path.as_str(), first[0].query.as_str()), ("/t/team-a/alerts", "ns=team-a&fixed=1"));

    let hostile = json!({"alertname": "H", "namespace": "../../admin?x=1&fixed=2#f"});
    assert_eq!(relay.post("/webhook", one("h", hostile)).await.status, 200);
    let second = downstream.wait_for(2).await;
    assert_eq!(second[1].path, "/t/..%2F..%2Fadmin%3Fx%3D1%26fixed%3D2%23f/alerts");
    assert_eq!(second[1].query, "ns=..%2F..%2Fadmin%3Fx%3D1%26fixed%3D2%23f&fixed=1");
    assert_eq!(relay.post("/webhook", one("d", json!({"alertname": "D", "namespace": ".."}))).await.status, 200);
    assert_eq!(downstream.wait_for(3).await[2].path, "/t/%2E%2E/alerts");

    // No namespace: the URL would render empty.
    assert_eq!(relay.post("/webhook", one("e", json!({"alertname": "E"}))).await.status, 200);
    let letters = relay.url("/api/v1/deadletters?receiver=per-namespace");
    let letter = eventually("the dead letter", WAIT, async || {
        let page = get(&letters).await.json();
        let first = page["data"][0].clone();
        ensure(!first.is_null(), || page.to_string()).map(|()| first)
    })
    .await;
    assert_eq!(letter["reason"], "template", "{letter}");
    assert_eq!(downstream.received().len(), 3);
}

/// A template in the scheme, host or port is a config error naming the field.
#[test]
fn a_template_outside_the_path_and_query_is_a_config_error() {
    for url in ["https://{{ commonLabels.team }}.example.com/", "https://example.com:{{ commonLabels.port }}/x"] {
        let text = format!("receivers:\n  - name: a\n    url: '{url}'\n");
        let error = amrelay::config::from_str(
            &text,
            Path::new("/nonexistent/amrelay.yml"),
            &amrelay::config::Environment::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("receivers[0].url") && error.contains("path and query"), "{error}");
    }
}
