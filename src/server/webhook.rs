//! `POST /webhook` and `POST /webhook/{receiver}`: Alertmanager's batches come in here.
//!
//! The answer is truthful: 200 only once every matching receiver has queued the batch; 503 (with
//! `Retry-After`) when any queue is full, so Alertmanager keeps the notification and retries; 4xx
//! for what retrying cannot fix.

use std::sync::Arc;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::body::{check_content_type, read_body_charged};
use super::limits::OverLimit;
use super::response::{ApiError, HttpResponse, json};
use super::state::AppState;
use crate::accept::{self, Offer, Taken};
use crate::deliver::Outbound;
use crate::metrics as m;
use crate::payload::Source;
use crate::queue::{PACE_MAX_WAIT, Pipeline, next_id};
use crate::route::{self, Recipients};
use crate::snapshot::Snapshot;

pub async fn handle(
    state: &AppState,
    snapshot: &Snapshot,
    request: Request<Incoming>,
    receiver: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    // The body is released before the answer is paced.
    let (answer, backlogged) = accept_batch(state, snapshot, request, receiver).await?;
    pace(&backlogged).await;
    Ok(answer)
}

/// Waits while a receiver the batch went to has a backlog (see [`crate::queue`]'s pacing).
async fn pace(backlogged: &[&Pipeline]) {
    if backlogged.is_empty() {
        return;
    }
    let start = tokio::time::Instant::now();
    let deadline = start + PACE_MAX_WAIT;
    let mut waited = false;
    for pipeline in backlogged {
        waited |= pipeline.pace(deadline).await;
    }
    if waited {
        metrics::histogram!(m::WEBHOOK_PACING_WAIT).record(start.elapsed().as_secs_f64());
    }
}

/// Reads, decodes, routes and accepts one batch; the answer and the pipelines it was queued in
/// that have a backlog.
async fn accept_batch<'s>(
    state: &AppState,
    snapshot: &'s Snapshot,
    request: Request<Incoming>,
    receiver: Option<&str>,
) -> Result<(HttpResponse, Vec<&'s Pipeline>), ApiError> {
    let recipients = match receiver {
        None => Recipients::All,
        Some(name) => Recipients::Only(
            snapshot.receiver(name).ok_or_else(|| ApiError::NotFound(format!("unknown receiver {name:?}")))?,
        ),
    };
    check_content_type(&request).inspect_err(reject)?;
    let grafana = snapshot.server.inbound.grafana.as_ref();
    let signed = super::grafana::Signed::from_headers(grafana, request.headers());
    let limit = snapshot.server.max_request_bytes;
    let budget = state.reloader.budget();
    // Held until the batch is queued or refused: the body is borrowed by the decoded alerts.
    let (body, _read) = read_body_charged(request, limit, budget).await.inspect_err(reject)?;
    let limits = &snapshot.server.inbound.limits;
    let notification = super::limits::decode_body(&body, &snapshot.label_index, limits).map_err(OverLimit::counted)?;
    if let (Source::Grafana, Some(grafana)) = (notification.source, grafana) {
        super::grafana::verify(grafana, &signed, &body, std::time::SystemTime::now()).inspect_err(reject)?;
    }
    super::limits::check_batch(&notification, &snapshot.server.inbound.limits).map_err(OverLimit::counted)?;
    state.http_metrics.alerts_received.increment(notification.alerts.len() as u64);

    let plans = route::plan(snapshot, &notification, recipients);
    // Receivers left with no alert get nothing; their filtered alerts count once the batch is in.
    let (mut plans, nothing): (Vec<_>, Vec<_>) = plans.into_iter().partition(|p| p.matched > 0);
    let group_key: Arc<str> = notification.group_key.as_str().into();
    let offers = plans
        .iter_mut()
        .map(|plan| Offer {
            pipeline: &plan.receiver.pipeline,
            outbound: Outbound::new(next_id(), group_key.clone(), plan.body.clone(), plan.alerts)
                .with_summary(plan.summary.take()),
            dedup_key: plan.dedup_key,
        })
        .collect();
    let reloader = &state.reloader;
    let dedup = snapshot.delivery.dedup_window.map(|window| (reloader.dedup(), window));
    let taken = accept::accept(offers, reloader.shared(), dedup).await.map_err(|e| {
        metrics::counter!(m::BATCHES_REJECTED, "reason" => e.reason()).increment(1);
        let error = ApiError::from(e);
        tracing::warn!(group_key = %notification.group_key.as_str(), %error, status = error.status().as_u16(), "batch refused");
        error
    })?;
    let mut receivers = serde_json::Map::new();
    let mut duplicates = Vec::new();
    // Only the receivers with a backlog now: the common case allocates nothing.
    let mut backlogged = Vec::new();
    for (plan, taken) in plans.iter().zip(taken) {
        let name = plan.receiver.config.name.as_str();
        match taken {
            Taken::Queued => {
                if plan.receiver.pipeline.is_backlogged() {
                    backlogged.push(&*plan.receiver.pipeline);
                }
                let metrics = plan.receiver.pipeline.metrics();
                metrics.matched.increment(plan.matched as u64);
                metrics.filtered.increment(plan.filtered as u64);
                receivers.insert(name.to_owned(), plan.alerts.into());
            }
            Taken::Duplicate => duplicates.push(name),
        }
    }
    for plan in nothing {
        plan.receiver.pipeline.metrics().filtered.increment(plan.filtered as u64);
    }
    let mut summary = json!({"status": "success", "alerts": notification.alerts.len(), "receivers": receivers});
    if !duplicates.is_empty() {
        summary["duplicates"] = json!(duplicates);
    }
    Ok((json(StatusCode::OK, &summary), backlogged))
}

/// Counts a batch refused before it is decoded, by the error's own reason.
fn reject(error: &ApiError) {
    metrics::counter!(m::BATCHES_REJECTED, "reason" => error.reason()).increment(1);
    if let ApiError::MemoryBudget(_) = error {
        tracing::warn!(error = %error, "batch refused with 503");
    }
}
