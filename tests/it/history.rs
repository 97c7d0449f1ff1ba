//! Notification history (issue 25): one record per finished notification, with the fields the
//! API promises, filtered and paged, kept across a restart with a spool file, and readable with
//! `amrelay history`.

use serde_json::{Value, json};

use crate::process::RelayProcess;
use crate::support::eventually::{ensure, eventually};
use crate::support::{Answer, Downstream, TestRelay, WAIT, alert, batch, get, metric_in, post_json};

/// Receivers `ok` (its downstream answers 200) and `refused` (422, dead-lettered at once), both
/// for every alert; a spool file in `spool` when given.
fn config(ok: &str, refused: &str, spool: Option<&std::path::Path>) -> String {
    let spool = spool.map_or(String::new(), |dir| format!("  spool: {{path: {}/spool.redb}}\n", dir.display()));
    format!(
        "delivery:
  retry: {{max_attempts: 2, initial_backoff: 20ms, max_backoff: 50ms}}
{spool}receivers:
  - name: ok
    url: {ok}
  - name: refused
    url: {refused}
"
    )
}

fn disk_batch() -> (String, Vec<String>) {
    let alerts = vec![
        alert("firing", json!({"alertname": "DiskFull", "instance": "a"})),
        alert("resolved", json!({"alertname": "DiskFull", "instance": "b"})),
        alert("firing", json!({"alertname": "NodeDown", "instance": "c"})),
    ];
    let fingerprints = alerts.iter().map(|a| a["fingerprint"].as_str().unwrap().to_owned()).collect();
    (batch("{}:{alertname=\"DiskFull\"}", alerts), fingerprints)
}

async fn history(relay: &str, query: &str) -> Value {
    let reply = get(&format!("{relay}/api/v1/history?{query}")).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.text());
    reply.json()
}

async fn wait_records(relay: &str, count: usize) -> Value {
    eventually(&format!("{count} history records"), WAIT, async || {
        let listed = history(relay, "").await;
        ensure(listed["data"].as_array().unwrap().len() >= count, || listed.to_string()).map(|()| listed.clone())
    })
    .await
}

/// A delivered and a dead-lettered notification each leave a record with the promised fields.
#[tokio::test]
async fn each_outcome_is_recorded_with_its_fields() {
    let (ok, refused) = (Downstream::start().await, Downstream::start().await);
    refused.always(Answer::status(422));
    let relay = TestRelay::start(&config(&ok.url("/hook"), &refused.url("/hook?token=s3cret"), None)).await;
    let (body, fingerprints) = disk_batch();
    assert_eq!(relay.post("/webhook", body).await.status, 200);
    let listed = wait_records(&relay.url(""), 2).await;
    let records = listed["data"].as_array().unwrap();
    let delivered = records.iter().find(|r| r["receiver"] == "ok").expect("ok's record");
    let dead = records.iter().find(|r| r["receiver"] == "refused").expect("refused's record");

    let sent = ok.wait_for(1).await;
    assert_eq!(delivered["outcome"], "delivered");
    assert_eq!(delivered["http_status"], 200);
    assert_eq!(delivered["attempts"], 1);
    assert_eq!(delivered["status"], "firing");
    assert_eq!(delivered["alerts"], 3);
    assert_eq!(delivered["group_key"], "{}:{alertname=\"DiskFull\"}");
    assert_eq!(delivered["id"].as_str(), sent[0].header("idempotency-key"), "the notification id");
    assert_eq!(delivered["alertnames"], json!(["DiskFull", "NodeDown"]));
    assert_eq!(delivered["fingerprints"], json!(fingerprints));
    let (accepted, finished) =
        (delivered["accepted_unix_ms"].as_u64().unwrap(), delivered["finished_unix_ms"].as_u64().unwrap());
    assert!(accepted > 0 && finished >= accepted, "{delivered}");
    assert_eq!(delivered["latency_ms"].as_u64().unwrap(), finished - accepted);
    assert!(delivered.get("error").is_none(), "{delivered}");

    assert_eq!(dead["outcome"], "dead_lettered");
    assert_eq!(dead["reason"], "non_retryable");
    assert_eq!(dead["http_status"], 422);
    assert!(dead["error"].as_str().unwrap().contains("422"), "{dead}");
    assert!(!listed.to_string().contains("s3cret"), "no secret of a URL in the history: {listed}");
    // Newest first.
    assert!(records[0]["seq"].as_u64() > records[1]["seq"].as_u64(), "{listed}");
}

