//! Checks that keep deploy/ and the README's deployment snippets true, with the real tools:
//! `kubectl kustomize` renders every base and overlay, and the rendered pods are hardened and
//! wired as the README says; `amrelay check-config` accepts every amrelay config under deploy/
//! laid out as its pod sees it (config and secrets in one folder); `promtool` checks and
//! unit-tests the PrometheusRule's alerts; `amtool` checks the Alertmanager configs; the
//! Grafana dashboard and the alerts query only metrics a real relay exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::programs::{Finished, debian_program, program, run_program};
use crate::support::get;
use crate::traffic::relay_after_traffic;

/// Where the config folder is mounted in amrelay's pods, and the config file in it.
const CONFIG_MOUNT: &str = "/etc/amrelay";
const CONFIG_FLAG: &str = "--config.file=/etc/amrelay/amrelay.yml";
/// Where the StatefulSet mounts each replica's spool volume.
const SPOOL_MOUNT: &str = "/var/lib/amrelay";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

fn kubectl() -> PathBuf {
    program(
        &["kubectl"],
        "kubectl is needed to render deploy/kubernetes; install it (the machine image CI \
         runs on has it, from the Kubernetes/Google Cloud apt repository; Debian's old \
         `kubernetes-client` 1.20 would clash with it)",
    )
}

fn promtool() -> PathBuf {
    debian_program(&["promtool"], "prometheus")
}

fn amtool() -> PathBuf {
    debian_program(&["amtool"], "prometheus-alertmanager")
}

fn run(command: &mut Command) -> Finished {
    run_program(command, None)
}

// ---------------------------------------------------------------------------------------------
// YAML and files

fn yaml(text: &str, what: &dyn std::fmt::Display) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{what} is not YAML: {e}"))
}

fn yaml_file(path: &Path) -> Value {
    yaml(&read(path), &path.display())
}

fn yaml_documents(text: &str, what: &dyn std::fmt::Display) -> Vec<Value> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{what} is not YAML: {e}"));
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn is_yaml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yml" || e == "yaml")
}

fn is_kustomization(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "kustomization.yaml")
}

/// What a YAML file under deploy/ is, by its shape.
#[derive(Debug, PartialEq)]
enum Kind {
    Kustomization,
    Manifest,
    AlertmanagerConfig,
    AmrelayConfig,
}

fn kind_of(path: &Path) -> Option<Kind> {
    if is_kustomization(path) {
        return Some(Kind::Kustomization);
    }
    let value = yaml_file(path);
    if value.get("apiVersion").is_some() && value.get("kind").is_some() {
        Some(Kind::Manifest)
    } else if value.get("route").is_some() {
        Some(Kind::AlertmanagerConfig)
    } else if value["receivers"].as_array().is_some_and(|r| r.iter().all(|r| r.get("url").is_some())) {
        Some(Kind::AmrelayConfig)
    } else {
        None
    }
}

fn yaml_files_of(kind: Kind) -> Vec<PathBuf> {
    files_under(&deploy()).into_iter().filter(|p| is_yaml(p) && kind_of(p).as_ref() == Some(&kind)).collect()
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// Every folder under deploy/ with a kustomization.yaml.
fn kustomizations() -> Vec<PathBuf> {
    files_under(&deploy()).into_iter().filter(|p| is_kustomization(p)).map(|p| p.parent().unwrap().to_owned()).collect()
}

/// `kubectl kustomize dir`, as documents.
fn render(dir: &Path) -> Vec<Value> {
    let rendered = run(Command::new(kubectl()).arg("kustomize").arg(dir));
    assert!(rendered.success, "kubectl kustomize {} failed:\n{}", dir.display(), rendered.output);
    yaml_documents(&rendered.output, &format!("{}'s rendering", dir.display()))
}

fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    documents.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn of_kind<'a>(documents: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    documents.iter().filter(move |d| d["kind"] == kind)
}

/// amrelay's one workload in a rendering: its Deployment or StatefulSet.
fn workload(documents: &[Value]) -> &Value {
    let workloads: Vec<&Value> =
        documents.iter().filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet").collect();
    assert_eq!(workloads.len(), 1, "one workload: {workloads:#?}");
    workloads[0]
}

fn container(workload: &Value) -> &Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "amrelay")
        .expect("a container named amrelay")
}

/// Whether `labels` has every pair of `selector`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a label selector");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The volume mounted at `path` in the amrelay container.
fn volume_at<'a>(workload: &'a Value, path: &str) -> &'a Value {
    let mount = container(workload)["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == path)
        .unwrap_or_else(|| panic!("nothing mounted at {path}"));
    workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {}", mount["name"]))
}

