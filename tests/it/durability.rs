//! Nothing accepted is lost: crashes, outages, full spool, corrupt spool, SIGTERM, dead letters
//! and their replay, HA duplicates. A full disk needs root and is in tests/external/disk_full.rs.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::process::RelayProcess;
use crate::support::eventually::{ensure, eventually};
use crate::support::{Answer, Downstream, TestRelay, WAIT, alert, batch, get, numbered, post_json, spool_config};

/// kill -9 while retrying; after a restart every accepted notification arrives, in per-group
/// order, with the idempotency key it had before the crash.
#[tokio::test]
async fn crash_mid_retry_loses_nothing() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    std::fs::write(&path, spool_config(dir.path(), &downstream.url("/"), "")).unwrap();

    let mut relay = RelayProcess::spawn(&path, &[]);
    let groups = ["A", "B", "C"];
    for n in 1..=3 {
        for group in groups {
            let reply = post_json(&relay.url("/webhook"), numbered(group, n)).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
    }
    downstream.wait_for(6).await; // retries under way
    relay.signal("KILL");
    assert_eq!(relay.wait_exit().await, None, "killed by a signal");
    let before: HashMap<(String, String), String> = downstream
        .received()
        .iter()
        .map(|r| {
            (
                (r.labels("alertname")[0].clone(), r.labels("n")[0].clone()),
                r.header("idempotency-key").unwrap().to_owned(),
            )
        })
        .collect();

    downstream.always(Answer::status(200));
    let relay = RelayProcess::spawn(&path, &[]);
    eventually("9 deliveries after the restart", WAIT, async || {
        let n = downstream.delivered().len();
        ensure(n >= 9, || format!("only {n} delivered\n{}", relay.logs()))
    })
    .await;
    let delivered = downstream.delivered();
    for group in groups {
        let order: Vec<String> =
            delivered.iter().filter(|r| r.labels("alertname")[0] == group).map(|r| r.labels("n")[0].clone()).collect();
        assert_eq!(order, ["1", "2", "3"], "group {group}");
    }
    for r in &delivered {
        let key = (r.labels("alertname")[0].clone(), r.labels("n")[0].clone());
        if let Some(old) = before.get(&key) {
            assert_eq!(r.header("idempotency-key").unwrap(), old, "{key:?} kept its idempotency key");
        }
    }
    assert!(relay.logs().contains("restored pending notifications"), "{}", relay.logs());
}

