//! `thread:` against local fakes of Slack's Web API, Telegram's Bot API and Google Chat
//! (`chat_apis.rs`): firing → more alerts → resolved is one message updated twice (update) or one
//! message and two replies (reply), across a kill -9, a deleted message and an expired group.

use std::time::Duration;

use serde_json::json;

use crate::chat_apis::{Api, FakeChat, SLACK_TOKEN};
use crate::process::RelayProcess;
use crate::support::eventually::{ensure, eventually};
use crate::support::{TestRelay, WAIT, alert, batch, get, post_json};

const GROUP: &str = "{}:{alertname=\"Disk\"}";

fn receiver(fake: &FakeChat, name: &str, mode: &str, expire: &str) -> String {
    let (preset, options) = match fake.api {
        Api::Slack => ("slack", "{channel: \"#ops\", token_file: slack-token}"),
        Api::Telegram => ("telegram", "{chat_id: \"-1001234567890\"}"),
        Api::GoogleChat => ("googlechat", "{}"),
    };
    format!(
        "  - name: {name}
    url: \"{}\"
    preset: {preset}
    preset_options: {options}
    thread: {{mode: {mode}, expire: {expire}}}
",
        fake.url()
    )
}

fn config(dir: &std::path::Path, receivers: &str) -> String {
    std::fs::write(dir.join("slack-token"), format!("{SLACK_TOKEN}\n")).unwrap();
    std::fs::set_permissions(dir.join("slack-token"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    format!(
        "delivery:
  retry: {{max_attempts: 4, initial_backoff: 20ms, max_backoff: 50ms}}
  spool: {{path: {}/spool.redb}}
receivers:
{receivers}",
        dir.display()
    )
}

async fn start(fake: &FakeChat, name: &str, mode: &str) -> TestRelay {
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(dir.path(), &receiver(fake, name, mode, "7d"));
    TestRelay::start_in(dir, &yaml).await
}

fn firing(names: &[&str]) -> Vec<serde_json::Value> {
    names.iter().map(|n| alert("firing", json!({"alertname": n, "severity": "critical"}))).collect()
}

fn resolved(names: &[&str]) -> Vec<serde_json::Value> {
    names.iter().map(|n| alert("resolved", json!({"alertname": n, "severity": "critical"}))).collect()
}

/// `mode: reply` after [`incident`]: the group's first message and two replies under it.
fn assert_one_message_and_two_replies(fake: &FakeChat) {
    let messages = fake.messages();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    let first = messages.iter().find(|(_, m)| m.thread.is_none()).map(|(id, _)| id.clone()).unwrap();
    let replies = messages.values().filter(|m| m.thread.as_deref() == Some(first.as_str())).count();
    assert_eq!(replies, 2, "{messages:#?}");
}

/// Posts firing → more alerts → resolved for one group, each after the previous arrived.
async fn incident(relay: &TestRelay, fake: &FakeChat) {
    let steps = [firing(&["DiskFull"]), firing(&["DiskFull", "DiskSlow"]), resolved(&["DiskFull", "DiskSlow"])];
    for (n, alerts) in steps.into_iter().enumerate() {
        assert_eq!(relay.post("/webhook", batch(GROUP, alerts)).await.status, 200);
        fake.wait_calls(n + 1).await;
    }
}

#[tokio::test]
async fn slack_update_edits_the_groups_message_with_chat_update() {
    let slack = FakeChat::start(Api::Slack).await;
    let relay = start(&slack, "slack-update", "update").await;
    incident(&relay, &slack).await;
    let calls = slack.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, ["chat.postMessage", "chat.update", "chat.update"], "{calls:#?}");
    assert!(calls.iter().all(|c| c.authorization.as_deref() == Some(&format!("Bearer {SLACK_TOKEN}"))));
    assert!(calls.iter().all(|c| c.body["blocks"].is_array()), "Block Kit on every call");
    let messages = slack.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let (ts, message) = messages.iter().next().unwrap();
    assert_eq!(calls[1].body["ts"], ts.as_str());
    assert_eq!(calls[1].body["channel"], "C0FAKE01", "the channel id Slack answered, not the #name");
    assert_eq!(message.edits, 2);
    assert!(message.text.contains("RESOLVED"), "{message:?}");
    relay.wait_metric(r#"amrelay_thread_updates_total{receiver="slack-update",outcome="updated"}"#, 2.0).await;
}

#[tokio::test]
async fn slack_reply_threads_under_the_first_message() {
    let slack = FakeChat::start(Api::Slack).await;
    let relay = start(&slack, "slack-reply", "reply").await;
    incident(&relay, &slack).await;
    assert_one_message_and_two_replies(&slack);
    assert!(slack.calls().iter().all(|c| c.method == "chat.postMessage"));
    relay.wait_metric(r#"amrelay_thread_updates_total{receiver="slack-reply",outcome="replied"}"#, 2.0).await;
}

/// Slack answers 200 with `ok: false`: a refusal is a failed delivery, not a success.
#[tokio::test]
async fn slacks_ok_false_is_a_failure() {
    let slack = FakeChat::start(Api::Slack).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(dir.path(), &receiver(&slack, "slack-refused", "update", "7d"));
    std::fs::write(dir.path().join("slack-token"), "xoxb-revoked\n").unwrap();
    let relay = TestRelay::start_in(dir, &yaml).await;
    relay.post("/webhook", batch(GROUP, firing(&["DiskFull"]))).await;
    slack.wait_calls(1).await;
    relay
        .wait_metric(
            r#"amrelay_notifications_dead_lettered_total{receiver="slack-refused",reason="non_retryable"}"#,
            1.0,
        )
        .await;
    assert_eq!(slack.calls().len(), 1, "not_authed is not retried");
}

#[tokio::test]
async fn telegram_update_edits_and_a_deleted_message_is_sent_anew() {
    let telegram = FakeChat::start(Api::Telegram).await;
    let relay = start(&telegram, "telegram-update", "update").await;
    incident(&relay, &telegram).await;
    let calls = telegram.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, ["sendMessage", "editMessageText", "editMessageText"], "{calls:#?}");
    let (id, message) = telegram.messages().into_iter().next().unwrap();
    assert_eq!(calls[2].body["message_id"], id.parse::<i64>().unwrap());
    assert_eq!(calls[2].body["chat_id"], -1001234567890_i64);
    assert_eq!(message.edits, 2);

    // Deleted in the chat: the edit is refused, the notification is sent as a new message.
    telegram.delete(&id);
    relay.post("/webhook", batch(GROUP, firing(&["DiskFull"]))).await;
    let calls = telegram.wait_calls(5).await;
    assert_eq!((calls[3].method.as_str(), calls[3].status), ("editMessageText", 400));
    assert_eq!((calls[4].method.as_str(), calls[4].status), ("sendMessage", 200));
    relay.wait_metric(r#"amrelay_thread_updates_total{receiver="telegram-update",outcome="reposted"}"#, 1.0).await;
}

#[tokio::test]
async fn telegram_reply_uses_reply_parameters() {
    let telegram = FakeChat::start(Api::Telegram).await;
    let relay = start(&telegram, "telegram-reply", "reply").await;
    incident(&relay, &telegram).await;
    assert_one_message_and_two_replies(&telegram);
}

/// A group silent longer than `expire` starts a new conversation.
#[tokio::test]
async fn an_expired_group_starts_a_new_message() {
    let telegram = FakeChat::start(Api::Telegram).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(dir.path(), &receiver(&telegram, "telegram-expire", "update", "300ms"));
    let relay = TestRelay::start_in(dir, &yaml).await;
    relay.post("/webhook", batch(GROUP, firing(&["DiskFull"]))).await;
    telegram.wait_calls(1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    relay.post("/webhook", batch(GROUP, firing(&["DiskFull", "DiskSlow"]))).await;
    let calls = telegram.wait_calls(2).await;
    assert_eq!(calls[1].method, "sendMessage", "{calls:#?}");
    assert_eq!(telegram.messages().len(), 2);
}

/// Google Chat: one thread per group (`threadKey`), each post with its notification's
/// `requestId`, so a post whose answer was lost and is retried makes no second message.
#[tokio::test]
async fn google_chat_replies_in_the_groups_thread_and_retries_make_no_duplicate() {
    let chat = FakeChat::start(Api::GoogleChat).await;
    let relay = start(&chat, "chat-reply", "reply").await;
    chat.lose_answers(1);
    relay.post("/webhook", batch(GROUP, firing(&["DiskFull"]))).await;
    let calls = chat.wait_calls(2).await;
    assert_eq!((calls[0].status, calls[1].status), (503, 200));
    assert_eq!(calls[0].query, calls[1].query, "the retry is the same request");
    assert_eq!(chat.messages().len(), 1, "the retry answered the message already made");
    for (n, alerts) in [firing(&["DiskFull", "DiskSlow"]), resolved(&["DiskFull", "DiskSlow"])].into_iter().enumerate()
    {
        relay.post("/webhook", batch(GROUP, alerts)).await;
        chat.wait_calls(n + 3).await;
    }
    let messages = chat.messages();
    assert_eq!(messages.len(), 3);
    let keys: std::collections::HashSet<_> = messages.values().map(|m| m.thread.clone()).collect();
    assert_eq!(keys.len(), 1, "one thread: {messages:#?}");
    let query: std::collections::HashMap<String, String> =
        form_urlencoded::parse(chat.calls()[3].query.as_bytes()).into_owned().collect();
    assert_eq!(query["messageReplyOption"], "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD");
    assert_eq!((query["key"].as_str(), query["token"].as_str()), ("k3y", "t0k"), "the webhook's own query kept");

    // Another group, another thread.
    relay.post("/webhook", batch("{}:{alertname=\"Cpu\"}", firing(&["CpuHigh"]))).await;
    chat.wait_calls(5).await;
    let keys: std::collections::HashSet<_> = chat.messages().values().map(|m| m.thread.clone()).collect();
    assert_eq!(keys.len(), 2);
}

/// kill -9 of the real binary between two notifications of a group: the second still edits the
/// message the first posted (its reference was committed to the spool before the delivery counted).
#[tokio::test]
async fn a_group_keeps_its_message_across_kill_9() {
    let telegram = FakeChat::start(Api::Telegram).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    std::fs::write(&path, config(dir.path(), &receiver(&telegram, "telegram-kill", "update", "7d"))).unwrap();
    let mut relay = RelayProcess::spawn(&path, &[]);
    post_json(&relay.url("/webhook"), batch(GROUP, firing(&["DiskFull"]))).await;
    telegram.wait_calls(1).await;
    relay.wait_metric(r#"amrelay_thread_updates_total{receiver="telegram-kill",outcome="posted"}"#, 1.0).await;
    relay.signal("KILL");
    assert_eq!(relay.wait_exit().await, None, "killed by a signal");

    // A notification whose delivered mark was not yet on disk is sent again after the restart
    // (at least once): as an edit of the same message, which Telegram answers "not modified".
    let relay = RelayProcess::spawn(&path, &[]);
    post_json(&relay.url("/webhook"), batch(GROUP, resolved(&["DiskFull"]))).await;
    eventually("the message edited to RESOLVED", WAIT, async || {
        let resolved = telegram.messages().values().any(|m| m.text.contains("RESOLVED"));
        ensure(resolved, || format!("{:#?}", telegram.calls()))
    })
    .await;
    let calls = telegram.calls();
    assert_eq!(telegram.messages().len(), 1, "{calls:#?}");
    let id = telegram.messages().keys().next().unwrap().parse::<i64>().unwrap();
    assert!(calls[1..].iter().all(|c| c.method == "editMessageText" && c.body["message_id"] == id), "{calls:#?}");
    let listed = get(&relay.url("/api/v1/threads?receiver=telegram-kill")).await.json();
    assert_eq!(listed["data"]["threads"][0]["message_id"], id.to_string());
}

/// 2,000 groups through one receiver (10,000 in the unit test of `threads.rs`): the remembered groups never exceed `max_groups`.
#[tokio::test]
async fn many_groups_stay_within_max_groups() {
    let telegram = FakeChat::start(Api::Telegram).await;
    // Far past Telegram's 20 a minute (the preset's default), which this fake does not enforce.
    let receivers = receiver(&telegram, "telegram-many", "update", "7d").replace("expire: 7d", "max_groups: 200")
        + "    rate_limit: {per_second: 1000000}\n";
    let yaml = format!("receivers:\n{receivers}");
    let relay = TestRelay::start(&yaml).await;
    let url = relay.url("/webhook");
    let posters: Vec<_> = (0..16)
        .map(|worker| {
            let url = url.clone();
            tokio::spawn(async move {
                for n in (worker..2_000).step_by(16) {
                    let reply = post_json(&url, batch(&format!("{{}}:{{n=\"{n}\"}}"), firing(&["Many"]))).await;
                    assert_eq!(reply.status, 200);
                }
            })
        })
        .collect();
    for poster in posters {
        poster.await.unwrap();
    }
    relay.wait_metric(r#"amrelay_thread_updates_total{receiver="telegram-many",outcome="posted"}"#, 2_000.0).await;
    let remembered = relay.metric(r#"amrelay_threads{receiver="telegram-many"}"#).await.unwrap();
    assert!((190.0..=200.0).contains(&remembered), "{remembered}");
    let listed = get(&relay.url("/api/v1/threads?receiver=telegram-many")).await.json();
    assert!(listed["data"]["threads"].as_array().unwrap().len() <= 200);
}

/// `check-config` names each `thread:` that cannot work, with the reason.
#[test]
fn thread_mistakes_are_named() {
    let cases = [
        ("url: https://hooks.slack.com/services/T0/B0/x\n    preset: slack", "{mode: update}", "incoming webhooks"),
        ("url: https://slack.com/api/chat.postMessage\n    preset: slack", "{mode: reply}", "bot token"),
        (
            "url: https://chat.googleapis.com/v1/spaces/A/messages\n    preset: googlechat",
            "{mode: update}",
            "mode: reply",
        ),
        (
            "url: https://api.telegram.org/bot1:x/sendPhoto\n    preset: telegram\n    preset_options: {chat_id: \"1\"}",
            "{mode: update}",
            "/sendMessage",
        ),
        (
            "url: https://events.pagerduty.com/v2/enqueue\n    preset: pagerduty\n    preset_options: {routing_key: k}",
            "{mode: update}",
            "dedup_key",
        ),
        ("url: https://example.com/hook", "{mode: update}", "needs a preset"),
        ("url: https://discord.com/api/webhooks/1/t\n    preset: discord", "{mode: sideways}", "unknown mode"),
    ];
    for (receiver, thread, expected) in cases {
        let yaml = format!("receivers:\n  - name: r\n    {receiver}\n    thread: {thread}\n");
        let error =
            amrelay::config::from_str(&yaml, std::path::Path::new("/x.yml"), &amrelay::config::Environment::empty())
                .expect_err(&yaml)
                .to_string();
        assert!(error.contains(expected), "{yaml}\n→ {error}");
    }
    let channel = "receivers:\n  - name: r\n    url: https://slack.com/api/chat.postMessage\n    preset: slack\n    preset_options: {token: xoxb-1}\n    thread: {mode: update}\n";
    let error =
        amrelay::config::from_str(channel, std::path::Path::new("/x.yml"), &amrelay::config::Environment::empty())
            .expect_err("no channel")
            .to_string();
    assert!(error.contains("channel"), "{error}");
}

/// Without `thread:` too, Slack's Web API is read for its `ok`: a refusal in an HTTP 200 is a
/// failed delivery (dead-lettered at once when retrying cannot help), an `ok: true` a delivery.
#[tokio::test]
async fn slack_web_api_refusals_are_failures_without_thread_too() {
    let slack = FakeChat::start(Api::Slack).await;
    let dir = tempfile::tempdir().unwrap();
    let receivers = format!(
        "{}{}",
        receiver(&slack, "slack-plain", "update", "7d").replace("    thread: {mode: update, expire: 7d}\n", ""),
        receiver(&slack, "slack-plain-nochan", "update", "7d")
            .replace("    thread: {mode: update, expire: 7d}\n", "")
            .replace("channel: \"#ops\", ", "")
    );
    let yaml = config(dir.path(), &receivers);
    let relay = TestRelay::start_in(dir, &yaml).await;
    relay.post("/webhook", batch(GROUP, firing(&["DiskFull"]))).await;
    slack.wait_calls(2).await;
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="slack-plain"}"#, 1.0).await;
    relay
        .wait_metric(
            r#"amrelay_notifications_dead_lettered_total{receiver="slack-plain-nochan",reason="non_retryable"}"#,
            1.0,
        )
        .await;
    assert_eq!(slack.messages().len(), 1);
}