/// The config volume's sources: `(kind, source)` for a configMap, secret or projected volume.
fn config_sources(workload: &Value) -> Vec<(&'static str, Value)> {
    let volume = volume_at(workload, CONFIG_MOUNT);
    let sources: Vec<Value> = match volume.get("projected") {
        Some(projected) => projected["sources"].as_array().unwrap().clone(),
        None => vec![volume.clone()],
    };
    sources
        .into_iter()
        .map(|source| {
            if let Some(config_map) = source.get("configMap") {
                ("ConfigMap", config_map.clone())
            } else if let Some(secret) = source.get("secret") {
                ("Secret", secret.clone())
            } else {
                panic!("config volume source neither configMap nor secret: {source}")
            }
        })
        .collect()
}

/// The files of a ConfigMap or Secret, decoded.
fn object_files(object: &Value) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (key, text) in object["data"].as_object().into_iter().flatten() {
        let text = text.as_str().unwrap();
        let bytes = if object["kind"] == "Secret" {
            base64::engine::general_purpose::STANDARD.decode(text).unwrap()
        } else {
            text.as_bytes().to_vec()
        };
        files.push((key.clone(), bytes));
    }
    for (key, text) in object["stringData"].as_object().into_iter().flatten() {
        files.push((key.clone(), text.as_str().unwrap().as_bytes().to_vec()));
    }
    files
}

/// The Secret the operator creates with deploy/kubernetes/create-inbound-secret.sh: not part of
/// any rendering, so that no token is ever committed.
const INBOUND_SECRET: &str = "amrelay-inbound";

