//! `amrelay check-config` on good and bad files, run as the real binary.

use std::process::Command;

fn check(files: &[&std::path::Path]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_amrelay")).arg("check-config").args(files).output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn shipped_configs_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("config/amrelay.yml")];
    for entry in std::fs::read_dir(root.join("config/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            files.push(path);
        }
    }
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let (ok, out) = check(&refs);
    assert!(ok, "{out}");
    assert_eq!(out.matches("SUCCESS").count(), files.len(), "{out}");
}

/// Regression: with the config given by a relative path (as the examples' own comments say to
/// run them, from the repository root), `templates:` globs were joined to the config's folder
/// twice and matched nothing readable.
#[test]
fn shipped_configs_are_valid_by_relative_path_too() {
    let output = Command::new(env!("CARGO_BIN_EXE_amrelay"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check-config", "config/examples/templates.yml"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}");
}

/// Every mistake is reported at once, each with file, line, column and field.
#[test]
fn every_mistake_is_named_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(
        &file,
        r#"delivery:
  queue_capacity: 0
receivers:
  - name: a
    url: ftp://example.com
    conditions:
      - {label: severity, operator: In}
      - {label: team, operator: Exists, values: [x]}
      - {label: ns, operator: NotIn, values: [""]}
    matchers: ['alertname=~"("', 'bad matcher']
    http_config:
      basic_auth: {username: u, password: p}
      authorization: {credentials: t}
  - name: a
    url: http://user:pw@example.com/
    timeout: 0s
    headers: {Content-Type: text/plain}
    retry: {max_attempts: 0, initial_backoff: 1s, max_backoff: 10ms}
    http_config:
      basic_auth: {username: u, password_file: missing-password}
      tls_config: {ca_file: missing-ca.pem, min_version: TLS10}
  - name: "bad name"
    url: http://example.com
    http_config:
      authorization: {type: Basic, credentials: x}
"#,
    )
    .unwrap();
    let (ok, out) = check(&[&file]);
    assert!(!ok);
    let expected = [
        ":2:19: delivery.queue_capacity: must be greater than 0",
        ":5:10: receivers[0].url: must be an absolute http:// or https:// URL",
        ":7:9: receivers[0].conditions[0].values: In needs at least one value",
        ":8:9: receivers[0].conditions[1].values: Exists takes no values",
        ":9:9: receivers[0].conditions[2].values: empty strings never match",
        ":10:16: receivers[0].matchers[0]: matcher \"alertname=~\\\"(\\\"\": invalid regex",
        "receivers[0].matchers[1]: matcher \"bad matcher\"",
        "receivers[0].http_config.authorization: basic_auth and authorization are mutually exclusive",
        ":14:5: receivers[1].name: duplicate receiver name \"a\"",
        "receivers[1].url: must not contain credentials",
        "receivers[1].timeout: must be greater than 0",
        "receivers[1].headers.Content-Type: is set by amrelay",
        "receivers[1].retry.max_attempts: must be at least 1",
        "receivers[1].retry.max_backoff: must not be less than initial_backoff",
        "receivers[1].http_config.basic_auth.password_file: cannot read",
        "receivers[1].http_config.tls_config.ca_file: cannot read",
        "receivers[2].name: \"bad name\" is not a valid receiver name",
        "receivers[2].http_config.authorization.type: Basic is not allowed here",
    ];
    for line in expected {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(out.contains(&format!("{}:2:19", file.display())), "errors name the file:\n{out}");
    assert!(!out.contains("\"p\"") && !out.contains("pw@"), "no secret in errors:\n{out}");
}

/// Syntax errors, unknown keys and wrong operators are reported with their position.
#[test]
fn parse_errors_name_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("receivers:\n  - name: a\n    url: http://x\n    colour: red\n", ":4:5: unknown field `colour`"),
        (
            "receivers:\n  - name: a\n    url: http://x\n    conditions: [{label: a, operator: Equals, values: [x]}]\n",
            "unknown variant `Equals`",
        ),
        ("delivery:\n  timeout: 10 seconds\n", "invalid duration"),
        ("receivers: [\n", ":"),
        ("receivers:\n  - url: http://x\n", "missing field `name`"),
    ];
    for (i, (yaml, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case{i}.yml"));
        std::fs::write(&file, yaml).unwrap();
        let (ok, out) = check(&[&file]);
        assert!(!ok, "{yaml}");
        assert!(out.contains(expected), "case {i}: missing {expected:?} in:\n{out}");
    }
}
