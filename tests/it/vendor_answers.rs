//! Destinations that tell the truth: fakes answering as each vendor documents (HTTP 200 with
//! `errcode`/`code`/`ok` inside, a rate limit with its wait), through real sockets, against the
//! relay's deliveries, dead letters, metrics and test messages; each preset's default pace;
//! Feishu's signature recomputed by the fake; a truncated resolve; a 600-character link.
//!
//! Vendor answers: DingTalk https://open.dingtalk.com/document/orgapp/custom-robot-access,
//! WeCom https://developer.work.weixin.qq.com/document/path/91770, Feishu
//! https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot, Telegram
//! https://core.telegram.org/bots/api#making-requests, Discord
//! https://discord.com/developers/docs/topics/rate-limits.

use std::process::Command;
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde_json::{Value, json};

use crate::support::{Answer, Downstream, TestRelay, alert, batch, get, post_json};

/// One receiver `name` at `url` with `preset` (and `extra` YAML lines), a spool, quick retries.
fn config(dir: &std::path::Path, receivers: &[(&str, String, &str, &str)]) -> String {
    let mut yaml = format!(
        "delivery:\n  retry: {{max_attempts: 5, initial_backoff: 20ms, max_backoff: 2s}}\n  spool: {{path: {}/spool.redb}}\nreceivers:\n",
        dir.display()
    );
    for (name, url, preset, extra) in receivers {
        yaml += &format!("  - name: {name}\n    url: \"{url}\"\n    preset: {preset}\n");
        if !extra.is_empty() {
            yaml += &format!("    {extra}\n");
        }
    }
    yaml
}

fn firing(group: &str) -> String {
    batch(&format!("{{}}:{{g=\"{group}\"}}"), vec![alert("firing", json!({"alertname": group}))])
}