/// Writes the config folder as amrelay's pod sees it at /etc/amrelay into `dir`; returns the
/// config file's path in it.
fn lay_out_config_folder(documents: &[Value], dir: &Path) -> PathBuf {
    let workload = workload(documents);
    for (kind, source) in config_sources(workload) {
        let name = source["name"].as_str().unwrap();
        let files = match find(documents, kind, name) {
            Some(object) => object_files(object),
            // Created once per cluster by the documented script, with a random token.
            None if name == INBOUND_SECRET => vec![("webhook-token".to_owned(), b"generated-token".to_vec())],
            None => panic!("the config volume needs {kind} {name}, not rendered"),
        };
        let placed: Vec<(String, Vec<u8>)> = match source["items"].as_array() {
            Some(items) => items
                .iter()
                .map(|item| {
                    let key = item["key"].as_str().unwrap();
                    let content = files
                        .iter()
                        .find(|(k, _)| k == key)
                        .unwrap_or_else(|| panic!("{kind} {name} has no key {key}"))
                        .1
                        .clone();
                    (item["path"].as_str().unwrap().to_owned(), content)
                })
                .collect(),
            None => files,
        };
        for (path, content) in placed {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
    }
    let config = CONFIG_FLAG.strip_prefix("--config.file=/etc/amrelay/").unwrap();
    dir.join(config)
}

fn check_config(file: &Path) -> Finished {
    run(Command::new(env!("CARGO_BIN_EXE_amrelay")).arg("check-config").arg(file))
}

// ---------------------------------------------------------------------------------------------
// kustomize

/// Asserts what the README promises of a rendered deployment.
fn check_rendering(dir: &Path, documents: &[Value]) {
    let at = dir.display();
    for document in documents {
        assert!(
            document["apiVersion"].is_string()
                && document["kind"].is_string()
                && document["metadata"]["name"].is_string(),
            "{at}: incomplete object {document}"
        );
    }
    let workload = workload(documents);
    let pod = &workload["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    assert!(
        selects(&workload["spec"]["selector"]["matchLabels"], pod_labels),
        "{at}: the workload's selector misses its pods"
    );
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true, "{at}: pods run as non-root");
    assert!(
        pod["spec"]["terminationGracePeriodSeconds"].as_u64().is_some_and(|s| s > 30),
        "{at}: the grace period outlasts --shutdown.timeout (30s)"
    );

    let container = container(workload);
    assert!(
        container["args"].as_array().unwrap().contains(&json!(CONFIG_FLAG)),
        "{at}: amrelay runs with {CONFIG_FLAG}"
    );
    assert!(
        container["ports"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "http", "containerPort": 9098, "protocol": "TCP"})),
        "{at}: port http is 9098"
    );
    for (probe, path) in [("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")] {
        assert_eq!(container[probe]["httpGet"], json!({"path": path, "port": "http"}), "{at}: {probe}");
    }
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(container["resources"][bound][resource].is_string(), "{at}: resources.{bound}.{resource} is set");
        }
    }
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true, "{at}");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{at}");
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]), "{at}");

    // The config reaches the pod as a folder, so that updates arrive (a subPath mount never
    // sees them), from a ConfigMap whose name has no hash suffix (which would roll the pods).
    for mount in container["volumeMounts"].as_array().unwrap() {
        assert!(
            mount.get("subPath").is_none() && mount.get("subPathExpr").is_none(),
            "{at}: no subPath mounts: {mount}"
        );
    }
    let config_maps: Vec<Value> = config_sources(workload)
        .into_iter()
        .filter(|(kind, _)| *kind == "ConfigMap")
        .map(|(_, source)| source)
        .collect();
    assert_eq!(config_maps.len(), 1, "{at}: one ConfigMap in the config volume");
    assert_eq!(config_maps[0]["name"], "amrelay-config", "{at}: no hash suffix");
    let config_map = find(documents, "ConfigMap", "amrelay-config").expect("the ConfigMap");
    assert!(config_map["data"]["amrelay.yml"].is_string(), "{at}: the ConfigMap holds amrelay.yml");

    if workload["kind"] == "StatefulSet" {
        let spool = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == SPOOL_MOUNT)
            .unwrap_or_else(|| panic!("{at}: nothing mounted at {SPOOL_MOUNT}"));
        let claims = workload["spec"]["volumeClaimTemplates"].as_array().unwrap();
        assert!(
            claims.iter().any(|c| c["metadata"]["name"] == spool["name"]),
            "{at}: the spool is a volume claim per replica"
        );
        let config = yaml(config_map["data"]["amrelay.yml"].as_str().unwrap(), &format!("{at}'s config"));
        let spool_path = config["delivery"]["spool"]["path"].as_str().unwrap_or("");
        assert!(
            spool_path.starts_with(&format!("{SPOOL_MOUNT}/")),
            "{at}: the config spools on the volume: {spool_path:?}"
        );
    }

    let service = find(documents, "Service", "amrelay").expect("the Service amrelay");
    assert!(selects(&service["spec"]["selector"], pod_labels), "{at}: the Service selects the pods");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 9098, "targetPort": "http", "protocol": "TCP"}]),
        "{at}"
    );
    let budgets: Vec<&Value> = of_kind(documents, "PodDisruptionBudget").collect();
    assert_eq!(budgets.len(), 1, "{at}");
    assert!(
        selects(&budgets[0]["spec"]["selector"]["matchLabels"], pod_labels),
        "{at}: the PodDisruptionBudget selects the pods"
    );

    // Exactly one Service is scraped, else every pod is scraped twice.
    for monitor in of_kind(documents, "ServiceMonitor") {
        let scraped: Vec<&Value> = of_kind(documents, "Service")
            .filter(|s| selects(&monitor["spec"]["selector"]["matchLabels"], &s["metadata"]["labels"]))
            .collect();
        assert_eq!(scraped.len(), 1, "{at}: the ServiceMonitor selects one Service");
        for endpoint in monitor["spec"]["endpoints"].as_array().unwrap() {
            assert!(
                scraped[0]["spec"]["ports"].as_array().unwrap().iter().any(|p| p["name"] == endpoint["port"]),
                "{at}: the ServiceMonitor scrapes a port of the Service"
            );
        }
    }
}

/// `kubectl kustomize` renders every base and overlay under deploy/, and each rendering is
/// hardened and wired as the README says.
#[test]
fn kustomize_renders_every_base_and_overlay() {
    let dirs = kustomizations();
    for expected in ["kubernetes", "kubernetes/base", "kubernetes/overlays/statefulset"] {
        assert!(dirs.contains(&deploy().join(expected)), "deploy/{expected} is a kustomization: {dirs:?}");
    }
    for dir in &dirs {
        let documents = render(dir);
        check_rendering(dir, &documents);
    }
}

