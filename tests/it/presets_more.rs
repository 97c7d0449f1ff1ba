//! The presets issue 23 added — mattermost, rocketchat, webex, matrix, pushover, ntfy, gotify,
//! victorops — end to end over real sockets, against a fake of each vendor's documented API
//! ([`crate::vendor_apis`]): the body's fields and limits, the credentials, one refusal of each
//! that is dead-lettered (never counted delivered), Matrix's transaction ids and threads, and
//! Splunk On-Call's stable entity id.

use serde_json::{Value, json};

use crate::support::{TestRelay, alert, batch, get, post_json};
use crate::vendor_apis::{Seen, Vendors};

const EXAMPLE: &str = include_str!("../fixtures/am-payload-example.json");
const MATRIX_ROOM: &str = "/matrix/_matrix/client/v3/rooms/!r00m:example.org/send/m.room.message";

/// The secrets each preset is given, by file.
const SECRETS: [(&str, &str); 6] = [
    ("webex-token", "webex-b0t-t0ken-0123456789"),
    ("matrix-token", "syt_matrix_access_t0ken_0123"),
    ("pushover-token", "azGDORePK8gMaC0QOYAMyEEuzJnyUi"),
    ("pushover-user", "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"),
    ("ntfy-token", "tk_ntfyaccesst0ken0123456789"),
    ("gotify-token", "AgotifyAppT0ken"),
];

