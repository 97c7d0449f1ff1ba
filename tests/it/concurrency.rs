//! Adaptive delivery concurrency, end to end: a downstream that cannot keep up is offered fewer
//! requests than a pinned limit would send it, per-groupKey order holds while the limit moves,
//! and the limit is exported as `amrelay_delivery_concurrency{receiver}`.

use std::time::Duration;

use crate::support::capacity::LimitedDownstream;
use crate::support::{Answer, Downstream, TestRelay, WAIT, alert, batch, numbered};

/// Posts `count` one-alert batches at once, each in its own group, so nothing but the
/// concurrency limit holds them back; returns when all are accepted.
async fn post_spread(relay: &TestRelay, count: usize) {
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..count {
        let body = batch(&format!("{{}}:{{shard=\"{i}\"}}"), vec![alert("firing", serde_json::json!({"n": "0"}))]);
        let url = relay.url("/webhook");
        posts.spawn(async move { crate::support::post_json(&url, body).await.status });
    }
    while let Some(status) = tokio::time::timeout(WAIT, posts.join_next()).await.expect("posts answered") {
        assert_eq!(status.unwrap(), 200);
    }
}

fn config(name: &str, url: &str, max_concurrency: &str) -> String {
    format!("receivers:\n  - name: {name}\n    url: {url}\n{max_concurrency}")
}

/// Guards the point of adaptive concurrency: a downstream serving 2 requests at a time is not
/// sent 64 at once, as a pinned `max_concurrency: 64` does to it.
#[tokio::test]
async fn a_saturated_downstream_gets_fewer_concurrent_requests_than_a_pinned_limit_sends() {
    const BATCHES: usize = 120;
    let mut most_held = Vec::new();
    for (name, setting) in [("adaptive", ""), ("pinned", "    max_concurrency: 64\n")] {
        let downstream = LimitedDownstream::start(2, Duration::from_millis(5)).await;
        let relay = TestRelay::start(&config(name, &downstream.url(), setting)).await;
        post_spread(&relay, BATCHES).await;
        downstream.wait_answered(BATCHES).await;
        most_held.push(downstream.most_held());
    }
    let (adaptive, pinned) = (most_held[0], most_held[1]);
    assert!(pinned >= 48, "the pinned limit should fill the downstream: {pinned} at once");
    eprintln!("most requests held at once: adaptive {adaptive}, pinned {pinned}");
    assert!(adaptive <= 16, "adaptive concurrency offered {adaptive} at once to a downstream serving 2");
}

/// Per-groupKey order holds while the adaptive limit moves: many groups, each with numbered
/// notifications, through a downstream whose latency rises with load.
#[tokio::test]
async fn per_group_order_holds_under_adaptive_concurrency() {
    const GROUPS: usize = 16;
    const EACH: usize = 12;
    let downstream = LimitedDownstream::start(3, Duration::from_millis(2)).await;
    let relay = TestRelay::start(&config("ordered", &downstream.url(), "")).await;
    for n in 0..EACH {
        for g in 0..GROUPS {
            assert_eq!(relay.post("/webhook", numbered(&format!("g{g}"), n)).await.status, 200);
        }
    }
    downstream.wait_answered(GROUPS * EACH).await;
    let order = downstream.order();
    assert_eq!(order.len(), GROUPS);
    for (group, numbers) in order {
        assert_eq!(numbers, (0..EACH).collect::<Vec<_>>(), "{group} out of order");
    }
}

/// The limit is exported: it starts at 4 for an adaptive receiver, is the number for a pinned
/// one, and a downstream that keeps refusing with 503 is sent one request at a time.
#[tokio::test]
async fn the_limit_is_exported_and_refusals_cut_it_to_one() {
    let refusing = Downstream::start().await;
    refusing.always(Answer::status(503));
    let pinned = Downstream::start().await;
    let yaml = format!(
        "delivery:\n  retry: {{max_attempts: 1000, initial_backoff: 10ms, max_backoff: 20ms, max_elapsed: 10m}}\n\
         receivers:\n  - name: refused\n    url: {}\n  - name: fixed\n    url: {}\n    max_concurrency: 7\n",
        refusing.url("/"),
        pinned.url("/")
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.metric(r#"amrelay_delivery_concurrency{receiver="refused"}"#).await, Some(4.0));
    assert_eq!(relay.metric(r#"amrelay_delivery_concurrency{receiver="fixed"}"#).await, Some(7.0));
    post_spread(&relay, 8).await;
    tokio::time::timeout(WAIT, relay.wait_metric(r#"amrelay_delivery_concurrency{receiver="refused"}"#, 1.0))
        .await
        .expect("the limit falls to 1");
    assert_eq!(relay.metric(r#"amrelay_delivery_concurrency{receiver="fixed"}"#).await, Some(7.0));
}

/// Pacing: an accepted batch's answer waits while its receiver holds more than a tenth of its
/// queue, so a sender posting as fast as it is answered cannot outrun delivery into a backlog.
/// The wait ends when deliveries bring the queue down, and after 250 ms at most; nothing is
/// refused for it.
#[tokio::test]
async fn answers_wait_while_the_queue_is_over_a_tenth_and_no_longer_than_the_deadline() {
    const WAITED: &str = "amrelay_webhook_pacing_wait_duration_seconds";
    // Deliveries take 2 s: the queue (capacity 20, paced above 2) does not come down meanwhile.
    let stalled = Downstream::start().await;
    stalled.always(Answer::status(200).delayed(Duration::from_secs(2)));
    let relay = TestRelay::start(&config("stalled", &stalled.url("/"), "    queue_capacity: 20\n")).await;
    for g in 0..2 {
        assert_eq!(relay.post("/webhook", numbered(&format!("g{g}"), 0)).await.status, 200);
    }
    assert_eq!(relay.metric(&format!("{WAITED}_count")).await, None, "nothing waited at depth 2 of 20");
    let started = std::time::Instant::now();
    assert_eq!(relay.post("/webhook", numbered("g2", 0)).await.status, 200);
    let waited = started.elapsed();
    assert!(waited >= amrelay::queue::PACE_MAX_WAIT, "the third answer came after {waited:?}");
    assert_eq!(relay.metric(&format!("{WAITED}_count")).await, Some(1.0));
    stalled.wait_for(3).await;

    // A downstream that keeps up: answers wait only until deliveries finish, not the deadline.
    let fast = Downstream::start().await;
    let relay = TestRelay::start(&config("fast", &fast.url("/"), "    queue_capacity: 100\n")).await;
    post_spread(&relay, 60).await;
    fast.wait_for(60).await;
    let paced = relay.metric(&format!("{WAITED}_count")).await.unwrap_or(0.0);
    let sum = relay.metric(&format!("{WAITED}_sum")).await.unwrap_or(0.0);
    assert!(paced > 0.0, "60 posts at once over a queue paced above 10 should wait");
    assert!(
        sum < paced * amrelay::queue::PACE_MAX_WAIT.as_secs_f64(),
        "every paced answer waited the full deadline ({paced} answers, {sum} s): deliveries do not wake them"
    );
}
