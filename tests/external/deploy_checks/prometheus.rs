//! The PrometheusRule passes `promtool` (with unit tests of its alerts), and the dashboard and alerts query only metrics a real relay exports.

use super::render::*;
use super::*;

fn prometheus_rule() -> Value {
    let base = render(&deploy().join("kubernetes/base"));
    find(&base, "PrometheusRule", "amrelay").expect("the base renders the PrometheusRule amrelay").clone()
}

/// Every alert of the PrometheusRule fires on the series that should fire it.
const RULE_TESTS: &str = r#"
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="amrelay", instance="a:9098"}'
        values: '0x15'
      # A receiver's first dead letter creates its series at 1 (at 6m here, at 0m below);
      # a later one raises it (at 30m below).
      - series: 'amrelay_notifications_dead_lettered_total{job="amrelay", instance="a:9098", namespace="monitoring", receiver="chat", reason="non_retryable"}'
        values: '_x5 1x44'
      - series: 'amrelay_notifications_dead_lettered_total{job="amrelay", instance="a:9098", namespace="monitoring", receiver="chat", reason="max_attempts"}'
        values: '1x29 2x20'
      - series: 'amrelay_config_last_reload_successful{job="amrelay", instance="a:9098"}'
        values: '1x5 0x10'
      - series: 'amrelay_queue_depth{job="amrelay", instance="a:9098", receiver="chat"}'
        values: '0x5 9000x10'
      - series: 'amrelay_queue_capacity{job="amrelay", instance="a:9098", receiver="chat"}'
        values: '10000x15'
      - series: 'amrelay_delivery_attempts_total{job="amrelay", instance="a:9098", namespace="monitoring", receiver="chat", outcome="2xx"}'
        values: '0+10x30'
      - series: 'amrelay_delivery_attempts_total{job="amrelay", instance="a:9098", namespace="monitoring", receiver="chat", outcome="5xx"}'
        values: '0+5x30'
      - series: 'amrelay_spool_healthy{job="amrelay", instance="a:9098"}'
        values: '1x5 0x10'
      - series: 'amrelay_spool_bytes{job="amrelay", instance="a:9098"}'
        values: '0x5 900x10'
      - series: 'amrelay_spool_max_bytes{job="amrelay", instance="a:9098"}'
        values: '1000x15'
    alert_rule_test:
      - eval_time: 5m
        alertname: AmrelaySpoolUnhealthy
        exp_alerts: []
      - eval_time: 8m
        alertname: AmrelaySpoolUnhealthy
        exp_alerts:
          - exp_labels: {severity: critical, job: amrelay, instance: "a:9098"}
      - eval_time: 12m
        alertname: AmrelaySpoolFilling
        exp_alerts:
          - exp_labels: {severity: warning, job: amrelay, instance: "a:9098"}
      - eval_time: 10m
        alertname: AmrelayDown
        exp_alerts:
          - exp_labels: {severity: critical, job: amrelay, instance: "a:9098"}
      - eval_time: 10m
        alertname: AmrelayNotificationsDeadLettered
        exp_alerts:
          - exp_labels: {severity: critical, namespace: monitoring, receiver: chat, reason: non_retryable}
          - exp_labels: {severity: critical, namespace: monitoring, receiver: chat, reason: max_attempts}
      - eval_time: 25m
        alertname: AmrelayNotificationsDeadLettered
        exp_alerts: []
      - eval_time: 35m
        alertname: AmrelayNotificationsDeadLettered
        exp_alerts:
          - exp_labels: {severity: critical, namespace: monitoring, receiver: chat, reason: max_attempts}
      - eval_time: 12m
        alertname: AmrelayConfigReloadFailed
        exp_alerts:
          - exp_labels: {severity: warning, job: amrelay, instance: "a:9098"}
      - eval_time: 12m
        alertname: AmrelayQueueSaturated
        exp_alerts:
          - exp_labels: {severity: warning, job: amrelay, instance: "a:9098", receiver: chat}
      - eval_time: 20m
        alertname: AmrelayDownstreamFailing
        exp_alerts:
          - exp_labels: {severity: warning, namespace: monitoring, receiver: chat}
"#;

