//! Browsers kept out of state changes (issue: hardening): a page on another site cannot make a
//! visitor's browser post to the relay, a body without `application/json` is never taken for
//! JSON, and every answer tells browsers not to sniff or frame it.

use crate::credentials::request_with;
use crate::support::{Downstream, TestRelay, alert, batch, get};
use serde_json::json;

fn one_batch() -> String {
    batch("{}:{a=\"1\"}", vec![alert("firing", json!({"alertname": "A"}))])
}

/// Regression: a cross-site POST was accepted and delivered.
#[tokio::test]
async fn cross_site_posts_are_refused_and_deliver_nothing() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&format!("receivers:\n  - name: d\n    url: {}\n", downstream.url("/"))).await;
    let json = ("content-type", "application/json");
    let refused = [
        vec![json, ("sec-fetch-site", "cross-site")],
        vec![json, ("sec-fetch-site", "same-site")],
        vec![json, ("origin", "https://attacker.example")],
        vec![json, ("origin", "null")],
    ];
    for headers in &refused {
        for path in ["/webhook", "/-/reload", "/api/v1/receivers/d/test", "/api/v1/deadletters/replay"] {
            let reply = request_with("POST", &relay.url(path), headers, one_batch()).await;
            assert_eq!(reply.status, 403, "{path} with {headers:?}: {}", reply.text());
            assert!(reply.text().contains("refusing"), "{}", reply.text());
        }
    }
    // The console itself is same-origin; Alertmanager and scripts send no browser headers.
    let same_origin = [json, ("sec-fetch-site", "same-origin")];
    assert_eq!(request_with("POST", &relay.url("/webhook"), &same_origin, one_batch()).await.status, 200);
    let host = relay.url("/").trim_start_matches("http://").trim_end_matches('/').to_owned();
    let origin = format!("http://{host}");
    let own_origin = [json, ("origin", origin.as_str())];
    assert_eq!(request_with("POST", &relay.url("/webhook"), &own_origin, one_batch()).await.status, 200);
    assert_eq!(request_with("POST", &relay.url("/webhook"), &[json], one_batch()).await.status, 200);
    downstream.wait_for(3).await;
    downstream.assert_stays_at(3, std::time::Duration::from_millis(300)).await;
    // Reading stays possible from anywhere the network allows.
    let read = request_with("GET", &relay.url("/api/v1/status"), &[("sec-fetch-site", "cross-site")], "").await;
    assert_eq!(read.status, 200);
}

/// Regression: a body without a Content-Type (what a cross-site form can send) was decoded.
#[tokio::test]
async fn json_endpoints_require_application_json() {
    let relay = TestRelay::start("receivers: []\n").await;
    for path in ["/webhook", "/api/v1/route-test"] {
        let reply = request_with("POST", &relay.url(path), &[], one_batch()).await;
        assert_eq!(reply.status, 415, "{path}: {}", reply.text());
        let form = [("content-type", "application/x-www-form-urlencoded")];
        assert_eq!(request_with("POST", &relay.url(path), &form, one_batch()).await.status, 415);
    }
}

/// Every answer says nosniff and no framing; the console's CSP allows its own inline script
/// and style by hash only, never `unsafe-inline`.
#[tokio::test]
async fn answers_are_hardened_and_the_console_policy_pins_its_script() {
    let relay = TestRelay::start("receivers: []\n").await;
    for path in ["/", "/api/v1/status", "/-/healthy", "/metrics", "/no-such-page"] {
        let reply = get(&relay.url(path)).await;
        assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(reply.headers["x-frame-options"], "DENY", "{path}");
    }
    let page = get(&relay.url("/")).await;
    let csp = page.headers["content-security-policy"].to_str().unwrap().to_owned();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.text();
    let script = &html[html.find("<script>").unwrap() + 8..html.find("</script>").unwrap()];
    use base64::Engine;
    let digest = ring::digest::digest(&ring::digest::SHA256, script.as_bytes());
    let expected = format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest.as_ref()));
    assert!(csp.contains(&format!("script-src {expected}")), "{csp}");
}
