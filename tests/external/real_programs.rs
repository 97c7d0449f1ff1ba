//! amrelay with the real programs around it: Alertmanager posting to it, Prometheus scraping
//! it, promtool linting its metrics. The programs are Debian's (`prometheus-alertmanager`,
//! `prometheus`), started on 127.0.0.1 ports with their own temporary storage; `.ci/run`
//! installs them, and without them these tests fail saying what to install.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::programs::{ChildGuard, PROGRAM_WAIT, debian_program, rfc3339, run_program, start_server, url_encode};
use crate::support::eventually::{ensure, eventually};
use crate::support::{Downstream, Pki, Received, TestRelay, get, post_json};
use crate::traffic::relay_after_traffic;

/// A route that flushes a group within a second of its first alert, to one receiver `amrelay`.
pub(crate) const FAST_ROUTE: &str = "route:
  receiver: amrelay
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
";

/// A real Alertmanager on 127.0.0.1 with `config` (its `{RELAY}` replaced), no cluster gossip,
/// and storage in `dir`.
pub(crate) async fn start_alertmanager(dir: &Path, config: &str) -> (ChildGuard, String) {
    let binary = debian_program(&["prometheus-alertmanager", "alertmanager"], "prometheus-alertmanager");
    let config_file = dir.join("alertmanager.yml");
    std::fs::write(&config_file, config).unwrap();
    let storage = dir.join("data");
    let (child, port) = start_server("alertmanager", dir, "/-/ready", |port| {
        let mut command = Command::new(&binary);
        command
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.external-url=http://127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=debug");
        command
    })
    .await;
    (child, format!("http://127.0.0.1:{port}"))
}

/// Alerts as a client (Prometheus) posts them to Alertmanager's API v2: `endsAt` in the past
/// resolves them.
fn api_alerts(starts_at: SystemTime, ends_at: Option<SystemTime>) -> String {
    let disk_full = json!({"summary": "Disk full", "runbook": "https://runbooks.example/disk"});
    let filling = json!({"summary": "Disk filling up", "runbook": "https://runbooks.example/disk"});
    let alerts = [
        (
            json!({"alertname": "DiskFull", "env": "prod", "team": "storage", "severity": "critical", "instance": "a"}),
            &disk_full,
        ),
        (
            json!({"alertname": "DiskFull", "env": "prod", "team": "storage", "severity": "warning", "instance": "b"}),
            &disk_full,
        ),
        (json!({"alertname": "DiskFull", "env": "prod", "team": "db", "severity": "info", "instance": "c"}), &filling),
    ];
    let alerts: Vec<Value> = alerts
        .into_iter()
        .map(|(labels, annotations)| {
            let mut alert = json!({
                "labels": labels, "annotations": annotations,
                "startsAt": rfc3339(starts_at),
                "generatorURL": "http://prometheus.example:9090/graph",
            });
            if let Some(ends_at) = ends_at {
                alert["endsAt"] = rfc3339(ends_at).into();
            }
            alert
        })
        .collect();
    Value::from(alerts).to_string()
}

pub(crate) async fn post_alerts(alertmanager: &str, body: String) {
    let reply = post_json(&format!("{alertmanager}/api/v2/alerts"), body).await;
    assert_eq!(reply.status, 200, "Alertmanager refused alerts: {}", reply.text());
}

/// The notifications `downstream` received at `path`.
fn at(received: &[Received], path: &str) -> Vec<Received> {
    received.iter().filter(|r| r.path == path).cloned().collect()
}