/// A downstream down for many retry intervals gets everything once it is back; nothing is
/// dead-lettered before max_elapsed.
#[tokio::test]
async fn outage_then_recovery_delivers_everything() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let yaml = spool_config(dir.path(), &downstream.url("/"), "").replace("name: durable", "name: outage");
    let relay = TestRelay::start(&yaml).await;
    for n in 0..20 {
        assert_eq!(relay.post("/webhook", numbered(&format!("G{}", n % 5), n)).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // 15+ retry intervals
    // Retries continue, but adaptive concurrency sends a refusing downstream one request at a
    // time, so not every group retries at once.
    assert!(downstream.received().len() >= 10, "retries continued during the outage");
    downstream.always(Answer::status(200));
    eventually("all 20 delivered once the downstream is back", WAIT, async || {
        let n = downstream.delivered().len();
        ensure(n >= 20, || format!("only {n} delivered"))
    })
    .await;
    let mut ns: Vec<usize> = downstream.delivered().iter().map(|r| r.labels("n")[0].parse().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, (0..20).collect::<Vec<_>>());
    for reason in ["max_attempts", "max_elapsed", "non_retryable"] {
        let series = format!(r#"amrelay_notifications_dead_lettered_total{{receiver="outage",reason="{reason}"}}"#);
        assert_eq!(relay.metric(&series).await, Some(0.0), "{series}");
    }
}

/// A full spool answers 503 and keeps what it accepted.
#[tokio::test]
async fn full_spool_refuses_and_loses_nothing_accepted() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let yaml = spool_config(dir.path(), &downstream.url("/"), ", max_bytes: 3000")
        .replace("name: durable", "name: spool-full");
    let relay = TestRelay::start(&yaml).await;
    let mut accepted = Vec::new();
    let mut refused = None;
    for n in 0..50 {
        let reply = relay.post("/webhook", numbered("F", n)).await;
        match reply.status.as_u16() {
            200 => accepted.push(n),
            503 => {
                refused = Some(reply);
                break;
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    let refused = refused.expect("the spool filled up");
    assert!(refused.text().contains("spool is full"), "{}", refused.text());
    assert_eq!(refused.headers.get("retry-after").unwrap(), "5");
    assert!(accepted.len() >= 2, "{accepted:?}");

    downstream.always(Answer::status(200));
    eventually("every accepted notification delivered", WAIT, async || {
        let n = downstream.delivered().len();
        ensure(n >= accepted.len(), || format!("only {n} of {} delivered", accepted.len()))
    })
    .await;
    let delivered: Vec<usize> = downstream.delivered().iter().map(|r| r.labels("n")[0].parse().unwrap()).collect();
    assert_eq!(delivered, accepted, "in order, each once");
    // Space is free again.
    assert_eq!(relay.post("/webhook", numbered("F", 99)).await.status, 200);
}

/// A spool file that is not a database, and a record that does not decode, are survived.
#[tokio::test]
async fn corrupt_spool_file_and_record_are_survived() {
    use amrelay::spool::{Header, NewRecord, Spool, SpoolConfig};
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool_path = dir.path().join("spool.redb");
    let config = spool_config(dir.path(), &downstream.url("/"), "").replace("name: durable", "name: corrupt");

    // A good record and a corrupt one, in a real spool file.
    {
        let (spool, _) = Spool::open(
            &SpoolConfig {
                path: spool_path.clone(),
                max_bytes: 1 << 20,
                memory_window_bytes: 1 << 20,
                group_commit: true,
            },
            10,
        )
        .unwrap();
        let header = Header {
            group_key: "g".into(),
            id: "good-one".into(),
            accepted_unix_ms: 0,
            attempts: 0,
            alerts: 1,
            dead: None,
        };
        let body = numbered("Good", 1);
        spool.append(1, || vec![NewRecord { receiver: "corrupt".into(), header, body: body.into() }]).await.unwrap();
        spool.close().await;
        let db = redb::Database::create(&spool_path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut pending = txn.open_table(redb::TableDefinition::<(&str, u64), &[u8]>::new("pending")).unwrap();
            pending.insert(("corrupt", 999), &b"\x01\xff\xff garbage"[..]).unwrap();
        }
        txn.commit().unwrap();
    }
    let config_path = dir.path().join("amrelay.yml");
    std::fs::write(&config_path, &config).unwrap();
    let relay = RelayProcess::spawn(&config_path, &[]);
    let received = downstream.wait_for(1).await;
    assert_eq!(received[0].header("idempotency-key"), Some("good-one"));
    downstream.assert_stays_at(1, Duration::from_millis(200)).await;
    assert!(relay.logs().contains("corrupt record skipped"), "{}", relay.logs());
    drop(relay);

    // A file that is not a spool at all: moved aside, a fresh spool serves.
    std::fs::write(&spool_path, vec![0x5A; 64 * 1024]).unwrap();
    let relay = RelayProcess::spawn(&config_path, &[]);
    assert!(relay.logs().contains("moving it aside"), "{}", relay.logs());
    assert_eq!(post_json(&relay.url("/webhook"), numbered("After", 1)).await.status, 200);
    downstream.wait_for(2).await;
}

/// SIGTERM: readiness drops, the in-flight attempt finishes, the process exits 0; with a spool
/// what is left is delivered after the next start.
#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(200).delayed(Duration::from_millis(500)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    std::fs::write(&path, spool_config(dir.path(), &downstream.url("/"), "").replace("name: durable", "name: term"))
        .unwrap();
    let mut relay = RelayProcess::spawn(&path, &[]);
    for n in 0..3 {
        assert_eq!(post_json(&relay.url("/webhook"), numbered("T", n)).await.status, 200);
    }
    downstream.wait_for(1).await;
    relay.signal("TERM");
    assert_eq!(relay.wait_exit().await, Some(0), "{}", relay.logs());
    assert!(relay.logs().contains("shutdown requested"), "{}", relay.logs());
    let delivered_before = downstream.received().len();
    assert!(delivered_before < 3, "workers stopped after their attempt");

    downstream.always(Answer::status(200));
    let _relay = RelayProcess::spawn(&path, &[]);
    let received = downstream.wait_for(3 + delivered_before - 1).await;
    let mut ns: Vec<String> = received.iter().map(|r| r.labels("n")[0].clone()).collect();
    ns.dedup();
    assert_eq!(ns, ["0", "1", "2"]);

    // Without a spool, SIGTERM delivers what is queued before exiting.
    let memory = Downstream::start().await;
    let memory_path = dir.path().join("memory.yml");
    std::fs::write(&memory_path, format!("receivers:\n  - name: term-memory\n    url: {}\n", memory.url("/"))).unwrap();
    memory.always(Answer::status(200).delayed(Duration::from_millis(200)));
    let mut relay = RelayProcess::spawn(&memory_path, &[]);
    for n in 0..3 {
        assert_eq!(post_json(&relay.url("/webhook"), numbered("M", n)).await.status, 200);
    }
    relay.signal("TERM");
    assert_eq!(relay.wait_exit().await, Some(0));
    assert_eq!(memory.received().len(), 3, "{}", relay.logs());
}

/// A non-retryable answer dead-letters the notification; the API lists it without secrets and a
/// replay delivers it with its original idempotency key.
#[tokio::test]
async fn dead_letters_are_listed_and_replayed() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(422));
    let dir = tempfile::tempdir().unwrap();
    let yaml = spool_config(dir.path(), &downstream.url("/"), "").replace(
        "name: durable\n    url",
        "name: dead-api\n    http_config: {authorization: {credentials: very-secret-token}}\n    url",
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", numbered("D", 1)).await.status, 200);
    relay
        .wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="dead-api",reason="non_retryable"}"#, 1.0)
        .await;

    let listed = get(&relay.url("/api/v1/deadletters")).await;
    assert!(!listed.text().contains("very-secret-token"), "{}", listed.text());
    let letters = listed.json()["data"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 1, "{}", listed.text());
    assert_eq!(letters[0]["receiver"], "dead-api");
    assert_eq!(letters[0]["groupKey"], "{}:{alertname=\"D\"}");
    assert_eq!(letters[0]["reason"], "non_retryable");
    assert!(letters[0]["last_error"].as_str().unwrap().contains("422"));
    let key = downstream.received()[0].header("idempotency-key").unwrap().to_owned();

    downstream.always(Answer::status(200));
    assert_eq!(post_json(&relay.url("/api/v1/deadletters/replay?receiver=nope"), "").await.status, 404);
    let replay = post_json(&relay.url("/api/v1/deadletters/replay?receiver=dead-api"), "").await;
    assert_eq!(replay.json()["data"]["replayed"], 1, "{}", replay.text());
    let received = downstream.wait_for(2).await;
    assert_eq!(received[1].header("idempotency-key"), Some(key.as_str()));
    assert!(get(&relay.url("/api/v1/deadletters")).await.json()["data"].as_array().unwrap().is_empty());
}

/// With a dedup window, the same notification from two Alertmanager HA peers is delivered once.
#[tokio::test]
async fn dedup_window_drops_ha_duplicates() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = spool_config(dir.path(), &downstream.url("/"), "")
        .replace("delivery:\n", "delivery:\n  dedup_window: 1m\n")
        .replace("name: durable", "name: dedup");
    let relay = TestRelay::start(&yaml).await;
    let first = numbered("H", 1);
    let mut from_peer: serde_json::Value = serde_json::from_str(&first).unwrap();
    from_peer["externalURL"] = json!("http://alertmanager-1:9093");
    assert_eq!(relay.post("/webhook", first).await.status, 200);
    let second = relay.post("/webhook", from_peer.to_string()).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["duplicates"], json!(["dedup"]));
    // A changed state is not a duplicate.
    let resolved = batch("{}:{alertname=\"H\"}", vec![alert("resolved", json!({"alertname": "H", "n": "1"}))]);
    assert_eq!(relay.post("/webhook", resolved).await.status, 200);
    downstream.wait_for(2).await;
    downstream.assert_stays_at(2, Duration::from_millis(200)).await;
    relay.wait_metric(r#"amrelay_notifications_deduplicated_total{receiver="dedup"}"#, 1.0).await;
}

