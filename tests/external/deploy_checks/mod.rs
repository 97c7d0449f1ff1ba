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

mod alertmanager;
mod amrelay_configs;
mod image;
mod kustomize;
mod prometheus;
mod readme;
mod render;

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
