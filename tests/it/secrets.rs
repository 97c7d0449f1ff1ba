//! Secret hygiene and outbound protections: `${VAR}` expansion, payload signing, proxies,
//! world-readable secret files, and no secret in Debug output, the status API, metrics or logs.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::credentials::{TEST_SECRETS, all_process_logs, assert_no_secret_in, basic, bcrypt_hash, request_with};
use crate::process::{RelayProcess, check_config_with_env};
use crate::support::{Answer, Downstream, TestRelay, get, post_json};

const MULTI: &str = include_str!("../fixtures/am-payload-multi.json");

fn write_secret(dir: &std::path::Path, name: &str, value: &str, mode: u32) {
    let path = dir.join(name);
    std::fs::write(&path, value).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `${VAR}` takes the environment variable's value; an unset one fails the load, naming the
/// variable (and nothing else) with its position.
#[tokio::test]
async fn environment_variables_expand_and_an_unset_one_is_an_error() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("amrelay.yml");
    let yaml = format!(
        "receivers:\n  - name: from-env\n    url: {}\n    http_config:\n      authorization:\n        credentials: ${{AMRELAY_TEST_TOKEN}}\n",
        downstream.url("/env")
    );
    std::fs::write(&config, yaml).unwrap();

    let (ok, out) = check_config_with_env(&config, &[("AMRELAY_TEST_TOKEN", "downstream-b3arer-from-env")]);
    assert!(ok, "{out}");
    let (ok, out) = check_config_with_env(&config, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("AMRELAY_TEST_TOKEN") && out.contains(":6:"), "{out}");

    let relay = RelayProcess::spawn_with_env(&config, &[], &[("AMRELAY_TEST_TOKEN", "downstream-b3arer-from-env")]);
    assert_eq!(post_json(&relay.url("/webhook"), MULTI).await.status, 200);
    let received = downstream.wait_for(1).await;
    assert_eq!(received[0].header("authorization"), Some("Bearer downstream-b3arer-from-env"));

    // `$${VAR}` is a literal, and a quoted "${VAR}" is not expanded (only plain scalars are).
    let literal = "receivers:\n  - name: literal\n    url: http://127.0.0.1:1/\n    headers:\n      X-A: $${NOPE}\n      X-B: \"${NOPE}\"\n      X-C: ${AMRELAY_SURELY_UNSET:-fallback}\n";
    std::fs::write(&config, literal).unwrap();
    let loaded = amrelay::config::load(&config, &amrelay::config::Environment::from_process()).unwrap();
    let headers: Vec<_> = loaded.receivers[0].endpoint.headers.iter().map(|(_, v)| v.to_str().unwrap()).collect();
    assert_eq!(headers, ["${NOPE}", "${NOPE}", "fallback"]);
}

/// A signed notification carries a timestamp and
/// `sha256=HMAC-SHA256(secret, timestamp "." id "." body)` over the exact bytes received, the id
/// being its `Idempotency-Key` — checked here independently of amrelay's code.
#[tokio::test]
async fn signed_notifications_verify_with_the_documented_scheme() {
    let downstream = Downstream::start().await;
    downstream.script([Answer::status(503)]);
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "hmac-secret", "hmac-s1gning-secret-0123456789\n", 0o600);
    let yaml = format!(
        "receivers:\n  - name: signed\n    url: {}\n    retry: {{initial_backoff: 2s, max_backoff: 2s}}\n    signing: {{secret_file: hmac-secret}}\n  - name: unsigned\n    url: {}\n",
        downstream.url("/signed"),
        downstream.url("/unsigned")
    );
    let relay = TestRelay::start_in(dir, &yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);
    let received = downstream.wait_for(3).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let signed: Vec<_> = received.iter().filter(|r| r.path == "/signed").collect();
    assert_eq!(signed.len(), 2, "a failed attempt and its retry");
    for request in &signed {
        let timestamp = request.header("x-amrelay-timestamp").unwrap();
        let age = now.abs_diff(timestamp.parse::<u64>().unwrap());
        assert!(age < 60, "timestamp {timestamp} is {age}s off");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"hmac-s1gning-secret-0123456789");
        let id = request.header("idempotency-key").unwrap();
        let mut message = format!("{timestamp}.{id}.").into_bytes();
        message.extend_from_slice(&request.raw_body);
        let tag: String = ring::hmac::sign(&key, &message).as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(request.header("x-amrelay-signature"), Some(format!("sha256={tag}").as_str()));
    }
    // Retries are signed afresh (their own timestamp), with the same idempotency key.
    assert_ne!(signed[0].header("x-amrelay-timestamp"), signed[1].header("x-amrelay-timestamp"));
    assert_eq!(signed[0].header("idempotency-key"), signed[1].header("idempotency-key"));
    let unsigned = received.iter().find(|r| r.path == "/unsigned").unwrap();
    assert_eq!(unsigned.header("x-amrelay-signature"), None);
}

