//! Regression: the exact bytes every preset, a custom `payload`, a preset with a `payload`
//! overlay and a JSON `body` render for a fixed set of notifications, pinned in
//! `testdata/pinned.json` (a long output by its hash) before the render path was made faster (issue 28), so that no
//! change to how templates are rendered changes what is sent.
//!
//! `AMRELAY_BLESS_PINNED=1 cargo test --lib pinned` writes the file again (only for a change
//! that is meant to change the output; say so in the commit).

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value as Json, json};

use super::*;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/template/testdata/pinned.json");

fn alert(i: usize, status: &str, labels: Json, annotations: Json) -> Json {
    json!({"status": status, "labels": labels, "annotations": annotations,
           "startsAt": format!("2026-01-01T00:{:02}:00Z", i % 60), "endsAt": "0001-01-01T00:00:00Z",
           "generatorURL": format!("http://prometheus:9090/graph?g0.expr=up%7Bi%3D{i}%7D"),
           "fingerprint": format!("{i:016x}")})
}

/// A notification with Alertmanager's fields around `alerts`.
fn notification(status: &str, alerts: Vec<Json>, extra: Json) -> Json {
    let mut n = json!({"receiver": "team-x", "status": status, "alerts": alerts,
        "groupLabels": {"alertname": "DiskFull", "cluster": "eu-1"},
        "commonLabels": {"alertname": "DiskFull", "severity": "warning", "cluster": "eu-1", "instance": "node-1:9100"},
        "commonAnnotations": {"summary": "Disk almost full"}, "externalURL": "http://alertmanager.example:9093",
        "version": "4", "groupKey": "{}/{team=\"x\"}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0});
    if let (Json::Object(n), Json::Object(extra)) = (&mut n, extra) {
        n.extend(extra);
    }
    n
}

fn hostile() -> String {
    "\"quoted\" back\\slash\nnew line\ttab \u{1} <!channel> <@U123> <users/all> <at user_id=\"all\"> @everyone \
     `tick` *bold* _u_ | pipe ) paren & amp {{ 7*7 }} {% raw %} ünïcødé 日本語 🔥"
        .to_owned()
}

/// The notifications the outputs are pinned for: ordinary batches of 1, 10 and 100 alerts,
/// resolved and truncated ones, hostile text, Grafana's fields, missing and odd-typed fields.
fn notifications() -> Vec<(&'static str, Json)> {
    let mixed = |n: usize| -> Vec<Json> {
        (0..n)
            .map(|i| {
                let status = if i % 3 == 2 { "resolved" } else { "firing" };
                let severity = ["critical", "warning", "info", ""][i % 4];
                let mut labels = json!({"alertname": format!("DiskFull{}", i % 7), "instance": format!("node-{i}:9100"),
                    "job": "node"});
                if !severity.is_empty() {
                    labels["severity"] = json!(severity);
                }
                let annotations = match i % 5 {
                    0 => json!({"summary": format!("Disk {i} is 95% full"), "description": "Free some space."}),
                    1 => json!({"description": format!("Only the description of {i}")}),
                    2 => json!({"message": "a message only"}),
                    3 => json!({}),
                    _ => json!({"summary": "x".repeat(350), "runbook_url": "https://runbooks.example/disk"}),
                };
                alert(i, status, labels, annotations)
            })
            .collect()
    };
    let text = hostile();
    let mut grafana = alert(0, "firing", json!({"alertname": "Grafana", "grafana_folder": "ops"}), json!({}));
    grafana["panelURL"] = json!("http://grafana.example/d/abc?viewPanel=2");
    grafana["dashboardURL"] = json!("http://grafana.example/d/abc");
    grafana["silenceURL"] = json!("http://grafana.example/alerting/silence/new");
    grafana["values"] = json!({"A": 1.5, "B": 0});
    let mut long_url = alert(1, "firing", json!({"alertname": "LongURL"}), json!({"summary": "s"}));
    long_url["generatorURL"] = json!(format!("http://prometheus:9090/graph?g0.expr={}", "a".repeat(500)));
    vec![
        ("sample", serde_json::from_slice(&sample_notification()).unwrap()),
        ("one", notification("firing", mixed(1), json!({}))),
        ("ten", notification("firing", mixed(10), json!({}))),
        ("hundred", notification("firing", mixed(100), json!({}))),
        (
            "resolved",
            notification(
                "resolved",
                (0..3).map(|i| alert(i, "resolved", json!({"alertname": "Up"}), json!({}))).collect(),
                json!({}),
            ),
        ),
        (
            "resolved-truncated",
            notification(
                "resolved",
                vec![alert(0, "resolved", json!({"alertname": "Up"}), json!({"summary": "back"}))],
                json!({"truncatedAlerts": 7}),
            ),
        ),
        ("firing-truncated", notification("firing", mixed(4), json!({"truncatedAlerts": 12, "groupLabels": {}}))),
        (
            "hostile",
            notification(
                "firing",
                vec![
                    alert(
                        0,
                        "firing",
                        json!({"alertname": text, "severity": text, "x": text}),
                        json!({"summary": text}),
                    ),
                    alert(1, "resolved", json!({"alertname": "<!here>"}), json!({"description": text})),
                ],
                json!({"groupLabels": {"alertname": text, "zone": "a|b"}, "commonLabels": {"severity": "CRITICAL",
                       "alertname": text}, "externalURL": "http://am.example/a|b)c", "groupKey": text}),
            ),
        ),
        (
            "grafana",
            notification(
                "firing",
                vec![grafana, long_url],
                json!({"version": "1", "orgId": 1, "state": "alerting", "title": "[FIRING:1] Grafana",
                       "message": "text", "commonLabels": {}, "groupLabels": {}, "externalURL": ""}),
            ),
        ),
        (
            "odd-types",
            notification(
                "firing",
                vec![alert(0, "firing", json!({"alertname": 5, "severity": null}), json!({"summary": ["a", "b"]}))],
                json!({"truncatedAlerts": "3", "commonLabels": {"severity": 2.5, "priority": true},
                       "externalURL": null, "unknownField": {"nested": [1, 2, {"k": "v"}]}}),
            ),
        ),
        ("minimal", json!({"alerts": [], "status": "firing"})),
        ("no-alerts-field", json!({"status": "resolved", "commonLabels": {"severity": "info"}})),
    ]
}

fn all_options() -> Vec<(String, OptionValue)> {
    let plain = |k: &str, v: &str| (k.to_owned(), OptionValue { value: v.to_owned(), secret: false });
    let secret = |k: &str, v: &str| (k.to_owned(), OptionValue { value: v.to_owned(), secret: true });
    vec![
        plain("channel", "#alerts"),
        plain("username", "amrelay \"bot\""),
        plain("icon_emoji", ":fire:"),
        plain("icon_url", "https://example.com/i.png"),
        plain("avatar_url", "https://example.com/a.png"),
        secret("routing_key", "rk-secret"),
        plain("severity", "Warning"),
        plain("source", "src"),
        plain("component", "disk"),
        plain("group", "storage"),
        plain("class", "capacity"),
        plain("priority", "P2"),
        plain("entity", "node-1"),
        plain("responders", "team:sre, user:ann@example.com,escalation:night"),
        plain("chat_id", "-100123"),
        plain("message_thread_id", "42"),
        plain("disable_notification", "true"),
        plain("alias", "AM"),
        plain("avatar", "https://example.com/av.png"),
        plain("emoji", ":bell:"),
        plain("room_id", "Y2lzY29zcGFyazovL3Jvb20"),
        plain("msgtype", "m.notice"),
        secret("token", "app-token"),
        secret("user_key", "user-key"),
        plain("retry", "60"),
        plain("expire", "3600"),
        plain("sound", "siren"),
        plain("device", "phone"),
        plain("topic", "alerts"),
        plain("tags", "warning,disk"),
        plain("message_type", "CRITICAL"),
        plain("monitoring_tool", "prom"),
    ]
}

fn minimal_options() -> Vec<(String, OptionValue)> {
    super::tests::options(&[
        ("chat_id", "@channel_name"),
        ("routing_key", "rk"),
        ("room_id", "r"),
        ("token", "t"),
        ("user_key", "u"),
    ])
}

use super::tests::spec;

/// The custom `payload` of benches/templates.rs, compiled on `builder`.
fn bench_payload(builder: &mut Builder) -> PayloadNode {
    let leaves = [
        ("title", "[{{ status | upper }}] {{ commonLabels.alertname }}"),
        ("severity", "{{ commonLabels.severity or \"none\" }}"),
        ("count", "{{ alerts | length }}"),
        ("alerts", "{{ alerts | toJson }}"),
        ("source", "{{ externalURL }}"),
    ];
    PayloadNode::Map(
        leaves
            .iter()
            .map(|(k, v)| {
                (Leaf::Text((*k).into()), PayloadNode::Leaf(builder.leaf(&format!(".{k}"), v, false).unwrap()))
            })
            .collect(),
    )
}

/// Every renderer whose output is pinned, by name.
fn renderers() -> Vec<(String, Renderer)> {
    let mut out = Vec::new();
    for preset in Preset::ALL {
        for (tag, options) in [("all-options", all_options()), ("few-options", minimal_options())] {
            let mut builder = Builder::new();
            builder.preset(preset).unwrap();
            let renderer = builder.finish(Spec { preset: Some(preset), options, ..spec() });
            out.push((format!("{}/{tag}", preset.name()), renderer));
        }
    }
    let mut builder = Builder::new();
    let node = bench_payload(&mut builder);
    out.push(("custom-payload".into(), builder.finish(Spec { payload: Some(node), ..spec() })));

    let mut builder = Builder::new();
    builder.preset(Preset::Slack).unwrap();
    let overlay = PayloadNode::Map(vec![
        (
            Leaf::Text("channel".into()),
            PayloadNode::Leaf(builder.leaf(".channel", "#{{ commonLabels.cluster }}", false).unwrap()),
        ),
        (
            builder.leaf(".k", "x_{{ receiver }}", true).unwrap(),
            PayloadNode::Leaf(builder.leaf(".v", "{{ alerts | length }}", false).unwrap()),
        ),
    ]);
    out.push((
        "slack-with-overlay".into(),
        builder.finish(Spec { preset: Some(Preset::Slack), payload: Some(overlay), ..spec() }),
    ));

    let mut builder = Builder::new();
    let name = builder
        .body(
            "{\"t\": {{ status ~ \":\" ~ commonLabels.alertname }}, \"fired\": [{% for a in firing %}{{ a.labels.instance }}{% if not loop.last %},{% endif %}{% endfor %}], \"n\": {{ resolved | length }}, \"ok\": {{ options.x or \"none\" }}}",
            true,
        )
        .unwrap();
    out.push(("json-body".into(), builder.finish(Spec { body: Some(name), ..spec() })));
    out
}

/// Every output, by `renderer/notification/reveal`: the body, or the error, and the URL suffix.
fn outputs() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let notifications = notifications();
    for (name, renderer) in renderers() {
        for (case, notification) in &notifications {
            let bytes = serde_json::to_vec(notification).unwrap();
            for reveal in [Reveal::Send, Reveal::Preview] {
                let text = match renderer.render(&bytes, reveal) {
                    Ok(r) => {
                        let suffix = r.url_suffix.map(|s| format!("\nurl_suffix: {s}")).unwrap_or_default();
                        format!("{}{suffix}", String::from_utf8(r.body.to_vec()).unwrap())
                    }
                    Err(e) => format!("error: {e}"),
                };
                out.insert(format!("{name}/{case}/{reveal:?}"), pinned_form(text));
            }
        }
    }
    out
}

/// An output as pinned: its text, or for a long one its SHA-256 and size (the file stays small;
/// a difference still shows).
fn pinned_form(text: String) -> String {
    if text.len() <= 600 {
        return text;
    }
    format!("sha256:{} ({} bytes)", helpers::sha256_hex(&text), text.len())
}

// Regression: rendering stays byte-identical to the pinned outputs (issue 28's fast path).
#[test]
fn every_render_is_byte_identical_to_the_pinned_outputs() {
    let outputs = outputs();
    if std::env::var_os("AMRELAY_BLESS_PINNED").is_some() {
        std::fs::create_dir_all(std::path::Path::new(FILE).parent().unwrap()).unwrap();
        std::fs::write(FILE, serde_json::to_string_pretty(&outputs).unwrap() + "\n").unwrap();
        return;
    }
    let pinned: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(FILE).expect("pinned outputs")).expect("pinned outputs parse");
    assert_eq!(pinned.len(), outputs.len(), "the pinned cases changed");
    let mut differ = Vec::new();
    for (key, expected) in &pinned {
        if outputs.get(key) != Some(expected) {
            differ.push(key.as_str());
        }
    }
    let first = differ.first().map(|k| format!("\nfirst: {k}\npinned: {}\nnow:    {}", pinned[*k], outputs[*k]));
    assert!(differ.is_empty(), "{} outputs differ: {differ:?}{}", differ.len(), first.unwrap_or_default());
}

