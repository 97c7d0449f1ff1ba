//! The console at `GET /` and the status fields it shows, over plain HTTP. The same page in a
//! real browser is tested in tests/external/console.rs.

use serde_json::json;

use crate::support::{TestRelay, alert, batch, get};

/// The page is one self-contained document: nothing loaded from elsewhere, a strict CSP.
#[tokio::test]
async fn console_page_is_self_contained() {
    let relay = TestRelay::start("receivers: []\n").await;
    let page = get(&relay.url("/")).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.text();
    assert!(html.starts_with("<!doctype html>"));
    for external in [" src=", "href=\"http", "@import", "url("] {
        assert!(!html.contains(external), "the page must load nothing from elsewhere ({external:?})");
    }
    for endpoint in ["/api/v1/status", "/api/v1/deadletters", "/api/v1/route-test", "/api/v1/receivers/"] {
        assert!(html.contains(endpoint), "the page uses {endpoint}");
    }
    let post = crate::support::post_json(&relay.url("/"), "").await;
    assert_eq!(post.status, 405);
}

/// `/api/v1/status` carries what the console shows: counts, the recent rate, TLS options
/// without key material, the reload attempt, and the config line that flips `enabled`.
#[tokio::test]
async fn status_shows_counts_tls_and_the_enabled_line() {
    let (ok, flaky, refusing) = crate::support::three_downstreams().await;
    let yaml = format!(
        "delivery:
  retry: {{initial_backoff: 10ms, max_backoff: 20ms}}
receivers:
  - name: st-ok
    url: {}
  - name: st-flaky
    url: {}
    enabled: true
  - name: st-refused
    url: {}
    max_alerts: 5
  - name: st-tls
    url: https://127.0.0.1:9/
    enabled: false
    http_config:
      tls_config: {{server_name: relay.example, min_version: TLS13}}
",
        ok.url("/"),
        flaky.url("/"),
        refusing.url("/"),
    );
    let relay = TestRelay::start(&yaml).await;
    let body = batch("{}:{a=\"1\"}", vec![alert("firing", json!({"alertname": "A"}))]);
    assert_eq!(relay.post("/webhook", body).await.status, 200);
    for (name, value) in [("st-ok", 1.0), ("st-flaky", 1.0)] {
        relay.wait_metric(&format!(r#"amrelay_notifications_delivered_total{{receiver="{name}"}}"#), value).await;
    }
    relay
        .wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="st-refused",reason="non_retryable"}"#, 1.0)
        .await;

    let status = get(&relay.url("/api/v1/status")).await.json();
    let data = &status["data"];
    assert_eq!(data["config"]["last_reload_successful"], true);
    assert!(data["config"]["last_reload_attempt"].as_f64().unwrap() > 0.0);
    let receiver =
        |name: &str| data["receivers"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap().clone();
    let counts = |name: &str| {
        let r = receiver(name);
        let recent: u64 = r["recent"]["delivered"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
        (
            r["delivered"].as_u64().unwrap(),
            r["failed_attempts"].as_u64().unwrap(),
            r["dead_lettered"].as_u64().unwrap(),
            recent,
        )
    };
    assert_eq!(counts("st-ok"), (1, 0, 0, 1));
    assert_eq!(counts("st-flaky"), (1, 1, 0, 1));
    assert_eq!(counts("st-refused"), (0, 1, 1, 0));
    assert_eq!(receiver("st-ok")["recent"]["bucket_seconds"], 10);
    assert_eq!(receiver("st-ok")["recent"]["delivered"].as_array().unwrap().len(), 30);
    assert_eq!(receiver("st-refused")["max_alerts"], 5);

    let tls = receiver("st-tls")["tls"].clone();
    assert_eq!(
        tls,
        json!({"ca": null, "client_cert": null, "server_name": "relay.example", "min_version": "TLS13", "insecure_skip_verify": false})
    );
    // Lines: 1 delivery, 2 retry, 3 receivers, 4 `- name: st-ok`, ... 8 `enabled: true`.
    assert_eq!(
        receiver("st-ok")["enabled_line"],
        json!({"line": 4, "insert": true, "current": "  - name: st-ok", "change_to": "    enabled: false"})
    );
    assert_eq!(
        receiver("st-flaky")["enabled_line"],
        json!({"line": 8, "insert": false, "current": "    enabled: true", "change_to": "    enabled: false"})
    );
    assert_eq!(receiver("st-tls")["enabled_line"]["change_to"], "    enabled: true");
}

/// Regression (issue 22): the `enabled:` lines are found when the config is loaded (a status
/// refresh reads no file), yet a config file changed on disk and refused by a reload still
/// gives no line numbers rather than ones from the text it replaced.
#[tokio::test]
async fn enabled_lines_follow_the_config_file_that_runs() {
    let relay = TestRelay::start("receivers:\n  - name: a\n    url: http://127.0.0.1:9/\n").await;
    let line = |status: serde_json::Value| status["data"]["receivers"][0]["enabled_line"].clone();
    let status = get(&relay.url("/api/v1/status")).await.json();
    assert_eq!(line(status)["line"], 2);
    let config_file = relay.dir.path().join("amrelay.yml");
    std::fs::write(&config_file, "receivers: [\n").unwrap();
    assert_eq!(relay.post("/-/reload", "").await.status, 500);
    let status = get(&relay.url("/api/v1/status")).await.json();
    assert_eq!(status["data"]["receivers"][0]["name"], "a");
    assert_eq!(line(status), serde_json::Value::Null);
    let listed = get(&relay.url("/api/v1/receivers/a")).await.json();
    assert_eq!(listed["data"]["enabled_line"], serde_json::Value::Null);
    std::fs::write(
        &config_file,
        "# moved down\nreceivers:\n  - name: a\n    url: http://127.0.0.1:9/\n    enabled: true\n",
    )
    .unwrap();
    assert_eq!(relay.post("/-/reload", "").await.status, 200);
    let status = get(&relay.url("/api/v1/status")).await.json();
    assert_eq!(
        line(status),
        json!({"line": 5, "insert": false, "current": "    enabled: true", "change_to": "    enabled: false"})
    );
}