/// `proxy_url` sends the notification through the proxy's CONNECT tunnel, with the URL's
/// credentials as `Proxy-Authorization`; the status API shows the proxy without them.
#[tokio::test]
async fn proxy_url_tunnels_through_an_http_connect_proxy() {
    let downstream = Downstream::start().await;
    let (proxy, seen) = crate::connect_proxy::start().await;
    let yaml = format!(
        "receivers:\n  - name: proxied\n    url: {}\n    http_config:\n      proxy_url: http://relay:pr0xy-passw0rd%21@{proxy}\n",
        downstream.url("/through-proxy")
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);
    assert_eq!(downstream.wait_for(1).await[0].path, "/through-proxy");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].lines().next(), Some(format!("CONNECT {} HTTP/1.1", downstream.addr).as_str()));
    let authorization = crate::connect_proxy::header(&seen[0], "proxy-authorization");
    assert_eq!(authorization, Some(basic("relay", "pr0xy-passw0rd!").as_str()));
    let status = get(&relay.url("/api/v1/status")).await;
    assert_eq!(status.json()["data"]["receivers"][0]["proxy_url"], format!("http://{proxy}/"));
    assert_no_secret_in(&status.text());
}

/// A secret file every user can read is a warning (not an error) in `check-config`.
#[tokio::test]
async fn world_readable_secret_files_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "open-password", "wonderland", 0o644);
    write_secret(dir.path(), "closed-token", "s3cret-token", 0o600);
    let config = dir.path().join("amrelay.yml");
    let yaml = "receivers:\n  - name: a\n    url: http://127.0.0.1:1/\n    http_config:\n      basic_auth: {username: u, password_file: open-password}\n  - name: b\n    url: http://127.0.0.1:1/\n    http_config:\n      authorization: {credentials_file: closed-token}\n";
    std::fs::write(&config, yaml).unwrap();
    let (ok, out) = check_config_with_env(&config, &[]);
    assert!(ok, "{out}");
    let warnings: Vec<_> = out.lines().filter(|l| l.starts_with("WARNING:")).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains("receivers[0].http_config.basic_auth.password_file") && warnings[0].contains("644"));
    assert_no_secret_in(&out);
}

/// Every kind of secret in one config: none shows in `Debug`, the status API or the metrics.
#[tokio::test]
async fn secrets_never_show_in_debug_output_status_or_metrics() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "password", "wonderland", 0o600);
    write_secret(dir.path(), "hmac", "hmac-s1gning-secret-0123456789", 0o600);
    let yaml = format!(
        "server:\n  basic_auth_users: {{am: \"{}\"}}\n  authorization: {{credentials: inbound-b3arer-t0ken}}\n  open_endpoints: [/metrics, /api/v1/status]\n\
         receivers:\n  - name: everything\n    url: {}\n    headers: {{X-Api-Key: custom-header-ap1-key}}\n    signing: {{secret_file: hmac}}\n\
         \x20   http_config:\n      basic_auth: {{username: alice, password_file: password}}\n      proxy_url: http://u:pr0xy-passw0rd@127.0.0.1:9/\n\
         \x20 - name: bearer\n    url: {}\n    http_config:\n      authorization: {{credentials: s3cret-token}}\n",
        bcrypt_hash("am-b4sic-passw0rd"),
        downstream.url("/a"),
        downstream.url("/b"),
    );
    let relay = TestRelay::start_in(dir, &yaml).await;
    let config =
        amrelay::config::load(&relay.dir.path().join("amrelay.yml"), &amrelay::config::Environment::from_process())
            .unwrap();
    let debug = format!("{config:?} {:?}", relay.relay.as_ref().unwrap().state().reloader.snapshot());
    assert_no_secret_in(&debug);
    assert!(debug.contains("<secret>"));
    assert!(!debug.contains("$2b$"), "bcrypt hashes are secrets too");
    for path in ["/api/v1/status", "/metrics"] {
        let reply = get(&relay.url(path)).await;
        assert_eq!(reply.status, 200);
        assert_no_secret_in(&reply.text());
        assert!(!reply.text().contains("$2b$"));
    }
}

