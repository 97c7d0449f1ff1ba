//! Tests of the secret table: redaction and refilling agree, presets decide their options.

use serde_json::json;

use super::*;
use crate::editor::document::tests::definition;

/// A definition with a secret in every place of [`SECRETS`], each a distinct `s3cret-…`.
fn every_secret() -> Value {
    json!({
        "name": "all",
        "url": "https://hooks.example/services/s3cret-path",
        "headers": {"X-Api-Key": "s3cret-header"},
        "signing": {"secret": "s3cret-signing"},
        "preset": "pagerduty",
        "preset_options": {"routing_key": "s3cret-routing", "severity": "critical"},
        "http_config": {
            "basic_auth": {"username": "u", "password": "s3cret-password"},
            "authorization": {"credentials": "s3cret-credentials"},
            "bearer_token": "s3cret-bearer",
            "tls_config": {"key": "s3cret-tls-key"},
            "proxy_url": "http://user:s3cret-proxy@proxy.example:3128",
            "proxy_connect_header": {"Proxy-Authorization": ["s3cret-connect"]},
            "http_headers": {"X-Token": {"values": ["plain"], "secrets": ["s3cret-h1", "s3cret-h2"]}},
            "oauth2": {
                "client_id": "c",
                "client_secret": "s3cret-client",
                "token_url": "https://auth.example/token",
                "endpoint_params": {"audience": "s3cret-param"},
                "tls_config": {"key": "s3cret-oauth-key"},
                "proxy_url": "http://user:s3cret-oauth-proxy@proxy.example:3128",
                "proxy_connect_header": {"Proxy-Authorization": ["s3cret-oauth-connect"]},
            },
        },
    })
}

/// The single source: every secret the answer blanks is one the edit refills, and the
/// names a form is told are stored are exactly the definition's spots.
#[test]
fn every_secret_shown_blank_is_refilled_from_the_same_table() {
    let stored = every_secret();
    let (shown, set) = redact(&stored);
    assert!(!shown.to_string().contains("s3cret"), "{shown}");
    let names: Vec<String> = spots(&stored).into_iter().map(|s| s.name).collect();
    assert_eq!(set, names);
    // One spot per place of the table, and more for maps with several keys: none is missed.
    assert!(set.len() >= SECRETS.len(), "{set:?}");
    let mut edited = shown;
    keep_blank_secrets(&mut edited, &stored).unwrap();
    assert_eq!(edited, stored);
}

/// Regression (issue 22): a preset's secret options were guessed from their names
/// (`key`, `token`, …); they come from the preset's metadata, as the config reads them.
#[test]
fn preset_secret_options_come_from_the_presets_metadata() {
    for preset in Preset::ALL {
        for option in preset.options() {
            let stored = json!({
                "name": "p",
                "url": "https://x.example/",
                "preset": preset.name(),
                "preset_options": {option.name: "v4lue", format!("{}_file", option.name): "/etc/amrelay/v"},
            });
            let (shown, set) = redact(&stored);
            let blanked = shown["preset_options"][option.name] == "";
            assert_eq!(blanked, option.secret, "{} {}", preset.name(), option.name);
            assert_eq!(set.contains(&format!("preset_options.{}", option.name)), option.secret);
            // The `_file` form names a file: shown.
            assert_eq!(shown["preset_options"][format!("{}_file", option.name)], "/etc/amrelay/v");
            let mut edited = shown;
            keep_blank_secrets(&mut edited, &stored).unwrap();
            assert_eq!(edited, stored);
        }
    }
    // No preset the console knows: every inline option is hidden.
    let (shown, _) = redact(&json!({"name": "p", "preset": "nope", "preset_options": {"channel": "c"}}));
    assert_eq!(shown["preset_options"]["channel"], "");
}

