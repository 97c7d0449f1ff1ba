use serde_json::{Value as Json, json};

use super::helpers::{humanize_duration, parse};
use super::*;

fn alert(status: &str, labels: Json, annotations: Json) -> Json {
    json!({"status": status, "labels": labels, "annotations": annotations, "startsAt": "2026-01-01T00:00:00Z",
           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph?g0.expr=up", "fingerprint": "f"})
}

fn notification(alerts: Vec<Json>) -> Vec<u8> {
    let status = if alerts.iter().any(|a| a["status"] == "firing") { "firing" } else { "resolved" };
    json!({"receiver": "team", "status": status, "alerts": alerts, "groupLabels": {"alertname": "Disk"},
           "commonLabels": {"alertname": "Disk", "severity": "critical"}, "commonAnnotations": {},
           "externalURL": "http://am:9093", "version": "4", "groupKey": "{}:{alertname=\"Disk\"}", "truncatedAlerts": 0})
    .to_string()
    .into_bytes()
}

pub(super) fn options(pairs: &[(&str, &str)]) -> Vec<(String, OptionValue)> {
    pairs.iter().map(|(k, v)| (k.to_string(), OptionValue { value: v.to_string(), secret: false })).collect()
}

pub(super) fn spec() -> Spec {
    Spec {
        body: None,
        payload: None,
        preset: None,
        options: Vec::new(),
        content_type: HeaderValue::from_static("application/json"),
        signing: None,
    }
}

fn preset(preset: Preset) -> Renderer {
    let mut builder = Builder::new();
    builder.preset(preset).unwrap();
    let options = options(&[
        ("chat_id", "-100123"),
        ("routing_key", "rk"),
        ("api_key", "k"),
        ("room_id", "Y2lzY29zcGFyazovL3Jvb20"),
        ("token", "app-token"),
        ("user_key", "user-key"),
        ("topic", "alerts"),
    ]);
    builder.finish(Spec { preset: Some(preset), options, ..spec() })
}

fn body(source: &str, content_type: &'static str) -> Result<Renderer, CompileError> {
    let mut builder = Builder::new();
    let json = is_json(&HeaderValue::from_static(content_type));
    let name = builder.body(source, json)?;
    Ok(builder.finish(Spec { body: Some(name), content_type: HeaderValue::from_static(content_type), ..spec() }))
}

fn render_json(renderer: &Renderer, n: &[u8]) -> Json {
    let rendered = renderer.render(n, Reveal::Send).unwrap();
    serde_json::from_slice(&rendered.body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&rendered.body)))
}

fn hostile() -> String {
    let mut value =
        String::from("\"quoted\" back\\slash\nnewline {{ 7*7 }} {% raw %} <b>html</b> <!channel> @everyone ");
    while value.len() < 10_000 {
        value.push_str("ten kB of text ");
    }
    value
}

#[test]
fn every_preset_renders_the_sample_as_json() {
    for p in Preset::ALL {
        let out = render_json(&preset(p), &sample_notification());
        assert!(out.is_object(), "{}: {out}", p.name());
    }
}

