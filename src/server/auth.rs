//! Who may call the relay: basic auth against bcrypt hashes, or a bearer token — what
//! Alertmanager's `http_config` sends.
//!
//! Comparisons do not leak through timing: bearer tokens are compared as SHA-256 digests in
//! constant time (so neither content nor length shows), and an unknown user name costs a bcrypt
//! verification like a known one. A successful verification is remembered in the snapshot's
//! [`VerifiedSenders`] set. Verifications run on the blocking pool, at most a few at a time, so a flood
//! of wrong passwords cannot starve the runtime.

use std::sync::OnceLock;

use base64::Engine;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::response::ApiError;
use crate::config::{Inbound, InboundAuth};
use crate::metrics as m;
use crate::verified_senders::VerifiedSenders;

/// bcrypt verifications running at once.
const CONCURRENT_VERIFICATIONS: usize = 2;
/// How long a request waits for a verification slot before it is answered 503: a flood of
/// wrong passwords must not hold every other request for ever.
const VERIFICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Cost of the hash verified when the user name is unknown, so that a miss takes about as long
/// as a hit (10 is what `htpasswd -B` and Prometheus' docs use).
const DUMMY_COST: u32 = 10;

/// The server's bcrypt verification slots. One per server, not per process, so that relays
/// sharing a process (the test suites run dozens) do not take each other's slots.
#[derive(Debug)]
pub struct PasswordChecks(Semaphore);

impl Default for PasswordChecks {
    fn default() -> Self {
        Self(Semaphore::new(CONCURRENT_VERIFICATIONS))
    }
}

/// Who is asking, as authentication established it: for audit lines, without parsing the
/// credentials a second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller<'s> {
    /// Nobody was asked: no credentials are configured, or the endpoint is open.
    Anonymous,
    /// A `basic_auth_users` user, verified: the name as the snapshot holds it (no copy per
    /// request).
    User(&'s str),
    /// The holder of the bearer token of `server.authorization`.
    Bearer,
}

impl Caller<'_> {
    /// The name audit lines give: the user, `bearer`, or `anonymous`.
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::User(user) => user,
            Caller::Bearer => "bearer",
        }
    }
}

/// Lets the request in, saying who it is, or says why not: `Unauthorized` carries the
/// challenges to send.
pub async fn authorize<'s>(
    inbound: &'s Inbound,
    verified: &VerifiedSenders,
    checks: &PasswordChecks,
    path: &str,
    headers: &HeaderMap,
) -> Result<Caller<'s>, ApiError> {
    let auth = &inbound.auth;
    if !auth.is_enabled() || inbound.open_endpoints.iter().any(|open| open == path) {
        return Ok(Caller::Anonymous);
    }
    let refuse = |reason: &'static str| {
        metrics::counter!(m::AUTH_FAILURES, "reason" => reason).increment(1);
        ApiError::Unauthorized { basic: !auth.basic_users.is_empty(), bearer: auth.bearer.is_some() }
    };
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(refuse("missing"));
    };
    let value = value.as_bytes();
    let accepted = match value.iter().position(|&b| b == b' ') {
        Some(space) if value[..space].eq_ignore_ascii_case(b"basic") => {
            basic(auth, verified, checks, &value[space + 1..]).await?.map(Caller::User)
        }
        Some(space) if value[..space].eq_ignore_ascii_case(b"bearer") => {
            bearer(auth, &value[space + 1..]).then_some(Caller::Bearer)
        }
        _ => None,
    };
    accepted.ok_or_else(|| refuse("invalid"))
}

fn bearer(auth: &InboundAuth, token: &[u8]) -> bool {
    let Some(expected) = &auth.bearer else {
        return false;
    };
    let (expected, given) = (digest(&SHA256, expected.expose().as_bytes()), digest(&SHA256, token.trim_ascii()));
    expected.as_ref().ct_eq(given.as_ref()).into()
}