/// The real binary at debug level, with secrets in every place a config can hold one, driven
/// through the paths that log: refused credentials, failing deliveries, a failed reload, test
/// messages. Then every log line of every binary run in this suite is checked.
#[tokio::test]
async fn no_secret_reaches_any_log() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(401));
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "password", "wonderland", 0o644);
    write_secret(dir.path(), "hmac", "hmac-s1gning-secret-0123456789", 0o600);
    let config = dir.path().join("amrelay.yml");
    let yaml = format!(
        "server:\n  basic_auth_users: {{am: \"{}\"}}\n  authorization: {{credentials: inbound-b3arer-t0ken}}\n  open_endpoints: [/metrics]\n\
         receivers:\n  - name: everything\n    url: {}\n    retry: {{max_attempts: 2, initial_backoff: 10ms}}\n    headers: {{X-Api-Key: custom-header-ap1-key}}\n    signing: {{secret_file: hmac}}\n\
         \x20   http_config:\n      basic_auth: {{username: alice, password_file: password}}\n\
         \x20 - name: env-bearer\n    url: {}\n    retry: {{max_attempts: 1}}\n    http_config:\n      authorization:\n        credentials: ${{AMRELAY_TEST_TOKEN}}\n\
         \x20 - name: proxied\n    url: http://127.0.0.1:9/\n    retry: {{max_attempts: 1}}\n    http_config:\n      proxy_url: http://u:pr0xy-passw0rd@127.0.0.1:1/\n",
        bcrypt_hash("am-b4sic-passw0rd"),
        downstream.url("/a"),
        downstream.url("/b"),
    );
    std::fs::write(&config, &yaml).unwrap();
    let env = [("AMRELAY_TEST_TOKEN", "downstream-b3arer-from-env")];
    let relay = RelayProcess::spawn_with_env(&config, &["--log.level=debug"], &env);
    let json = ("content-type", "application/json");
    let good = basic("am", "am-b4sic-passw0rd");
    let bad = basic("am", "wr0ng-passw0rd-attempt");
    assert_eq!(
        request_with("POST", &relay.url("/webhook"), &[json, ("authorization", &good)], MULTI).await.status,
        200
    );
    assert_eq!(request_with("POST", &relay.url("/webhook"), &[json, ("authorization", &bad)], MULTI).await.status, 401);
    let wrong_bearer = ("authorization", "Bearer wr0ng-passw0rd-attempt");
    assert_eq!(request_with("GET", &relay.url("/api/v1/status"), &[wrong_bearer], "").await.status, 401);
    let bearer = ("authorization", "Bearer inbound-b3arer-t0ken");
    for name in ["everything", "env-bearer", "proxied"] {
        let path = format!("/api/v1/receivers/{name}/test");
        assert_eq!(request_with("POST", &relay.url(&path), &[bearer], "").await.status, 502);
    }
    // A reload that fails on a secret-bearing line.
    std::fs::write(
        &config,
        yaml.replace(
            "authorization: {credentials: inbound-b3arer-t0ken}",
            "authorization: {credentials: inbound-b3arer-t0ken, type: Basic}",
        ),
    )
    .unwrap();
    assert_eq!(request_with("POST", &relay.url("/-/reload"), &[bearer], "").await.status, 500);
    relay
        .wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="everything",reason="non_retryable"}"#, 1.0)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let logs = relay.logs();
    assert!(logs.contains("dead-lettered") && logs.contains("config reload failed"), "{logs}");
    assert!(logs.contains("readable by every user"), "{logs}");
    assert_no_secret_in(&logs);
    drop(relay);
    for log in all_process_logs().lock().unwrap().iter() {
        assert_no_secret_in(&log.lock().unwrap().join("\n"));
    }
    assert!(TEST_SECRETS.len() >= 8);
}

