//! Reading a request body within its limits, and checking that it is JSON.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use http::Request;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::response::ApiError;
use crate::memory::{Budget, Charge};

/// A body must arrive within this time once the headers are in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts `application/json` (any parameters); refuses anything else, a missing header
/// included: what a browser can send cross-site without asking first (a form, `text/plain`) is
/// never taken for a JSON body.
pub(super) fn check_content_type(request: &Request<Incoming>) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(String::new()));
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(text.to_owned()))
    }
}

/// Reads the body within `limit` bytes, as [`read_body`], and within the process byte budget:
/// the declared length is charged before reading, an undeclared one as it arrives. A spent budget
/// answers `503` (with `Retry-After`) and stops reading. The charge is held until the caller is
/// done with the body.
pub(super) async fn read_body_charged(
    request: Request<Incoming>,
    limit: usize,
    budget: &Arc<Budget>,
) -> Result<(Bytes, Charge), ApiError> {
    let declared =
        request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::TooLarge(limit));
    }
    let mut charge = Charge::empty(budget);
    let spent = || ApiError::MemoryBudget(budget.limit());
    if let Some(length) = declared
        && !charge.try_grow(length)
    {
        return Err(spent());
    }
    let read = async {
        let mut body = request.into_body();
        let mut buffer = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
            let Ok(data) = frame.into_data() else { continue };
            let total = buffer.len() + data.len();
            if total > limit {
                return Err(ApiError::TooLarge(limit));
            }
            if total > buffer.capacity() {
                // Grown by doubling (within `limit`), and charged for its whole capacity.
                let capacity = total.max(buffer.capacity().saturating_mul(2).min(limit));
                if !charge.try_grow((capacity as u64).saturating_sub(charge.bytes())) {
                    return Err(spent());
                }
                buffer.reserve_exact(capacity - buffer.len());
            }
            buffer.extend_from_slice(&data);
        }
        Ok(Bytes::from(buffer))
    };
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Err(_) => Err(ApiError::BodyTimeout),
        Ok(result) => result.map(|body| (body, charge)),
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
