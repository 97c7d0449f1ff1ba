//! Destination presets end to end: Alertmanager's captured payloads (and a 300-alert batch of
//! hostile labels) through the relay, over a real socket, to a local sink that checks each
//! destination's documented body shape and size limits.

use serde_json::{Value, json};

use crate::support::{Downstream, Received, TestRelay, alert, batch};

const EXAMPLE: &str = include_str!("../fixtures/am-payload-example.json");
const MULTI: &str = include_str!("../fixtures/am-payload-multi.json");
const RESOLVED: &str = include_str!("../fixtures/am-payload-resolved.json");

/// A config with one receiver per preset, each at its own path of `sink`.
fn config(sink: &Downstream, dir: &std::path::Path) -> String {
    std::fs::write(dir.join("pd-key"), "pd-routing-key-0123\n").unwrap();
    std::fs::write(dir.join("og-key"), "og-api-key-4567\n").unwrap();
    std::fs::write(dir.join("ding-secret"), "SECdingtalk\n").unwrap();
    let receivers = [
        ("slack", "preset_options: {channel: '#alerts'}"),
        ("msteams", ""),
        ("discord", ""),
        ("googlechat", ""),
        ("pagerduty", "preset_options: {routing_key_file: pd-key}"),
        ("opsgenie", "preset_options: {api_key_file: og-key}"),
        ("telegram", "preset_options: {chat_id: -1001234567890}"),
        ("feishu", ""),
        ("dingtalk", "preset_options: {secret_file: ding-secret}"),
        ("wecom", ""),
    ];
    let mut yaml = String::from("delivery:\n  retry: {max_attempts: 1}\nreceivers:\n");
    for (preset, options) in receivers {
        let url = if preset == "opsgenie" { sink.url("/opsgenie/v2/alerts") } else { sink.url(&format!("/{preset}")) };
        yaml += &format!("  - name: {preset}\n    url: {url}\n    preset: {preset}\n");
        if !options.is_empty() {
            yaml += &format!("    {options}\n");
        }
    }
    yaml
}

fn text<'v>(value: &'v Value, what: &str) -> &'v str {
    value.as_str().unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

