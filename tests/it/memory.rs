//! Bounded memory (issue 15): one byte budget for what is held on callers' behalf, and a spool
//! whose bodies stay on disk beyond a bounded window. Each relay here is its own process, so its
//! gauges are its own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::process::RelayProcess;
use crate::support::{Answer, Downstream, WAIT, alert, batch, get, metric_in, post_json, spool_config};

/// A batch of group `group`, numbered `n`, carrying `filler` bytes in an annotation.
fn padded(group: &str, n: usize, filler: usize) -> String {
    let mut alert = alert("firing", json!({"alertname": group, "n": n.to_string()}));
    alert["annotations"] = json!({"description": "x".repeat(filler)});
    batch(&format!("{{}}:{{alertname=\"{group}\"}}"), vec![alert])
}

async fn metric(relay: &RelayProcess, series: &str) -> f64 {
    metric_in(&get(&relay.url("/metrics")).await.text(), series).unwrap_or_else(|| panic!("no {series}"))
}

/// Waits until `count` notifications were delivered; returns each group's numbers in order.
async fn delivered_in_order(
    downstream: &Downstream,
    count: usize,
    relay: &RelayProcess,
) -> HashMap<String, Vec<usize>> {
    let deadline = Instant::now() + WAIT * 3;
    while downstream.delivered().len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} delivered\n{}",
            downstream.delivered().len(),
            relay.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for r in downstream.delivered() {
        groups.entry(r.labels("alertname")[0].clone()).or_default().push(r.labels("n")[0].parse().unwrap());
    }
    groups
}

/// Regression (issue 15): queues had no byte limit, so a stalled receiver grew the process past
/// its pod limit. Now a spent budget answers 503 + Retry-After, the budget is never exceeded, and
/// every batch that was accepted is delivered once the receiver recovers.
#[tokio::test]
async fn a_spent_memory_budget_refuses_with_503_and_loses_nothing_accepted() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    let limit = 100_000;
    let yaml = format!(
        "server:
  max_request_bytes: 65536
  limits: {{max_memory_bytes: {limit}}}
delivery:
  retry: {{max_attempts: 1000, initial_backoff: 20ms, max_backoff: 100ms, max_elapsed: 10m}}
receivers:
  - name: stalled
    url: {}
",
        downstream.url("/")
    );
    std::fs::write(&path, yaml).unwrap();
    let relay = RelayProcess::spawn(&path, &[]);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for n in 0..40 {
        let reply = post_json(&relay.url("/webhook"), padded(&format!("G{}", n % 3), n, 8000)).await;
        match reply.status.as_u16() {
            200 => accepted.push(n),
            503 => {
                refused += 1;
                assert!(reply.headers.contains_key("retry-after"), "503 without Retry-After");
                assert!(reply.text().contains("server.limits.max_memory_bytes"), "{}", reply.text());
            }
            other => panic!("{other}: {}", reply.text()),
        }
    }
    assert!(refused > 0 && accepted.len() > 3, "accepted {accepted:?}, refused {refused}");
    let used = r#"amrelay_memory_budget_bytes{state="used"}"#;
    assert!(metric(&relay, used).await <= limit as f64);
    assert!(metric(&relay, r#"amrelay_memory_budget_bytes{state="peak"}"#).await <= limit as f64);
    assert_eq!(metric(&relay, r#"amrelay_memory_budget_bytes{state="limit"}"#).await, limit as f64);
    assert!(metric(&relay, r#"amrelay_batches_rejected_total{reason="memory"}"#).await >= refused as f64);

    downstream.always(Answer::status(200));
    let groups = delivered_in_order(&downstream, accepted.len(), &relay).await;
    let mut delivered: Vec<usize> = groups.values().flatten().copied().collect();
    delivered.sort_unstable();
    assert_eq!(delivered, accepted, "every accepted batch, once");
    for numbers in groups.values() {
        assert!(numbers.is_sorted(), "per-group order: {numbers:?}");
    }
    relay.wait_metric(used, 0.0).await;
    let reply = post_json(&relay.url("/webhook"), padded("after", 99, 8000)).await;
    assert_eq!(reply.status, 200, "the budget is free again: {}", reply.text());
}

/// Regression (issue 15): with a spool, every queued body was also held in memory and a restart
/// read them all back (757 MB RSS for a 300 MB spool). Now a spool holding several times its
/// memory window restores after kill -9 and delivers everything, in per-group order, while the
/// bodies held in memory never exceed the window.
#[tokio::test]
async fn a_spool_larger_than_its_memory_window_restores_and_drains_within_it() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    let window = 20_000;
    std::fs::write(&path, spool_config(dir.path(), &downstream.url("/"), &format!(", memory_window_bytes: {window}")))
        .unwrap();
    let window_used = r#"amrelay_spool_memory_window_bytes{state="used"}"#;
    let window_peak = r#"amrelay_spool_memory_window_bytes{state="peak"}"#;
    let count = 40;
    let mut relay = RelayProcess::spawn(&path, &[]);
    for n in 0..count {
        let reply = post_json(&relay.url("/webhook"), padded(&format!("G{}", n % 4), n, 4000)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let spooled = metric(&relay, "amrelay_spool_bytes").await;
    assert!(spooled > 6.0 * window as f64, "the spool holds {spooled} bytes, several windows");
    assert!(metric(&relay, window_peak).await <= window as f64);
    relay.signal("KILL");
    assert_eq!(relay.wait_exit().await, None, "killed by a signal");

    let relay = RelayProcess::spawn(&path, &[]);
    assert_eq!(metric(&relay, r#"amrelay_spool_memory_window_bytes{state="limit"}"#).await, window as f64);
    let restored = metric(&relay, window_peak).await;
    assert!(restored > 0.0 && restored <= window as f64, "restored {restored} bytes into a {window}-byte window");
    downstream.always(Answer::status(200));
    let groups = delivered_in_order(&downstream, count, &relay).await;
    for (group, numbers) in &groups {
        let expected: Vec<usize> = (0..count).filter(|n| format!("G{}", n % 4) == *group).collect();
        // Retried before the crash, so a notification may arrive twice (same idempotency key),
        // never out of order and never missing.
        let mut unique = numbers.clone();
        unique.dedup();
        assert_eq!(unique, expected, "group {group}");
    }
    relay.wait_metric("amrelay_spool_bytes", 0.0).await;
    relay.wait_metric(window_used, 0.0).await;
    assert!(metric(&relay, window_peak).await <= window as f64, "the window was never exceeded");
}
