//! `delivery.nats`: amrelay replicas sharing one JetStream queue, against a real three-node
//! JetStream cluster (Debian's `nats-server`) on loopback, replicas as real processes.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::nats_cluster::{NatsCluster, Replica, wait_delivered};
use crate::support::eventually::{ensure, eventually};
use crate::support::{Answer, Downstream, alert, batch, get};

/// A config for the replicas: R3 stream, a short `ack_wait` so that take-overs fit a test.
fn config(dir: &std::path::Path, cluster: &NatsCluster, downstream: &Downstream, replicas: usize) -> PathBuf {
    config_with(dir, cluster, downstream, replicas, "2s")
}

fn config_with(
    dir: &std::path::Path,
    cluster: &NatsCluster,
    downstream: &Downstream,
    replicas: usize,
    ack_wait: &str,
) -> PathBuf {
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let yaml = format!(
        "delivery:
  retry: {{initial_backoff: 100ms, max_backoff: 300ms, max_attempts: 1000, max_elapsed: 10m}}
  nats:
    urls: [{}]
    replicas: {replicas}
    partitions: 8
    ack_wait: {ack_wait}
receivers:
  - name: sink
    url: {}
",
        urls.join(", "),
        downstream.url("/sink"),
    );
    let path = dir.join("amrelay.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Notification `n` of group `group`: a distinct alert, so it is not a duplicate.
fn numbered(group: &str, n: usize) -> String {
    batch(
        &format!("{{}}:{{group=\"{group}\"}}"),
        vec![alert("firing", json!({"alertname": "Numbered", "group": group, "n": n.to_string()}))],
    )
}

/// The `(group, n)` of each delivery, in arrival order.
fn delivered_numbers(downstream: &Downstream) -> Vec<(String, usize)> {
    downstream.delivered().iter().map(|r| (r.labels("group")[0].clone(), r.labels("n")[0].parse().unwrap())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_deliver_each_notification_once_even_when_two_peers_post_it() {
    let cluster = NatsCluster::start(3).await;
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), &cluster, &downstream, 3);
    let replicas: Vec<Replica> = (0..3).map(|_| Replica::spawn(&file)).collect();

    // Traffic spread over the replicas: 5 groups × 6 notifications, round robin.
    let mut expected = HashSet::new();
    for n in 0..6 {
        for (g, group) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            let replica = &replicas[(n * 5 + g) % 3];
            let reply = replica.post(&numbered(group, n)).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            expected.insert((group.to_owned(), n));
        }
    }
    wait_delivered(&downstream, 30).await;
    // The same notification posted to two replicas, as two Alertmanager peers do.
    let twice = numbered("peers", 0);
    assert_eq!(replicas[0].post(&twice).await.status, 200);
    let second = replicas[1].post(&twice).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["duplicates"], json!(["sink"]), "{}", second.text());
    expected.insert(("peers".to_owned(), 0));
    wait_delivered(&downstream, 31).await;
    downstream.assert_stays_at(31, Duration::from_secs(3)).await;

    let delivered = delivered_numbers(&downstream);
    let unique: HashSet<_> = delivered.iter().cloned().collect();
    assert_eq!(unique.len(), delivered.len(), "a notification was delivered twice: {delivered:?}");
    assert_eq!(unique, expected);
    // Within a group, acceptance order.
    for group in ["a", "b", "c", "d", "e"] {
        let order: Vec<usize> = delivered.iter().filter(|(g, _)| g == group).map(|(_, n)| *n).collect();
        assert_eq!(order, (0..6).collect::<Vec<_>>(), "group {group}");
    }
    // Each replica's status shows the shared backend, healthy.
    let status = get(&replicas[2].url("/api/v1/status")).await.json();
    let backend = &status["data"]["backend"];
    assert_eq!(backend["kind"], "nats");
    assert_eq!(backend["healthy"], true);
    assert_eq!(backend["replicas"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_delivery_leaves_everything_it_accepted_to_the_others_in_order() {
    let cluster = NatsCluster::start(3).await;
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), &cluster, &downstream, 3);

    // Only the first replica runs while the batches are accepted and the deliveries fail.
    let mut first = Replica::spawn(&file);
    for n in 0..4 {
        for group in ["x", "y", "z"] {
            let reply = first.post(&numbered(group, n)).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
    }
    // It is retrying the head of each group's partition.
    eventually("the first replica's attempts", Duration::from_secs(20), async || {
        let tried = downstream.received().len();
        ensure(tried >= 6, || format!("{tried} attempts"))
    })
    .await;
    first.kill();
    let others: Vec<Replica> = (0..2).map(|_| Replica::spawn(&file)).collect();
    // The others take over after ack_wait; they fail too for a while, then the downstream recovers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    downstream.always(Answer::status(200));
    wait_delivered(&downstream, 12).await;
    downstream.assert_stays_at(downstream.received().len(), Duration::from_secs(3)).await;

    let delivered = delivered_numbers(&downstream);
    assert_eq!(delivered.len(), 12, "each notification once: {delivered:?}");
    for group in ["x", "y", "z"] {
        let order: Vec<usize> = delivered.iter().filter(|(g, _)| g == group).map(|(_, n)| *n).collect();
        assert_eq!(order, vec![0, 1, 2, 3], "group {group} in acceptance order");
    }
    let redelivered: usize = others.iter().map(|r| r.log_text().matches("taking over a notification").count()).sum();
    assert!(redelivered >= 1, "the survivors took over the killed replica's notifications");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_survives_a_nats_node_and_refuses_then_recovers_when_all_are_down() {
    let mut cluster = NatsCluster::start(3).await;
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), &cluster, &downstream, 3);
    let replica = Replica::spawn(&file);
    replica.wait_ready(200).await;

    // One node killed: acceptance goes on (a batch may be refused while a leader is elected;
    // Alertmanager retries it, and so does the test).
    cluster.kill(0);
    for n in 0..10 {
        replica.post_until_accepted(&numbered("one-down", n)).await;
    }
    wait_delivered(&downstream, 10).await;
    // Delivery is at least once: a notification delivered but not yet acknowledged when every
    // node goes down is delivered again after. Wait for the acknowledgements (the stream empty).
    replica.wait_metric("amrelay_nats_pending_notifications", 0.0).await;

    // All nodes down: 503 with Retry-After, not ready.
    cluster.kill(1);
    cluster.kill(2);
    replica.wait_ready(503).await;
    let refused = replica.post(&numbered("all-down", 0)).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.headers.contains_key("retry-after"));

    // Back by itself when NATS returns: ready, accepting, delivering.
    for i in 0..3 {
        cluster.restart(i);
    }
    // Not nats-server's /healthz: it waits for every consumer to catch up; amrelay's readiness
    // is what Kubernetes (and this test) go by.
    replica.wait_ready(200).await;
    replica.post_until_accepted(&numbered("all-down", 0)).await;
    replica.post_until_accepted(&numbered("all-down", 1)).await;
    wait_delivered(&downstream, 12).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(downstream.received().len(), 12, "each once: {:?}", delivered_numbers(&downstream));
    let mut by_group: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (group, n) in delivered_numbers(&downstream) {
        by_group.entry(group).or_default().push(n);
    }
    assert_eq!(by_group["one-down"], (0..10).collect::<Vec<_>>());
    assert_eq!(by_group["all-down"], vec![0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_kept_in_jetstream_listed_and_replayed_by_any_replica() {
    let cluster = NatsCluster::start(1).await;
    let downstream = Downstream::start().await;
    downstream.script([Answer::status(400)]);
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), &cluster, &downstream, 1);
    let a = Replica::spawn(&file);
    let b = Replica::spawn(&file);
    assert_eq!(a.post(&numbered("dead", 0)).await.status, 200);
    // Refused with 400: a dead letter, visible from the other replica.
    let listed = eventually("a dead letter listed by the other replica", Duration::from_secs(20), async || {
        let listed = get(&b.url("/api/v1/deadletters")).await.json();
        let some = listed["data"].as_array().is_some_and(|d| !d.is_empty());
        if some { Ok(listed) } else { Err(listed.to_string()) }
    })
    .await;
    assert_eq!(listed["data"][0]["receiver"], "sink");
    assert_eq!(listed["data"][0]["reason"], "non_retryable");
    let key = downstream.received()[0].header("idempotency-key").unwrap().to_owned();

    let replay = crate::support::send(
        http::Request::post(b.url("/api/v1/deadletters/replay"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(replay.status, 200, "{}", replay.text());
    let delivered = wait_delivered(&downstream, 1).await;
    assert_eq!(delivered[0].header("idempotency-key"), Some(key.as_str()), "the replay keeps its Idempotency-Key");
    let listed = get(&a.url("/api/v1/deadletters")).await.json();
    assert_eq!(listed["data"], json!([]), "replayed dead letters leave the stream");
}

/// The `(n, body)` of notification `n` of group `group` carrying an annotation of `pad` bytes.
fn padded(group: &str, n: usize, pad: usize) -> String {
    let mut a = alert("firing", json!({"alertname": "Numbered", "group": group, "n": n.to_string()}));
    a["annotations"]["padding"] = json!("x".repeat(pad));
    batch(&format!("{{}}:{{group=\"{group}\"}}"), vec![a])
}

/// Every dead letter listed by `replica`, following `next_after` with pages of `limit`: the
/// pages, each a list of sequences.
async fn dead_letter_pages(replica: &Replica, limit: usize) -> Vec<Vec<u64>> {
    let mut pages = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let query = match after {
            Some(after) => format!("/api/v1/deadletters?limit={limit}&after={after}"),
            None => format!("/api/v1/deadletters?limit={limit}"),
        };
        let listed = get(&replica.url(&query)).await.json();
        let seqs: Vec<u64> = listed["data"].as_array().unwrap().iter().map(|d| d["seq"].as_u64().unwrap()).collect();
        assert!(seqs.len() <= limit, "a page holds at most limit={limit}: {listed}");
        pages.push(seqs);
        match listed["next_after"].as_u64() {
            Some(next) => {
                assert_eq!(Some(next), pages.last().unwrap().last().copied(), "next_after is the page's last seq");
                after = Some(next);
            }
            None => break,
        }
        assert!(pages.len() <= 10, "the pages never end: {pages:?}");
    }
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_dead_letters_are_paged_by_sequence_fetched_by_seq_and_replayed_in_batches() {
    let cluster = NatsCluster::start(1).await;
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(400));
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), &cluster, &downstream, 1);
    let a = Replica::spawn(&file);
    let b = Replica::spawn(&file);
    // Five dead letters of about 0.9 MB each (under nats-server's default 1 MiB max_payload), so
    // that a replay, in batches of at most 4 MiB of bodies, takes two batches.
    for n in 0..5 {
        let reply = a.post(&padded("paged", n, 450 * 1024)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let listed = eventually("five dead letters listed", Duration::from_secs(30), async || {
        let listed = get(&b.url("/api/v1/deadletters")).await.json();
        let five = listed["data"].as_array().unwrap().len() == 5;
        if five { Ok(listed) } else { Err(listed.to_string()) }
    })
    .await;
    let all: Vec<u64> = listed["data"].as_array().unwrap().iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    assert_eq!(listed["next_after"], serde_json::Value::Null, "one page holds all five");
    assert_eq!(listed["total"], 5, "the dead-letter stream's count: {listed}");
    assert!(listed["bytes"].as_u64().unwrap() > 5 * 900_000, "the stream's bytes: {listed}");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "oldest first, by stream sequence: {all:?}");

    // Pages of two, from either replica: 2 + 2 + 1, chained by next_after, no duplicate, no gap.
    for replica in [&a, &b] {
        let pages = dead_letter_pages(replica, 2).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1], "{pages:?}");
        assert_eq!(pages.concat(), all, "the pages chain to exactly the full listing");
    }
    // A page after the last sequence is empty and ends the listing.
    let past = get(&a.url(&format!("/api/v1/deadletters?limit=2&after={}", all[4]))).await.json();
    assert_eq!(past["data"], json!([]));
    assert_eq!(past["next_after"], serde_json::Value::Null);
    // A receiver filter pages the same way.
    let filtered = get(&a.url("/api/v1/deadletters?limit=3&receiver=sink")).await.json();
    assert_eq!(filtered["data"].as_array().unwrap().len(), 3);
    assert_eq!(filtered["next_after"].as_u64(), Some(all[2]));
    let none = get(&a.url("/api/v1/deadletters?receiver=elsewhere")).await.json();
    assert_eq!(none["data"], json!([]));

    // One body, fetched by its sequence: exactly what the downstream was sent for it.
    let mut seen = HashSet::new();
    for (seq, listed_bytes) in all.iter().zip(
        get(&b.url("/api/v1/deadletters")).await.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["bytes"].as_u64().unwrap()),
    ) {
        let body = get(&b.url(&format!("/api/v1/deadletters/body?seq={seq}"))).await;
        assert_eq!(body.status, 200, "{}", body.text());
        assert_eq!(body.body.len() as u64, listed_bytes, "the listing's size is the body's");
        let n = body.json()["alerts"][0]["labels"]["n"].as_str().unwrap().to_owned();
        let sent = downstream.received().into_iter().find(|r| r.labels("n") == vec![n.clone()]).unwrap();
        assert_eq!(body.body, sent.raw_body, "dead letter {seq} (n={n}) is the body as it was sent");
        assert!(seen.insert(n), "two sequences, one notification");
    }
    assert_eq!(seen.len(), 5);
    let missing = get(&a.url(&format!("/api/v1/deadletters/body?seq={}", all[4] + 1000))).await;
    assert_eq!(missing.status, 404, "{}", missing.text());

    // Replay: every dead letter once, across batches, from either replica; the stream is empty.
    downstream.always(Answer::status(200));
    let before = downstream.received().len();
    let replay = crate::support::send(
        http::Request::post(a.url("/api/v1/deadletters/replay"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(replay.status, 200, "{}", replay.text());
    assert_eq!(replay.json()["data"]["replayed"], 5, "{}", replay.text());
    let delivered = wait_delivered(&downstream, 5).await;
    let mut numbers: Vec<usize> = delivered.iter().map(|r| r.labels("n")[0].parse().unwrap()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, vec![0, 1, 2, 3, 4], "each dead letter replayed exactly once");
    downstream.assert_stays_at(before + 5, Duration::from_secs(1)).await;
    assert_eq!(dead_letter_pages(&b, 2).await, vec![Vec::<u64>::new()], "replayed dead letters leave the stream");
    let log = a.log_text();
    let batches: Vec<&str> = log.lines().filter(|l| l.contains("dead letters taken for replay")).collect();
    assert_eq!(batches.len(), 2, "4.6 MB of dead letters are taken in two batches of at most 4 MiB: {batches:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_shut_down_hands_its_notifications_back_at_once() {
    let cluster = NatsCluster::start(1).await;
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    // The default ack_wait: a take-over within it shows the notification was handed back.
    let file = config_with(dir.path(), &cluster, &downstream, 1, "30s");
    let mut first = Replica::spawn(&file);
    assert_eq!(first.post(&numbered("handed-back", 0)).await.status, 200);
    downstream.wait_for(1).await;
    let other = Replica::spawn(&file);
    first.terminate();
    downstream.always(Answer::status(200));
    let started = std::time::Instant::now();
    wait_delivered(&downstream, 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "taken over after {:?}, not at once:\n{}",
        started.elapsed(),
        other.log_text()
    );
    // The log reader thread has the last lines shortly after the exit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(first.log_text().contains("handed back to JetStream"), "{}", first.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_added_by_a_reload_on_one_replica_first_is_delivered_once() {
    let cluster = NatsCluster::start(1).await;
    let downstream = Downstream::start().await;
    let late = Downstream::start().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file_a = config(dir_a.path(), &cluster, &downstream, 1);
    let file_b = config(dir_b.path(), &cluster, &downstream, 1);
    let a = Replica::spawn(&file_a);
    let b = Replica::spawn(&file_b);
    let with_late = |file: &PathBuf| {
        let text = std::fs::read_to_string(file).unwrap();
        std::fs::write(file, format!("{text}  - name: late\n    url: {}\n", late.url("/late"))).unwrap();
    };
    let reload = |replica: &Replica| {
        let url = replica.url("/-/reload");
        async move {
            let reply = crate::support::send(
                http::Request::post(url).body(http_body_util::Full::new(bytes::Bytes::new())).unwrap(),
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
    };
    // Only replica a knows `late` yet: b hands what it pulls for it back.
    with_late(&file_a);
    reload(&a).await;
    let reply = a.post(&numbered("late", 0)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    wait_delivered(&late, 1).await;
    // Then b has it too.
    with_late(&file_b);
    reload(&b).await;
    assert_eq!(b.post(&numbered("late", 1)).await.status, 200);
    wait_delivered(&late, 2).await;
    late.assert_stays_at(2, Duration::from_secs(2)).await;
    assert_eq!(get(&a.url("/api/v1/deadletters")).await.json()["data"], json!([]));
    let order: Vec<String> = late.delivered().iter().map(|r| r.labels("n")[0].clone()).collect();
    assert_eq!(order, ["0", "1"]);
}

/// A notification larger than the NATS server's `max_payload` (1 MiB by default, below the
/// default `server.max_request_bytes` of 8 MiB) cannot be stored by any retry: it is refused
/// with 413 saying what to raise, counted as `too_large`, nothing of its batch is published, and
/// the start-up log warned about the gap. Smaller notifications keep flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_over_the_servers_max_payload_is_refused_as_too_large_not_unavailable() {
    let cluster = NatsCluster::start(1).await;
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::spawn(&config(dir.path(), &cluster, &downstream, 1));
    replica.wait_ready(200).await;
    let log = replica.log_text();
    assert!(log.contains("max_payload is below server.max_request_bytes"), "no start-up warning:\n{log}");

    let refused = replica.post(&padded("big", 0, 1_200_000)).await;
    assert_eq!(refused.status, 413, "{}", refused.text());
    assert!(refused.headers.get("retry-after").is_none(), "413 is final: no Retry-After");
    let error = refused.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("max_payload (1048576 bytes)") && error.contains("raise max_payload"), "{error}");
    replica.wait_metric(r#"amrelay_batches_rejected_total{reason="too_large"}"#, 1.0).await;
    replica.wait_metric("amrelay_nats_pending_notifications", 0.0).await;

    assert_eq!(replica.post(&padded("small", 0, 100_000)).await.status, 200);
    let delivered = wait_delivered(&downstream, 1).await;
    assert_eq!(delivered[0].labels("group"), ["small"]);
}

/// A config with the defaults but for `replicas: 3` (64 partitions, `ack_wait: 30s`).
fn default_config(dir: &std::path::Path, cluster: &NatsCluster, downstream: &Downstream) -> PathBuf {
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let yaml = format!(
        "delivery:\n  nats:\n    urls: [{}]\n    replicas: 3\nreceivers:\n  - name: sink\n    url: {}\n",
        urls.join(", "),
        downstream.url("/sink"),
    );
    let path = dir.join("amrelay.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Prints how each replica's start went (for the figures in the README), waits included.
fn print_start_up(replicas: &[Replica]) {
    for replica in replicas {
        for line in replica.log_text().lines().filter(|l| l.contains("JetStream")) {
            eprintln!("{line}");
        }
    }
}

/// Regression (issue 27): three replicas started at one instant on a fresh R3 cluster, as a
/// rollout starts them, all become ready (two used to exit with "jetstream request timed out"
/// while the servers made the first one's consumers), within 30 s, and within 5 s when the
/// streams exist; then each notification is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_started_together_on_a_fresh_cluster_all_become_ready() {
    let cluster = NatsCluster::start(3).await;
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = default_config(dir.path(), &cluster, &downstream);

    let started = std::time::Instant::now();
    let replicas = Replica::spawn_together(&file, 3);
    let fresh = started.elapsed();
    for replica in &replicas {
        replica.wait_ready(200).await;
    }
    eprintln!("three replicas started together on a fresh R3 cluster: all ready in {fresh:?}");
    assert!(fresh < Duration::from_secs(30), "ready in {fresh:?}");
    for n in 0..9 {
        let reply = replicas[n % 3].post(&numbered("together", n)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    wait_delivered(&downstream, 9).await;

    print_start_up(&replicas);
    // Again, the streams and consumers there: each replica finds them as it wants them. Stopped
    // as a rollout stops them, once every delivery is acknowledged (a replica killed between a
    // delivery and its acknowledgement would have it delivered again: at least once).
    replicas[0].wait_metric("amrelay_nats_pending_notifications", 0.0).await;
    for mut replica in replicas {
        replica.terminate();
    }
    let started = std::time::Instant::now();
    let replicas = Replica::spawn_together(&file, 3);
    let again = started.elapsed();
    eprintln!("three replicas started together, the streams there: all ready in {again:?}");
    print_start_up(&replicas);
    assert!(again < Duration::from_secs(5), "ready in {again:?}");
    for replica in &replicas {
        let log = replica.log_text();
        assert!(log.contains("created_or_updated=0"), "{log}");
    }
    for n in 9..12 {
        replicas[n % 3].post_until_accepted(&numbered("together", n)).await;
    }
    wait_delivered(&downstream, 12).await;
    downstream.assert_stays_at(12, Duration::from_secs(2)).await;
    let delivered = delivered_numbers(&downstream);
    let unique: HashSet<_> = delivered.iter().cloned().collect();
    assert_eq!(unique.len(), 12, "each once: {delivered:?}");
}

/// A stream of the configured name with settings that cannot be updated (another retention) is
/// still fatal at start, with JetStream's words and what to do, not waited on forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_stream_stops_the_start_with_what_to_do() {
    let cluster = NatsCluster::start(1).await;
    let client = async_nats::connect(cluster.urls()[0].as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "AMRELAY".into(),
        subjects: vec!["AMRELAY.p.*".into()],
        retention: async_nats::jetstream::stream::RetentionPolicy::Limits,
        ..Default::default()
    })
    .await
    .unwrap();
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), &cluster, &downstream, 1);
    let log = dir.path().join("amrelay.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"))
        .arg(format!("--config.file={}", file.display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let status = crate::programs::exit_within(&mut child, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("a conflict did not end the start:\n{}", std::fs::read_to_string(&log).unwrap()));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{stderr}");
    // logfmt escapes the quotes around the stream's name.
    assert!(stderr.contains(r#"cannot create or update the JetStream stream \"AMRELAY\""#), "{stderr}");
    assert!(stderr.contains("can not change retention"), "{stderr}");
    assert!(stderr.contains("choose another delivery.nats.stream"), "{stderr}");
}

/// Regression (issue 27): while the cluster is still forming (one node of three up, no leader),
/// a replica does not exit: it listens, answers `/-/healthy` 200 and `/-/ready` 503, says what
/// it waits for, and becomes ready by itself once the other nodes are up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_waits_alive_and_not_ready_for_a_cluster_still_forming() {
    let mut cluster = NatsCluster::start_partly(3, 1);
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = default_config(dir.path(), &cluster, &downstream);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"));
    command.arg(format!("--config.file={}", file.display())).arg("--web.listen-address=127.0.0.1:0");
    let starting = crate::support::binary::spawn_amrelay(command);
    let log = starting.log.clone();
    let (address, waited) =
        eventually("the wait for JetStream logged", crate::nats_cluster::CLUSTER_WAIT, async || {
            let lines = log.lock().unwrap().clone();
            let address = lines
                .iter()
                .find(|l| l.contains("listening, not ready"))
                .and_then(|l| crate::support::binary::log_field(l, "address"));
            let waiting = lines.iter().any(|l| l.contains("JetStream is not ready for this replica yet"));
            match (address, waiting) {
                (Some(address), true) => Ok((address, lines)),
                _ => Err(format!("{lines:#?}")),
            }
        })
        .await;
    assert_eq!(get(&format!("http://{address}/-/healthy")).await.status, 200, "{waited:#?}");
    assert_eq!(get(&format!("http://{address}/-/ready")).await.status, 503, "{waited:#?}");

    cluster.restart(1);
    cluster.restart(2);
    let (child, addr, log) = starting.wait(crate::nats_cluster::CLUSTER_WAIT);
    let replica = Replica::from_parts(child, addr, log);
    replica.wait_ready(200).await;
    replica.post_until_accepted(&numbered("formed", 0)).await;
    wait_delivered(&downstream, 1).await;
}