/// Receivers edited in the console: the StatefulSet keeps the console file on each replica's
/// spool volume (written by the pod's user, kept across restarts); the plain Deployment has no
/// writable volume and no console file, so editing is off there (the README says how to turn it
/// on).
#[test]
fn the_console_file_lives_on_the_statefulsets_spool_volume() {
    let statefulset = render(&deploy().join("kubernetes/overlays/statefulset"));
    let stateful = workload(&statefulset);
    let container = &stateful["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    let console = args
        .iter()
        .find_map(|a| a.strip_prefix("--config.console-file="))
        .unwrap_or_else(|| panic!("the StatefulSet names its console file: {args:?}"));
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| console.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())))
        .unwrap_or_else(|| panic!("{console} is on no mounted volume"));
    assert_ne!(mount["readOnly"], true, "the console file's volume is writable");
    let claims = stateful["spec"]["volumeClaimTemplates"].as_array().unwrap();
    assert!(
        claims.iter().any(|c| c["metadata"]["name"] == mount["name"]),
        "{console} is on a volume claimed per replica, as the spool is"
    );

    let base = render(&deploy().join("kubernetes/base"));
    let container = &workload(&base)["spec"]["template"]["spec"]["containers"][0];
    let args = container["args"].to_string();
    assert!(!args.contains("--config.console-file"), "{args}");
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().all(|m| m["readOnly"] == true), "the Deployment has no writable volume: {mounts:?}");
}

// ---------------------------------------------------------------------------------------------
// amrelay configs

/// `amrelay check-config` accepts the config of every rendering under deploy/, laid out with
/// its secrets as the pod sees it; and every amrelay config file under deploy/ is one of them.
#[test]
fn amrelay_configs_under_deploy_pass_check_config() {
    let mut checked = Vec::new();
    for dir in kustomizations() {
        let folder = tempfile::tempdir().unwrap();
        let file = lay_out_config_folder(&render(&dir), folder.path());
        let result = check_config(&file);
        assert!(
            result.success,
            "the config of {} (laid out as its pod sees it) is invalid:\n{}",
            dir.display(),
            result.output
        );
        checked.push(read(&file));
    }
    let configs = yaml_files_of(Kind::AmrelayConfig);
    assert!(configs.len() >= 2, "{configs:?}");
    for file in configs {
        assert!(
            checked.contains(&read(&file)),
            "{} is not the config of any kustomization, so nothing checks it",
            file.display()
        );
    }
}

/// Every file under deploy/ is one that a check here covers.
#[test]
fn every_file_under_deploy_is_checked() {
    let rendered_sources: Vec<PathBuf> = kustomizations()
        .into_iter()
        .flat_map(|dir| {
            let kustomization = yaml_file(&dir.join("kustomization.yaml"));
            kustomization["resources"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |r| dir.join(r.as_str().unwrap()))
        })
        .collect();
    for file in files_under(&deploy()) {
        let relative = file.strip_prefix(repo()).unwrap().display().to_string();
        let covered = if is_yaml(&file) {
            match kind_of(&file) {
                Some(Kind::Manifest) => {
                    rendered_sources.contains(&file) || yaml_file(&file)["kind"] == "AlertmanagerConfig"
                }
                Some(_) => true,
                None => false,
            }
        } else {
            relative == "deploy/Dockerfile"
                || relative == "deploy/kubernetes/create-inbound-secret.sh"
                || (relative.starts_with("deploy/grafana/") && relative.ends_with(".json"))
        };
        assert!(covered, "{relative} is checked by nothing in tests/external/deploy_checks.rs");
    }
}

/// The inbound Secret's script creates `amrelay-inbound` with a fresh random 256-bit token in
/// the given namespace, and leaves an existing one alone. `kubectl` is a stand-in on PATH that
/// records its arguments (no cluster here).
#[test]
fn the_inbound_secret_script_generates_a_random_token() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let fake = dir.path().join("kubectl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$*\" >> {}\n[ \"$3\" = get ] && [ -e {}/exists ] && exit 0\n[ \"$3\" = get ] && exit 1\nexit 0\n", calls.display(), dir.path().display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = deploy().join("kubernetes/create-inbound-secret.sh");
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let tokens: Vec<String> = (0..2)
        .map(|_| {
            std::fs::remove_file(&calls).ok();
            let done = run(Command::new("sh").arg(&script).arg("team-ns").env("PATH", &path));
            assert!(done.success, "{}", done.output);
            let recorded = std::fs::read_to_string(&calls).unwrap();
            let create = recorded.lines().find(|l| l.contains("create secret generic amrelay-inbound")).unwrap();
            assert!(create.starts_with("-n team-ns "), "{create}");
            create.split("--from-literal=webhook-token=").nth(1).unwrap().trim().to_owned()
        })
        .collect();
    for token in &tokens {
        assert_eq!(token.len(), 64, "{token}");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    }
    assert_ne!(tokens[0], tokens[1], "each run draws a new token");
    std::fs::write(dir.path().join("exists"), "").unwrap();
    std::fs::remove_file(&calls).ok();
    let kept = run(Command::new("sh").arg(&script).env("PATH", &path));
    assert!(kept.success, "{}", kept.output);
    assert!(!std::fs::read_to_string(&calls).unwrap().contains("create"), "an existing Secret is kept");
}

