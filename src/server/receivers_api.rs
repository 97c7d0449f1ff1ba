//! Receivers managed in the console, over JSON: list both sources, create or replace, delete,
//! enable or disable a console receiver, and send a test message with an unsaved definition.
//!
//! - `GET /api/v1/receivers` and `GET /api/v1/receivers/{name}`: every receiver with its
//!   `source` (`file` or `console`); console ones with their definition, secrets blanked and the
//!   URL redacted, and an `etag`.
//! - `PUT /api/v1/receivers/{name}`: a definition shaped like the YAML. Checked by the same code
//!   as the config file (400 with `errors: [{field, message}]`, nothing written), secrets left
//!   blank keep their stored values, written atomically, then reloaded; the answer says how the
//!   reload went.
//! - `DELETE /api/v1/receivers/{name}`, `POST /api/v1/receivers/{name}/enabled {"enabled": b}`.
//! - `POST /api/v1/receiver-test`: a test message through an unsaved definition.
//!
//! Edits are serialized, and `If-Match` (the `etag`) or `If-None-Match: *` makes a stale edit a
//! 412 instead of a lost one. Receivers of the config file are read-only here (409, naming the
//! line to edit). Every change is logged once (who, tenant, receiver, the names of the fields
//! changed, never values) and counted in `amrelay_config_changes_total{source="console",action,tenant}`.
//!
//! A viewer or editor (`server.access`) sees only its tenants' receivers: any other answers 404,
//! as if it did not exist. A receiver an editor saves always has one of its tenants: omitted, it
//! is the editor's one tenant (400 naming `tenant` when it has several); another tenant is 403.

use std::sync::Arc;

use http::header::{IF_MATCH, IF_NONE_MATCH};
use http::{HeaderMap, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::auth::Caller;
use super::body::{check_content_type, read_body};
use super::receiver_items::{changed, console_item, file_item, set_etag};
use super::response::{ApiError, HttpResponse, json};
use super::state::AppState;
use crate::config::access::Role;
use crate::config::{self, ConsoleFile};
use crate::editor::file::{ReadError, WriteError};
use crate::editor::{self, Document, FieldError};
use crate::snapshot::{Snapshot, Source};

/// Definitions are small: a larger body is a mistake.
const MAX_DEFINITION_BYTES: usize = 256 * 1024;

/// What a request asks of `/api/v1/receivers/…`.
pub enum Route<'p> {
    List,
    One(&'p str),
    Enabled(&'p str),
}

/// Parses the path of the receivers API (the `/test` suffix is routed elsewhere).
pub fn route(path: &str) -> Option<Route<'_>> {
    if path == "/api/v1/receivers" {
        return Some(Route::List);
    }
    let rest = path.strip_prefix("/api/v1/receivers/")?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some(Route::One(rest)),
        Some((name, "enabled")) if !name.is_empty() => Some(Route::Enabled(name)),
        _ => None,
    }
}

/// `GET /api/v1/receivers`: those the caller sees.
pub async fn list(state: &AppState, snapshot: &Snapshot, caller: &Caller<'_>) -> Result<HttpResponse, ApiError> {
    let file = state.reloader.console_file();
    let (document, text) = read_document(file).await.unwrap_or_default();
    let mut items: Vec<Value> = snapshot
        .receivers
        .iter()
        .filter(|r| r.source == Source::File && caller.sees(&r.config))
        .map(|r| file_item(state, snapshot, &r.config.name))
        .collect();
    for definition in document.receivers.iter().filter(|d| caller.sees_tenant(tenant_of(d))) {
        let name = definition.get("name").and_then(Value::as_str).unwrap_or_default();
        items.push(console_item(snapshot, name, definition));
    }
    let may_edit = matches!(caller.role, Some(Role::Admin | Role::Editor));
    let editing_off = match file.editing_off() {
        Some(why) => Some(why.to_owned()),
        None if !may_edit => Some(format!("{} may read receivers, not edit them", role_name(caller))),
        None => None,
    };
    let mut response = json(
        StatusCode::OK,
        &json!({"status": "success", "data": {
            "console_file": file.path().map(|p| p.display().to_string()),
            "editable": editing_off.is_none(),
            "editing_off_reason": editing_off,
            "caller": caller_view(snapshot, caller),
            "receivers": items,
        }}),
    );
    set_etag(&mut response, &editor::etag_of(text.as_bytes()));
    Ok(response)
}

