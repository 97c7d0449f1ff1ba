//! Property tests for the three parsers of untrusted text: the webhook decoder, the matcher
//! parser and the config loader. Any input gives a value or an error — never a panic, and
//! (checked by the time bound of each case) never a hang. Case counts are small so the suite
//! stays fast; `fuzz/` runs the same targets for as long as one likes.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};

/// Any case taking longer than this counts as a hang.
const PER_CASE: Duration = Duration::from_secs(2);

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Arbitrary JSON, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{0,6}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Alertmanager-shaped payloads with arbitrary label names and values, and arbitrary extras.
fn webhook_payload() -> impl Strategy<Value = Value> {
    let labels = prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", ".{0,10}", 0..5);
    let alert = (prop_oneof![Just("firing"), Just("resolved")], labels.clone(), labels).prop_map(
        |(status, labels, annotations)| json!({"status": status, "labels": labels, "annotations": annotations}),
    );
    (prop::collection::vec(alert, 0..8), ".{0,20}", any_json()).prop_map(|(alerts, group_key, extra)| {
        json!({"version": "4", "groupKey": group_key, "alerts": alerts, "status": "firing", "receiver": "r",
               "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "extra": extra})
    })
}

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(started.elapsed() < PER_CASE, "took {:?}", started.elapsed());
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn decode_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        timed(|| {
            let _ = amrelay::payload::nesting_exceeds(&bytes, 32);
            let _ = amrelay::payload::decode(&bytes);
        });
    }

    #[test]
    fn decode_never_panics_on_json(value in any_json()) {
        let body = value.to_string();
        timed(|| { let _ = amrelay::payload::decode(body.as_bytes()); });
    }

    /// A well-formed payload decodes with every alert and label intact, and what the encoder
    /// makes of it decodes again to the same alerts.
    #[test]
    fn valid_payloads_decode_and_round_trip(value in webhook_payload()) {
        let body = value.to_string();
        let notification = amrelay::payload::decode(body.as_bytes()).expect("a valid payload decodes");
        let alerts = value["alerts"].as_array().unwrap();
        prop_assert_eq!(notification.alerts.len(), alerts.len());
        for (decoded, sent) in notification.alerts.iter().zip(alerts) {
            for (name, label) in sent["labels"].as_object().unwrap() {
                prop_assert_eq!(decoded.labels.value(name), label.as_str());
            }
        }
        let all: Vec<usize> = (0..notification.alerts.len()).collect();
        let mut encoded = Vec::new();
        amrelay::payload::encode(&notification, &all, 0, &mut encoded);
        let again = amrelay::payload::decode(&encoded).expect("the encoder's output decodes");
        prop_assert_eq!(again.alerts.len(), alerts.len());
    }

    #[test]
    fn matcher_parser_never_panics(text in ".{0,64}") {
        timed(|| {
            if let Ok(matchers) = amrelay::rule::parse_matchers(&text) {
                for m in matchers {
                    let _ = m.matches(&text);
                }
            }
        });
    }

    #[test]
    fn matcher_parser_never_panics_on_matcher_like_text(text in r#"\{?[a-z_]{0,4}(=|!=|=~|!~)?"?[a-z.*()|\[\]\\"{},]{0,12}"?\}?"#) {
        timed(|| { let _ = amrelay::rule::parse_matchers(&text); });
    }

    /// `name="value"` parses and holds exactly for that value; `name=~"re"` is anchored.
    #[test]
    fn equality_matchers_hold_for_their_value(name in "[a-zA-Z_][a-zA-Z0-9_]{0,10}", value in "[a-zA-Z0-9 ._-]{1,16}") {
        let matchers = amrelay::rule::parse_matchers(&format!("{name}={value:?}")).unwrap();
        prop_assert_eq!(matchers.len(), 1);
        prop_assert!(matchers[0].matches(&value));
        let other = format!("{value}x");
        prop_assert!(!matchers[0].matches(&other));
        let regex = amrelay::rule::parse_matchers(&format!("{name}=~\"{}\"", regex::escape(&value))).unwrap();
        prop_assert!(regex[0].matches(&value));
        prop_assert!(!regex[0].matches(&other));
    }

    #[test]
    fn config_loader_never_panics(text in ".{0,200}") {
        timed(|| { let _ = amrelay::config::from_str(&text, Path::new("/nonexistent/amrelay.yml"), &amrelay::config::Environment::empty()); });
    }
}

fn yaml_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_./:-]{0,12}",
        Just("${AMRELAY_SURELY_UNSET}".to_owned()),
        Just("$${X}".to_owned()),
        Just("*a".to_owned()),
        Just("&a x".to_owned()),
        Just("!!binary aGk=".to_owned()),
        Just("~".to_owned()),
        Just("-1".to_owned()),
        Just("1e999".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("10s".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
    ]
}

