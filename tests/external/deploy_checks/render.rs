//! Rendering the kustomizations and laying out a pod's config folder, for the checks beside.

use super::*;

/// Every folder under deploy/ with a kustomization.yaml.
pub(super) fn kustomizations() -> Vec<PathBuf> {
    files_under(&deploy()).into_iter().filter(|p| is_kustomization(p)).map(|p| p.parent().unwrap().to_owned()).collect()
}

/// `kubectl kustomize dir`, as documents.
pub(super) fn render(dir: &Path) -> Vec<Value> {
    let rendered = run(Command::new(kubectl()).arg("kustomize").arg(dir));
    assert!(rendered.success, "kubectl kustomize {} failed:\n{}", dir.display(), rendered.output);
    yaml_documents(&rendered.output, &format!("{}'s rendering", dir.display()))
}

pub(super) fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    documents.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

pub(super) fn of_kind<'a>(documents: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    documents.iter().filter(move |d| d["kind"] == kind)
}

/// amrelay's one workload in a rendering: its Deployment or StatefulSet.
pub(super) fn workload(documents: &[Value]) -> &Value {
    let workloads: Vec<&Value> =
        documents.iter().filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet").collect();
    assert_eq!(workloads.len(), 1, "one workload: {workloads:#?}");
    workloads[0]
}

pub(super) fn container(workload: &Value) -> &Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "amrelay")
        .expect("a container named amrelay")
}

/// Whether `labels` has every pair of `selector`.
pub(super) fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a label selector");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The volume mounted at `path` in the amrelay container.
pub(super) fn volume_at<'a>(workload: &'a Value, path: &str) -> &'a Value {
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
pub(super) fn config_sources(workload: &Value) -> Vec<(&'static str, Value)> {
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
pub(super) fn object_files(object: &Value) -> Vec<(String, Vec<u8>)> {
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
pub(super) const INBOUND_SECRET: &str = "amrelay-inbound";

/// Writes the config folder as amrelay's pod sees it at /etc/amrelay into `dir`; returns the
/// config file's path in it.
pub(super) fn lay_out_config_folder(documents: &[Value], dir: &Path) -> PathBuf {
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

pub(super) fn check_config(file: &Path) -> Finished {
    run(Command::new(env!("CARGO_BIN_EXE_amrelay")).arg("check-config").arg(file))
}
