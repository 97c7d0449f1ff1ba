//! `server.grafana`: Grafana's alerting webhook contact point signs each post with an HMAC
//! when it is given a secret. Grafana sends the lowercase hex HMAC-SHA256 of the body in
//! `X-Grafana-Alerting-Signature` (the header name is configurable in Grafana), or of
//! `TIMESTAMP:BODY` when a timestamp header is configured there (Unix seconds; Grafana has no
//! default name for it).

use std::time::Duration;

use http::HeaderName;
use serde_saphyr::Spanned;

use super::issues::{Issues, secret};
use super::raw::RawGrafana;

/// Grafana's default signature header.
pub const DEFAULT_SIGNATURE_HEADER: &str = "x-grafana-alerting-signature";
/// How old a signed timestamp may be (and how far in the future), by default.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

/// How Grafana's posts are verified.
#[derive(Debug, Clone)]
pub struct GrafanaAuth {
    /// The HMAC-SHA256 key made from the secret once per config, not per request.
    pub key: ring::hmac::Key,
    pub signature_header: HeaderName,
    /// `Some`: the signature covers `TIMESTAMP:BODY`, the timestamp read from this header.
    pub timestamp_header: Option<HeaderName>,
    pub max_age: Duration,
}

/// Validates `server.grafana`.
pub(super) fn grafana(issues: &mut Issues, raw: &Spanned<RawGrafana>) -> Option<GrafanaAuth> {
    let (at, raw) = (&raw.referenced, &raw.value);
    let field = "server.grafana";
    let secret =
        secret(issues, at, field, ("hmac_secret", &raw.hmac_secret), ("hmac_secret_file", &raw.hmac_secret_file))?;
    let header = |issues: &mut Issues, key: &str, name: &str| match HeaderName::try_from(name) {
        Ok(name) => Some(name),
        Err(_) => {
            issues.add(Some(at), format!("{field}.{key}"), format!("{name:?} is not a header name"));
            None
        }
    };
    let signature_header =
        header(issues, "signature_header", raw.signature_header.as_deref().unwrap_or(DEFAULT_SIGNATURE_HEADER))?;
    let timestamp_header = match raw.timestamp_header.as_deref() {
        Some(name) => Some(header(issues, "timestamp_header", name)?),
        None => None,
    };
    let max_age = match raw.max_age {
        Some(d) if d.0.is_zero() => {
            issues.add(Some(at), format!("{field}.max_age"), "must be greater than 0");
            return None;
        }
        Some(d) => d.0,
        None => DEFAULT_MAX_AGE,
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    Some(GrafanaAuth { key, signature_header, timestamp_header, max_age })
}
