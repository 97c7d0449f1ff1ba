//! The console's History section in headless Chromium (issue 25): the chart counts each
//! receiver's outcomes from the history itself, a bar filters the list to it, a row opens to its
//! details, and a dead letter links to its history.

use fantoccini::Locator;
use serde_json::json;

use crate::browser::{Browser, click, wait_text};
use crate::support::{Answer, Downstream, TestRelay, alert, batch};

#[tokio::test]
async fn the_history_section_charts_filters_and_links_from_dead_letters() {
    let (ok, refused) = (Downstream::start().await, Downstream::start().await);
    refused.always(Answer::status(422));
    let yaml = format!(
        "receivers:\n  - name: ok\n    url: {}\n  - name: refused\n    url: {}\n",
        ok.url("/"),
        refused.url("/")
    );
    let relay = TestRelay::start(&yaml).await;
    for n in 0..3 {
        let body = batch(
            &format!("{{}}:{{n=\"{n}\"}}"),
            vec![alert("firing", json!({"alertname": "DiskFull", "n": n.to_string()}))],
        );
        assert_eq!(relay.post("/webhook", body).await.status, 200);
    }
    relay.wait_metric(r#"amrelay_notifications_delivered_total{receiver="ok"}"#, 3.0).await;
    relay
        .wait_metric(r#"amrelay_notifications_dead_lettered_total{receiver="refused",reason="non_retryable"}"#, 3.0)
        .await;

    let url = relay.url("/");
    Browser::run(move |client| async move {
        client.goto(&url).await.unwrap();
        let chart = wait_text(&client, "#history-chart", |t| t.contains("refused")).await;
        assert!(chart.contains("3 delivered") && chart.contains("3 dead_lettered"), "{chart}");
        let list = wait_text(&client, "#history-list", |t| t.contains("refused")).await;
        assert!(list.contains("ok") && list.contains("DiskFull"), "{list}");

        // A bar filters the list to its receiver and outcome.
        click(&client, r#".history-bar[data-receiver="refused"][data-outcome="dead_lettered"]"#).await;
        // `wait_text` is the browser tests' wait (their futures hold the client across awaits).
        let only = |count: usize| {
            move |t: &str| !t.contains("delivered") && t.matches("dead_lettered").count() == count
        };
        wait_text(&client, "#history-list", only(3)).await;
        let receivers = "return [...document.querySelectorAll('#history-table tr.history-row')].map(r => r.children[1].textContent)";
        assert_eq!(client.execute(receivers, vec![]).await.unwrap(), json!(["refused", "refused", "refused"]));

        // A row opens to its details.
        click(&client, "#history-table tr.history-row").await;
        let details = client.find(Locator::Css("#history-table tr.history-details:not([hidden])")).await.unwrap();
        let text = details.text().await.unwrap();
        assert!(text.contains("\"reason\": \"non_retryable\"") && text.contains("\"http_status\": 422"), "{text}");

        // A dead letter links to its history: the list is filtered to its receiver and groupKey.
        click(&client, "#hf-clear").await;
        wait_text(&client, "#history-list", |t| t.contains("ok")).await;
        click(&client, "#dead-list a.history-link").await;
        let group = "return document.getElementById('hf-group-key').value";
        let chosen = client.execute(group, vec![]).await.unwrap();
        assert!(chosen.as_str().unwrap().starts_with("{}:{n="), "{chosen}");
        wait_text(&client, "#history-list", only(1)).await;
        assert_eq!(client.execute(receivers, vec![]).await.unwrap(), json!(["refused"]));
    })
    .await;
}