/// Regression: the spool file and the folder created for it were world-readable (0644/0755),
/// though they hold alert bodies and downstream error snippets.
#[cfg(unix)]
#[tokio::test]
async fn spool_file_and_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("new").join("spool");
    let relay = TestRelay::start(&spool_config(&folder, &downstream.url("/"), "")).await;
    assert_eq!(post_json(&relay.url("/webhook"), numbered("Private", 1)).await.status, 200);
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&folder.join("spool.redb")), 0o600);
    assert_eq!(mode(&folder), 0o700);
    assert_eq!(mode(&dir.path().join("new")), 0o700);
}

/// `delivery.dedup_key_file` keys the dedup identity (issue 15): duplicates are still dropped
/// with it, and a key too short to be a key is refused at load, naming the field.
#[tokio::test]
async fn dedup_key_file_keys_the_identity_and_a_short_key_is_refused() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dedup-key");
    std::fs::write(&key, "c0ffee0123456789c0ffee0123456789\n").unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let yaml = spool_config(dir.path(), &downstream.url("/"), "")
        .replace("delivery:\n", &format!("delivery:\n  dedup_window: 1m\n  dedup_key_file: {}\n", key.display()));
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", numbered("K", 1)).await.status, 200);
    let again = relay.post("/webhook", numbered("K", 1)).await;
    assert_eq!(again.json()["duplicates"], json!(["durable"]), "{}", again.text());
    downstream.wait_for(1).await;
    downstream.assert_stays_at(1, Duration::from_millis(200)).await;

    std::fs::write(&key, "abc123\n").unwrap();
    let path = dir.path().join("weak.yml");
    std::fs::write(&path, &yaml).unwrap();
    let (ok, output) = crate::process::check_config_with_env(&path, &[]);
    assert!(!ok, "{output}");
    assert!(output.contains("delivery.dedup_key_file") && output.contains("at least 16"), "{output}");
    assert!(!output.contains("abc123"), "the key itself is never shown: {output}");
}

