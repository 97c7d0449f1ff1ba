//! The listener's own security: TLS with and without client certificates, certificate rotation,
//! basic and bearer authentication of the sender, and which endpoints stay open.

use std::time::Duration;

use crate::credentials::{basic, bcrypt_hash, request_with};
use crate::support::eventually::{ensure, eventually};
use crate::support::{Downstream, Pki, TestRelay, WAIT, metric_in};
use crate::tls_client::{first_cert_der, tls_client, tls_request};

const MULTI: &str = include_str!("../fixtures/am-payload-multi.json");

fn tls_config(downstream: &Downstream, client_auth: &str) -> String {
    format!(
        "server:\n  tls_server_config: {{cert_file: server.pem, key_file: server-key.pem{client_auth}}}\n\
         receivers:\n  - name: tls-in\n    url: {}\n",
        downstream.url("/in")
    )
}

/// A client with a certificate from the configured CA is served over HTTP/1.1 and HTTP/2, and
/// its batches are delivered.
#[tokio::test]
async fn tls_listener_serves_a_verified_client_over_http1_and_http2() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    Pki::create(dir.path(), "inbound");
    let (ca, cert, key) = (dir.path().join("ca.pem"), dir.path().join("client.pem"), dir.path().join("client-key.pem"));
    let yaml = tls_config(&downstream, ", client_ca_file: ca.pem, client_auth_type: RequireAndVerifyClientCert");
    let relay = TestRelay::start_in(dir, &yaml).await;

    let mut h2 = (*tls_client(&ca, Some((&cert, &key)))).clone();
    h2.alpn_protocols = vec![b"h2".to_vec()];
    let mut h1 = (*tls_client(&ca, Some((&cert, &key)))).clone();
    h1.alpn_protocols = vec![b"http/1.1".to_vec()];
    for (client, alpn) in [(h1, &b"http/1.1"[..]), (h2, &b"h2"[..])] {
        let headers = [("content-type", "application/json")];
        let exchange = tls_request(relay.addr, client.into(), "POST", "/webhook", &headers, MULTI).await.unwrap();
        assert_eq!(exchange.reply.status, 200, "{}", exchange.reply.text());
        assert_eq!(exchange.alpn.as_deref(), Some(alpn));
    }
    downstream.wait_for(2).await;
    // Plain HTTP to a TLS listener gets no answer.
    let plain =
        tokio::time::timeout(WAIT, raw_exchange(relay.addr, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")).await;
    assert!(!plain.unwrap().starts_with("HTTP/1.1 200"));
}

/// Sends `bytes` on a fresh TCP connection and reads until the server closes it.
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// When a client certificate is required, a client without one, or with one from another CA,
/// is refused; a valid one still gets in.
#[tokio::test]
async fn tls_listener_refuses_missing_and_foreign_client_certificates() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    Pki::create(dir.path(), "inbound");
    let other = tempfile::tempdir().unwrap();
    Pki::create(other.path(), "foreign");
    let ca = dir.path().join("ca.pem");
    let yaml = tls_config(&downstream, ", client_ca_file: ca.pem, client_auth_type: RequireAndVerifyClientCert");
    let relay = TestRelay::start_in(dir, &yaml).await;
    let dir = relay.dir.path();

    let without = tls_request(relay.addr, tls_client(&ca, None), "GET", "/-/healthy", &[], "").await;
    assert!(without.is_err(), "a client without a certificate was served: {without:?}");
    let foreign = tls_client(&ca, Some((&other.path().join("client.pem"), &other.path().join("client-key.pem"))));
    let foreign = tls_request(relay.addr, foreign, "GET", "/-/healthy", &[], "").await;
    assert!(foreign.is_err(), "a client certificate from another CA was accepted: {foreign:?}");
    let valid = tls_client(&ca, Some((&dir.join("client.pem"), &dir.join("client-key.pem"))));
    assert_eq!(tls_request(relay.addr, valid.clone(), "GET", "/-/healthy", &[], "").await.unwrap().reply.status, 200);
    let scrape = tls_request(relay.addr, valid, "GET", "/metrics", &[], "").await.unwrap().reply.text();
    // Regression: refused client certificates left no trace; now each is counted (and logged,
    // rate-limited) under its own reason.
    let refused = metric_in(&scrape, r#"amrelay_connection_errors_total{reason="client_certificate"}"#);
    assert!(refused.unwrap_or(0.0) >= 2.0, "{scrape}");
}

/// A refused client certificate is logged, with the peer and the reason, once per 10 s however
/// many follow (each is still counted), so a scanner cannot flood the log.
#[tokio::test]
async fn refused_client_certificates_are_logged_rate_limited() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    Pki::create(dir.path(), "inbound");
    let ca = dir.path().join("ca.pem");
    let config = dir.path().join("amrelay.yml");
    let yaml = tls_config(&downstream, ", client_ca_file: ca.pem, client_auth_type: RequireAndVerifyClientCert");
    std::fs::write(&config, yaml).unwrap();
    let relay = crate::process::RelayProcess::spawn(&config, &[]);
    for _ in 0..3 {
        let refused = tls_request(relay.addr, tls_client(&ca, None), "GET", "/-/healthy", &[], "").await;
        assert!(refused.is_err(), "served without a client certificate: {refused:?}");
    }
    eventually("the refusal's log line", WAIT, async || {
        let logs = relay.logs();
        ensure(logs.contains("client certificate refused"), || format!("no log line:\n{logs}"))
    })
    .await;
    let valid = tls_client(&ca, Some((&dir.path().join("client.pem"), &dir.path().join("client-key.pem"))));
    let scrape = tls_request(relay.addr, valid, "GET", "/metrics", &[], "").await.unwrap().reply.text();
    let counted = metric_in(&scrape, r#"amrelay_connection_errors_total{reason="client_certificate"}"#);
    assert_eq!(counted, Some(3.0), "{scrape}");
    let logs = relay.logs();
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("client certificate refused")).collect();
    assert_eq!(lines.len(), 1, "{logs}");
    assert!(lines[0].contains("peer=127.0.0.1:") && lines[0].contains("level=warn"), "{}", lines[0]);
}

