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
