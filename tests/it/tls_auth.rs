//! Outbound auth headers and TLS: custom CA, wrong CA, skip-verify, client certificates.

use std::time::Duration;

use crate::support::{Downstream, Pki, TestRelay};

const MULTI: &str = include_str!("../fixtures/am-payload-multi.json");

/// Basic auth and bearer tokens, inline and from files (relative to the config), plus headers.
#[tokio::test]
async fn auth_and_custom_headers_are_sent() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), "wonderland\n").unwrap();
    std::fs::write(dir.path().join("token"), "s3cret-token").unwrap();
    let yaml = format!(
        "receivers:
  - name: auth-basic
    url: {}
    headers: {{X-Team: sre}}
    http_config:
      basic_auth: {{username: alice, password_file: password}}
  - name: auth-bearer
    url: {}
    http_config:
      authorization: {{credentials_file: token}}
  - name: auth-custom-scheme
    url: {}
    http_config:
      authorization: {{type: Token, credentials: abc}}
  - name: auth-none
    url: {}
",
        downstream.url("/basic"),
        downstream.url("/bearer"),
        downstream.url("/custom"),
        downstream.url("/none"),
    );
    let relay = TestRelay::start_in(dir, &yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);
    let received = downstream.wait_for(4).await;
    let at = |path: &str| received.iter().find(|r| r.path == path).unwrap().clone();
    // The same header Alertmanager itself sends for alice:wonderland (see the fixtures).
    assert_eq!(at("/basic").header("authorization"), Some("Basic YWxpY2U6d29uZGVybGFuZA=="));
    assert_eq!(at("/basic").header("x-team"), Some("sre"));
    assert_eq!(at("/bearer").header("authorization"), Some("Bearer s3cret-token"));
    assert_eq!(at("/custom").header("authorization"), Some("Token abc"));
    assert_eq!(at("/none").header("authorization"), None);
    for r in &received {
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("user-agent").unwrap().starts_with("amrelay/"));
        assert_eq!(r.header("idempotency-key").map(str::len), Some(32));
    }
}

fn tls_receiver(name: &str, url: &str, tls: &str) -> String {
    format!(
        "  - name: {name}\n    url: {url}\n    retry: {{max_attempts: 1}}\n    http_config:\n      tls_config: {tls}\n"
    )
}

/// HTTPS with the right CA works; a wrong CA is refused; skip-verify works when asked.
#[tokio::test]
async fn https_verifies_the_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), "good");
    let other = tempfile::tempdir().unwrap();
    Pki::create(other.path(), "other");
    std::fs::rename(other.path().join("ca.pem"), dir.path().join("other-ca.pem")).unwrap();
    let downstream = Downstream::start_tls(pki.server_config(false)).await;

    let mut yaml = String::from("receivers:\n");
    yaml += &tls_receiver("tls-ca", &downstream.url("/ca"), "{ca_file: ca.pem}");
    yaml += &tls_receiver("tls-server-name", &downstream.url("/name"), "{ca_file: ca.pem, server_name: localhost}");
    yaml += &tls_receiver("tls-wrong-ca", &downstream.url("/wrong"), "{ca_file: other-ca.pem}");
    yaml += &tls_receiver("tls-no-ca", &downstream.url("/system-roots"), "{}");
    yaml += &tls_receiver("tls-insecure", &downstream.url("/insecure"), "{insecure_skip_verify: true}");
    let relay = TestRelay::start_in(dir, &yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);

    relay
        .wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="tls-wrong-ca",reason="max_attempts"}"#, 1.0)
        .await;
    relay
        .wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="tls-no-ca",reason="max_attempts"}"#, 1.0)
        .await;
    assert_eq!(
        relay.metric(r#"amrelay_delivery_attempts_total{receiver="tls-wrong-ca",outcome="tls"}"#).await,
        Some(1.0)
    );
    downstream.wait_for(3).await;
    downstream.assert_stays_at(3, Duration::from_millis(200)).await;
    let mut paths: Vec<_> = downstream.received().into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(paths, ["/ca", "/insecure", "/name"]);
    // The test downstream offers h2 by ALPN, and amrelay's client takes it.
    assert!(downstream.received().iter().all(|r| r.version == http::Version::HTTP_2));
}

/// A downstream that requires a client certificate gets one when configured, refuses otherwise.
#[tokio::test]
async fn client_certificates_are_presented() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), "mtls");
    let downstream = Downstream::start_tls(pki.server_config(true)).await;
    let mut yaml = String::from("receivers:\n");
    yaml += &tls_receiver(
        "mtls-with-cert",
        &downstream.url("/with"),
        "{ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem}",
    );
    yaml += &tls_receiver("mtls-without-cert", &downstream.url("/without"), "{ca_file: ca.pem}");
    let relay = TestRelay::start_in(dir, &yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);

    relay
        .wait_metric(
            r#"amrelay_notifications_dead_lettered_total{receiver="mtls-without-cert",reason="max_attempts"}"#,
            1.0,
        )
        .await;
    let received = downstream.wait_for(1).await;
    downstream.assert_stays_at(1, Duration::from_millis(200)).await;
    assert_eq!(received[0].path, "/with");
    let status = crate::support::get(&relay.url("/api/v1/status")).await.json();
    let without = status["data"]["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "mtls-without-cert")
        .unwrap()
        .clone();
    assert!(without["last_error"]["error"].as_str().is_some(), "{without}");
}

/// `insecure_skip_verify: true` is logged as a warning at load and counted in a metric (checked
/// on the real binary: the metric is per process).
#[tokio::test]
async fn insecure_skip_verify_is_logged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    let yaml = "receivers:\n  - name: careless\n    url: https://127.0.0.1:1/\n    http_config:\n      tls_config: {insecure_skip_verify: true}\n  - name: careful\n    url: https://127.0.0.1:1/\n";
    std::fs::write(&path, yaml).unwrap();
    let relay = crate::process::RelayProcess::spawn(&path, &[]);
    relay.wait_metric("amrelay_tls_insecure_skip_verify_receivers", 1.0).await;
    let logs = relay.logs();
    assert!(
        logs.contains("level=warn") && logs.contains("receiver=careless") && logs.contains("verification is disabled"),
        "{logs}"
    );
}
