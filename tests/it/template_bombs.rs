//! Templates that would allocate without bound (the security review of issue 21): each is a
//! clear render error, the process stays up, and a notification whose render fails — also one
//! restored from the spool after a restart — is dead-lettered once, never rendered into a
//! crash loop.

use std::time::Duration;

use serde_json::{Value, json};

use crate::process::RelayProcess;
use crate::support::eventually::eventually;
use crate::support::{Answer, Downstream, TestRelay, WAIT, alert, batch, get, post_json, spool_config};

/// `POST /api/v1/receiver-test` with `body`: the answer, and whether the relay still answers.
async fn receiver_test(relay: &TestRelay, url: &str, body: &str) -> (u16, String) {
    let definition = json!({"name": "bomb", "url": url, "content_type": "text/plain", "body": body});
    let reply = relay.post("/api/v1/receiver-test", definition.to_string()).await;
    let text = reply.text();
    assert_eq!(get(&relay.url("/-/healthy")).await.status, 200, "the relay still answers");
    (reply.status.as_u16(), text)
}

/// Regression: one `receiver-test` with either bomb of the review allocated gigabytes and
/// aborted the relay. Both are a 400 naming the helper; the relay answers on, and a fine
/// template sent next is delivered.
#[tokio::test]
async fn receiver_test_bombs_are_clear_errors_and_the_relay_stays_up() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&format!(
        "delivery: {{spool: {{path: spool.redb}}}}\nreceivers:\n  - name: file\n    url: {}\n",
        downstream.url("/file")
    ))
    .await;
    let url = downstream.url("/draft");
    for (bomb, helper) in [
        (r#"{{ ("a" * 100000) | reReplaceAll("a", "x" * 100000) }}"#, "reReplaceAll"),
        (r#"{{ range(10000) | fit("line", 10**15, sep="x" * 100000) }}"#, "fit"),
        (r#"{{ (["x" * 1000] * 1000000) | toJson }}"#, "toJson"),
        (r#"{{ "" ~ (["x" * 1000] * 1000000) }}"#, "~"),
    ] {
        let (status, text) = receiver_test(&relay, &url, bomb).await;
        assert_eq!(status, 400, "{bomb}: {text}");
        assert!(text.contains(helper) && text.contains("over the limit"), "{bomb}: {text}");
    }
    let (status, text) = receiver_test(&relay, &url, "{{ status }}").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(downstream.wait_for(1).await[0].raw_body.as_ref(), b"firing");
}

/// The dead letters the relay at `url` lists.
async fn dead_letters(url: &str) -> Vec<Value> {
    get(&format!("{url}/api/v1/deadletters")).await.json()["data"].as_array().cloned().unwrap_or_default()
}

/// Waits until the relay lists `count` dead letters; returns them.
async fn wait_dead_letters(relay: &RelayProcess, count: usize) -> Vec<Value> {
    eventually(&format!("{count} dead letters"), WAIT, async || {
        let letters = dead_letters(&relay.url("")).await;
        if letters.len() == count {
            Ok(letters)
        } else {
            Err(format!("{} dead letters\n{}", letters.len(), relay.logs()))
        }
    })
    .await
}

/// Regression: a template that explodes only on a label value passes validation, and the
/// spooled notification was rendered again after every restart — a crash loop. Now: the batch
/// posted is dead-lettered with reason `template`, the one restored from the spool after a
/// kill is too, the binary stays up, and a restart renders neither again.
#[tokio::test]
async fn a_label_triggered_bomb_is_dead_lettered_once_across_restarts() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    let config = spool_config(dir.path(), &downstream.url("/"), "").replace(
        "    url:",
        "    payload:\n      n: '{{ commonLabels.n }}'\n      evil: '{{ commonLabels.evil | reReplaceAll(\"a\", \"x\" * 100000) }}'\n    url:",
    );
    std::fs::write(&path, config).unwrap();
    let group = "{}:{alertname=\"Bomb\"}";
    let notification =
        |n: &str, evil: &str| batch(group, vec![alert("firing", json!({"alertname": "Bomb", "n": n, "evil": evil}))]);
    let bomb = "a".repeat(100_000);

    // Run 1: a fine notification retries (503); the bomb waits behind it in its group, not yet
    // rendered; kill -9 leaves it in the spool.
    let mut relay = RelayProcess::spawn(&path, &[]);
    assert_eq!(post_json(&relay.url("/webhook"), notification("1", "b")).await.status, 200);
    assert_eq!(post_json(&relay.url("/webhook"), notification("2", &bomb)).await.status, 200);
    downstream.wait_for(2).await; // retries of the first under way
    assert!(dead_letters(&relay.url("")).await.is_empty(), "the bomb is not rendered before its turn");
    relay.signal("KILL");
    assert_eq!(relay.wait_exit().await, None, "killed by a signal");

    // Run 2: restored; the first is delivered, the bomb's render fails: one dead letter.
    downstream.always(Answer::status(200));
    let mut relay = RelayProcess::spawn(&path, &[]);
    let letters = wait_dead_letters(&relay, 1).await;
    assert_eq!(letters[0]["reason"], "template", "{letters:?}");
    assert!(letters[0]["last_error"].as_str().unwrap().contains("reReplaceAll"), "{letters:?}");
    assert!(relay.child.try_wait().unwrap().is_none(), "alive:\n{}", relay.logs());
    assert_eq!(get(&relay.url("/-/healthy")).await.status, 200);
    assert_eq!(downstream.delivered().last().unwrap().body["n"], "1");

    // The same bomb posted to a running relay: dead-lettered at once, the relay answers on.
    assert_eq!(post_json(&relay.url("/webhook"), notification("3", &bomb)).await.status, 200);
    wait_dead_letters(&relay, 2).await;
    assert_eq!(get(&relay.url("/-/healthy")).await.status, 200);

    // Run 3: a restart renders neither again: alive, still two dead letters, nothing sent.
    relay.signal("TERM");
    assert_eq!(relay.wait_exit().await, Some(0));
    let sent = downstream.delivered().len();
    let mut relay = RelayProcess::spawn(&path, &[]);
    assert_eq!(get(&relay.url("/-/healthy")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dead_letters(&relay.url("")).await.len(), 2);
    assert_eq!(downstream.delivered().len(), sent, "nothing rendered or sent again");
    assert!(relay.child.try_wait().unwrap().is_none(), "alive:\n{}", relay.logs());
}
