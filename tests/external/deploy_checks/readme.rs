//! The documentation's deployment snippets are what the checks beside check.

use super::kustomize::check_rendering;
use super::render::*;
use super::*;

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