/// Regression (review): a notification restored for a receiver no longer configured was
/// dead-lettered with a reason built as a string outside the reason enum, and never counted in
/// `amrelay_notifications_dead_lettered_total`. It is a typed reason, counted, and listed.
#[tokio::test]
async fn a_notification_restored_for_a_removed_receiver_is_a_counted_dead_letter() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let with_receiver = |name: &str| {
        format!(
            "delivery:\n  retry: {{max_attempts: 1000, initial_backoff: 20ms, max_backoff: 50ms, max_elapsed: 10m}}\n  \
             spool: {{path: spool.redb}}\nreceivers:\n  - name: {name}\n    url: {}\n",
            downstream.url("/")
        )
    };
    let mut relay = TestRelay::start(&with_receiver("removed-at-restart")).await;
    assert_eq!(relay.post("/webhook", numbered("Gone", 1)).await.status, 200);
    downstream.wait_for(1).await;
    relay.relay.take().unwrap().shutdown().await;
    let TestRelay { dir, .. } = relay;
    let series =
        r#"amrelay_notifications_dead_lettered_total{receiver="removed-at-restart",reason="receiver_removed"}"#;
    let relay = TestRelay::start_in(dir, &with_receiver("still-here")).await;
    assert_eq!(relay.metric(series).await, Some(1.0), "the dead letter is counted");
    let listed = get(&relay.url("/api/v1/deadletters")).await.json();
    assert_eq!(listed["data"][0]["reason"], "receiver_removed", "{listed}");
    assert_eq!(listed["data"][0]["receiver"], "removed-at-restart", "{listed}");
}