// ---------------------------------------------------------------------------------------------
// Alertmanager

/// `sendResolved` → `send_resolved`, recursively over keys.
fn snake_case_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let mut key = String::new();
                    for c in k.chars() {
                        if c.is_ascii_uppercase() {
                            key.push('_');
                        }
                        key.push(c.to_ascii_lowercase());
                    }
                    (key, snake_case_keys(v))
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(snake_case_keys).collect()),
        other => other.clone(),
    }
}

/// `amtool check-config` accepts every Alertmanager config shipped; the AlertmanagerConfig
/// resource says the same as the config file; both post to the Service the base deploys.
#[test]
fn alertmanager_configs_pass_amtool() {
    let mut files = yaml_files_of(Kind::AlertmanagerConfig);
    assert!(!files.is_empty());
    files.push(repo().join("config/examples/alertmanager/alertmanager.yml"));
    for file in &files {
        let checked = run(Command::new(amtool()).arg("check-config").arg(file));
        assert!(checked.success, "amtool check-config {}:\n{}", file.display(), checked.output);
    }

    let example = yaml_file(&deploy().join("alertmanager/alertmanager.yml"));
    let resource = yaml_file(&deploy().join("alertmanager/alertmanagerconfig.yaml"));
    assert_eq!(resource["apiVersion"], "monitoring.coreos.com/v1alpha1");
    assert_eq!(resource["kind"], "AlertmanagerConfig");
    assert_eq!(snake_case_keys(&resource["spec"]["route"]), example["route"]);
    // Both send the token of the Secret amrelay-inbound, each in its own way (a mounted file,
    // a Secret reference); everything else is the same.
    let mut from_resource = snake_case_keys(&resource["spec"]["receivers"]);
    let mut from_file = example["receivers"].clone();
    let credentials = from_resource[0]["webhook_configs"][0]["http_config"]["authorization"].take();
    let credentials_file = from_file[0]["webhook_configs"][0]["http_config"]["authorization"].take();
    assert_eq!(credentials["credentials"], json!({"name": "amrelay-inbound", "key": "webhook-token"}));
    assert!(credentials_file["credentials_file"].as_str().unwrap().ends_with("/amrelay-inbound/webhook-token"));
    assert_eq!(from_resource, from_file);

    let base = render(&deploy().join("kubernetes/base"));
    let service = find(&base, "Service", "amrelay").unwrap();
    let url = format!(
        "http://{}.{}.svc:{}/webhook",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap(),
        service["spec"]["ports"][0]["port"]
    );
    assert_eq!(example["receivers"][0]["webhook_configs"][0]["url"], url);
    assert_eq!(resource["metadata"]["namespace"], service["metadata"]["namespace"]);
}

// ---------------------------------------------------------------------------------------------
// Prometheus rules and the dashboard

fn prometheus_rule() -> Value {
    let base = render(&deploy().join("kubernetes/base"));
    find(&base, "PrometheusRule", "amrelay").expect("the base renders the PrometheusRule amrelay").clone()
}