/// `GET /api/v1/receivers/{name}`.
pub async fn get(
    state: &AppState,
    snapshot: &Snapshot,
    caller: &Caller<'_>,
    name: &str,
) -> Result<HttpResponse, ApiError> {
    if let Some(r) = snapshot.receiver(name).filter(|r| r.source == Source::File) {
        if !caller.sees(&r.config) {
            return Err(unknown(name));
        }
        let item = file_item(state, snapshot, &r.config.name);
        return Ok(json(StatusCode::OK, &json!({"status": "success", "data": item})));
    }
    let (document, _) = read_document(state.reloader.console_file()).await?;
    let (_, definition) = document.find(name).ok_or_else(|| unknown(name))?;
    if !caller.sees_tenant(tenant_of(definition)) {
        return Err(unknown(name));
    }
    let mut response =
        json(StatusCode::OK, &json!({"status": "success", "data": console_item(snapshot, name, definition)}));
    set_etag(&mut response, &editor::etag(definition));
    Ok(response)
}

/// `PUT /api/v1/receivers/{name}`: creates or replaces a console receiver.
pub async fn put(
    state: &Arc<AppState>,
    snapshot: &Snapshot,
    caller: &Caller<'_>,
    name: &str,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let (headers, mut definition) = read_definition(request, Some(name)).await?;
    hidden_file_receiver(snapshot, caller, name)?;
    let path = editable(state, snapshot, name)?;
    let _edit = state.console_edits.lock().await;
    let (mut document, on_disk) = read_document(state.reloader.console_file()).await?;
    let existing = document.find(name).map(|(index, d)| (index, d.clone()));
    if let Some((_, stored)) = &existing
        && !caller.sees_tenant(tenant_of(stored))
    {
        return Err(unknown(name));
    }
    assign_tenant(caller, &mut definition)?;
    check_preconditions(&headers, existing.as_ref().map(|(_, d)| d), name)?;
    if let Some((_, stored)) = &existing {
        editor::keep_blank_secrets(&mut definition, stored).map_err(ApiError::Invalid)?;
    }
    let index = match &existing {
        Some((index, _)) => {
            document.receivers[*index] = definition.clone();
            *index
        }
        None => {
            let most = snapshot.console.max_receivers;
            if document.receivers.len() >= most {
                return Err(ApiError::Conflict(format!(
                    "the console holds {} receivers, its limit (console.max_receivers: {most}): delete one first",
                    document.receivers.len()
                )));
            }
            document.receivers.push(definition.clone());
            document.receivers.len() - 1
        }
    };
    let action = if existing.is_some() { "replace" } else { "create" };
    let before = existing.as_ref().map(|(_, d)| d);
    let reload = save(state, &path, &document, &on_disk, Some(index)).await?;
    audit(caller, action, name, tenant_of(&definition), editor::changed_fields(before, Some(&definition)));
    let status = if existing.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    Ok(changed(status, state, (caller.name(), tenant_of(&definition)), name, Some(&definition), reload))
}

/// `DELETE /api/v1/receivers/{name}`.
pub async fn delete(
    state: &Arc<AppState>,
    snapshot: &Snapshot,
    caller: &Caller<'_>,
    name: &str,
    headers: &HeaderMap,
) -> Result<HttpResponse, ApiError> {
    hidden_file_receiver(snapshot, caller, name)?;
    let path = editable(state, snapshot, name)?;
    let _edit = state.console_edits.lock().await;
    let (mut document, on_disk) = read_document(state.reloader.console_file()).await?;
    let (index, stored) = document.find(name).map(|(i, d)| (i, d.clone())).ok_or_else(|| unknown(name))?;
    if !caller.sees_tenant(tenant_of(&stored)) {
        return Err(unknown(name));
    }
    check_preconditions(headers, Some(&stored), name)?;
    document.receivers.remove(index);
    let reload = save(state, &path, &document, &on_disk, None).await?;
    audit(caller, "delete", name, tenant_of(&stored), Vec::new());
    Ok(changed(StatusCode::OK, state, (caller.name(), tenant_of(&stored)), name, None, reload))
}

