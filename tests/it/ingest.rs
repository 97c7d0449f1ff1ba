//! Bad input gets a clear 4xx, and the server keeps serving.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Downstream, TestRelay, send};

const MULTI: &str = include_str!("../fixtures/am-payload-multi.json");

#[tokio::test]
async fn bad_requests_are_refused_and_good_ones_still_flow() {
    let downstream = Downstream::start().await;
    let yaml =
        format!("server:\n  max_request_bytes: 4096\nreceivers:\n  - name: ingest\n    url: {}\n", downstream.url("/"));
    let relay = TestRelay::start(&yaml).await;
    let cases: [(&str, Vec<u8>, u16, &str); 6] = [
        ("malformed", b"{\"version\":\"4\",".to_vec(), 400, "invalid JSON"),
        ("not json", b"hello".to_vec(), 400, "invalid JSON"),
        ("wrong version", br#"{"version":"3","alerts":[]}"#.to_vec(), 400, "unsupported webhook version"),
        ("no version", br#"{"alerts":[]}"#.to_vec(), 400, "version"),
        ("bad alert", br#"{"version":"4","alerts":[{"status":"firing","labels":[]}]}"#.to_vec(), 400, "alerts[0]"),
        ("too large", vec![b' '; 5000], 413, "max_request_bytes"),
    ];
    for (name, body, status, message) in cases {
        let reply = relay.post("/webhook", body).await;
        assert_eq!(reply.status, status, "{name}: {}", reply.text());
        assert_eq!(reply.json()["status"], "error", "{name}");
        assert!(reply.json()["error"].as_str().unwrap().contains(message), "{name}: {}", reply.text());
    }

    let wrong_type = Request::post(relay.url("/webhook"))
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(MULTI)))
        .unwrap();
    assert_eq!(send(wrong_type).await.status, 415);
    assert_eq!(send(Request::get(relay.url("/webhook")).body(Full::default()).unwrap()).await.status, 405);

    // A chunked body without Content-Length is cut off at the limit too.
    let mut stream = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let chunk = vec![b'x'; 3000];
    let mut request =
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..2 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut answer = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await.unwrap().unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 413"), "{}", String::from_utf8_lossy(&answer[..n]));

    // The recorder is shared by every relay of this test process, so count at least ours.
    let decode_rejections = relay.metric(r#"amrelay_batches_rejected_total{reason="decode"}"#).await.unwrap_or(0.0);
    assert!(decode_rejections >= 5.0, "{decode_rejections}");
    // Nothing was forwarded, and the server still relays a good batch.
    assert!(downstream.received().is_empty());
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);
    downstream.wait_for(1).await;
}

#[tokio::test]
async fn operator_endpoints_answer() {
    let relay = TestRelay::start("receivers: []\n").await;
    let healthy = crate::support::get(&relay.url("/-/healthy")).await;
    assert_eq!(healthy.status, 200);
    assert_eq!(crate::support::get(&relay.url("/-/ready")).await.status, 200);
    assert_eq!(crate::support::get(&relay.url("/nope")).await.status, 404);
    let metrics = crate::support::get(&relay.url("/metrics")).await;
    for family in
        ["amrelay_build_info{", "process_resident_memory_bytes ", "process_open_fds ", "process_cpu_seconds_total "]
    {
        assert!(metrics.text().contains(family), "{family} missing from:\n{}", metrics.text());
    }
    // An empty batch is valid and simply goes nowhere.
    let reply = relay.post("/webhook", r#"{"version":"4","alerts":[]}"#).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["receivers"], serde_json::json!({}));
}
