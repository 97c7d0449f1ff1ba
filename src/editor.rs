//! Editing the console file (`--config.console-file`): the file as a document of receiver
//! definitions, each shaped like its YAML; secrets kept out of every answer; the file written
//! atomically.
//!
//! A definition goes through the same validation as the config file's receivers before it
//! reaches the file ([`crate::config::console_from_str`]); the server's receivers API decides
//! what to change and when, this module only knows the document.
//!
//! Secrets are write-only: [`redact`] blanks them (and hides a URL's path, which often carries
//! a token), and [`keep_blank_secrets`] puts the stored value back where an edit leaves a secret
//! blank — or sends back the redacted URL unchanged — so that a form never needs to know them.
//!
//! Writes are atomic: a temporary file in the same folder (mode 0600), fsync, rename over the
//! file, fsync the folder. A `kill -9` at any point leaves the old file or the new one.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{ConfigError, ConsoleFile};

/// Secret fields of a receiver definition, as key paths.
const SECRET_FIELDS: [&[&str]; 9] = [
    &["http_config", "basic_auth", "password"],
    &["http_config", "authorization", "credentials"],
    &["http_config", "bearer_token"],
    &["http_config", "oauth2", "client_secret"],
    &["http_config", "tls_config", "key"],
    &["http_config", "oauth2", "tls_config", "key"],
    &["signing", "secret"],
    &["http_config", "proxy_url"],
    &["http_config", "oauth2", "proxy_url"],
];

/// Maps whose every value is a secret (header values, proxy CONNECT headers, OAuth2 endpoint
/// parameters): each value is blanked in answers and kept when an edit leaves it blank.
const SECRET_MAPS: [&[&str]; 4] = [
    &["headers"],
    &["http_config", "proxy_connect_header"],
    &["http_config", "oauth2", "proxy_connect_header"],
    &["http_config", "oauth2", "endpoint_params"],
];

/// The first line of a file the console writes.
const HEADER: &str = "# Receivers managed in the amrelay console (same schema as the config file's `receivers:`).\n\
# Edited by amrelay: hand edits are read, but comments are not kept.\n";

/// The console file's receiver definitions, in order.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub receivers: Vec<Value>,
}

impl Document {
    /// Parses the file's text (empty: no receivers). The schema is checked later, by the config's
    /// validation; here only the shape: a `receivers:` list of mappings with a `name`.
    pub fn parse(text: &str) -> Result<Document, String> {
        if text.trim().is_empty() {
            return Ok(Document::default());
        }
        let value: Value = serde_saphyr::from_str(text).map_err(|e| e.without_snippet().to_string())?;
        let receivers = match value {
            Value::Null => Vec::new(),
            Value::Object(mut top) => match top.remove("receivers") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(list)) => list,
                Some(_) => return Err("receivers: must be a list".into()),
            },
            _ => return Err("must be a mapping with a receivers: list".into()),
        };
        if receivers.iter().any(|r| r.get("name").and_then(Value::as_str).is_none()) {
            return Err("every receiver needs a name".into());
        }
        Ok(Document { receivers })
    }

    /// The YAML text of the file.
    /// The file's text. A document that cannot be written is an error, never an empty file
    /// (which would validate as "no receivers" and erase them all).
    pub fn render(&self) -> Result<String, String> {
        #[derive(Serialize)]
        struct File<'a> {
            receivers: &'a [Value],
        }
        let body = serde_saphyr::to_string(&File { receivers: &self.receivers })
            .map_err(|e| format!("cannot write the console file's YAML: {e}"))?;
        Ok(format!("{HEADER}{body}"))
    }

    /// The position and definition of the receiver `name`.
    pub fn find(&self, name: &str) -> Option<(usize, &Value)> {
        self.receivers.iter().enumerate().find(|(_, r)| r.get("name").and_then(Value::as_str) == Some(name))
    }
}

/// The entity tag of a stored definition: changes whenever any of it, secrets included, does.
pub fn etag(definition: &Value) -> String {
    // serde_json's maps are sorted: the same definition always gives the same bytes.
    etag_of(&serde_json::to_vec(definition).unwrap_or_default())
}

