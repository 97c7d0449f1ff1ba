//! Grafana's HMAC signature on what its webhook contact point posts (`server.grafana`): the
//! lowercase hex HMAC-SHA256 of the body, or of `TIMESTAMP:BODY` when Grafana is told to send a
//! timestamp header. Checked only for Grafana's payloads (`version: "1"`), so Alertmanager,
//! which signs nothing, posts to the same endpoint as before.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use ring::hmac;
use subtle::ConstantTimeEq;

use super::response::ApiError;
use crate::config::GrafanaAuth;
use crate::metrics as m;

/// The signature headers of a request, taken before its body is read.
#[derive(Debug, Default)]
pub struct Signed {
    signature: Option<HeaderValue>,
    timestamp: Option<HeaderValue>,
}

impl Signed {
    /// What `headers` carry of `auth`'s headers (nothing when Grafana signing is not set up).
    pub fn from_headers(auth: Option<&GrafanaAuth>, headers: &HeaderMap) -> Signed {
        let Some(auth) = auth else {
            return Signed::default();
        };
        // A header value's clone shares its bytes: nothing is copied per request.
        let get = |name: &http::HeaderName| headers.get(name).cloned();
        Signed { signature: get(&auth.signature_header), timestamp: auth.timestamp_header.as_ref().and_then(get) }
    }
}

/// Lets a Grafana body through when its signature holds, else `401` saying why.
pub fn verify(auth: &GrafanaAuth, signed: &Signed, body: &[u8], now: SystemTime) -> Result<(), ApiError> {
    let refuse = |why: String| {
        metrics::counter!(m::AUTH_FAILURES, "reason" => "grafana_signature").increment(1);
        Err(ApiError::BadSignature(why))
    };
    let header = auth.signature_header.as_str();
    let Some(signature) = &signed.signature else {
        return refuse(format!("missing {header}: server.grafana asks for Grafana's HMAC signature"));
    };
    let Some(tag) = hex(signature.as_bytes().trim_ascii()) else {
        return refuse(format!("{header} is not a hex HMAC-SHA256"));
    };
    let mut context = hmac::Context::with_key(&auth.key);
    if let Some(name) = &auth.timestamp_header {
        let Some(timestamp) = &signed.timestamp else {
            return refuse(format!("missing {name}: server.grafana.timestamp_header is set"));
        };
        let Some(at) = timestamp.to_str().ok().and_then(|t| t.trim().parse::<u64>().ok()) else {
            return refuse(format!("{name} is not Unix seconds"));
        };
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if now.abs_diff(at) > auth.max_age.as_secs() {
            return refuse(format!(
                "{name} is {}s away from now, more than server.grafana.max_age ({})",
                now.abs_diff(at),
                crate::config::duration::format(auth.max_age)
            ));
        }
        context.update(timestamp.as_bytes().trim_ascii());
        context.update(b":");
    }
    context.update(body);
    let expected = context.sign();
    // Compared in constant time: no early exit tells how much of a guess was right.
    if !bool::from(expected.as_ref().ct_eq(&tag)) {
        return refuse(format!("{header} does not match the body"));
    }
    Ok(())
}

fn hex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2).map(|pair| std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn auth(timestamp: bool) -> GrafanaAuth {
        GrafanaAuth {
            key: hmac::Key::new(hmac::HMAC_SHA256, b"grafana-secret"),
            signature_header: http::HeaderName::from_static("x-grafana-alerting-signature"),
            timestamp_header: timestamp.then(|| http::HeaderName::from_static("x-grafana-alerting-timestamp")),
            max_age: Duration::from_secs(300),
        }
    }

    fn sign(message: &[u8]) -> HeaderValue {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"grafana-secret");
        HeaderValue::from_str(
            &hmac::sign(&key, message).as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>(),
        )
        .unwrap()
    }

    #[test]
    fn the_body_signed_as_grafana_signs_it_passes_and_nothing_else_does() {
        let body = br#"{"version":"1"}"#;
        let now = SystemTime::now();
        let good = Signed { signature: Some(sign(body)), timestamp: None };
        assert!(verify(&auth(false), &good, body, now).is_ok());
        assert!(verify(&auth(false), &Signed::default(), body, now).is_err(), "missing");
        let wrong = Signed { signature: Some(sign(b"other")), timestamp: None };
        assert!(verify(&auth(false), &wrong, body, now).is_err(), "wrong");
        let garbage = Signed { signature: Some(HeaderValue::from_static("zz")), timestamp: None };
        assert!(verify(&auth(false), &garbage, body, now).is_err(), "not hex");
    }

    #[test]
    fn with_a_timestamp_the_signature_covers_it_and_it_must_be_fresh() {
        let body = br#"{"version":"1"}"#;
        let now = SystemTime::now();
        let seconds = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let signed = |at: u64| {
            let mut message = format!("{at}:").into_bytes();
            message.extend_from_slice(body);
            Signed { signature: Some(sign(&message)), timestamp: Some(HeaderValue::from(at)) }
        };
        assert!(verify(&auth(true), &signed(seconds), body, now).is_ok());
        assert!(verify(&auth(true), &signed(seconds - 600), body, now).is_err(), "stale");
        assert!(verify(&auth(true), &signed(seconds + 600), body, now).is_err(), "from too far in the future");
        let no_time = Signed { signature: signed(seconds).signature, timestamp: None };
        assert!(verify(&auth(true), &no_time, body, now).is_err(), "the timestamp header is required");
        let not_seconds =
            Signed { signature: signed(seconds).signature, timestamp: Some(HeaderValue::from_static("noon")) };
        assert!(verify(&auth(true), &not_seconds, body, now).is_err(), "not Unix seconds");
        let unsigned_time = Signed { signature: Some(sign(body)), timestamp: Some(HeaderValue::from(seconds)) };
        assert!(verify(&auth(true), &unsigned_time, body, now).is_err(), "the timestamp is part of the message");
    }
}