/// One receiver per new preset, named `{tag}-{preset}` (metrics are per process: each test has
/// its own names), each at its own path of `fake`.
fn config(tag: &str, fake: &Vendors, dir: &std::path::Path, retry: &str, thread: Option<&str>) -> String {
    for (file, value) in SECRETS {
        std::fs::write(dir.join(file), format!("{value}\n")).unwrap();
        std::fs::set_permissions(dir.join(file), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let receivers = [
        ("mattermost", "/mattermost/hooks/xi3ebpu", "{channel: town-square, username: amrelay}"),
        ("rocketchat", "/rocketchat/hooks/6a1b/Zk9x", "{channel: '#alerts', alias: amrelay}"),
        ("webex", "/webex/v1/messages", "{room_id: Y2lzY29zcGFyazovL3VzL1JPT00, token_file: webex-token}"),
        ("matrix", MATRIX_ROOM, "{access_token_file: matrix-token, msgtype: m.notice}"),
        (
            "pushover",
            "/pushover/1/messages.json",
            "{token_file: pushover-token, user_key_file: pushover-user, priority: 2}",
        ),
        ("ntfy", "/ntfy/", "{topic: k8s-alerts, token_file: ntfy-token}"),
        ("gotify", "/gotify/message", "{token_file: gotify-token}"),
        ("victorops", "/victorops/integrations/generic/20131114/alert/0a1b2c3d/sre", "{monitoring_tool: prometheus}"),
    ];
    let mut yaml =
        format!("delivery:\n  retry: {retry}\n  spool: {{path: {}/spool.redb}}\nreceivers:\n", dir.display());
    for (preset, path, options) in receivers {
        yaml += &format!(
            "  - name: {tag}-{preset}\n    url: \"{}\"\n    preset: {preset}\n    preset_options: {options}\n",
            fake.url(path)
        );
        if let (Some(mode), "matrix") = (thread, preset) {
            yaml += &format!("    thread: {{mode: {mode}}}\n");
        }
    }
    yaml
}

async fn start(tag: &str, fake: &Vendors, retry: &str, thread: Option<&str>) -> TestRelay {
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(tag, fake, dir.path(), retry, thread);
    TestRelay::start_in(dir, &yaml).await
}

const ONCE: &str = "{max_attempts: 1}";
const FAST: &str = "{max_attempts: 4, initial_backoff: 20ms, max_backoff: 50ms}";

fn text<'v>(value: &'v Value, what: &str) -> &'v str {
    value.as_str().unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

fn bearer(seen: &Seen, file: &str) {
    let secret = SECRETS.iter().find(|(f, _)| *f == file).unwrap().1;
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {secret}").as_str()), "{}", seen.preset());
}

/// Each vendor's documented request, checked as its API would.
fn validate(seen: &Seen) {
    let body = &seen.body;
    assert!(body.is_object(), "{}: not JSON: {}", seen.path, String::from_utf8_lossy(&seen.raw));
    match seen.preset() {
        // https://developers.mattermost.com/integrate/reference/message-attachments/
        "mattermost" => {
            let attachment = &body["attachments"][0];
            assert!(matches!(text(&attachment["color"], "color"), "danger" | "good"));
            assert!(
                !text(&attachment["title"], "title").is_empty()
                    && !text(&attachment["fallback"], "fallback").is_empty()
            );
            assert!(text(&attachment["text"], "text").chars().count() <= 4000);
            assert_eq!(body["channel"], "town-square");
            assert!(body.get("blocks").is_none(), "Mattermost ignores Block Kit");
        }
        "rocketchat" => {
            assert!(!text(&body["text"], "text").is_empty());
            let attachment = &body["attachments"][0];
            assert!(text(&attachment["color"], "color").starts_with('#'));
            assert!(text(&attachment["title"], "title").chars().count() <= 1024);
            assert!(text(&attachment["text"], "text").chars().count() <= 5000);
            assert_eq!(body["alias"], "amrelay");
        }
        // https://developer.webex.com/docs/api/v1/messages/create-a-message
        "webex" => {
            assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/webex/v1/messages"));
            bearer(seen, "webex-token");
            assert_eq!(body["roomId"], "Y2lzY29zcGFyazovL3VzL1JPT00");
            assert!(text(&body["markdown"], "markdown").len() <= 7439);
        }
        "matrix" => {
            assert_eq!(seen.method, "PUT");
            let txn = seen.path.strip_prefix(&format!("{MATRIX_ROOM}/")).expect("…/send/m.room.message/{txnId}");
            assert!(!txn.is_empty() && !txn.contains('/'), "{txn}");
            bearer(seen, "matrix-token");
            assert_eq!(body["msgtype"], "m.notice");
            assert_eq!(body["m.mentions"], json!({}), "no mention is read from the text");
            assert!(seen.raw.len() <= 65_536 / 2, "{}", seen.raw.len());
        }
        // https://pushover.net/api#limits
        "pushover" => {
            assert_eq!(body["token"], SECRETS[2].1);
            assert_eq!(body["user"], SECRETS[3].1);
            assert!(text(&body["title"], "title").chars().count() <= 250);
            let message = text(&body["message"], "message");
            assert!(!message.is_empty() && message.chars().count() <= 1024);
            if body["priority"] == 2 {
                assert!(body["retry"].as_u64().unwrap() >= 30 && body["expire"].as_u64().unwrap() <= 10_800);
            }
            assert!(body["url"].as_str().is_none_or(|u| u.chars().count() <= 512));
        }
        // https://docs.ntfy.sh/publish/#publish-as-json
        "ntfy" => {
            assert_eq!(seen.path, "/ntfy/");
            bearer(seen, "ntfy-token");
            assert_eq!(body["topic"], "k8s-alerts");
            assert!(text(&body["message"], "message").len() <= 4096);
            assert!((1..=5).contains(&body["priority"].as_u64().unwrap()));
        }
        "gotify" => {
            bearer(seen, "gotify-token");
            assert!(!text(&body["title"], "title").is_empty() && !text(&body["message"], "message").is_empty());
            assert!(body["priority"].as_u64().unwrap() <= 10);
        }
        // https://help.victorops.com/knowledge-base/rest-endpoint-integration-guide/
        "victorops" => {
            assert!(matches!(
                text(&body["message_type"], "message_type"),
                "CRITICAL" | "WARNING" | "INFO" | "RECOVERY"
            ));
            assert_eq!(text(&body["entity_id"], "entity_id").len(), 64);
            assert!(text(&body["state_message"], "state_message").chars().count() <= 20_480);
            assert_eq!(body["monitoring_tool"], "prometheus");
        }
        other => panic!("no validator for {other}"),
    }
}

fn hostile_batch(n: usize) -> String {
    let mut value = String::from("\"q\" \\b\\ new\nline {{ 7*7 }} <b>x</b> @room @channel @here ");
    while value.len() < 2_000 {
        value.push_str("0123456789");
    }
    let alerts = (0..n)
        .map(|i| {
            let mut a =
                alert("firing", json!({"alertname": format!("Hostile{i}"), "severity": "critical", "x": value}));
            a["annotations"] = json!({"summary": value});
            a
        })
        .collect();
    batch("{}:{alertname=\"Hostile\"}", alerts)
}

/// Alertmanager's own payload, and 300 hostile alerts: each destination gets its documented
/// shape and credentials, within its limits, cut with "… and N more".
#[tokio::test]
async fn each_new_preset_sends_its_vendors_shape_within_its_limits() {
    let fake = Vendors::start().await;
    let relay = start("shape", &fake, ONCE, None).await;
    assert_eq!(relay.post("/webhook", EXAMPLE).await.status, 200);
    for seen in fake.wait(8).await {
        validate(&seen);
    }
    assert_eq!(relay.post("/webhook", hostile_batch(300)).await.status, 200);
    let seen = fake.wait(16).await;
    for seen in &seen[8..] {
        validate(seen);
        let raw = String::from_utf8_lossy(&seen.raw);
        assert!(raw.contains("{{ 7*7 }}"), "{}: a label was rendered as a template", seen.path);
        assert!(raw.contains("more"), "{}: a big batch ends with '… and N more'", seen.path);
    }
    for preset in ["mattermost", "rocketchat", "webex", "matrix", "pushover", "ntfy", "gotify", "victorops"] {
        relay.wait_metric(&format!(r#"amrelay_notifications_delivered_total{{receiver="shape-{preset}"}}"#), 2.0).await;
    }
}

/// Regression (issue 23): a refusal a vendor writes in an HTTP 200 (Rocket.Chat's
/// `success: false`, Pushover's `status: 0`, Splunk On-Call's `result: failure`), and each
/// status-only vendor's refusal, is dead-lettered at once with the vendor's message — never
/// counted delivered — and a secret the vendor echoes is scrubbed from the dead letter.
#[tokio::test]
async fn each_vendors_refusal_is_dead_lettered_never_delivered() {
    let fake = Vendors::start().await;
    let relay = start("refusal", &fake, FAST, None).await;
    let refusals: [(&str, u16, Value, &str); 8] = [
        ("rocketchat", 200, json!({"success": false, "error": "Invalid integration id"}), "Invalid integration id"),
        (
            "pushover",
            200,
            json!({"status": 0, "errors": [format!("application token {} is invalid", SECRETS[2].1)]}),
            "is invalid",
        ),
        ("victorops", 200, json!({"result": "failure", "message": "Missing fields: entity_id"}), "Missing fields"),
        (
            "mattermost",
            400,
            json!({"id": "web.incoming_webhook.text.app_error", "message": "No text specified"}),
            "400",
        ),
        ("webex", 401, json!({"message": "The request requires a valid access token"}), "401"),
        ("matrix", 403, json!({"errcode": "M_FORBIDDEN", "error": "User not in room"}), "M_FORBIDDEN"),
        ("ntfy", 403, json!({"code": 40301, "http": 403, "error": "forbidden"}), "403"),
        ("gotify", 401, json!({"error": "Unauthorized", "errorCode": 401}), "401"),
    ];
    for (preset, status, body, _) in &refusals {
        fake.script(preset, [(*status, body.clone(), None)]);
    }
    assert_eq!(relay.post("/webhook", EXAMPLE).await.status, 200);
    for (preset, ..) in &refusals {
        let series = format!(
            r#"amrelay_notifications_dead_lettered_total{{receiver="refusal-{preset}",reason="non_retryable"}}"#
        );
        relay.wait_metric(&series, 1.0).await;
    }
    assert_eq!(fake.seen().len(), 8, "a refusal is not retried");
    for (preset, ..) in &refusals {
        let series = format!(r#"amrelay_notifications_delivered_total{{receiver="refusal-{preset}"}}"#);
        assert_eq!(relay.metric(&series).await.unwrap_or(0.0), 0.0, "{preset} counted delivered");
    }
    let listed = get(&relay.url("/api/v1/deadletters")).await;
    for (_, secret) in SECRETS {
        assert!(!listed.text().contains(secret), "a secret in the dead letters: {}", listed.text());
    }
    let letters = listed.json()["data"].as_array().unwrap().clone();
    for (preset, _, _, says) in &refusals {
        let letter =
            letters.iter().find(|l| l["receiver"] == format!("refusal-{preset}")).unwrap_or_else(|| panic!("{preset}"));
        let error = text(&letter["last_error"], "last_error");
        assert!(error.contains(says), "{preset}: {error}");
    }
}

/// A 429 with the vendor's wait is retried after it, then delivered (ntfy and Webex send
/// `Retry-After`; Matrix's is tested below).
#[tokio::test]
async fn a_rate_limit_waits_the_vendors_time_then_delivers() {
    let fake = Vendors::start().await;
    let relay = start("ratelimit", &fake, "{max_attempts: 3, initial_backoff: 10ms, max_backoff: 5s}", None).await;
    fake.script(
        "ntfy",
        [(429, json!({"code": 42901, "http": 429, "error": "limit reached: too many requests"}), Some("1"))],
    );
    assert_eq!(relay.post("/webhook", EXAMPLE).await.status, 200);
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="ratelimit-ntfy"}"#, 1.0).await;
    let ntfy: Vec<Seen> = fake.seen().into_iter().filter(|s| s.preset() == "ntfy").collect();
    assert_eq!(ntfy.len(), 2);
    let waited = ntfy[1].at - ntfy[0].at;
    assert!(waited >= std::time::Duration::from_millis(950), "retried after {waited:?}, not the Retry-After");
}

/// Regression (issue 23): Matrix's transaction id is the notification's id, so every retry
/// PUTs the same path and a homeserver that took a lost attempt never posts twice; a 429's
/// `retry_after_ms` is waited out.
#[tokio::test]
async fn matrix_retries_reuse_the_transaction_id() {
    let fake = Vendors::start().await;
    let relay = start("mxretry", &fake, "{max_attempts: 5, initial_backoff: 10ms, max_backoff: 5s}", None).await;
    fake.script(
        "matrix",
        [
            (429, json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 600}), None),
            (500, json!({"errcode": "M_UNKNOWN", "error": "Internal server error"}), None),
        ],
    );
    assert_eq!(relay.post("/webhook", EXAMPLE).await.status, 200);
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="mxretry-matrix"}"#, 1.0).await;
    let matrix: Vec<Seen> = fake.seen().into_iter().filter(|s| s.preset() == "matrix").collect();
    assert_eq!(matrix.iter().map(|s| s.status).collect::<Vec<_>>(), [429, 500, 200]);
    assert!(matrix.iter().all(|s| s.method == "PUT" && s.path == matrix[0].path), "{matrix:#?}");
    assert_eq!(matrix[0].path, format!("{MATRIX_ROOM}/{}", matrix[0].header("idempotency-key").unwrap()));
    let waited = matrix[1].at - matrix[0].at;
    assert!(waited >= std::time::Duration::from_millis(550), "retried after {waited:?}, not retry_after_ms");
}