/// Alertmanager-shaped notifications with arbitrary text where alerts carry text, odd values
/// where a template might not expect them, and arbitrary extra fields.
fn any_notification() -> impl Strategy<Value = Json> {
    let text = prop_oneof![Just(String::new()), "[a-zA-Z0-9 ]{1,12}", ".{0,40}", "[<>&|`*_@!\"\\\n\u{1}é🔥]{0,12}"];
    let odd = prop_oneof![
        text.clone().prop_map(Json::from),
        Just(Json::Null),
        any::<i64>().prop_map(Json::from),
        any::<bool>().prop_map(Json::from),
        (0.0f64..1e6).prop_map(Json::from),
        prop::collection::vec(text.clone(), 0..3).prop_map(Json::from),
    ];
    let names = prop_oneof![
        Just("alertname".to_owned()),
        Just("severity".to_owned()),
        Just("summary".to_owned()),
        Just("description".to_owned()),
        Just("instance".to_owned()),
        "[a-z_]{1,8}"
    ];
    let map = |values: BoxedStrategy<Json>| {
        prop::collection::btree_map(names.clone(), values, 0..5).prop_map(|m| Json::Object(m.into_iter().collect()))
    };
    let labels = map(text.clone().prop_map(Json::from).boxed());
    let annotations = map(prop_oneof![4 => text.clone().prop_map(Json::from), 1 => odd.clone()].boxed());
    let url = prop_oneof![
        Just(None),
        text.clone().prop_map(|t| Some(format!("http://prom.example/{t}"))),
        ".{0,450}".prop_map(Some)
    ];
    let alert =
        (prop_oneof![Just("firing"), Just("resolved"), Just("pending")], labels.clone(), annotations, url.clone(), url)
            .prop_map(|(status, labels, annotations, source, panel)| {
                let mut a = json!({"status": status, "labels": labels, "annotations": annotations,
                "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "f"});
                if let Some(source) = source {
                    a["generatorURL"] = json!(source);
                }
                if let Some(panel) = panel {
                    a["panelURL"] = json!(panel);
                }
                a
            });
    (
        prop::collection::vec(alert, 0..12),
        prop_oneof![Just("firing"), Just("resolved")],
        labels.clone(),
        labels,
        prop_oneof![Just(json!(0)), (0u64..50).prop_map(Json::from), odd.clone()],
        prop_oneof![Just("http://am.example:9093".to_owned()), text.clone()],
        text,
        odd,
    )
        .prop_map(|(alerts, status, group, common, truncated, external, group_key, extra)| {
            json!({"receiver": "r", "status": status, "alerts": alerts, "groupLabels": group, "commonLabels": common,
                   "commonAnnotations": {}, "externalURL": external, "version": "4", "groupKey": group_key,
                   "truncatedAlerts": truncated, "extra": extra})
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    // Regression: the lazy views render exactly what the value tree rendered, for every preset,
    // a custom payload and a JSON body, over arbitrary notifications (issue 28's fast path).
    #[test]
    fn the_lazy_views_render_what_the_value_tree_rendered(notification in any_notification()) {
        let bytes = serde_json::to_vec(&notification).unwrap();
        let render = |renderer: &Renderer, tree: bool| {
            helpers::VALUE_TREE.with(|t| t.set(tree));
            let out = renderer.render(&bytes, Reveal::Send).map(|r| (r.body, r.url_suffix)).map_err(|e| e.to_string());
            helpers::VALUE_TREE.with(|t| t.set(false));
            out
        };
        for (name, renderer) in RENDERERS.with(|r| r.clone()).iter() {
            prop_assert_eq!(render(renderer, false), render(renderer, true), "{}", name);
        }
    }
}

thread_local! {
    /// Compiled once per test thread: building them is most of a case's time otherwise.
    static RENDERERS: std::rc::Rc<Vec<(String, Renderer)>> = std::rc::Rc::new(renderers());
}
