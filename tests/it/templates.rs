//! Templates end to end: `payload` mappings, `body` with its content type, shared `templates:`
//! files, check-config errors with positions, reloads that change a template, render errors
//! dead-lettered, the rate limit, hostile label values, and route-test showing the body.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Downstream, TestRelay, alert, batch, get, post_json};

fn hostile() -> String {
    let mut value = String::from("\"quotes\" back\\slash\nnew line {{ 7*7 }} {% raw %} <b>html</b> ");
    while value.len() < 10_000 {
        value.push_str("ten kB of text. ");
    }
    value
}

fn check(file: &Path) -> (bool, String) {
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_amrelay")).arg("check-config").arg(file).output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A `payload` leaf that is one expression keeps its JSON type; text leaves (and keys) are
/// strings; nothing in a label value is read as a template.
#[tokio::test]
async fn payload_inserts_structured_values_and_stays_valid_json_with_hostile_labels() {
    let sink = Downstream::start().await;
    let yaml = format!(
        r#"receivers:
  - name: api
    url: {}
    payload:
      title: '[{{{{ status | upper }}}}] {{{{ commonLabels.alertname }}}}'
      alerts: '{{{{ alerts | toJson }}}}'
      count: '{{{{ alerts | length }}}}'
      truncated: '{{{{ truncatedAlerts }}}}'
      missing: '{{{{ commonLabels.no_such_label }}}}'
      fixed: [1, true, null, literal]
      nested:
        '{{{{ receiver }}}}': '{{{{ firing | length }}}} firing, {{{{ resolved | length }}}} resolved'
"#,
        sink.url("/api")
    );
    let relay = TestRelay::start(&yaml).await;
    let value = hostile();
    let payload = batch(
        "{}:{alertname=\"Evil\"}",
        vec![
            alert("firing", json!({"alertname": "Evil", "evil": value})),
            alert("resolved", json!({"alertname": "Evil", "evil": value})),
        ],
    );
    assert_eq!(relay.post("/webhook", payload).await.status, 200);
    let got = sink.wait_for(1).await.remove(0);
    assert_eq!(got.header("content-type"), Some("application/json"));
    let body = &got.body;
    assert_eq!(body["title"], "[FIRING] Evil");
    assert_eq!(body["alerts"][0]["labels"]["evil"], value.as_str(), "inserted as JSON, byte for byte");
    assert_eq!(body["count"], 2);
    assert_eq!(body["truncated"], 0);
    assert_eq!(body["missing"], "", "a missing label renders empty");
    assert_eq!(body["fixed"], json!([1, true, null, "literal"]));
    let nested = body["nested"].as_object().unwrap();
    assert_eq!(nested.values().next().unwrap(), "1 firing, 1 resolved");
}

/// `body` with `text/plain`: the template's text is the body, sent with that content type; a
/// JSON `body` escapes values as JSON.
#[tokio::test]
async fn body_is_sent_as_rendered_with_its_content_type() {
    let sink = Downstream::start().await;
    let yaml = format!(
        r#"receivers:
  - name: text
    url: {}
    content_type: text/plain; charset=utf-8
    body: |
      {{{{ status | upper }}}}: {{% for a in alerts %}}{{{{ a.labels.alertname }}}} {{% endfor %}}
  - name: json
    url: {}
    body: '{{"who": {{{{ commonLabels.evil }}}}, "n": {{{{ alerts | length }}}}}}'
"#,
        sink.url("/text"),
        sink.url("/json")
    );
    let relay = TestRelay::start(&yaml).await;
    let value = hostile();
    let payload = batch("{}:{a=\"b\"}", vec![alert("firing", json!({"alertname": "Disk", "evil": value}))]);
    assert_eq!(relay.post("/webhook", payload).await.status, 200);
    let received = sink.wait_for(2).await;
    let text = received.iter().find(|r| r.path == "/text").unwrap();
    assert_eq!(text.header("content-type"), Some("text/plain; charset=utf-8"));
    // As in Jinja, the block scalar's final newline is not part of the output.
    assert_eq!(&text.raw_body[..], b"FIRING: Disk ");
    let json = received.iter().find(|r| r.path == "/json").unwrap();
    assert_eq!(json.body, json!({"who": value, "n": 1}));
}

/// Shared macros from `templates:` files are importable by file name, and a change to one
/// reloads the config.
#[tokio::test]
async fn shared_template_files_are_imported_and_a_reload_changes_the_body() {
    let sink = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    let macros = dir.path().join("templates/macros.j2");
    std::fs::write(&macros, "{% macro headline(s) %}v1 {{ s }}{% endmacro %}").unwrap();
    let yaml = format!(
        r#"templates: [templates/*.j2]
receivers:
  - name: chat
    url: {}
    payload:
      text: '{{% from "macros.j2" import headline %}}{{{{ headline(status) }}}}'
"#,
        sink.url("/chat")
    );
    let relay = TestRelay::start_in(dir, &yaml).await;
    let one = batch("{}:{g=\"1\"}", vec![alert("firing", json!({"alertname": "A"}))]);
    assert_eq!(relay.post("/webhook", one).await.status, 200);
    assert_eq!(sink.wait_for(1).await[0].body["text"], "v1 firing");

    std::fs::write(&macros, "{% macro headline(s) %}v2 {{ s | upper }}{% endmacro %}").unwrap();
    let reload = post_json(&relay.url("/-/reload"), "").await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    let two = batch("{}:{g=\"2\"}", vec![alert("firing", json!({"alertname": "A"}))]);
    assert_eq!(relay.post("/webhook", two).await.status, 200);
    assert_eq!(sink.wait_for(2).await[1].body["text"], "v2 FIRING");

    // A broken template never replaces the running one.
    std::fs::write(&macros, "{% macro headline(s) %}{{ s | nosuchfilter }}{% endmacro %}").unwrap();
    let reload = post_json(&relay.url("/-/reload"), "").await;
    assert_ne!(reload.status, 200);
    assert!(reload.text().contains("nosuchfilter"), "{}", reload.text());
    let three = batch("{}:{g=\"3\"}", vec![alert("firing", json!({"alertname": "A"}))]);
    assert_eq!(relay.post("/webhook", three).await.status, 200);
    assert_eq!(sink.wait_for(3).await[2].body["text"], "v2 FIRING");
}

/// A notification queued before a reload is rendered with the template current at its first
/// attempt: the queue keeps the v4 payload, not a rendered body.
#[tokio::test]
async fn a_reload_applies_a_new_template_to_queued_notifications() {
    let sink = Downstream::start().await;
    sink.script([crate::support::Answer::status(200).delayed(Duration::from_millis(1500))]);
    let template = |version: &str| {
        format!(
            "receivers:\n  - name: slow\n    url: {}\n    max_concurrency: 1\n    payload:\n      v: '{version} {{{{ groupKey }}}}'\n",
            sink.url("/slow")
        )
    };
    let relay = TestRelay::start(&template("old")).await;
    for g in ["a", "b"] {
        let payload = batch(g, vec![alert("firing", json!({"alertname": g}))]);
        assert_eq!(relay.post("/webhook", payload).await.status, 200);
    }
    // The first is in flight (answered slowly); the second waits in the queue.
    sink.wait_for(1).await;
    std::fs::write(relay.dir.path().join("amrelay.yml"), template("new")).unwrap();
    assert_eq!(post_json(&relay.url("/-/reload"), "").await.status, 200);
    let received = sink.wait_for(2).await;
    assert_eq!(received[0].body["v"], "old a");
    assert_eq!(received[1].body["v"], "new b");
}

/// A render error (fuel spent, a 50 MB body) dead-letters that notification with the reason
/// `template`, once, without retrying and without blocking the ones after it.
#[tokio::test]
async fn render_errors_are_dead_lettered_with_reason_template() {
    let sink = Downstream::start().await;
    let yaml = format!(
        r#"receivers:
  - name: fragile
    url: {}
    max_concurrency: 1
    body: |
      {{% if commonLabels.mode == "loop" %}}{{% for i in range(100000) %}}{{% for j in range(100000) %}}x{{% endfor %}}{{% endfor %}}{{% endif %}}
      {{% if commonLabels.mode == "huge" %}}{{{{ "x" * 60000000 }}}}{{% endif %}}
      {{"ok": {{{{ commonLabels.alertname }}}}}}
"#,
        sink.url("/fragile")
    );
    let relay = TestRelay::start(&yaml).await;
    for (group, mode) in [("g1", "loop"), ("g2", "huge"), ("g3", "fine")] {
        let payload = batch(group, vec![alert("firing", json!({"alertname": group, "mode": mode}))]);
        assert_eq!(relay.post("/webhook", payload).await.status, 200);
    }
    relay.wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="fragile",reason="template"}"#, 2.0).await;
    let delivered = sink.wait_for(1).await;
    assert_eq!(delivered[0].body, json!({"ok": "g3"}), "the queue goes on after render errors");
    let letters = get(&relay.url("/api/v1/deadletters")).await.json()["data"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 2);
    let errors: Vec<&str> = letters.iter().map(|l| l["last_error"].as_str().unwrap()).collect();
    assert!(letters.iter().all(|l| l["reason"] == "template" && l["attempts"] == 0), "{letters:?}");
    assert!(errors.iter().any(|e| e.contains("out of fuel")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("size limit")), "{errors:?}");
    sink.assert_stays_at(1, Duration::from_millis(300)).await;
}