fn group(status: &str) -> String {
    batch("{}:{alertname=\"DiskFull\"}", vec![alert(status, json!({"alertname": "DiskFull", "severity": "critical"}))])
}

/// `thread: {mode: update}`: a group's first notification is a message; the next one edits it
/// (`m.replace` of the first event, the new text in `m.new_content`).
#[tokio::test]
async fn matrix_thread_update_edits_the_groups_message() {
    let fake = Vendors::start().await;
    let relay = start("mxupdate", &fake, FAST, Some("update")).await;
    relay.post("/webhook", group("firing")).await;
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="mxupdate-matrix"}"#, 1.0).await;
    relay.post("/webhook", group("resolved")).await;
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="mxupdate-matrix"}"#, 2.0).await;
    let matrix: Vec<Seen> = fake.seen().into_iter().filter(|s| s.preset() == "matrix").collect();
    assert_eq!(matrix.len(), 2);
    assert!(matrix[0].body.get("m.relates_to").is_none());
    let edit = &matrix[1];
    assert_eq!(edit.method, "PUT");
    assert!(edit.path.ends_with(".edit"), "{}", edit.path);
    assert_eq!(edit.body["m.relates_to"], json!({"rel_type": "m.replace", "event_id": "$event1"}));
    assert!(text(&edit.body["m.new_content"]["body"], "new body").starts_with("[RESOLVED]"));
    assert!(text(&edit.body["body"], "body").starts_with("* [RESOLVED]"));
}

