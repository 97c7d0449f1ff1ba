//! The receiver form of the console in a real browser (headless Chromium, Debian's `chromium`
//! and `chromium-driver`), filled like a user fills KubeSphere's: name, URL, bearer token, two
//! conditions with values on two lines; Send Test Message, OK, then a batch routed by those
//! conditions, and the Enabled toggle stopping deliveries. With `AMRELAY_SCREENSHOT_DIR=docs`,
//! saves the form's screenshot as docs/console-form.png, which docs/console.md shows.

use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{Browser, click, wait_text};
use crate::support::{Downstream, TestRelay, alert, batch, post_json};

async fn type_into(client: &Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn select(client: &Client, css: &str, value: &str) {
    client.find(Locator::Css(css)).await.unwrap().select_by_value(value).await.unwrap();
}

async fn visible(client: &Client, css: &str) -> bool {
    client.find(Locator::Css(css)).await.unwrap().is_displayed().await.unwrap()
}

/// The form end to end: inline errors, Send Test Message with the typed bearer token, OK,
/// routing by the two conditions, the card's source and Edit button, and disabling.
#[tokio::test]
async fn the_receiver_form_works_end_to_end_in_headless_chromium() {
    let downstream = Downstream::start().await;
    let yaml = format!(
        "delivery:
  retry: {{initial_backoff: 10ms, max_backoff: 20ms}}
  spool: {{path: spool.redb}}
receivers:
  - name: from-file
    url: {}
    conditions: [{{label: team, operator: In, values: [nobody]}}]
",
        downstream.url("/from-file")
    );
    let relay = TestRelay::start(&yaml).await;
    let page = relay.url("/");
    let webhook = relay.url("/webhook");
    let hook = downstream.url("/kubesphere");
    let seen = downstream.clone();
    Browser::run(move |client| async move {
        client.goto(&page).await.unwrap();
        let file_card = wait_text(&client, r#"tr[data-receiver="from-file"]"#, |t| t.contains("from file")).await;
        assert!(!file_card.contains("Edit"), "file receivers are read-only: {file_card}");

        click(&client, "#new-receiver").await;
        assert!(visible(&client, "#receiver-form").await);
        type_into(&client, "#f-name", "team-payments").await;
        type_into(&client, "#f-url", "ftp://wrong.example").await;
        select(&client, "#f-auth", "bearer").await;
        assert!(visible(&client, "#f-token").await && !visible(&client, "#f-username").await);
        type_into(&client, "#f-token", "kube-t0ken").await;
        click(&client, "#f-add-condition").await;
        click(&client, "#f-add-condition").await;
        let row = |n: usize, part: &str| format!("#f-conditions .cond-row:nth-child({n}) {part}");
        type_into(&client, &row(1, ".cond-label"), "severity").await;
        type_into(&client, &row(1, ".cond-values"), "critical\nwarning").await;
        type_into(&client, &row(2, ".cond-label"), "namespace").await;
        // Exists hides the values, as in KubeSphere; back to "includes values".
        select(&client, &row(2, ".cond-operator"), "Exists").await;
        assert!(!visible(&client, &row(2, ".cond-values")).await);
        select(&client, &row(2, ".cond-operator"), "In").await;
        type_into(&client, &row(2, ".cond-values"), "payments\nbilling").await;
        // Skipping TLS verification shows its warning.
        click(&client, "#f-skip-tls").await;
        assert!(visible(&client, "#f-skip-tls-warning").await);
        click(&client, "#f-skip-tls").await;
        assert!(!visible(&client, "#f-skip-tls-warning").await);

        // OK with a bad URL: the error is next to the URL field; nothing saved.
        click(&client, "#f-ok").await;
        let error = wait_text(&client, r#"[data-field="url"] > .field-error"#, |t| !t.is_empty()).await;
        assert!(error.contains("absolute http:// or https:// URL"), "{error}");
        type_into(&client, "#f-url", &hook).await;

        // Send Test Message, before OK: arrives with the bearer token typed.
        click(&client, "#f-test").await;
        let outcome =
            wait_text(&client, "#f-test-result", |t| t.starts_with("delivered") || t.starts_with("failed")).await;
        assert!(outcome.starts_with("delivered: HTTP 200 in "), "{outcome}");
        let test = seen.wait_for(1).await;
        assert_eq!(test[0].path, "/kubesphere");
        assert_eq!(test[0].header("authorization"), Some("Bearer kube-t0ken"));
        assert_eq!(test[0].labels("amrelay_test"), ["true"]);

        // The whole form in the picture: the sticky header out of the way, zoomed to fit the
        // headless window.
        let fit = "document.querySelector('header').style.position = 'static'; document.body.style.zoom = '0.8'; \
                   document.getElementById('receiver-editor').scrollIntoView()";
        client.execute(fit, vec![]).await.unwrap();
        let form = client.find(Locator::Css("#receiver-editor")).await.unwrap();
        let png = form.screenshot().await.unwrap();
        let unfit = "document.querySelector('header').style.position = ''; document.body.style.zoom = ''";
        client.execute(unfit, vec![]).await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "the form's screenshot is a PNG");
        // The README's picture is refreshed on request only, so a test run leaves the tree as
        // it was: `AMRELAY_SCREENSHOT_DIR=docs cargo test --features external-tests --test external console_form`.
        if let Some(dir) = std::env::var_os("AMRELAY_SCREENSHOT_DIR") {
            let path = std::path::Path::new(&dir).join("console-form.png");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, png).unwrap();
        }

        click(&client, "#f-ok").await;
        let note = wait_text(&client, "#editor-note", |t| !t.is_empty()).await;
        assert_eq!(note, "Saved team-payments: applied, reload succeeded.");
        assert!(!visible(&client, "#receiver-editor").await);
        let card = wait_text(&client, r#"tr[data-receiver="team-payments"]"#, |t| t.contains("from console")).await;
        assert!(card.contains("Edit") && card.contains("enabled") && !card.contains("kube-t0ken"), "{card}");
        assert!(!client.source().await.unwrap().contains("kube-t0ken"), "the token is never sent back to the page");

        // Routed by the two conditions: only the critical alert in payments.
        let body = batch(
            "{}:{alertname=\"Checkout\"}",
            vec![
                alert("firing", json!({"alertname": "Checkout", "severity": "critical", "namespace": "payments"})),
                alert("firing", json!({"alertname": "Web", "severity": "critical", "namespace": "web"})),
                alert("firing", json!({"alertname": "Slow", "severity": "info", "namespace": "billing"})),
            ],
        );
        assert_eq!(post_json(&webhook, body.clone()).await.status, 200);
        let received = seen.wait_for(2).await;
        assert_eq!(received[1].labels("alertname"), ["Checkout"]);
        assert_eq!(received[1].header("authorization"), Some("Bearer kube-t0ken"));

        // Edit: the secret stays stored (blank field), the toggle turns deliveries off.
        click(&client, r#".edit-btn[data-receiver="team-payments"]"#).await;
        assert!(visible(&client, "#f-secret-note").await);
        let token = client.find(Locator::Css("#f-token")).await.unwrap().prop("value").await.unwrap();
        assert_eq!(token.as_deref(), Some(""));
        click(&client, "#f-enabled").await;
        click(&client, "#f-ok").await;
        wait_text(&client, r#"tr[data-receiver="team-payments"]"#, |t| t.contains("disabled")).await;
        assert_eq!(post_json(&webhook, body.clone()).await.status, 200);
        seen.assert_stays_at(2, Duration::from_millis(500)).await;

        // The card's Enable button switches it back on (POST …/enabled): deliveries resume.
        wait_text(&client, r#".enable-btn[data-receiver="team-payments"]"#, |t| t == "Enable").await;
        click(&client, r#".enable-btn[data-receiver="team-payments"]"#).await;
        wait_text(&client, "#editor-note", |t| t == "team-payments enabled: applied.").await;
        assert_eq!(post_json(&webhook, body).await.status, 200);
        assert_eq!(seen.wait_for(3).await[2].labels("alertname"), ["Checkout"]);
    })
    .await;
    assert!(relay.dir.path().join("console-receivers.yml").exists());
}