/// Config-shaped YAML: real keys in random places, with hostile scalars.
fn config_like() -> impl Strategy<Value = String> {
    let keys = prop_oneof![
        Just("server"),
        Just("receivers"),
        Just("delivery"),
        Just("name"),
        Just("url"),
        Just("limits"),
        Just("tls_server_config"),
        Just("basic_auth_users"),
        Just("authorization"),
        Just("open_endpoints"),
        Just("signing"),
        Just("http_config"),
        Just("proxy_url"),
        Just("conditions"),
        Just("matchers"),
        Just("max_json_depth"),
        Just("cert_file"),
        Just("secret"),
        Just("credentials"),
        Just("retry"),
    ];
    prop::collection::vec((0usize..4, keys, prop::option::of(yaml_scalar()), any::<bool>()), 0..16).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(indent, key, value, dash)| {
                let dash = if dash { "- " } else { "" };
                format!("{}{dash}{key}:{}\n", "  ".repeat(indent), value.map(|v| format!(" {v}")).unwrap_or_default())
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn config_loader_never_panics_on_config_like_yaml(text in config_like()) {
        timed(|| {
            if let Err(e) = amrelay::config::from_str(&text, Path::new("/nonexistent/amrelay.yml"), &amrelay::config::Environment::empty()) {
                let _ = e.to_string();
            }
        });
    }
}

/// Billion laughs: YAML aliases that would expand exponentially are refused, quickly.
#[test]
fn config_loader_refuses_alias_bombs_quickly() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        yaml += &format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", "));
    }
    yaml += "receivers: *a11\n";
    let result = timed(|| {
        amrelay::config::from_str(&yaml, Path::new("/nonexistent/amrelay.yml"), &amrelay::config::Environment::empty())
    });
    assert!(result.is_err());
}

/// Alertmanager- and Grafana-shaped payloads with arbitrary JSON where the decoder only skips or
/// keeps raw text (an alert's unknown fields and `fingerprint`, `commonLabels`, `groupLabels`,
/// top-level extras), sometimes with a syntax error or a truncation after it.
fn nested_payload() -> impl Strategy<Value = Vec<u8>> {
    (any_json(), any_json(), any_json(), any_json(), any_json(), 0usize..3, 0usize..64).prop_map(
        |(values, fingerprint, common, group, extra, damage, cut)| {
            let body = json!({"version": "1", "status": "firing", "groupKey": "g",
                "alerts": [{"status": "firing", "labels": {"a": "b"}, "values": values, "fingerprint": fingerprint}],
                "commonLabels": common, "groupLabels": {"x": group}, "extra": extra});
            let mut bytes = body.to_string().into_bytes();
            match damage {
                1 => bytes.truncate(bytes.len().saturating_sub(cut)),
                2 => {
                    let at = bytes.len().saturating_sub(cut + 1);
                    bytes[at] = b'@';
                }
                _ => {}
            }
            bytes
        },
    )
}

/// `max_json_depth` is enforced inside the decoder's one pass; it must refuse exactly what the
/// former pre-check (`nesting_exceeds`, before decoding) refused, and change nothing else.
fn folded_depth_check_agrees(bytes: &[u8], max: usize) -> Result<(), TestCaseError> {
    use amrelay::payload::{DecodeError, decode, decode_within, nesting_exceeds};
    let index = amrelay::rule::LabelIndex::default();
    let folded = decode_within(bytes, &index, max);
    let too_deep = matches!(folded, Err(DecodeError::TooDeep(m)) if m == max);
    prop_assert_eq!(too_deep, nesting_exceeds(bytes, max), "max {}: {:?}", max, String::from_utf8_lossy(bytes));
    if !too_deep {
        prop_assert_eq!(folded.is_ok(), decode(bytes).is_ok());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn folded_depth_check_agrees_with_the_pre_check_on_payloads(bytes in nested_payload(), max in 1usize..10) {
        folded_depth_check_agrees(&bytes, max)?;
    }

    #[test]
    fn folded_depth_check_agrees_with_the_pre_check_on_bytes(
        bytes in prop::collection::vec(prop::sample::select(b"{}[]\",:\\ 1ab".to_vec()), 0..48), max in 0usize..6
    ) {
        folded_depth_check_agrees(&bytes, max)?;
    }

    #[test]
    fn folded_depth_check_agrees_with_the_pre_check_on_json(value in any_json(), max in 0usize..7) {
        let body = json!({"version": "4", "alerts": [], "x": value}).to_string();
        folded_depth_check_agrees(body.as_bytes(), max)?;
    }
}