/// `rate_limit` holds notifications back to the receiver's pace and loses none.
#[tokio::test]
async fn the_rate_limit_paces_deliveries_and_loses_none() {
    let sink = Downstream::start().await;
    let yaml = format!(
        "receivers:\n  - name: chat\n    url: {}\n    preset: slack\n    rate_limit: {{per_second: 20, burst: 2}}\n",
        sink.url("/chat")
    );
    let relay = TestRelay::start(&yaml).await;
    let started = Instant::now();
    for i in 0..12 {
        let payload = batch(&format!("g{i}"), vec![alert("firing", json!({"alertname": format!("A{i}")}))]);
        assert_eq!(relay.post("/webhook", payload).await.status, 200);
    }
    let received = sink.wait_for(12).await;
    assert_eq!(received.len(), 12);
    // Two at once, then one every 50 ms: ten intervals at least (a lower bound only).
    let span = received.last().unwrap().at.duration_since(started);
    assert!(span >= Duration::from_millis(450), "{span:?}");
    let mut names: Vec<String> =
        received.iter().map(|r| r.body["blocks"][0]["text"]["text"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 12, "every notification delivered once: {names:?}");
}

/// check-config names each template mistake with its YAML line and column, and the options a
/// preset lacks.
#[test]
fn check_config_reports_template_errors_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(
        &file,
        r#"receivers:
  - name: a
    url: http://127.0.0.1:1/
    body: |
      first line
      {{ status | nosuchfilter }}
  - name: b
    url: http://127.0.0.1:1/
    payload:
      text: '{{ status '
  - name: c
    url: http://127.0.0.1:1/
    preset: pagerduty
  - name: d
    url: http://127.0.0.1:1/
    preset: telegram
    preset_options: {chat: 1}
  - name: e
    url: http://127.0.0.1:1/
    preset: nosuchpreset
  - name: f
    url: http://127.0.0.1:1/
    content_type: application/json
    body: 'not json {{ status }}'
"#,
    )
    .unwrap();
    let (ok, out) = check(&file);
    assert!(!ok, "{out}");
    assert!(
        out.contains("bad.yml:6:19: receivers[0].body: template line 2, column 13: unknown filter: nosuchfilter"),
        "{out}"
    );
    assert!(out.contains("bad.yml:10:") && out.contains("receivers[1].payload.text: template line 1"), "{out}");
    assert!(out.contains("receivers[2].preset_options.routing_key: the pagerduty preset needs preset_options.routing_key_file (or routing_key)"), "{out}");
    assert!(out.contains("receivers[3].preset_options.chat: is not an option of the telegram preset"), "{out}");
    assert!(
        out.contains("receivers[3].preset_options.chat_id: the telegram preset needs preset_options.chat_id"),
        "{out}"
    );
    assert!(out.contains("receivers[4].preset: unknown preset \"nosuchpreset\""), "{out}");
    assert!(
        out.contains("receivers[5].body: fails on a sample notification: the rendered body is not valid JSON"),
        "{out}"
    );
}

