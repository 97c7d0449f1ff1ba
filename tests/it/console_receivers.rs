//! Receivers managed in the console (`--config.console-file`, by default beside the spool),
//! through the receivers API over real sockets: create, replace, toggle, delete, test an unsaved
//! definition, stale edits (412), field errors (400), secrets never echoed, the config file's
//! receivers read-only, a restart keeping console receivers, and a broken hand-edited console
//! file keeping the last good ones running. The same form in a browser is tested in
//! tests/external/console_form.rs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::eventually::eventually;
use crate::support::{Answer, Downstream, Reply, TestRelay, WAIT, alert, batch, call, get};

/// A config with a spool in its folder (so the console file is `console-receivers.yml` there)
/// and one receiver of its own.
fn spooled_config(file_receiver_url: &str) -> String {
    format!(
        "delivery:
  retry: {{initial_backoff: 10ms, max_backoff: 20ms}}
  spool: {{path: spool.redb}}
receivers:
  - name: from-file
    url: {file_receiver_url}
    enabled: true
    conditions: [{{label: team, operator: In, values: [nobody]}}]
"
    )
}

fn etag(reply: &Reply) -> String {
    reply.headers["etag"].to_str().unwrap().to_owned()
}

fn firing(labels: Value) -> String {
    batch("{}:{console=\"1\"}", vec![alert("firing", labels)])
}

fn definition(url: &str, token: &str) -> Value {
    json!({
        "url": url,
        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
        "conditions": [
            {"label": "severity", "operator": "In", "values": ["critical", "warning"]},
            {"label": "team", "operator": "Exists"},
        ],
        "send_resolved": false,
    })
}

