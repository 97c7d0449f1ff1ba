//! JSON answers and the one place where errors become HTTP statuses.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// Every answer amrelay gives.
pub type HttpResponse = Response<Full<Bytes>>;

/// Seconds Alertmanager (or any client) is told to wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "5";

/// A request amrelay refuses, each with exactly one status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A browser request from another site (see `browser`).
    #[error("{0}")]
    Forbidden(String),
    /// Credentials missing or wrong; the flags say which challenges to offer.
    #[error("authentication required")]
    Unauthorized { basic: bool, bearer: bool },
    /// A Grafana post whose HMAC signature is missing, wrong or stale (`server.grafana`).
    #[error("{0}")]
    BadSignature(String),
    #[error("batch has more than server.limits.max_alerts_per_batch ({0}) alerts")]
    TooManyAlerts(usize),
    #[error("method not allowed; use {0}")]
    MethodNotAllowed(&'static str),
    #[error("request body took too long to arrive")]
    BodyTimeout,
    #[error("request body exceeds server.max_request_bytes ({0} bytes)")]
    TooLarge(usize),
    /// Within `max_request_bytes`, but larger than where it must be stored can take (the NATS
    /// server's `max_payload`): retrying cannot help.
    #[error("{0}")]
    NotStorable(String),
    #[error("unsupported content type {0:?}: send application/json")]
    UnsupportedMediaType(String),
    #[error("{0}; retry later")]
    Unavailable(String),
    #[error("the memory budget is spent (server.limits.max_memory_bytes = {0}); retry later")]
    MemoryBudget(u64),
    #[error("{0}")]
    Internal(String),
    /// The server's state does not allow it (a receiver defined in the config file, editing off).
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` / `If-None-Match` does not hold: someone else changed it first.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// A definition with mistakes, field by field, as `check-config` reports them.
    #[error("{} invalid field(s): {}", .0.len(), .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<crate::editor::FieldError>),
}

impl ApiError {
    /// The `reason` label of `amrelay_batches_rejected_total` for a webhook batch refused with
    /// this error while its body is read or its signature checked: named by the variant, never
    /// guessed from a status (a batch over `server.limits` carries its own, see `limits`).
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::TooLarge(_) => "too_large",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::UnsupportedMediaType(_) => "content_type",
            ApiError::MemoryBudget(_) => "memory",
            ApiError::BadSignature(_) => "signature",
            _ => "decode",
        }
    }
}

/// A batch the acceptance path refused: too large to store (413, final), else 503 to retry.
impl From<crate::accept::Refused> for ApiError {
    fn from(refused: crate::accept::Refused) -> ApiError {
        match refused {
            crate::accept::Refused::Spool(e) => e.into(),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

/// What the spool or the shared queue could not do: 413 for what no retry can store, else 503.
impl From<crate::spool::SpoolError> for ApiError {
    fn from(error: crate::spool::SpoolError) -> ApiError {
        match error {
            crate::spool::SpoolError::TooLarge { .. } => ApiError::NotStorable(error.to_string()),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized { .. } | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::TooManyAlerts(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge(_) | ApiError::NotStorable(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) | ApiError::MemoryBudget(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON error answer: `{"status":"error","error":"…"}`, as Prometheus' API words it.
    pub fn into_response(self) -> HttpResponse {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(error = %self, "internal error");
        }
        let mut body = serde_json::json!({"status": "error", "error": self.to_string()});
        if let ApiError::Invalid(errors) = &self {
            body["errors"] = serde_json::to_value(errors).unwrap_or_default();
        }
        let mut response = json(status, &body);
        match self {
            ApiError::Unavailable(_) | ApiError::MemoryBudget(_) => {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            }
            ApiError::MethodNotAllowed(allow) => {
                response.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Unauthorized { basic, bearer } => {
                let headers = response.headers_mut();
                if basic {
                    headers.append(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static(r#"Basic realm="amrelay", charset="UTF-8""#),
                    );
                }
                if bearer {
                    headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="amrelay""#));
                }
            }
            _ => {}
        }
        response
    }
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &impl Serialize) -> HttpResponse {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A plain-text answer.
pub fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