/// Alertmanager's alerts whose `severity` is one of `severities`, in Alertmanager's order.
fn alerts_with_severity(notification: &Value, severities: &[&str]) -> Vec<Value> {
    notification["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| severities.contains(&a["labels"]["severity"].as_str().unwrap_or("")))
        .cloned()
        .collect()
}

/// Alertmanager → amrelay → downstreams, firing then resolved: each downstream gets only its
/// alerts, byte for byte as Alertmanager sent them, with recomputed common labels and
/// annotations, Alertmanager's group fields, and its own auth.
#[tokio::test]
async fn alertmanager_notifications_reach_only_matching_downstreams() {
    let dir = tempfile::tempdir().unwrap();
    let downstream = Downstream::start().await;
    // Alertmanager's own notification, to compare with what amrelay relays.
    let tap = Downstream::start().await;
    let relay_dir = tempfile::tempdir().unwrap();
    std::fs::write(relay_dir.path().join("password"), "wonderland\n").unwrap();
    std::fs::write(relay_dir.path().join("token"), "t0ken").unwrap();
    let relay = TestRelay::start_in(
        relay_dir,
        &format!(
            "receivers:
  - name: pager
    url: {}
    http_config:
      basic_auth: {{username: alice, password_file: password}}
    conditions:
      - {{label: severity, operator: In, values: [critical, warning]}}
  - name: tickets
    url: {}
    http_config:
      authorization: {{credentials_file: token}}
    matchers: ['severity=\"info\"']
  - name: network
    url: {}
    conditions:
      - {{label: team, operator: In, values: [network]}}
",
            downstream.url("/pager"),
            downstream.url("/tickets"),
            downstream.url("/network"),
        ),
    )
    .await;
    let (_alertmanager, alertmanager) = start_alertmanager(
        dir.path(),
        &format!(
            "global:
  resolve_timeout: 1m
{FAST_ROUTE}receivers:
  - name: amrelay
    webhook_configs:
      - url: {}
        send_resolved: true
        max_alerts: 0
      - url: {}
        send_resolved: true
",
            relay.url("/webhook"),
            tap.url("/tap"),
        ),
    )
    .await;

    // Alerts that start now: Alertmanager waits `group_wait` before the first flush, so all three
    // are in it. (An alert older than `group_wait` flushes its group at once, possibly before
    // the other alerts of the same post are inserted.)
    let starts_at = SystemTime::now();
    post_alerts(&alertmanager, api_alerts(starts_at, None)).await;
    let original = tap.wait_for(1).await[0].body.clone();
    let received = downstream.wait_for(2).await;
    let (pager, tickets) = (at(&received, "/pager"), at(&received, "/tickets"));
    assert_eq!((pager.len(), tickets.len()), (1, 1), "{received:#?}");

    // Alertmanager saw three alerts sharing only alertname and env.
    assert_eq!(original["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(original["commonLabels"], json!({"alertname": "DiskFull", "env": "prod"}));
    assert_eq!(original["commonAnnotations"], json!({"runbook": "https://runbooks.example/disk"}));

    let pager = &pager[0];
    assert_eq!(pager.body["alerts"], Value::from(alerts_with_severity(&original, &["critical", "warning"])));
    assert_eq!(pager.body["commonLabels"], json!({"alertname": "DiskFull", "env": "prod", "team": "storage"}));
    assert_eq!(
        pager.body["commonAnnotations"],
        json!({"summary": "Disk full", "runbook": "https://runbooks.example/disk"})
    );
    assert_eq!(pager.header("authorization"), Some("Basic YWxpY2U6d29uZGVybGFuZA=="));

    let tickets = &tickets[0];
    assert_eq!(tickets.body["alerts"], Value::from(alerts_with_severity(&original, &["info"])));
    assert_eq!(
        tickets.body["commonLabels"],
        json!({"alertname": "DiskFull", "env": "prod", "team": "db", "severity": "info", "instance": "c"})
    );
    assert_eq!(tickets.header("authorization"), Some("Bearer t0ken"));

    for notification in [pager, tickets] {
        assert_eq!(notification.body["status"], "firing");
        for field in ["receiver", "groupKey", "groupLabels", "externalURL", "version", "truncatedAlerts"] {
            assert_eq!(notification.body[field], original[field], "{field}");
        }
    }

    // Resolve them: Alertmanager's next flush reports it, and amrelay relays it the same way.
    post_alerts(&alertmanager, api_alerts(starts_at, Some(SystemTime::now()))).await;
    let resolved = tap.wait_for(2).await[1].body.clone();
    assert_eq!(resolved["status"], "resolved");
    let received = downstream.wait_for(4).await;
    let (pager, tickets) = (at(&received, "/pager"), at(&received, "/tickets"));
    assert_eq!((pager.len(), tickets.len()), (2, 2), "{received:#?}");
    assert_eq!(pager[1].body["status"], "resolved");
    assert_eq!(pager[1].labels("instance"), ["a", "b"]);
    assert_eq!(pager[1].body["alerts"], Value::from(alerts_with_severity(&resolved, &["critical", "warning"])));
    assert_eq!(tickets[1].body["status"], "resolved");
    assert_eq!(tickets[1].labels("instance"), ["c"]);
    for notification in pager.iter().chain(&tickets) {
        assert!(
            notification.body["alerts"].as_array().unwrap().iter().all(|a| a["status"] == notification.body["status"])
        );
    }

    // No alert is about the network team.
    downstream.assert_stays_at(4, Duration::from_millis(1500)).await;
    assert!(at(&downstream.received(), "/network").is_empty());
}

/// `promtool check metrics` accepts amrelay's scrape after real traffic.
#[tokio::test]
async fn promtool_accepts_the_metrics_scrape() {
    let promtool = debian_program(&["promtool"], "prometheus");
    let (relay, _downstreams) = relay_after_traffic("promtool").await;
    let scrape = get(&relay.url("/metrics")).await;
    assert_eq!(scrape.status, 200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scrape.txt");
    std::fs::write(&file, &scrape.body).unwrap();
    let checked = tokio::task::spawn_blocking(move || {
        run_program(Command::new(promtool).args(["check", "metrics"]), Some(&file))
    })
    .await
    .unwrap();
    assert!(checked.success, "promtool check metrics failed:\n{}", checked.output);
}

/// Polls Prometheus' query API until `query` returns at least one series.
async fn wait_for_series(prometheus: &str, query: &str) -> Vec<Value> {
    let url = format!("{prometheus}/api/v1/query?query={}", url_encode(query));
    eventually(&format!("{query} to return a series"), PROGRAM_WAIT, async || {
        let answer = get(&url).await;
        assert_eq!(answer.status, 200, "{query}: {}", answer.text());
        let answer = answer.json();
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        let result = answer["data"]["result"].as_array().unwrap().clone();
        ensure(!result.is_empty(), || answer.to_string()).map(|()| result)
    })
    .await
}

/// A real Prometheus scrapes amrelay: `up` is 1 and the alerts counter shows the traffic.
#[tokio::test]
async fn prometheus_scrapes_amrelay() {
    let binary = debian_program(&["prometheus"], "prometheus");
    let (relay, _downstreams) = relay_after_traffic("prometheus").await;
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(
        &config_file,
        format!(
            "global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: amrelay
    static_configs:
      - targets: ['{}']
",
            relay.addr
        ),
    )
    .unwrap();
    let storage = dir.path().join("data");
    let (_prometheus, port) = start_server("prometheus", dir.path(), "/-/ready", |port| {
        let mut command = Command::new(&binary);
        command
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        command
    })
    .await;
    let prometheus = format!("http://127.0.0.1:{port}");

    let up = wait_for_series(&prometheus, r#"up{job="amrelay"} == 1"#).await;
    assert_eq!(up[0]["metric"]["instance"], relay.addr.to_string());
    let received = wait_for_series(&prometheus, r#"amrelay_alerts_received_total{job="amrelay"} > 0"#).await;
    let value: f64 = received[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(value >= 3.0, "{received:?}");
}

/// Alertmanager → amrelay over HTTPS with basic auth, as docs/security.md shows it:
/// Alertmanager verifies amrelay's certificate with the CA and authenticates with its
/// `http_config`; a webhook_config with the wrong password is refused and delivers nothing.
#[tokio::test]
async fn alertmanager_posts_over_tls_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let downstream = Downstream::start().await;
    let relay_dir = tempfile::tempdir().unwrap();
    Pki::create(relay_dir.path(), "amrelay-inbound");
    let hash = bcrypt::hash("am-inbound-pw", 4).unwrap();
    let relay = TestRelay::start_in(
        relay_dir,
        &format!(
            "server:
  tls_server_config: {{cert_file: server.pem, key_file: server-key.pem}}
  basic_auth_users: {{alertmanager: '{hash}'}}
receivers:
  - name: secure
    url: {}
",
            downstream.url("/secure"),
        ),
    )
    .await;
    let webhook = format!("https://127.0.0.1:{}/webhook", relay.addr.port());
    let ca_file = relay.dir.path().join("ca.pem");
    let (_alertmanager, alertmanager) = start_alertmanager(
        dir.path(),
        &format!(
            "{FAST_ROUTE}receivers:
  - name: amrelay
    webhook_configs:
      - url: {webhook}
        http_config:
          basic_auth: {{username: alertmanager, password: am-inbound-pw}}
          tls_config: {{ca_file: {ca}}}
      - url: {webhook}
        http_config:
          basic_auth: {{username: alertmanager, password: wrong-password}}
          tls_config: {{ca_file: {ca}}}
",
            ca = ca_file.display(),
        ),
    )
    .await;

    post_alerts(&alertmanager, api_alerts(SystemTime::now() - Duration::from_secs(60), None)).await;
    // Alertmanager may flush the group before all three alerts are in it; wait for all of them.
    eventually("alerts a, b and c downstream", PROGRAM_WAIT, async || {
        let mut seen: Vec<String> = downstream.received().iter().flat_map(|r| r.labels("instance")).collect();
        seen.sort();
        seen.dedup();
        ensure(seen == ["a", "b", "c"], || format!("alerts seen downstream: {seen:?}"))
    })
    .await;
    // The webhook_config with the wrong password keeps being refused (401): had it got in, every
    // notification would have arrived twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = downstream.received();
    assert!(received.iter().all(|r| r.path == "/secure"));
    for (i, notification) in received.iter().enumerate() {
        let twins = received[i + 1..].iter().filter(|other| other.body == notification.body).count();
        assert_eq!(twins, 0, "a notification arrived twice: {:#}", notification.body);
    }
}
