//! Tenants and roles over real sockets: routing by the tenant label (also through
//! `/webhook/{receiver}`, and for an alert without the label), every role against every endpoint
//! (one table), tenant scoping of lists and named receivers, an editor's saves (tenant forced,
//! foreign tenant 403, several tenants 400), and an auth proxy believed only from its addresses.

use std::time::Duration;

use serde_json::{Value, json};

use crate::credentials::{basic, bcrypt_hash};
use crate::support::eventually::{ensure, eventually};
use crate::support::{Downstream, Reply, TestRelay, WAIT, alert, batch, call, metric_in, post_json_with};

/// The password every test user has.
const PASSWORD: &str = "wonderland";
/// The bearer token Alertmanager holds (the `sender`).
const TOKEN: &str = "inbound-b3arer-t0ken";

fn three_tenants(namespaces: &[&str]) -> String {
    batch(
        "{}:{tenants=\"1\"}",
        namespaces
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let mut labels = json!({"alertname": format!("A{i}")});
                if !ns.is_empty() {
                    labels["namespace"] = json!(ns);
                }
                alert("firing", labels)
            })
            .collect(),
    )
}

/// A config with tenancy on, one receiver per tenant plus a global one, users of every role,
/// and a spool (so that the console file exists).
fn config(a: &str, b: &str, global: &str, proxy_from: Option<&str>) -> String {
    let hash = bcrypt_hash(PASSWORD);
    // Behind a proxy, a group of its users gets a role too.
    let (by_group, proxy) = match proxy_from {
        Some(trusted) => (
            "    - {groups: [team-a-viewers], role: viewer, tenants: [team-a]}\n".to_owned(),
            format!(
                "  auth_proxy: {{user_header: X-Forwarded-User, groups_header: X-Forwarded-Groups, trusted_cidrs: [{trusted}]}}\n"
            ),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "tenancy: {{label: namespace, allow_private_networks: true}}
server:
  basic_auth_users: {{admin: '{hash}', editor: '{hash}', viewer: '{hash}', multi: '{hash}', stranger: '{hash}'}}
  authorization: {{credentials: {TOKEN}, user: alertmanager}}
  access:
    - {{users: [alertmanager], role: sender}}
    - {{users: [admin], role: admin}}
    - {{users: [editor], role: editor, tenants: [team-a]}}
    - {{users: [multi], role: editor, tenants: [team-a, team-c]}}
    - {{users: [viewer], role: viewer, tenants: [team-a]}}
{by_group}{proxy}delivery:
  retry: {{initial_backoff: 10ms, max_backoff: 20ms}}
  spool: {{path: spool.redb}}
receivers:
  - {{name: a-file, url: '{a}', tenant: team-a}}
  - name: b-file
    url: '{b}'
    tenant: team-b
    # Cannot widen its tenant: team-a alerts still never reach it.
    conditions: [{{label: namespace, operator: In, values: [team-a, team-b]}}]
  - {{name: global, url: '{global}'}}
"
    )
}

fn auth(user: &str) -> String {
    if user == "alertmanager" { format!("Bearer {TOKEN}") } else { basic(user, PASSWORD) }
}

async fn as_user(user: &str, method: &str, url: &str, body: Option<Value>) -> Reply {
    let authorization = auth(user);
    call(method, url, body, &[("authorization", &authorization)]).await
}

/// Alertmanager (the `sender`) posts one alert of team-a, one of team-b and one without the
/// tenant label to a relay of [`config`] whose receivers send to `a`, `b` and `global`.
async fn relay_with_three_tenants_posted(a: &Downstream, b: &Downstream, global: &Downstream) -> TestRelay {
    let relay = TestRelay::start(&config(&a.url("/"), &b.url("/"), &global.url("/"), None)).await;
    let bearer = auth("alertmanager");
    let sent =
        post_json_with(&relay.url("/webhook"), three_tenants(&["team-a", "team-b", ""]), &[("authorization", &bearer)])
            .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    relay
}

/// A tenant receiver gets only its tenant's alerts, whatever its own conditions say; an alert
/// without the tenant label is no tenant's; a global receiver gets everything its rules select;
/// `/webhook/{receiver}` cannot hand a receiver another tenant's alerts.
#[tokio::test]
async fn alerts_are_routed_by_tenant_before_the_receivers_own_rules() {
    let (a, b, global) = (Downstream::start().await, Downstream::start().await, Downstream::start().await);
    let relay = relay_with_three_tenants_posted(&a, &b, &global).await;
    let bearer = auth("alertmanager");
    assert_eq!(a.wait_for(1).await[0].labels("namespace"), ["team-a"]);
    assert_eq!(b.wait_for(1).await[0].labels("namespace"), ["team-b"]);
    assert_eq!(global.wait_for(1).await[0].labels("namespace"), ["team-a", "team-b", ""]);

    // Addressed to a-file, but none of its tenant's: accepted, nothing sent.
    let only =
        post_json_with(&relay.url("/webhook/a-file"), three_tenants(&["team-b", ""]), &[("authorization", &bearer)])
            .await;
    assert_eq!(only.status, 200, "{}", only.text());
    a.assert_stays_at(1, Duration::from_millis(300)).await;

    // Each receiver's tenant, for joins in PromQL.
    let scrape = as_user("admin", "GET", &relay.url("/metrics"), None).await.text();
    for series in [
        r#"amrelay_receiver_info{receiver="a-file",tenant="team-a",source="file"}"#,
        r#"amrelay_receiver_info{receiver="global",tenant="",source="file"}"#,
    ] {
        assert_eq!(metric_in(&scrape, series), Some(1.0), "{series}");
    }
}

/// Every role against every endpoint, with the status each answer must have. A sender only
/// posts alerts; a viewer reads its tenant's receivers (another tenant's or a global one is
/// 404); an editor also changes console receivers; only an admin reads metrics and reloads.
#[tokio::test]
async fn every_role_against_every_endpoint() {
    let sink = Downstream::start().await;
    let url = sink.url("/");
    let relay = TestRelay::start(&config(&url, &url, &url, None)).await;
    let alerts = three_tenants(&["team-a"]);
    let routed: Value = serde_json::from_str(&alerts).unwrap();
    let bad_definition = json!({"url": "not a url"});
    // (method, path, body, [sender, viewer, editor, admin, stranger])
    let table: Vec<(&str, &str, Option<Value>, [u16; 5])> = vec![
        ("POST", "/webhook", Some(routed.clone()), [200, 403, 403, 200, 403]),
        ("POST", "/webhook/a-file", Some(routed.clone()), [200, 403, 403, 200, 403]),
        ("GET", "/-/healthy", None, [200, 200, 200, 200, 200]),
        ("GET", "/metrics", None, [403, 403, 403, 200, 403]),
        ("POST", "/-/reload", None, [403, 403, 403, 200, 403]),
        ("GET", "/", None, [403, 200, 200, 200, 403]),
        ("GET", "/api/v1/status", None, [403, 200, 200, 200, 403]),
        ("GET", "/api/v1/receivers", None, [403, 200, 200, 200, 403]),
        ("GET", "/api/v1/receivers/a-file", None, [403, 200, 200, 200, 403]),
        ("GET", "/api/v1/receivers/b-file", None, [403, 404, 404, 200, 403]),
        ("GET", "/api/v1/receivers/global", None, [403, 404, 404, 200, 403]),
        ("PUT", "/api/v1/receivers/new-one", Some(bad_definition.clone()), [403, 403, 400, 400, 403]),
        ("PUT", "/api/v1/receivers/b-file", Some(bad_definition.clone()), [403, 403, 404, 409, 403]),
        ("DELETE", "/api/v1/receivers/nothing-here", None, [403, 403, 404, 404, 403]),
        ("POST", "/api/v1/receivers/a-file/enabled", Some(json!({"enabled": true})), [403, 403, 409, 409, 403]),
        ("POST", "/api/v1/receivers/b-file/test", None, [403, 403, 404, 200, 403]),
        ("POST", "/api/v1/route-test", Some(routed.clone()), [403, 200, 200, 200, 403]),
        ("GET", "/api/v1/deadletters?receiver=a-file", None, [403, 200, 200, 200, 403]),
        ("GET", "/api/v1/deadletters?receiver=b-file", None, [403, 404, 404, 200, 403]),
        ("GET", "/api/v1/deadletters", None, [403, 200, 200, 200, 403]),
        ("GET", "/api/v1/deadletters/body?seq=1", None, [403, 404, 404, 404, 403]),
        ("POST", "/api/v1/deadletters/replay", None, [403, 403, 200, 200, 403]),
        ("POST", "/api/v1/deadletters/replay?receiver=a-file", None, [403, 403, 200, 200, 403]),
        ("POST", "/api/v1/deadletters/replay?receiver=global", None, [403, 403, 404, 200, 403]),
        ("GET", "/api/v1/threads?receiver=global", None, [403, 404, 404, 200, 403]),
        ("GET", "/api/v1/threads?receiver=a-file", None, [403, 200, 200, 200, 403]),
        ("GET", "/api/v1/history", None, [403, 200, 200, 200, 403]),
        ("GET", "/api/v1/history?receiver=b-file", None, [403, 404, 404, 200, 403]),
    ];
    let users = ["alertmanager", "viewer", "editor", "admin", "stranger"];
    let mut wrong = Vec::new();
    for (method, path, body, expected) in &table {
        for (user, want) in users.iter().zip(expected) {
            let reply = as_user(user, method, &relay.url(path), body.clone()).await;
            if reply.status.as_u16() != *want {
                wrong.push(format!("{user} {method} {path}: {} (want {want}) {}", reply.status, reply.text()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Lists show a viewer only its tenants' receivers: the receivers API and the route test (which
/// also says which alerts each was left without because of its tenant).
#[tokio::test]
async fn a_viewer_sees_only_its_tenants_receivers() {
    let sink = Downstream::start().await;
    let url = sink.url("/");
    let relay = TestRelay::start(&config(&url, &url, &url, None)).await;
    let status = as_user("viewer", "GET", &relay.url("/api/v1/status"), None).await.json();
    let names: Vec<&str> =
        status["data"]["receivers"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a-file"], "{status}");
    let list = as_user("viewer", "GET", &relay.url("/api/v1/receivers"), None).await.json();
    let names: Vec<&str> =
        list["data"]["receivers"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a-file"], "{list}");
    assert_eq!(list["data"]["receivers"][0]["tenant"], "team-a");

    let routed: Value = serde_json::from_str(&three_tenants(&["team-a", "team-b"])).unwrap();
    let test = as_user("viewer", "POST", &relay.url("/api/v1/route-test"), Some(routed.clone())).await.json();
    let receivers = test["data"]["receivers"].as_array().unwrap();
    assert_eq!(receivers.len(), 1, "{test}");
    assert_eq!(receivers[0]["tenant"], "team-a");
    assert_eq!(receivers[0]["alerts"], json!([0]));
    assert_eq!(receivers[0]["left_out"][0]["kind"], "tenant", "{test}");
    // An admin is shown every receiver and its tenant.
    let all = as_user("admin", "POST", &relay.url("/api/v1/route-test"), Some(routed)).await.json();
    let tenants: Vec<&Value> = all["data"]["receivers"].as_array().unwrap().iter().map(|r| &r["tenant"]).collect();
    assert_eq!(tenants, [&json!("team-a"), &json!("team-b"), &Value::Null], "{all}");
}

/// An editor's receiver always belongs to one of its tenants: given none, its only tenant; with
/// several tenants it must say which (400 naming `tenant`); another tenant is 403; another
/// tenant's console receiver is 404 to it. The change is audited with user and tenant, counted
/// per tenant, and the receiver delivers only its tenant's alerts.
#[tokio::test]
async fn an_editor_saves_receivers_of_its_tenants_only() {
    let (sink, mine) = (Downstream::start().await, Downstream::start().await);
    let url = sink.url("/");
    let relay = TestRelay::start(&config(&url, &url, &url, None)).await;
    let receiver = |name: &str| relay.url(&format!("/api/v1/receivers/{name}"));

    let created = as_user("editor", "PUT", &receiver("mine"), Some(json!({"url": mine.url("/")}))).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["data"]["receiver"]["tenant"], "team-a");
    // The answer names who changed what for which tenant.
    assert_eq!(
        (&created.json()["data"]["user"], &created.json()["data"]["tenant"]),
        (&json!("editor"), &json!("team-a"))
    );
    assert_eq!(created.json()["data"]["reload"]["successful"], true, "{}", created.text());
    let file = std::fs::read_to_string(relay.dir.path().join("console-receivers.yml")).unwrap();
    assert!(file.contains("tenant: team-a"), "{file}");

    let several = as_user("multi", "PUT", &receiver("which"), Some(json!({"url": mine.url("/")}))).await;
    assert_eq!(several.status, 400, "{}", several.text());
    assert!(several.text().contains("\"tenant\""), "{}", several.text());
    let foreign =
        as_user("editor", "PUT", &receiver("theirs"), Some(json!({"url": mine.url("/"), "tenant": "team-b"}))).await;
    assert_eq!(foreign.status, 403, "{}", foreign.text());
    let admins = as_user("admin", "PUT", &receiver("c-only"), Some(json!({"url": url, "tenant": "team-c"}))).await;
    assert_eq!(admins.status, 201, "{}", admins.text());
    for method in ["GET", "DELETE"] {
        let hidden = as_user("editor", method, &receiver("c-only"), None).await;
        assert_eq!(hidden.status, 404, "{method}: {}", hidden.text());
    }
    let replace = as_user("editor", "PUT", &receiver("c-only"), Some(json!({"url": mine.url("/")}))).await;
    assert_eq!(replace.status, 404, "{}", replace.text());

    let scrape = as_user("admin", "GET", &relay.url("/metrics"), None).await.text();
    let info = r#"amrelay_receiver_info{receiver="mine",tenant="team-a",source="console"}"#;
    assert_eq!(metric_in(&scrape, info), Some(1.0), "{info}");
    let changes =
        metric_in(&scrape, r#"amrelay_config_changes_total{source="console",action="create",tenant="team-a"}"#);
    // The metrics are the test process's: other tests add to them too.
    assert!(changes.is_some_and(|n| n >= 1.0), "{changes:?}");

    let bearer = auth("alertmanager");
    let sent =
        post_json_with(&relay.url("/webhook"), three_tenants(&["team-b", "team-a"]), &[("authorization", &bearer)])
            .await;
    assert_eq!(sent.status, 200);
    assert_eq!(mine.wait_for(1).await[0].labels("namespace"), ["team-a"]);
}

/// `server.auth_proxy`: the user header is believed from an address in `trusted_cidrs` (its
/// groups give the role), and ignored from any other, leaving the request anonymous: 401.
#[tokio::test]
async fn an_auth_proxy_is_believed_only_from_its_addresses() {
    let sink = Downstream::start().await;
    let url = sink.url("/");
    let trusted = TestRelay::start(&config(&url, &url, &url, Some("127.0.0.1/32"))).await;
    let headers = [("x-forwarded-user", "carol"), ("x-forwarded-groups", "staff, team-a-viewers")];
    let list = call("GET", &trusted.url("/api/v1/receivers"), None, &headers).await;
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(list.json()["data"]["receivers"].as_array().unwrap().len(), 1, "{}", list.text());
    let metrics = call("GET", &trusted.url("/metrics"), None, &headers).await;
    assert_eq!(metrics.status, 403, "a viewer by group: {}", metrics.text());
    let nobody = call("GET", &trusted.url("/api/v1/receivers"), None, &[("x-forwarded-user", "dave")]).await;
    assert_eq!(nobody.status, 403, "authenticated, no role: {}", nobody.text());

    let untrusted = TestRelay::start(&config(&url, &url, &url, Some("10.0.0.0/8"))).await;
    let spoofed = call("GET", &untrusted.url("/api/v1/receivers"), None, &headers).await;
    assert_eq!(spoofed.status, 401, "{}", spoofed.text());
    // Credentials still work beside the proxy.
    let admin = as_user("admin", "GET", &untrusted.url("/api/v1/receivers"), None).await;
    assert_eq!(admin.status, 200, "{}", admin.text());
}

/// The outbound guard of a tenant's receiver: an address literal it refuses is a field error on
/// save; a name resolving to loopback (`localhost`) is refused at connect — checked against the
/// address actually connected — and dead-lettered at once with reason `forbidden_address`. The
/// config file's receivers, an admin's, are not restricted.
#[tokio::test]
async fn a_tenants_receiver_cannot_reach_loopback_on_save_or_at_connect() {
    let (sink, target) = (Downstream::start().await, Downstream::start().await);
    let url = sink.url("/");
    let strict =
        config(&url, &url, &url, None).replace("allow_private_networks: true", "allow_private_networks: false");
    let relay = TestRelay::start(&strict).await;
    let receiver = |name: &str| relay.url(&format!("/api/v1/receivers/{name}"));

    let literal = as_user("editor", "PUT", &receiver("literal"), Some(json!({"url": target.url("/")}))).await;
    assert_eq!(literal.status, 400, "{}", literal.text());
    assert_eq!(literal.json()["errors"][0]["field"], "url", "{}", literal.text());
    let metadata = json!({"url": "http://169.254.169.254/latest/meta-data/"});
    let refused = as_user("editor", "PUT", &receiver("metadata"), Some(metadata)).await;
    assert_eq!(refused.status, 400, "{}", refused.text());

    let by_name = format!("http://localhost:{}/", target.addr.port());
    // A test message through an unsaved definition is held to the same guard.
    let unsaved = relay.url("/api/v1/receiver-test");
    let tested = as_user("editor", "POST", &unsaved, Some(json!({"name": "try", "url": target.url("/")}))).await;
    assert_eq!(tested.status, 400, "{}", tested.text());
    let tested = as_user("editor", "POST", &unsaved, Some(json!({"name": "try", "url": by_name}))).await;
    assert_eq!(tested.status, 502, "{}", tested.text());
    assert!(tested.text().contains("forbidden address"), "{}", tested.text());
    let saved = as_user("editor", "PUT", &receiver("by-name"), Some(json!({"url": by_name}))).await;
    assert_eq!(saved.status, 201, "{}", saved.text());
    let bearer = auth("alertmanager");
    let sent = post_json_with(&relay.url("/webhook"), three_tenants(&["team-a"]), &[("authorization", &bearer)]).await;
    assert_eq!(sent.status, 200);
    // The file receiver of team-a, on loopback too, delivers.
    sink.wait_for(2).await;
    let letters = relay.url("/api/v1/deadletters?receiver=by-name");
    let letter = eventually("the dead letter", WAIT, async || {
        let page = as_user("editor", "GET", &letters, None).await.json();
        let first = page["data"][0].clone();
        ensure(!first.is_null(), || page.to_string()).map(|()| first)
    })
    .await;
    assert_eq!(letter["reason"], "forbidden_address", "{letter}");
    // Listed to its tenant's editors without naming it; its body too.
    let mine = as_user("editor", "GET", &relay.url("/api/v1/deadletters"), None).await.json();
    assert_eq!(mine["data"].as_array().unwrap().len(), 1, "{mine}");
    let seq = mine["data"][0]["seq"].as_u64().unwrap();
    let body = as_user("editor", "GET", &relay.url(&format!("/api/v1/deadletters/body?seq={seq}")), None).await;
    assert_eq!(body.status, 200, "{}", body.text());
    let theirs = as_user("multi", "GET", &relay.url("/api/v1/deadletters"), None).await.json();
    assert_eq!(theirs["data"].as_array().unwrap().len(), 1, "team-a is multi's too: {theirs}");
    assert_eq!(letter["attempts"], 1, "not retried: {letter}");
    assert!(target.received().is_empty(), "nothing reached loopback");
}

/// An editor's silence names only its tenants' receivers (all of them when it names none), so it
/// can only mute its tenants' alerts; another tenant's receiver is `404`; a viewer cannot make
/// one; each sees only the silences of its tenants' receivers, the admin all.
#[tokio::test]
async fn an_editors_silences_stay_within_its_tenants() {
    let (a, b, global) = (Downstream::start().await, Downstream::start().await, Downstream::start().await);
    let relay = TestRelay::start(&config(&a.url("/"), &b.url("/"), &global.url("/"), None)).await;
    let url = relay.url("/api/v1/silences");
    let silence = |receivers: Option<Value>| {
        let mut body = json!({"matchers": [{"name": "alertname", "value": "A0", "isRegex": false, "isEqual": true}],
                              "endsAt": "2100-01-01T00:00:00Z", "createdBy": "test", "comment": "maintenance"});
        if let Some(receivers) = receivers {
            body["receivers"] = receivers;
        }
        Some(body)
    };
    let made = as_user("editor", "POST", &url, silence(None)).await;
    assert_eq!(made.status, 200, "{}", made.text());
    let id = made.json()["silenceID"].as_str().unwrap().to_owned();
    let own = as_user("editor", "GET", &format!("{url}/{id}"), None).await.json();
    assert_eq!(own["receivers"], json!(["a-file"]), "every receiver of its tenant, no global one: {own}");

    let foreign = as_user("editor", "POST", &url, silence(Some(json!(["b-file"])))).await;
    assert_eq!(foreign.status, 404, "{}", foreign.text());
    let global_one = as_user("editor", "POST", &url, silence(Some(json!(["global"])))).await;
    assert_eq!(global_one.status, 404, "{}", global_one.text());
    assert_eq!(as_user("viewer", "POST", &url, silence(None)).await.status, 403);

    let admins = as_user("admin", "POST", &url, silence(Some(json!(["b-file"])))).await;
    assert_eq!(admins.status, 200, "{}", admins.text());
    let admins = admins.json()["silenceID"].as_str().unwrap().to_owned();
    let listed = |user: &'static str| {
        let url = url.clone();
        async move {
            let list = as_user(user, "GET", &url, None).await.json();
            list.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed("viewer").await, std::slice::from_ref(&id));
    assert_eq!(listed("editor").await, std::slice::from_ref(&id));
    assert_eq!(listed("admin").await.len(), 2);
    assert_eq!(as_user("editor", "GET", &format!("{url}/{admins}"), None).await.status, 404);
    assert_eq!(as_user("editor", "DELETE", &format!("{url}/{admins}"), None).await.status, 404);
    assert_eq!(as_user("editor", "DELETE", &format!("{url}/{id}"), None).await.status, 200);
}

/// History records carry their receiver's tenant, and a viewer's pages hold only its tenants'.
#[tokio::test]
async fn history_is_stamped_with_the_tenant_and_scoped_to_the_callers() {
    let (a, b, global) = (Downstream::start().await, Downstream::start().await, Downstream::start().await);
    let relay = relay_with_three_tenants_posted(&a, &b, &global).await;
    let url = relay.url("/api/v1/history");
    let all = eventually("three records", WAIT, async || {
        let listed = as_user("admin", "GET", &url, None).await.json();
        let records = listed["data"].as_array().cloned().unwrap_or_default();
        ensure(records.len() == 3, || listed.to_string()).map(|()| records.clone())
    })
    .await;
    let tenant_of = |name: &str| all.iter().find(|r| r["receiver"] == name).map(|r| r["tenant"].clone());
    assert_eq!(tenant_of("a-file"), Some(json!("team-a")));
    assert_eq!(tenant_of("b-file"), Some(json!("team-b")));
    assert_eq!(tenant_of("global"), Some(Value::Null));
    let viewer = as_user("viewer", "GET", &format!("{url}?limit=1"), None).await.json();
    let receivers: Vec<_> = viewer["data"].as_array().unwrap().iter().map(|r| r["receiver"].clone()).collect();
    assert_eq!(receivers, [json!("a-file")], "a full page of its own: {viewer}");
    let filtered = as_user("admin", "GET", &format!("{url}?tenant=team-b"), None).await.json();
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1, "{filtered}");
}
