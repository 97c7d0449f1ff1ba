//! Scaling out: two amrelay replicas, each with its own spool, share an Alertmanager HA pair's
//! traffic; one is killed mid-way and restarted — every accepted alert is still delivered.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::process::RelayProcess;
use crate::support::eventually::{ensure, eventually};
use crate::support::{Answer, Downstream, WAIT, alert, batch, post_json};

#[tokio::test]
async fn a_replica_killed_mid_way_delivers_its_spool_after_restart() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let config = |replica: &str| {
        let path = dir.path().join(format!("{replica}.yml"));
        let yaml = format!(
            "delivery:\n  retry: {{max_attempts: 1000, initial_backoff: 20ms, max_backoff: 100ms}}\n  spool: {{path: {}/{replica}.redb}}\nreceivers:\n  - name: scale\n    url: {}\n",
            dir.path().display(),
            downstream.url("/")
        );
        std::fs::write(&path, yaml).unwrap();
        path
    };
    let (config_a, config_b) = (config("replica-a"), config("replica-b"));
    let replica_a = RelayProcess::spawn(&config_a, &[]);
    let mut replica_b = RelayProcess::spawn(&config_b, &[]);

    // Two Alertmanager peers behind a Service: notifications land on either replica.
    let mut accepted = BTreeSet::new();
    let post = |relay: &RelayProcess, n: usize| {
        let url = relay.url("/webhook");
        let body = batch(
            &format!("{{}}:{{alertname=\"S{}\"}}", n % 4),
            vec![alert("firing", json!({"alertname": format!("S{}", n % 4), "n": n.to_string()}))],
        );
        async move { post_json(&url, body).await.status }
    };
    for n in 0..20 {
        let relay = if n % 2 == 0 { &replica_a } else { &replica_b };
        assert_eq!(post(relay, n).await, 200);
        accepted.insert(n.to_string());
    }

    // Replica B dies with notifications in its spool; the Service sends everything to A meanwhile.
    replica_b.signal("KILL");
    replica_b.wait_exit().await;
    for n in 20..30 {
        assert_eq!(post(&replica_a, n).await, 200);
        accepted.insert(n.to_string());
    }
    downstream.always(Answer::status(200));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replica_b = RelayProcess::spawn(&config_b, &[]);
    for n in 30..40 {
        let relay = if n % 2 == 0 { &replica_a } else { &replica_b };
        assert_eq!(post(relay, n).await, 200);
        accepted.insert(n.to_string());
    }

    eventually("every accepted notification delivered", WAIT, async || {
        let delivered: BTreeSet<String> = downstream.delivered().iter().map(|r| r.labels("n")[0].clone()).collect();
        let missing: Vec<_> = accepted.difference(&delivered).collect();
        ensure(delivered == accepted, || format!("not delivered: {missing:?}\n{}", replica_b.logs()))
    })
    .await;
    assert!(replica_b.logs().contains("restored pending notifications"), "{}", replica_b.logs());
}
