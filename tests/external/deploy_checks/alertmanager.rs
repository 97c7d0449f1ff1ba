//! The Alertmanager configs pass `amtool`, and the AlertmanagerConfig says the same as the file.

use super::render::*;
use super::*;

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