#[test]
fn presets_stay_valid_and_within_limits_with_hostile_values_and_many_alerts() {
    let value = hostile();
    let alerts: Vec<Json> = (0..300)
        .map(|i| {
            alert(
                "firing",
                json!({"alertname": format!("A{i}"), "severity": value, "x": value}),
                json!({"summary": value}),
            )
        })
        .collect();
    let n = notification(alerts);
    for p in Preset::ALL {
        let out = render_json(&preset(p), &n);
        let text = out.to_string();
        assert!(text.contains("{{ 7*7 }}"), "{}: a label was interpreted as a template", p.name());
        match p {
            Preset::Discord => {
                let content = out["content"].as_str().unwrap();
                assert!(content.chars().count() <= 2000, "{}", content.chars().count());
                assert!(content.contains("more"), "{content}");
            }
            Preset::Slack => {
                assert!(out["blocks"][1]["text"]["text"].as_str().unwrap().chars().count() <= 3000);
                assert!(out["blocks"][0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
                assert!(!text.contains("<!channel>"), "Slack markup escaped");
            }
            Preset::Telegram => assert!(out["text"].as_str().unwrap().chars().count() <= 4096),
            Preset::WeCom => assert!(out["markdown"]["content"].as_str().unwrap().len() <= 4096),
            Preset::MsTeams => assert!(serde_json::to_vec(&out).unwrap().len() <= 28 * 1024),
            Preset::Feishu | Preset::DingTalk => {
                assert!(serde_json::to_vec(&out).unwrap().len() <= 20 * 1000, "{}", p.name())
            }
            Preset::GoogleChat => assert!(out["text"].as_str().unwrap().chars().count() <= 4096),
            Preset::PagerDuty => assert!(out["payload"]["summary"].as_str().unwrap().chars().count() <= 1024),
            Preset::Opsgenie => assert!(out["message"].as_str().unwrap().chars().count() <= 130),
            // Issue 23's presets: each within the limit its template cites.
            Preset::Mattermost | Preset::RocketChat => {
                let text = out["attachments"][0]["text"].as_str().unwrap();
                assert!(text.chars().count() <= 4000 && text.contains("more"), "{}", p.name());
            }
            Preset::Webex => assert!(out["markdown"].as_str().unwrap().len() <= 7439),
            Preset::Matrix => assert!(serde_json::to_vec(&out).unwrap().len() <= 65_536 / 2),
            Preset::Pushover => {
                assert!(out["message"].as_str().unwrap().chars().count() <= 1024);
                assert!(out["title"].as_str().unwrap().chars().count() <= 250);
            }
            Preset::Ntfy => assert!(out["message"].as_str().unwrap().len() <= 4096),
            Preset::Gotify => assert!(out["message"].as_str().unwrap().chars().count() <= 4000),
            Preset::VictorOps => assert!(out["state_message"].as_str().unwrap().chars().count() <= 20_480),
        }
    }
}

// The fuel limit leaves room for big batches: every preset renders 2,000 alerts.
#[test]
fn presets_render_two_thousand_alerts_within_the_fuel_limit() {
    let alerts: Vec<Json> = (0..2000)
        .map(|i| {
            alert(
                if i % 3 == 0 { "resolved" } else { "firing" },
                json!({"alertname": format!("A{i}"), "severity": "warning", "instance": format!("node-{i}:9100")}),
                json!({"summary": "Disk almost full", "description": "x"}),
            )
        })
        .collect();
    let n = notification(alerts);
    for p in Preset::ALL {
        preset(p).render(&n, Reveal::Send).unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
}

#[test]
fn a_json_body_escapes_values_as_json() {
    let renderer = body(
        r#"{"text": {{ commonLabels.alertname }}, "n": {{ alerts | length }}, "raw": {{ alerts | toJson }}}"#,
        "application/json",
    )
    .unwrap();
    let value = hostile();
    let out = render_json(&renderer, &notification(vec![alert("firing", json!({"a": value}), json!({}))]));
    assert_eq!(out["text"], "Disk");
    assert_eq!(out["n"], 1);
    assert_eq!(out["raw"][0]["labels"]["a"], value.as_str());
}

#[test]
fn a_text_body_is_sent_as_written() {
    let renderer = body(
        "{{ status | upper }}: {% for a in alerts %}{{ a.labels.alertname }}{{ a.labels.missing }} {% endfor %}",
        "text/plain",
    )
    .unwrap();
    let out = renderer.render(&sample_notification(), Reveal::Send).unwrap();
    assert_eq!(out.body, "FIRING: SampleDown SampleUp ");
    assert_eq!(out.content_type, "text/plain");
}

#[test]
fn payload_leaves_insert_values_with_their_type() {
    let mut builder = Builder::new();
    let node = PayloadNode::Map(vec![
        (
            Leaf::Text("alerts".into()),
            PayloadNode::Leaf(builder.leaf(".alerts", "{{ alerts | toJson }}", false).unwrap()),
        ),
        (Leaf::Text("cut".into()), PayloadNode::Leaf(builder.leaf(".cut", "{{ truncatedAlerts }}", false).unwrap())),
        (
            Leaf::Text("text".into()),
            PayloadNode::Leaf(builder.leaf(".text", "{{ status }}: {{ commonLabels.alertname }}", false).unwrap()),
        ),
        (
            Leaf::Text("missing".into()),
            PayloadNode::Leaf(builder.leaf(".missing", "{{ commonLabels.nope }}", false).unwrap()),
        ),
        (builder.leaf(".key", "{{ receiver }}", true).unwrap(), PayloadNode::Literal(json!(true))),
    ]);
    let renderer = builder.finish(Spec { payload: Some(node), ..spec() });
    let value = hostile();
    let out = render_json(&renderer, &notification(vec![alert("firing", json!({"alertname": value}), json!({}))]));
    assert_eq!(out["alerts"][0]["labels"]["alertname"], value.as_str());
    assert_eq!(out["cut"], 0);
    assert_eq!(out["text"], "firing: Disk");
    assert_eq!(out["missing"], "");
    assert_eq!(out["team"], true);
}

#[test]
fn a_template_that_loops_forever_runs_out_of_fuel() {
    let renderer =
        body("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", "text/plain")
            .unwrap();
    assert_eq!(renderer.render(&sample_notification(), Reveal::Send).unwrap_err(), RenderError::OutOfFuel);
}

#[test]
fn fifty_megabytes_are_cut_off() {
    let renderer = body("{{ 'x' * 50000000 }}", "text/plain").unwrap();
    assert_eq!(renderer.render(&sample_notification(), Reveal::Send).unwrap_err(), RenderError::TooLarge);
}

#[test]
fn a_json_content_type_requires_json() {
    let renderer = body("not json {{ status }}", "application/json").unwrap();
    assert!(matches!(renderer.render(&sample_notification(), Reveal::Send), Err(RenderError::NotJson(_))));
}

#[test]
fn unknown_filters_and_syntax_errors_have_positions() {
    let error = body("line one\n{{ status | nosuchfilter }}", "text/plain").unwrap_err();
    assert_eq!((error.position, error.message.as_str()), (Some((2, 13)), "unknown filter: nosuchfilter"));
    let error = body("{% if x is nosuchtest %}{% endif %}", "text/plain").unwrap_err();
    assert_eq!(error.message, "unknown test: nosuchtest");
    let error = body("ok\n\n{{ status ", "text/plain").unwrap_err();
    assert_eq!(error.position.map(|p| p.0), Some(3), "{}", error.message);
    assert!(error.message.starts_with("syntax error"), "{}", error.message);
    assert!(body("{{ 'a | b' }} {{ x | title }} {% if a is defined %}{% endif %}", "text/plain").is_ok());
    assert!(body("{# {{ x | nope }} #}{% raw %}{{ x | nope }}{% endraw %}", "text/plain").is_ok());
}

#[test]
fn alertmanager_helpers_work() {
    let renderer = body(
        concat!(
            "{{ firing | length }}/{{ resolved | length }}/{{ alerts | resolved | length }}|",
            "{{ 'disk full' | title }}|{{ ['a', 'b'] | join(',') }}|{{ 'node-1:9100' | match('^node') }}|",
            "{{ 'node-1:9100' | reReplaceAll(':[0-9]+$', '') }}|{{ 3661 | humanizeDuration }}|",
            "{{ '2026-01-01T12:00:00Z' | date('%H:%M', 'Europe/Paris') }}|{{ 'x' is match('x') }}|",
            "{{ 'http://a/?b=c' | safeUrl }}|{{ 'x' | toUpper }}|{{ alerts[0].startsAt | since > 0 }}",
        ),
        "text/plain",
    )
    .unwrap();
    let out = renderer.render(&sample_notification(), Reveal::Send).unwrap();
    assert_eq!(out.body, "1/1/1|Disk Full|a,b|True|node-1|1h 1m 1s|13:00|True|http://a/?b=c|X|True");
}

// Prometheus' own table for humanizeDuration (template/template_test.go).
#[test]
fn humanize_duration_matches_prometheus() {
    let cases = [
        (0.0, "0s"),
        (1.0, "1s"),
        (60.0, "1m 0s"),
        (3600.0, "1h 0m 0s"),
        (86400.0, "1d 0h 0m 0s"),
        (86400.0 + 3600.0, "1d 1h 0m 0s"),
        (-(3600.0 * 24.0) - 3600.0 - 60.0 - 1.0, "-1d 1h 1m 1s"),
        (899.99, "14m 59s"),
        (0.1, "100ms"),
        (0.0001, "100us"),
        (0.12345, "123.5ms"),
        (60.1, "1m 0s"),
        (60.5, "1m 0s"),
        (1.2345, "1.234s"),
        (12.345, "12.35s"),
    ];
    for (input, expected) in cases {
        assert_eq!(humanize_duration(input), expected, "{input}");
    }
}

#[test]
fn previews_hide_secrets() {
    let mut builder = Builder::new();
    builder.preset(Preset::PagerDuty).unwrap();
    let options = vec![("routing_key".to_owned(), OptionValue { value: "R0UTING".into(), secret: true })];
    let renderer = builder.finish(Spec { preset: Some(Preset::PagerDuty), options, ..spec() });
    let preview = renderer.render(&sample_notification(), Reveal::Preview).unwrap();
    assert!(!String::from_utf8_lossy(&preview.body).contains("R0UTING"));
    let sent: Json =
        serde_json::from_slice(&renderer.render(&sample_notification(), Reveal::Send).unwrap().body).unwrap();
    assert_eq!(sent["routing_key"], "R0UTING");
    assert_eq!(sent["event_action"], "trigger");
    assert_eq!(sent["payload"]["severity"], "critical");
}

/// As Alertmanager's opsgenie notifier: the common labels in `details`, and responders from
/// `preset_options.responders` (a user by username, the others by name).
#[test]
fn opsgenie_details_carry_the_common_labels_and_responders_are_given() {
    let mut builder = Builder::new();
    builder.preset(Preset::Opsgenie).unwrap();
    let options = options(&[("api_key", "k"), ("responders", "team:sre, user:ann@example.com,escalation:night")]);
    let renderer = builder.finish(Spec { preset: Some(Preset::Opsgenie), options, ..spec() });
    let out: Json =
        serde_json::from_slice(&renderer.render(&sample_notification(), Reveal::Send).unwrap().body).unwrap();
    let common = serde_json::from_slice::<Json>(&sample_notification()).unwrap()["commonLabels"].clone();
    assert!(!common.as_object().unwrap().is_empty());
    for (name, value) in common.as_object().unwrap() {
        assert_eq!(&out["details"][name], value, "{out}");
    }
    assert_eq!(
        out["responders"],
        serde_json::json!([
            {"type": "team", "name": "sre"},
            {"type": "user", "username": "ann@example.com"},
            {"type": "escalation", "name": "night"}
        ])
    );
    let plain: Json =
        serde_json::from_slice(&preset(Preset::Opsgenie).render(&sample_notification(), Reveal::Send).unwrap().body)
            .unwrap();
    assert!(plain.get("responders").is_none(), "{plain}");
}

#[test]
fn opsgenie_closes_a_resolved_group_by_alias() {
    let renderer = preset(Preset::Opsgenie);
    let resolved = notification(vec![alert("resolved", json!({"alertname": "Disk"}), json!({}))]);
    let out = renderer.render(&resolved, Reveal::Send).unwrap();
    let url = renderer.attempt_url(
        &"https://api.opsgenie.com/v2/alerts".parse().unwrap(),
        &out,
        std::time::SystemTime::now(),
    );
    let alias = super::helpers::sha256_hex("{}:{alertname=\"Disk\"}");
    assert_eq!(url.to_string(), format!("https://api.opsgenie.com/v2/alerts/{alias}/close?identifierType=alias"));
    let firing = render_json(&renderer, &notification(vec![alert("firing", json!({"alertname": "Disk"}), json!({}))]));
    assert_eq!(firing["alias"], alias.as_str());
    assert_eq!(firing["priority"], "P1");
}

// DingTalk's documented example: sign = base64(HmacSHA256(secret, timestamp + "\n" + secret)).
#[test]
fn dingtalk_signs_each_attempt() {
    let sign = presets::dingtalk_sign("SEC000", 1_577_262_236_757);
    let expected = {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"SEC000");
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, b"1577262236757\nSEC000").as_ref())
    };
    assert_eq!(sign, expected);
}