/// Every alert of the PrometheusRule fires on the series that should fire it.
const RULE_TESTS: &str = r#"
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="amrelay", instance="a:9098"}'
        values: '0x15'
      # A receiver's first dead letter creates its series at 1 (at 6m here, at 0m below);
      # a later one raises it (at 30m below).
      - series: 'amrelay_notifications_dead_lettered_total{job="amrelay", instance="a:9098", namespace="monitoring", receiver="chat", reason="non_retryable"}'
        values: '_x5 1x44'
      - series: 'amrelay_notifications_dead_lettered_total{job="amrelay", instance="a:9098", namespace="monitoring", receiver="chat", reason="max_attempts"}'
        values: '1x29 2x20'
      - series: 'amrelay_config_last_reload_successful{job="amrelay", instance="a:9098"}'
        values: '1x5 0x10'
      - series: 'amrelay_queue_depth{job="amrelay", instance="a:9098", receiver="chat"}'
        values: '0x5 9000x10'
      - series: 'amrelay_queue_capacity{job="amrelay", instance="a:9098", receiver="chat"}'
        values: '10000x15'
      - series: 'amrelay_delivery_attempts_total{job="amrelay", instance="a:9098", namespace="monitoring", receiver="chat", outcome="2xx"}'
        values: '0+10x30'
      - series: 'amrelay_delivery_attempts_total{job="amrelay", instance="a:9098", namespace="monitoring", receiver="chat", outcome="5xx"}'
        values: '0+5x30'
      - series: 'amrelay_spool_healthy{job="amrelay", instance="a:9098"}'
        values: '1x5 0x10'
      - series: 'amrelay_spool_bytes{job="amrelay", instance="a:9098"}'
        values: '0x5 900x10'
      - series: 'amrelay_spool_max_bytes{job="amrelay", instance="a:9098"}'
        values: '1000x15'
    alert_rule_test:
      - eval_time: 5m
        alertname: AmrelaySpoolUnhealthy
        exp_alerts: []
      - eval_time: 8m
        alertname: AmrelaySpoolUnhealthy
        exp_alerts:
          - exp_labels: {severity: critical, job: amrelay, instance: "a:9098"}
      - eval_time: 12m
        alertname: AmrelaySpoolFilling
        exp_alerts:
          - exp_labels: {severity: warning, job: amrelay, instance: "a:9098"}
      - eval_time: 10m
        alertname: AmrelayDown
        exp_alerts:
          - exp_labels: {severity: critical, job: amrelay, instance: "a:9098"}
      - eval_time: 10m
        alertname: AmrelayNotificationsDeadLettered
        exp_alerts:
          - exp_labels: {severity: critical, namespace: monitoring, receiver: chat, reason: non_retryable}
          - exp_labels: {severity: critical, namespace: monitoring, receiver: chat, reason: max_attempts}
      - eval_time: 25m
        alertname: AmrelayNotificationsDeadLettered
        exp_alerts: []
      - eval_time: 35m
        alertname: AmrelayNotificationsDeadLettered
        exp_alerts:
          - exp_labels: {severity: critical, namespace: monitoring, receiver: chat, reason: max_attempts}
      - eval_time: 12m
        alertname: AmrelayConfigReloadFailed
        exp_alerts:
          - exp_labels: {severity: warning, job: amrelay, instance: "a:9098"}
      - eval_time: 12m
        alertname: AmrelayQueueSaturated
        exp_alerts:
          - exp_labels: {severity: warning, job: amrelay, instance: "a:9098", receiver: chat}
      - eval_time: 20m
        alertname: AmrelayDownstreamFailing
        exp_alerts:
          - exp_labels: {severity: warning, namespace: monitoring, receiver: chat}
"#;

/// `promtool check rules` accepts the PrometheusRule's rules, and `promtool test rules` shows
/// each alert firing when it should, a receiver's first dead letter included.
#[test]
fn prometheus_rules_pass_promtool() {
    let rule = prometheus_rule();
    let groups = &rule["spec"]["groups"];
    let alerts: BTreeSet<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    for expected in [
        "AmrelayNotificationsDeadLettered",
        "AmrelayConfigReloadFailed",
        "AmrelayQueueSaturated",
        "AmrelayDownstreamFailing",
    ] {
        assert!(alerts.contains(expected), "{expected} in {alerts:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, rule["spec"].to_string()).unwrap();
    let checked = run(Command::new(promtool()).args(["check", "rules"]).arg(&rules));
    assert!(checked.success, "promtool check rules:\n{}", checked.output);

    // The unit tests compare labels; annotations are templates checked above.
    let mut unannotated = rule["spec"].clone();
    for group in unannotated["groups"].as_array_mut().unwrap() {
        for rule in group["rules"].as_array_mut().unwrap() {
            rule.as_object_mut().unwrap().remove("annotations");
        }
    }
    std::fs::write(&rules, unannotated.to_string()).unwrap();
    let tests = dir.path().join("rules.test.yml");
    std::fs::write(&tests, RULE_TESTS).unwrap();
    let tested = run(Command::new(promtool()).args(["test", "rules"]).arg(&tests));
    assert!(tested.success, "promtool test rules:\n{}", tested.output);
    for alert in alerts {
        assert!(RULE_TESTS.contains(&format!("alertname: {alert}\n")), "{alert} has no unit test in RULE_TESTS");
    }
}

/// The names of the samples in a Prometheus text scrape, histograms' `_bucket`, `_sum` and
/// `_count` included, plus every name a `# TYPE` line declares.
fn sample_names(scrape: &str) -> std::collections::BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(typed) => typed.split_whitespace().next(),
            None if line.starts_with('#') || line.trim().is_empty() => None,
            None => line.split(['{', ' ']).next(),
        })
        .map(str::to_owned)
        .collect()
}

