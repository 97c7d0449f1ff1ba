//! `server.limits` on the request path: JSON nesting and alerts per batch. (Body size, header
//! and idle timeouts and the connection count are enforced by the listener and `webhook`.)

use super::response::ApiError;
use crate::config::Limits;
use crate::metrics as m;

/// Refuses a body nested deeper than `max_json_depth`, before it is decoded.
pub fn check_body(body: &[u8], limits: &Limits) -> Result<(), ApiError> {
    if crate::payload::nesting_exceeds(body, limits.max_json_depth) {
        metrics::counter!(m::BATCHES_REJECTED, "reason" => "too_deep").increment(1);
        return Err(ApiError::BadRequest(format!(
            "JSON nested deeper than server.limits.max_json_depth ({})",
            limits.max_json_depth
        )));
    }
    Ok(())
}

/// Refuses a batch of more than `max_alerts_per_batch` alerts.
pub fn check_batch(alerts: usize, limits: &Limits) -> Result<(), ApiError> {
    if alerts > limits.max_alerts_per_batch {
        metrics::counter!(m::BATCHES_REJECTED, "reason" => "too_many_alerts").increment(1);
        return Err(ApiError::TooManyAlerts(limits.max_alerts_per_batch));
    }
    Ok(())
}