/// `POST /api/v1/receivers/{name}/enabled` with `{"enabled": bool}`.
pub async fn set_enabled(
    state: &Arc<AppState>,
    snapshot: &Snapshot,
    caller: &Caller<'_>,
    name: &str,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    check_content_type(&request)?;
    let headers = request.headers().clone();
    let body = read_body(request, MAX_DEFINITION_BYTES).await?;
    let enabled = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("enabled").and_then(Value::as_bool))
        .ok_or_else(|| {
        ApiError::Invalid(vec![FieldError {
            field: "enabled".into(),
            message: "send {\"enabled\": true|false}".into(),
        }])
    })?;
    hidden_file_receiver(snapshot, caller, name)?;
    let path = editable(state, snapshot, name)?;
    let _edit = state.console_edits.lock().await;
    let (mut document, on_disk) = read_document(state.reloader.console_file()).await?;
    let (index, stored) = document.find(name).map(|(i, d)| (i, d.clone())).ok_or_else(|| unknown(name))?;
    if !caller.sees_tenant(tenant_of(&stored)) {
        return Err(unknown(name));
    }
    check_preconditions(&headers, Some(&stored), name)?;
    let was = stored.get("enabled").and_then(Value::as_bool).unwrap_or(true);
    if was == enabled {
        return Ok(changed(StatusCode::OK, state, (caller.name(), tenant_of(&stored)), name, Some(&stored), Ok(())));
    }
    document.receivers[index]["enabled"] = Value::Bool(enabled);
    let definition = document.receivers[index].clone();
    let reload = save(state, &path, &document, &on_disk, Some(index)).await?;
    let action = if enabled { "enable" } else { "disable" };
    audit(caller, action, name, tenant_of(&stored), vec!["enabled".into()]);
    Ok(changed(StatusCode::OK, state, (caller.name(), tenant_of(&definition)), name, Some(&definition), reload))
}

/// `POST /api/v1/receiver-test`: a test message through a definition that is not saved (the
/// PUT body's shape). Blank secrets are those of the stored console receiver of that name.
pub async fn test_unsaved(
    state: &Arc<AppState>,
    snapshot: &Snapshot,
    caller: &Caller<'_>,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let (_, mut definition) = read_definition(request, None).await?;
    assign_tenant(caller, &mut definition)?;
    let name = definition.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let file = state.reloader.console_file();
    let path = file.path().map(ToOwned::to_owned).unwrap_or_else(|| "console-receivers.yml".into());
    if let Ok((document, _)) = read_document(file).await
        && let Some((_, stored)) = document.find(&name)
        && caller.sees_tenant(tenant_of(stored))
    {
        editor::keep_blank_secrets(&mut definition, stored).map_err(ApiError::Invalid)?;
    }
    if snapshot.receiver(&name).is_some_and(|r| r.source == Source::File) {
        // Its name is taken: test the definition under a name no file receiver has.
        definition["name"] = Value::String(format!("{name}.unsaved"));
    }
    let document = Document { receivers: vec![definition] };
    let receiver = validate(state, &path, &document, Some(0)).await?.receivers.pop().ok_or_else(|| {
        ApiError::Invalid(vec![FieldError { field: "name".into(), message: "is used by the config file".into() }])
    })?;
    // Building a TLS config may read the system's CA store: off the runtime's threads.
    let tls = receiver.endpoint.tls.client.clone();
    let client_config = tokio::task::spawn_blocking(move || crate::tls::ClientConfigs::new().get(&tls))
        .await
        .map_err(|e| ApiError::Internal(format!("TLS task failed: {e}")))?
        .map_err(|e| ApiError::Invalid(vec![FieldError { field: "http_config.tls_config".into(), message: e }]))?;
    let target = crate::deliver::Target::new(&receiver.endpoint, None, &client_config);
    send_test(state, &name, &target).await
}

/// Sends one test message to `name`: at most one at a time per receiver name and
/// [`crate::test_message::MAX_TESTS_IN_FLIGHT`] in all (across this endpoint, `receiver-test` and
/// the receivers' `/test`), else 429 saying which. The answer carries the status code and error
/// kind; its `error` holds a snippet of the downstream's answer scrubbed of the receiver's secrets.
pub async fn send_test(
    state: &AppState,
    name: &str,
    target: &crate::deliver::Target,
) -> Result<HttpResponse, ApiError> {
    let _in_flight = state.tests_in_flight.claim(name).map_err(|busy| ApiError::TooManyRequests(busy.to_string()))?;
    let outcome = crate::test_message::send(target, name).await;
    match &outcome.error {
        None => tracing::info!(receiver = name, status = outcome.status_code, "test message delivered"),
        Some(error) => tracing::warn!(receiver = name, error = %error, "test message failed"),
    }
    let status = if outcome.delivered { StatusCode::OK } else { StatusCode::BAD_GATEWAY };
    Ok(json(status, &json!({"status": if outcome.delivered { "success" } else { "error" }, "data": outcome})))
}

