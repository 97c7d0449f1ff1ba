//! `POST /webhook` and `POST /webhook/{receiver}`: Alertmanager's batches come in here.
//!
//! The answer is truthful: 200 only once every matching receiver has queued the batch; 503 (with
//! `Retry-After`) when any queue is full, so Alertmanager keeps the notification and retries; 4xx
//! for what retrying cannot fix.

use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use super::response::{ApiError, HttpResponse, json};
use super::routes::AppState;
use crate::metrics as m;
use crate::payload::decode_with;
use crate::route::{self, Destination, Refused};
use crate::spool::SpoolError;

/// A body must arrive within this time once the headers are in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn handle(
    state: &AppState,
    request: Request<Incoming>,
    receiver: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    // One snapshot for the whole request: it is routed by one version of the rules.
    let snapshot = state.reloader.snapshot();
    let destination = match receiver {
        None => Destination::All,
        Some(name) => Destination::Only(
            snapshot.receiver(name).ok_or_else(|| ApiError::NotFound(format!("unknown receiver {name:?}")))?,
        ),
    };
    check_content_type(&request)?;
    let limit = snapshot.server.max_request_bytes;
    let body = read_body(request, limit).await.inspect_err(|e| reject(e.status()))?;
    super::limits::check_body(&body, &snapshot.server.inbound.limits)?;
    let notification = decode_with(&body, &snapshot.label_index).map_err(|e| {
        reject(StatusCode::BAD_REQUEST);
        ApiError::BadRequest(e.to_string())
    })?;
    super::limits::check_batch(notification.alerts.len(), &snapshot.server.inbound.limits)?;
    state.http_metrics.alerts_received.increment(notification.alerts.len() as u64);

    let plans = route::plan(&snapshot, &notification, destination);
    let reloader = &state.reloader;
    let dedup = snapshot.delivery.dedup_window.map(|window| (&reloader.dedup, window));
    let accepted =
        route::accept(plans, notification.group_key.as_str(), &reloader.spool, dedup).await.map_err(|e| {
            let reason = match e {
                Refused::QueueFull(_) => "queue_full",
                Refused::Spool(SpoolError::Full(_)) => "spool_full",
                Refused::Spool(SpoolError::Io(_)) => "spool_error",
            };
            metrics::counter!(m::BATCHES_REJECTED, "reason" => reason).increment(1);
            tracing::warn!(group_key = %notification.group_key.as_str(), error = %e, "batch refused with 503");
            ApiError::Unavailable(e.to_string())
        })?;
    let receivers: serde_json::Map<String, serde_json::Value> =
        accepted.queued.into_iter().map(|(name, alerts)| (name.to_owned(), alerts.into())).collect();
    let mut summary = json!({"status": "success", "alerts": notification.alerts.len(), "receivers": receivers});
    if !accepted.duplicates.is_empty() {
        summary["duplicates"] = json!(accepted.duplicates);
    }
    Ok(json(StatusCode::OK, &summary))
}

fn reject(status: StatusCode) {
    let reason = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::REQUEST_TIMEOUT => "body_timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "content_type",
        _ => "decode",
    };
    metrics::counter!(m::BATCHES_REJECTED, "reason" => reason).increment(1);
}

/// Accepts `application/json` (any parameters) and a missing header; refuses anything else.
fn check_content_type(request: &Request<Incoming>) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        reject(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        Err(ApiError::UnsupportedMediaType(text.to_owned()))
    }
}

/// Reads the body, refusing more than `limit` bytes before reading them when the length is
/// declared, and while reading when it is not.
pub(super) async fn read_body(request: Request<Incoming>, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let declared =
        request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::TooLarge(limit));
    }
    let collect = Limited::new(request.into_body(), limit).collect();
    match tokio::time::timeout(BODY_READ_TIMEOUT, collect).await {
        Err(_) => Err(ApiError::BodyTimeout),
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(ApiError::TooLarge(limit)),
        Ok(Err(e)) => Err(ApiError::BadRequest(format!("could not read the request body: {e}"))),
    }
}