/// Every filter narrows the listing, alone and combined; a bad one is a 400 naming it.
#[tokio::test]
async fn filters_alone_and_combined() {
    let (ok, refused) = (Downstream::start().await, Downstream::start().await);
    refused.always(Answer::status(422));
    let relay = TestRelay::start(&config(&ok.url("/"), &refused.url("/"), None)).await;
    let (body, fingerprints) = disk_batch();
    assert_eq!(relay.post("/webhook", body).await.status, 200);
    let other = batch("{}:{alertname=\"Cpu\"}", vec![alert("firing", json!({"alertname": "Cpu"}))]);
    assert_eq!(relay.post("/webhook", other).await.status, 200);
    let base = relay.url("");
    wait_records(&base, 4).await;
    let count = async |query: &str| history(&base, query).await["data"].as_array().unwrap().len();
    assert_eq!(count("receiver=ok").await, 2);
    assert_eq!(count("outcome=dead_lettered").await, 2);
    assert_eq!(count("alertname=NodeDown").await, 2);
    assert_eq!(count("alertname=Cpu&receiver=refused").await, 1);
    assert_eq!(count(&format!("fingerprint={}", fingerprints[1])).await, 2);
    assert_eq!(count(&format!("fingerprint={}&outcome=delivered", fingerprints[1])).await, 1);
    assert_eq!(count("group_key=%7B%7D%3A%7Balertname%3D%22Cpu%22%7D").await, 2);
    assert_eq!(count("since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z").await, 4);
    assert_eq!(count("until=2000-01-01T00:00:00Z").await, 0);
    assert_eq!(count("tenant=team-a").await, 0, "no record has a tenant without tenancy");
    assert_eq!(count("receiver=nobody").await, 0);
    let bad = get(&relay.url("/api/v1/history?outcome=lost")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("outcome"), "{}", bad.text());
}

/// Pages chain by `next_after` with no record twice and none missed.
#[tokio::test]
async fn pages_chain_without_duplicates_or_gaps() {
    let ok = Downstream::start().await;
    let relay = TestRelay::start(&config(&ok.url("/"), &ok.url("/"), None)).await;
    for n in 0..15 {
        let body =
            batch(&format!("{{}}:{{n=\"{n}\"}}"), vec![alert("firing", json!({"alertname": "A", "n": n.to_string()}))]);
        assert_eq!(relay.post("/webhook", body).await.status, 200);
    }
    let base = relay.url("");
    wait_records(&base, 30).await;
    let (mut seen, mut after) = (Vec::new(), String::new());
    for _ in 0..10 {
        let page = history(&base, &format!("limit=4&receiver=ok{after}")).await;
        seen.extend(page["data"].as_array().unwrap().iter().map(|r| r["seq"].as_u64().unwrap()));
        match page["next_after"].as_u64() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 15, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first, each once: {seen:?}");
}

/// With a spool file the history survives a `kill -9`: what was recorded before is listed by
/// the next process, and `amrelay history` prints it as a table and as JSON.
#[tokio::test]
async fn the_spool_file_keeps_history_across_kill_9_and_the_cli_reads_it() {
    let (ok, refused) = (Downstream::start().await, Downstream::start().await);
    refused.always(Answer::status(422));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("amrelay.yml");
    std::fs::write(&file, config(&ok.url("/"), &refused.url("/"), Some(dir.path()))).unwrap();
    let (body, _) = disk_batch();
    {
        let relay = RelayProcess::spawn(&file, &[]);
        assert_eq!(post_json(&relay.url("/webhook"), body).await.status, 200);
        wait_records(&relay.url(""), 2).await;
        // History rides on the removals' commit, made durable by the next durable one (within
        // a second when idle): wait for one after the records were seen.
        let durable = async || {
            let scrape = get(&relay.url("/metrics")).await.text();
            metric_in(&scrape, "amrelay_spool_commits_total{durable=\"true\"}").unwrap_or(0.0)
        };
        let seen = durable().await;
        eventually("a durable commit after the records", WAIT, async || {
            let now = durable().await;
            ensure(now > seen, || format!("{now} durable commits"))
        })
        .await;
        relay.signal("KILL");
    }
    let relay = RelayProcess::spawn(&file, &[]);
    let listed = history(&relay.url(""), "").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");

    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"))
            .arg(format!("--config.file={}", file.display()))
            .arg("history")
            .arg(format!("--relay.url={}", relay.url("")))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let table = cli(&["--receiver=refused"]);
    assert!(table.starts_with("FINISHED"), "{table}");
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("dead_lettered") && table.contains("422") && table.contains("DiskFull"), "{table}");
    let json: Value = serde_json::from_str(&cli(&["--json", "--outcome=delivered"])).unwrap();
    assert_eq!(json["data"][0]["receiver"], "ok", "{json}");
    let unreachable = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"))
        .args(["history", "--relay.url=http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach"));
}

/// `history: {enabled: false}` records nothing.
#[tokio::test]
async fn history_can_be_turned_off() {
    let ok = Downstream::start().await;
    let yaml = format!("history: {{enabled: false}}\n{}", config(&ok.url("/"), &ok.url("/"), None));
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", disk_batch().0).await.status, 200);
    ok.wait_for(2).await;
    ok.assert_stays_at(2, std::time::Duration::from_millis(200)).await;
    assert_eq!(history(&relay.url(""), "").await["data"], json!([]));
}