/// An entity tag of `bytes`: HMAC-SHA256 under a key made once per process, so that a tag over
/// text holding secrets cannot be used to test guesses of them offline.
pub fn etag_of(bytes: &[u8]) -> String {
    static KEY: std::sync::OnceLock<ring::hmac::Key> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        let rng = ring::rand::SystemRandom::new();
        ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).expect("the system's random source works")
    });
    let tag = ring::hmac::sign(key, bytes);
    let hex: String = tag.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// A definition fit to show: secrets blanked, header values blanked, the URL redacted. Also
/// returns the paths of the secrets that are set, so a form can say "stored".
pub fn redact(definition: &Value) -> (Value, Vec<String>) {
    let mut shown = definition.clone();
    let mut set = Vec::new();
    for path in SECRET_FIELDS {
        if let Some(value) = pointer_mut(&mut shown, path)
            && value.as_str().is_some_and(|s| !s.is_empty())
        {
            *value = Value::String(String::new());
            set.push(path.join("."));
        }
    }
    for path in SECRET_MAPS {
        if let Some(Value::Object(map)) = pointer_mut(&mut shown, path) {
            for (name, value) in map.iter_mut() {
                *value = Value::String(String::new());
                set.push(format!("{}.{name}", path.join(".")));
            }
        }
    }
    if let Some(Value::Object(headers)) = shown.pointer_mut("/http_config/http_headers") {
        for (name, header) in headers.iter_mut() {
            if let Some(Value::Array(secrets)) = header.get_mut("secrets") {
                secrets.iter_mut().for_each(|s| *s = Value::String(String::new()));
                set.push(format!("http_config.http_headers.{name}.secrets"));
            }
        }
    }
    if let Some(Value::Object(options)) = shown.get_mut("preset_options") {
        for (name, value) in options.iter_mut() {
            if is_secret_option(name) && value.as_str().is_some_and(|s| !s.is_empty()) {
                *value = Value::String(String::new());
                set.push(format!("preset_options.{name}"));
            }
        }
    }
    if let Some(url) = shown.get_mut("url")
        && let Some(text) = url.as_str()
    {
        *url = Value::String(crate::redact::url_text(text));
    }
    (shown, set)
}

/// Where an edit leaves a secret blank (or the URL as [`redact`] showed it), the stored value.
///
/// A stored secret is kept only for the destination it was given for: when the edit points the
/// receiver at another host, each stored secret left blank is an error asking for it again, so
/// that no one can send a secret they cannot read to a host of their choosing.
pub fn keep_blank_secrets(edited: &mut Value, stored: &Value) -> Result<(), Vec<FieldError>> {
    if let (Some(url), Some(kept)) =
        (edited.get("url").and_then(Value::as_str), stored.get("url").and_then(Value::as_str))
        && (url.is_empty() || url == crate::redact::url_text(kept))
    {
        edited["url"] = Value::String(kept.to_owned());
    }
    let before = edited.clone();
    fill_blank_secrets(edited, stored);
    let moved = destination(edited) != destination(stored) || follows_redirects_now(edited, stored);
    let kept = changed_fields(Some(&before), Some(edited));
    if moved && !kept.is_empty() {
        return Err(kept
            .into_iter()
            .map(|field| FieldError {
                field,
                message: "the receiver now sends elsewhere (another host or scheme, token endpoint, proxy, CA, \
                          TLS verification, or follow_redirects turned on): enter this secret again (a stored \
                          secret is kept only for where it was given for)"
                    .into(),
            })
            .collect());
    }
    Ok(())
}

/// Whether the edit turns `follow_redirects` on: the downstream may then move the notification
/// (and, to the same origin, its secrets) anywhere it redirects, so stored secrets are not
/// refilled. Turning it off keeps them.
fn follows_redirects_now(edited: &Value, stored: &Value) -> bool {
    let follows = |d: &Value| d.pointer("/http_config/follow_redirects").and_then(Value::as_bool).unwrap_or(false);
    follows(edited) && !follows(stored)
}

