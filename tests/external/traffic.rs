//! A relay after traffic that makes every amrelay metric appear in its scrape: what the
//! Prometheus, promtool and dashboard checks need to look at.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use std::time::Duration;

use crate::support::{Answer, Downstream, TestRelay, get, send, three_downstreams};

/// A relay with a spool after real traffic that makes every amrelay metric appear in its
/// scrape: matched and filtered alerts, deliveries, a retry after a 503, a dead letter after a
/// 400, a rejected batch, a paced answer, a reload, spool commits and the admin endpoints.
/// Receiver names start with `prefix`, so that concurrent tests (the recorder is process-wide)
/// count apart.
pub async fn relay_after_traffic(prefix: &str) -> (TestRelay, Vec<Downstream>) {
    const MULTI: &str = include_str!("../fixtures/am-payload-multi.json");
    let (ok, flaky, refusing) = three_downstreams().await;
    // Answers after a second: its queue (paced above 1 of 10) stays up while a second batch comes.
    let slow = Downstream::start().await;
    slow.always(Answer::status(200).delayed(Duration::from_secs(1)));
    let yaml = format!(
        "delivery:
  retry: {{initial_backoff: 10ms, max_backoff: 50ms}}
  spool: {{path: spool.redb}}
receivers:
  - name: {prefix}-ok
    url: {}
    conditions:
      - {{label: severity, operator: In, values: [critical]}}
  - name: {prefix}-flaky
    url: {}
  - name: {prefix}-refused
    url: {}
  - name: {prefix}-slow
    url: {}
    queue_capacity: 10
",
        ok.url("/ok"),
        flaky.url("/flaky"),
        refusing.url("/refused"),
        slow.url("/slow"),
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);
    // The slow receiver now holds 2 of 10, above a tenth: this answer is paced.
    assert_eq!(relay.post(&format!("/webhook/{prefix}-slow"), MULTI).await.status, 200);
    assert_eq!(relay.post("/webhook", "not json").await.status, 400);
    let reload = send(Request::post(relay.url("/-/reload")).body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    for path in ["/-/healthy", "/-/ready", "/api/v1/status"] {
        assert_eq!(get(&relay.url(path)).await.status, 200, "{path}");
    }
    for (receiver, metric) in
        [("ok", "amrelay_notifications_delivered_total"), ("flaky", "amrelay_notifications_delivered_total")]
    {
        relay.wait_metric(&format!(r#"{metric}{{receiver="{prefix}-{receiver}"}}"#), 1.0).await;
    }
    relay
        .wait_metric(
            &format!(
                r#"amrelay_notifications_dead_lettered_total{{receiver="{prefix}-refused",reason="non_retryable"}}"#
            ),
            1.0,
        )
        .await;
    (relay, vec![ok, flaky, refusing, slow])
}
