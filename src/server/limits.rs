//! `server.limits` on the request path: JSON nesting, alerts per batch, labels per alert and the
//! groupKey's length. (Body size, header and idle timeouts and the connection count are enforced
//! by the listener and `webhook`.)

use super::response::ApiError;
use crate::config::Limits;
use crate::metrics as m;
use crate::payload::Notification;

/// A body or batch over one of `server.limits`: the answer, and the `reason` a refused webhook
/// batch is counted under in `amrelay_batches_rejected_total`. Only the webhook counts it (a
/// route test is not a refused batch).
#[derive(Debug)]
pub struct OverLimit {
    pub reason: &'static str,
    pub error: ApiError,
}

impl OverLimit {
    /// Counts a webhook batch refused for it; the answer to give.
    pub fn counted(self) -> ApiError {
        metrics::counter!(m::BATCHES_REJECTED, "reason" => self.reason).increment(1);
        self.error
    }
}

impl From<OverLimit> for ApiError {
    fn from(over: OverLimit) -> ApiError {
        over.error
    }
}

/// Refuses a body nested deeper than `max_json_depth`, before it is decoded.
pub fn check_body(body: &[u8], limits: &Limits) -> Result<(), OverLimit> {
    if crate::payload::nesting_exceeds(body, limits.max_json_depth) {
        let error = ApiError::BadRequest(format!(
            "JSON nested deeper than server.limits.max_json_depth ({})",
            limits.max_json_depth
        ));
        return Err(OverLimit { reason: "too_deep", error });
    }
    Ok(())
}

/// Refuses a batch of more than `max_alerts_per_batch` alerts, with an alert carrying more
/// than `max_labels_per_alert` labels or annotations, or with a groupKey longer than
/// `max_group_key_bytes` (it would be held in every queue, spool record and dead letter).
pub fn check_batch(notification: &Notification, limits: &Limits) -> Result<(), OverLimit> {
    let group_key = notification.group_key.as_str().len();
    if group_key > limits.max_group_key_bytes {
        let error = ApiError::NotStorable(format!(
            "groupKey is {group_key} bytes, more than server.limits.max_group_key_bytes ({})",
            limits.max_group_key_bytes
        ));
        return Err(OverLimit { reason: "group_key_too_long", error });
    }
    if notification.alerts.len() > limits.max_alerts_per_batch {
        return Err(OverLimit {
            reason: "too_many_alerts",
            error: ApiError::TooManyAlerts(limits.max_alerts_per_batch),
        });
    }
    let max = limits.max_labels_per_alert;
    let over = notification.alerts.iter().enumerate().find_map(|(index, alert)| {
        [("labels", alert.labels.len()), ("annotations", alert.annotations.len())]
            .into_iter()
            .find(|&(_, count)| count > max)
            .map(|(what, count)| (index, what, count))
    });
    if let Some((index, what, count)) = over {
        let error = ApiError::BadRequest(format!(
            "alerts[{index}] has {count} {what}, more than server.limits.max_labels_per_alert ({max})"
        ));
        return Err(OverLimit { reason: "too_many_labels", error });
    }
    Ok(())
}
