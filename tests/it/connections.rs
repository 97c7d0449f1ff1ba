//! What one connection may cost (issue: hardening): a socket that never sends a request, an
//! HTTP/2 client that only pings, and a client that opens every connection it can are all cut
//! off, and the relay keeps serving others, probes included.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{TestRelay, WAIT};

/// Waits for the server to close `stream`; returns how long it took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
}

/// Regression: a socket that sent nothing stayed open until the 2-minute idle timeout.
#[tokio::test]
async fn a_socket_that_sends_no_request_is_closed_after_the_header_read_timeout() {
    let relay =
        TestRelay::start("server:\n  limits: {header_read_timeout: 300ms, idle_timeout: 1m}\nreceivers: []\n").await;
    let mut silent = TcpStream::connect(relay.addr).await.unwrap();
    let took = closed_within(&mut silent, WAIT).await;
    assert!(took >= Duration::from_millis(250), "closed too early: {took:?}");
    relay.wait_metric(r#"amrelay_connection_errors_total{reason="no_request"}"#, 1.0).await;
}

/// Regression: an HTTP/2 client sending only PINGs kept its connection forever.
#[tokio::test]
async fn an_http2_connection_that_only_pings_is_closed_after_the_idle_timeout() {
    let relay = TestRelay::start("server:\n  limits: {idle_timeout: 500ms}\nreceivers: []\n").await;
    let tcp = TcpStream::connect(relay.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_while_idle(true)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/-/healthy", relay.addr)).body(Empty::new()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.into_body().collect().await;
    let started = Instant::now();
    // The client keeps pinging; the server ends the connection once no request came for 500 ms.
    tokio::time::timeout(WAIT, driver).await.expect("the pinging connection stayed open").unwrap().ok();
    assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
}

/// Regression: one client could hold every `max_connections` slot, so the kubelet's probes
/// failed and the pod was restarted.
#[tokio::test]
async fn one_client_cannot_take_every_connection() {
    let relay = TestRelay::start(
        "server:\n  limits: {max_connections: 8, max_connections_per_client: 3, header_read_timeout: 1m}\nreceivers: []\n",
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(relay.addr).await.unwrap());
    }
    // The fourth from the same address is closed at once.
    let mut fourth = TcpStream::connect(relay.addr).await.unwrap();
    closed_within(&mut fourth, WAIT).await;
    // Another address still gets in.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(relay.addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    other.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, other.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
    relay.wait_metric(r#"amrelay_connection_errors_total{reason="max_connections_per_client"}"#, 1.0).await;
}

/// `max_connections_per_client` cannot exceed `max_connections`.
#[test]
fn per_client_limit_above_the_total_is_a_config_error() {
    let yaml = "server:\n  limits: {max_connections: 4, max_connections_per_client: 5}\n";
    let error = amrelay::config::from_str(yaml, std::path::Path::new("/x.yml"), &amrelay::config::Environment::empty())
        .unwrap_err()
        .to_string();
    assert!(error.contains("server.limits.max_connections_per_client"), "{error}");
}
