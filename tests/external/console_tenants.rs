//! The console as a team's editor sees it, in headless Chromium, signed in through an auth
//! proxy (a small reverse proxy here that adds `X-Forwarded-User` and `X-Forwarded-Groups`, as
//! oauth2-proxy does): it says who is signed in and with which role, lists only the team's
//! receivers, offers only the team's tenant, and the receiver it creates delivers only the
//! team's alerts.

use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::json;

use crate::browser::{Browser, click, wait_text};
use crate::support::serve::serve_on;
use crate::support::{Downstream, TestRelay, alert, batch, post_json_with, send};

/// Alertmanager's token (the `sender`).
const TOKEN: &str = "inbound-b3arer-t0ken";

/// A reverse proxy to `upstream` that signs every request in as `user` of `groups`.
async fn auth_proxy(upstream: std::net::SocketAddr, user: &'static str, groups: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    serve_on(listener, move |request: Request<hyper::body::Incoming>| async move {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut forwarded = Request::builder().method(parts.method).uri(format!("http://{upstream}{path}"));
        // Host kept, as oauth2-proxy passes it: the console's same-origin checks see the proxy's.
        for (name, value) in &parts.headers {
            forwarded = forwarded.header(name, value);
        }
        let forwarded = forwarded
            .header("x-forwarded-user", user)
            .header("x-forwarded-groups", groups)
            .body(Full::new(body))
            .unwrap();
        let reply = send(forwarded).await;
        let mut response = Response::new(Full::new(reply.body));
        *response.status_mut() = reply.status;
        *response.headers_mut() = reply.headers;
        response
    });
    url
}

#[tokio::test]
async fn an_editor_sees_and_creates_only_its_teams_receivers_in_headless_chromium() {
    let (a, b, mine) = (Downstream::start().await, Downstream::start().await, Downstream::start().await);
    let yaml = format!(
        "tenancy: {{label: namespace, allow_private_networks: true}}
server:
  authorization: {{credentials: {TOKEN}, user: alertmanager}}
  auth_proxy: {{user_header: X-Forwarded-User, groups_header: X-Forwarded-Groups, trusted_cidrs: [127.0.0.1/32]}}
  access:
    - {{users: [alertmanager], role: sender}}
    - {{groups: [team-a-editors], role: editor, tenants: [team-a]}}
delivery:
  retry: {{initial_backoff: 10ms, max_backoff: 20ms}}
  spool: {{path: spool.redb}}
receivers:
  - {{name: a-file, url: '{}', tenant: team-a}}
  - {{name: b-file, url: '{}', tenant: team-b}}
  - {{name: everyone, url: '{}'}}
",
        a.url("/"),
        b.url("/"),
        b.url("/global")
    );
    let relay = TestRelay::start(&yaml).await;
    let proxy = auth_proxy(relay.addr, "erin", "staff, team-a-editors").await;
    let hook = mine.url("/team-a-hook");
    Browser::run(move |client| async move {
        client.goto(&format!("{proxy}/")).await.unwrap();
        let signed_in = wait_text(&client, "#signed-in", |t| t.contains("erin")).await;
        assert!(signed_in.contains("erin (editor)") && signed_in.contains("team-a"), "{signed_in}");
        let rows = wait_text(&client, "#receiver-rows", |t| t.contains("a-file")).await;
        assert!(!rows.contains("b-file") && !rows.contains("everyone"), "only team-a's receivers: {rows}");
        assert!(rows.contains("tenant team-a"), "{rows}");

        click(&client, "#new-receiver").await;
        let tenants = client.find(fantoccini::Locator::Css("#f-tenant")).await.unwrap().html(false).await.unwrap();
        assert!(tenants.contains("team-a") && !tenants.contains("global") && !tenants.contains("team-b"), "{tenants}");
        let name = client.find(fantoccini::Locator::Css("#f-name")).await.unwrap();
        name.send_keys("team-a-hook").await.unwrap();
        let url = client.find(fantoccini::Locator::Css("#f-url")).await.unwrap();
        url.send_keys(&hook).await.unwrap();
        click(&client, "#f-ok").await;
        wait_text(&client, r#"tr[data-receiver="team-a-hook"]"#, |t| t.contains("tenant team-a")).await;
    })
    .await;

    let sent = post_json_with(
        &relay.url("/webhook"),
        batch(
            "{}:{console=\"tenants\"}",
            vec![
                alert("firing", json!({"alertname": "B", "namespace": "team-b"})),
                alert("firing", json!({"alertname": "A", "namespace": "team-a"})),
            ],
        ),
        &[("authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let received = mine.wait_for(1).await;
    assert_eq!(received[0].labels("namespace"), ["team-a"]);
}
