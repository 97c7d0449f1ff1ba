//! `GET /api/v1/history`: the notification history, newest first, filtered and paged (see
//! [`crate::history`]).

use hyper::StatusCode;
use serde_json::json;

use super::response::{ApiError, HttpResponse, json};
use super::state::AppState;
use crate::history::Query;

/// `?receiver=&tenant=&group_key=&alertname=&fingerprint=&outcome=&since=&until=&limit=&after=`;
/// a filter that does not parse is a `400` naming it.
pub async fn list(state: &AppState, query: Option<&str>) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(query.unwrap_or("")).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let page = state.reloader.spool().history_page(query).await?;
    Ok(json(StatusCode::OK, &json!({"status": "success", "data": page.data, "next_after": page.next_after})))
}