/// The whole life of a console receiver: created (201, in the file with mode 0600, delivering
/// with its bearer token, listed with `source: console` and no secret), a stale edit refused
/// (412), replaced keeping the blank secret, disabled (no more deliveries), deleted; each change
/// counted.
#[tokio::test]
async fn create_replace_toggle_and_delete_a_console_receiver() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&spooled_config(&downstream.url("/file"))).await;
    let console_file = relay.dir.path().join("console-receivers.yml");
    let url = relay.url("/api/v1/receivers/team-a");

    let created = call("PUT", &url, Some(definition(&downstream.url("/team-a"), "s3cr3t-t0ken")), &[]).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let answer = created.json();
    assert_eq!(answer["data"]["reload"]["successful"], true, "{answer}");
    assert_eq!(answer["data"]["receiver"]["source"], "console");
    assert!(!created.text().contains("s3cr3t-t0ken"), "{}", created.text());
    let first_etag = etag(&created);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&console_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&console_file).unwrap();
        assert!(text.contains("name: team-a") && text.contains("critical"), "{text}");
    }

    // Routed by its conditions, with its bearer token.
    assert_eq!(
        relay.post("/webhook", firing(json!({"alertname": "A", "severity": "info", "team": "x"}))).await.status,
        200
    );
    assert_eq!(relay.post("/webhook", firing(json!({"alertname": "B", "severity": "critical"}))).await.status, 200);
    assert_eq!(
        relay.post("/webhook", firing(json!({"alertname": "C", "severity": "warning", "team": "db"}))).await.status,
        200
    );
    let received = downstream.wait_for(1).await;
    assert_eq!(received[0].path, "/team-a");
    assert_eq!(received[0].labels("alertname"), ["C"]);
    assert_eq!(received[0].header("authorization"), Some("Bearer s3cr3t-t0ken"));
    downstream.assert_stays_at(1, Duration::from_millis(300)).await;

    // Both sources listed; no secret, URLs redacted.
    let list = get(&relay.url("/api/v1/receivers")).await;
    assert_eq!(list.status, 200);
    assert!(!list.text().contains("s3cr3t-t0ken") && !list.text().contains("/team-a"), "{}", list.text());
    let data = list.json()["data"].clone();
    assert_eq!(data["editable"], true);
    let sources: Vec<(String, String)> = data["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["source"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(sources, [("from-file".into(), "file".into()), ("team-a".into(), "console".into())]);
    let item = &data["receivers"][1];
    assert_eq!(item["etag"], first_etag.as_str());
    assert_eq!(item["secrets_set"], json!(["http_config.authorization.credentials"]));
    assert_eq!(item["definition"]["http_config"]["authorization"]["credentials"], "");
    let status = get(&relay.url("/api/v1/status")).await;
    assert!(!status.text().contains("s3cr3t-t0ken"), "{}", status.text());
    let status = status.json();
    let team_a =
        status["data"]["receivers"].as_array().unwrap().iter().find(|r| r["name"] == "team-a").unwrap().clone();
    assert_eq!(team_a["source"], "console");
    assert_eq!(team_a["url"], format!("{}***", downstream.url("/")));
    assert!(status["data"]["console"]["hash"].is_string() && status["data"]["console"]["last_change"].is_number());

    // Replace, as the form does: what it was shown, secrets blank, one condition changed.
    let mut edited = item["definition"].clone();
    edited["conditions"][0]["values"] = json!(["critical"]);
    let stale = call("PUT", &url, Some(edited.clone()), &[("if-match", "\"0000000000000000\"")]).await;
    assert_eq!(stale.status, 412, "{}", stale.text());
    let replaced = call("PUT", &url, Some(edited), &[("if-match", &first_etag)]).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    assert_ne!(etag(&replaced), first_etag);
    // The first etag is stale now: a second browser still holding it cannot overwrite.
    let late = call("PUT", &url, Some(definition(&downstream.url("/other"), "x")), &[("if-match", &first_etag)]).await;
    assert_eq!(late.status, 412);
    assert_eq!(
        relay.post("/webhook", firing(json!({"alertname": "D", "severity": "critical", "team": "db"}))).await.status,
        200
    );
    let received = downstream.wait_for(2).await;
    assert_eq!(received[1].labels("alertname"), ["D"]);
    assert_eq!(received[1].header("authorization"), Some("Bearer s3cr3t-t0ken"), "a blank secret keeps the stored one");

    // Pointing it at another host: the stored token is not sent there unless typed again.
    let current = etag(&replaced);
    let mut moved = replaced.json()["data"]["receiver"]["definition"].clone();
    moved["url"] = json!("http://localhost:1/elsewhere");
    let refused = call("PUT", &url, Some(moved), &[("if-match", &current)]).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["errors"][0]["field"], "http_config.authorization.credentials");
    // Regression (issue 21): turning follow_redirects on is the same: a redirect could take the
    // stored token where the downstream points it.
    let mut following = replaced.json()["data"]["receiver"]["definition"].clone();
    following["http_config"]["follow_redirects"] = json!(true);
    let refused = call("PUT", &url, Some(following.clone()), &[("if-match", &current)]).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["errors"][0]["field"], "http_config.authorization.credentials");
    assert!(refused.text().contains("follow_redirects"), "{}", refused.text());
    // Testing that edit unsaved is refused alike: the stored token is not lent to it either.
    let mut unsaved = following;
    unsaved["name"] = json!("team-a");
    let refused = relay.post("/api/v1/receiver-test", unsaved.to_string()).await;
    assert_eq!(refused.status, 400, "{}", refused.text());

    // Disable: kept in the file, delivers nothing.
    let off = call("POST", &format!("{url}/enabled"), Some(json!({"enabled": false})), &[("if-match", &current)]).await;
    assert_eq!(off.status, 200, "{}", off.text());
    assert_eq!(off.json()["data"]["receiver"]["enabled"], false);
    assert!(std::fs::read_to_string(&console_file).unwrap().contains("enabled: false"));
    assert_eq!(
        relay.post("/webhook", firing(json!({"alertname": "E", "severity": "critical", "team": "db"}))).await.status,
        200
    );
    downstream.assert_stays_at(2, Duration::from_millis(300)).await;

    let deleted = call("DELETE", &url, None, &[("if-match", &etag(&off))]).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(get(&url).await.status, 404);
    let status = get(&relay.url("/api/v1/status")).await.json();
    assert!(status["data"]["receivers"].as_array().unwrap().iter().all(|r| r["name"] != "team-a"));

    // Counted (the metrics are the test process's: other tests add to them too).
    for action in ["create", "replace", "disable", "delete"] {
        // A global receiver's changes: tenant "".
        let series = format!("amrelay_config_changes_total{{source=\"console\",action=\"{action}\",tenant=\"\"}}");
        assert!(relay.metric(&series).await.is_some_and(|n| n >= 1.0), "{series}");
    }
}

