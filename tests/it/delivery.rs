//! Retries, backoff, Retry-After, dead letters, isolation between receivers, per-group order,
//! and all-or-nothing acceptance.

use std::time::Duration;

use serde_json::json;

use crate::support::{Answer, Downstream, TestRelay, alert, batch};

const MULTI: &str = include_str!("../fixtures/am-payload-multi.json");

fn receiver(name: &str, url: &str, extra: &str) -> String {
    format!("receivers:\n  - name: {name}\n    url: {url}\n{extra}")
}

/// 503 and a dropped connection are retried until a 2xx; the idempotency key stays the same.
#[tokio::test]
async fn failures_are_retried_until_delivered() {
    let downstream = Downstream::start().await;
    downstream.script([Answer::status(503), Answer::status(500), Answer::status(408)]);
    let yaml = receiver("retry-ok", &downstream.url("/"), "    retry: {initial_backoff: 10ms, max_backoff: 50ms}\n");
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);

    let received = downstream.wait_for(4).await;
    assert_eq!(received.iter().map(|r| r.answered).collect::<Vec<_>>(), [503, 500, 408, 200]);
    let key = received[0].header("idempotency-key").unwrap().to_owned();
    assert!(received.iter().all(|r| r.header("idempotency-key") == Some(key.as_str())));
    assert!(received.iter().all(|r| r.body == received[0].body));
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="retry-ok"}"#, 1.0).await;
    assert_eq!(relay.metric(r#"amrelay_delivery_attempts_total{receiver="retry-ok",outcome="5xx"}"#).await, Some(2.0));
    assert_eq!(relay.metric(r#"amrelay_delivery_attempts_total{receiver="retry-ok",outcome="4xx"}"#).await, Some(1.0));
}

/// A 429's Retry-After is waited out even when the backoff would be much shorter.
#[tokio::test]
async fn retry_after_is_honoured() {
    let downstream = Downstream::start().await;
    downstream.script([Answer::status(429).with_header("retry-after", "1")]);
    let yaml = receiver("retry-after", &downstream.url("/"), "    retry: {initial_backoff: 10ms, max_backoff: 5s}\n");
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);
    let received = downstream.wait_for(2).await;
    let gap = received[1].at - received[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}, before Retry-After");
    assert!(gap < Duration::from_secs(3), "retried after {gap:?}");
}

/// A 400 is not retried: the notification is dead-lettered at once and counted.
#[tokio::test]
async fn client_errors_are_not_retried() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(400));
    let yaml = receiver("no-retry", &downstream.url("/"), "    retry: {initial_backoff: 10ms}\n");
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);
    relay
        .wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="no-retry",reason="non_retryable"}"#, 1.0)
        .await;
    downstream.assert_stays_at(1, Duration::from_millis(300)).await;
    relay.wait_metric(r#"amrelay_queue_depth{receiver="no-retry"}"#, 0.0).await;
}

/// After max_attempts failures the notification is dead-lettered, with exactly that many tries.
#[tokio::test]
async fn dead_letter_after_max_attempts() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(502));
    let yaml = receiver(
        "dead",
        &downstream.url("/"),
        "    retry: {max_attempts: 3, initial_backoff: 10ms, max_backoff: 20ms}\n",
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);
    relay.wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="dead",reason="max_attempts"}"#, 1.0).await;
    downstream.assert_stays_at(3, Duration::from_millis(200)).await;
}

/// An unreachable downstream is retried as a connection error.
#[tokio::test]
async fn connection_errors_are_retried_and_counted() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let yaml = receiver("refused", &url, "    retry: {max_attempts: 2, initial_backoff: 10ms}\n");
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);
    relay
        .wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="refused",reason="max_attempts"}"#, 1.0)
        .await;
    assert_eq!(
        relay.metric(r#"amrelay_delivery_attempts_total{receiver="refused",outcome="connect"}"#).await,
        Some(2.0)
    );
}

/// A receiver that hangs does not delay another one.
#[tokio::test]
async fn a_hanging_receiver_does_not_delay_others() {
    let hanging = Downstream::start().await;
    hanging.always(Answer::status(200).delayed(Duration::from_secs(30)));
    let fast = Downstream::start().await;
    let yaml = format!(
        "receivers:\n  - name: iso-hang\n    url: {}\n    timeout: 20s\n  - name: iso-fast\n    url: {}\n",
        hanging.url("/"),
        fast.url("/")
    );
    let relay = TestRelay::start(&yaml).await;
    let started = std::time::Instant::now();
    for i in 0..5 {
        let body = batch(&format!("g{i}"), vec![alert("firing", json!({"i": i.to_string()}))]);
        assert_eq!(relay.post("/webhook", body).await.status, 200);
    }
    fast.wait_for(5).await;
    assert!(started.elapsed() < Duration::from_secs(5), "fast receiver waited {:?}", started.elapsed());
    hanging.wait_for(1).await;
}

