//! Quiet hours and silences (issue 26): `time_intervals` around the current time in a time zone,
//! `mute_time_intervals` against `active_time_intervals`, silences through
//! `/api/v1/silences` (matching, limited to a receiver, expired by DELETE, kept across a
//! restart), and `on_mute: hold` delivering the latest state of a group once when a silence ends.

use std::time::Duration;

use serde_json::{Value, json};

use crate::process::RelayProcess;
use crate::support::eventually::{ensure, eventually};
use crate::support::{Downstream, TestRelay, WAIT, alert, batch, call, get};

/// Two named sets: `now` contains the current day in Tokyo, `next_year` does not contain now.
fn intervals_around_now() -> String {
    let today = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap());
    // Today and tomorrow, so a test that starts a second before midnight still holds.
    let tomorrow = today.checked_add(jiff::Span::new().days(1)).unwrap();
    let day = |d: &jiff::ZonedDateTime| {
        format!(
            "      - {{days_of_month: ['{}'], months: ['{}'], years: ['{}'], location: Asia/Tokyo}}\n",
            d.day(),
            d.month(),
            d.year()
        )
    };
    format!(
        "time_intervals:\n  - name: now\n    time_intervals:\n{}{}  - name: next_year\n    time_intervals:\n      - {{years: ['{}'], location: Asia/Tokyo}}\n",
        day(&today),
        day(&tomorrow),
        today.year() + 1
    )
}

fn receiver(name: &str, downstream: &Downstream, extra: &str) -> String {
    format!("  - name: {name}\n    url: {}\n{extra}", downstream.url(&format!("/{name}")))
}

fn muted(receiver: &str, reason: &str) -> String {
    format!("amrelay_notifications_muted_total{{receiver=\"{receiver}\",reason=\"{reason}\"}}")
}

