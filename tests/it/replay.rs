//! Dead-letter replay goes where the dead letter was meant to go (issue 21): a receiver re-created
//! under the same name with another URL does not silently get the old receiver's dead letters.

use std::time::Duration;

use crate::process::RelayProcess;
use crate::support::eventually::{ensure, eventually};
use crate::support::{Answer, Downstream, TestRelay, WAIT, get, numbered, post_json};

/// A receiver `moved` sending to `url`, with a spool file in `spool` (or memory mode).
fn config(url: &str, spool: Option<&std::path::Path>) -> String {
    let spool = spool.map_or(String::new(), |dir| format!("  spool: {{path: {}/spool.redb}}\n", dir.display()));
    format!(
        "delivery:
  retry: {{max_attempts: 2, initial_backoff: 20ms, max_backoff: 50ms}}
{spool}receivers:
  - name: moved
    url: {url}
"
    )
}

/// Dead-letters one notification of `moved` (its downstream refuses with 422), at the relay
/// whose base URL is `relay`; waits until its dead-letter listing shows it.
async fn dead_letter_one(relay: &str) {
    assert_eq!(post_json(&format!("{relay}/webhook"), numbered("Moved", 1)).await.status, 200);
    eventually("the dead letter to be listed", WAIT, async || {
        let listed = get(&format!("{relay}/api/v1/deadletters")).await.json();
        ensure(!listed["data"].as_array().unwrap().is_empty(), || listed.to_string())
    })
    .await;
}

/// Regression (issue 21): replay sent a dead letter to whatever receiver had its old name. Now,
/// after the receiver was re-created with another URL, a replay is refused with 409 naming the
/// change (without either URL), nothing is sent, and `force=true` sends it to the new URL; in
/// memory mode and with a spool file alike.
#[tokio::test]
async fn a_replay_to_a_receiver_that_now_sends_elsewhere_needs_force() {
    for spooled in [false, true] {
        let old = Downstream::start().await;
        old.always(Answer::status(422));
        let new = Downstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let spool = spooled.then(|| dir.path().to_owned());
        let old_url = old.url("/old-secret-path");
        let relay = TestRelay::start_in(dir, &config(&old_url, spool.as_deref())).await;
        dead_letter_one(&relay.url("")).await;

        let new_url = new.url("/new-secret-path");
        std::fs::write(relay.dir.path().join("amrelay.yml"), config(&new_url, spool.as_deref())).unwrap();
        assert_eq!(post_json(&relay.url("/-/reload"), "").await.status, 200);

        let refused = post_json(&relay.url("/api/v1/deadletters/replay?receiver=moved"), "").await;
        assert_eq!(refused.status, 409, "spooled={spooled}: {}", refused.text());
        let words = refused.text();
        assert!(words.contains("\\\"moved\\\"") && words.contains("force=true"), "{words}");
        assert!(!words.contains("secret-path") && !words.contains("127.0.0.1"), "no URL in {words}");
        let listed = get(&relay.url("/api/v1/deadletters")).await.json();
        assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed["data"][0]["destination"], "changed", "the listing says so too: {listed}");
        new.assert_stays_at(0, Duration::from_millis(200)).await;

        let forced = post_json(&relay.url("/api/v1/deadletters/replay?receiver=moved&force=true"), "").await;
        assert_eq!(forced.status, 200, "{}", forced.text());
        assert_eq!(forced.json()["data"]["replayed"], 1, "{}", forced.text());
        new.wait_for(1).await;
        assert_eq!(old.received().len(), 1, "the old destination got only the first attempt");
        let bad = post_json(&relay.url("/api/v1/deadletters/replay?force=yes"), "").await;
        assert_eq!(bad.status, 400, "{}", bad.text());
    }
}

/// The same URL, across a restart (the identity's key is kept in the spool file): replay works
/// without `force`.
#[tokio::test]
async fn a_replay_to_the_same_destination_after_a_restart_needs_no_force() {
    let downstream = Downstream::start().await;
    downstream.always(Answer::status(422));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    std::fs::write(&path, config(&downstream.url("/same"), Some(dir.path()))).unwrap();
    let mut relay = RelayProcess::spawn(&path, &[]);
    dead_letter_one(&relay.url("")).await;
    relay.signal("TERM");
    assert_eq!(relay.wait_exit().await, Some(0));

    downstream.always(Answer::status(200));
    let relay = RelayProcess::spawn(&path, &[]);
    let listed = get(&relay.url("/api/v1/deadletters")).await.json();
    assert_eq!(listed["data"][0]["destination"], "same", "{listed}");
    let replay = post_json(&relay.url("/api/v1/deadletters/replay?receiver=moved"), "").await;
    assert_eq!(replay.status, 200, "{}", replay.text());
    assert_eq!(replay.json()["data"]["replayed"], 1, "{}", replay.text());
    let received = downstream.wait_for(2).await;
    assert_eq!(received[1].header("idempotency-key"), received[0].header("idempotency-key"));
}
