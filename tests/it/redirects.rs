//! `follow_redirects`: where a 307/308 may take a notification, and what goes with it. The
//! receiver's credentials, secret headers and signature go only to its own origin (scheme, host
//! and port); another origin gets the body and the plain headers; https never hands over to
//! http. Two downstreams on two ports of 127.0.0.1 are two origins.

use std::time::Duration;

use crate::support::token_endpoint::TokenEndpoint;
use crate::support::{Answer, Downstream, Pki, TestRelay, batch, get};

/// The headers only the receiver's own origin may see.
const SECRET_HEADERS: [&str; 5] =
    ["authorization", "x-api-key", "x-secret-header", "x-amrelay-signature", "x-amrelay-timestamp"];

fn one_alert() -> String {
    batch(
        "{}:{alertname=\"Redirected\"}",
        vec![crate::support::alert("firing", serde_json::json!({"alertname": "Redirected"}))],
    )
}

/// Regression (issue 21): a cross-host 307 received the bearer token, the custom and secret
/// headers and the signature. A same-origin hop still carries them all; the other origin gets
/// the same body and the plain header only.
#[tokio::test]
async fn a_redirect_to_another_origin_carries_no_credentials_secret_headers_or_signature() {
    let (origin, other) = (Downstream::start().await, Downstream::start().await);
    origin.script([
        Answer::status(307).with_header("location", "/same-origin"),
        Answer::status(307).with_header("location", other.url("/other-origin")),
    ]);
    let yaml = format!(
        "receivers:
  - name: moves
    url: {}
    headers: {{X-Api-Key: redirect-ap1-key}}
    signing: {{secret: redirect-s1gning-secret-0123}}
    http_config:
      follow_redirects: true
      authorization: {{credentials: redirect-b3arer}}
      http_headers:
        X-Secret-Header: {{secrets: [redirect-h3ader]}}
        X-Plain: {{values: [visible]}}
",
        origin.url("/first")
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", one_alert()).await.status, 200);
    let at_origin = origin.wait_for(2).await;
    let at_other = other.wait_for(1).await;
    assert_eq!((at_origin[0].path.as_str(), at_origin[1].path.as_str()), ("/first", "/same-origin"));
    for request in &at_origin {
        for name in SECRET_HEADERS {
            assert!(request.header(name).is_some(), "{name} missing at {}", request.path);
        }
    }
    assert_eq!(at_origin[1].header("authorization"), Some("Bearer redirect-b3arer"));
    let landed = &at_other[0];
    assert_eq!(landed.path, "/other-origin");
    assert_eq!(landed.raw_body, at_origin[0].raw_body, "the same body");
    assert_eq!(landed.header("x-plain"), Some("visible"), "plain headers go along");
    for name in SECRET_HEADERS {
        assert_eq!(landed.header(name), None, "{name} went to another origin");
    }
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="moves"}"#, 1.0).await;
}

/// An OAuth2 token is fetched for the receiver's origin only: a redirect elsewhere gets none.
#[tokio::test]
async fn a_redirect_to_another_origin_carries_no_oauth2_token() {
    let tokens = TokenEndpoint::start(3600).await;
    let (origin, other) = (Downstream::start().await, Downstream::start().await);
    origin.script([Answer::status(308).with_header("location", other.url("/elsewhere"))]);
    let yaml = format!(
        "receivers:
  - name: oauth
    url: {}
    http_config:
      follow_redirects: true
      oauth2: {{client_id: relay, client_secret: redirect-cl1ent-secret, token_url: {}}}
",
        origin.url("/hook"),
        tokens.url()
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", one_alert()).await.status, 200);
    let at_origin = origin.wait_for(1).await;
    assert!(at_origin[0].header("authorization").is_some_and(|a| a.starts_with("Bearer ")));
    let at_other = other.wait_for(1).await;
    assert_eq!(at_other[0].header("authorization"), None);
    assert_eq!(tokens.requests().len(), 1, "no token is fetched for the other origin");
}

/// Regression (issue 21): a redirect from https to http was followed (to the same host, with
/// the `Authorization` header). It is never followed: the attempt fails with a clear detail and,
/// like any redirect not followed, is not retried (dead-lettered as `non_retryable`).
#[tokio::test]
async fn a_redirect_from_https_to_http_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), "redirects");
    let secure = Downstream::start_tls(pki.server_config(false)).await;
    let plain = Downstream::start().await;
    // To another port, and to the same host and port in clear.
    let same_port = format!("http://{}/downgraded", secure.addr);
    secure.script([
        Answer::status(307).with_header("location", plain.url("/downgraded")),
        Answer::status(308).with_header("location", same_port),
    ]);
    let yaml = format!(
        "receivers:
  - name: secure
    url: {}
    http_config:
      follow_redirects: true
      authorization: {{credentials: https-only-t0ken}}
      tls_config: {{ca_file: ca.pem}}
",
        secure.url("/hook")
    );
    let relay = TestRelay::start_in(dir, &yaml).await;
    assert_eq!(relay.post("/webhook", one_alert()).await.status, 200);
    relay
        .wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="secure",reason="non_retryable"}"#, 1.0)
        .await;
    let status = get(&relay.url("/api/v1/status")).await.json();
    let receiver = &status["data"]["receivers"][0];
    let error = receiver["last_error"]["error"].as_str().unwrap();
    assert!(error.contains("HTTP 307") && error.contains("from https to http"), "{error}");

    // The test message says the same.
    let test = relay.post("/api/v1/receivers/secure/test", "").await;
    assert_eq!(test.status, 502, "{}", test.text());
    assert!(test.json()["data"]["error"].as_str().unwrap().contains("not followed"), "{}", test.text());
    assert_eq!(secure.received().len(), 2);
    plain.assert_stays_at(0, Duration::from_millis(200)).await;
}

/// A downstream that redirects to itself for ever: the attempt follows `MAX_REDIRECTS` (10)
/// redirects, no more, and the notification is dead-lettered saying so (a 3xx is not retried).
#[tokio::test]
async fn redirects_are_followed_ten_times_then_the_notification_is_dead_lettered() {
    let looping = Downstream::start().await;
    looping.always(Answer::status(307).with_header("location", "/again"));
    let yaml = format!(
        "receivers:\n  - name: loops\n    url: {}\n    http_config: {{follow_redirects: true}}\n",
        looping.url("/first")
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", one_alert()).await.status, 200);
    let letters = crate::support::eventually::eventually("the dead letter", crate::support::WAIT, async || {
        let listed = get(&relay.url("/api/v1/deadletters")).await.json();
        listed["data"].as_array().filter(|letters| !letters.is_empty()).cloned()
    })
    .await;
    assert!(letters[0]["last_error"].as_str().unwrap().contains("stopped after 10 redirects"), "{letters:?}");
    looping.assert_stays_at(11, Duration::from_millis(300)).await;
}