async fn post_silence(relay: &TestRelay, silence: Value) -> String {
    let reply = call("POST", &relay.url("/api/v1/silences"), Some(silence), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["silenceID"].as_str().unwrap().to_owned()
}

fn silence(matchers: Value, receivers: &[&str]) -> Value {
    let ends = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    json!({"matchers": matchers, "endsAt": ends.to_string(), "createdBy": "ops", "comment": "maintenance",
           "receivers": receivers})
}

fn disk_and_cpu(group: &str) -> String {
    batch(group, vec![alert("firing", json!({"alertname": "Disk"})), alert("firing", json!({"alertname": "Cpu"}))])
}

#[tokio::test]
async fn mute_and_active_intervals_around_now_in_a_time_zone() {
    let downstream = Downstream::start().await;
    let yaml = format!(
        "{}receivers:\n{}{}{}{}",
        intervals_around_now(),
        receiver("muted-now", &downstream, "    mute_time_intervals: [now]\n"),
        receiver("active-now", &downstream, "    active_time_intervals: [now]\n"),
        receiver("active-next-year", &downstream, "    active_time_intervals: [next_year]\n"),
        receiver("muted-next-year", &downstream, "    mute_time_intervals: [next_year]\n"),
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", disk_and_cpu("{}:{a=\"1\"}")).await.status, 200);
    let received = downstream.wait_for(2).await;
    let mut paths: Vec<_> = received.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/active-now", "/muted-next-year"]);
    relay.wait_metric(&muted("muted-now", "time_interval"), 1.0).await;
    relay.wait_metric(&muted("active-next-year", "time_interval"), 1.0).await;
    downstream.assert_stays_at(2, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_silence_for_one_receiver_mutes_its_matching_alerts_until_deleted() {
    let downstream = Downstream::start().await;
    let yaml = format!("receivers:\n{}{}", receiver("pager-one", &downstream, ""), receiver("chat", &downstream, ""));
    let relay = TestRelay::start(&yaml).await;
    let id = post_silence(&relay, silence(json!("alertname=\"Disk\""), &["pager-one"])).await;

    // One of two alerts silenced: the pager gets the other; the chat room, both.
    assert_eq!(relay.post("/webhook", disk_and_cpu("{}:{g=\"1\"}")).await.status, 200);
    let received = downstream.wait_for(2).await;
    let of = |path: &str| received.iter().find(|r| r.path == path).unwrap().labels("alertname");
    assert_eq!(of("/pager-one"), ["Cpu"]);
    assert_eq!(of("/chat"), ["Disk", "Cpu"]);

    // Every alert silenced: nothing sent to the pager, counted.
    let only_disk = batch("{}:{g=\"2\"}", vec![alert("firing", json!({"alertname": "Disk"}))]);
    assert_eq!(relay.post("/webhook", only_disk.clone()).await.status, 200);
    downstream.wait_for(3).await;
    relay.wait_metric(&muted("pager-one", "silence"), 1.0).await;
    // The gauge is the process's (shared by the tests' relays): present, not counted here.
    assert!(relay.metric("amrelay_silences{state=\"active\"}").await.is_some());

    // Listed, then expired by DELETE: delivery resumes.
    let listed = get(&relay.url("/api/v1/silences")).await.json();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed[0]["status"]["state"], "active", "{listed}");
    assert_eq!(
        listed[0]["matchers"][0],
        json!({"name": "alertname", "value": "Disk", "isRegex": false, "isEqual": true})
    );
    assert_eq!(call("DELETE", &relay.url(&format!("/api/v1/silences/{id}")), None, &[]).await.status, 200);
    let one = get(&relay.url(&format!("/api/v1/silences/{id}"))).await.json();
    assert_eq!(one["status"]["state"], "expired", "{one}");
    assert_eq!(relay.post("/webhook", only_disk).await.status, 200);
    let received = downstream.wait_for(5).await;
    assert_eq!(received.iter().filter(|r| r.path == "/pager-one").count(), 2);
}

#[tokio::test]
async fn silences_are_checked_and_refused_like_alertmanagers() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&format!("receivers:\n{}", receiver("pager-checks", &downstream, ""))).await;
    let url = relay.url("/api/v1/silences");
    let refused = |body: Value| {
        let url = url.clone();
        async move { call("POST", &url, Some(body), &[]).await }
    };
    let matches_everything = refused(silence(json!("team=~\".*\""), &[])).await;
    assert_eq!(matches_everything.status, 400, "{}", matches_everything.text());
    let unknown = refused(silence(json!("a=\"b\""), &["nobody"])).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.text().contains("nobody"), "{}", unknown.text());
    // A page on another site cannot create one through the visitor's browser.
    let cross_site =
        call("POST", &url, Some(silence(json!("a=\"b\""), &[])), &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(cross_site.status, 403);
    // Nor through a form: a POST must say it is JSON, which a form cannot without a preflight.
    assert_eq!(call("POST", &url, None, &[("content-type", "text/plain")]).await.status, 415);
    assert_eq!(call("DELETE", &format!("{url}/no-such-id"), None, &[]).await.status, 404);
    assert_eq!(get(&url).await.json(), json!([]));
}

