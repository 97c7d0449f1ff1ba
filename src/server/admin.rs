//! Operator endpoints: health, readiness, reload, metrics, status, dead letters, threads.
//!
//! A viewer or editor (`server.access`) is shown only its tenants' receivers and their dead
//! letters; which receivers a request may name is checked before, in [`super::scope`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde_json::{Value, json};

use super::auth::Caller;
use super::response::{ApiError, HttpResponse, json, text};
use super::state::AppState;
use crate::snapshot::Snapshot;

/// `GET /-/healthy`: the process is alive and serving.
pub fn healthy() -> HttpResponse {
    text(StatusCode::OK, "text/plain; charset=utf-8", "amrelay is Healthy.\n")
}

/// `GET /-/ready`: config loaded, listener up, not shutting down.
pub fn ready(state: &AppState) -> HttpResponse {
    // With the shared queue (`delivery.nats`), not ready while NATS is unreachable.
    if state.ready.load(Ordering::Relaxed) && state.reloader.spool().is_ready() {
        text(StatusCode::OK, "text/plain; charset=utf-8", "amrelay is Ready.\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", "amrelay is not ready.\n")
    }
}

/// `GET /metrics`: the Prometheus text format.
pub fn metrics(state: &AppState) -> HttpResponse {
    // Silences change state with the clock, not only with the API.
    state.reloader.shared().silences.record_gauges(jiff::Timestamp::now());
    text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", crate::metrics::render(&state.metrics))
}

/// `POST /-/reload`: the same reload as SIGHUP and the file watcher.
pub async fn reload(state: &Arc<AppState>, caller: &Caller<'_>) -> Result<HttpResponse, ApiError> {
    tracing::info!(audit = true, user = caller.name(), tenant = "", "reload requested");
    match state.reload().await {
        Ok(()) => Ok(json(StatusCode::OK, &json!({"status": "success", "user": caller.name(), "tenant": Value::Null}))),
        Err(e) => Err(ApiError::Internal(format!("failed to reload config: {e}"))),
    }
}

/// `POST /api/v1/receivers/{name}/test`: a test message, sent now, outside the queue. 200 when the
/// downstream answered 2xx, 502 otherwise; the body says what happened either way.
/// At most one test message per receiver is in flight, and [`crate::test_message::MAX_TESTS_IN_FLIGHT`]
/// in all: past either, 429.
pub async fn test_receiver(state: &AppState, snapshot: &Snapshot, name: &str) -> Result<HttpResponse, ApiError> {
    let receiver = snapshot.receiver(name).ok_or_else(|| ApiError::NotFound(format!("unknown receiver {name:?}")))?;
    let target = receiver.pipeline.downstream().target.load_full();
    super::receivers_api::send_test(state, name, &target).await
}

/// `GET /api/v1/deadletters[?limit=N&after=SEQ&receiver=NAME]`: a page of headers, no bodies
/// (of the caller's tenants' receivers only, for a viewer or editor).
pub async fn dead_letters(
    state: &AppState,
    caller: &Caller<'_>,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let (mut after, mut limit, mut receiver) = (0, crate::deadletters::MAX_PAGE, None);
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let number =
            || value.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("{key}={value:?} is not a number")));
        match &*key {
            "after" => after = number()?,
            "limit" => limit = number()? as usize,
            "receiver" => receiver = Some(value.into_owned()),
            _ => {}
        }
    }
    let snapshot = state.reloader.snapshot();
    let seen = |name: &str| caller.sees_name(&snapshot, name);
    let listing =
        crate::deadletters::list(state.reloader.spool(), &snapshot, after, limit, receiver.as_deref(), &seen).await?;
    Ok(json(
        StatusCode::OK,
        &json!({"status": "success", "data": listing.data, "total": listing.total, "bytes": listing.bytes,
                "next_after": listing.next_after}),
    ))
}

/// `GET /api/v1/deadletters/body?seq=SEQ`: one dead letter's body, as it was to be sent, held
/// against the byte budget while it is served.
pub async fn dead_letter_body(
    state: &AppState,
    caller: &Caller<'_>,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let seq = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(key, _)| key == "seq")
        .and_then(|(_, value)| value.parse::<u64>().ok())
        .ok_or_else(|| ApiError::BadRequest("give the dead letter as ?seq=N".into()))?;
    let spool = state.reloader.spool();
    let snapshot = state.reloader.snapshot();
    // Another tenant's dead letter is as unknown as a missing one.
    let (_, body) = crate::deadletters::body(spool, seq)
        .await?
        .filter(|(receiver, _)| caller.sees_name(&snapshot, receiver))
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {seq}")))?;
    let budget = state.reloader.budget();
    let held = budget.try_charge(body.len() as u64).ok_or_else(|| ApiError::MemoryBudget(budget.limit()))?;
    // Charged until hyper has written it out.
    Ok(super::response::text(StatusCode::OK, "application/json", held.hold_with(body)))
}

