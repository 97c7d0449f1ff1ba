//! `thread: {mode: update}`: one chat message per alert group, edited as the group changes, and
//! remembered across a restart of the relay, against a local fake of Discord's webhook API.

use http::Method;
use serde_json::json;

use crate::discord_api::{FakeDiscord, WEBHOOK};
use crate::support::eventually::{ensure, eventually};
use crate::support::{TestRelay, alert, batch, get};

/// A Discord receiver with `thread: {mode: update}` and a spool in `dir`. Each test names its
/// receiver apart: the metrics registry is shared by the whole test binary.
pub(crate) fn config(dir: &std::path::Path, url: &str, name: &str) -> String {
    config_with_mode(dir, url, name, "update")
}

fn config_with_mode(dir: &std::path::Path, url: &str, name: &str, mode: &str) -> String {
    format!(
        "delivery:
  retry: {{max_attempts: 3, initial_backoff: 20ms, max_backoff: 50ms}}
  spool: {{path: {}/spool.redb}}
receivers:
  - name: {name}
    url: {url}
    preset: discord
    thread: {{mode: {mode}, expire: 7d, max_groups: 1000}}
",
        dir.display()
    )
}

fn firing(names: &[&str]) -> Vec<serde_json::Value> {
    names.iter().map(|n| alert("firing", json!({"alertname": n, "severity": "critical"}))).collect()
}

async fn start(discord: &FakeDiscord, name: &str) -> TestRelay {
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(dir.path(), &discord.webhook_url(), name);
    TestRelay::start_in(dir, &yaml).await
}

