//! Every operator and matcher, evaluated by a running relay on real batches.

use serde_json::json;

use crate::support::{Downstream, TestRelay, alert, batch};

/// Each receiver gets exactly the alerts its rule selects; identified by their `id` label.
#[tokio::test]
async fn each_operator_and_matcher_selects_exactly_its_alerts() {
    let downstream = Downstream::start().await;
    let receivers = [
        ("cond-in", "conditions: [{label: severity, operator: In, values: [critical, warning]}]", vec!["a1", "a2"]),
        ("cond-in-unicode", "conditions: [{label: namespace, operator: In, values: [\"ünïcode ✓\"]}]", vec!["a3"]),
        (
            "cond-notin",
            "conditions: [{label: namespace, operator: NotIn, values: [kube-system]}]",
            vec!["a1", "a3", "a4"],
        ),
        ("cond-exists", "conditions: [{label: team, operator: Exists}]", vec!["a1"]),
        ("cond-dne", "conditions: [{label: team, operator: DoesNotExist}]", vec!["a2", "a3", "a4"]),
        ("cond-eq", r#"matchers: ['severity="critical"']"#, vec!["a1"]),
        ("cond-neq", r#"matchers: ['severity!="critical"']"#, vec!["a2", "a3", "a4"]),
        ("cond-re", r#"matchers: ['alertname=~"Kube.*"']"#, vec!["a1", "a3"]),
        ("cond-nre", r#"matchers: ['alertname!~"Kube.*"']"#, vec!["a2", "a4"]),
        ("cond-empty-eq", r#"matchers: ['severity=""']"#, vec!["a3"]),
        ("cond-braced", r#"matchers: ['{severity=~"crit.*|warn.*", namespace!="prod"}']"#, vec!["a2"]),
        (
            "cond-both",
            r#"conditions: [{label: severity, operator: In, values: [critical, warning]}]
    matchers: ['alertname=~"Disk.*"']"#,
            vec!["a2"],
        ),
        ("cond-all", "conditions: []", vec!["a1", "a2", "a3", "a4"]),
        ("cond-none", "conditions: [{label: severity, operator: In, values: [page]}]", vec![]),
        ("cond-disabled", "enabled: false", vec![]),
    ];
    let mut yaml = String::from("receivers:\n");
    for (name, rule, _) in &receivers {
        yaml.push_str(&format!("  - name: {name}\n    url: {}\n    {rule}\n", downstream.url(&format!("/{name}"))));
    }
    let relay = TestRelay::start(&yaml).await;

    let alerts = vec![
        alert(
            "firing",
            json!({"id": "a1", "alertname": "KubeDown", "severity": "critical", "namespace": "prod", "team": "sre"}),
        ),
        alert(
            "firing",
            json!({"id": "a2", "alertname": "DiskFull", "severity": "warning", "namespace": "kube-system"}),
        ),
        alert(
            "firing",
            json!({"id": "a3", "alertname": "KubeX", "severity": "", "namespace": "ünïcode ✓", "team": ""}),
        ),
        alert("firing", json!({"id": "a4", "alertname": "Other", "severity": "info"})),
    ];
    let reply = relay.post("/webhook", batch("{}:{alertname=\"x\"}", alerts)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let expected_requests = receivers.iter().filter(|(_, _, ids)| !ids.is_empty()).count();
    downstream.wait_for(expected_requests).await;
    downstream.assert_stays_at(expected_requests, std::time::Duration::from_millis(200)).await;
    let received = downstream.received();
    for (name, _, ids) in &receivers {
        let at_path: Vec<_> = received.iter().filter(|r| r.path == format!("/{name}")).collect();
        if ids.is_empty() {
            assert!(at_path.is_empty(), "{name} should get nothing");
        } else {
            assert_eq!(at_path.len(), 1, "{name} should get one notification");
            assert_eq!(at_path[0].labels("id"), *ids, "{name}");
        }
    }
    // The summary names each receiver that took the batch, with its alert count.
    assert_eq!(reply.json()["receivers"]["cond-in"], 2);
    assert_eq!(reply.json()["receivers"].get("cond-disabled"), None);
}

/// `send_resolved: false` drops resolved alerts; a receiver left with none gets nothing.
#[tokio::test]
async fn send_resolved_false_drops_resolved_alerts() {
    let downstream = Downstream::start().await;
    let yaml =
        format!("receivers:\n  - name: resolved-off\n    url: {}\n    send_resolved: false\n", downstream.url("/off"));
    let relay = TestRelay::start(&yaml).await;
    let mixed = batch("g", vec![alert("resolved", json!({"id": "r1"})), alert("firing", json!({"id": "f1"}))]);
    assert_eq!(relay.post("/webhook", mixed).await.status, 200);
    let only_resolved = batch("g", vec![alert("resolved", json!({"id": "r2"}))]);
    assert_eq!(relay.post("/webhook", only_resolved).await.status, 200);

    let received = downstream.wait_for(1).await;
    downstream.assert_stays_at(1, std::time::Duration::from_millis(200)).await;
    assert_eq!(received[0].labels("id"), vec!["f1"]);
    assert_eq!(received[0].body["status"], "firing");
}