/// A definition with mistakes is answered 400 with the fields check-config would name, and
/// nothing reaches the file.
#[tokio::test]
async fn mistakes_are_answered_field_by_field_and_change_nothing() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&spooled_config(&downstream.url("/file"))).await;
    let bad = json!({
        "url": "ftp://example.com/x",
        "conditions": [
            {"label": "severity", "operator": "In", "values": ["critical"]},
            {"label": "severity", "operator": "In", "values": []},
        ],
        "matchers": ["{severity=\"unclosed"],
    });
    let reply = call("PUT", &relay.url("/api/v1/receivers/broken"), Some(bad), &[]).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let errors = reply.json()["errors"].clone();
    let fields: Vec<&str> = errors.as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    for field in ["url", "conditions[1].values", "matchers[0]"] {
        assert!(fields.contains(&field), "{field} missing in {errors}");
    }
    assert!(errors.as_array().unwrap().iter().all(|e| !e["message"].as_str().unwrap().is_empty()));
    // A type mistake names its key.
    let reply = call(
        "PUT",
        &relay.url("/api/v1/receivers/broken"),
        Some(json!({"url": "http://127.0.0.1:1/", "max_alerts": "many"})),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["errors"][0]["field"], "max_alerts", "{}", reply.text());
    assert!(!relay.dir.path().join("console-receivers.yml").exists());
    // A name in the body must be the path's.
    let reply =
        call("PUT", &relay.url("/api/v1/receivers/a"), Some(json!({"name": "b", "url": "http://127.0.0.1:1/"})), &[])
            .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["errors"][0]["field"], "name");
}

/// The config file's receivers stay read-only: changing one is a 409 naming its file and line.
#[tokio::test]
async fn receivers_of_the_config_file_are_read_only() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&spooled_config(&downstream.url("/file"))).await;
    let url = relay.url("/api/v1/receivers/from-file");
    let put = call("PUT", &url, Some(json!({"url": "http://127.0.0.1:1/"})), &[]).await;
    assert_eq!(put.status, 409, "{}", put.text());
    assert!(put.text().contains("amrelay.yml") && put.text().contains("line 7"), "{}", put.text());
    let toggle = call("POST", &format!("{url}/enabled"), Some(json!({"enabled": false})), &[]).await;
    assert_eq!(toggle.status, 409);
    assert_eq!(call("DELETE", &url, None, &[]).await.status, 409);
    let one = get(&url).await.json();
    assert_eq!(one["data"]["source"], "file");
    assert_eq!(one["data"]["enabled_line"]["line"], 7);
    // Creating a console receiver with a file receiver's name is the same refusal.
    assert!(std::fs::read_to_string(relay.dir.path().join("amrelay.yml")).unwrap().contains("enabled: true"));
}

/// "Send Test Message" before OK: the unsaved definition's URL and bearer token are used, and a
/// second test to the same receiver while one is in flight is answered 429.
#[tokio::test]
async fn a_test_message_goes_through_an_unsaved_definition_one_at_a_time() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&spooled_config(&downstream.url("/file"))).await;
    let mut unsaved = definition(&downstream.url("/draft"), "dr4ft-t0ken");
    unsaved["name"] = json!("draft");
    let reply = relay.post("/api/v1/receiver-test", unsaved.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["data"]["delivered"], true);
    let received = downstream.wait_for(1).await;
    assert_eq!(received[0].path, "/draft");
    assert_eq!(received[0].header("authorization"), Some("Bearer dr4ft-t0ken"));
    assert_eq!(received[0].labels("amrelay_test"), ["true"]);
    // Nothing was saved.
    assert!(!relay.dir.path().join("console-receivers.yml").exists());

    downstream.script([Answer::status(200).delayed(Duration::from_millis(800))]);
    let (first, second) = tokio::join!(relay.post("/api/v1/receiver-test", unsaved.to_string()), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        relay.post("/api/v1/receiver-test", unsaved.to_string()).await
    });
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(second.status, 429, "{}", second.text());
    assert!(second.text().contains("already in flight"), "{}", second.text());

    // The same for the saved receivers' test endpoint.
    downstream.script([Answer::status(200).delayed(Duration::from_millis(800))]);
    let test_url = relay.url("/api/v1/receivers/from-file/test");
    let (first, second) = tokio::join!(crate::support::post_json(&test_url, ""), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        crate::support::post_json(&test_url, "").await
    });
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (200, 429));

    // A mistake in the unsaved definition is the same 400 as a PUT's.
    let reply = relay.post("/api/v1/receiver-test", json!({"name": "draft", "url": "nope"}).to_string()).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["errors"][0]["field"], "url");
}

