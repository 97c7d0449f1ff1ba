//! The console file as a document: its receiver definitions, each shaped like its YAML, in order.
//!
//! A definition goes through the same validation as the config file's receivers before it
//! reaches the file ([`crate::config::console_from_str`]); here only the shape is checked (a
//! `receivers:` list of mappings with a `name`), so that a hand-edited file with a schema
//! mistake can still be listed and fixed.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::ConfigError;

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

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;

    /// A console receiver with a secret URL, a secret header and a bearer token, for the
    /// editor's tests.
    pub(in crate::editor) fn definition() -> Value {
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
    fn changes_are_named_by_field() {
        let before = definition();
        let mut after = before.clone();
        after["http_config"]["authorization"]["credentials"] = json!("other");
        after["enabled"] = json!(false);
        assert_eq!(changed_fields(Some(&before), Some(&after)), ["enabled", "http_config.authorization.credentials"]);
        assert_eq!(changed_fields(None, Some(&json!({"name": "a", "url": "u"}))), ["name", "url"]);
    }
}
