//! The test-message API and CLI, against live and failing receivers.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Answer, Downstream, Pki, TestRelay};

#[tokio::test]
async fn test_message_reports_success_and_each_failure_kind() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), "test-message");
    let live = Downstream::start().await;
    let failing = Downstream::start().await;
    failing.always(Answer::status(500).with_header("content-type", "text/plain"));
    let slow = Downstream::start().await;
    slow.always(Answer::status(200).delayed(Duration::from_secs(5)));
    let tls = Downstream::start_tls(pki.server_config(false)).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let yaml = format!(
        "receivers:
  - name: tm-live
    url: {}
    enabled: false
    conditions: [{{label: never, operator: Exists}}]
  - name: tm-500
    url: {}
  - name: tm-timeout
    url: {}
    timeout: 300ms
  - name: tm-tls
    url: {}
  - name: tm-connect
    url: {closed_url}
  - name: tm-dns
    url: http://amrelay-test.invalid/
    timeout: 5s
",
        live.url("/live"),
        failing.url("/"),
        slow.url("/"),
        tls.url("/"),
    );
    let relay = TestRelay::start_in(dir, &yaml).await;
    let test = |name: &'static str| {
        let url = relay.url(&format!("/api/v1/receivers/{name}/test"));
        async move { crate::support::post_json(&url, "").await }
    };

    // Disabled and with conditions nothing meets: the test message still goes out.
    let reply = test("tm-live").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let data = &reply.json()["data"];
    assert_eq!(data["delivered"], true);
    assert_eq!(data["status_code"], 200);
    assert!(data["latency_seconds"].as_f64().unwrap() < 5.0);
    let received = live.wait_for(1).await;
    assert_eq!(received[0].body["alerts"][0]["labels"]["amrelay_test"], "true");
    assert_eq!(received[0].body["version"], "4");

    let expect_failure = |reply: crate::support::Reply, kind: &str, detail: &str| {
        assert_eq!(reply.status, 502, "{}", reply.text());
        let body: Value = reply.json();
        assert_eq!(body["data"]["delivered"], false);
        assert_eq!(body["data"]["error_kind"], kind, "{body}");
        let error = body["data"]["error"].as_str().unwrap();
        assert!(error.contains(detail), "{kind}: {error:?} lacks {detail:?}");
    };
    let reply = test("tm-500").await;
    assert_eq!(reply.json()["data"]["status_code"], 500);
    expect_failure(reply, "http_status", "answered 500");
    expect_failure(test("tm-timeout").await, "timeout", "no answer within 300ms");
    expect_failure(test("tm-tls").await, "tls", "certificate");
    expect_failure(test("tm-connect").await, "connect", "Connection refused");
    expect_failure(test("tm-dns").await, "dns", "dns error");
    assert_eq!(test("tm-nope").await.status, 404);
}

/// `amrelay send-test` exits 0 only on a 2xx.
#[tokio::test]
async fn send_test_cli_exit_status() {
    let live = Downstream::start().await;
    let failing = Downstream::start().await;
    failing.always(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    let yaml =
        format!("receivers:\n  - name: ok\n    url: {}\n  - name: bad\n    url: {}\n", live.url("/"), failing.url("/"));
    std::fs::write(&path, yaml).unwrap();
    let run = |receiver: &str| {
        let path = path.clone();
        let receiver = receiver.to_owned();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"))
                .args(["send-test", "--config.file"])
                .arg(&path)
                .arg(&receiver)
                .output()
                .unwrap()
        })
    };
    let ok = run("ok").await.unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"status_code\": 200"));
    live.wait_for(1).await;
    let bad = run("bad").await.unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("\"error_kind\": \"http_status\""));
    let missing = run("missing").await.unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no receiver named \"missing\""));
}