/// Regression (issue 21): tests were bounded per receiver only, so any number of names made
/// any number of outbound requests at once. At most 4 are in flight in all, across
/// `receiver-test` and the receivers' `/test`; past it, 429 saying so.
#[tokio::test]
async fn test_messages_in_flight_are_capped_across_all_receivers() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&spooled_config(&downstream.url("/file"))).await;
    let slow = Answer::status(200).delayed(Duration::from_millis(1500));
    downstream.script(std::iter::repeat_n(slow, 4));
    let unsaved = |name: &str| {
        let mut definition = definition(&downstream.url(&format!("/{name}")), "c4p-t0ken");
        definition["name"] = json!(name);
        definition
    };
    let (first, second, third, fourth, fifth) = tokio::join!(
        relay.post("/api/v1/receiver-test", unsaved("cap-1").to_string()),
        relay.post("/api/v1/receiver-test", unsaved("cap-2").to_string()),
        relay.post("/api/v1/receiver-test", unsaved("cap-3").to_string()),
        relay.post("/api/v1/receivers/from-file/test", ""),
        async {
            // Once all four are at the downstream, a fifth (another receiver) is refused.
            downstream.wait_for(4).await;
            let unsaved = relay.post("/api/v1/receiver-test", unsaved("cap-5").to_string()).await;
            let saved = relay.post("/api/v1/receivers/from-file/test", "").await;
            (unsaved, saved)
        },
    );
    for reply in [&first, &second, &third, &fourth] {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let (refused, saved) = fifth;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(refused.text().contains("4 test messages are already in flight"), "{}", refused.text());
    assert_eq!(saved.status, 429, "{}", saved.text());
    // The slots are given back: the next test goes through.
    let reply = relay.post("/api/v1/receiver-test", unsaved("cap-5").to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(downstream.received().len(), 5);
}

/// Console receivers are in a file: a restart runs them again.
#[tokio::test]
async fn a_restart_keeps_console_receivers() {
    let downstream = Downstream::start().await;
    let yaml = spooled_config(&downstream.url("/file"));
    let mut relay = TestRelay::start(&yaml).await;
    let created =
        call("PUT", &relay.url("/api/v1/receivers/kept"), Some(definition(&downstream.url("/kept"), "t")), &[]).await;
    assert_eq!(created.status, 201);
    relay.relay.take().unwrap().shutdown().await;
    let TestRelay { dir, .. } = relay;
    let relay = TestRelay::start_in(dir, &yaml).await;
    let status = get(&relay.url("/api/v1/status")).await.json();
    let kept = status["data"]["receivers"].as_array().unwrap().iter().find(|r| r["name"] == "kept").cloned();
    assert_eq!(kept.map(|r| r["source"].clone()), Some(json!("console")));
    assert_eq!(
        relay.post("/webhook", firing(json!({"alertname": "R", "severity": "critical", "team": "t"}))).await.status,
        200
    );
    assert_eq!(downstream.wait_for(1).await[0].path, "/kept");
}

/// A hand edit that breaks the console file: the last good receivers keep running, the error is
/// in the status, and an edit through the API is refused rather than overwriting the file.
#[tokio::test]
async fn a_broken_hand_edited_console_file_keeps_the_last_good_receivers() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&spooled_config(&downstream.url("/file"))).await;
    let created =
        call("PUT", &relay.url("/api/v1/receivers/good"), Some(definition(&downstream.url("/good"), "t")), &[]).await;
    assert_eq!(created.status, 201);
    let console_file = relay.dir.path().join("console-receivers.yml");
    std::fs::write(&console_file, "receivers:\n  - name: good\n    url: http://x/\n    colour: red\n").unwrap();
    let reload = relay.post("/-/reload", "").await;
    assert_eq!(reload.status, 500, "{}", reload.text());
    let status = get(&relay.url("/api/v1/status")).await.json();
    let error = status["data"]["console"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("colour") && error.contains("last good"), "{status}");
    assert_eq!(status["data"]["config"]["last_reload_successful"], false);
    assert_eq!(
        relay.post("/webhook", firing(json!({"alertname": "K", "severity": "critical", "team": "t"}))).await.status,
        200
    );
    assert_eq!(downstream.wait_for(1).await[0].path, "/good");
    // Broken YAML: edits wait for a fix by hand.
    std::fs::write(&console_file, "receivers: [\n").unwrap();
    let put =
        call("PUT", &relay.url("/api/v1/receivers/other"), Some(definition(&downstream.url("/o"), "t")), &[]).await;
    assert_eq!(put.status, 409, "{}", put.text());
    assert_eq!(std::fs::read_to_string(&console_file).unwrap(), "receivers: [\n");
}

