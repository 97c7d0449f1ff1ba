//! Every amrelay config under deploy/ passes `check-config` as its pod sees it, every file under deploy/ is checked by something, and the inbound Secret's script makes a random token.

use super::render::*;
use super::*;

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
        assert!(covered, "{relative} is checked by nothing in tests/external/deploy_checks/");
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
