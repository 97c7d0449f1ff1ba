//! Hot reload: every way a file changes, bad files, SIGHUP and /-/reload, and reloads under load.

use std::path::Path;
use std::time::Duration;

use amrelay::app::{Options, Relay};
use serde_json::json;

use crate::process::RelayProcess;
use crate::support::eventually::{ensure, eventually};
use crate::support::{Answer, Downstream, TestRelay, WAIT, alert, batch, get};

/// A config whose one receiver takes only alerts with `severity` in `values`.
fn config(url: &str, name: &str, values: &str) -> String {
    format!(
        "receivers:\n  - name: {name}\n    url: {url}\n    conditions: [{{label: severity, operator: In, values: [{values}]}}]\n"
    )
}

fn mixed_batch(id: &str) -> String {
    batch(
        &format!("g-{id}"),
        vec![
            alert("firing", json!({"id": id, "severity": "critical"})),
            alert("firing", json!({"id": id, "severity": "warning"})),
        ],
    )
}

/// Posts a batch and returns the severities the downstream got for it.
async fn severities_routed(relay_url: &str, downstream: &Downstream, id: &str) -> Vec<String> {
    let before = downstream.received().len();
    let reply = crate::support::post_json(&format!("{relay_url}/webhook"), mixed_batch(id)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let received = downstream.wait_for(before + 1).await;
    received[before].labels("severity")
}

/// Waits until the relay's config hash differs from `old`.
async fn wait_for_new_hash(relay_url: &str, old: &str) -> String {
    eventually("the config to be reloaded", WAIT, async || {
        let status = get(&format!("{relay_url}/api/v1/status")).await.json();
        let hash = status["data"]["config"]["hash"].as_str().unwrap().to_owned();
        if hash != old { Ok(hash) } else { Err(format!("the config's hash is still {old}")) }
    })
    .await
}

async fn current_hash(relay_url: &str) -> String {
    get(&format!("{relay_url}/api/v1/status")).await.json()["data"]["config"]["hash"].as_str().unwrap().to_owned()
}

/// A relay on `path` that reloads only when told to (no file watcher).
async fn start_unwatched(path: &Path) -> Relay {
    let options = Options { listen_address: Some("127.0.0.1:0".into()), watch_config: false, ..Options::new(path) };
    Relay::start(options).await.unwrap()
}

/// Writes `text` to `path` the way an editor that saves by rename does.
fn write_by_rename(path: &Path, text: &str) {
    let temp = path.with_extension("yml.swp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

#[tokio::test]
async fn in_place_write_and_rename_over_apply_new_rules() {
    let downstream = Downstream::start().await;
    let url = downstream.url("/");
    let relay = TestRelay::start(&config(&url, "watch-a", "critical")).await;
    let base = relay.url("");
    let path = relay.dir.path().join("amrelay.yml");
    assert_eq!(severities_routed(&base, &downstream, "1").await, ["critical"]);

    let hash = current_hash(&base).await;
    std::fs::write(&path, config(&url, "watch-a", "warning")).unwrap(); // in place: same inode
    let hash = wait_for_new_hash(&base, &hash).await;
    assert_eq!(severities_routed(&base, &downstream, "2").await, ["warning"]);

    write_by_rename(&path, &config(&url, "watch-a", "critical, warning"));
    wait_for_new_hash(&base, &hash).await;
    assert_eq!(severities_routed(&base, &downstream, "3").await, ["critical", "warning"]);
}

/// Kubernetes mounts a ConfigMap as `file -> ..data/file`, `..data -> ..<timestamp>/`, and
/// updates it by pointing `..data` at a new folder.
#[tokio::test]
async fn configmap_symlink_swap_applies_new_rules() {
    use std::os::unix::fs::symlink;
    let downstream = Downstream::start().await;
    let url = downstream.url("/");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("..2026_11_29_01")).unwrap();
    std::fs::write(root.join("..2026_11_29_01/amrelay.yml"), config(&url, "watch-cm", "critical")).unwrap();
    symlink("..2026_11_29_01", root.join("..data")).unwrap();
    symlink("..data/amrelay.yml", root.join("amrelay.yml")).unwrap();
    let relay =
        Relay::start(Options { listen_address: Some("127.0.0.1:0".into()), ..Options::new(root.join("amrelay.yml")) })
            .await
            .unwrap();
    let base = format!("http://{}", relay.local_addr());
    assert_eq!(severities_routed(&base, &downstream, "1").await, ["critical"]);

    let hash = current_hash(&base).await;
    std::fs::create_dir(root.join("..2026_11_29_02")).unwrap();
    std::fs::write(root.join("..2026_11_29_02/amrelay.yml"), config(&url, "watch-cm", "warning")).unwrap();
    symlink("..2026_11_29_02", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_11_29_01")).unwrap();
    wait_for_new_hash(&base, &hash).await;
    assert_eq!(severities_routed(&base, &downstream, "2").await, ["warning"]);
    relay.shutdown().await;
}

/// A secret file named by the config is re-read when it changes.
#[tokio::test]
async fn changed_secret_file_is_reloaded() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/token"), "first").unwrap();
    let yaml = format!(
        "receivers:\n  - name: watch-secret\n    url: {}\n    http_config:\n      authorization: {{credentials_file: secrets/token}}\n",
        downstream.url("/")
    );
    let relay = TestRelay::start_in(dir, &yaml).await;
    assert_eq!(relay.post("/webhook", mixed_batch("1")).await.status, 200);
    assert_eq!(downstream.wait_for(1).await[0].header("authorization"), Some("Bearer first"));

    write_by_rename(&relay.dir.path().join("secrets/token"), "second");
    eventually("the new token to be used", WAIT, async || {
        let count = downstream.received().len();
        assert_eq!(relay.post("/webhook", mixed_batch("n")).await.status, 200);
        let latest = downstream.wait_for(count + 1).await.pop().unwrap();
        let sent = latest.header("authorization");
        ensure(sent == Some("Bearer second"), || format!("authorization: {sent:?}"))
    })
    .await;
}

/// A broken file leaves the old config serving; `/-/reload` reports why; fixing it works.
#[tokio::test]
async fn broken_config_keeps_the_old_one_and_reload_endpoint_reports_it() {
    let downstream = Downstream::start().await;
    let url = downstream.url("/");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    std::fs::write(&path, config(&url, "manual", "critical")).unwrap();
    let relay = start_unwatched(&path).await;
    let base = format!("http://{}", relay.local_addr());

    std::fs::write(
        &path,
        "receivers:\n  - name: manual\n    url: http://x\n    conditions: [{label: a, operator: In}]\n",
    )
    .unwrap();
    let reply = crate::support::post_json(&format!("{base}/-/reload"), "").await;
    assert_eq!(reply.status, 500);
    assert!(reply.text().contains("In needs at least one value"), "{}", reply.text());
    let status = get(&format!("{base}/api/v1/status")).await.json();
    assert_eq!(status["data"]["config"]["last_reload_successful"], false);
    assert_eq!(severities_routed(&base, &downstream, "1").await, ["critical"], "old rules still apply");

    std::fs::write(&path, config(&url, "manual", "warning")).unwrap();
    let reply = crate::support::post_json(&format!("{base}/-/reload"), "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(severities_routed(&base, &downstream, "2").await, ["warning"]);
    let status = get(&format!("{base}/api/v1/status")).await.json();
    assert_eq!(status["data"]["config"]["last_reload_successful"], true);
    relay.shutdown().await;
}

/// While batches flow continuously through many reloads, no request fails and every batch is
/// routed entirely by the old rules or entirely by the new ones.
#[tokio::test]
async fn batches_are_never_routed_by_a_mix_of_old_and_new_rules() {
    let downstream = Downstream::start().await;
    let url = downstream.url("/");
    let rules = |left: &str, right: &str| {
        format!(
            "receivers:
  - name: mix-left
    url: {url}left
    conditions: [{{label: severity, operator: In, values: [{left}]}}]
  - name: mix-right
    url: {url}right
    conditions: [{{label: severity, operator: In, values: [{right}]}}]
"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    std::fs::write(&path, rules("critical", "warning")).unwrap();
    let relay = start_unwatched(&path).await;
    let base = format!("http://{}", relay.local_addr());

    const BATCHES: usize = 300;
    let poster = tokio::spawn({
        let base = base.clone();
        async move {
            for i in 0..BATCHES {
                let reply = crate::support::post_json(&format!("{base}/webhook"), mixed_batch(&i.to_string())).await;
                assert_eq!(reply.status, 200, "batch {i}: {}", reply.text());
            }
        }
    });
    let mut reloads = 0;
    while !poster.is_finished() {
        let (left, right) = if reloads % 2 == 0 { ("warning", "critical") } else { ("critical", "warning") };
        std::fs::write(&path, rules(left, right)).unwrap();
        relay.state().reloader.reload().unwrap();
        reloads += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    poster.await.unwrap();
    assert!(reloads >= 10, "only {reloads} reloads happened during the run");

    let received = downstream.wait_for(2 * BATCHES).await;
    for i in 0..BATCHES {
        let id = i.to_string();
        let of_batch: Vec<_> = received.iter().filter(|r| r.labels("id")[0] == id).collect();
        assert_eq!(of_batch.len(), 2, "batch {i} went to both receivers");
        assert_ne!(of_batch[0].path, of_batch[1].path);
        let severities: Vec<_> = of_batch.iter().flat_map(|r| r.labels("severity")).collect();
        assert_eq!(severities.len(), 2, "batch {i}: each receiver got one alert");
        assert_ne!(severities[0], severities[1], "batch {i} was split by a mix of rules");
    }
    relay.shutdown().await;
}

/// The real binary: SIGHUP reloads; a broken file sets the reload metric to 0, a fix sets 1.
#[tokio::test]
async fn sighup_and_reload_metrics_in_the_real_binary() {
    let downstream = Downstream::start().await;
    let url = downstream.url("/");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    std::fs::write(&path, config(&url, "proc", "critical")).unwrap();

    let relay = RelayProcess::spawn(&path, &["--config.watch=false"]);
    let base = relay.url("");
    relay.wait_metric("amrelay_config_last_reload_successful", 1.0).await;
    std::fs::write(&path, config(&url, "proc", "warning")).unwrap();
    let hash = current_hash(&base).await;
    relay.signal("HUP");
    wait_for_new_hash(&base, &hash).await;
    assert_eq!(severities_routed(&base, &downstream, "1").await, ["warning"]);
    drop(relay);

    // With the watcher on, a broken file is noticed, reported and survived.
    std::fs::write(&path, config(&url, "proc", "critical")).unwrap();
    let relay = RelayProcess::spawn(&path, &[]);
    let base = relay.url("");
    std::fs::write(&path, "receivers: [{name: proc, url: 'not a url'}]\n").unwrap();
    relay.wait_metric("amrelay_config_last_reload_successful", 0.0).await;
    assert_eq!(severities_routed(&base, &downstream, "2").await, ["critical"], "old config still serves");
    assert!(relay.logs().contains("config reload failed"), "{}", relay.logs());
    write_by_rename(&path, &config(&url, "proc", "warning"));
    relay.wait_metric("amrelay_config_last_reload_successful", 1.0).await;
    assert_eq!(severities_routed(&base, &downstream, "3").await, ["warning"]);
}

/// A reload that leaves a receiver's TLS settings alone keeps its connection pool: the next
/// notification reuses the kept-alive connection.
#[tokio::test]
async fn an_unchanged_receiver_keeps_its_connections_across_a_reload() {
    let downstream = Downstream::start().await;
    let url = downstream.url("/");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    std::fs::write(&path, config(&url, "pool", "critical")).unwrap();
    let relay = start_unwatched(&path).await;
    let base = format!("http://{}", relay.local_addr());
    severities_routed(&base, &downstream, "1").await;
    // A different rule, the same endpoint.
    std::fs::write(&path, config(&url, "pool", "critical, warning")).unwrap();
    relay.state().reloader.reload().unwrap();
    assert_eq!(severities_routed(&base, &downstream, "2").await, ["critical", "warning"]);
    let received = downstream.received();
    assert_eq!(received[0].peer, received[1].peer, "the second delivery used the pooled connection");
    relay.shutdown().await;
}

/// Notifications already queued for a receiver that a reload changes go out with its new
/// settings (a fixed URL helps them); those of a removed receiver are still delivered.
#[tokio::test]
async fn reloads_never_lose_queued_notifications() {
    let broken = Downstream::start().await;
    broken.always(Answer::status(503));
    let fixed = Downstream::start().await;
    let slow = Downstream::start().await;
    slow.always(Answer::status(200).delayed(Duration::from_millis(300)));
    let receivers = |changed_url: &str, with_removed: bool| {
        let mut yaml = format!(
            "delivery:\n  retry: {{max_attempts: 1000, initial_backoff: 20ms, max_backoff: 50ms}}\nreceivers:\n  - name: changed\n    url: {changed_url}\n"
        );
        if with_removed {
            yaml.push_str(&format!("  - name: removed\n    url: {}\n", slow.url("/")));
        }
        yaml
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    std::fs::write(&path, receivers(&broken.url("/"), true)).unwrap();
    let relay = start_unwatched(&path).await;
    let base = format!("http://{}", relay.local_addr());
    for n in 0..3 {
        let reply = crate::support::post_json(&format!("{base}/webhook"), mixed_batch(&n.to_string())).await;
        assert_eq!(reply.status, 200);
    }
    broken.wait_for(3).await; // retrying at the broken URL
    std::fs::write(&path, receivers(&fixed.url("/"), false)).unwrap();
    relay.state().reloader.reload().unwrap();

    let mut ids: Vec<String> = fixed.wait_for(3).await.iter().map(|r| r.labels("id")[0].clone()).collect();
    ids.sort();
    assert_eq!(ids, ["0", "1", "2"], "the changed receiver's queue went to its new URL");
    let mut ids: Vec<String> = slow.wait_for(3).await.iter().map(|r| r.labels("id")[0].clone()).collect();
    ids.sort();
    assert_eq!(ids, ["0", "1", "2"], "the removed receiver's queue was drained");
    relay.shutdown().await;
}
