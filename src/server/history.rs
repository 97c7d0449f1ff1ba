//! `GET /api/v1/history`: the notification history, newest first, filtered and paged (see
//! [`crate::history`]).

use hyper::StatusCode;
use serde_json::json;

use super::auth::Caller;
use super::response::{ApiError, HttpResponse, json};
use super::state::AppState;
use crate::history::Query;

/// `?receiver=&tenant=&group_key=&alertname=&fingerprint=&outcome=&since=&until=&limit=&after=`;
/// a filter that does not parse is a `400` naming it. A viewer or editor is shown only the records
/// of its tenants' receivers (as they are now).
pub async fn list(state: &AppState, caller: &Caller<'_>, query: Option<&str>) -> Result<HttpResponse, ApiError> {
    let mut query = Query::parse(query.unwrap_or("")).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let snapshot = state.reloader.snapshot();
    if !caller.all_tenants() {
        let visible = snapshot.receivers.iter().filter(|r| caller.sees(&r.config)).map(|r| r.config.name.clone());
        query.visible = Some(visible.collect());
    }
    let mut page = state.reloader.spool().history_page(query).await?;
    // A record not stamped with its tenant shows its receiver's current one.
    for record in page.data.iter_mut().filter(|r| r.tenant.is_none()) {
        record.tenant = snapshot.receiver(&record.receiver).and_then(|r| r.config.tenant.clone());
    }
    Ok(json(StatusCode::OK, &json!({"status": "success", "data": page.data, "next_after": page.next_after})))
}
