//! `url_file:` as Alertmanager's `webhook_config.url_file`: the receiver's URL read from a file
//! (it often carries a token), exclusive with `url`, watched like the other secret files, and
//! never shown: the status, the console and `check-config` show URLs redacted.

use serde_json::json;

use crate::support::eventually::{ensure, eventually};
use crate::support::{Downstream, TestRelay, WAIT, alert, batch, get};

/// The URL comes from the file; rewriting the file reloads it, and the status never shows it.
#[tokio::test]
async fn the_url_is_read_from_its_file_and_reloaded_when_it_changes() {
    let downstream = Downstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("hook-url");
    std::fs::write(&url_file, format!("{}\n", downstream.url("/services/T0/first-t0ken"))).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let yaml = "receivers:\n  - name: hidden\n    url_file: hook-url\n";
    let relay = TestRelay::start_in(dir, yaml).await;
    let body = || batch("{}:{u=\"1\"}", vec![alert("firing", json!({"alertname": "U"}))]);
    assert_eq!(relay.post("/webhook", body()).await.status, 200);
    assert_eq!(downstream.wait_for(1).await[0].path, "/services/T0/first-t0ken");

    let status = get(&relay.url("/api/v1/status")).await;
    assert!(!status.text().contains("t0ken"), "{}", status.text());
    let shown = status.json()["data"]["receivers"][0]["url"].clone();
    assert_eq!(shown, json!(downstream.url("/services/***")));
    let loaded = status.json()["data"]["config"]["loaded_at"].as_f64().unwrap();

    std::fs::write(&url_file, downstream.url("/services/T0/second-t0ken")).unwrap();
    eventually("the URL file's change to be reloaded", WAIT, async || {
        let now = get(&relay.url("/api/v1/status")).await.json()["data"]["config"]["loaded_at"].as_f64();
        ensure(now != Some(loaded), || format!("loaded_at is still {loaded}"))
    })
    .await;
    assert_eq!(relay.post("/webhook", body()).await.status, 200);
    assert_eq!(downstream.wait_for(2).await[1].path, "/services/T0/second-t0ken");
}

/// Exactly one of `url` and `url_file`; a bad URL in the file is reported without its text.
#[test]
fn url_and_url_file_are_exclusive_and_a_bad_file_is_named_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad-url"), "ftp://host/s3cr3t-path").unwrap();
    let file = dir.path().join("amrelay.yml");
    std::fs::write(
        &file,
        "receivers:
  - name: both
    url: http://127.0.0.1:1/
    url_file: bad-url
  - name: neither
  - name: bad
    url_file: bad-url
  - name: missing
    url_file: no-such-file
",
    )
    .unwrap();
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_amrelay")).arg("check-config").arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    for expected in [
        "receivers[0].url: url and url_file are mutually exclusive",
        "receivers[1].url: one of url or url_file is required",
        "receivers[2].url_file: must be an absolute http:// or https:// URL",
        "receivers[3].url_file: cannot read",
    ] {
        assert!(stdout.contains(expected), "{expected} in\n{stdout}");
    }
    assert!(!stdout.contains("s3cr3t-path"), "{stdout}");
}