/// The console file's path when `name` may be edited there; 409 naming the reason otherwise.
fn editable(state: &AppState, snapshot: &Snapshot, name: &str) -> Result<std::path::PathBuf, ApiError> {
    if snapshot.receiver(name).is_some_and(|r| r.source == Source::File) {
        let file = snapshot.source.display();
        let at = super::console::enabled_line(state, snapshot, name)
            .map(|line| format!(" (line {})", line.line))
            .unwrap_or_default();
        return Err(ApiError::Conflict(format!(
            "receiver {name:?} is defined in the config file {file}{at}: it is read-only here, edit the file"
        )));
    }
    let file = state.reloader.console_file();
    match (file, file.editing_off()) {
        (ConsoleFile::At(path), None) => Ok(path.clone()),
        (_, why) => Err(ApiError::Conflict(why.unwrap_or("editing in the console is off").to_owned())),
    }
}

/// The console file as a document, and its text, read off the runtime's threads; a broken file
/// is a 409 (fix it by hand first: an edit must not overwrite what someone wrote).
async fn read_document(file: &ConsoleFile) -> Result<(Document, String), ApiError> {
    editor::file::read_document(file).await.map_err(|e| match e {
        ReadError::Unreadable(why) => ApiError::Internal(why),
        ReadError::Broken(why) => ApiError::Conflict(why),
    })
}

/// Reads a JSON definition; the path's name, when given, is the receiver's name.
async fn read_definition(request: Request<Incoming>, name: Option<&str>) -> Result<(HeaderMap, Value), ApiError> {
    check_content_type(&request)?;
    let headers = request.headers().clone();
    let body = read_body(request, MAX_DEFINITION_BYTES).await?;
    let mut definition: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    let Some(object) = definition.as_object_mut() else {
        return Err(ApiError::BadRequest("send the receiver as a JSON object, shaped like its YAML".into()));
    };
    // Keys with null values are keys not given, as in YAML.
    object.retain(|_, v| !v.is_null());
    match (name, object.get("name")) {
        (Some(name), None) => {
            object.insert("name".into(), Value::String(name.into()));
        }
        (Some(name), Some(given)) if given.as_str() != Some(name) => {
            return Err(ApiError::Invalid(vec![FieldError {
                field: "name".into(),
                message: format!("must be {name:?}, the name in the path (renaming is a new receiver)"),
            }]));
        }
        (None, None) => {
            return Err(ApiError::Invalid(vec![FieldError { field: "name".into(), message: "is required".into() }]));
        }
        _ => {}
    }
    Ok((headers, definition))
}

/// 412 unless `If-Match` names the stored definition's etag (or `*` and it exists), or
/// `If-None-Match: *` and it does not exist. No header: no condition.
fn check_preconditions(headers: &HeaderMap, stored: Option<&Value>, name: &str) -> Result<(), ApiError> {
    let current = stored.map(editor::etag);
    if let Some(wanted) = headers.get(IF_MATCH).and_then(|v| v.to_str().ok()) {
        let matches = match &current {
            None => false,
            Some(current) => wanted.split(',').map(str::trim).any(|tag| tag == "*" || tag == current),
        };
        if !matches {
            return Err(ApiError::PreconditionFailed(match current {
                None => format!("receiver {name:?} no longer exists"),
                Some(_) => {
                    format!("receiver {name:?} was changed by someone else since you loaded it: reload and edit again")
                }
            }));
        }
    }
    if headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == "*") && current.is_some() {
        return Err(ApiError::PreconditionFailed(format!("receiver {name:?} already exists")));
    }
    Ok(())
}

/// Validates the document against the config file on disk, writes it atomically and reloads.
/// `index`: the receiver edited, whose errors are answered field by field. `on_disk`: the file's
/// text the edit started from; a file changed since (a hand edit: API edits are serialized) is
/// not overwritten.
async fn save(
    state: &Arc<AppState>,
    path: &std::path::Path,
    document: &Document,
    on_disk: &str,
    index: Option<usize>,
) -> Result<Result<(), String>, ApiError> {
    validate(state, path, document, index).await?;
    let text = document.render().map_err(ApiError::Internal)?;
    editor::file::write_if_unchanged(path, on_disk, text).await.map_err(|e| match e {
        WriteError::Changed(why) => ApiError::Conflict(why),
        WriteError::Io(why) => ApiError::Internal(why),
    })?;
    Ok(state.reload().await.map_err(|e| e.to_string()))
}

