//! Bounded memory (issue 15): one byte budget for what is held on callers' behalf, and a spool
//! whose bodies stay on disk beyond a bounded window. Each relay here is its own process, so its
//! gauges are its own.

use std::collections::HashMap;

use serde_json::json;

use crate::process::RelayProcess;
use crate::support::eventually::{ensure, eventually};
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
    eventually(&format!("{count} deliveries"), WAIT * 3, async || {
        let n = downstream.delivered().len();
        ensure(n >= count, || format!("only {n} of {count} delivered\n{}", relay.logs()))
    })
    .await;
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

/// Every dead letter across pages of `/api/v1/deadletters`, and the last answer's totals.
async fn all_dead_letters(url: &str, limit: usize) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut after = 0;
    let mut all = Vec::new();
    loop {
        let page = get(&format!("{url}/api/v1/deadletters?limit={limit}&after={after}")).await.json();
        let data = page["data"].as_array().unwrap().clone();
        assert!(data.len() <= limit, "{page}");
        all.extend(data);
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => return (all, page),
        }
    }
}

/// Regression (issue 15): dead-letter bodies were counted against no limit (a 570 MB spool
/// reported bytes=0), and listing them copied and re-parsed every body in the spool's writer
/// thread. Now the listing is paged headers with each body's size and the totals, a body is
/// fetched alone, and `max_dead_letter_bytes` drops the oldest; with a spool file or without.
#[tokio::test]
async fn dead_letters_are_listed_in_pages_without_bodies_and_bounded_in_bytes() {
    for spooled in [true, false] {
        let downstream = Downstream::start().await;
        downstream.always(Answer::status(400));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("amrelay.yml");
        let max_bytes = 30_000;
        let mut yaml = spool_config(dir.path(), &downstream.url("/"), "")
            .replace("delivery:\n", &format!("delivery:\n  max_dead_letter_bytes: {max_bytes}\n"));
        if !spooled {
            yaml = yaml.lines().filter(|l| !l.contains("spool:")).collect::<Vec<_>>().join("\n") + "\n";
        }
        std::fs::write(&path, yaml).unwrap();
        let mut relay = RelayProcess::spawn(&path, &[]);
        for n in 10..22 {
            let reply = post_json(&relay.url("/webhook"), padded(&format!("G{n}"), n, 4000)).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        let (letters, totals) = eventually("the last dead letter in the listing", WAIT, async || {
            let (letters, totals) = all_dead_letters(&relay.url(""), 2).await;
            // The listing reads committed dead letters beside the spool's writer, whose totals
            // move when it takes an operation: wait until the last one is in and both agree.
            let last_in = letters.iter().any(|l| l["groupKey"].as_str().unwrap().contains("G21"));
            if last_in && totals["total"] == letters.len() as u64 {
                Ok((letters, totals))
            } else {
                Err(format!("{} listed (G21 in: {last_in}), totals {totals}\n{}", letters.len(), relay.logs()))
            }
        })
        .await;
        let sizes: Vec<u64> = letters.iter().map(|l| l["bytes"].as_u64().unwrap()).collect();
        let kept = letters.len();
        assert!((2..12).contains(&kept), "{kept} kept of 12 (spooled: {spooled})");
        assert_eq!(totals["total"], kept as u64);
        assert_eq!(totals["bytes"], sizes.iter().sum::<u64>());
        assert!(sizes.iter().sum::<u64>() <= max_bytes, "{sizes:?}");
        assert!(letters.iter().all(|l| l.get("body").is_none()), "no bodies in the listing");
        let seqs: Vec<u64> = letters.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
        assert!(seqs.is_sorted(), "oldest first across pages: {seqs:?}");
        // The newest were kept.
        assert!(letters.last().unwrap()["groupKey"].as_str().unwrap().contains("G21"));
        assert_eq!(metric(&relay, "amrelay_dead_letters").await, kept as f64);
        assert_eq!(metric(&relay, "amrelay_dead_letter_bytes").await, sizes.iter().sum::<u64>() as f64);

        let first = &letters[0];
        let used = r#"amrelay_memory_budget_bytes{state="used"}"#;
        let before = metric(&relay, used).await;
        let body = get(&relay.url(&format!("/api/v1/deadletters/body?seq={}", first["seq"]))).await;
        assert_eq!(body.status, 200);
        // Charged while served, given back once written out (hyper drops it just after the write).
        eventually("the served body's charge to be given back", WAIT, async || {
            let now = metric(&relay, used).await;
            ensure(now == before, || format!("{used} is {now}, was {before}"))
        })
        .await;
        assert_eq!(body.body.len() as u64, first["bytes"].as_u64().unwrap());
        let payload = body.json();
        assert_eq!(payload["groupKey"], first["groupKey"]);
        assert_eq!(get(&relay.url("/api/v1/deadletters/body?seq=999999")).await.status, 404);
        let other = get(&relay.url("/api/v1/deadletters?receiver=nobody")).await.json();
        assert_eq!(other["data"].as_array().unwrap().len(), 0);

        if spooled {
            // The totals are counted again from the file at start.
            relay.signal("KILL");
            relay.wait_exit().await;
            let relay = RelayProcess::spawn(&path, &[]);
            let (again, totals) = all_dead_letters(&relay.url(""), 1000).await;
            assert_eq!(again.len(), kept);
            assert_eq!(totals["bytes"], sizes.iter().sum::<u64>());
            assert_eq!(metric(&relay, "amrelay_dead_letter_bytes").await, sizes.iter().sum::<u64>() as f64);
        }
    }
}

/// The byte limits follow a reload (they are applied when a config becomes current, not on
/// each request), before any webhook arrives.
#[tokio::test]
async fn the_byte_limits_follow_a_reload() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    let yaml = |limit: u64| {
        format!(
            "server:\n  max_request_bytes: 65536\n  limits: {{max_memory_bytes: {limit}}}\nreceivers:\n  - name: r\n    url: {}\n",
            downstream.url("/")
        )
    };
    std::fs::write(&path, yaml(1_000_000)).unwrap();
    let relay = RelayProcess::spawn(&path, &[]);
    relay.wait_metric(r#"amrelay_memory_budget_bytes{state="limit"}"#, 1_000_000.0).await;
    std::fs::write(&path, yaml(2_000_000)).unwrap();
    relay.signal("HUP");
    relay.wait_metric(r#"amrelay_memory_budget_bytes{state="limit"}"#, 2_000_000.0).await;
}
