//! A failed attempt: what went wrong (for metrics and the `outcome` label), whether trying
//! again may help, and a description without secrets. Its own file so that the authorizers
//! ([`super::auth`], [`super::oauth2`]) and the attempt loop ([`super::attempt`]) can all fail
//! the same way without importing each other.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, Uri};

/// What went wrong, for metrics and for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Dns,
    Connect,
    Tls,
    Timeout,
    /// The credentials for the attempt could not be had (e.g. a token endpoint failed).
    Auth,
    Status(StatusCode),
    /// The outbound guard of a tenant's receiver refused the address (`super::guard`).
    ForbiddenAddress,
    /// The destination answered `status` but its body refused (DingTalk's `errcode`, Slack's
    /// `ok: false`, …; see [`super::verdict`]): `retry` when the vendor says to try again later.
    Refused {
        status: StatusCode,
        retry: bool,
    },
    Other,
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub retry_after: Option<Duration>,
    /// A description without secrets: error chain or status with a body snippet.
    pub detail: String,
    /// Where a 307/308 answer pointed (followed only with `follow_redirects`).
    pub redirect: Option<Box<Uri>>,
    /// An error answer's body (at most 64 KiB), scrubbed of the receiver's secrets: read by the
    /// destination's verdict ([`super::verdict`]) for the vendor's code and wait.
    pub answer: Option<Bytes>,
}

impl Failure {
    /// A failure of this kind, described by `detail` (which must hold no secret): the one way
    /// one is made outside the classification of answers and client errors.
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Failure {
        Failure { kind, retry_after: None, detail: detail.into(), redirect: None, answer: None }
    }

    /// Whether trying again may help: transport errors, timeouts, 408, 429, 5xx, and a
    /// destination's refusal that it says is temporary (a rate limit, "busy").
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            FailureKind::Status(s) => {
                s == StatusCode::REQUEST_TIMEOUT || s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
            }
            FailureKind::ForbiddenAddress => false,
            FailureKind::Refused { retry, .. } => retry,
            _ => true,
        }
    }

    /// The `outcome` label of `amrelay_delivery_attempts_total`.
    pub fn outcome_label(&self) -> &'static str {
        match self.kind {
            FailureKind::Dns => "dns",
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Timeout => "timeout",
            FailureKind::Auth => "auth",
            FailureKind::Status(s) => status_class(s),
            FailureKind::ForbiddenAddress => "forbidden_address",
            FailureKind::Refused { .. } => "refused",
            FailureKind::Other => "other",
        }
    }

    /// The kind as a word for APIs: `dns`, `connect`, `tls`, `timeout`, `auth`, `http_status`,
    /// `refused`, `other`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            FailureKind::Status(_) => "http_status",
            _ => self.outcome_label(),
        }
    }

    pub(super) fn from_status(status: StatusCode, retry_after: Option<Duration>, snippet: String) -> Failure {
        let detail = if snippet.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {snippet}") };
        Failure { kind: FailureKind::Status(status), retry_after, detail, redirect: None, answer: None }
    }

    pub(super) fn from_client_error(error: &hyper_util::client::legacy::Error) -> Failure {
        let mut messages: Vec<String> = Vec::new();
        let mut kind = if error.is_connect() { FailureKind::Connect } else { FailureKind::Other };
        walk(error, &mut |e| {
            if e.downcast_ref::<rustls::Error>().is_some() {
                kind = FailureKind::Tls;
            }
            if e.downcast_ref::<super::guard::ForbiddenAddress>().is_some() {
                kind = FailureKind::ForbiddenAddress;
            }
            let text = e.to_string();
            if text.starts_with("dns error") && !matches!(kind, FailureKind::Tls | FailureKind::ForbiddenAddress) {
                kind = FailureKind::Dns;
            }
            // hyper-util's outer errors repeat their cause in parentheses; keep the causes.
            if !text.starts_with("client error") && !messages.iter().any(|m| m.contains(&text)) {
                messages.push(text);
            }
        });
        if messages.is_empty() {
            messages.push(error.to_string());
        }
        Failure { kind, retry_after: None, detail: messages.join(": "), redirect: None, answer: None }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind_name(), self.detail)
    }
}

/// The status class label: `2xx`, `4xx`, `5xx`, …
pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Visits an error and its causes, looking inside `io::Error`s (whose `source` skips the error
/// they wrap, which is where rustls puts its own).
fn walk(error: &(dyn StdError + 'static), visit: &mut dyn FnMut(&(dyn StdError + 'static))) {
    visit(error);
    if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        let inner: &(dyn StdError + 'static) = inner;
        walk(inner, visit);
    } else if let Some(source) = error.source() {
        walk(source, visit);
    }
}