#[test]
fn parse_keeps_types() {
    let value = parse(br#"{"a": [1, -2, 1.5, true, null, "s", 18446744073709551615]}"#).unwrap();
    let a = value.get_attr("a").unwrap();
    assert_eq!(a.len(), Some(7));
    let rendered: Vec<String> = a.try_iter().unwrap().map(|v| v.to_string()).collect();
    assert_eq!(rendered, ["1", "-2", "1.5", "True", "None", "s", "18446744073709551615"]);
    assert_eq!(a.get_item(&minijinja::Value::from(5)).unwrap().kind(), minijinja::value::ValueKind::String);
}

/// The macros the presets used before their lines were written in Rust, kept here as the
/// reference text of each `fit` style (a link whole or its origin, never clipped).
const REFERENCE_MACROS: &str = r#"{%- from "amrelay/common.j2" import summary -%}
{%- macro slack_line(a) -%}
{{ ":red_circle:" if a.status == "firing" else ":large_green_circle:" }} *{{ (a.labels.alertname or "(no alertname)") | clip(100) | mrkdwn }}*{% if a.labels.severity %} `{{ a.labels.severity | clip(30) | mrkdwn }}`{% endif %}{% set s = summary(a) %}{% if s %} {{ s | clip(300) | mrkdwn }}{% endif %}{% set g = (a.generatorURL or "") | link(400) %}{% if g %} <{{ g | mrkdwn | replace("|", "%7C") }}|source>{% endif %}
{%- endmacro -%}
{%- macro teams_line(a) -%}
{{ "🔴" if a.status == "firing" else "🟢" }} **{{ (a.labels.alertname or "(no alertname)") | clip(100) }}**{% if a.labels.severity %} ({{ a.labels.severity | clip(30) }}){% endif %}{% set s = summary(a) %}{% if s %}: {{ s | clip(300) }}{% endif %}{% set g = (a.generatorURL or "") | link(400) %}{% if g %} [source]({{ g | replace(")", "%29") }}){% endif %}
{%- endmacro -%}
{%- macro discord_line(a) -%}
{{ "🔴" if a.status == "firing" else "🟢" }} **{{ (a.labels.alertname or "(no alertname)") | clip(100) }}**{% if a.labels.severity %} `{{ a.labels.severity | clip(30) | replace("`", "'") }}`{% endif %}{% set s = summary(a) %}{% if s %} {{ s | clip(300) }}{% endif %}{% set g = (a.generatorURL or "") | link(300) %}{% if g %} <{{ g }}>{% endif %}
{%- endmacro -%}"#;

#[test]
fn rust_line_styles_write_what_the_macros_wrote() {
    let long = "x|<>)`&".repeat(80);
    let mut alerts = vec![
        alert("firing", json!({"alertname": hostile(), "severity": hostile()}), json!({"summary": hostile()})),
        alert("resolved", json!({"alertname": long, "severity": long}), json!({"description": long})),
        alert("firing", json!({}), json!({})),
        alert("firing", json!({"alertname": "", "severity": ""}), json!({"summary": "", "message": "m)|`"})),
        json!({"status": "firing"}),
        json!({"labels": {"alertname": "NoStatus"}, "generatorURL": format!("http://g/{long}")}),
    ];
    alerts.push(alert("firing", json!({"alertname": "Ünïcödé 🔥"}), json!({"summary": "ok"})));
    let n = notification(alerts);
    for (style, mac) in
        [("line", "line"), ("slack", "slack_line"), ("teams", "teams_line"), ("discord", "discord_line")]
    {
        for (unit, budget) in [("chars", 100_000), ("bytes", 100_000), ("json", 100_000), ("chars", 700), ("json", 90)]
        {
            let source = format!(
                "{REFERENCE_MACROS}{{%- from \"amrelay/common.j2\" import line -%}}\
                 {{{{ alerts | fit({mac}, {budget}, unit=\"{unit}\") }}}}\n---\n\
                 {{{{ alerts | fit(\"{style}\", {budget}, unit=\"{unit}\") }}}}"
            );
            let rendered = body(&source, "text/plain").unwrap().render(&n, Reveal::Send).unwrap();
            let text = String::from_utf8(rendered.body.to_vec()).unwrap();
            let (by_macro, in_rust) = text.split_once("\n---\n").unwrap();
            assert_eq!(in_rust, by_macro, "style {style}, {unit} {budget}");
            assert!(!in_rust.is_empty());
        }
    }
}

#[test]
fn fit_refuses_an_unknown_line_style() {
    let n = notification(vec![alert("firing", json!({"alertname": "A"}), json!({}))]);
    let error =
        body("{{ alerts | fit(\"nosuch\", 100) }}", "text/plain").unwrap().render(&n, Reveal::Send).unwrap_err();
    assert!(error.to_string().contains("unknown line style"), "{error}");
}

// Matrix's transaction id is one path segment, whatever the notification id holds.
#[test]
fn matrix_transaction_ids_are_one_encoded_path_segment() {
    let url: Uri =
        "https://matrix.example.org/_matrix/client/v3/rooms/!abc:example.org/send/m.room.message?x=1".parse().unwrap();
    assert_eq!(
        super::presets::transaction_url(&url, "01HZX3/..?a b+").to_string(),
        "https://matrix.example.org/_matrix/client/v3/rooms/!abc:example.org/send/m.room.message/01HZX3%2F..%3Fa%20b%2B?x=1"
    );
}

// Regression: a URL over its budget was clipped (`clip(400)`) into a link to another page.
#[test]
fn links_are_whole_or_their_origin_never_cut() {
    use super::helpers::link;
    let long = format!("http://prometheus.example:9090/graph?g0.expr={}", "x".repeat(600));
    assert_eq!(link(&long, 400), "http://prometheus.example:9090/");
    assert_eq!(link("http://a:1/b?c", 400), "http://a:1/b?c");
    assert_eq!(link(&long, 10), "", "not even the origin fits: left out");
    assert_eq!(link(&"y".repeat(500), 400), "", "not a URL: left out");
    for p in [Preset::Slack, Preset::Telegram, Preset::Discord, Preset::GoogleChat, Preset::WeCom, Preset::MsTeams] {
        let n = notification(vec![json!({"status": "firing", "labels": {"alertname": "Long"}, "generatorURL": long})]);
        let body = String::from_utf8(preset(p).render(&n, Reveal::Send).unwrap().body.to_vec()).unwrap();
        assert!(!body.contains("expr=xxx"), "{p:?} cut the link: {body}");
        assert!(body.contains("http://prometheus.example:9090/"), "{p:?}: {body}");
    }
}

// Regression: Google Chat, Feishu and WeCom expanded a label's `<users/all>`, `<at …>`, `<@…>`.
#[test]
fn chat_mentions_in_alert_text_ping_no_one() {
    let mention = r#"<users/all> <at user_id="all">all</at> <@zhangsan> <AT user_id="x">"#;
    let n = notification(vec![alert("firing", json!({"alertname": mention}), json!({"summary": mention}))]);
    for p in [Preset::GoogleChat, Preset::Feishu, Preset::WeCom] {
        let body = render_json(&preset(p), &n).to_string();
        for expanded in ["<users/", "<at ", "<AT ", "<@"] {
            assert!(!body.contains(expanded), "{p:?} keeps {expanded}: {body}");
        }
        assert!(body.contains("‹users/all>"), "{p:?}: the text stays readable: {body}");
    }
    assert_eq!(super::helpers::unmention("a < b <br>"), "a < b <br>");
}

/// A resolved notification whose `truncatedAlerts` were cut: they may still fire.
fn truncated_resolved() -> Vec<u8> {
    let mut n: Json =
        serde_json::from_slice(&notification(vec![alert("resolved", json!({"alertname": "Disk"}), json!({}))]))
            .unwrap();
    n["truncatedAlerts"] = json!(3);
    n.to_string().into_bytes()
}

// Regression: a truncated resolved notification resolved the PagerDuty incident and closed the
// Opsgenie alert while the alerts cut from it still fired.
#[test]
fn a_truncated_resolve_neither_resolves_nor_closes() {
    let pagerduty = render_json(&preset(Preset::PagerDuty), &truncated_resolved());
    assert_eq!(pagerduty["event_action"], "trigger");
    assert!(pagerduty["payload"]["custom_details"]["not_resolved"].as_str().unwrap().contains("3 were cut"));
    let opsgenie = preset(Preset::Opsgenie);
    let out = opsgenie.render(&truncated_resolved(), Reveal::Send).unwrap();
    let url = opsgenie.attempt_url(
        &"https://api.opsgenie.com/v2/alerts".parse().unwrap(),
        &out,
        std::time::SystemTime::now(),
    );
    assert!(url.to_string().ends_with("/notes?identifierType=alias"), "{url}");
    let note: Json = serde_json::from_slice(&out.body).unwrap();
    assert!(note["note"].as_str().unwrap().starts_with("Not closed"), "{note}");
    // Complete, it resolves as before.
    let whole = notification(vec![alert("resolved", json!({"alertname": "Disk"}), json!({}))]);
    assert_eq!(render_json(&preset(Preset::PagerDuty), &whole)["event_action"], "resolve");
}

// Feishu's documented signature: base64(HMAC-SHA256 keyed with timestamp + "\n" + secret, over
// nothing), in the body with the timestamp in seconds.
#[test]
fn feishu_signs_each_attempts_body() {
    // Computed apart from this code (Python's hmac) for secret "secret" at 1599360473.
    assert_eq!(presets::feishu_sign("secret", 1_599_360_473), "q4jswNiMy51J5JuQV566yJat0/lQ/c+22kINzUgKsGU=");
    let mut builder = Builder::new();
    builder.preset(Preset::Feishu).unwrap();
    let signing = Some(crate::secret::Secret::new("secret"));
    let renderer = builder.finish(Spec { preset: Some(Preset::Feishu), signing, ..spec() });
    let out = renderer.render(&sample_notification(), Reveal::Send).unwrap();
    let at = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_599_360_473);
    let signed: Json = serde_json::from_slice(&renderer.attempt_body(&out, at)).unwrap();
    assert_eq!(
        (signed["timestamp"].as_str(), signed["sign"].as_str()),
        (Some("1599360473"), Some("q4jswNiMy51J5JuQV566yJat0/lQ/c+22kINzUgKsGU="))
    );
    assert_eq!(signed["msg_type"], "text");
}