/// A hand edit on disk after the console loaded a receiver: a PUT carrying the `ETag` read before
/// it answers 412 saying the receiver changed, writes nothing (the hand-edited file stays byte
/// for byte, and its receivers are the ones running); once reloaded, the next edit keeps what was
/// written by hand to the other receivers.
#[tokio::test]
async fn a_hand_edit_on_disk_is_not_overwritten_by_an_edit_loaded_before_it() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&spooled_config(&downstream.url("/file"))).await;
    let console_file = relay.dir.path().join("console-receivers.yml");
    let url = relay.url("/api/v1/receivers/team-a");
    let created = call("PUT", &url, Some(definition(&downstream.url("/team-a"), "t0ken")), &[]).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let loaded = etag(&created);

    // By hand, with an editor: team-a now goes elsewhere, and a second receiver is added.
    let by_hand = format!(
        "# edited by hand\nreceivers:\n  - name: team-a\n    url: {}\n  - name: hand-made\n    url: {}\n",
        downstream.url("/by-hand"),
        downstream.url("/hand-made")
    );
    std::fs::write(&console_file, &by_hand).unwrap();
    let reload = relay.post("/-/reload", "").await;
    assert_eq!(reload.status, 200, "{}", reload.text());

    // The form still holds what it loaded before the hand edit.
    let stale =
        call("PUT", &url, Some(definition(&downstream.url("/from-form"), "t0ken")), &[("if-match", &loaded)]).await;
    assert_eq!(stale.status, 412, "{}", stale.text());
    let message = stale.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains("team-a") && message.contains("changed") && message.contains("reload"),
        "the answer says what happened and what to do: {message}"
    );
    assert_eq!(std::fs::read_to_string(&console_file).unwrap(), by_hand, "nothing written over the hand edit");
    // What runs is the hand edit.
    assert_eq!(relay.post("/webhook", firing(json!({"alertname": "H", "severity": "critical"}))).await.status, 200);
    let mut paths: Vec<String> = downstream.wait_for(2).await.into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(paths, vec!["/by-hand", "/hand-made"]);
    downstream.assert_stays_at(2, Duration::from_millis(300)).await;

    // Reloaded in the form (a fresh ETag), the edit goes through and keeps the hand-made receiver.
    let current = call("GET", &url, None, &[]).await;
    assert_eq!(current.status, 200, "{}", current.text());
    let fresh = etag(&current);
    assert_ne!(fresh, loaded, "the hand edit changed the receiver's ETag");
    let saved =
        call("PUT", &url, Some(definition(&downstream.url("/from-form"), "t0ken")), &[("if-match", &fresh)]).await;
    assert_eq!(saved.status, 200, "{}", saved.text());
    let text = std::fs::read_to_string(&console_file).unwrap();
    assert!(text.contains("name: hand-made") && text.contains("/hand-made"), "{text}");
    assert!(text.contains("/from-form") && !text.contains("/by-hand"), "{text}");
    let listed = get(&relay.url("/api/v1/receivers")).await.json();
    let names: Vec<&str> =
        listed["data"]["receivers"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(names.contains(&"hand-made") && names.contains(&"team-a"), "{listed}");
}