/// A notification a silence mutes (`on_mute: drop`) is recorded as `muted`, saying by what.
#[tokio::test]
async fn a_muted_notification_is_recorded_as_muted() {
    let ok = Downstream::start().await;
    let relay = TestRelay::start(&config(&ok.url("/"), &ok.url("/"), None)).await;
    let silence = json!({"matchers": [{"name": "alertname", "value": "Cpu", "isRegex": false, "isEqual": true}],
                         "endsAt": "2100-01-01T00:00:00Z", "createdBy": "test", "comment": "c", "receivers": ["ok"]});
    let made = crate::support::call("POST", &relay.url("/api/v1/silences"), Some(silence), &[]).await;
    assert_eq!(made.status, 200, "{}", made.text());
    let cpu = batch("{}:{alertname=\"Cpu\"}", vec![alert("firing", json!({"alertname": "Cpu"}))]);
    assert_eq!(relay.post("/webhook", cpu).await.status, 200);
    let base = relay.url("");
    let muted = eventually("the muted record", WAIT, async || {
        let listed = history(&base, "outcome=muted").await;
        let first = listed["data"][0].clone();
        if first.is_null() { Err(listed.to_string()) } else { Ok(first) }
    })
    .await;
    assert_eq!(muted["receiver"], "ok");
    assert_eq!(muted["reason"], "silence");
    assert_eq!(muted["alertnames"], json!(["Cpu"]));
    // The other receiver delivered it.
    let delivered = history(&base, "outcome=delivered").await;
    assert_eq!(delivered["data"][0]["receiver"], "refused", "{delivered}");
}

/// `history.export` posts every record once, in batches of at most `batch_max_events`, with the
/// endpoint's auth; a sink failing for a while gets the same batch again until it takes it.
#[tokio::test]
async fn export_delivers_every_record_once_and_survives_a_failing_sink() {
    let (ok, sink) = (Downstream::start().await, Downstream::start().await);
    // Two refusals it may retry, then accepted.
    sink.script([Answer::status(503), Answer::status(503)]);
    let yaml = format!(
        "history:\n  export:\n    url: {}\n    http_config: {{authorization: {{credentials: s3cret-sink}}}}\n    batch_max_events: 4\n    flush_interval: 100ms\ndelivery:\n  retry: {{initial_backoff: 20ms, max_backoff: 50ms}}\nreceivers:\n  - name: ok\n    url: {}\n",
        sink.url("/records"),
        ok.url("/")
    );
    let relay = TestRelay::start(&yaml).await;
    for n in 0..10 {
        let body =
            batch(&format!("{{}}:{{n=\"{n}\"}}"), vec![alert("firing", json!({"alertname": "A", "n": n.to_string()}))]);
        assert_eq!(relay.post("/webhook", body).await.status, 200);
    }
    let ids = eventually("10 records exported", WAIT, async || {
        let posted = sink.delivered();
        let ids: Vec<String> = posted
            .iter()
            .flat_map(|p| {
                p.body["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        ensure(ids.len() >= 10, || format!("{} exported", ids.len())).map(|()| ids.clone())
    })
    .await;
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10, "each record once: {ids:?}");
    let posted = sink.received();
    assert!(posted.len() >= 5, "two refused, then batches of at most 4: {}", posted.len());
    for post in &posted {
        assert_eq!(post.header("authorization"), Some("Bearer s3cret-sink"));
        assert_eq!(post.body["version"], "1");
        assert!(post.body["records"].as_array().unwrap().len() <= 4);
    }
    // The refused batch came back whole, with the same key.
    assert_eq!(posted[0].header("idempotency-key"), posted[2].header("idempotency-key"));
    assert_eq!(posted[0].raw_body, posted[2].raw_body);
    relay.wait_metric("amrelay_history_exported_total", 10.0).await;
}

/// The docs' promise: a batch the sink refuses for good (a 4xx other than 408/429) is dropped
/// at once — counted as `export_refused`, not posted again — and the relay goes on exporting.
#[tokio::test]
async fn export_drops_a_batch_the_sink_refuses_for_good() {
    let (ok, sink) = (Downstream::start().await, Downstream::start().await);
    sink.always(Answer::status(400));
    let yaml = format!(
        "history:\n  export:\n    url: {}\n    batch_max_events: 1\n    flush_interval: 50ms\ndelivery:\n  retry: {{initial_backoff: 20ms, max_backoff: 50ms}}\nreceivers:\n  - name: ok\n    url: {}\n",
        sink.url("/records"),
        ok.url("/")
    );
    let relay = TestRelay::start(&yaml).await;
    for n in 0..2 {
        let body = batch(&format!("{{}}:{{n=\"{n}\"}}"), vec![alert("firing", json!({"alertname": "A"}))]);
        assert_eq!(relay.post("/webhook", body).await.status, 200);
    }
    relay.wait_metric(r#"amrelay_history_dropped_total{reason="export_refused"}"#, 2.0).await;
    let posted = sink.received();
    assert_eq!(posted.len(), 2, "each refused batch posted once, not retried");
    assert_ne!(posted[0].header("idempotency-key"), posted[1].header("idempotency-key"));
}