#[tokio::test]
async fn silences_survive_a_restart_next_to_the_spool_file() {
    let downstream = Downstream::start().await;
    let yaml =
        format!("delivery:\n  spool: {{path: spool.redb}}\nreceivers:\n{}", receiver("pager-kept", &downstream, ""));
    let mut relay = TestRelay::start(&yaml).await;
    let id = post_silence(&relay, silence(json!([{"name": "alertname", "value": "Disk"}]), &[])).await;
    relay.relay.take().unwrap().shutdown().await;
    let TestRelay { dir, .. } = relay;
    assert!(dir.path().join("spool.redb.silences.json").exists());

    let relay = TestRelay::start_in(dir, &yaml).await;
    let one = get(&relay.url(&format!("/api/v1/silences/{id}"))).await.json();
    assert_eq!(one["status"]["state"], "active", "{one}");
    let only_disk = batch("{}:{g=\"1\"}", vec![alert("firing", json!({"alertname": "Disk"}))]);
    assert_eq!(relay.post("/webhook", only_disk).await.status, 200);
    relay.wait_metric(&muted("pager-kept", "silence"), 1.0).await;
    downstream.assert_stays_at(0, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn hold_delivers_the_latest_notification_of_a_group_once_when_the_silence_expires() {
    let downstream = Downstream::start().await;
    let yaml = format!(
        "delivery:\n  spool: {{path: spool.redb}}\nreceivers:\n{}",
        receiver("pager-hold", &downstream, "    on_mute: hold\n")
    );
    let relay = TestRelay::start(&yaml).await;
    let id = post_silence(&relay, silence(json!("alertname=\"Disk\""), &[])).await;
    // Three notifications of one group, each with one more alert.
    for n in 1..=3 {
        let alerts =
            (1..=n).map(|i| alert("firing", json!({"alertname": "Disk", "instance": format!("i{i}")}))).collect();
        assert_eq!(relay.post("/webhook", batch("{}:{g=\"disk\"}", alerts)).await.status, 200);
    }
    relay.wait_metric("amrelay_notifications_held{receiver=\"pager-hold\"}", 1.0).await;
    relay.wait_metric("amrelay_notifications_held_superseded_total{receiver=\"pager-hold\"}", 2.0).await;
    downstream.assert_stays_at(0, Duration::from_millis(300)).await;

    assert_eq!(call("DELETE", &relay.url(&format!("/api/v1/silences/{id}")), None, &[]).await.status, 200);
    let received = downstream.wait_for(1).await;
    assert_eq!(received[0].labels("instance"), ["i1", "i2", "i3"], "the latest state of the group");
    downstream.assert_stays_at(1, Duration::from_millis(1500)).await;
    relay.wait_metric("amrelay_notifications_held{receiver=\"pager-hold\"}", 0.0).await;
}

/// Held notifications stay in the spool until delivered or superseded: `kill -9` loses none,
/// and after the restart the group's latest is held again and delivered once the silence ends.
#[tokio::test]
async fn held_notifications_survive_kill_9_and_are_held_again() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    let yaml = format!(
        "delivery:\n  spool: {{path: {}/spool.redb}}\nreceivers:\n{}",
        dir.path().display(),
        receiver("pager-killed", &downstream, "    on_mute: hold\n")
    );
    std::fs::write(&path, yaml).unwrap();
    let held = "amrelay_notifications_held{receiver=\"pager-killed\"}";

    let mut relay = RelayProcess::spawn(&path, &[]);
    let reply =
        call("POST", &relay.url("/api/v1/silences"), Some(silence(json!("alertname=\"Disk\""), &[])), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply.json()["silenceID"].as_str().unwrap().to_owned();
    for n in 1..=2 {
        let alerts =
            (1..=n).map(|i| alert("firing", json!({"alertname": "Disk", "instance": format!("i{i}")}))).collect();
        let reply = crate::support::post_json(&relay.url("/webhook"), batch("{}:{g=\"disk\"}", alerts)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    relay.wait_metric(held, 1.0).await;
    relay.signal("KILL");
    assert_eq!(relay.wait_exit().await, None, "killed by a signal");

    let relay = RelayProcess::spawn(&path, &[]);
    relay.wait_metric(held, 1.0).await;
    downstream.assert_stays_at(0, Duration::from_millis(300)).await;
    assert_eq!(call("DELETE", &relay.url(&format!("/api/v1/silences/{id}")), None, &[]).await.status, 200);
    eventually("the held notification delivered", WAIT, async || {
        let n = downstream.received().len();
        ensure(n == 1, || format!("{n} received\n{}", relay.logs()))
    })
    .await;
    assert_eq!(downstream.received()[0].labels("instance"), ["i1", "i2"], "the latest state of the group");
    downstream.assert_stays_at(1, Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn route_test_says_which_alerts_are_muted_and_by_what() {
    let downstream = Downstream::start().await;
    let yaml = format!(
        "{}receivers:\n{}{}{}",
        intervals_around_now(),
        receiver("rt-quiet", &downstream, "    mute_time_intervals: [now]\n    on_mute: hold\n"),
        receiver("rt-silenced", &downstream, ""),
        receiver("rt-free", &downstream, ""),
    );
    let relay = TestRelay::start(&yaml).await;
    let id = post_silence(&relay, silence(json!("alertname=\"Disk\""), &["rt-silenced"])).await;
    let reply = relay.post("/api/v1/route-test", disk_and_cpu("{}:{g=\"rt\"}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let muted = &reply.json()["data"]["muted"];
    assert_eq!(
        muted,
        &json!([
            {"receiver": "rt-quiet", "on_mute": "hold", "alerts": [
                {"alert": 0, "kind": "time_interval", "by": "mute_time_intervals now"},
                {"alert": 1, "kind": "time_interval", "by": "mute_time_intervals now"}]},
            {"receiver": "rt-silenced", "on_mute": "drop", "alerts": [
                {"alert": 0, "kind": "silence", "by": format!("silence {id}")}]},
        ]),
        "{muted}"
    );
    downstream.assert_stays_at(0, Duration::from_millis(100)).await;
}

/// A reload that lifts a receiver's quiet hours releases what it held, at once.
#[tokio::test]
async fn a_reload_that_ends_the_quiet_hours_delivers_what_was_held() {
    let downstream = Downstream::start().await;
    let config = |extra: &str| {
        format!(
            "{}delivery:\n  spool: {{path: spool.redb}}\nreceivers:\n{}",
            intervals_around_now(),
            receiver("held-by-hours", &downstream, &format!("    on_mute: hold\n{extra}"))
        )
    };
    let relay = TestRelay::start(&config("    mute_time_intervals: [now]\n")).await;
    assert_eq!(relay.post("/webhook", disk_and_cpu("{}:{g=\"hours\"}")).await.status, 200);
    relay.wait_metric("amrelay_notifications_held{receiver=\"held-by-hours\"}", 1.0).await;
    downstream.assert_stays_at(0, Duration::from_millis(200)).await;

    std::fs::write(relay.dir.path().join("amrelay.yml"), config("")).unwrap();
    assert_eq!(call("POST", &relay.url("/-/reload"), None, &[]).await.status, 200);
    let received = downstream.wait_for(1).await;
    assert_eq!(received[0].labels("alertname"), ["Disk", "Cpu"]);
    downstream.assert_stays_at(1, Duration::from_millis(1500)).await;
}

/// `check-config` names an unknown interval at its line, and reads Alertmanager's older
/// top-level `mute_time_intervals` spelling.
#[test]
fn check_config_names_unknown_intervals_and_reads_the_older_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("amrelay.yml");
    let older = "mute_time_intervals:\n  - name: nights\n    time_intervals:\n      - times: [{start_time: '00:00', end_time: '06:00'}]\n";
    std::fs::write(
        &file,
        format!("{older}receivers:\n  - name: a\n    url: http://127.0.0.1:1/\n    mute_time_intervals: [nights]\n"),
    )
    .unwrap();
    let (ok, out) = crate::process::check_config_with(&file, &[], &[]);
    assert!(ok, "{out}");
    std::fs::write(
        &file,
        format!("{older}receivers:\n  - name: a\n    url: http://127.0.0.1:1/\n    active_time_intervals: [days]\n"),
    )
    .unwrap();
    let (ok, out) = crate::process::check_config_with(&file, &[], &[]);
    assert!(!ok);
    assert!(
        out.contains(":8:")
            && out.contains("receivers[0].active_time_intervals[0]")
            && out.contains("\"days\" is not defined"),
        "{out}"
    );
}