/// cert-manager renews the certificate by replacing the files: the next handshake presents the
/// new certificate, without a restart.
#[tokio::test]
async fn renewed_server_certificate_is_used_without_restart() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    Pki::create(dir.path(), "first");
    let renewed = tempfile::tempdir().unwrap();
    Pki::create(renewed.path(), "renewed");
    let relay = TestRelay::start_in(dir, &tls_config(&downstream, "")).await;
    let dir = relay.dir.path();
    let first_ca = dir.join("ca.pem");
    let old_cert = first_cert_der(&dir.join("server.pem"));

    let exchange = tls_request(relay.addr, tls_client(&first_ca, None), "GET", "/-/ready", &[], "").await.unwrap();
    assert_eq!(exchange.server_cert, old_cert);

    // Replace key and certificate as a renewal does: new files renamed over the old ones.
    for file in ["server-key.pem", "server.pem"] {
        std::fs::copy(renewed.path().join(file), dir.join(format!("{file}.new"))).unwrap();
        std::fs::rename(dir.join(format!("{file}.new")), dir.join(file)).unwrap();
    }
    let new_cert = first_cert_der(&dir.join("server.pem"));
    let renewed_ca = renewed.path().join("ca.pem");
    let exchange = eventually("the renewed certificate to be presented", WAIT, async || {
        tls_request(relay.addr, tls_client(&renewed_ca, None), "GET", "/-/ready", &[], "").await
    })
    .await;
    assert_eq!(exchange.server_cert, new_cert);
    assert_eq!(exchange.reply.status, 200);
    // Clients trusting only the old CA are now refused: the old certificate is gone.
    assert!(tls_request(relay.addr, tls_client(&first_ca, None), "GET", "/-/ready", &[], "").await.is_err());
}

fn auth_yaml(downstream: &Downstream, server: &str) -> String {
    format!("server:\n{server}receivers:\n  - name: auth-in\n    url: {}\n", downstream.url("/in"))
}

