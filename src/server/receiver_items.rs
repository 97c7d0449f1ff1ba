//! How the receivers API shows a receiver: one of the config file (read-only, with the line
//! that flips its `enabled:`) or one of the console file (its definition with secrets blanked,
//! its entity tag, whether it runs), and the answer to a change.

use http::header::ETAG;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::response::{HttpResponse, json};
use super::state::AppState;
use crate::editor;
use crate::snapshot::{Snapshot, Source};

/// The answer to a change: who made it for which tenant (`null`: a global receiver), the
/// definition as shown, its etag, and the reload's outcome.
pub(super) fn changed(
    status: StatusCode,
    state: &AppState,
    (user, tenant): (&str, Option<&str>),
    name: &str,
    definition: Option<&Value>,
    reload: Result<(), String>,
) -> HttpResponse {
    let snapshot = state.reloader.snapshot();
    let data = match definition {
        Some(definition) => console_item(&snapshot, name, definition),
        None => json!({"name": name, "deleted": true}),
    };
    let mut response = json(
        status,
        &json!({"status": "success", "data": {
            "user": user,
            "tenant": tenant,
            "receiver": data,
            "reload": {"successful": reload.is_ok(), "error": reload.err()},
        }}),
    );
    if let Some(definition) = definition {
        set_etag(&mut response, &editor::etag(definition));
    }
    response
}

/// A receiver of the config file, as the list shows it: read-only, with where to edit it.
pub(super) fn file_item(state: &AppState, snapshot: &Snapshot, name: &str) -> Value {
    let Some(receiver) = snapshot.receiver(name) else {
        return json!({"name": name, "source": Source::File});
    };
    let config = &receiver.config;
    let line = super::console::enabled_line(state, snapshot, name);
    json!({
        "name": name,
        "source": Source::File,
        "tenant": config.tenant,
        "enabled": config.enabled,
        "running": true,
        "url": crate::redact::url(&config.endpoint.url),
        "auth": config.endpoint.auth.kind(),
        "file": snapshot.source.display().to_string(),
        "enabled_line": line,
    })
}

/// A console receiver as stored, secrets blanked, with its etag and whether it runs.
pub(super) fn console_item(snapshot: &Snapshot, name: &str, definition: &Value) -> Value {
    let (shown, secrets_set) = editor::redact(definition);
    let running = snapshot.receiver(name).is_some_and(|r| r.source == Source::Console);
    let conflict = snapshot
        .console
        .conflicts
        .iter()
        .find(|c| c.message.starts_with(&format!("{name:?} ")))
        .map(|c| json!({"field": c.field, "message": c.message}));
    json!({
        "name": name,
        "source": Source::Console,
        "tenant": definition.get("tenant"),
        "enabled": definition.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        "running": running,
        "etag": editor::etag(definition),
        "definition": shown,
        "secrets_set": secrets_set,
        "error": conflict,
    })
}

/// Sets the answer's `ETag`.
pub(super) fn set_etag(response: &mut HttpResponse, etag: &str) {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(ETAG, value);
    }
}