/// The `amrelay_*` metric names a PromQL expression uses.
fn amrelay_metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("amrelay_") {
        let preceded_by_word =
            rest[..start].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
        if !preceded_by_word {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

fn dashboard() -> Value {
    let file = deploy().join("grafana/amrelay-dashboard.json");
    serde_json::from_str(&read(&file)).unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()))
}

/// Every query in the dashboard: its panels' targets (rows included) and its variables.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("a target with expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] == "query" {
            queries.push(variable["definition"].as_str().unwrap().to_owned());
        }
    }
    queries
}

/// The dashboard parses, each panel queries the dashboard's data source, and every query is
/// valid PromQL (once Grafana's variables are substituted).
#[test]
fn dashboard_queries_are_valid_promql() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "amrelay");
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "unique panel ids");
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
            assert!(!panel["targets"].as_array().unwrap().is_empty());
        }
    }
    let rules: Vec<Value> = dashboard_queries(&dashboard)
        .iter()
        .filter(|q| !q.starts_with("label_values("))
        .enumerate()
        .map(|(i, query)| {
            let expr = query.replace("$__rate_interval", "5m").replace("$job", ".+").replace("$receiver", ".+");
            json!({"record": format!("dashboard:query_{i}"), "expr": expr})
        })
        .collect();
    assert!(rules.len() >= 10, "{rules:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string()).unwrap();
    let checked = run(Command::new(promtool()).args(["check", "rules"]).arg(&file));
    assert!(checked.success, "the dashboard's queries are not valid PromQL:\n{}", checked.output);
}