/// What the table lists, the validated config holds out of sight (as a `Secret` or a
/// sensitive header): redacting and validating agree on what is secret.
#[test]
fn the_validated_config_never_shows_a_listed_secret() {
    let main = crate::config::from_str(
        "receivers: []\n",
        std::path::Path::new("/nonexistent/amrelay.yml"),
        &crate::config::Environment::empty(),
    )
    .unwrap();
    let http = |http_config: Value| json!({"name": "r", "url": "https://x.example/", "http_config": http_config});
    let definitions = [
        json!({"name": "r", "url": "https://x.example/", "headers": {"X-Api-Key": "s3cret-header"}, "signing": {"secret": "s3cret-signing-0123456789"}}),
        http(json!({"basic_auth": {"username": "u", "password": "s3cret-password"}})),
        http(json!({"authorization": {"credentials": "s3cret-credentials"}})),
        http(json!({"bearer_token": "s3cret-bearer"})),
        http(json!({"http_headers": {"X-Token": {"secrets": ["s3cret-h1"]}}})),
        // Not `endpoint_params`: the config holds them as plain strings; the console hides them
        // anyway (they may carry an assertion or a key).
        http(
            json!({"oauth2": {"client_id": "c", "client_secret": "s3cret-client", "token_url": "https://a.example/t"}}),
        ),
        json!({"name": "r", "url": "https://x.example/", "preset": "pagerduty", "preset_options": {"routing_key": "s3cret-routing"}}),
    ];
    for definition in definitions {
        let (shown, _) = redact(&definition);
        assert!(!shown.to_string().contains("s3cret"), "{shown}");
        let text = crate::editor::Document { receivers: vec![definition.clone()] }.render().unwrap();
        let console = crate::config::console_from_str(&text, std::path::Path::new("/nonexistent/c.yml"), &main)
            .unwrap_or_else(|e| panic!("{definition}: {e}"));
        let debug = format!("{:?}", console.receivers);
        assert!(!debug.contains("s3cret"), "{definition}: {debug}");
    }
}

#[test]
fn redacting_hides_every_secret_and_blank_ones_are_kept() {
    let stored = definition();
    let (shown, set) = redact(&stored);
    let text = shown.to_string();
    for secret in ["k3y", "t0ken", "XXXX"] {
        assert!(!text.contains(secret), "{text}");
    }
    assert_eq!(shown["url"], "https://hooks.slack.com/services/***");
    assert_eq!(set, ["http_config.authorization.credentials", "headers.X-Api-Key"]);
    // The form sends back what it was shown: every secret is kept.
    let mut edited = shown.clone();
    keep_blank_secrets(&mut edited, &stored).unwrap();
    assert_eq!(edited, stored);
    // A secret typed in replaces the stored one.
    let mut edited = shown.clone();
    edited["http_config"]["authorization"]["credentials"] = json!("new");
    keep_blank_secrets(&mut edited, &stored).unwrap();
    assert_eq!(edited["http_config"]["authorization"]["credentials"], "new");
    // Another host: stored secrets are not sent there unless typed again.
    let mut edited = shown;
    edited["url"] = json!("https://elsewhere.example/hook");
    let errors = keep_blank_secrets(&mut edited, &stored).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["headers.X-Api-Key", "http_config.authorization.credentials"]);
}

/// Regression (review): the guard looked at the URL's host alone, so a stored token could be
/// sent in clear, through a proxy, past a new CA or to a new token endpoint.
#[test]
fn stored_secrets_are_kept_only_while_they_go_where_they_went() {
    let stored = definition();
    let (shown, _) = redact(&stored);
    let elsewhere: [(&str, Value); 6] = [
        ("/url", json!("http://hooks.slack.com/services/T000/B000/XXXX")),
        ("/http_config/proxy_url", json!("http://proxy.attacker.example:3128")),
        ("/http_config/tls_config", json!({"insecure_skip_verify": true})),
        ("/http_config/tls_config", json!({"ca": "-----BEGIN CERTIFICATE-----"})),
        ("/http_config/oauth2", json!({"client_id": "a", "token_url": "https://attacker.example/token"})),
        // Regression (review): a redirect could then take the stored token where it pointed.
        ("/http_config/follow_redirects", json!(true)),
    ];
    for (at, value) in elsewhere {
        let mut edited = shown.clone();
        let (parent, key) = at.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() { &mut edited } else { edited.pointer_mut(parent).unwrap() };
        parent[key] = value.clone();
        let errors = keep_blank_secrets(&mut edited, &stored).expect_err(at);
        assert!(errors.iter().any(|e| e.field == "http_config.authorization.credentials"), "{at} {value}");
    }
    // Turning follow_redirects off, or keeping it on, keeps the stored secrets.
    let mut following = definition();
    following["http_config"]["follow_redirects"] = json!(true);
    let (shown, _) = redact(&following);
    for follows in [true, false] {
        let mut edited = shown.clone();
        edited["http_config"]["follow_redirects"] = json!(follows);
        keep_blank_secrets(&mut edited, &following).unwrap();
        assert_eq!(edited["http_config"]["authorization"]["credentials"], "t0ken");
    }
    // Every value of a secret map is blanked and kept.
    let mut stored = definition();
    stored["http_config"]["proxy_connect_header"] = json!({"Proxy-Authorization": ["Basic czNjcmV0"]});
    stored["http_config"]["proxy_url"] = json!("http://proxy.example:3128");
    let (shown, _) = redact(&stored);
    assert!(!shown.to_string().contains("czNjcmV0"), "{shown}");
    let mut edited = shown.clone();
    keep_blank_secrets(&mut edited, &stored).unwrap();
    assert_eq!(edited, stored);
}