/// `POST /api/v1/deadletters/replay[?receiver=NAME][&force=true]`: `409` when a receiver's
/// destination is not the one its dead letters were recorded for, unless forced (see
/// [`crate::deadletters`]).
pub async fn replay(
    state: &AppState,
    snapshot: &Snapshot,
    caller: &Caller<'_>,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let (mut receiver, mut force) = (None, false);
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "receiver" => receiver = Some(value.into_owned()),
            "force" => {
                force = match &*value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(ApiError::BadRequest(format!("force={value:?}: give true or false"))),
                }
            }
            _ => {}
        }
    }
    if let Some(name) = &receiver
        && snapshot.receiver(name).is_none()
    {
        return Err(ApiError::NotFound(format!("unknown receiver {name:?}")));
    }
    // "All" for an editor is each of its tenants' receivers, one after the other.
    let names: Vec<Option<&str>> = match receiver.as_deref() {
        Some(name) => vec![Some(name)],
        None if caller.all_tenants() => vec![None],
        None => snapshot.receivers.iter().filter(|r| caller.sees(&r.config)).map(|r| Some(&*r.config.name)).collect(),
    };
    let mut outcome = crate::deadletters::Replayed::default();
    for name in names {
        let one =
            crate::deadletters::replay(state.reloader.shared(), snapshot, name, force).await.map_err(|e| match e {
                crate::deadletters::ReplayError::Spool(e) => ApiError::from(e),
                crate::deadletters::ReplayError::DestinationChanged(words) => ApiError::Conflict(words),
            })?;
        outcome.replayed += one.replayed;
        outcome.skipped += one.skipped;
    }
    tracing::info!(
        audit = true,
        user = caller.name(),
        tenant = receiver_tenant(snapshot, receiver.as_deref()),
        receiver = receiver.as_deref().unwrap_or("*"),
        replayed = outcome.replayed,
        "dead letters replayed"
    );
    Ok(json(
        StatusCode::OK,
        &json!({"status": "success", "data": outcome, "user": caller.name(),
        "tenant": receiver_tenant(snapshot, receiver.as_deref())}),
    ))
}