/// Where a receiver's secrets go: the scheme and host of its URL (or its `url_file`) and of its
/// OAuth2 token endpoint, its proxies, and what its TLS trusts. A stored secret is refilled
/// only while all of these stay as they were: a new host, plain `http`, a proxy, a CA or
/// skipping verification could each hand it to someone else.
fn destination(definition: &Value) -> Value {
    let origin = |at: &str| {
        let url = definition.pointer(at).and_then(Value::as_str)?.parse::<http::Uri>().ok()?;
        Some(format!("{}://{}", url.scheme_str().unwrap_or(""), url.authority()?.as_str().to_ascii_lowercase()))
    };
    let at = |pointer: &str| definition.pointer(pointer).cloned().unwrap_or(Value::Null);
    let skip = |pointer: &str| definition.pointer(pointer).and_then(Value::as_bool).unwrap_or(false);
    serde_json::json!([
        origin("/url"),
        at("/url_file"),
        origin("/http_config/oauth2/token_url"),
        at("/http_config/proxy_url"),
        at("/http_config/oauth2/proxy_url"),
        at("/http_config/proxy_from_environment"),
        skip("/http_config/tls_config/insecure_skip_verify"),
        skip("/http_config/oauth2/tls_config/insecure_skip_verify"),
        at("/http_config/tls_config/ca"),
        at("/http_config/tls_config/ca_file"),
        at("/http_config/oauth2/tls_config/ca"),
        at("/http_config/oauth2/tls_config/ca_file"),
    ])
}

fn fill_blank_secrets(edited: &mut Value, stored: &Value) {
    for path in SECRET_FIELDS {
        let blank = pointer_mut(edited, path).is_some_and(|v| v.as_str() == Some(""));
        if blank
            && let Some(kept) = pointer(stored, path)
            && let Some(value) = pointer_mut(edited, path)
        {
            *value = kept.clone();
        }
    }
    for path in SECRET_MAPS {
        if let Some(Value::Object(kept)) = pointer(stored, path).cloned()
            && let Some(Value::Object(map)) = pointer_mut(edited, path)
        {
            for (name, value) in map.iter_mut() {
                if value.as_str() == Some("")
                    && let Some(old) = kept.get(name)
                {
                    *value = old.clone();
                }
            }
        }
    }
    if let (Some(Value::Object(headers)), Some(Value::Object(kept))) =
        (edited.pointer_mut("/http_config/http_headers"), stored.pointer("/http_config/http_headers"))
    {
        for (name, header) in headers.iter_mut() {
            let old = kept.get(name).and_then(|h| h.get("secrets")).and_then(Value::as_array);
            if let (Some(Value::Array(secrets)), Some(old)) = (header.get_mut("secrets"), old)
                && secrets.len() == old.len()
            {
                for (secret, old) in secrets.iter_mut().zip(old) {
                    if secret.as_str() == Some("") {
                        *secret = old.clone();
                    }
                }
            }
        }
    }
    if let (Some(Value::Object(options)), Some(Value::Object(kept))) =
        (edited.get_mut("preset_options"), stored.get("preset_options"))
    {
        for (name, value) in options.iter_mut() {
            if is_secret_option(name)
                && value.as_str() == Some("")
                && let Some(old) = kept.get(name)
            {
                *value = old.clone();
            }
        }
    }
}

/// The fields that differ between two definitions, as dotted paths to the deepest mapping key
/// (`url`, `http_config.authorization.credentials`), for the audit log: names, never values.
pub fn changed_fields(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let empty = Map::new();
    let object = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_else(|| empty.clone());
    let (before, after) = (object(before), object(after));
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut changed = Vec::new();
    for key in keys {
        let (old, new) = (before.get(key), after.get(key));
        if old == new {
            continue;
        }
        match (old.and_then(Value::as_object), new.and_then(Value::as_object)) {
            (Some(_), Some(_)) => {
                for inner in changed_fields(old, new) {
                    changed.push(format!("{key}.{inner}"));
                }
            }
            _ => changed.push(key.clone()),
        }
    }
    changed
}

