//! The operator console (`GET /`) and route testing over HTTP (`POST /api/v1/route-test`).
//!
//! The console is one self-contained page embedded in the binary (`console.html`: HTML, CSS and
//! a little JavaScript; no CDN, no build step). It only reads and calls the documented JSON
//! endpoints — `/api/v1/status`, `/api/v1/deadletters`, the test-message, replay, route-test and
//! receivers endpoints — so whatever it shows, a script can get the same way. Receivers of the
//! config file stay read-only: enabling or disabling one is a config change, and the status API
//! points at the line of the file to edit ([`enabled_line`], found when the config was loaded:
//! no handler here reads a file). Receivers kept in the console file are edited with the page's
//! form, through `super::receivers_api`; the file itself is `crate::editor`'s.

use http::header::CACHE_CONTROL;
use http::{HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::body::{check_content_type, read_body_charged};
use super::response::{ApiError, HttpResponse, json, text};
use super::state::AppState;
use crate::editor::EnabledLine;
use crate::snapshot::Snapshot;

const PAGE: &str = include_str!("console.html");

/// `GET /`: the console page.
pub fn page() -> HttpResponse {
    let mut response = text(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The page may load nothing from elsewhere, run only its own script, and may not be framed.
    headers.insert("content-security-policy", super::browser::console_policy(PAGE));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// `POST /api/v1/route-test`: which receiver would get which alert of a v4 payload, and why the
/// others would not. The body is checked and decoded exactly as `/webhook` does it (size,
/// content type, [`decode_body`](super::limits::decode_body) with the snapshot's label index and
/// limits), but nothing is queued, delivered or counted. The body is charged to the process byte budget while it is explained, as a
/// webhook's is.
pub async fn route_test(
    snapshot: &Snapshot,
    caller: &super::auth::Caller<'_>,
    budget: &std::sync::Arc<crate::memory::Budget>,
    silences: &crate::mute::Silences,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    check_content_type(&request)?;
    let (body, _charge) = read_body_charged(request, snapshot.server.max_request_bytes, budget).await?;
    // The same limits as /webhook: the explanation grows with alerts × receivers.
    let notification = super::limits::decode_body(&body, &snapshot.label_index, &snapshot.server.inbound.limits)?;
    super::limits::check_batch(&notification, &snapshot.server.inbound.limits)?;
    // A viewer or editor is explained its tenants' receivers only.
    let visible: Vec<_> = snapshot.receivers.iter().filter(|r| caller.sees(&r.config)).collect();
    let explanation = crate::explain::explain(visible.iter().map(|r| &r.config), &notification);
    let (now, all) = (jiff::Timestamp::now(), silences.all());
    let muted: Vec<_> = (visible.iter().zip(&explanation.receivers))
        .filter_map(|(r, route)| {
            crate::mute::muted_view(&r.config.name, &r.config.mute, &all, &notification, &route.alerts, now)
        })
        .collect();
    let mut data = serde_json::to_value(&explanation).map_err(|e| ApiError::Internal(e.to_string()))?;
    data["muted"] = json!(muted);
    Ok(json(StatusCode::OK, &json!({"status": "success", "data": data})))
}

/// Where the config file's receiver `name` sets `enabled:`, as found in the text the running
/// config was loaded from. None once a reload found the file changed and could not run it: its
/// lines may have moved, and no line number is better than a wrong one.
pub fn enabled_line<'s>(state: &AppState, snapshot: &'s Snapshot, name: &str) -> Option<&'s EnabledLine> {
    enabled_lines(state, snapshot)?.get(name)
}

/// Every receiver's `enabled:` line, under the same rule as [`enabled_line`], for answers that
/// show them all (the status reads the reload status once).
pub fn enabled_lines<'s>(
    state: &AppState,
    snapshot: &'s Snapshot,
) -> Option<&'s std::collections::BTreeMap<String, EnabledLine>> {
    (!state.reloader.status().config_file_changed).then_some(&snapshot.console.enabled_lines)
}