/// Alertmanager's `basic_auth` header is accepted against a bcrypt hash; a wrong password, an
/// unknown user or no header gets 401 with a Basic challenge.
#[tokio::test]
async fn basic_auth_accepts_the_right_password_only() {
    let downstream = Downstream::start().await;
    let server = format!("  basic_auth_users:\n    alertmanager: \"{}\"\n", bcrypt_hash("am-b4sic-passw0rd"));
    let relay = TestRelay::start(&auth_yaml(&downstream, &server)).await;
    let url = relay.url("/webhook");
    let json = ("content-type", "application/json");

    let good = basic("alertmanager", "am-b4sic-passw0rd");
    for _ in 0..2 {
        // The second time is answered from the verification cache.
        let reply = request_with("POST", &url, &[json, ("authorization", &good)], MULTI).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    for header in [
        Some(basic("alertmanager", "wr0ng-passw0rd-attempt")),
        Some(basic("somebody", "am-b4sic-passw0rd")),
        Some("Bearer am-b4sic-passw0rd".to_owned()),
        Some("Basic not-base64!".to_owned()),
        None,
    ] {
        let mut headers = vec![json];
        if let Some(value) = &header {
            headers.push(("authorization", value));
        }
        let reply = request_with("POST", &url, &headers, MULTI).await;
        assert_eq!(reply.status, 401, "{header:?}");
        assert_eq!(reply.headers["www-authenticate"], r#"Basic realm="amrelay", charset="UTF-8""#);
        assert_eq!(reply.json()["status"], "error");
    }
    downstream.wait_for(2).await;
    downstream.assert_stays_at(2, Duration::from_millis(100)).await;
}

/// `authorization: {credentials_file: …}` accepts exactly that bearer token.
#[tokio::test]
async fn bearer_token_is_accepted_and_others_refused() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("inbound-token");
    std::fs::write(&token, "inbound-b3arer-t0ken\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let yaml = auth_yaml(&downstream, "  authorization: {credentials_file: inbound-token}\n");
    let relay = TestRelay::start_in(dir, &yaml).await;
    let url = relay.url("/webhook");
    let json = ("content-type", "application/json");
    let reply = request_with("POST", &url, &[json, ("authorization", "Bearer inbound-b3arer-t0ken")], MULTI).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    for value in ["Bearer inbound-b3arer-t0ke", "Bearer inbound-b3arer-t0ken2", "Bearer ", "inbound-b3arer-t0ken"] {
        let reply = request_with("POST", &url, &[json, ("authorization", value)], MULTI).await;
        assert_eq!(reply.status, 401, "{value}");
        assert_eq!(reply.headers["www-authenticate"], r#"Bearer realm="amrelay""#);
    }
    downstream.wait_for(1).await;
    let scrape =
        request_with("GET", &relay.url("/metrics"), &[("authorization", "Bearer inbound-b3arer-t0ken")], "").await;
    let failures = metric_in(&scrape.text(), r#"amrelay_http_auth_failures_total{reason="invalid"}"#);
    assert!(failures.unwrap_or(0.0) >= 4.0, "{failures:?}");
}

/// With auth on, the admin endpoints (reload, test message, status) and metrics need
/// credentials; the probes stay open by default, and `open_endpoints` decides otherwise.
#[tokio::test]
async fn admin_endpoints_are_protected_and_open_endpoints_are_configurable() {
    let downstream = Downstream::start().await;
    let token = ("authorization", "Bearer inbound-b3arer-t0ken");
    let relay =
        TestRelay::start(&auth_yaml(&downstream, "  authorization: {credentials: inbound-b3arer-t0ken}\n")).await;
    let protected = [
        ("POST", "/-/reload"),
        ("POST", "/api/v1/receivers/auth-in/test"),
        ("GET", "/api/v1/status"),
        ("GET", "/metrics"),
        ("POST", "/webhook/auth-in"),
    ];
    for (method, path) in protected {
        assert_eq!(request_with(method, &relay.url(path), &[], "").await.status, 401, "{method} {path}");
        assert_ne!(request_with(method, &relay.url(path), &[token], "").await.status, 401, "{method} {path}");
    }
    for path in ["/-/healthy", "/-/ready"] {
        assert_eq!(request_with("GET", &relay.url(path), &[], "").await.status, 200, "{path}");
    }
    // The test message went through: the admin API really ran with the token.
    downstream.wait_for(1).await;

    let custom = "  authorization: {credentials: inbound-b3arer-t0ken}\n  open_endpoints: [/metrics]\n";
    let relay = TestRelay::start(&auth_yaml(&downstream, custom)).await;
    assert_eq!(request_with("GET", &relay.url("/metrics"), &[], "").await.status, 200);
    assert_eq!(request_with("GET", &relay.url("/-/healthy"), &[], "").await.status, 401);
    assert_eq!(request_with("GET", &relay.url("/-/healthy"), &[token], "").await.status, 200);
}

/// Mistakes in the security keys are reported by `check-config` like any other: all at once,
/// each with its line, column and field.
#[test]
fn security_config_mistakes_are_named_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(
        &file,
        "server:
  tls_server_config: {cert_file: missing.pem, client_auth_type: RequestClientCert}
  basic_auth_users: {am: not-a-hash}
  authorization: {type: Basic, credentials: x}
  open_endpoints: [metrics]
  limits: {max_connections: 0, idle_timeout: 0s, max_json_depth: 2}
receivers:
  - name: a
    url: http://127.0.0.1:1/
    signing: {secret: short}
    http_config:
      proxy_url: socks5://proxy:1080
",
    )
    .unwrap();
    let (ok, out) = crate::process::check_config_with_env(&file, &[]);
    assert!(!ok, "{out}");
    for expected in [
        "bad.yml:2:22: server.tls_server_config.cert_file: cannot read",
        "bad.yml:2:22: server.tls_server_config.key_file: is required",
        "bad.yml:2:22: server.tls_server_config.client_auth_type: RequestClientCert accepts unverified certificates",
        "bad.yml:3:21: server.basic_auth_users.am: is not a bcrypt hash",
        "bad.yml:4:18: server.authorization.type: only Bearer",
        "bad.yml:5:19: server.open_endpoints[0]: \"metrics\" is not a path",
        "bad.yml:6:11: server.limits.idle_timeout: must be greater than 0",
        "bad.yml:6:11: server.limits.max_connections: must be greater than 0",
        "bad.yml:6:11: server.limits.max_json_depth: must be at least 4",
        "bad.yml:10:14: receivers[0].signing.secret: must be at least 16 bytes",
        "bad.yml:12:18: receivers[0].http_config.proxy_url: must be an http:// URL",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

/// Regression: wrong passwords queued without bound for the two bcrypt slots, holding every
/// request behind them. A request now waits at most 2 s for a slot, then gets 503 + Retry-After,
/// while a password already verified is still let in from the cache.
#[tokio::test]
async fn a_flood_of_wrong_passwords_is_answered_503_not_queued_for_ever() {
    let downstream = Downstream::start().await;
    let hash = bcrypt::hash("am-b4sic-passw0rd", 10).unwrap();
    let server = format!("  basic_auth_users:\n    alertmanager: \"{hash}\"\n");
    let relay = TestRelay::start(&auth_yaml(&downstream, &server)).await;
    let url = relay.url("/webhook");
    let json = ("content-type", "application/json");
    let good = basic("alertmanager", "am-b4sic-passw0rd");
    assert_eq!(request_with("POST", &url, &[json, ("authorization", &good)], MULTI).await.status, 200);

    let wrong = basic("alertmanager", "wr0ng-passw0rd-attempt");
    let flood: Vec<_> = (0..20)
        .map(|_| {
            let (url, wrong) = (url.clone(), wrong.clone());
            tokio::spawn(async move { request_with("POST", &url, &[json, ("authorization", &wrong)], MULTI).await })
        })
        .collect();
    // Meanwhile the verified sender is answered from the cache, not behind the flood.
    let started = std::time::Instant::now();
    assert_eq!(request_with("POST", &url, &[json, ("authorization", &good)], MULTI).await.status, 200);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let mut busy = 0;
    for reply in flood {
        let reply = reply.await.unwrap();
        match reply.status.as_u16() {
            401 => {}
            503 => {
                busy += 1;
                assert_eq!(reply.headers["retry-after"], "5");
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert!(busy > 0, "every wrong password waited for a slot");
    let scrape = request_with("GET", &relay.url("/metrics"), &[("authorization", &good)], "").await.text();
    let counted = metric_in(&scrape, r#"amrelay_http_auth_failures_total{reason="busy"}"#).unwrap_or(0.0);
    assert!(counted >= busy as f64, "{counted} < {busy}");
}

/// A bcrypt cost above 12 is refused at load: each uncached verification would take seconds.
#[test]
fn a_bcrypt_cost_above_12_is_a_config_error() {
    let hash = bcrypt::hash("x", 4).unwrap().replacen("$04$", "$13$", 1);
    let yaml = format!("server:\n  basic_auth_users:\n    am: \"{hash}\"\n");
    let error =
        amrelay::config::from_str(&yaml, std::path::Path::new("/x.yml"), &amrelay::config::Environment::empty())
            .unwrap_err()
            .to_string();
    assert!(error.contains("bcrypt cost 13 is above 12"), "{error}");
}