/// `thread: {mode: reply}`: the next notification is a message in the first one's thread.
#[tokio::test]
async fn matrix_thread_reply_relates_to_the_groups_message() {
    let fake = Vendors::start().await;
    let relay = start("mxreply", &fake, FAST, Some("reply")).await;
    relay.post("/webhook", group("firing")).await;
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="mxreply-matrix"}"#, 1.0).await;
    relay.post("/webhook", group("resolved")).await;
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="mxreply-matrix"}"#, 2.0).await;
    let matrix: Vec<Seen> = fake.seen().into_iter().filter(|s| s.preset() == "matrix").collect();
    let reply = &matrix[1];
    assert!(reply.path.ends_with(".reply"), "{}", reply.path);
    let relates = &reply.body["m.relates_to"];
    assert_eq!((&relates["rel_type"], &relates["event_id"]), (&json!("m.thread"), &json!("$event1")));
    assert_eq!(relates["m.in_reply_to"]["event_id"], "$event1");
}

/// Splunk On-Call: a group's CRITICAL and its RECOVERY carry the same `entity_id` — the hash
/// of the group key, as Alertmanager's victorops notifier sends it — so the recovery resolves
/// the incident the group opened.
#[tokio::test]
async fn victorops_entity_id_is_stable_from_firing_to_resolved() {
    let fake = Vendors::start().await;
    let relay = start("vo", &fake, FAST, None).await;
    relay.post("/webhook", group("firing")).await;
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="vo-victorops"}"#, 1.0).await;
    relay.post("/webhook", group("resolved")).await;
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="vo-victorops"}"#, 2.0).await;
    let sent: Vec<Value> = fake.seen().into_iter().filter(|s| s.preset() == "victorops").map(|s| s.body).collect();
    assert_eq!(sent[0]["message_type"], "CRITICAL");
    assert_eq!(sent[1]["message_type"], "RECOVERY");
    assert_eq!(sent[0]["entity_id"], sent[1]["entity_id"]);
    // Alertmanager's GroupKey.Hash(): the SHA-256 of the group key, in hex.
    let key = "{}:{alertname=\"DiskFull\"}";
    let hash: String = ring::digest::digest(&ring::digest::SHA256, key.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sent[0]["entity_id"], hash.as_str());
}