// Regression: DingTalk's HTTP 200 with errcode 310000 was counted delivered and the alert lost.
#[tokio::test]
async fn an_errcode_refusal_is_dead_lettered_at_once_never_delivered() {
    let ding = Downstream::start().await;
    ding.always(Answer::json(200, json!({"errcode": 310000, "errmsg": "keywords not in content"})));
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        config(dir.path(), &[("va-ding-refused", ding.url("/robot/send?access_token=t0ken-abc"), "dingtalk", "")]);
    let relay = TestRelay::start_in(dir, &yaml).await;
    assert_eq!(relay.post("/webhook", firing("Refused")).await.status, 200);
    relay
        .wait_metric(
            r#"amrelay_notifications_dead_lettered_total{receiver="va-ding-refused",reason="non_retryable"}"#,
            1.0,
        )
        .await;
    assert_eq!(
        relay.metric(r#"amrelay_notifications_delivered_total{receiver="va-ding-refused"}"#).await.unwrap_or(0.0),
        0.0
    );
    assert_eq!(
        relay.metric(r#"amrelay_delivery_attempts_total{receiver="va-ding-refused",outcome="refused"}"#).await,
        Some(1.0)
    );
    ding.assert_stays_at(1, Duration::from_millis(200)).await;
    let letters = get(&relay.url("/api/v1/deadletters")).await.json();
    let error = letters["data"][0]["last_error"].as_str().unwrap().to_owned();
    assert!(error.contains("DingTalk refused: errcode 310000 keywords not in content"), "{error}");
    assert!(!letters.to_string().contains("t0ken-abc"), "{letters}");
}

// WeCom's 45009 and Feishu's 11232 (answered with HTTP 400) are rate limits: retried, then delivered.
#[tokio::test]
async fn rate_limit_codes_are_retried_then_delivered() {
    let wecom = Downstream::start().await;
    wecom.script([Answer::json(200, json!({"errcode": 45009, "errmsg": "api freq out of limit"}))]);
    wecom.always(Answer::json(200, json!({"errcode": 0, "errmsg": "ok"})));
    let feishu = Downstream::start().await;
    feishu.script([Answer::json(400, json!({"code": 11232, "msg": "frequency limited", "data": {}}))]);
    feishu.always(Answer::json(200, json!({"code": 0, "msg": "success", "data": {}})));
    let dir = tempfile::tempdir().unwrap();
    // The vendors' waits (60 s) are capped by max_backoff, here 2 s.
    let yaml = config(
        dir.path(),
        &[
            ("va-wecom-limited", wecom.url("/cgi-bin/webhook/send?key=k"), "wecom", ""),
            ("va-feishu-limited", feishu.url("/open-apis/bot/v2/hook/h"), "feishu", ""),
        ],
    );
    let relay = TestRelay::start_in(dir, &yaml).await;
    assert_eq!(relay.post("/webhook", firing("Limited")).await.status, 200);
    for (name, fake) in [("va-wecom-limited", &wecom), ("va-feishu-limited", &feishu)] {
        relay.wait_metric(&format!(r#"amrelay_notifications_delivered_total{{receiver="{name}"}}"#), 1.0).await;
        let received = fake.wait_for(2).await;
        let waited = received[1].at - received[0].at;
        assert!(waited >= Duration::from_millis(1900), "{name} retried after {waited:?}, before the capped wait");
        assert_eq!(
            relay
                .metric(&format!(
                    r#"amrelay_notifications_dead_lettered_total{{receiver="{name}",reason="non_retryable"}}"#
                ))
                .await,
            Some(0.0)
        );
    }
}

// Telegram's wait is in the body (`parameters.retry_after`), Discord's in the body too when no
// Retry-After header is given: each is waited, then the notification is delivered.
#[tokio::test]
async fn a_429_waits_the_time_the_body_names() {
    let telegram = Downstream::start().await;
    telegram.script([Answer::json(
        429,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
    )]);
    telegram.always(Answer::json(200, json!({"ok": true, "result": {"message_id": 7}})));
    let discord = Downstream::start().await;
    discord.script([Answer::json(
        429,
        json!({"message": "You are being rate limited.", "retry_after": 0.7, "global": false}),
    )]);
    let dir = tempfile::tempdir().unwrap();
    // Far above the presets' default pace, so that only the vendor's wait holds the retry back.
    let yaml = config(
        dir.path(),
        &[
            (
                "va-telegram-429",
                telegram.url("/bot1:x/sendMessage"),
                "telegram",
                "preset_options: {chat_id: '-1001'}\n    rate_limit: {per_second: 1000}",
            ),
            ("va-discord-429", discord.url("/api/webhooks/1/t"), "discord", "rate_limit: {per_second: 1000}"),
        ],
    );
    let relay = TestRelay::start_in(dir, &yaml).await;
    assert_eq!(relay.post("/webhook", firing("Busy")).await.status, 200);
    for (name, fake, wait) in [("va-telegram-429", &telegram, 1000), ("va-discord-429", &discord, 700)] {
        relay.wait_metric(&format!(r#"amrelay_notifications_delivered_total{{receiver="{name}"}}"#), 1.0).await;
        let received = fake.wait_for(2).await;
        let waited = received[1].at - received[0].at;
        assert!(waited >= Duration::from_millis(wait - 50), "{name} retried after {waited:?}, not after {wait} ms");
    }
}

// Regression: the test button sent past the verdict (a DingTalk refusal showed "delivered").
#[tokio::test]
async fn the_test_button_and_send_test_report_the_vendors_verdict() {
    let ding = Downstream::start().await;
    ding.always(Answer::json(200, json!({"errcode": 310000, "errmsg": "keywords not in content"})));
    let wecom = Downstream::start().await;
    wecom.always(Answer::json(200, json!({"errcode": 0, "errmsg": "ok"})));
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(
        dir.path(),
        &[
            ("va-test-ding", ding.url("/robot/send?access_token=t"), "dingtalk", ""),
            ("va-test-wecom", wecom.url("/cgi-bin/webhook/send?key=k"), "wecom", ""),
        ],
    );
    let config_file = dir.path().join("amrelay.yml");
    let relay = TestRelay::start_in(dir, &yaml).await;
    let refused = post_json(&relay.url("/api/v1/receivers/va-test-ding/test"), "").await;
    assert_eq!(refused.status, 502, "{}", refused.text());
    let data = &refused.json()["data"];
    assert_eq!((data["delivered"].as_bool(), data["error_kind"].as_str()), (Some(false), Some("refused")), "{data}");
    assert_eq!(data["status_code"], 200, "the HTTP status as answered");
    assert_eq!(data["error"], "DingTalk refused: errcode 310000 keywords not in content");
    let taken = post_json(&relay.url("/api/v1/receivers/va-test-wecom/test"), "").await;
    assert_eq!(taken.json()["data"]["delivered"], true, "{}", taken.text());

    // The command line: the same verdict, and exit status 1.
    // Off the runtime's thread, which serves the fake downstream meanwhile.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_amrelay"))
            .args(["--config.file", config_file.to_str().unwrap(), "send-test", "va-test-ding"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["error"], "DingTalk refused: errcode 310000 keywords not in content", "{printed}");
}

/// Feishu's signature as Feishu checks it: HMAC-SHA256 keyed with `timestamp + "\n" + secret`
/// over nothing, base64.
fn feishu_signature(timestamp: &str, secret: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, format!("{timestamp}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, b"").as_ref())
}

// Feishu's signature is recomputed by the fake on every attempt, the retry's included.
#[tokio::test]
async fn feishu_signs_every_attempt_as_feishu_checks_it() {
    let feishu = Downstream::start().await;
    feishu.script([Answer::status(503)]);
    feishu.always(Answer::json(200, json!({"code": 0, "msg": "success", "data": {}})));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feishu-secret"), "SECfeishu-0123\n").unwrap();
    let yaml = config(
        dir.path(),
        &[(
            "va-feishu-signed",
            feishu.url("/open-apis/bot/v2/hook/h"),
            "feishu",
            "preset_options: {secret_file: feishu-secret}",
        )],
    );
    let relay = TestRelay::start_in(dir, &yaml).await;
    assert_eq!(relay.post("/webhook", firing("Signed")).await.status, 200);
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="va-feishu-signed"}"#, 1.0).await;
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    for request in feishu.wait_for(2).await {
        let timestamp = request.body["timestamp"].as_str().expect("timestamp, as a string");
        let at: u64 = timestamp.parse().unwrap();
        assert!(now.abs_diff(at) < 60, "Feishu refuses a timestamp an hour off: {at} vs {now}");
        assert_eq!(request.body["sign"].as_str(), Some(feishu_signature(timestamp, "SECfeishu-0123").as_str()));
        assert_eq!(request.body["msg_type"], "text");
        assert!(!String::from_utf8_lossy(&request.raw_body).contains("SECfeishu"), "the secret is never sent");
    }
}

// Regression: the DingTalk example allowed 22 in the first minute. At the preset's default (20 a
// minute) the second notification waits its 3 s; 40 in a minute are checked in ratelimit.rs.
#[tokio::test]
async fn a_dingtalk_receiver_is_paced_at_its_documented_limit_by_default() {
    let ding = Downstream::start().await;
    ding.always(Answer::json(200, json!({"errcode": 0, "errmsg": "ok"})));
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(dir.path(), &[("va-ding-paced", ding.url("/robot/send?access_token=t"), "dingtalk", "")]);
    let relay = TestRelay::start_in(dir, &yaml).await;
    for group in ["P1", "P2"] {
        assert_eq!(relay.post("/webhook", firing(group)).await.status, 200);
    }
    let received = ding.wait_for(2).await;
    let gap = received[1].at - received[0].at;
    assert!(gap >= Duration::from_millis(2900), "two within {gap:?}: not paced at 20 a minute");
    let checked = Command::new(env!("CARGO_BIN_EXE_amrelay"))
        .args(["check-config", relay.dir.path().join("amrelay.yml").to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(said.contains("rate limit 0.333/s burst 1"), "{said}");
}

// Regression: with max_alerts, a group whose first alert resolved while the cut one still fired
// resolved its PagerDuty incident.
#[tokio::test]
async fn a_truncated_resolve_does_not_resolve_the_incident() {
    let pagerduty = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pd-key"), "pd-routing-key\n").unwrap();
    let yaml = config(
        dir.path(),
        &[("va-pd-truncated", pagerduty.url("/v2/enqueue"), "pagerduty", "preset_options: {routing_key_file: pd-key}")],
    )
    .replace("preset: pagerduty", "preset: pagerduty\n    max_alerts: 1");
    let relay = TestRelay::start_in(dir, &yaml).await;
    let alerts = vec![
        alert("resolved", json!({"alertname": "Disk", "i": "1"})),
        alert("firing", json!({"alertname": "Disk", "i": "2"})),
    ];
    assert_eq!(relay.post("/webhook", batch("{}:{alertname=\"Disk\"}", alerts)).await.status, 200);
    let sent = pagerduty.wait_for(1).await;
    assert_eq!(sent[0].body["event_action"], "trigger", "{}", sent[0].body);
    assert_eq!(sent[0].body["payload"]["custom_details"]["truncated_alerts"], 1);
}

// Regression: a 600-character generatorURL was clipped into a broken link.
#[tokio::test]
async fn a_600_character_generator_url_is_never_cut() {
    let sink = Downstream::start().await;
    let presets = ["slack", "discord", "googlechat", "telegram", "feishu", "dingtalk", "wecom", "msteams"];
    let receivers: Vec<(String, String, &str, &str)> = presets
        .iter()
        .map(|p| {
            let extra = if *p == "telegram" { "preset_options: {chat_id: '-1001'}" } else { "" };
            (format!("va-long-{p}"), sink.url(&format!("/{p}")), *p, extra)
        })
        .collect();
    let receivers: Vec<(&str, String, &str, &str)> =
        receivers.iter().map(|(n, u, p, e)| (n.as_str(), u.clone(), *p, *e)).collect();
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(dir.path(), &receivers);
    let relay = TestRelay::start_in(dir, &yaml).await;
    let long = format!("http://prometheus.example:9090/graph?g0.expr={}&g0.tab=1", "a".repeat(560));
    assert!(long.len() > 600);
    let mut one = alert("firing", json!({"alertname": "LongLink"}));
    one["generatorURL"] = json!(long);
    assert_eq!(relay.post("/webhook", batch("{}:{alertname=\"LongLink\"}", vec![one])).await.status, 200);
    for request in sink.wait_for(presets.len()).await {
        let body = String::from_utf8_lossy(&request.raw_body);
        let whole = body.contains(&long);
        let cut = body.contains("expr=aaaa") && !whole;
        assert!(!cut, "{}: a cut link: {body}", request.path);
        assert!(whole || body.contains("http://prometheus.example:9090/"), "{}: no link at all: {body}", request.path);
    }
}
