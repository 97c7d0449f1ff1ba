//! `server.limits` on the request path: JSON nesting (enforced by the decoder in its one pass
//! over the body), alerts per batch, labels per alert and the groupKey's length. (Body size, header and idle timeouts and the connection count are enforced
//! by the listener and `webhook`.)

use super::response::ApiError;
use crate::config::Limits;
use crate::metrics as m;
use crate::payload::{DecodeError, Notification, decode_within};
use crate::rule::LabelIndex;

/// A body or batch refused before routing — over one of `server.limits`, or not a notification
/// (`decode`): the answer, and the `reason` a refused webhook batch is counted under in
/// `amrelay_batches_rejected_total`. Only the webhook counts it (a route test is not a refused
/// batch).
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

/// Decodes a body, refusing one nested deeper than `max_json_depth`. The decoder checks the
/// nesting as it goes (one pass over the body); a body that is both invalid and too deep is
/// refused as too deep, as a separate pre-check would, so a hostile `[[[[…` counts as `too_deep`.
pub fn decode_body<'a>(body: &'a [u8], index: &LabelIndex, limits: &Limits) -> Result<Notification<'a>, OverLimit> {
    decode_within(body, index, limits.max_json_depth).map_err(|error| match error {
        DecodeError::TooDeep(max) => {
            let error = ApiError::BadRequest(format!("JSON nested deeper than server.limits.max_json_depth ({max})"));
            OverLimit { reason: "too_deep", error }
        }
        error => OverLimit { reason: "decode", error: ApiError::BadRequest(error.to_string()) },
    })
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
