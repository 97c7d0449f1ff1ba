//! Alertmanager's `http_config`, in full: OAuth2 client credentials against a local token
//! endpoint, `http_headers`, proxies from the environment, redirects, a CA that replaces the
//! system roots, and `check-config` naming what amrelay does not support.

use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;

use crate::process::{RelayProcess, check_config_with_env};
use crate::support::eventually::{ensure, eventually};
use crate::support::token_endpoint::TokenEndpoint;
use crate::support::{Answer, Downstream, Pki, TestRelay, WAIT, get};

const MULTI: &str = include_str!("../fixtures/am-payload-multi.json");
const CLIENT_SECRET: &str = "cl1ent-s3cret/+&";

fn oauth2_receiver(name: &str, url: &str, token_url: &str, extra: &str) -> String {
    format!(
        "  - name: {name}
    url: {url}
    retry: {{initial_backoff: 200ms, max_backoff: 200ms, max_attempts: 40}}
    http_config:
      oauth2:
        client_id: amrelay-client
        client_secret: '{CLIENT_SECRET}'
        token_url: {token_url}
        scopes: [alerts.write, alerts.read]
        endpoint_params: {{audience: downstream}}
{extra}"
    )
}

/// The batch again, as another group (so no duplicate check can drop it).
fn batch(n: usize) -> String {
    let mut body: serde_json::Value = serde_json::from_str(MULTI).unwrap();
    body["groupKey"] = format!("{{}}:{{round=\"{n}\"}}").into();
    body.to_string()
}

/// The token is fetched once, sent as `Bearer`, reused while fresh and renewed shortly before
/// it expires (`expires_in: 11` leaves one second before the 10 s safety margin); the token
/// request is the client-credentials grant, the client authenticated with basic auth.
#[tokio::test]
async fn oauth2_token_is_cached_and_renewed_before_expiry() {
    let downstream = Downstream::start().await;
    let tokens = TokenEndpoint::start(11).await;
    let yaml = format!("receivers:\n{}", oauth2_receiver("oauth-expiry", &downstream.url("/o"), &tokens.url(), ""));
    let relay = TestRelay::start(&yaml).await;

    assert_eq!(relay.post("/webhook", batch(1)).await.status, 200);
    downstream.wait_for(1).await;
    assert_eq!(relay.post("/webhook", batch(2)).await.status, 200);
    downstream.wait_for(2).await;
    assert_eq!(tokens.requests().len(), 1, "the fresh token is reused");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(relay.post("/webhook", batch(3)).await.status, 200);
    let received = downstream.wait_for(3).await;
    let auth: Vec<_> = received.iter().map(|r| r.header("authorization").unwrap().to_owned()).collect();
    assert_eq!(auth, ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]);

    let requests = tokens.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(first.field("grant_type"), Some("client_credentials"));
    assert_eq!(first.field("scope"), Some("alerts.write alerts.read"));
    assert_eq!(first.field("audience"), Some("downstream"));
    assert_eq!(first.field("client_secret"), None, "the secret goes in the Authorization header");
    // RFC 6749 §2.3.1: id and secret form-encoded, then basic auth.
    assert_eq!(
        first.authorization.as_deref(),
        Some(crate::credentials::basic("amrelay-client", "cl1ent-s3cret%2F%2B%26").as_str())
    );
}

