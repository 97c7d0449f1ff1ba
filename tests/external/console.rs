//! The console page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven with fantoccini, against a live relay.

use fantoccini::Locator;
use serde_json::json;

use crate::browser::{Browser, click, wait_text};
use crate::support::{Answer, Downstream, TestRelay, alert, batch};

/// The console in a real browser: it lists the receivers, the test button reports a live
/// receiver's success and a dead one's error, the route tester shows the routing and a bad
/// payload's 400, dead letters can be replayed, and a narrow window needs no sideways scroll.
#[tokio::test]
async fn console_in_headless_chromium() {
    let live = Downstream::start().await;
    let refusing = Downstream::start().await;
    refusing.always(Answer::status(400));
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let yaml = format!(
        r#"receivers:
  - name: pager
    url: {}
    conditions: [{{label: severity, operator: In, values: [critical]}}]
  - name: dead-hook
    url: {dead_url}
    timeout: 2s
    matchers: ['namespace!="kube-system"']
  - name: archive
    url: {}
    enabled: false
  - name: strict
    url: {}
    conditions: [{{label: team, operator: Exists}}]
"#,
        live.url("/pager"),
        live.url("/archive"),
        refusing.url("/strict"),
    );
    let relay = TestRelay::start(&yaml).await;
    // Traffic for the figures and a dead letter at `strict`.
    let body = batch(
        "{}:{b=\"1\"}",
        vec![alert("firing", json!({"alertname": "Disk", "severity": "critical", "team": "db"}))],
    );
    assert_eq!(relay.post("/webhook", body).await.status, 200);
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="pager"}"#, 1.0).await;
    relay
        .wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="strict",reason="non_retryable"}"#, 1.0)
        .await;

    let url = relay.url("/");
    let config_file = relay.dir.path().join("amrelay.yml").display().to_string();
    let reload_url = relay.url("/-/reload");
    Browser::run(move |client| async move {
        client.goto(&url).await.unwrap();
        assert_eq!(client.title().await.unwrap(), "amrelay console");

        // The receivers, in config order, with their figures.
        wait_text(&client, "#receiver-rows", |t| t.contains("strict")).await;
        // Read in one script: the page re-renders the rows every 5 s.
        let rows =
            "return [...document.querySelectorAll('#receiver-rows tr[data-receiver]')].map(r => r.dataset.receiver)";
        let names = client.execute(rows, vec![]).await.unwrap();
        assert_eq!(names, json!(["pager", "dead-hook", "archive", "strict"]));
        let pager = wait_text(&client, r#"tr[data-receiver="pager"]"#, |t| t.contains("1 delivered")).await;
        assert!(pager.contains(r#"severity In ["critical"]"#) && pager.contains("enabled"), "{pager}");
        let strict = wait_text(&client, r#"tr[data-receiver="strict"]"#, |t| t.contains("1 dead-lettered")).await;
        assert!(strict.contains("HTTP 400"), "the last error is shown: {strict}");
        let facts = wait_text(&client, "#config-facts", |t| t.contains("succeeded")).await;
        assert!(facts.contains(&config_file), "{facts}");

        // Enabling stays a config change: the page shows the line to edit.
        click(&client, r#"tr[data-receiver="archive"] details summary"#).await;
        let how = wait_text(&client, r#"tr[data-receiver="archive"] details"#, |t| t.contains("→")).await;
        assert!(how.contains("line 11") && how.contains("enabled: false\n→ enabled: true"), "{how}");

        // The test button: success at the live receiver, the precise error at the dead one.
        click(&client, r#".test-btn[data-receiver="pager"]"#).await;
        let ok = wait_text(&client, r#".test-result[data-receiver="pager"]"#, |t| t.starts_with("delivered")).await;
        assert!(ok.starts_with("delivered: HTTP 200 in "), "{ok}");
        click(&client, r#".test-btn[data-receiver="dead-hook"]"#).await;
        let failed =
            wait_text(&client, r#".test-result[data-receiver="dead-hook"]"#, |t| t.starts_with("failed")).await;
        assert!(failed.starts_with("failed: connect: ") && failed.contains("refused"), "{failed}");
        let outcome = "return document.querySelector('.test-result[data-receiver=\"dead-hook\"]').dataset.outcome";
        assert_eq!(client.execute(outcome, vec![]).await.unwrap(), json!("error"));

        // The route tester, on its prefilled example.
        click(&client, "#route-run").await;
        let summary = wait_text(&client, "#route-summary", |t| !t.is_empty()).await;
        assert_eq!(summary, "3 alert(s) go to pager, dead-hook, strict");
        let card = |name: &str| format!(r#"[data-route-receiver="{name}"]"#);
        let pager = wait_text(&client, &card("pager"), |t| !t.is_empty()).await;
        assert!(pager.contains("gets 1"), "{pager}");
        let gets =
            client.find(Locator::Css(&format!("{} li.gets", card("pager")))).await.unwrap().text().await.unwrap();
        assert!(gets.starts_with("KubePodCrashLooping [0]"), "{gets}");
        assert!(pager.contains(r#"condition severity In ["critical"] does not hold: severity="warning""#), "{pager}");
        let hook = wait_text(&client, &card("dead-hook"), |t| !t.is_empty()).await;
        assert!(hook.contains("gets 2"), "{hook}");
        assert!(hook.contains(r#"matcher namespace!="kube-system" does not hold: namespace="kube-system""#), "{hook}");
        let archive = wait_text(&client, &card("archive"), |t| !t.is_empty()).await;
        assert!(archive.contains("disabled") && archive.contains("receiver disabled (enabled: false)"), "{archive}");
        let strict = wait_text(&client, &card("strict"), |t| !t.is_empty()).await;
        assert!(
            strict.contains("gets 1") && strict.contains("condition team Exists does not hold: no team label"),
            "{strict}"
        );

        // A payload /webhook would refuse is refused here with the same message.
        let textarea = client.find(Locator::Css("#route-payload")).await.unwrap();
        textarea.clear().await.unwrap();
        textarea.send_keys(r#"{"version": "3", "alerts": []}"#).await.unwrap();
        click(&client, "#route-run").await;
        let error = wait_text(&client, "#route-error", |t| !t.is_empty()).await;
        assert!(error.starts_with("HTTP 400: unsupported webhook version \"3\""), "{error}");

        // Dead letters, and replaying them.
        let dead = wait_text(&client, "#dead-list", |t| t.contains("strict")).await;
        assert!(dead.contains("non_retryable"), "{dead}");
        click(&client, r#".replay-btn[data-receiver="strict"]"#).await;
        wait_text(&client, "#dead-actions", |t| t.contains("replayed 1, skipped 0")).await;

        // A reload that fails: the page says so, with the error, and the old config runs on.
        std::fs::write(&config_file, "receivers:\n  - name: broken\n    url: not-a-url\n").unwrap();
        let reload = crate::support::post_json(&reload_url, "").await;
        assert_eq!(reload.status, 500, "{}", reload.text());
        let failed = wait_text(&client, "#reload-error", |t| !t.is_empty()).await;
        assert!(failed.contains("The last reload failed") && failed.contains("receivers[0].url"), "{failed}");
        wait_text(&client, "#config-facts", |t| t.contains("FAILED")).await;
        assert_eq!(client.execute(rows, vec![]).await.unwrap().as_array().unwrap().len(), 4);

        // A narrow window: receivers become cards, nothing scrolls sideways.
        client.set_window_size(400, 900).await.unwrap();
        let fits = client
            .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1", vec![])
            .await
            .unwrap();
        assert_eq!(fits, json!(true), "the page is wider than a 400 px window");
        let display = "return getComputedStyle(document.querySelector('#receiver-rows td')).display";
        assert_eq!(client.execute(display, vec![]).await.unwrap(), json!("grid"));
    })
    .await;
    assert!(live.received().iter().any(|r| r.body["alerts"][0]["labels"]["amrelay_test"] == "true"));
    refusing.wait_for(2).await;
}