/// Pushover's emergency priority needs `retry` and `expire` (Alertmanager's defaults, 60 s
/// and 1 h); a resolved group is sent at normal priority, not as an emergency.
#[tokio::test]
async fn pushover_emergencies_carry_retry_and_expire_and_resolves_do_not_page() {
    let fake = Vendors::start().await;
    let relay = start("po", &fake, FAST, None).await;
    relay.post("/webhook", group("firing")).await;
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="po-pushover"}"#, 1.0).await;
    relay.post("/webhook", group("resolved")).await;
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="po-pushover"}"#, 2.0).await;
    let sent: Vec<Value> = fake.seen().into_iter().filter(|s| s.preset() == "pushover").map(|s| s.body).collect();
    assert_eq!((&sent[0]["priority"], &sent[0]["retry"], &sent[0]["expire"]), (&json!(2), &json!(60), &json!(3600)));
    assert_eq!(sent[1]["priority"], 0);
    assert!(sent[1].get("retry").is_none());
}

/// The test button judges the new presets as delivery does: a Rocket.Chat `success: false`
/// reports the vendor's refusal, and Matrix's test event is PUT with its own transaction id.
#[tokio::test]
async fn the_test_button_reports_the_new_presets_verdicts() {
    let fake = Vendors::start().await;
    let relay = start("button", &fake, ONCE, None).await;
    fake.script("rocketchat", [(200, json!({"success": false, "error": "Invalid integration id"}), None)]);
    let refused = post_json(&relay.url("/api/v1/receivers/button-rocketchat/test"), "").await;
    let data = &refused.json()["data"];
    assert_eq!((data["delivered"].as_bool(), data["error_kind"].as_str()), (Some(false), Some("refused")), "{data}");
    assert_eq!(data["error"], "Rocket.Chat refused: success=false Invalid integration id");
    let taken = post_json(&relay.url("/api/v1/receivers/button-matrix/test"), "").await;
    assert_eq!(taken.json()["data"]["delivered"], true, "{}", taken.text());
    let matrix = fake.seen().into_iter().find(|s| s.preset() == "matrix").unwrap();
    assert_eq!(matrix.method, "PUT");
    assert_eq!(matrix.path, format!("{MATRIX_ROOM}/{}", matrix.header("idempotency-key").unwrap()));
    validate(&matrix);
}
