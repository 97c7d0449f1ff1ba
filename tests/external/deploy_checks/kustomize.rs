//! `kubectl kustomize` renders every base and overlay, hardened and wired as documented.

use super::render::*;
use super::*;

/// Asserts what the README promises of a rendered deployment.
pub(super) fn check_rendering(dir: &Path, documents: &[Value]) {
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