/// Verifies basic credentials: the user when they hold, `None` when not; `Err` (503) when no
/// verification slot frees up in time.
async fn basic<'s>(
    auth: &'s InboundAuth,
    verified: &VerifiedSenders,
    checks: &PasswordChecks,
    encoded: &[u8],
) -> Result<Option<&'s str>, ApiError> {
    if auth.basic_users.is_empty() {
        return Ok(None);
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim_ascii()) else {
        return Ok(None);
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return Ok(None);
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let known = std::str::from_utf8(user).ok().and_then(|user| auth.basic_users.get_key_value(user));
    let hash: &str = match known {
        Some((_, hash)) => hash.expose(),
        None => dummy_hash(),
    };
    let key = cache_key(user, password, hash);
    if known.is_some() && verified.contains(&key) {
        return Ok(known.map(|(name, _)| name.as_str()));
    }
    let _permit = match tokio::time::timeout(VERIFICATION_WAIT, checks.0.acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) => return Ok(None),
        Err(_) => {
            metrics::counter!(m::AUTH_FAILURES, "reason" => "busy").increment(1);
            return Err(ApiError::Unavailable("too many password verifications in progress".into()));
        }
    };
    let (password, hash) = (password.to_vec(), hash.to_owned());
    let ok =
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false)).await.unwrap_or(false);
    if ok && known.is_some() {
        verified.insert(key);
        return Ok(known.map(|(name, _)| name.as_str()));
    }
    Ok(None)
}

fn cache_key(user: &[u8], password: &[u8], hash: &str) -> [u8; 32] {
    let mut input = Vec::with_capacity(user.len() + password.len() + hash.len() + 2);
    for part in [user, password, hash.as_bytes()] {
        input.extend_from_slice(&(part.len() as u32).to_le_bytes());
        input.extend_from_slice(part);
    }
    let mut key = [0; 32];
    key.copy_from_slice(digest(&SHA256, &input).as_ref());
    key
}

/// A hash no password matches in practice: of 32 random bytes, made once per process.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let random: String = std::iter::repeat_with(fastrand::alphanumeric).take(32).collect();
        bcrypt::hash(random, DUMMY_COST).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn inbound(users: &[(&str, &str)], bearer: Option<&str>) -> Inbound {
        let mut inbound = Inbound::default();
        for (user, password) in users {
            let hash = bcrypt::hash(password, 4).unwrap();
            inbound.auth.basic_users.insert((*user).to_owned(), Secret::new(hash));
        }
        inbound.auth.bearer = bearer.map(Secret::new);
        inbound
    }

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    fn basic_header(user: &str, password: &str) -> HeaderMap {
        with(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
    }

    #[test]
    fn the_dummy_hash_is_a_valid_bcrypt_hash() {
        assert!(dummy_hash().parse::<bcrypt::HashParts>().is_ok());
        assert_eq!(bcrypt::verify("anything", dummy_hash()).ok(), Some(false));
    }

    #[tokio::test]
    async fn basic_users_and_bearer_tokens() {
        let inbound = inbound(&[("am", "pass:word")], Some("tok3n"));
        let verified = VerifiedSenders::default();
        let checks = PasswordChecks::default();
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &basic_header("am", "pass:word")).await.is_ok());
        // Twice: the second time from the cache.
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &basic_header("am", "pass:word")).await.is_ok());
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &basic_header("am", "wrong")).await.is_err());
        assert!(
            authorize(&inbound, &verified, &checks, "/webhook", &basic_header("nobody", "pass:word")).await.is_err()
        );
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &with("Bearer tok3n")).await.is_ok());
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &with("bearer tok3n")).await.is_ok());
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &with("Bearer tok3")).await.is_err());
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &with("Bearer tok3n-and-more")).await.is_err());
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &with("Basic !!!")).await.is_err());
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &with("Token tok3n")).await.is_err());
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &HeaderMap::new()).await.is_err());
        assert!(authorize(&inbound, &verified, &checks, "/-/healthy", &HeaderMap::new()).await.is_ok());
        // Who it was comes back, so an audit line needs no second parse.
        let user = authorize(&inbound, &verified, &checks, "/webhook", &basic_header("am", "pass:word")).await;
        assert_eq!(user.unwrap(), Caller::User("am"));
        let token = authorize(&inbound, &verified, &checks, "/webhook", &with("Bearer tok3n")).await;
        assert_eq!(token.unwrap(), Caller::Bearer);
    }

    #[tokio::test]
    async fn no_credentials_configured_lets_everything_in() {
        assert!(
            authorize(
                &Inbound::default(),
                &VerifiedSenders::default(),
                &PasswordChecks::default(),
                "/webhook",
                &HeaderMap::new()
            )
            .await
            .is_ok()
        );
    }
}