/// firing → more alerts → resolved: one message, posted once and edited twice.
#[tokio::test]
async fn a_group_is_one_message_updated_as_it_changes() {
    let discord = FakeDiscord::start().await;
    let relay = start(&discord, "discord").await;
    assert_eq!(relay.post("/webhook", batch("{}:{alertname=\"Disk\"}", firing(&["DiskFull"]))).await.status, 200);
    let calls = discord.wait_calls(1).await;
    assert_eq!((calls[0].method.clone(), calls[0].query.as_str(), calls[0].status), (Method::POST, "wait=true", 200));
    let id = discord.messages().keys().next().cloned().unwrap();

    relay.post("/webhook", batch("{}:{alertname=\"Disk\"}", firing(&["DiskFull", "DiskSlow"]))).await;
    let calls = discord.wait_calls(2).await;
    assert_eq!(calls[1].method, Method::PATCH);
    assert_eq!(calls[1].path, format!("{WEBHOOK}/messages/{id}"));
    assert!(discord.messages()[&id].contains("DiskSlow"), "{:?}", discord.messages());

    let resolved = vec![
        alert("resolved", json!({"alertname": "DiskFull", "severity": "critical"})),
        alert("resolved", json!({"alertname": "DiskSlow", "severity": "critical"})),
    ];
    relay.post("/webhook", batch("{}:{alertname=\"Disk\"}", resolved)).await;
    let calls = discord.wait_calls(3).await;
    assert_eq!((calls[2].method.clone(), calls[2].status), (Method::PATCH, 200));
    assert_eq!(discord.messages().len(), 1, "one message for the group");
    assert!(discord.messages()[&id].contains("🟢"), "{:?}", discord.messages());
    assert!(!discord.messages()[&id].contains("🔴"), "{:?}", discord.messages());

    // Another group gets a message of its own.
    relay.post("/webhook", batch("{}:{alertname=\"Cpu\"}", firing(&["CpuHigh"]))).await;
    discord.wait_calls(4).await;
    assert_eq!(discord.messages().len(), 2);
    relay.wait_metric(r#"amrelay_thread_updates_total{receiver="discord",outcome="updated"}"#, 2.0).await;
    assert_eq!(relay.metric(r#"amrelay_thread_updates_total{receiver="discord",outcome="posted"}"#).await, Some(2.0));
    assert_eq!(relay.metric(r#"amrelay_threads{receiver="discord"}"#).await, Some(2.0));

    let listed = get(&relay.url("/api/v1/threads?receiver=discord")).await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let listed = listed.json();
    assert_eq!(listed["data"]["mode"], "update");
    assert_eq!(listed["data"]["threads"].as_array().unwrap().len(), 2, "{listed}");
    assert!(listed["data"]["threads"].as_array().unwrap().iter().any(|t| t["message_id"] == id.as_str()), "{listed}");
    assert_eq!(get(&relay.url("/api/v1/threads?receiver=nope")).await.status, 404);
    // The status (and the console's receiver card) counts the groups threaded.
    let status = get(&relay.url("/api/v1/status")).await.json();
    let card = status["data"]["receivers"].as_array().unwrap().iter().find(|r| r["name"] == "discord").unwrap().clone();
    assert_eq!(card["thread"], json!({"mode": "update", "groups": 2, "max_groups": 1000}), "{card}");
}

/// A message deleted in the channel (PATCH answers 404 Unknown Message) is posted anew, and the
/// new message is the one edited next.
#[tokio::test]
async fn a_deleted_message_is_posted_anew() {
    let discord = FakeDiscord::start().await;
    let relay = start(&discord, "discord-deleted").await;
    let group = "{}:{alertname=\"Net\"}";
    relay.post("/webhook", batch(group, firing(&["NetDown"]))).await;
    discord.wait_calls(1).await;
    let first = discord.messages().keys().next().cloned().unwrap();
    discord.delete(&first);

    relay.post("/webhook", batch(group, firing(&["NetDown", "NetLoss"]))).await;
    let calls = discord.wait_calls(3).await;
    assert_eq!((calls[1].method.clone(), calls[1].status), (Method::PATCH, 404));
    assert_eq!((calls[2].method.clone(), calls[2].query.as_str()), (Method::POST, "wait=true"));
    let second = discord.messages().keys().next().cloned().unwrap();
    assert_ne!(first, second);

    relay.post("/webhook", batch(group, firing(&["NetLoss"]))).await;
    let calls = discord.wait_calls(4).await;
    assert_eq!(calls[3].path, format!("{WEBHOOK}/messages/{second}"));
    assert_eq!(calls[3].status, 200);
    assert_eq!(discord.messages().len(), 1);
    assert_eq!(
        relay.metric(r#"amrelay_thread_updates_total{receiver="discord-deleted",outcome="reposted"}"#).await,
        Some(1.0)
    );
    // Each notification's history record says what was done, oldest last.
    assert_eq!(thread_actions(&relay, "discord-deleted", 3).await, ["updated", "reposted", "posted"]);
}

/// The `thread` field of the receiver's history records, newest first, once there are `count`.
async fn thread_actions(relay: &TestRelay, receiver: &str, count: usize) -> Vec<String> {
    let url = relay.url(&format!("/api/v1/history?receiver={receiver}"));
    eventually(&format!("{count} history records"), std::time::Duration::from_secs(10), async || {
        let listed = get(&url).await.json();
        let records = listed["data"].as_array().cloned().unwrap_or_default();
        let actions: Vec<String> = records.iter().map(|r| r["thread"].as_str().unwrap_or("none").to_owned()).collect();
        ensure(actions.len() == count, || listed.to_string()).map(|()| actions)
    })
    .await
}

/// The group's message is in the spool: after a restart, the group's next notification edits
/// the message posted before it, instead of posting a second one.
#[tokio::test]
async fn thread_state_survives_a_restart_on_the_same_spool() {
    let discord = FakeDiscord::start().await;
    let mut relay = start(&discord, "discord-restart").await;
    let group = "{}:{alertname=\"Mem\"}";
    relay.post("/webhook", batch(group, firing(&["MemHigh"]))).await;
    discord.wait_calls(1).await;
    let id = discord.messages().keys().next().cloned().unwrap();
    relay.relay.take().unwrap().shutdown().await;

    let dir = relay.dir;
    let yaml = config(dir.path(), &discord.webhook_url(), "discord-restart");
    let relay = TestRelay::start_in(dir, &yaml).await;
    relay.post("/webhook", batch(group, vec![alert("resolved", json!({"alertname": "MemHigh"}))])).await;
    let calls = discord.wait_calls(2).await;
    assert_eq!((calls[1].method.clone(), calls[1].status), (Method::PATCH, 200), "{calls:?}");
    assert_eq!(calls[1].path, format!("{WEBHOOK}/messages/{id}"));
    assert_eq!(discord.messages().len(), 1);
}

/// `mode: reply`: a webhook cannot reply, so each later notification is a new message that
/// starts with the jump link of the group's first message.
#[tokio::test]
async fn discord_reply_links_the_groups_first_message() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_with_mode(dir.path(), &discord.webhook_url(), "discord-reply", "reply");
    let relay = TestRelay::start_in(dir, &yaml).await;
    let group = "{}:{alertname=\"Disk\"}";
    relay.post("/webhook", batch(group, firing(&["DiskFull"]))).await;
    let calls = discord.wait_calls(2).await;
    assert_eq!((calls[1].method.clone(), calls[1].path.as_str()), (Method::GET, WEBHOOK), "the guild is read once");
    let first = discord.messages().keys().next().cloned().unwrap();

    relay.post("/webhook", batch(group, vec![alert("resolved", json!({"alertname": "DiskFull"}))])).await;
    let calls = discord.wait_calls(3).await;
    assert_eq!((calls[2].method.clone(), calls[2].query.as_str()), (Method::POST, "wait=true"));
    let messages = discord.messages();
    assert_eq!(messages.len(), 2);
    let reply = messages.iter().find(|(id, _)| **id != first).map(|(_, content)| content.clone()).unwrap();
    assert!(reply.starts_with(&format!("↪ https://discord.com/channels/900/1100/{first}\n")), "{reply}");
    relay.wait_metric(r#"amrelay_thread_updates_total{receiver="discord-reply",outcome="replied"}"#, 1.0).await;
    assert_eq!(thread_actions(&relay, "discord-reply", 2).await, ["replied", "posted"]);
}