/// Checks a console document exactly as a reload will: against the config file as it is now.
async fn validate(
    state: &Arc<AppState>,
    path: &std::path::Path,
    document: &Document,
    index: Option<usize>,
) -> Result<config::ConsoleConfig, ApiError> {
    let text = document.render().map_err(ApiError::Internal)?;
    let main_path = state.reloader.path().to_owned();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let main = config::load(&main_path, &config::Environment::from_process()).map_err(|e| {
            ApiError::Conflict(format!("the config file is invalid, so nothing can be checked against it: {e}"))
        })?;
        let console = config::console_from_str(&text, &path, &main).map_err(|e| match index {
            Some(index) => ApiError::Invalid(editor::field_errors(&e, index, &text)),
            None => ApiError::Conflict(format!("the console file would be invalid: {e}")),
        })?;
        if let Some(conflict) = console.conflicts.first() {
            return Err(ApiError::Conflict(conflict.message.clone()));
        }
        Ok(console)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("validation task failed: {e}")))?
}

/// Logs a change once and counts it: who, for which tenant (empty: a global receiver), what,
/// which fields — never a value.
fn audit(caller: &Caller<'_>, action: &'static str, receiver: &str, tenant: Option<&str>, fields: Vec<String>) {
    let tenant = tenant.unwrap_or_default();
    tracing::info!(audit = true, user = caller.name(), tenant, action, receiver, fields = %fields.join(","), "console change");
    metrics::counter!(crate::metrics::CONFIG_CHANGES, "source" => "console", "action" => action, "tenant" => tenant.to_owned())
        .increment(1);
}

/// Who the console is signed in as: user, role, and the tenants its form may choose from (an
/// admin's: every tenant the config names, and global).
fn caller_view(snapshot: &Snapshot, caller: &Caller<'_>) -> Value {
    let tenants: Vec<String> = if caller.all_tenants() {
        let mut all: Vec<String> = snapshot.receivers.iter().filter_map(|r| r.config.tenant.clone()).collect();
        for rule in snapshot.server.inbound.auth.access.iter().flatten() {
            all.extend(rule.tenants.iter().cloned());
        }
        all.sort();
        all.dedup();
        all
    } else {
        caller.tenants().to_vec()
    };
    json!({"user": caller.name(), "role": role_name(caller), "tenants": tenants, "all_tenants": caller.all_tenants()})
}

fn role_name(caller: &Caller<'_>) -> &'static str {
    caller.role.map_or("none", Role::as_str)
}

/// A stored or given definition's `tenant:` (`None`: global).
fn tenant_of(definition: &Value) -> Option<&str> {
    definition.get("tenant").and_then(Value::as_str)
}

/// 404 for a config-file receiver the caller does not see, before its read-only 409 could name it.
fn hidden_file_receiver(snapshot: &Snapshot, caller: &Caller<'_>, name: &str) -> Result<(), ApiError> {
    match snapshot.receiver(name) {
        Some(r) if r.source == Source::File && !caller.sees(&r.config) => Err(unknown(name)),
        _ => Ok(()),
    }
}

/// An editor's receiver always has one of its tenants: omitted, its only tenant (400 naming
/// `tenant` when it has several); another tenant is 403. Admins save what they send.
fn assign_tenant(caller: &Caller<'_>, definition: &mut Value) -> Result<(), ApiError> {
    if caller.all_tenants() {
        return Ok(());
    }
    match (definition.get("tenant").map(|t| t.as_str()), caller.tenants()) {
        (None, [only]) => {
            definition["tenant"] = Value::String(only.clone());
            Ok(())
        }
        (None, several) => Err(ApiError::Invalid(vec![FieldError {
            field: "tenant".into(),
            message: format!("is required: one of {}", several.join(", ")),
        }])),
        (Some(Some(tenant)), _) if caller.sees_tenant(Some(tenant)) => Ok(()),
        (Some(Some(tenant)), _) => {
            Err(ApiError::Forbidden(format!("user {:?} may not save receivers of tenant {tenant:?}", caller.name())))
        }
        (Some(None), _) => {
            Err(ApiError::Invalid(vec![FieldError { field: "tenant".into(), message: "must be a string".into() }]))
        }
    }
}

fn unknown(name: &str) -> ApiError {
    ApiError::NotFound(format!("no console receiver named {name:?}"))
}