/// A downstream that answers 401 gets the notification again, once, with a fresh token.
#[tokio::test]
async fn oauth2_refreshes_the_token_once_on_401() {
    let downstream = Downstream::start().await;
    downstream.script([Answer::status(401)]);
    let tokens = TokenEndpoint::start(3600).await;
    let yaml = format!("receivers:\n{}", oauth2_receiver("oauth-401", &downstream.url("/o"), &tokens.url(), ""));
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", batch(1)).await.status, 200);
    let received = downstream.wait_for(2).await;
    assert_eq!(received[0].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(received[0].answered, 401);
    assert_eq!(received[1].header("authorization"), Some("Bearer tok-2"));
    assert_eq!(received[1].answered, 200);
    assert_eq!(tokens.requests().len(), 2);
    relay.wait_metric(r#"amrelay_delivery_attempts_total{receiver="oauth-401",outcome="2xx"}"#, 1.0).await;

    // A second 401 in a row is the downstream's answer: not retried again within the attempt.
    downstream.script([Answer::status(401), Answer::status(401)]);
    assert_eq!(relay.post("/webhook", batch(2)).await.status, 200);
    downstream.wait_for(4).await;
    relay.wait_metric(r#"amrelay_delivery_attempts_total{receiver="oauth-401",outcome="4xx"}"#, 1.0).await;
    downstream.assert_stays_at(4, Duration::from_millis(300)).await;
}

/// A token endpoint that fails (an error answer, then refused connections) fails the attempt as
/// `auth` — its own outcome — and is retried like a connection error; the notification is
/// delivered once the endpoint is back.
#[tokio::test]
async fn oauth2_token_endpoint_down_is_its_own_outcome_and_is_retried() {
    let downstream = Downstream::start().await;
    let tokens = TokenEndpoint::start(3600).await;
    let unavailable = r#"{"error":"temporarily_unavailable"}"#;
    tokens.script([(503, unavailable), (503, unavailable), (503, unavailable)]);
    let yaml = format!("receivers:\n{}", oauth2_receiver("oauth-down", &downstream.url("/o"), &tokens.url(), ""));
    let relay = TestRelay::start(&yaml).await;
    let auth_failures = r#"amrelay_delivery_attempts_total{receiver="oauth-down",outcome="auth"}"#;

    assert_eq!(relay.post("/webhook", batch(1)).await.status, 200);
    wait_at_least(&relay, auth_failures, 2.0).await;
    // Down: connections refused (the endpoint closes every connection, so none is pooled).
    tokens.stop();
    let failed = relay.metric(auth_failures).await.unwrap();
    wait_at_least(&relay, auth_failures, failed + 2.0).await;
    assert!(downstream.received().is_empty(), "nothing is sent without a token");
    let addr = tokens.addr;

    // Back up on the same address.
    let back = TokenEndpoint::start_on(TcpListener::bind(addr).await.unwrap(), 3600);
    let received = downstream.wait_for(1).await;
    assert_eq!(received[0].header("authorization"), Some("Bearer tok-1"));
    assert!(!back.requests().is_empty());
    let status = get(&relay.url("/api/v1/status")).await.text();
    assert!(!status.contains(CLIENT_SECRET), "{status}");
}

/// Waits until a counter reaches at least `value` (retries keep it moving).
async fn wait_at_least(relay: &TestRelay, series: &str, value: f64) {
    eventually(&format!("{series} to reach at least {value}"), WAIT, async || {
        let current = relay.metric(series).await;
        ensure(current.is_some_and(|c| c >= value), || format!("{series} is {current:?}"))
    })
    .await;
}

/// Neither the client secret, nor a token, nor what a token endpoint echoes reaches the logs,
/// even when the endpoint refuses and echoes the request.
#[tokio::test]
async fn oauth2_secrets_never_reach_the_logs() {
    let downstream = Downstream::start().await;
    downstream.script([Answer::status(401)]);
    let tokens = TokenEndpoint::start(3600).await;
    tokens.script([
        (401, r#"{"error":"invalid_client","echo":"cl1ent-s3cret/+&"}"#),
        (400, r#"{"error":"invalid_request","error_description":"try again","echo":"client_secret=cl1ent-s3cret"}"#),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("amrelay.yml");
    std::fs::write(
        &config,
        format!("receivers:\n{}", oauth2_receiver("oauth-logs", &downstream.url("/o"), &tokens.url(), "")),
    )
    .unwrap();
    let relay = RelayProcess::spawn_with_env(&config, &["--log.level=debug"], &[]);
    assert_eq!(crate::support::post_json(&relay.url("/webhook"), batch(1)).await.status, 200);
    // 401 + 400 from the token endpoint (one attempt, both auth styles), then tok-1 refused by
    // the downstream (401), then tok-2 delivered.
    eventually("the notification to be delivered", WAIT, async || {
        ensure(!downstream.delivered().is_empty(), || format!("not delivered: {}", relay.logs()))
    })
    .await;
    let second_style = &tokens.requests()[1];
    assert_eq!(second_style.field("client_id"), Some("amrelay-client"), "x/oauth2 falls back to the form");
    let logs = relay.logs();
    assert!(logs.contains("invalid_request"), "the failure is logged: {logs}");
    for secret in [CLIENT_SECRET, "cl1ent-s3cret", "tok-1", "tok-2"] {
        assert!(!logs.contains(secret), "{secret:?} leaked into the logs:\n{logs}");
    }
}

/// `http_headers`: `values` as written, `secrets` and `files` (trimmed, re-read when the file
/// changes) — every value of a header sent.
#[tokio::test]
async fn http_headers_come_from_values_secrets_and_files() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, "k3y-from-file-1\n").unwrap();
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let yaml = format!(
        "receivers:
  - name: headers
    url: {}
    headers: {{X-Short: short-form}}
    http_config:
      http_headers:
        X-Api-Key: {{files: [api-key]}}
        X-Multi: {{values: [a, b], secrets: [s3cret-value]}}
",
        downstream.url("/h")
    );
    let relay = TestRelay::start_in(dir, &yaml).await;
    assert_eq!(relay.post("/webhook", batch(1)).await.status, 200);
    let received = downstream.wait_for(1).await;
    let first = &received[0];
    assert_eq!(first.header("x-api-key"), Some("k3y-from-file-1"));
    assert_eq!(first.header("x-short"), Some("short-form"));
    let multi: Vec<_> = first.headers.get_all("x-multi").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(multi, ["a", "b", "s3cret-value"]);

    // The file is watched like every file the config names: a new key is sent after the reload.
    std::fs::write(&key_file, "k3y-from-file-2\n").unwrap();
    let mut round = 1;
    eventually("the new key file to be picked up", WAIT, async || {
        round += 1;
        assert_eq!(relay.post("/webhook", batch(round)).await.status, 200);
        let received = downstream.wait_for(round).await;
        let key = received.last().unwrap().header("x-api-key");
        ensure(key == Some("k3y-from-file-2"), || format!("x-api-key: {key:?}"))
    })
    .await;
}

/// Regression: a configured CA was added to the system roots, so pinning a private CA
/// restricted nothing. It now replaces them, as in Alertmanager: a downstream whose certificate
/// a "public" CA (here: the system roots) signed is refused; without a CA it is trusted.
#[tokio::test]
async fn a_private_ca_no_longer_trusts_a_publicly_signed_downstream() {
    let public_dir = tempfile::tempdir().unwrap();
    let public = Pki::create(public_dir.path(), "public");
    let private_dir = tempfile::tempdir().unwrap();
    Pki::create(private_dir.path(), "private");
    let downstream = Downstream::start_tls(public.server_config(false)).await;
    let public_root = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(public_dir.path().join("ca.pem")).unwrap()
    };

    for (ca_line, trusted) in [
        (String::new(), true),
        (format!("      tls_config: {{ca_file: {}}}\n", private_dir.path().join("ca.pem").display()), false),
        (format!("      tls_config: {{ca_file: {}}}\n", public_dir.path().join("ca.pem").display()), true),
    ] {
        let yaml = format!(
            "receivers:\n  - name: pinned\n    url: {}\n    http_config:\n      enable_http2: false\n{ca_line}",
            downstream.url("/tls")
        );
        let config = amrelay::config::from_str(
            &yaml,
            std::path::Path::new("amrelay.yml"),
            &amrelay::config::Environment::empty(),
        )
        .unwrap();
        let endpoint = &config.receivers[0].endpoint;
        // The system CA store, as the machine would have it: only the public CA.
        let mut configs = amrelay::tls::ClientConfigs::with_system_roots(vec![public_root.clone()]);
        let target = amrelay::deliver::Target::new(endpoint, None, &configs.get(&endpoint.tls.client).unwrap());
        let outcome = target.send(Bytes::from_static(b"{}"), None).await;
        match (trusted, outcome) {
            (true, Ok(status)) => assert_eq!(status, 200),
            (false, Err(failure)) => assert_eq!(failure.kind, amrelay::deliver::FailureKind::Tls, "{failure}"),
            (trusted, outcome) => panic!("{ca_line:?}: trusted {trusted}, got {outcome:?}"),
        }
    }
}

/// `proxy_from_environment`: `HTTP_PROXY` from the relay's environment carries a receiver
/// through the proxy (with `proxy_connect_header`), and — as Go decides — a loopback receiver
/// and one `NO_PROXY` names go direct.
#[tokio::test]
async fn proxy_from_environment_uses_the_proxy_variables_as_go_does() {
    let downstream = Downstream::start().await;
    let (proxy, seen) = crate::connect_proxy::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("amrelay.yml");
    let port = downstream.addr.port();
    std::fs::write(
        &config,
        format!(
            "receivers:
  - name: via-env
    url: http://alerts.downstream.invalid:{port}/proxied
    http_config:
      proxy_from_environment: true
      proxy_connect_header: {{X-Proxy-Tenant: [ops]}}
  - name: loopback
    url: http://127.0.0.1:{port}/direct
    matchers: ['severity=critical']
    http_config: {{proxy_from_environment: true}}
"
        ),
    )
    .unwrap();
    let env = [("HTTP_PROXY", format!("http://{proxy}")), ("NO_PROXY", "example.org".to_owned())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let relay = RelayProcess::spawn_with_env(&config, &[], &env);
    assert_eq!(crate::support::post_json(&relay.url("/webhook"), MULTI).await.status, 200);
    let received = downstream.wait_for(2).await;
    let mut paths: Vec<_> = received.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/direct", "/proxied"]);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "only the non-loopback receiver is proxied: {seen:?}");
    assert!(seen[0].starts_with(&format!("CONNECT alerts.downstream.invalid:{port} HTTP/1.1")), "{seen:?}");
    assert!(seen[0].to_ascii_lowercase().contains("x-proxy-tenant: ops"), "{seen:?}");

    // NO_PROXY and the scheme's variable decide per receiver URL, at load.
    let load = |url: &str, env: &[(&str, &str)]| {
        let environment = env.iter().fold(amrelay::config::Environment::empty(), |e, (k, v)| e.with(*k, *v));
        let yaml =
            format!("receivers:\n  - name: r\n    url: {url}\n    http_config: {{proxy_from_environment: true}}\n");
        let config = amrelay::config::from_str(&yaml, std::path::Path::new("a.yml"), &environment).unwrap();
        config.receivers[0].endpoint.proxy.as_ref().map(|p| p.url.to_string())
    };
    let both = [("HTTP_PROXY", "proxy-a:3128"), ("https_proxy", "http://proxy-b:3128"), ("NO_PROXY", ".internal")];
    assert_eq!(load("http://hooks.example/", &both).as_deref(), Some("http://proxy-a:3128/"));
    assert_eq!(load("https://hooks.example/", &both).as_deref(), Some("http://proxy-b:3128/"));
    assert_eq!(load("https://a.internal/", &both), None);
    assert_eq!(load("https://hooks.example/", &[]), None);
}

/// `follow_redirects: true` re-sends the POST to a 307/308's `Location`; by default (false,
/// unlike Alertmanager) a redirect is a failure, not a silent move.
#[tokio::test]
async fn follow_redirects_follows_307_and_308_only_when_asked() {
    let downstream = Downstream::start().await;
    let moved = downstream.url("/moved-here");
    downstream.script([Answer::status(307).with_header("location", "/moved-here")]);
    let yaml = format!(
        "receivers:
  - name: follows
    url: {}
    http_config: {{follow_redirects: true, authorization: {{credentials: r3direct-token}}}}
",
        downstream.url("/old")
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", batch(1)).await.status, 200);
    let received = downstream.wait_for(2).await;
    assert_eq!(received[0].path, "/old");
    assert_eq!(received[1].path, "/moved-here");
    assert_eq!(received[1].body, received[0].body, "the same POST body");
    assert_eq!(received[1].header("authorization"), Some("Bearer r3direct-token"), "same host keeps credentials");
    downstream.script([Answer::status(308).with_header("location", moved)]);
    assert_eq!(relay.post("/webhook", batch(2)).await.status, 200);
    let received = downstream.wait_for(4).await;
    assert_eq!(received[3].path, "/moved-here");

    let stays = Downstream::start().await;
    stays.always(Answer::status(307).with_header("location", "/elsewhere"));
    let yaml = format!("receivers:\n  - name: stays\n    url: {}\n", stays.url("/old"));
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", batch(1)).await.status, 200);
    relay.wait_metric(r#"amrelay_delivery_attempts_total{receiver="stays",outcome="3xx"}"#, 1.0).await;
    stays.assert_stays_at(1, Duration::from_millis(300)).await;
}

/// `check-config` accepts every key of Alertmanager's `http_config`, and names each one amrelay
/// does not support, with why.
#[test]
fn check_config_accepts_alertmanagers_http_config_and_names_what_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "s3cret").unwrap();
    std::fs::set_permissions(dir.path().join("secret"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        "receivers:
  - name: oauth
    url: https://hooks.example/a
    http_config:
      oauth2:
        client_id: id
        client_secret_file: secret
        token_url: https://auth.example/token
        scopes: [a]
        endpoint_params: {resource: x}
        tls_config: {insecure_skip_verify: false, min_version: TLS12}
        proxy_url: http://proxy.example:3128
        no_proxy: auth.example
        proxy_connect_header: {X-A: [b]}
      follow_redirects: false
      enable_http2: true
      proxy_from_environment: true
      http_headers:
        X-Key: {values: [v], secrets: [s], files: [secret]}
  - name: bearer
    url: https://hooks.example/b
    http_config:
      bearer_token_file: secret
      proxy_url: http://proxy.example:3128
      no_proxy: hooks.example,10.0.0.0/8
      proxy_connect_header: {X-A: [b]}
",
    )
    .unwrap();
    let (ok, out) = check_config_with_env(&good, &[]);
    assert!(ok, "{out}");
    assert!(!out.contains("s3cret"), "{out}");

    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "receivers:
  - name: refs
    url: https://hooks.example/a
    http_config:
      basic_auth: {username: u, password_ref: vault/pw}
      tls_config: {max_version: TLS12, ca_ref: vault/ca}
  - name: jwt
    url: https://hooks.example/b
    http_config:
      oauth2:
        client_id: id
        client_secret: s
        token_url: https://auth.example/token
        grant_type: urn:ietf:params:oauth:grant-type:jwt-bearer
        client_certificate_key_file: key.pem
  - name: conflicts
    url: https://hooks.example/c
    http_config:
      proxy_url: http://proxy.example:3128
      proxy_from_environment: true
      http_headers: {Authorization: {values: [x]}}
",
    )
    .unwrap();
    let (ok, out) = check_config_with_env(&bad, &[]);
    assert!(!ok, "{out}");
    for expected in [
        "receivers[0].http_config.basic_auth.password_ref: not supported by amrelay",
        "receivers[0].http_config.tls_config.ca_ref: not supported by amrelay",
        "receivers[0].http_config.tls_config.max_version: not supported by amrelay",
        "receivers[1].http_config.oauth2.grant_type: not supported by amrelay",
        "receivers[1].http_config.oauth2.client_certificate_key_file: not supported by amrelay",
        "receivers[2].http_config.proxy_from_environment: proxy_url must not be set with it",
        "receivers[2].http_config.http_headers.Authorization: setting this header is not allowed",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}
