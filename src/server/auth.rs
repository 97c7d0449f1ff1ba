//! Who may call the relay: basic auth against bcrypt hashes, or a bearer token — what
//! Alertmanager's `http_config` sends — or the user an authenticating proxy names in a header,
//! believed only from `server.auth_proxy.trusted_cidrs`; then which role over which tenants
//! `server.access` gives that user ([`Caller`]).
//!
//! Comparisons do not leak through timing: bearer tokens are compared as SHA-256 digests in
//! constant time (so neither content nor length shows), and an unknown user name costs a bcrypt
//! verification like a known one. A successful verification is remembered in the snapshot's
//! [`VerifiedSenders`] set. Verifications run on the blocking pool, at most a few at a time, so a flood
//! of wrong passwords cannot starve the runtime.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::OnceLock;

use base64::Engine;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::response::ApiError;
use crate::config::access::{AuthProxy, Role, grant};
use crate::config::{Inbound, InboundAuth, ReceiverConfig};
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

/// Who is asking, as authentication established it, and what `server.access` lets them do:
/// for the role check, tenant scoping and audit lines, without parsing the credentials again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller<'s> {
    /// A `basic_auth_users` user or the bearer token's user (borrowed from the snapshot), the
    /// proxy's user, or `anonymous` when nobody was asked.
    user: Cow<'s, str>,
    /// `None`: authenticated, but no entry of `server.access` names them (403 but for probes).
    pub role: Option<Role>,
    /// A viewer's or editor's tenants.
    tenants: &'s [String],
}

impl<'s> Caller<'s> {
    /// Nobody was asked (no credentials are configured, or the endpoint is open): what amrelay
    /// did before roles, everything.
    pub fn anonymous() -> Caller<'static> {
        Caller { user: Cow::Borrowed("anonymous"), role: Some(Role::Admin), tenants: &[] }
    }

    /// The user `user` (in `groups`) as `server.access` sees them.
    fn known(auth: &'s InboundAuth, user: Cow<'s, str>, groups: &[&str]) -> Caller<'s> {
        let Some(access) = &auth.access else {
            return Caller { user, role: Some(Role::Admin), tenants: &[] };
        };
        match grant(access, &user, groups) {
            Some(rule) => Caller { role: Some(rule.role), tenants: &rule.tenants, user },
            None => Caller { user, role: None, tenants: &[] },
        }
    }

    /// The name audit lines give.
    pub fn name(&self) -> &str {
        &self.user
    }

    /// The tenants a viewer or editor acts for; empty for every other role (admins act for all).
    pub fn tenants(&self) -> &[String] {
        self.tenants
    }

    /// Whether the caller acts for every tenant (admin), not for a list.
    pub fn all_tenants(&self) -> bool {
        self.role == Some(Role::Admin)
    }

    /// Whether this caller may see (and, with the role for it, act on) a receiver: admins see
    /// every one; viewers and editors only their tenants', not even global ones.
    pub fn sees(&self, receiver: &ReceiverConfig) -> bool {
        self.sees_tenant(receiver.tenant.as_deref())
    }

    /// [`Caller::sees`] for the receiver of this name in `snapshot`; an admin sees names no
    /// longer in it too (dead letters and history of a removed receiver).
    pub fn sees_name(&self, snapshot: &crate::snapshot::Snapshot, name: &str) -> bool {
        self.all_tenants() || snapshot.receiver(name).is_some_and(|r| self.sees(&r.config))
    }

    /// [`Caller::sees`] for a receiver of this tenant (`None`: global).
    pub fn sees_tenant(&self, tenant: Option<&str>) -> bool {
        self.all_tenants() || tenant.is_some_and(|t| self.tenants.iter().any(|mine| mine == t))
    }
}

/// Lets the request in, saying who it is, or says why not: `Unauthorized` carries the
/// challenges to send. `peer` is the connection's address: an auth proxy's headers are believed
/// only from `server.auth_proxy.trusted_cidrs`, and ignored from anywhere else.
pub async fn authorize<'s>(
    inbound: &'s Inbound,
    verified: &VerifiedSenders,
    checks: &PasswordChecks,
    path: &str,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<Caller<'s>, ApiError> {
    let auth = &inbound.auth;
    if !auth.is_enabled() || inbound.open_endpoints.iter().any(|open| open == path) {
        return Ok(Caller::anonymous());
    }
    if let Some(proxy) = &auth.proxy
        && let Some(caller) = proxied(auth, proxy, headers, peer)
    {
        return Ok(caller);
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
            basic(auth, verified, checks, &value[space + 1..]).await?.map(|user| Caller::known(auth, user.into(), &[]))
        }
        Some(space) if value[..space].eq_ignore_ascii_case(b"bearer") => {
            bearer(auth, &value[space + 1..]).then(|| Caller::known(auth, auth.bearer_user.as_str().into(), &[]))
        }
        _ => None,
    };
    accepted.ok_or_else(|| refuse("invalid"))
}

/// The proxy's user, when its header is present and the peer is trusted; `None` otherwise (the
/// headers of an untrusted peer are ignored, as if absent).
fn proxied<'s>(
    auth: &'s InboundAuth,
    proxy: &AuthProxy,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Option<Caller<'s>> {
    let user = headers.get(&proxy.user_header)?.to_str().ok()?.trim();
    if user.is_empty() || !peer.is_some_and(|peer| proxy.trusts(peer)) {
        return None;
    }
    let groups: Vec<&str> = match &proxy.groups_header {
        Some(header) => headers
            .get_all(header)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .collect(),
        None => Vec::new(),
    };
    Some(Caller::known(auth, Cow::Owned(user.to_owned()), &groups))
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
        assert!(
            authorize(&inbound, &verified, &checks, "/webhook", &basic_header("am", "pass:word"), None).await.is_ok()
        );
        // Twice: the second time from the cache.
        assert!(
            authorize(&inbound, &verified, &checks, "/webhook", &basic_header("am", "pass:word"), None).await.is_ok()
        );
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &basic_header("am", "wrong"), None).await.is_err());
        assert!(
            authorize(&inbound, &verified, &checks, "/webhook", &basic_header("nobody", "pass:word"), None)
                .await
                .is_err()
        );
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &with("Bearer tok3n"), None).await.is_ok());
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &with("bearer tok3n"), None).await.is_ok());
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &with("Bearer tok3"), None).await.is_err());
        assert!(
            authorize(&inbound, &verified, &checks, "/webhook", &with("Bearer tok3n-and-more"), None).await.is_err()
        );
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &with("Basic !!!"), None).await.is_err());
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &with("Token tok3n"), None).await.is_err());
        assert!(authorize(&inbound, &verified, &checks, "/webhook", &HeaderMap::new(), None).await.is_err());
        assert!(authorize(&inbound, &verified, &checks, "/-/healthy", &HeaderMap::new(), None).await.is_ok());
        // Who it was comes back, so an audit line needs no second parse.
        let user = authorize(&inbound, &verified, &checks, "/webhook", &basic_header("am", "pass:word"), None).await;
        assert_eq!(user.unwrap().name(), "am");
        let token = authorize(&inbound, &verified, &checks, "/webhook", &with("Bearer tok3n"), None).await;
        assert_eq!(token.unwrap().name(), "bearer");
    }

    #[tokio::test]
    async fn no_credentials_configured_lets_everything_in() {
        assert!(
            authorize(
                &Inbound::default(),
                &VerifiedSenders::default(),
                &PasswordChecks::default(),
                "/webhook",
                &HeaderMap::new(),
                None
            )
            .await
            .is_ok()
        );
    }
}