/// Without a spool and without `--config.console-file`, editing is off and says why.
#[tokio::test]
async fn without_a_spool_editing_is_off_and_says_why() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&format!("receivers:\n  - name: only\n    url: {}\n", downstream.url("/"))).await;
    let list = get(&relay.url("/api/v1/receivers")).await.json();
    assert_eq!(list["data"]["editable"], false);
    assert!(list["data"]["editing_off_reason"].as_str().unwrap().contains("--config.console-file"), "{list}");
    let put = call("PUT", &relay.url("/api/v1/receivers/x"), Some(json!({"url": "http://127.0.0.1:1/"})), &[]).await;
    assert_eq!(put.status, 409);
    assert!(put.text().contains("editing in the console is off"), "{}", put.text());
}

/// A page on another site cannot make a logged-in browser change receivers.
#[tokio::test]
async fn cross_site_edits_are_refused() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&spooled_config(&downstream.url("/file"))).await;
    let reply = call(
        "PUT",
        &relay.url("/api/v1/receivers/evil"),
        Some(json!({"url": "http://127.0.0.1:1/"})),
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(reply.status, 403);
    let reply = call(
        "POST",
        &relay.url("/api/v1/receiver-test"),
        Some(json!({"name": "x", "url": "http://127.0.0.1:1/"})),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(reply.status, 403);
    assert!(!relay.dir.path().join("console-receivers.yml").exists());
}

/// As a process: `--config.console-file` turns editing on without a spool (creating its
/// folder); each change is logged once with who made it, what and which fields, never a secret
/// (every log line is checked when the process ends); `check-config` validates both files,
/// shows URLs redacted, and fails on a name defined in both; `route-test` routes through both.
#[tokio::test]
async fn the_flag_the_audit_log_and_check_config_both_files() {
    use crate::credentials::{basic, bcrypt_hash};
    use crate::process::RelayProcess;

    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("amrelay.yml");
    std::fs::write(
        &config,
        format!(
            "server:\n  basic_auth_users:\n    alice: \"{}\"\nreceivers:\n  - name: from-file\n    url: {}\n",
            bcrypt_hash("wonderland"),
            downstream.url("/file")
        ),
    )
    .unwrap();
    let console = dir.path().join("console/receivers.yml");
    let flag = format!("--config.console-file={}", console.display());
    let relay = RelayProcess::spawn(&config, &[&flag]);
    let alice = basic("alice", "wonderland");
    let hook = downstream.url("/hooks/T0/custom-header-ap1-key");
    let reply = call(
        "PUT",
        &relay.url("/api/v1/receivers/team-a"),
        Some(definition(&hook, "s3cret-token")),
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert!(!reply.text().contains("custom-header-ap1-key"), "{}", reply.text());
    let audit = eventually("the console's audit line", WAIT, async || {
        let logs = relay.logs();
        let lines: Vec<String> = logs.lines().filter(|l| l.contains("console change")).map(str::to_owned).collect();
        if lines.is_empty() { Err(format!("no audit line in\n{logs}")) } else { Ok(lines) }
    })
    .await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    for part in
        ["user=alice", "action=create", "receiver=team-a", "fields=conditions,http_config,name,send_resolved,url"]
    {
        assert!(audit[0].contains(part), "{part} in {}", audit[0]);
    }

    let (ok, stdout) = crate::process::check_config_with(&config, &[], &[&flag]);
    assert!(ok, "{stdout}");
    assert_eq!(stdout.matches("SUCCESS").count(), 2, "{stdout}");
    assert!(stdout.contains("1 console receivers") && stdout.contains("/hooks/***"), "{stdout}");
    assert!(!stdout.contains("custom-header-ap1-key"), "{stdout}");

    // route-test routes through the console file's receivers too.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"))
        .arg(format!("--config.file={}", config.display()))
        .args([&flag, "route-test", "--alert", "alertname=A,severity=critical,team=db", "--expect", "from-file,team-a"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));

    std::fs::write(&console, format!("receivers:\n  - name: from-file\n    url: {hook}\n")).unwrap();
    let (ok, stdout) = crate::process::check_config_with(&config, &[], &[&flag]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("receivers[0].name") && stdout.contains("also defined in"), "{stdout}");
}

/// `kill -9` while the console writes its file, at several moments: the file is always whole
/// (one of the definitions written, never a mix or a truncation), the relay starts again with
/// it, and the temporary files of interrupted writes are cleared.
#[tokio::test]
async fn the_console_file_survives_kill_9_mid_write() {
    use crate::process::RelayProcess;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("amrelay.yml");
    std::fs::write(&config, "receivers: []\n").unwrap();
    let console = dir.path().join("console-receivers.yml");
    let flag = format!("--config.console-file={}", console.display());
    for round in 0..4u64 {
        let relay = RelayProcess::spawn(&config, &[&flag]);
        let url = relay.url("/api/v1/receivers/churn");
        let writer = tokio::spawn(async move {
            for n in 0.. {
                let mut edit = definition(&format!("http://127.0.0.1:1/hook-{n}"), "t");
                edit["max_alerts"] = json!(n);
                let _ = tokio::time::timeout(Duration::from_secs(2), call("PUT", &url, Some(edit), &[])).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(60 + 45 * round)).await;
        let mut relay = relay;
        relay.child.kill().unwrap();
        let _ = relay.child.wait();
        writer.abort();
        drop(relay);
        let text = std::fs::read_to_string(&console).unwrap_or_default();
        let (ok, stdout) = crate::process::check_config_with(&config, &[], &[&flag]);
        assert!(ok, "round {round}: {stdout}\n{text}");
    }
    // Started again: the last complete file runs, and no temporary file is left.
    let relay = RelayProcess::spawn(&config, &[&flag]);
    let list = get(&relay.url("/api/v1/receivers")).await.json();
    assert_eq!(list["data"]["receivers"][0]["name"], "churn", "{list}");
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Regression: `--config.console-file ''` (empty, as a shell or a Kubernetes `args:` list passes
/// it) was refused by the flag parser, so with a spool editing could not be turned off.
#[tokio::test]
async fn an_empty_console_file_flag_turns_editing_off_in_the_real_binary() {
    use crate::process::RelayProcess;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("amrelay.yml");
    std::fs::write(&config, spooled_config("http://127.0.0.1:1/file")).unwrap();
    // Without the flag the spool's folder holds an editable console file: the control.
    let relay = RelayProcess::spawn(&config, &[]);
    let list = get(&relay.url("/api/v1/receivers")).await.json();
    assert_eq!(list["data"]["editable"], true, "{list}");
    drop(relay);
    // The empty value as one argv entry and as two; and the quotes kept by an `args:` item.
    for args in [&["--config.console-file="][..], &["--config.console-file", ""], &["--config.console-file=''"]] {
        let relay = RelayProcess::spawn(&config, args);
        let list = get(&relay.url("/api/v1/receivers")).await.json();
        assert_eq!(list["data"]["editable"], false, "{args:?}: {list}");
        assert_eq!(list["data"]["console_file"], Value::Null, "{args:?}: {list}");
        let reason = list["data"]["editing_off_reason"].as_str().unwrap_or_default();
        assert!(reason.contains("turned off"), "{args:?}: {list}");
        let reply =
            call("PUT", &relay.url("/api/v1/receivers/team-a"), Some(definition("http://127.0.0.1:1/a", "t")), &[])
                .await;
        assert_eq!(reply.status, 409, "{args:?}: {}", reply.text());
        let (ok, stdout) = crate::process::check_config_with(&config, &[], args);
        assert!(ok && stdout.matches("SUCCESS").count() == 1, "{args:?}: {stdout}");
    }
    assert!(!dir.path().join("''").exists());
}