/// For one groupKey, notifications arrive in acceptance order even when the first needs
/// retries; another group is not held up meanwhile.
#[tokio::test]
async fn per_group_order_is_kept_through_retries() {
    let downstream = Downstream::start().await;
    downstream.script([Answer::status(503)]);
    let yaml = receiver("order", &downstream.url("/"), "    retry: {initial_backoff: 300ms, max_backoff: 300ms}\n");
    let relay = TestRelay::start(&yaml).await;
    for n in 1..=3 {
        let body = batch("{}:{alertname=\"A\"}", vec![alert("firing", json!({"alertname": "A", "n": n.to_string()}))]);
        assert_eq!(relay.post("/webhook", body).await.status, 200);
    }
    let other = batch("{}:{alertname=\"B\"}", vec![alert("firing", json!({"alertname": "B", "n": "b"}))]);
    assert_eq!(relay.post("/webhook", other).await.status, 200);

    downstream.wait_for(5).await;
    let delivered: Vec<String> = downstream.delivered().iter().map(|r| r.labels("n")[0].clone()).collect();
    let group_a: Vec<&str> = delivered.iter().filter(|n| *n != "b").map(String::as_str).collect();
    assert_eq!(group_a, ["1", "2", "3"]);
    assert_eq!(delivered[0], "b", "group B went first while group A was retrying");
}

/// When one receiver's queue is full the batch is refused with 503 and Retry-After, and no
/// receiver takes it: Alertmanager's retry then causes no duplicate.
#[tokio::test]
async fn full_queue_refuses_the_whole_batch() {
    let slow = Downstream::start().await;
    slow.always(Answer::status(200).delayed(Duration::from_secs(2)));
    let other = Downstream::start().await;
    let yaml = format!(
        "receivers:\n  - name: full-slow\n    url: {}\n    queue_capacity: 1\n  - name: full-other\n    url: {}\n",
        slow.url("/"),
        other.url("/")
    );
    let relay = TestRelay::start(&yaml).await;
    let first = batch("g1", vec![alert("firing", json!({"n": "1"}))]);
    assert_eq!(relay.post("/webhook", first).await.status, 200);
    let second = batch("g2", vec![alert("firing", json!({"n": "2"}))]);
    let refused = relay.post("/webhook", second.clone()).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.headers.get("retry-after").unwrap(), "5");
    assert!(refused.text().contains("full-slow"), "{}", refused.text());

    other.wait_for(1).await;
    other.assert_stays_at(1, Duration::from_millis(200)).await;
    assert_eq!(other.received()[0].labels("n"), ["1"]);

    // Once the slow receiver catches up, Alertmanager's retry is accepted and delivered once.
    slow.wait_for(1).await;
    relay.wait_metric(r#"amrelay_queue_depth{receiver="full-slow"}"#, 0.0).await;
    assert_eq!(relay.post("/webhook", second).await.status, 200);
    other.wait_for(2).await;
    slow.wait_for(2).await;
    assert_eq!(other.received()[1].labels("n"), ["2"]);
}

/// Regression: a receiver whose rule takes nothing counted its filtered alerts even when the
/// batch was then refused, so Alertmanager's retry counted them twice.
#[tokio::test]
async fn filtered_alerts_are_counted_only_for_accepted_batches() {
    let slow = Downstream::start().await;
    slow.always(Answer::status(200).delayed(Duration::from_secs(2)));
    let yaml = format!(
        "receivers:\n  - name: fc-full\n    url: {}\n    queue_capacity: 1\n  - name: fc-none\n    url: {}\n    conditions: [{{label: never, operator: Exists}}]\n",
        slow.url("/"),
        slow.url("/none")
    );
    let relay = TestRelay::start(&yaml).await;
    let series = r#"amrelay_receiver_alerts_filtered_total{receiver="fc-none"}"#;
    assert_eq!(relay.post("/webhook", batch("g1", vec![alert("firing", json!({"n": "1"}))])).await.status, 200);
    assert_eq!(relay.metric(series).await, Some(1.0));
    assert_eq!(relay.post("/webhook", batch("g2", vec![alert("firing", json!({"n": "2"}))])).await.status, 503);
    assert_eq!(relay.metric(series).await, Some(1.0), "a refused batch counts nothing");
}

/// A 2xx answer whose body never ends: a body that is always ready with another 64 KiB.
struct Endless;

impl hyper::body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        static CHUNK: [u8; 65536] = [b'x'; 65536];
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes::Bytes::from_static(&CHUNK)))))
    }
}

/// Regression: a 2xx answer was read whole (a 300 MiB answer held 315 MiB of memory, an endless
/// one timed the attempt out and was retried). Now at most 64 KiB of it is read, and the
/// notification counts as delivered, once.
#[tokio::test]
async fn an_endless_success_answer_is_not_read_whole() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async { Ok::<_, std::convert::Infallible>(hyper::Response::new(Endless)) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    let yaml = receiver("endless", &format!("http://{addr}/"), "    timeout: 5s\n");
    let relay = TestRelay::start(&yaml).await;
    let body = batch("{}:{a=\"1\"}", vec![alert("firing", json!({"alertname": "A"}))]);
    assert_eq!(relay.post("/webhook", body).await.status, 200);
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="endless"}"#, 1.0).await;
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1, "delivered once, not retried");
}
