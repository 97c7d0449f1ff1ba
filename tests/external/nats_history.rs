//! `history:` with `delivery.nats`: the `<stream>_HISTORY` stream shared by the replicas, against
//! a real `nats-server`, replicas as real processes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::nats_cluster::{CLUSTER_WAIT, NatsCluster, Replica, wait_delivered};
use crate::support::eventually::{ensure, eventually};
use crate::support::{Downstream, alert, batch, get};

/// Two receivers (by the `team` label) on one JetStream, and `history` as given.
fn config(dir: &Path, cluster: &NatsCluster, downstream: &Downstream, history: &str) -> PathBuf {
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let yaml = format!(
        "delivery:
  nats: {{urls: [{}], replicas: 1, partitions: 4}}
history: {history}
receivers:
  - name: team-a
    url: {}
    matchers: ['team=\"a\"']
  - name: team-b
    url: {}
    matchers: ['team=\"b\"']
",
        urls.join(", "),
        downstream.url("/a"),
        downstream.url("/b"),
    );
    let path = dir.join("amrelay.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Notification `n` for `team`: one distinct alert.
fn notification(team: &str, n: usize) -> String {
    batch(
        &format!("{{}}:{{team=\"{team}\",n=\"{n}\"}}"),
        vec![alert("firing", json!({"alertname": "Shared", "team": team, "n": n.to_string()}))],
    )
}

/// The records a replica lists for `query`, newest first.
async fn history(replica: &Replica, query: &str) -> Vec<Value> {
    let reply = get(&replica.url(&format!("/api/v1/history?{query}"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["data"].as_array().cloned().unwrap_or_default()
}

/// `(seq, id)` of each record.
fn keys(records: &[Value]) -> Vec<(u64, String)> {
    records.iter().map(|r| (r["seq"].as_u64().unwrap(), r["id"].as_str().unwrap().to_owned())).collect()
}

/// Waits until `replica` lists `count` records; returns them.
async fn wait_history(replica: &Replica, count: usize) -> Vec<Value> {
    eventually(&format!("{count} history records"), CLUSTER_WAIT, async || {
        let records = history(replica, "limit=1000").await;
        ensure(records.len() == count, || format!("{} records: {records:?}", records.len()))?;
        Ok::<_, String>(records)
    })
    .await
}

/// The history stream as the NATS server reports it.
async fn stream_info(cluster: &NatsCluster) -> async_nats::jetstream::stream::Info {
    let client = async_nats::connect(cluster.urls()[0].as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("AMRELAY_HISTORY").await.unwrap();
    stream.info().await.unwrap().clone()
}

/// The test: notifications accepted by either replica are in one history that both
/// answer the same way (each once, newest first, filters and paging alike), and a replica
/// restarted reads it back from the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_see_one_history() {
    let cluster = NatsCluster::start(1).await;
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), &cluster, &downstream, "{retention: 1h, max_bytes: 1048576}");
    let mut replicas = Replica::spawn_together(&file, 2);
    for n in 0..3 {
        assert_eq!(replicas[0].post(&notification("a", n)).await.status, 200);
        assert_eq!(replicas[1].post(&notification("b", n)).await.status, 200);
    }
    wait_delivered(&downstream, 6).await;

    let on_a = wait_history(&replicas[0], 6).await;
    let on_b = wait_history(&replicas[1], 6).await;
    assert_eq!(keys(&on_a), keys(&on_b), "both replicas list the same records, under the same seq");
    let ids: HashSet<String> = keys(&on_a).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 6, "every notification once: {on_a:?}");
    let seqs: Vec<u64> = keys(&on_a).into_iter().map(|(seq, _)| seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {seqs:?}");
    assert!(on_a.iter().all(|r| r["outcome"] == "delivered" && r["http_status"] == 200), "{on_a:?}");

    // The filters answer alike on both, whichever replica delivered.
    for replica in &replicas {
        let team_a = history(replica, "receiver=team-a").await;
        assert_eq!(team_a.len(), 3, "{team_a:?}");
        assert!(team_a.iter().all(|r| r["receiver"] == "team-a"));
        let fingerprint = on_b[2]["fingerprints"][0].as_str().unwrap();
        let one = history(replica, &format!("fingerprint={fingerprint}")).await;
        assert_eq!(keys(&one), keys(&on_b[2..3]), "one record has that fingerprint");
        // Paging: two pages, no duplicate and no gap.
        let first = get(&replica.url("/api/v1/history?limit=4")).await.json();
        let after = first["next_after"].as_u64().expect("a second page");
        let second = history(replica, &format!("limit=4&after={after}")).await;
        let mut paged = keys(first["data"].as_array().unwrap());
        paged.extend(keys(&second));
        assert_eq!(paged, keys(&on_a));
    }

    // The status shows the shared stream.
    eventually("the history stream in the status", CLUSTER_WAIT, async || {
        let status = get(&replicas[1].url("/api/v1/status")).await.json();
        let shared = &status["data"]["backend"]["history"];
        ensure(shared["stream"] == "AMRELAY_HISTORY" && shared["messages"] == 6, || shared.to_string())
    })
    .await;

    // Restarted, replica b reads every record back from the stream.
    replicas[1].kill();
    replicas[1] = Replica::spawn(&file);
    let again = wait_history(&replicas[1], 6).await;
    assert_eq!(keys(&again), keys(&on_a), "read back from the stream");
    // And what it delivers from now on is in both histories, once.
    assert_eq!(replicas[1].post(&notification("b", 3)).await.status, 200);
    let after_restart = wait_history(&replicas[0], 7).await;
    assert_eq!(keys(&wait_history(&replicas[1], 7).await), keys(&after_restart));
}

/// The stream's bounds are `history.retention` and `history.max_bytes`, as the server reports
/// them; a reload that changes them updates the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_stream_is_bounded_as_configured_and_a_reload_updates_it() {
    let cluster = NatsCluster::start(1).await;
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), &cluster, &downstream, "{retention: 2h, max_bytes: 2097152}");
    let replica = Replica::spawn(&file);
    let info = stream_info(&cluster).await;
    assert_eq!(info.config.max_age, Duration::from_secs(2 * 3600));
    assert_eq!(info.config.max_bytes, 2 * 1024 * 1024);
    assert_eq!(info.config.subjects, vec!["AMRELAY.history".to_owned()]);
    assert_eq!(info.config.retention, async_nats::jetstream::stream::RetentionPolicy::Limits);
    assert_eq!(info.config.discard, async_nats::jetstream::stream::DiscardPolicy::Old);

    // A reload with other bounds: the stream follows.
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replace("{retention: 2h, max_bytes: 2097152}", "{retention: 30m, max_bytes: 1048576}");
    std::fs::write(&file, text).unwrap();
    let reload = crate::support::send(
        http::Request::post(replica.url("/-/reload")).body(http_body_util::Full::new(bytes::Bytes::new())).unwrap(),
    )
    .await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    eventually("the stream's new bounds", CLUSTER_WAIT, async || {
        let info = stream_info(&cluster).await;
        ensure(info.config.max_age == Duration::from_secs(1800) && info.config.max_bytes == 1 << 20, || {
            format!("max_age {:?}, max_bytes {}", info.config.max_age, info.config.max_bytes)
        })
    })
    .await;
    let status = get(&replica.url("/api/v1/status")).await.json();
    let shared = &status["data"]["backend"]["history"];
    assert_eq!((shared["max_bytes"].as_u64(), shared["max_age_seconds"].as_u64()), (Some(1 << 20), Some(1800)));
}

/// Regression guard for the reading side: after NATS restarts, a replica's copy goes on from
/// the last sequence it kept, with no record twice and none missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_resumes_after_nats_restarts_without_duplicates() {
    let mut cluster = NatsCluster::start(1).await;
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), &cluster, &downstream, "{}");
    let replicas = Replica::spawn_together(&file, 2);
    for n in 0..2 {
        assert_eq!(replicas[0].post(&notification("a", n)).await.status, 200);
    }
    wait_history(&replicas[1], 2).await;

    cluster.kill(0);
    replicas[0].wait_ready(503).await;
    cluster.restart(0);
    replicas[0].wait_ready(200).await;
    for n in 2..4 {
        replicas[1].post_until_accepted(&notification("b", n)).await;
    }
    wait_delivered(&downstream, 4).await;
    let on_a = wait_history(&replicas[0], 4).await;
    let on_b = wait_history(&replicas[1], 4).await;
    assert_eq!(keys(&on_a), keys(&on_b));
    let ids: HashSet<String> = keys(&on_a).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 4, "each once: {on_a:?}");
    // Nothing more comes (a consumer made again from the start would add copies).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(history(&replicas[0], "limit=1000").await.len(), 4);
}