/// Issue 23's presets.
const ADDED: [Preset; 8] = [
    Preset::Mattermost,
    Preset::RocketChat,
    Preset::Webex,
    Preset::Matrix,
    Preset::Pushover,
    Preset::Ntfy,
    Preset::Gotify,
    Preset::VictorOps,
];

// The added presets never cut a link: a 600-character generatorURL or Alertmanager URL becomes
// its origin or is left out.
#[test]
fn added_presets_never_cut_a_link() {
    let long = format!("http://prometheus.example:9090/graph?g0.expr={}", "x".repeat(600));
    let mut n: Json = serde_json::from_slice(&notification(vec![
        json!({"status": "firing", "labels": {"alertname": "Long"}, "generatorURL": long}),
    ]))
    .unwrap();
    n["externalURL"] = json!(format!("http://alertmanager.example:9093/#/alerts?filter={}", "y".repeat(1200)));
    let n = n.to_string().into_bytes();
    for p in ADDED {
        let body = String::from_utf8(preset(p).render(&n, Reveal::Send).unwrap().body.to_vec()).unwrap();
        assert!(!body.contains("expr=xxx") && !body.contains("filter=yyy"), "{p:?} cut a link: {body}");
    }
}

// A label's mention pings no one: Webex's `<@all>` is taken apart, Rocket.Chat's own `text` has
// no `@`, and Matrix's empty `m.mentions` turns off mentions read from the body.
#[test]
fn added_presets_mention_no_one() {
    let mut n: Json = serde_json::from_slice(&notification(vec![alert(
        "firing",
        json!({"alertname": "<@all> @all @room"}),
        json!({}),
    )]))
    .unwrap();
    n["groupLabels"] = json!({"alertname": "<@all> @all @room"});
    let n = n.to_string().into_bytes();
    assert!(!render_json(&preset(Preset::Webex), &n)["markdown"].as_str().unwrap().contains("<@"));
    assert!(!render_json(&preset(Preset::RocketChat), &n)["text"].as_str().unwrap().contains('@'));
    assert_eq!(render_json(&preset(Preset::Matrix), &n)["m.mentions"], json!({}));
}