/// A downstream that answers 400 with everything it was sent that may be secret: the
/// Authorization header (and its decoded basic pair), a custom header, the path and query, raw
/// and percent-encoded.
async fn echoing_downstream() -> std::net::SocketAddr {
    use base64::Engine;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    crate::support::serve::serve_on(listener, |request: http::Request<hyper::body::Incoming>| async move {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let authorization = header("authorization");
        let decoded = authorization
            .strip_prefix("Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_default();
        let target = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("").to_owned();
        let encoded: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let body = format!(
            "{{\"error\":\"refused {target} ({encoded}) auth={authorization} basic={decoded} \
             key={} signed={}\"}}",
            header("x-api-key"),
            header("x-amrelay-signature").len(),
        );
        let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
        *response.status_mut() = http::StatusCode::BAD_REQUEST;
        response
    });
    addr
}

/// Regression (issue 21): a downstream's error answer that echoes the credentials it was sent
/// put them in the test answer, `/api/v1/status`, the dead letter and the log. Each now shows
/// the answer with the receiver's secrets, as sent or encoded, replaced by `***`.
#[tokio::test]
async fn an_answer_echoing_the_credentials_is_scrubbed_everywhere_it_is_shown() {
    let addr = echoing_downstream().await;
    let secrets =
        ["b4sic-pa55w0rd-echo", "h3ader-ap1-k3y-echo", "s3cret-path-7f3a", "qu3ry-s3cret-91", "b3arer-echo-t0ken"];
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("amrelay.yml");
    std::fs::write(
        &config,
        format!(
            "receivers:
  - name: echo
    url: http://{addr}/hook/s3cret-path-7f3a?key=qu3ry-s3cret-91
    headers: {{X-Api-Key: h3ader-ap1-k3y-echo}}
    http_config: {{basic_auth: {{username: am, password: b4sic-pa55w0rd-echo}}}}
"
        ),
    )
    .unwrap();
    let relay = RelayProcess::spawn(&config, &["--log.level=debug"]);
    use base64::Engine;
    let basic_pair = base64::engine::general_purpose::STANDARD.encode("am:b4sic-pa55w0rd-echo");
    let assert_scrubbed = |what: &str, text: &str| {
        // As sent, and the basic pair's base64 (echoed in `auth=`); the percent-encoded path
        // holds the secrets as they are (letters, digits and `-` are not encoded).
        for secret in secrets.iter().chain([&basic_pair.as_str()]) {
            assert!(!text.contains(secret), "{secret:?} shown in {what}: {text}");
        }
    };

    assert_eq!(post_json(&relay.url("/webhook"), MULTI).await.status, 200);
    relay
        .wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="echo",reason="non_retryable"}"#, 1.0)
        .await;
    let status = get(&relay.url("/api/v1/status")).await.json();
    let echo = status["data"]["receivers"].as_array().unwrap().iter().find(|r| r["name"] == "echo").unwrap().clone();
    let last_error = echo["last_error"]["error"].as_str().unwrap().to_owned();
    assert!(last_error.contains("HTTP 400") && last_error.contains("auth=*** basic=am:***"), "{last_error}");
    assert_scrubbed("status", &status.to_string());
    let letters = get(&relay.url("/api/v1/deadletters")).await;
    assert!(letters.text().contains("HTTP 400"), "{}", letters.text());
    assert_scrubbed("dead letters", &letters.text());

    let test = post_json(&relay.url("/api/v1/receivers/echo/test"), "").await;
    assert_eq!(test.status, 502, "{}", test.text());
    let data = &test.json()["data"];
    assert_eq!((data["status_code"].as_u64(), data["error_kind"].as_str()), (Some(400), Some("http_status")));
    assert!(data["error"].as_str().unwrap().contains("key=***"), "{data}");
    assert_scrubbed("the test answer", &test.text());

    // An unsaved definition: its own bearer token and secret http_headers are scrubbed as well.
    let unsaved = serde_json::json!({
        "name": "draft",
        "url": format!("http://{addr}/draft/s3cret-path-7f3a"),
        "http_config": {
            "authorization": {"credentials": "b3arer-echo-t0ken"},
            "http_headers": {"X-Api-Key": {"secrets": ["h3ader-ap1-k3y-echo"]}},
        },
    });
    let test = post_json(&relay.url("/api/v1/receiver-test"), unsaved.to_string()).await;
    assert_eq!(test.status, 502, "{}", test.text());
    assert!(test.text().contains("auth=*** "), "{}", test.text());
    assert_scrubbed("the unsaved test answer", &test.text());

    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = relay.logs();
    assert!(logs.contains("dead-lettered") && logs.contains("test message failed"), "{logs}");
    assert_scrubbed("the log", &logs);
}
