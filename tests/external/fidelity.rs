//! amrelay's payloads held to a real Alertmanager's: the same alerts reach a downstream twice,
//! once from Alertmanager's own `webhook_config` with `max_alerts: 2` and once through amrelay
//! (fed by a `webhook_config` without a limit) with `max_alerts: 2`. Both must describe the
//! alerts sent the same way: `status`, `commonLabels`, `commonAnnotations` (a missing annotation
//! read as `""`), `truncatedAlerts`. The fixtures in tests/fixtures/alertmanager-0.25 were
//! captured the same way; this test checks against whatever Alertmanager is installed.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::programs::{PROGRAM_WAIT, rfc3339};
use crate::real_programs::{FAST_ROUTE, post_alerts, start_alertmanager};
use crate::support::eventually::eventually;
use crate::support::{Downstream, TestRelay, computed_fields};

#[tokio::test]
async fn max_alerts_and_common_annotations_match_alertmanagers_own_webhook() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&format!(
        "receivers:\n  - name: max2\n    url: {}\n    max_alerts: 2\n",
        downstream.url("/relay-max2")
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (_alertmanager, alertmanager) = start_alertmanager(
        dir.path(),
        &format!(
            "{FAST_ROUTE}receivers:
  - name: amrelay
    webhook_configs:
      - url: {}
        max_alerts: 2
      - url: http://{}/webhook
",
            downstream.url("/am-max2"),
            relay.addr
        ),
    )
    .await;

    // Started within `group_wait` (1 s): Alertmanager holds the first flush for `group_wait`, so it
    // has every alert of the post. (It flushes at once for an alert older than that, possibly
    // before the rest of the post is in the group.) Resolved ones end before now.
    let now = SystemTime::now();
    let (start, past) = (now - Duration::from_millis(500), now - Duration::from_millis(100));
    let alert = |labels: Value, annotations: Value, resolved: bool| {
        let mut a = json!({"labels": labels, "annotations": annotations, "startsAt": rfc3339(start)});
        if resolved {
            a["endsAt"] = rfc3339(past).into();
        }
        a
    };
    let alerts = json!([
        alert(
            json!({"alertname": "Trunc", "instance": "a", "severity": "warning", "team": "db"}),
            json!({"summary": "disk a", "runbook": "r1"}),
            true
        ),
        alert(
            json!({"alertname": "Trunc", "instance": "b", "severity": "warning", "team": "db"}),
            json!({"summary": "disk b", "runbook": "r1"}),
            true
        ),
        alert(
            json!({"alertname": "Trunc", "instance": "c", "severity": "critical", "team": "web"}),
            json!({"summary": "disk c", "runbook": "r2"}),
            false
        ),
        alert(
            json!({"alertname": "Annot", "instance": "a", "severity": "warning"}),
            json!({"summary": "", "description": "d"}),
            false
        ),
        alert(
            json!({"alertname": "Annot", "instance": "b", "severity": "warning"}),
            json!({"description": "d"}),
            false
        ),
    ]);
    post_alerts(&alertmanager, alerts.to_string()).await;

    for group in ["Trunc", "Annot"] {
        let first = |path: &str| {
            downstream
                .received()
                .into_iter()
                .find(|r| r.path == path && r.body["groupLabels"]["alertname"] == group)
                .map(|r| r.body)
        };
        let (direct, relayed) =
            eventually(&format!("{group}'s notification on both paths"), PROGRAM_WAIT, async || {
                Some((first("/am-max2")?, first("/relay-max2")?))
            })
            .await;
        assert_eq!(computed_fields(&relayed), computed_fields(&direct), "{group}");
        match group {
            "Trunc" => {
                assert_eq!(direct["truncatedAlerts"], 1, "{direct}");
                assert_eq!(direct["status"], "resolved", "the two alerts sent are resolved: {direct}");
            }
            _ => assert_eq!(direct["commonAnnotations"], json!({"description": "d", "summary": ""})),
        }
    }
}
