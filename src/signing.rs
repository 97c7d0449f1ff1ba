//! Payload signing: an HMAC-SHA256 over the timestamp, the notification id and the exact body,
//! so a downstream can check that a notification comes from this relay, unaltered, recently —
//! and, deduplicating on the id within its timestamp window, that it is not a replay of one it
//! already took.
//!
//! The scheme, for a receiver with `signing: {secret: K}`:
//!
//! ```text
//! X-Amrelay-Timestamp: T                      Unix time in seconds when the attempt was sent
//! Idempotency-Key: ID                         the notification's id, the same on every retry
//! X-Amrelay-Signature: sha256=HEX(HMAC-SHA256(K, T + "." + ID + "." + BODY))
//! ```
//!
//! Each attempt is signed afresh (retries carry a new timestamp), so a downstream may refuse
//! timestamps more than a few minutes off its clock and so refuse replays; `Idempotency-Key`
//! stays the same across retries for deduplication.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use ring::hmac;

use crate::config::security::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// The two headers of one signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub timestamp: String,
    /// `sha256=` and the lowercase hex HMAC.
    pub signature: String,
}

impl Signature {
    /// Adds `X-Amrelay-Timestamp` and `X-Amrelay-Signature`.
    pub fn insert_into(self, headers: &mut HeaderMap) {
        for (name, value) in [(TIMESTAMP_HEADER, self.timestamp), (SIGNATURE_HEADER, self.signature)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    }
}

/// Signs notification `id`'s `body` as sent at `now`.
pub fn sign(key: &hmac::Key, now: SystemTime, id: &str, body: &[u8]) -> Signature {
    let timestamp = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs().to_string();
    let mut context = hmac::Context::with_key(key);
    context.update(timestamp.as_bytes());
    context.update(b".");
    context.update(id.as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let mut signature = String::with_capacity(7 + 64);
    signature.push_str("sha256=");
    for byte in tag.as_ref() {
        signature.push_str(&format!("{byte:02x}"));
    }
    Signature { timestamp, signature }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Checks a signature as a downstream would (constant time).
    fn verify(secret: &[u8], timestamp: &str, id: &str, body: &[u8], signature: &str) -> bool {
        let Some(hex) = signature.strip_prefix("sha256=") else {
            return false;
        };
        let Some(tag) = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        let mut message = Vec::with_capacity(timestamp.len() + id.len() + 2 + body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.push(b'.');
        message.extend_from_slice(id.as_bytes());
        message.push(b'.');
        message.extend_from_slice(body);
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, secret), &message, &tag).is_ok()
    }

    #[test]
    fn matches_an_independent_hmac_sha256() {
        // The signed message is T "." ID "." BODY, checked against ring's one-shot HMAC.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let signature = sign(&key, UNIX_EPOCH + Duration::from_secs(0), "n1", b"what do ya want for nothing?");
        assert_eq!(signature.timestamp, "0");
        let expected = hmac::sign(&key, b"0.n1.what do ya want for nothing?");
        let hex: String = expected.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(signature.signature, format!("sha256={hex}"));
        assert!(verify(b"Jefe", "0", "n1", b"what do ya want for nothing?", &signature.signature));
        assert!(!verify(b"Jefe", "1", "n1", b"what do ya want for nothing?", &signature.signature));
        // Regression: the id was not signed, so a replay under another id verified.
        assert!(!verify(b"Jefe", "0", "n2", b"what do ya want for nothing?", &signature.signature));
        assert!(!verify(b"jefe", "0", "n1", b"what do ya want for nothing?", &signature.signature));
        assert!(!verify(b"Jefe", "0", "n1", b"what do ya want for nothing?", "sha256=zz"));
    }

    #[test]
    fn rfc_4231_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), the well-known value.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"key");
        let tag = hmac::sign(&key, b"The quick brown fox jumps over the lazy dog");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    }
}