/// Every amrelay metric the dashboard and the alerts query appears in a real scrape of a relay
/// after traffic; and the dashboard covers each part of the relay.
#[tokio::test]
async fn dashboard_and_alerts_query_only_real_metrics() {
    let dashboard_queries = dashboard_queries(&dashboard());
    let rule_file = yaml_file(&deploy().join("kubernetes/base/prometheusrule.yaml"));
    let rule_queries: Vec<String> = rule_file["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();

    let (relay, _downstreams) = relay_after_traffic("dashboard").await;
    let scrape = get(&relay.url("/metrics")).await.text();
    let exported = sample_names(&scrape);
    for (source, queries) in [
        ("deploy/grafana/amrelay-dashboard.json", &dashboard_queries),
        ("deploy/kubernetes/base/prometheusrule.yaml", &rule_queries),
    ] {
        for query in queries.iter() {
            let names = amrelay_metric_names(query);
            for name in names {
                assert!(
                    exported.contains(&name),
                    "{source} queries {name}, which amrelay does not export:\n{query}\n\
                     exported: {exported:#?}"
                );
            }
        }
    }
    let used: BTreeSet<String> = dashboard_queries.iter().flat_map(|q| amrelay_metric_names(q)).collect();
    for needed in [
        "amrelay_alerts_received_total",
        "amrelay_receiver_alerts_matched_total",
        "amrelay_receiver_alerts_filtered_total",
        "amrelay_delivery_latency_seconds_bucket",
        "amrelay_delivery_attempts_total",
        "amrelay_queue_depth",
        "amrelay_notifications_dead_lettered_total",
        "amrelay_config_reloads_total",
        "amrelay_spool_bytes",
        "amrelay_webhook_pacing_wait_duration_seconds_count",
    ] {
        assert!(used.contains(needed), "the dashboard shows {needed}");
    }
}

// ---------------------------------------------------------------------------------------------
// The image

/// The Dockerfile builds in one stage and ships in another, as a non-root user, with the
/// default config where the Deployment's flag points, port 9098, and no HEALTHCHECK; the build
/// context (.dockerignore) holds everything it copies.
#[test]
fn dockerfile_ships_a_small_non_root_image() {
    let dockerfile = read(&deploy().join("Dockerfile"));
    let instructions: Vec<(String, String)> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (word, rest) = l.split_once(' ')?;
            Some((word.to_ascii_uppercase(), rest.trim().to_owned()))
        })
        .collect();
    let stages: Vec<usize> =
        instructions.iter().enumerate().filter(|(_, (word, _))| word == "FROM").map(|(i, _)| i).collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let last = &instructions[*stages.last().unwrap()..];
    let has = |word: &str, rest: &str| last.iter().any(|(w, r)| w == word && r == rest);
    assert!(!instructions.iter().any(|(w, _)| w == "HEALTHCHECK"), "no HEALTHCHECK: the probes check health");
    let user = last.iter().rfind(|(w, _)| w == "USER").map(|(_, r)| r.clone()).expect("a USER in the final stage");
    assert!(
        !["root", "0", "0:0"].contains(&user.as_str()) && user.starts_with(char::is_numeric),
        "a numeric non-root user, for runAsNonRoot: {user}"
    );
    assert!(has("EXPOSE", "9098"));
    // The default config, its spool moved onto the image's volume, owned by the user.
    assert!(has("COPY", "--from=build /out/amrelay.yml /etc/amrelay/amrelay.yml"));
    assert!(has("VOLUME", "/var/lib/amrelay"));
    assert!(dockerfile.contains("path: /var/lib/amrelay/spool.redb"));
    assert!(has("CMD", &format!("[\"{CONFIG_FLAG}\"]")));

    let ignore = read(&repo().join(".dockerignore"));
    for copied in ["Cargo.toml", "Cargo.lock", "build.rs", "src/", "benches/", "examples/", "config/"] {
        assert!(
            ignore.lines().any(|l| l == format!("!{copied}")),
            ".dockerignore lets {copied} into the build context"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The README

/// The README's blocks marked `<!-- checked: … -->`: `(marker, block)`.
fn readme_checked_blocks() -> Vec<(String, String)> {
    // The deployment snippets live in the Operating page the README links to.
    let readme = read(&repo().join("docs/operating.md"));
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(marker) = line.strip_prefix("<!-- checked: ").and_then(|l| l.strip_suffix(" -->")) else {
            continue;
        };
        assert_eq!(lines.next().map(str::trim), Some("```yaml"), "a yaml block follows <!-- checked: {marker} -->");
        let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        blocks.push((marker.to_owned(), block.join("\n") + "\n"));
    }
    blocks
}

/// Asserts that every value in `part` is in `whole` at the same place.
fn assert_contains(whole: &Value, part: &Value, at: &str) {
    match part {
        Value::Object(map) => {
            for (key, value) in map {
                let inner = whole.get(key).unwrap_or_else(|| panic!("the README shows {at}.{key}, which is not there"));
                assert_contains(inner, value, &format!("{at}.{key}"));
            }
        }
        other => assert_eq!(whole, other, "the README's {at} differs"),
    }
}

/// The README's deployment snippets are what the checks above check: copies of checked files,
/// and an overlay that renders, hardened, with its config valid as laid out in the pod and as
/// laid out beside it.
#[test]
fn readme_snippets_are_checked() {
    let blocks = readme_checked_blocks();
    assert!(blocks.len() >= 3, "{blocks:#?}");
    for (marker, block) in blocks {
        if let Some(file) = marker.strip_prefix("part of ") {
            let whole = yaml_file(&repo().join(file));
            assert_contains(&whole, &yaml(&block, &format!("README's excerpt of {file}")), file);
        } else if let Some(file) = marker.strip_prefix("same as ") {
            assert_eq!(
                yaml(&block, &format!("README's copy of {file}")),
                yaml_file(&repo().join(file)),
                "the README's copy of {file} differs from it"
            );
        } else if marker == "renders as my-amrelay/kustomization.yaml beside ../amrelay" {
            let dir = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink(repo(), dir.path().join("amrelay")).unwrap();
            let overlay = dir.path().join("my-amrelay");
            std::fs::create_dir_all(overlay.join("secrets")).unwrap();
            std::fs::write(overlay.join("kustomization.yaml"), &block).unwrap();
            std::fs::copy(deploy().join("kubernetes/base/amrelay.yml"), overlay.join("amrelay.yml")).unwrap();
            // webhook-token: a placeholder for the local check; in the cluster it is amrelay-inbound's.
            for secret in ["ops-chat-password", "incidents-token", "webhook-token"] {
                std::fs::write(overlay.join("secrets").join(secret), "s3cret\n").unwrap();
            }
            let local = check_config(&overlay.join("amrelay.yml"));
            assert!(local.success, "{}", local.output);

            let documents = render(&overlay);
            check_rendering(&overlay, &documents);
            assert_eq!(container(workload(&documents))["image"], "registry.example.com/amrelay:0.1.0");
            let folder = tempfile::tempdir().unwrap();
            let file = lay_out_config_folder(&documents, folder.path());
            assert_eq!(read(&folder.path().join("secrets/incidents-token")), "s3cret\n");
            let in_pod = check_config(&file);
            assert!(in_pod.success, "{}", in_pod.output);
        } else {
            panic!("README: unknown check {marker:?}");
        }
    }
}
