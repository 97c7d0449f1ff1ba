//! `amrelay route-test` and `POST /api/v1/route-test`: every operator and matcher explained, the
//! `--expect` exit codes, and the explanation agreeing with what `/webhook` really delivers.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Downstream, TestRelay, alert, batch, get, post_json};

/// One receiver per operator and matcher kind, plus send_resolved, enabled and max_alerts.
fn config(url: impl Fn(&str) -> String) -> String {
    let receivers = [
        ("r-in", "conditions: [{label: severity, operator: In, values: [critical, warning]}]"),
        ("r-notin", "conditions: [{label: namespace, operator: NotIn, values: [kube-system]}]"),
        ("r-exists", "conditions: [{label: team, operator: Exists}]"),
        ("r-absent", "conditions: [{label: silenced_by, operator: DoesNotExist}]"),
        ("r-eq", r#"matchers: ['severity="critical"']"#),
        ("r-neq", r#"matchers: ['env!="dev"']"#),
        ("r-re", r#"matchers: ['alertname=~"Kube.*"']"#),
        ("r-nre", r#"matchers: ['alertname!~"Watchdog|InfoInhibitor"']"#),
        ("r-firing", "send_resolved: false"),
        ("r-off", "enabled: false"),
        ("r-max", "max_alerts: 1"),
    ];
    let mut yaml = String::from("receivers:\n");
    for (name, rule) in receivers {
        yaml += &format!("  - name: {name}\n    url: {}\n    {rule}\n", url(name));
    }
    yaml
}

/// Three alerts that each receiver above splits differently.
fn payload() -> String {
    batch(
        "{}:{route=\"test\"}",
        vec![
            alert(
                "firing",
                json!({"alertname": "KubePodCrashLooping", "severity": "critical", "namespace": "prod", "team": "sre", "env": "prod"}),
            ),
            alert(
                "firing",
                json!({"alertname": "Watchdog", "severity": "none", "namespace": "kube-system", "env": "dev", "silenced_by": "x"}),
            ),
            alert("resolved", json!({"alertname": "DiskFull", "severity": "warning", "namespace": "prod"})),
        ],
    )
}

/// Per receiver: the alerts it gets, and for each left out `(alert, kind, reason)`.
type Expected = BTreeMap<&'static str, (Vec<u64>, Vec<(u64, &'static str, &'static str)>)>;

fn expected() -> Expected {
    let disabled = "receiver disabled (enabled: false)";
    BTreeMap::from([
        (
            "r-in",
            (
                vec![0, 2],
                vec![(
                    1,
                    "condition",
                    r#"condition severity In ["critical", "warning"] does not hold: severity="none""#,
                )],
            ),
        ),
        (
            "r-notin",
            (
                vec![0, 2],
                vec![(
                    1,
                    "condition",
                    r#"condition namespace NotIn ["kube-system"] does not hold: namespace="kube-system""#,
                )],
            ),
        ),
        (
            "r-exists",
            (
                vec![0],
                vec![
                    (1, "condition", "condition team Exists does not hold: no team label"),
                    (2, "condition", "condition team Exists does not hold: no team label"),
                ],
            ),
        ),
        (
            "r-absent",
            (
                vec![0, 2],
                vec![(1, "condition", r#"condition silenced_by DoesNotExist does not hold: silenced_by="x""#)],
            ),
        ),
        (
            "r-eq",
            (
                vec![0],
                vec![
                    (1, "matcher", r#"matcher severity="critical" does not hold: severity="none""#),
                    (2, "matcher", r#"matcher severity="critical" does not hold: severity="warning""#),
                ],
            ),
        ),
        ("r-neq", (vec![0, 2], vec![(1, "matcher", r#"matcher env!="dev" does not hold: env="dev""#)])),
        (
            "r-re",
            (
                vec![0],
                vec![
                    (1, "matcher", r#"matcher alertname=~"Kube.*" does not hold: alertname="Watchdog""#),
                    (2, "matcher", r#"matcher alertname=~"Kube.*" does not hold: alertname="DiskFull""#),
                ],
            ),
        ),
        (
            "r-nre",
            (
                vec![0, 2],
                vec![(
                    1,
                    "matcher",
                    r#"matcher alertname!~"Watchdog|InfoInhibitor" does not hold: alertname="Watchdog""#,
                )],
            ),
        ),
        ("r-firing", (vec![0, 1], vec![(2, "resolved", "resolved and send_resolved is false")])),
        ("r-off", (vec![], vec![(0, "disabled", disabled), (1, "disabled", disabled), (2, "disabled", disabled)])),
        (
            "r-max",
            (
                vec![0],
                vec![
                    (1, "max_alerts", "cut by max_alerts: 1 (counted in truncatedAlerts)"),
                    (2, "max_alerts", "cut by max_alerts: 1 (counted in truncatedAlerts)"),
                ],
            ),
        ),
    ])
}

const ALERT_NAMES: [&str; 3] = ["KubePodCrashLooping", "Watchdog", "DiskFull"];

/// Runs `amrelay route-test` with `args`, `stdin` as its input; returns (exit code, stdout, stderr).
async fn route_test(config: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let config = config.to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.map(str::to_owned);
    let run = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"))
            .arg("route-test")
            .arg(format!("--config.file={}", config.display()))
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    });
    let output = tokio::time::timeout(crate::support::WAIT, run).await.expect("route-test finishes").unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

/// The CLI prints, per receiver, `+` for each alert it gets and `-` with the first failing
/// condition or matcher (and the label value it saw) for each it does not.
#[tokio::test]
async fn route_test_cli_explains_each_operator_and_matcher() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("amrelay.yml");
    std::fs::write(&config, config_yaml()).unwrap();
    let file = dir.path().join("payload.json");
    std::fs::write(&file, payload()).unwrap();

    let (code, out, err) = route_test(&config, &[file.to_str().unwrap()], None).await;
    assert_eq!(code, 0, "{out}{err}");
    for (receiver, (gets, left_out)) in expected() {
        let block = receiver_block(&out, receiver);
        for index in gets {
            let line = format!("  + [{index}] {}", ALERT_NAMES[index as usize]);
            assert!(block.contains(&line), "{receiver} should get [{index}]:\n{block}");
        }
        for (index, _, reason) in left_out {
            let line = format!("  - [{index}] {}: {reason}", ALERT_NAMES[index as usize]);
            assert!(block.contains(&line), "{receiver} should leave out [{index}] with {reason:?}:\n{block}");
        }
    }
    assert!(out.contains("r-off (disabled): gets nothing"), "{out}");
    assert!(out.contains("r-in: gets 2 of 3"), "{out}");
    assert!(out.ends_with("receivers: r-in,r-notin,r-exists,r-absent,r-eq,r-neq,r-re,r-nre,r-firing,r-max\n"), "{out}");

    // The same from stdin, as JSON: the shape of the HTTP answer's `data`.
    let (code, out, err) = route_test(&config, &["--json", "-"], Some(&payload())).await;
    assert_eq!(code, 0, "{err}");
    check_explanation(&serde_json::from_str(&out).unwrap());
}

/// The lines of one receiver's block in the text output.
fn receiver_block(out: &str, receiver: &str) -> String {
    let start = out.find(&format!("\n{receiver}")).unwrap_or_else(|| panic!("no block for {receiver}:\n{out}"));
    let rest = &out[start + 1..];
    rest[..rest.find("\n\n").unwrap_or(rest.len())].to_owned()
}

fn config_yaml() -> String {
    config(|name| format!("http://127.0.0.1:9/{name}"))
}

/// Checks an explanation (the CLI's `--json` or the API's `data`) against [`expected`].
fn check_explanation(data: &Value) {
    assert_eq!(data["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(data["alerts"][1]["labels"]["alertname"], "Watchdog");
    assert_eq!(data["alerts"][2]["status"], "resolved");
    let receivers = data["receivers"].as_array().unwrap();
    assert_eq!(receivers.len(), expected().len());
    for receiver in receivers {
        let name = receiver["name"].as_str().unwrap();
        let (gets, left_out) = &expected()[name];
        assert_eq!(receiver["alerts"], json!(gets), "{name}");
        let got: Vec<(u64, &str, &str)> = receiver["left_out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["alert"].as_u64().unwrap(), l["kind"].as_str().unwrap(), l["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(&got, left_out, "{name}");
    }
    let receiving: Vec<&str> = expected().iter().filter(|(_, (gets, _))| !gets.is_empty()).map(|(n, _)| *n).collect();
    let mut got: Vec<&str> = data["receiving"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, receiving);
}

/// `--expect` exits 0 when the receiving set is as listed (in any order), 1 when it is not;
/// an invalid payload or config exits 2.
#[tokio::test]
async fn route_test_cli_expect_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("amrelay.yml");
    std::fs::write(
        &config,
        r#"receivers:
  - name: pager
    url: http://127.0.0.1:9/
    conditions: [{label: severity, operator: In, values: [critical]}]
  - name: chat
    url: http://127.0.0.1:9/
    matchers: ['team=~"sre|db"']
"#,
    )
    .unwrap();
    let critical = "alertname=DiskFull,severity=critical";
    let (code, out, err) = route_test(&config, &["--alert", critical, "--expect", "pager"], None).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(r#"  - [0] DiskFull: matcher team=~"sre|db" does not hold: no team label"#), "{out}");

    let both = ["--alert", critical, "--alert", r#"{alertname="Slow", team="db"}"#];
    let (code, _, err) = route_test(&config, &[&both[..], &["--expect", "chat,pager"]].concat(), None).await;
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = route_test(&config, &[&both[..], &["--expect", "pager"]].concat(), None).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("route-test FAILED: expected receivers pager, got chat,pager"), "{err}");

    let (code, _, err) = route_test(&config, &["--alert", "alertname=Nothing", "--expect", ""], None).await;
    assert_eq!(code, 0, "an empty --expect means no receiver: {err}");
    let (code, _, err) = route_test(&config, &["--alert", "alertname=Nothing", "--expect", "chat"], None).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("expected receivers chat, got (none)"), "{err}");

    let (code, _, err) = route_test(&config, &["-"], Some(r#"{"version":"3","alerts":[]}"#)).await;
    assert_eq!(code, 2);
    assert!(err.contains("unsupported webhook version"), "{err}");
    let (code, _, err) = route_test(&config, &["--alert", "severity=~crit.*"], None).await;
    assert_eq!(code, 2);
    assert!(err.contains("give labels as name=value"), "{err}");
    let (code, _, err) = route_test(&dir.path().join("missing.yml"), &["--alert", "a=b"], None).await;
    assert_eq!(code, 2);
    assert!(err.contains("cannot read file"), "{err}");
}

/// The API answers the same explanation, refuses bad payloads as `/webhook` does, and delivers
/// nothing.
#[tokio::test]
async fn route_test_api_explains_and_delivers_nothing() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&config(|name| downstream.url(&format!("/{name}")))).await;
    let reply = relay.post("/api/v1/route-test", payload()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["status"], "success");
    check_explanation(&body["data"]);

    let bad = relay.post("/api/v1/route-test", r#"{"version":"4"}"#).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("missing field `alerts`"), "{}", bad.text());
    assert_eq!(relay.post("/api/v1/route-test", "not json").await.status, 400);
    let alert_without_status = r#"{"version":"4","groupKey":"g","alerts":[{"labels":{}}]}"#;
    assert_eq!(relay.post("/api/v1/route-test", alert_without_status).await.status, 400);
    let plain = http::Request::post(relay.url("/api/v1/route-test"))
        .header("content-type", "text/plain")
        .body(http_body_util::Full::new(bytes::Bytes::from(payload())))
        .unwrap();
    assert_eq!(crate::support::send(plain).await.status, 415);
    assert_eq!(get(&relay.url("/api/v1/route-test")).await.status, 405);

    downstream.assert_stays_at(0, Duration::from_millis(300)).await;
    let status = get(&relay.url("/api/v1/status")).await.json();
    assert!(status["data"]["receivers"].as_array().unwrap().iter().all(|r| r["queue_depth"] == 0));
}

/// What `/webhook` delivers is exactly what the route test said: each receiver gets the alerts
/// the explanation lists, in order, and no other receiver gets anything.
#[tokio::test]
async fn route_test_agrees_with_what_webhook_delivers() {
    let downstream = Downstream::start().await;
    let relay = TestRelay::start(&config(|name| downstream.url(&format!("/{name}")))).await;
    let explanation = relay.post("/api/v1/route-test", payload()).await.json();
    let receiving = explanation["data"]["receiving"].as_array().unwrap().len();
    assert_eq!(post_json(&relay.url("/webhook"), payload()).await.status, 200);
    let received = downstream.wait_for(receiving).await;
    downstream.assert_stays_at(receiving, Duration::from_millis(200)).await;
    for receiver in explanation["data"]["receivers"].as_array().unwrap() {
        let name = receiver["name"].as_str().unwrap();
        let got: Vec<Vec<String>> =
            received.iter().filter(|r| r.path == format!("/{name}")).map(|r| r.labels("alertname")).collect();
        let said: Vec<String> = receiver["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| ALERT_NAMES[i.as_u64().unwrap() as usize].to_owned())
            .collect();
        if said.is_empty() {
            assert!(got.is_empty(), "{name} got {got:?} though the route test said nothing");
        } else {
            assert_eq!(got, vec![said], "{name}");
        }
    }
}

/// The documentation's `amrelay route-test` example (docs/console.md, linked from the README)
/// prints what it shows.
#[tokio::test]
async fn readme_route_test_example_is_true() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("docs/console.md")).unwrap();
    let start = readme.find("$ amrelay route-test ").expect("the README has a route-test example");
    let block = &readme[start..start + readme[start..].find("\n```").unwrap()];
    let mut lines = block.lines();
    let mut command = String::new();
    for line in lines.by_ref() {
        command += line.trim_end_matches('\\').trim();
        command += " ";
        if !line.ends_with('\\') {
            break;
        }
    }
    let shown: Vec<&str> = lines.collect();
    // Arguments are single-quoted words without spaces: split on spaces, drop the quotes.
    let words: Vec<String> = command.split_whitespace().skip(3).map(|w| w.trim_matches('\'').to_owned()).collect();
    let (config_flag, config) = (&words[0], repo.join(&words[1]));
    assert_eq!(config_flag, "--config.file");
    let args: Vec<&str> = words[2..].iter().map(String::as_str).collect();
    let (code, out, err) = route_test(&config, &args, None).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), shown, "the README's route-test output differs");
}

/// Regression: `/api/v1/route-test` skipped the depth, alerts-per-batch and labels-per-alert
/// limits `/webhook` applies, and built an alerts × receivers explanation of any size.
#[tokio::test]
async fn route_test_endpoint_applies_the_webhook_limits() {
    let relay = TestRelay::start(&format!(
        "server:\n  limits: {{max_alerts_per_batch: 3, max_json_depth: 8}}\n{}",
        config(|name| format!("http://127.0.0.1:9/{name}"))
    ))
    .await;
    let many = batch("{}:{}", (0..4).map(|i| alert("firing", json!({"n": i.to_string()}))).collect());
    let reply = relay.post("/api/v1/route-test", many).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    let deep = format!(r#"{{"version":"4","alerts":[],"x":{}{}}}"#, "[".repeat(20), "]".repeat(20));
    let reply = relay.post("/api/v1/route-test", deep).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("max_json_depth"), "{}", reply.text());
    let labels: serde_json::Map<String, Value> = (0..300).map(|i| (format!("l{i}"), json!("x"))).collect();
    let reply = relay.post("/api/v1/route-test", batch("{}:{}", vec![alert("firing", Value::Object(labels))])).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("max_labels_per_alert"), "{}", reply.text());
    assert_eq!(relay.post("/api/v1/route-test", payload()).await.status, 200);
}

/// Regression (issue 15): a batch of 180,000 alerts made a 128 MB route-test answer. Over HTTP
/// too, the explanation of a large batch is cut at 1000 entries per list and says how many it
/// left out.
#[tokio::test]
async fn a_large_batch_gets_a_bounded_explanation_with_counts() {
    let relay = TestRelay::start(&config(|name| format!("http://127.0.0.1:9/{name}"))).await;
    let alerts = (0..5000)
        .map(|i| alert("firing", json!({"alertname": format!("A{i}"), "severity": "critical", "pad": "p".repeat(200)})))
        .collect();
    let reply = relay.post("/api/v1/route-test", batch("{}:{}", alerts)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.body.len() < 4 * 1024 * 1024, "{} bytes", reply.body.len());
    let data = &reply.json()["data"];
    assert_eq!(data["alerts"].as_array().unwrap().len(), 1000);
    assert_eq!(data["alerts_omitted"], 4000);
    for receiver in data["receivers"].as_array().unwrap() {
        let listed = receiver["alerts"].as_array().unwrap().len() + receiver["left_out"].as_array().unwrap().len();
        let omitted = receiver["alerts_omitted"].as_u64().unwrap() + receiver["left_out_omitted"].as_u64().unwrap();
        assert_eq!(listed as u64 + omitted, 5000, "{}", receiver["name"]);
    }
}