/// The destination's documented shape, checked as its API would.
fn validate(preset: &str, r: &Received) {
    let body = &r.body;
    let size = r.raw_body.len();
    assert_eq!(r.header("content-type"), Some("application/json"), "{preset}");
    assert!(body.is_object(), "{preset}: not JSON: {}", String::from_utf8_lossy(&r.raw_body));
    match preset {
        // https://api.slack.com/reference/block-kit/blocks
        "slack" => {
            assert!(!text(&body["text"], "text").is_empty());
            let blocks = body["blocks"].as_array().unwrap();
            assert!(!blocks.is_empty() && blocks.len() <= 50);
            assert_eq!(blocks[0]["type"], "header");
            assert_eq!(blocks[0]["text"]["type"], "plain_text");
            assert!(text(&blocks[0]["text"]["text"], "header").chars().count() <= 150);
            assert_eq!(blocks[1]["type"], "section");
            assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
            assert!(text(&blocks[1]["text"]["text"], "section").chars().count() <= 3000);
            assert_eq!(body["channel"], "#alerts");
        }
        // Workflows: a message with an Adaptive Card attachment, at most 28 KB.
        "msteams" => {
            assert_eq!(body["type"], "message");
            assert_eq!(body["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
            let card = &body["attachments"][0]["content"];
            assert_eq!(card["type"], "AdaptiveCard");
            assert!(card["body"].as_array().unwrap().iter().all(|b| b["type"] == "TextBlock"));
            assert!(size <= 28 * 1024, "{size}");
        }
        "discord" => {
            let content = text(&body["content"], "content");
            assert!(!content.is_empty() && content.chars().count() <= 2000, "{}", content.chars().count());
            assert_eq!(body["allowed_mentions"]["parse"], json!([]));
        }
        "googlechat" => assert!(text(&body["text"], "text").chars().count() <= 4096),
        // https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
        "pagerduty" => {
            assert_eq!(body["routing_key"], "pd-routing-key-0123");
            assert!(matches!(text(&body["event_action"], "event_action"), "trigger" | "resolve"));
            assert!(text(&body["dedup_key"], "dedup_key").len() <= 255);
            let payload = &body["payload"];
            assert!(text(&payload["summary"], "summary").chars().count() <= 1024);
            assert!(!text(&payload["source"], "source").is_empty());
            assert!(matches!(text(&payload["severity"], "severity"), "critical" | "error" | "warning" | "info"));
            assert!(size <= 512 * 1024);
        }
        // https://docs.opsgenie.com/docs/alert-api
        "opsgenie" => {
            assert_eq!(r.header("authorization"), Some("GenieKey og-api-key-4567"));
            if r.path.ends_with("/close") {
                assert_eq!(r.query, "identifierType=alias");
                assert!(body["note"].is_string());
            } else {
                assert_eq!(r.path, "/opsgenie/v2/alerts");
                assert!(text(&body["message"], "message").chars().count() <= 130);
                assert!(text(&body["alias"], "alias").len() <= 512);
                assert!(text(&body["description"], "description").chars().count() <= 15000);
                assert!(matches!(text(&body["priority"], "priority"), "P1" | "P2" | "P3" | "P4" | "P5"));
                assert!(body["tags"].as_array().unwrap().iter().all(|t| text(t, "tag").chars().count() <= 50));
            }
        }
        // https://core.telegram.org/bots/api#sendmessage
        "telegram" => {
            assert_eq!(body["chat_id"], json!(-1001234567890i64));
            let t = text(&body["text"], "text");
            assert!(!t.is_empty() && t.chars().count() <= 4096);
            assert!(body.get("parse_mode").is_none(), "plain text: nothing in a label is markup");
        }
        "feishu" => {
            assert_eq!(body["msg_type"], "text");
            assert!(body["content"]["text"].is_string());
            assert!(size <= 20 * 1024, "{size}");
        }
        "dingtalk" => {
            assert_eq!(body["msgtype"], "markdown");
            assert!(body["markdown"]["title"].is_string() && body["markdown"]["text"].is_string());
            assert!(size <= 20_000, "{size}");
            let query: std::collections::HashMap<String, String> =
                form_urlencoded::parse(r.query.as_bytes()).into_owned().collect();
            let timestamp: u128 = query["timestamp"].parse().unwrap();
            assert_eq!(query["sign"], amrelay::template::presets::dingtalk_sign("SECdingtalk", timestamp));
        }
        "wecom" => {
            assert_eq!(body["msgtype"], "markdown");
            assert!(text(&body["markdown"]["content"], "content").len() <= 4096);
        }
        other => panic!("no validator for {other}"),
    }
}

/// Posts `payload` and checks what each of the ten destinations got.
async fn deliver_and_validate(relay: &TestRelay, sink: &Downstream, payload: String) -> Vec<Received> {
    let before = sink.received().len();
    let reply = relay.post("/webhook", payload).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let received = sink.wait_for(before + 10).await;
    for r in &received[before..] {
        let preset = r.path.trim_start_matches('/').split('/').next().unwrap().to_owned();
        validate(&preset, r);
    }
    received[before..].to_vec()
}

#[tokio::test]
async fn every_preset_sends_its_destinations_shape_from_alertmanagers_payloads() {
    let sink = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&sink, dir.path());
    let relay = TestRelay::start_in(dir, &yaml).await;
    for fixture in [EXAMPLE, MULTI, RESOLVED] {
        deliver_and_validate(&relay, &sink, fixture.to_owned()).await;
    }
    let resolved = deliver_and_validate(&relay, &sink, RESOLVED.to_owned()).await;
    let pagerduty = resolved.iter().find(|r| r.path == "/pagerduty").unwrap();
    assert_eq!(pagerduty.body["event_action"], "resolve");
    let opsgenie = resolved.iter().find(|r| r.path.starts_with("/opsgenie")).unwrap();
    assert!(opsgenie.path.ends_with("/close"), "a resolved group closes the Opsgenie alert: {}", opsgenie.path);
}

/// 300 alerts whose labels hold quotes, backslashes, newlines, `{{`, HTML and 10 kB of text:
/// every destination still gets valid JSON within its limit, cut with "… and N more".
#[tokio::test]
async fn a_big_hostile_batch_is_cut_within_each_destinations_limit() {
    let sink = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&sink, dir.path());
    let relay = TestRelay::start_in(dir, &yaml).await;
    let mut hostile = String::from("\"q\" \\b\\ new\nline {{ 7*7 }} {% if %} <script>x</script> <!channel> @everyone ");
    while hostile.len() < 10_000 {
        hostile.push_str("0123456789");
    }
    let short: String = hostile.chars().take(120).collect();
    // Every alert hostile; the first ten with 10 kB of it (all 300 would make a 9 MB batch).
    let alerts = (0..300)
        .map(|i| {
            let value = if i < 10 { hostile.as_str() } else { short.as_str() };
            let mut a =
                alert("firing", json!({"alertname": format!("Hostile{i}"), "severity": "critical", "x": value}));
            a["annotations"] = json!({"summary": value});
            a
        })
        .collect();
    let received = deliver_and_validate(&relay, &sink, batch("{}:{alertname=\"Hostile\"}", alerts)).await;
    for r in &received {
        let raw = String::from_utf8_lossy(&r.raw_body);
        assert!(raw.contains("{{ 7*7 }}"), "{}: a label was rendered as a template", r.path);
        if !matches!(r.path.as_str(), "/pagerduty") {
            assert!(raw.contains("more"), "{}: a big batch ends with '… and N more'", r.path);
        }
    }
    let discord = received.iter().find(|r| r.path == "/discord").unwrap();
    assert!(text(&discord.body["content"], "content").contains("… and "), "{}", discord.body);
}

/// The console's test button and `send-test` send the rendered template.
#[tokio::test]
async fn the_test_message_is_rendered_with_the_preset() {
    let sink = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&sink, dir.path());
    let relay = TestRelay::start_in(dir, &yaml).await;
    let reply = relay.post("/api/v1/receivers/slack/test", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let received = sink.wait_for(1).await;
    validate("slack", &received[0]);
    assert!(text(&received[0].body["blocks"][1]["text"]["text"], "section").contains("AmrelayTestMessage"));
}
