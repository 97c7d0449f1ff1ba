//! Which fields of a receiver definition are secret, in one table ([`SECRETS`]), and the two
//! things the console does with them: blank them in every answer ([`redact`]) and, where an
//! edit sends one back blank, keep the stored value ([`keep_blank_secrets`]). Both walk the same
//! [`spots`] of a definition, so a secret the console hides is always one an edit keeps.
//!
//! A preset's secret options (`routing_key`, `api_key`, …) are those its own metadata marks
//! `secret` ([`Preset::options`]): the same list the config uses to read them as secrets. The
//! `NAME_file` form only names a file and is shown.
//!
//! A stored secret is refilled only for the destination it was given for ([`destination`]):
//! when an edit points the receiver elsewhere, each secret left blank is asked for again.

use serde_json::Value;

use super::document::{FieldError, changed_fields};
use crate::template::Preset;

/// Where secrets sit in a definition. The validated config holds each as a
/// [`crate::secret::Secret`] (or a sensitive header value); the tests check that.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// One value at this key path: a password, token, private key, or a proxy URL (which may
    /// carry credentials).
    Field(&'static [&'static str]),
    /// A mapping at this key path whose every value is a secret: header values, proxy CONNECT
    /// headers, OAuth2 endpoint parameters.
    Map(&'static [&'static str]),
    /// The `secrets:` list of each entry of the mapping at this key path.
    Lists(&'static [&'static str], &'static str),
    /// The options of `preset_options` that the receiver's `preset` declares secret.
    PresetOptions,
}

/// Every place a receiver definition holds a secret.
const SECRETS: [Place; 15] = [
    Place::Field(&["http_config", "basic_auth", "password"]),
    Place::Field(&["http_config", "authorization", "credentials"]),
    Place::Field(&["http_config", "bearer_token"]),
    Place::Field(&["http_config", "oauth2", "client_secret"]),
    Place::Field(&["http_config", "tls_config", "key"]),
    Place::Field(&["http_config", "oauth2", "tls_config", "key"]),
    Place::Field(&["signing", "secret"]),
    Place::Field(&["http_config", "proxy_url"]),
    Place::Field(&["http_config", "oauth2", "proxy_url"]),
    Place::Map(&["headers"]),
    Place::Map(&["http_config", "proxy_connect_header"]),
    Place::Map(&["http_config", "oauth2", "proxy_connect_header"]),
    Place::Map(&["http_config", "oauth2", "endpoint_params"]),
    Place::Lists(&["http_config", "http_headers"], "secrets"),
    Place::PresetOptions,
];

/// How a spot's value is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A value, blanked (and said to be stored) when it is a non-empty string.
    WhenSet,
    /// A value, always blanked: every value of a secret map.
    Always,
    /// A list whose every item is blanked.
    List,
}

/// One secret of a definition: the dotted name a form is told is stored, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spot {
    /// `http_config.authorization.credentials`, `headers.X-Api-Key`, `preset_options.api_key`.
    pub name: String,
    /// JSON pointer to the value.
    pointer: String,
    kind: Kind,
}

/// The secrets `definition` has, in the order of [`SECRETS`].
pub fn spots(definition: &Value) -> Vec<Spot> {
    let mut found = Vec::new();
    let at = |path: &[&str]| path.iter().try_fold(definition, |v, key| v.get(key));
    for place in SECRETS {
        match place {
            Place::Field(path) => {
                if at(path).is_some() {
                    found.push(Spot { name: path.join("."), pointer: pointer(path), kind: Kind::WhenSet });
                }
            }
            Place::Map(path) => {
                for name in at(path).and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
                    found.push(Spot {
                        name: format!("{}.{name}", path.join(".")),
                        pointer: format!("{}/{}", pointer(path), escape(name)),
                        kind: Kind::Always,
                    });
                }
            }
            Place::Lists(path, list) => {
                for (name, entry) in at(path).and_then(Value::as_object).into_iter().flatten() {
                    if entry.get(list).is_some_and(Value::is_array) {
                        found.push(Spot {
                            name: format!("{}.{name}.{list}", path.join(".")),
                            pointer: format!("{}/{}/{list}", pointer(path), escape(name)),
                            kind: Kind::List,
                        });
                    }
                }
            }
            Place::PresetOptions => {
                let options = definition.get("preset_options").and_then(Value::as_object);
                for name in options.into_iter().flat_map(|o| o.keys()) {
                    if is_secret_option(definition, name) {
                        found.push(Spot {
                            name: format!("preset_options.{name}"),
                            pointer: format!("/preset_options/{}", escape(name)),
                            kind: Kind::WhenSet,
                        });
                    }
                }
            }
        }
    }
    found
}

/// Whether the option `name` of the definition's preset holds a secret inline, as the preset's
/// metadata says. Without a known preset (a definition the validation will refuse) every
/// inline option is treated as one, so that nothing a mistyped preset holds is shown.
fn is_secret_option(definition: &Value, name: &str) -> bool {
    match definition.get("preset").and_then(Value::as_str).and_then(Preset::parse) {
        Some(preset) => preset.options().iter().any(|option| option.secret && option.name == name),
        None => !name.ends_with("_file"),
    }
}

/// A definition fit to show: secrets blanked, header values blanked, the URL redacted. Also
/// returns the names of the secrets that are set, so a form can say "stored".
pub fn redact(definition: &Value) -> (Value, Vec<String>) {
    let mut shown = definition.clone();
    let mut set = Vec::new();
    for spot in spots(definition) {
        let Some(value) = shown.pointer_mut(&spot.pointer) else {
            continue;
        };
        match (spot.kind, value) {
            (Kind::WhenSet, value) if value.as_str().is_some_and(|s| !s.is_empty()) => {
                *value = Value::String(String::new());
            }
            (Kind::Always, value) => *value = Value::String(String::new()),
            (Kind::List, Value::Array(items)) => items.iter_mut().for_each(|s| *s = Value::String(String::new())),
            _ => continue,
        }
        set.push(spot.name);
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

/// Puts the stored value back into every secret of `edited` sent blank (a list: item by item,
/// when it has as many items as the stored one).
fn fill_blank_secrets(edited: &mut Value, stored: &Value) {
    for spot in spots(edited) {
        let (Some(kept), Some(value)) = (stored.pointer(&spot.pointer), edited.pointer_mut(&spot.pointer)) else {
            continue;
        };
        match (spot.kind, value, kept) {
            (Kind::List, Value::Array(items), Value::Array(old)) if items.len() == old.len() => {
                for (item, old) in items.iter_mut().zip(old) {
                    if item.as_str() == Some("") {
                        *item = old.clone();
                    }
                }
            }
            (Kind::WhenSet | Kind::Always, value, kept) if value.as_str() == Some("") => *value = kept.clone(),
            _ => {}
        }
    }
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

/// The JSON pointer of a key path.
fn pointer(path: &[&str]) -> String {
    path.iter().map(|key| format!("/{}", escape(key))).collect()
}

/// A key as one JSON pointer segment (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests;