/// `promtool check rules` accepts the PrometheusRule's rules, and `promtool test rules` shows
/// each alert firing when it should, a receiver's first dead letter included.
#[test]
fn prometheus_rules_pass_promtool() {
    let rule = prometheus_rule();
    let groups = &rule["spec"]["groups"];
    let alerts: BTreeSet<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    for expected in [
        "AmrelayNotificationsDeadLettered",
        "AmrelayConfigReloadFailed",
        "AmrelayQueueSaturated",
        "AmrelayDownstreamFailing",
    ] {
        assert!(alerts.contains(expected), "{expected} in {alerts:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, rule["spec"].to_string()).unwrap();
    let checked = run(Command::new(promtool()).args(["check", "rules"]).arg(&rules));
    assert!(checked.success, "promtool check rules:\n{}", checked.output);

    // The unit tests compare labels; annotations are templates checked above.
    let mut unannotated = rule["spec"].clone();
    for group in unannotated["groups"].as_array_mut().unwrap() {
        for rule in group["rules"].as_array_mut().unwrap() {
            rule.as_object_mut().unwrap().remove("annotations");
        }
    }
    std::fs::write(&rules, unannotated.to_string()).unwrap();
    let tests = dir.path().join("rules.test.yml");
    std::fs::write(&tests, RULE_TESTS).unwrap();
    let tested = run(Command::new(promtool()).args(["test", "rules"]).arg(&tests));
    assert!(tested.success, "promtool test rules:\n{}", tested.output);
    for alert in alerts {
        assert!(RULE_TESTS.contains(&format!("alertname: {alert}\n")), "{alert} has no unit test in RULE_TESTS");
    }
}

/// The names of the samples in a Prometheus text scrape, histograms' `_bucket`, `_sum` and
/// `_count` included, plus every name a `# TYPE` line declares.
fn sample_names(scrape: &str) -> std::collections::BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(typed) => typed.split_whitespace().next(),
            None if line.starts_with('#') || line.trim().is_empty() => None,
            None => line.split(['{', ' ']).next(),
        })
        .map(str::to_owned)
        .collect()
}

/// The `amrelay_*` metric names a PromQL expression uses.
fn amrelay_metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("amrelay_") {
        let preceded_by_word =
            rest[..start].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
        if !preceded_by_word {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

fn dashboard() -> Value {
    let file = deploy().join("grafana/amrelay-dashboard.json");
    serde_json::from_str(&read(&file)).unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()))
}

/// Every query in the dashboard: its panels' targets (rows included) and its variables.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("a target with expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] == "query" {
            queries.push(variable["definition"].as_str().unwrap().to_owned());
        }
    }
    queries
}

/// The dashboard parses, each panel queries the dashboard's data source, and every query is
/// valid PromQL (once Grafana's variables are substituted).
#[test]
fn dashboard_queries_are_valid_promql() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "amrelay");
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "unique panel ids");
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
            assert!(!panel["targets"].as_array().unwrap().is_empty());
        }
    }
    let rules: Vec<Value> = dashboard_queries(&dashboard)
        .iter()
        .filter(|q| !q.starts_with("label_values("))
        .enumerate()
        .map(|(i, query)| {
            let expr = query.replace("$__rate_interval", "5m").replace("$job", ".+").replace("$receiver", ".+");
            json!({"record": format!("dashboard:query_{i}"), "expr": expr})
        })
        .collect();
    assert!(rules.len() >= 10, "{rules:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string()).unwrap();
    let checked = run(Command::new(promtool()).args(["check", "rules"]).arg(&file));
    assert!(checked.success, "the dashboard's queries are not valid PromQL:\n{}", checked.output);
}

/// Every amrelay metric the dashboard and the alerts query appears in a real scrape of a relay
/// after traffic; and the dashboard covers each part of the relay.
#[tokio::test]
async fn dashboard_and_alerts_query_only_real_metrics() {
    let dashboard_queries = dashboard_queries(&dashboard());
    let rule_file = yaml_file(&deploy().join("kubernetes/base/prometheusrule.yaml"));
    let rule_queries: Vec<String> = rule_file["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();

    let (relay, _downstreams) = relay_after_traffic("dashboard").await;
    let scrape = get(&relay.url("/metrics")).await.text();
    let exported = sample_names(&scrape);
    for (source, queries) in [
        ("deploy/grafana/amrelay-dashboard.json", &dashboard_queries),
        ("deploy/kubernetes/base/prometheusrule.yaml", &rule_queries),
    ] {
        for query in queries.iter() {
            let names = amrelay_metric_names(query);
            for name in names {
                assert!(
                    exported.contains(&name),
                    "{source} queries {name}, which amrelay does not export:\n{query}\n\
                     exported: {exported:#?}"
                );
            }
        }
    }
    let used: BTreeSet<String> = dashboard_queries.iter().flat_map(|q| amrelay_metric_names(q)).collect();
    for needed in [
        "amrelay_alerts_received_total",
        "amrelay_receiver_alerts_matched_total",
        "amrelay_receiver_alerts_filtered_total",
        "amrelay_delivery_latency_seconds_bucket",
        "amrelay_delivery_attempts_total",
        "amrelay_queue_depth",
        "amrelay_notifications_dead_lettered_total",
        "amrelay_config_reloads_total",
        "amrelay_spool_bytes",
        "amrelay_webhook_pacing_wait_duration_seconds_count",
    ] {
        assert!(used.contains(needed), "the dashboard shows {needed}");
    }
}