/// One mistake in a definition, as the API answers it: the field within the receiver
/// (`conditions[0].values`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The issues of the receiver at `index` of a console document, with fields relative to the
/// receiver; `text` (the document validated) places errors the parser reports by line only.
pub fn field_errors(error: &ConfigError, index: usize, text: &str) -> Vec<FieldError> {
    let prefix = format!("receivers[{index}].");
    error
        .issues
        .iter()
        .map(|issue| {
            let field = match issue.field.strip_prefix(&prefix) {
                Some(field) => field.to_owned(),
                None if issue.field.is_empty() => key_at_line(text, issue.position).unwrap_or_default(),
                None => issue.field.clone(),
            };
            FieldError { field, message: issue.message.clone() }
        })
        .collect()
}

/// The key written on the line of a parse error: the best name for a type mistake.
fn key_at_line(text: &str, position: Option<(u64, u64)>) -> Option<String> {
    let line = text.lines().nth(usize::try_from(position?.0).ok()?.checked_sub(1)?)?;
    let key = line.trim_start().trim_start_matches("- ").split(':').next()?.trim();
    (!key.is_empty() && !key.contains(' ')).then(|| key.trim_matches(['"', '\'']).to_owned())
}

/// Writes `text` to `path` atomically, readable by the owner only (it may hold secrets).
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("console-receivers.yml");
    let temporary = folder.join(format!(".{name}.{}.{:08x}.tmp", std::process::id(), fastrand::u32(..)));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(folder)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Checks that the console file's folder can be written (creating it if needed); if not, the
/// file is still read but editing is off, saying why.
pub fn probe(file: ConsoleFile) -> ConsoleFile {
    let ConsoleFile::At(path) = &file else {
        return file;
    };
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    remove_leftovers(path);
    let writable = std::fs::create_dir_all(&folder).and_then(|()| {
        let probe = folder.join(format!(".amrelay-probe.{}", std::process::id()));
        std::fs::File::create(&probe)?;
        std::fs::remove_file(&probe)
    });
    match writable {
        Ok(()) => file,
        Err(e) => {
            let why = format!("editing in the console is off: cannot write in {} ({e})", folder.display());
            ConsoleFile::ReadOnly(path.clone(), why)
        }
    }
}

/// A preset option that holds a secret inline (`api_key`, `bot_token`, `secret`; not the
/// `…_file` form, which only names a file).
fn is_secret_option(name: &str) -> bool {
    !name.ends_with("_file") && ["key", "token", "secret", "password"].iter().any(|word| name.contains(word))
}