// check-config warns when an added preset's URL does not look like its API.
#[test]
fn added_presets_hint_at_their_api_url() {
    assert_eq!(Preset::Matrix.url_hint("/_matrix/client/v3/rooms/!r:x/send/m.room.message"), None);
    assert!(Preset::Matrix.url_hint("/_matrix/client/v3/rooms/!r:x").unwrap().contains("m.room.message"));
    assert_eq!(Preset::Ntfy.url_hint("/"), None);
    assert!(Preset::Ntfy.url_hint("/mytopic").unwrap().contains("root URL"));
    assert_eq!(Preset::Webex.url_hint("/v1/messages"), None);
    assert_eq!(Preset::Pushover.url_hint("/1/messages.json"), None);
    assert_eq!(Preset::Gotify.url_hint("/message"), None);
    assert!(Preset::VictorOps.url_hint("/alert/x").is_some());
    assert_eq!(Preset::Slack.url_hint("/anything"), None);
    assert_eq!(Preset::Opsgenie.url_hint("/v2/alerts"), None);
    assert!(Preset::Opsgenie.url_hint("/").unwrap().contains("/v2/alerts"));
    assert_eq!(Preset::PagerDuty.url_hint("/v2/enqueue"), None);
    assert!(Preset::PagerDuty.url_hint("/generic/2010-04-15/create_event.json").unwrap().contains("/v2/enqueue"));
}