/// route-test (CLI and API) shows the exact body each receiver would be sent, with its
/// content type; a preset's secret is shown as `<secret>`.
#[tokio::test]
async fn route_test_shows_each_receivers_body() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pd-key"), "pd-secret-key\n").unwrap();
    let yaml = r#"receivers:
  - name: pd
    url: http://127.0.0.1:1/
    preset: pagerduty
    preset_options: {routing_key_file: pd-key}
  - name: text
    url: http://127.0.0.1:1/
    content_type: text/plain
    body: '{{ alerts | length }} alert(s)'
  - name: plain
    url: http://127.0.0.1:1/
    matchers: ['alertname="Nothing"']
"#;
    let config = dir.path().join("amrelay.yml");
    std::fs::write(&config, yaml).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"))
        .args(["route-test", "--json", "--alert", "alertname=Disk,severity=critical"])
        .arg(format!("--config.file={}", config.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    assert!(!stdout.contains("pd-secret-key"), "{stdout}");
    let explanation: Value = serde_json::from_str(&stdout).unwrap();
    let receivers = explanation["receivers"].as_array().unwrap();
    let pd: Value = serde_json::from_str(receivers[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(receivers[0]["content_type"], "application/json");
    assert_eq!(pd["routing_key"], "<secret>");
    assert_eq!(pd["payload"]["severity"], "critical");
    assert_eq!(receivers[1]["body"], "1 alert(s)");
    assert_eq!(receivers[1]["content_type"], "text/plain");
    assert!(receivers[2].get("body").is_none(), "a receiver that gets nothing has no body");

    let text = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"))
        .args(["route-test", "--alert", "alertname=Disk"])
        .arg(format!("--config.file={}", config.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("  body (text/plain, 10 bytes):\n    1 alert(s)\n"), "{text}");

    let relay = TestRelay::start_in(dir, yaml).await;
    let api = relay.post("/api/v1/route-test", batch("g", vec![alert("firing", json!({"alertname": "Disk"}))])).await;
    assert_eq!(api.status, 200, "{}", api.text());
    assert_eq!(api.json()["data"]["receivers"][1]["body"], "1 alert(s)");
    assert!(!api.text().contains("pd-secret-key"));
}
