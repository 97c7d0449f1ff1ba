//! Long groupKeys (issue 21): bounded by `server.limits.max_group_key_bytes`, counted in the
//! memory budget while queued, and kept as a hash in thread state, whose listing is paged and
//! whose bytes the spool's count includes.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::discord_api::FakeDiscord;
use crate::process::RelayProcess;
use crate::support::eventually::eventually;
use crate::support::{Answer, Downstream, TestRelay, WAIT, alert, batch, get, metric_in, post_json, spool_config};

fn firing(group: &str) -> String {
    batch(group, vec![alert("firing", json!({"alertname": "Long", "severity": "critical"}))])
}

/// `data.spool.bytes` of `/api/v1/status`: this relay's own count (the metrics registry is
/// shared by the relays of this test binary).
async fn spool_bytes(relay: &TestRelay) -> u64 {
    get(&relay.url("/api/v1/status")).await.json()["data"]["spool"]["bytes"].as_u64().unwrap()
}

/// Regression (issue 21): a 1 MiB groupKey was taken whole into queues, spool records and thread
/// state, outside every budget. Now it is refused with 413 naming the limit, by `/webhook` and
/// `/api/v1/route-test` alike, and nothing of it is queued or stored; a groupKey at the limit is
/// accepted and delivered.
#[tokio::test]
async fn a_long_group_key_is_refused_with_413_and_nothing_is_stored() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = spool_config(dir.path(), &downstream.url("/"), "").replace("name: durable", "name: long-keys");
    let relay = TestRelay::start_in(dir, &yaml).await;

    let rejected = r#"amrelay_batches_rejected_total{reason="group_key_too_long"}"#;
    let reply = relay.post("/webhook", firing(&"k".repeat(1 << 20))).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(reply.text().contains("server.limits.max_group_key_bytes (8192)"), "{}", reply.text());
    // Only this test sends long groupKeys to this process's relays: the count is its own.
    let counted = relay.metric(rejected).await.unwrap();
    assert!(counted >= 1.0);
    let reply = relay.post("/api/v1/route-test", firing(&"k".repeat(8193))).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(reply.text().contains("max_group_key_bytes"), "{}", reply.text());
    assert_eq!(relay.metric(rejected).await, Some(counted), "a route test is not a refused batch: not counted");
    let status = get(&relay.url("/api/v1/status")).await.json();
    assert_eq!(status["data"]["receivers"][0]["queue_depth"], 0);
    assert_eq!(spool_bytes(&relay).await, 0, "nothing stored");

    let reply = relay.post("/webhook", firing(&"k".repeat(8192))).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let received = downstream.wait_for(1).await;
    assert_eq!(received.len(), 1, "only the batch within the limit was delivered");
}

/// Regression (issue 21): a queued notification's groupKey was not counted in the memory budget
/// (`used` stayed at 0 while long groupKeys piled up in a stalled receiver's queue, with their
/// bodies left on disk). Now each queued notification holds its header's bytes too.
#[tokio::test]
async fn queued_headers_are_charged_to_the_memory_budget() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    // A window of one byte: every body stays on disk, only headers are held in memory.
    let yaml = spool_config(dir.path(), &downstream.url("/"), ", memory_window_bytes: 1")
        .replace("initial_backoff: 20ms, max_backoff: 100ms", "initial_backoff: 1m, max_backoff: 1m");
    std::fs::write(&path, yaml).unwrap();
    let relay = RelayProcess::spawn(&path, &[]);
    let used = r#"amrelay_memory_budget_bytes{state="used"}"#;
    let scrape = || async { metric_in(&get(&relay.url("/metrics")).await.text(), used).unwrap() };
    let count = 30;
    let group = "k".repeat(8000);
    for n in 0..count {
        let batch = batch(&group, vec![alert("firing", json!({"alertname": "Long", "n": n.to_string()}))]);
        let reply = post_json(&relay.url("/webhook"), batch).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // One group: its first notification is in delivery (its body read back), the others wait
    // behind it with their bodies on disk and their groupKeys in memory.
    let held = scrape().await;
    assert!(held >= ((count - 1) * 8000) as f64, "{held} bytes counted for {count} queued 8 KB groupKeys");
    assert_eq!(
        metric_in(&get(&relay.url("/metrics")).await.text(), "amrelay_spool_memory_window_bytes{state=\"used\"}"),
        Some(0.0)
    );
}

/// Regression (issue 21): `/api/v1/threads` answered every remembered group at once (63 MB with
/// long groupKeys) and the spool's byte count left thread state out. Now groups are listed in
/// pages that neither repeat nor skip one, each with its hash and the start of its groupKey, and
/// the spool's count grows with thread state by a bounded amount per group.
#[tokio::test]
async fn threads_are_listed_in_pages_and_counted_in_the_spool_bytes() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = crate::threads::config(dir.path(), &discord.webhook_url(), "paged-threads");
    let relay = TestRelay::start_in(dir, &yaml).await;
    let groups = 25;
    let long = "k".repeat(8000);
    assert_eq!(relay.post("/webhook", firing(&format!("{{}}:{{n=\"0\"}}{long}"))).await.status, 200);
    discord.wait_calls(1).await;
    let one = settled_bytes(&relay).await;
    assert!(one > 0, "the first group's thread entry is in the file");
    for n in 1..groups {
        assert_eq!(relay.post("/webhook", firing(&format!("{{}}:{{n=\"{n}\"}}{long}"))).await.status, 200);
    }
    discord.wait_calls(groups).await;
    relay.wait_metric(r#"amrelay_threads{receiver="paged-threads"}"#, groups as f64).await;
    let all = settled_bytes(&relay).await;
    assert!(all > one, "{all} bytes for {groups} groups, {one} for one");
    assert!(all < (groups * 1000) as u64, "{all} bytes: groupKeys of 8000 bytes are not kept whole");

    let (mut seen, mut after, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = get(&relay.url(&format!("/api/v1/threads?receiver=paged-threads&limit=10{after}"))).await.json();
        let threads = page["data"]["threads"].as_array().unwrap().clone();
        assert!(threads.len() <= 10, "{page}");
        assert_eq!(page["total"], groups);
        for thread in &threads {
            assert_eq!(thread["group_hash"].as_str().unwrap().len(), 64);
            assert!(thread["group_key"].as_str().unwrap().len() <= 128, "only the start of the groupKey");
            seen.push(thread["message_id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        assert!(pages <= groups, "the pages never end");
        match page["next_after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (groups, groups), "no group twice, none missing");
    let bad = get(&relay.url("/api/v1/threads?receiver=paged-threads&after=zz")).await;
    assert_eq!(bad.status, 400, "{}", bad.text());
}

/// The spool's byte count once the writer has committed the removals of delivered
/// notifications (they are committed without waiting, within about a second): settled means
/// unchanged over 300 ms with nothing queued.
async fn settled_bytes(relay: &TestRelay) -> u64 {
    eventually("the spool's bytes to settle", WAIT, async || {
        let last = spool_bytes(relay).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = spool_bytes(relay).await;
        let queued: u64 =
            get(&relay.url("/api/v1/status")).await.json()["data"]["receivers"][0]["queue_depth"].as_u64().unwrap();
        if now == last && queued == 0 { Ok(now) } else { Err(format!("{last} → {now}, {queued} queued")) }
    })
    .await
}