/// Removes temporary files a write interrupted by a crash left beside the console file (the
/// file itself is whole: the rename never happened).
fn remove_leftovers(path: &Path) {
    let (Some(folder), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let folder = if folder.as_os_str().is_empty() { Path::new(".") } else { folder };
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with(&prefix) && file_name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn pointer<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn pointer_mut<'v>(value: &'v mut Value, path: &[&str]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, key| v.get_mut(key))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn definition() -> Value {
        json!({
            "name": "ops",
            "url": "https://hooks.slack.com/services/T0/B0/XXXX",
            "headers": {"X-Api-Key": "k3y"},
            "http_config": {"authorization": {"type": "Bearer", "credentials": "t0ken"}},
            "conditions": [{"label": "severity", "operator": "In", "values": ["critical", "true", "5"]}],
        })
    }

    #[test]
    fn a_document_survives_rendering() {
        let document =
            Document { receivers: vec![definition(), json!({"name": "b", "url": "http://x/", "enabled": false})] };
        let again = Document::parse(&document.render().unwrap()).unwrap();
        assert_eq!(again.receivers, document.receivers);
        assert!(Document::parse("receivers: [{url: x}]").is_err());
        assert!(Document::parse("").unwrap().receivers.is_empty());
    }

    #[test]
    fn redacting_hides_every_secret_and_blank_ones_are_kept() {
        let stored = definition();
        let (shown, set) = redact(&stored);
        let text = shown.to_string();
        for secret in ["k3y", "t0ken", "XXXX"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(shown["url"], "https://hooks.slack.com/services/***");
        assert_eq!(set, ["http_config.authorization.credentials", "headers.X-Api-Key"]);
        // The form sends back what it was shown: every secret is kept.
        let mut edited = shown.clone();
        keep_blank_secrets(&mut edited, &stored).unwrap();
        assert_eq!(edited, stored);
        // A secret typed in replaces the stored one.
        let mut edited = shown.clone();
        edited["http_config"]["authorization"]["credentials"] = json!("new");
        keep_blank_secrets(&mut edited, &stored).unwrap();
        assert_eq!(edited["http_config"]["authorization"]["credentials"], "new");
        // Another host: stored secrets are not sent there unless typed again.
        let mut edited = shown;
        edited["url"] = json!("https://elsewhere.example/hook");
        let errors = keep_blank_secrets(&mut edited, &stored).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["headers.X-Api-Key", "http_config.authorization.credentials"]);
    }

    /// Regression (review): the guard looked at the URL's host alone, so a stored token could be
    /// sent in clear, through a proxy, past a new CA or to a new token endpoint.
    #[test]
    fn stored_secrets_are_kept_only_while_they_go_where_they_went() {
        let stored = definition();
        let (shown, _) = redact(&stored);
        let elsewhere: [(&str, Value); 6] = [
            ("/url", json!("http://hooks.slack.com/services/T000/B000/XXXX")),
            ("/http_config/proxy_url", json!("http://proxy.attacker.example:3128")),
            ("/http_config/tls_config", json!({"insecure_skip_verify": true})),
            ("/http_config/tls_config", json!({"ca": "-----BEGIN CERTIFICATE-----"})),
            ("/http_config/oauth2", json!({"client_id": "a", "token_url": "https://attacker.example/token"})),
            // Regression (review): a redirect could then take the stored token where it pointed.
            ("/http_config/follow_redirects", json!(true)),
        ];
        for (at, value) in elsewhere {
            let mut edited = shown.clone();
            let (parent, key) = at.rsplit_once('/').unwrap();
            let parent = if parent.is_empty() { &mut edited } else { edited.pointer_mut(parent).unwrap() };
            parent[key] = value.clone();
            let errors = keep_blank_secrets(&mut edited, &stored).expect_err(at);
            assert!(errors.iter().any(|e| e.field == "http_config.authorization.credentials"), "{at} {value}");
        }
        // Turning follow_redirects off, or keeping it on, keeps the stored secrets.
        let mut following = definition();
        following["http_config"]["follow_redirects"] = json!(true);
        let (shown, _) = redact(&following);
        for follows in [true, false] {
            let mut edited = shown.clone();
            edited["http_config"]["follow_redirects"] = json!(follows);
            keep_blank_secrets(&mut edited, &following).unwrap();
            assert_eq!(edited["http_config"]["authorization"]["credentials"], "t0ken");
        }
        // Every value of a secret map is blanked and kept.
        let mut stored = definition();
        stored["http_config"]["proxy_connect_header"] = json!({"Proxy-Authorization": ["Basic czNjcmV0"]});
        stored["http_config"]["proxy_url"] = json!("http://proxy.example:3128");
        let (shown, _) = redact(&stored);
        assert!(!shown.to_string().contains("czNjcmV0"), "{shown}");
        let mut edited = shown.clone();
        keep_blank_secrets(&mut edited, &stored).unwrap();
        assert_eq!(edited, stored);
    }

    #[test]
    fn changes_are_named_by_field() {
        let before = definition();
        let mut after = before.clone();
        after["http_config"]["authorization"]["credentials"] = json!("other");
        after["enabled"] = json!(false);
        assert_eq!(changed_fields(Some(&before), Some(&after)), ["enabled", "http_config.authorization.credentials"]);
        assert_eq!(changed_fields(None, Some(&json!({"name": "a", "url": "u"}))), ["name", "url"]);
    }

    #[test]
    fn writes_are_atomic_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console-receivers.yml");
        write_atomically(&path, "receivers: []\n").unwrap();
        write_atomically(&path, "receivers: [{name: a}]\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "receivers: [{name: a}]\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