/// `GET /api/v1/threads?receiver=NAME[&limit=N&after=HASH]`: a page of the receiver's
/// remembered alert groups and their messages (`thread:`), in the order of their groupKey's
/// hash, paged like the dead letters: `next_after` (the last group's hash) continues it, `null`
/// on the last page. Each group shows its `group_hash` and the start of its groupKey.
pub async fn threads(snapshot: &Snapshot, query: Option<&str>) -> Result<HttpResponse, ApiError> {
    let (mut name, mut after, mut limit) = (None, None, crate::deliver::THREADS_MAX_PAGE);
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "receiver" => name = Some(value.into_owned()),
            "after" => {
                after = Some(parse_hash(&value).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "after={value:?} is not a group hash (64 hex digits, from next_after)"
                    ))
                })?)
            }
            "limit" => {
                limit = value.parse().map_err(|_| ApiError::BadRequest(format!("limit={value:?} is not a number")))?
            }
            _ => {}
        }
    }
    let name = name.ok_or_else(|| ApiError::BadRequest("name the receiver: ?receiver=NAME".into()))?;
    let receiver = snapshot.receiver(&name).ok_or_else(|| ApiError::NotFound(format!("unknown receiver {name:?}")))?;
    let downstream = receiver.pipeline.downstream();
    let spec = downstream.target.load().thread;
    let page = downstream.threads.page(&downstream.name, &downstream.spool, after, limit).await;
    let threads: Vec<Value> = page
        .entries
        .iter()
        .map(|(group, entry)| {
            json!({
                "group_hash": hex(group),
                "group_key": &*entry.group_key,
                "message_id": entry.message_id,
                "updated_at": entry.updated_unix_ms as f64 / 1000.0,
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"status": "success", "data": {
            "receiver": name,
            "mode": spec.map(|s| s.mode.as_str()),
            "expire": spec.map(|s| crate::config::duration::format(s.expire)),
            "max_groups": spec.map(|s| s.max_groups),
            "threads": threads,
        }, "total": downstream.threads.len(), "next_after": page.next_after.as_ref().map(hex)}),
    ))
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The tenant of the receiver named (empty: global, or every receiver).
fn receiver_tenant<'s>(snapshot: &'s Snapshot, name: Option<&str>) -> &'s str {
    name.and_then(|n| snapshot.receiver(n)).and_then(|r| r.config.tenant.as_deref()).unwrap_or_default()
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// `GET /api/v1/status`: version, config and each receiver's state. No secrets: URLs are shown
/// redacted (scheme, host, `***`), auth only by kind. A viewer or editor sees its tenants'
/// receivers only, and no reload error or console conflict (they may name other receivers).
pub fn status(state: &AppState, snapshot: &Snapshot, caller: &Caller<'_>) -> HttpResponse {
    let reload = state.reloader.status();
    // Found when the config was loaded: a refresh reads no file.
    let lines = super::console::enabled_lines(state, snapshot);
    let receivers: Vec<Value> = snapshot
        .receivers
        .iter()
        .filter(|r| caller.sees(&r.config))
        .map(|r| {
            let downstream = r.pipeline.downstream();
            let delivery = downstream.state();
            let counts = downstream.counts.view();
            let config = &r.config;
            json!({
                "name": config.name,
                "tenant": config.tenant,
                "enabled": config.enabled,
                "url": crate::redact::url(&config.endpoint.url),
                "source": r.source,
                "auth": config.endpoint.auth.kind(),
                "insecure_skip_verify": config.endpoint.tls.insecure_skip_verify,
                "signing": config.endpoint.signing.is_some(),
                "proxy_url": config.endpoint.proxy.as_ref().map(|p| p.url.to_string()),
                "send_resolved": config.send_resolved,
                "conditions": config.rule.conditions.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "matchers": config.rule.matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "queue_depth": r.pipeline.depth(),
                "queue_capacity": config.queue_capacity,
                "last_success": delivery.last_success.map(unix_seconds),
                "last_error": delivery.last_error.map(|(at, error)| json!({"time": unix_seconds(at), "error": error})),
                "max_alerts": config.max_alerts,
                "tls": config.endpoint.tls.summary,
                "delivered": counts.delivered,
                "failed_attempts": counts.failed_attempts,
                "dead_lettered": counts.dead_lettered,
                "recent": counts.recent,
                // Groups remembered so far (after a start: from the receiver's first threaded
                // notification on, when the spool's table is read).
                "thread": config.endpoint.thread.map(|t| json!({
                    "mode": t.mode.as_str(),
                    "groups": downstream.threads.len(),
                    "max_groups": t.max_groups,
                })),
                "enabled_line": match r.source {
                    crate::snapshot::Source::File => lines.and_then(|lines| lines.get(&config.name)),
                    crate::snapshot::Source::Console => None,
                },
            })
        })
        .collect();
    let mut reload_error = reload.last_error;
    let mut console = console_status(snapshot);
    if !caller.all_tenants() {
        reload_error = reload_error.map(|_| "the last reload failed: an admin can see why".to_owned());
        console["conflicts"] = json!([]);
        console["error"] = Value::Null;
    }
    json(
        StatusCode::OK,
        &json!({
            "status": "success",
            "data": {
                "version": env!("CARGO_PKG_VERSION"),
                "started_at": unix_seconds(state.started_at),
                "config": {
                    "file": snapshot.source.display().to_string(),
                    "hash": format!("{:012x}", snapshot.hash),
                    "loaded_at": unix_seconds(snapshot.loaded_at),
                    "last_reload_successful": reload_error.is_none(),
                    "last_reload_error": reload_error,
                    "last_reload_attempt": reload.last_attempt.map(unix_seconds),
                },
                "spool": state.reloader.spool().status(),
                "console": console,
                "backend": state.reloader.spool().backend_status(),
                "receivers": receivers,
            }
        }),
    )
}

/// `console` in the status: the console file, whether receivers can be edited (and why not), the
/// hash and modification time of what runs, and its error when the file on disk is broken.
fn console_status(snapshot: &Snapshot) -> Value {
    let console = &snapshot.console;
    json!({
        "file": console.file.path().map(|p| p.display().to_string()),
        "editable": console.file.editing_off().is_none(),
        "editing_off_reason": console.file.editing_off(),
        "hash": console.hash.map(|h| format!("{h:012x}")),
        "last_change": console.changed_at.map(unix_seconds),
        "error": console.error,
        "conflicts": console.conflicts.iter().map(|c| json!({
            "field": c.field,
            "line": c.position.map(|p| p.0),
            "message": c.message,
        })).collect::<Vec<_>>(),
    })
}
