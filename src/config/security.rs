//! The security side of the config: inbound TLS, sender authentication and limits (`server:`),
//! payload signing and proxies (per receiver), and the rules for reading secret files.
//!
//! Secrets are held as [`Secret`] so that `Debug` shows `<secret>`; bcrypt hashes are treated as
//! secrets too, as Prometheus' web configuration does. TLS material is read through
//! [`Issues::read_file`], which makes it part of the files the watcher fingerprints: a renewed
//! certificate reloads the config, and the next handshake uses it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use serde_saphyr::Spanned;

use super::Secret;
use super::issues::{Issues, min_version, secret};
use super::raw::{RawAuthorization, RawServer, RawSigning, RawTlsServerConfig};
use crate::tls::{self, PemSource};

/// Header carrying `sha256=<hex HMAC>` on a signed notification.
pub const SIGNATURE_HEADER: &str = "x-amrelay-signature";
/// Header carrying the Unix time (seconds) that the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-amrelay-timestamp";

const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Each step doubles a verification's cost; 12 takes about a quarter of a second.
const MAX_BCRYPT_COST: u32 = 12;
/// A quarter of the connections: one client cannot take them all and starve the others (the
/// kubelet's probes among them, whose failure would restart the pod).
const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 256;
const DEFAULT_MAX_ALERTS_PER_BATCH: usize = 10_000;
const DEFAULT_MAX_JSON_DEPTH: usize = 32;
/// Real alerts carry tens of labels (a kube-prometheus alert with every target label has about
/// 20); 256 leaves room for generous relabelling while keeping one alert's label set, and the
/// rules' work on it, small.
const DEFAULT_MAX_LABELS_PER_ALERT: usize = 256;
/// Alertmanager's groupKey is the route's matchers and the group's label values (a few hundred
/// bytes at most in practice); a longer one is held in every queue, spool record and dead letter
/// of the group, so it is bounded like a body.
pub const DEFAULT_MAX_GROUP_KEY_BYTES: usize = 8 * 1024;
/// Half the shipped Deployment's memory limit (256Mi): the other half is the process itself
/// (runtime, TLS, caches, allocator slack) and the transient structures of decoding a body,
/// which are not counted. See the memory formula in docs/delivery.md.
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 128 * 1024 * 1024;
/// Reachable without credentials unless `open_endpoints` says otherwise: the probes only.
const DEFAULT_OPEN_ENDPOINTS: [&str; 2] = ["/-/healthy", "/-/ready"];

/// Everything about who may talk to the listener and what a client may cost it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// TLS on the listener; `None` serves plain HTTP.
    pub tls: Option<ServerTls>,
    pub auth: InboundAuth,
    /// Paths served without credentials when `auth` is enabled.
    pub open_endpoints: Vec<String>,
    pub limits: Limits,
    /// `server.external_hosts`: host names (lowercase, without port) a browser may reach the
    /// console and admin API by, besides IP literals, `localhost` and the listen address.
    pub external_hosts: Vec<String>,
    /// `server.grafana`: Grafana's posts must carry its HMAC signature.
    pub grafana: Option<super::grafana::GrafanaAuth>,
}

impl Default for Inbound {
    fn default() -> Self {
        Inbound {
            tls: None,
            auth: InboundAuth::default(),
            open_endpoints: DEFAULT_OPEN_ENDPOINTS.map(String::from).to_vec(),
            limits: Limits::default(),
            external_hosts: Vec::new(),
            grafana: None,
        }
    }
}

/// The listener's rustls config, built (certificate, key and client CA read) at config load.
#[derive(Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub client_auth: ClientAuthType,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("client_auth", &self.client_auth).finish_non_exhaustive()
    }
}

/// `client_auth_type`, in the Go names Prometheus uses. Only verifying policies are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthType {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// Sender authentication: any configured user, the bearer token or a trusted auth proxy's
/// header lets a request in; `access` then says what it may do.
#[derive(Debug, Clone)]
pub struct InboundAuth {
    /// User name → bcrypt hash.
    pub basic_users: BTreeMap<String, Secret>,
    pub bearer: Option<Secret>,
    /// `server.authorization.user`: the user the bearer token acts as (default `bearer`).
    pub bearer_user: String,
    /// `server.auth_proxy`.
    pub proxy: Option<super::access::AuthProxy>,
    /// `server.access` (`None`: every authenticated caller is admin).
    pub access: Option<Vec<super::access::AccessRule>>,
}

impl Default for InboundAuth {
    fn default() -> Self {
        InboundAuth {
            basic_users: BTreeMap::new(),
            bearer: None,
            bearer_user: DEFAULT_BEARER_USER.into(),
            proxy: None,
            access: None,
        }
    }
}

/// The user the bearer token of `server.authorization` acts as, unless `user` is set.
pub const DEFAULT_BEARER_USER: &str = "bearer";

impl InboundAuth {
    /// Whether any credential is required at all.
    pub fn is_enabled(&self) -> bool {
        !self.basic_users.is_empty() || self.bearer.is_some() || self.proxy.is_some()
    }
}

impl Inbound {
    /// Whether every caller must prove who it is: credentials, or a client certificate the
    /// listener requires and verifies.
    pub fn authenticates(&self) -> bool {
        self.auth.is_enabled()
            || self.tls.as_ref().is_some_and(|tls| tls.client_auth == ClientAuthType::RequireAndVerifyClientCert)
    }
}

/// The warning for a listener that other hosts can reach while nothing authenticates, or `None`.
/// Shown by `check-config` (for the configured address) and at start (for the bound one).
pub fn exposure_warning(listen_address: &str, inbound: &Inbound) -> Option<String> {
    if inbound.authenticates() || is_loopback_address(listen_address) {
        return None;
    }
    Some(format!(
        "{listen_address} is reachable from other hosts and no inbound credentials are configured: anyone who \
         can reach it can post alerts, and the console and admin API answer 403 until server.basic_auth_users \
         or server.authorization is set (or the listener is 127.0.0.1)"
    ))
}

/// Whether `host:port` names only loopback addresses (`127.0.0.0/8`, `::1`, `localhost`).
pub fn is_loopback_address(listen_address: &str) -> bool {
    let host = match listen_address.rsplit_once(':') {
        Some((host, _)) => host,
        None => listen_address,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `server.limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A client must send a request's headers within this time.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves for this long is closed.
    pub idle_timeout: Duration,
    /// Connections beyond this are closed right after accept.
    pub max_connections: usize,
    /// Connections from one client address beyond this are closed right after accept.
    pub max_connections_per_client: usize,
    pub max_alerts_per_batch: usize,
    /// Labels (and, separately, annotations) one alert may carry.
    pub max_labels_per_alert: usize,
    /// Deepest nesting of JSON arrays and objects in a webhook body.
    pub max_json_depth: usize,
    /// Longest `groupKey` a batch may carry, in bytes.
    pub max_group_key_bytes: usize,
    /// The byte budget for what is held in memory on callers' behalf (bodies being read,
    /// queued notifications, dead letters, dead-letter pages): see [`crate::memory`].
    pub max_memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            max_alerts_per_batch: DEFAULT_MAX_ALERTS_PER_BATCH,
            max_labels_per_alert: DEFAULT_MAX_LABELS_PER_ALERT,
            max_json_depth: DEFAULT_MAX_JSON_DEPTH,
            max_group_key_bytes: DEFAULT_MAX_GROUP_KEY_BYTES,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
        }
    }
}

/// An HTTP CONNECT proxy for one receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Proxy {
    /// Without credentials.
    pub url: Uri,
    /// `Proxy-Authorization` value, from credentials in `proxy_url`.
    pub authorization: Option<Secret>,
    /// `proxy_connect_header`: sent with the CONNECT request (marked sensitive).
    pub connect_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Validates `server.tls_server_config`, `basic_auth_users`, `authorization`, `open_endpoints`
/// and `limits`.
pub(super) fn inbound(issues: &mut Issues, raw: &RawServer) -> Inbound {
    let mut inbound = Inbound::default();
    if let Some(spanned) = &raw.tls_server_config {
        inbound.tls = server_tls(issues, &spanned.referenced, &spanned.value);
    }
    if let Some(users) = &raw.basic_auth_users {
        for (user, hash) in &users.value {
            let field = format!("server.basic_auth_users.{user}");
            if user.is_empty() || user.contains(':') {
                issues.add(Some(&users.referenced), &field, "a user name must not be empty or contain ':'");
            } else if hash.parse::<bcrypt::HashParts>().is_err() {
                issues.add(Some(&users.referenced), &field, "is not a bcrypt hash (e.g. from `htpasswd -nBC 10 USER`)");
            } else if let Some(cost) = hash.parse::<bcrypt::HashParts>().ok().map(|h| h.get_cost())
                && cost > MAX_BCRYPT_COST
            {
                issues.add(
                    Some(&users.referenced),
                    &field,
                    format!(
                        "bcrypt cost {cost} is above {MAX_BCRYPT_COST}: every uncached verification would hold a \
                         verification slot for seconds (use `htpasswd -nBC 10 USER`)"
                    ),
                );
            } else {
                inbound.auth.basic_users.insert(user.clone(), Secret::new(hash.as_str()));
            }
        }
    }
    if let Some(spanned) = raw.authorization.as_ref().filter(|a| a.value.credentials_ref.is_some()) {
        let why = "not supported by amrelay: secret-manager references; use credentials or credentials_file";
        issues.add(Some(&spanned.referenced), "server.authorization.credentials_ref", why);
    }
    if let Some(spanned) = &raw.authorization {
        inbound.auth.bearer = bearer(issues, &spanned.referenced, &spanned.value);
        if let Some(user) = &spanned.value.user {
            inbound.auth.bearer_user = user.clone();
        }
    }
    inbound.auth.proxy = super::access::auth_proxy(issues, raw.auth_proxy.as_ref());
    if let Some(endpoints) = &raw.open_endpoints {
        for (index, path) in endpoints.value.iter().enumerate() {
            if !path.starts_with('/') {
                let field = format!("server.open_endpoints[{index}]");
                issues.add(Some(&endpoints.referenced), field, format!("{path:?} is not a path: start it with '/'"));
            }
        }
        inbound.open_endpoints = endpoints.value.clone();
    }
    if let Some(spanned) = &raw.limits {
        let (at, raw) = (&spanned.referenced, &spanned.value);
        let limits = &mut inbound.limits;
        for (value, name, slot) in [
            (raw.header_read_timeout, "header_read_timeout", &mut limits.header_read_timeout),
            (raw.idle_timeout, "idle_timeout", &mut limits.idle_timeout),
        ] {
            match value {
                Some(d) if d.0.is_zero() => {
                    issues.add(Some(at), format!("server.limits.{name}"), "must be greater than 0")
                }
                Some(d) => *slot = d.0,
                None => {}
            }
        }
        for (value, name, slot) in [
            (raw.max_connections, "max_connections", &mut limits.max_connections),
            (raw.max_connections_per_client, "max_connections_per_client", &mut limits.max_connections_per_client),
            (raw.max_alerts_per_batch, "max_alerts_per_batch", &mut limits.max_alerts_per_batch),
            (raw.max_json_depth, "max_json_depth", &mut limits.max_json_depth),
            (raw.max_labels_per_alert, "max_labels_per_alert", &mut limits.max_labels_per_alert),
            (raw.max_group_key_bytes, "max_group_key_bytes", &mut limits.max_group_key_bytes),
        ] {
            match value {
                Some(0) => issues.add(Some(at), format!("server.limits.{name}"), "must be greater than 0"),
                Some(n) => *slot = n,
                None => {}
            }
        }
        match raw.max_memory_bytes {
            Some(0) => issues.add(Some(at), "server.limits.max_memory_bytes", "must be greater than 0"),
            Some(n) => limits.max_memory_bytes = n,
            None => {}
        }
        if raw.max_connections_per_client.is_none() {
            // Follows a lowered max_connections unless set.
            limits.max_connections_per_client =
                DEFAULT_MAX_CONNECTIONS_PER_CLIENT.min(limits.max_connections.div_ceil(4)).max(1);
        } else if limits.max_connections_per_client > limits.max_connections {
            issues.add(
                Some(at),
                "server.limits.max_connections_per_client",
                "must not exceed max_connections, or one client can take every connection",
            );
        }
        // An Alertmanager payload is 4 levels deep ({alerts: [{labels: {}}]}).
        if raw.max_json_depth.is_some_and(|d| (1..4).contains(&d)) {
            issues.add(
                Some(at),
                "server.limits.max_json_depth",
                "must be at least 4 to admit any Alertmanager payload",
            );
        }
    }
    if let Some(hosts) = &raw.external_hosts {
        for (index, host) in hosts.value.iter().enumerate() {
            match external_host(host) {
                Some(host) => inbound.external_hosts.push(host),
                None => issues.add(
                    Some(&hosts.referenced),
                    format!("server.external_hosts[{index}]"),
                    format!("{host:?} is not a host name (write it as a browser's Host header has it: name[:port])"),
                ),
            }
        }
    }
    if let Some(raw) = &raw.grafana {
        inbound.grafana = super::grafana::grafana(issues, raw);
    }
    if inbound.auth.is_enabled() && inbound.tls.is_none() {
        let at =
            raw.basic_auth_users.as_ref().map(|s| &s.referenced).or(raw.authorization.as_ref().map(|s| &s.referenced));
        issues.warn(at, "server", "credentials are accepted over plain HTTP: set tls_server_config");
    }
    inbound
}

/// A `server.external_hosts` entry as compared with a request's `Host`: lowercase, without port.
fn external_host(written: &str) -> Option<String> {
    let host = match written.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.contains(':') => host,
        _ => written,
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    valid.then(|| host.to_ascii_lowercase())
}

fn bearer(issues: &mut Issues, at: &serde_saphyr::Location, raw: &RawAuthorization) -> Option<Secret> {
    let field = "server.authorization";
    if raw.kind.as_deref().is_some_and(|kind| !kind.eq_ignore_ascii_case("bearer")) {
        issues.add(Some(at), format!("{field}.type"), "only Bearer is accepted here: use basic_auth_users for Basic");
        return None;
    }
    let token =
        secret(issues, at, field, ("credentials", &raw.credentials), ("credentials_file", &raw.credentials_file))?;
    if token.expose().is_empty() {
        issues.add(Some(at), format!("{field}.credentials"), "must not be empty");
        return None;
    }
    Some(token)
}

fn server_tls(issues: &mut Issues, at: &serde_saphyr::Location, raw: &RawTlsServerConfig) -> Option<ServerTls> {
    let field = "server.tls_server_config";
    let before = issues.len();
    let file = |issues: &mut Issues, key: &str, path: &Option<String>| {
        let path = path.as_deref()?;
        let bytes = issues.read_file(at, &format!("{field}.{key}"), path)?;
        Some(PemSource { name: issues.resolve(path).display().to_string(), bytes })
    };
    let cert = file(issues, "cert_file", &raw.cert_file);
    let key = file(issues, "key_file", &raw.key_file);
    let client_ca = file(issues, "client_ca_file", &raw.client_ca_file);
    for (value, key) in [(&raw.cert_file, "cert_file"), (&raw.key_file, "key_file")] {
        if value.is_none() {
            issues.add(Some(at), format!("{field}.{key}"), "is required");
        }
    }
    let client_auth = match raw.client_auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuthType::NoClientCert,
        Some("VerifyClientCertIfGiven") => ClientAuthType::VerifyClientCertIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuthType::RequireAndVerifyClientCert,
        Some(other @ ("RequestClientCert" | "RequireAnyClientCert")) => {
            issues.add(
                Some(at),
                format!("{field}.client_auth_type"),
                format!("{other} accepts unverified certificates and is not supported: use VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
            );
            return None;
        }
        Some(other) => {
            issues.add(Some(at), format!("{field}.client_auth_type"), format!("unknown client_auth_type {other:?}"));
            return None;
        }
    };
    match (client_auth, raw.client_ca_file.is_some()) {
        (ClientAuthType::NoClientCert, true) => issues.add(
            Some(at),
            format!("{field}.client_auth_type"),
            "client_ca_file is set but no client certificate is asked for: set client_auth_type",
        ),
        (ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert, false) => {
            issues.add(Some(at), format!("{field}.client_ca_file"), "is required to verify client certificates")
        }
        _ => {}
    }
    let min_version = min_version(issues, at, field, raw.min_version.as_deref())?;
    if issues.len() > before {
        return None;
    }
    let options = tls::ServerTlsOptions {
        cert: cert?,
        key: key?,
        client_ca,
        require_client_cert: client_auth == ClientAuthType::RequireAndVerifyClientCert,
        min_version,
    };
    match tls::server_config(&options) {
        Ok(config) => Some(ServerTls { config, client_auth }),
        Err(e) => {
            issues.add(Some(at), field, e);
            None
        }
    }
}

/// `receivers[].signing`: `Some(None)` when unset, `None` on error.
pub(super) fn signing(issues: &mut Issues, field: &str, raw: Option<&Spanned<RawSigning>>) -> Option<Option<Secret>> {
    let Some(spanned) = raw else {
        return Some(None);
    };
    let (at, raw) = (&spanned.referenced, &spanned.value);
    let field = format!("{field}.signing");
    let key = secret(issues, at, &field, ("secret", &raw.secret), ("secret_file", &raw.secret_file))?;
    if key.expose().len() < 16 {
        issues.add(Some(at), format!("{field}.secret"), "must be at least 16 bytes long");
        return None;
    }
    Some(Some(key))
}

/// A `proxy_url` (at `field`, its full path): `None` on error.
pub(super) fn proxy_url(issues: &mut Issues, field: &str, spanned: &Spanned<String>) -> Option<Proxy> {
    let (at, text) = (&spanned.referenced, spanned.value.as_str());
    let field = field.to_owned();
    let url = match text.parse::<Uri>() {
        Ok(url) if url.scheme_str() == Some("http") && url.host().is_some() => url,
        Ok(_) => {
            issues.add(Some(at), field, "must be an http:// URL of an HTTP CONNECT proxy");
            return None;
        }
        Err(e) => {
            issues.add(Some(at), field, format!("invalid URL: {e}"));
            return None;
        }
    };
    let authority = url.authority().map(|a| a.as_str()).unwrap_or_default();
    let (authorization, host) = match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            use base64::Engine;
            let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
            let pair = format!("{}:{}", percent_decode(user), percent_decode(password));
            let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
            (Some(Secret::new(value)), host)
        }
        None => (None, authority),
    };
    let port = if url.port().is_some() { "" } else { ":80" };
    match format!("http://{host}{port}").parse::<Uri>() {
        Ok(url) => Some(Proxy { url, authorization, connect_headers: Vec::new() }),
        Err(_) => {
            issues.add(Some(at), field, "invalid proxy host");
            None
        }
    }
}

/// Decodes `%XX` escapes (credentials in a URL); anything malformed is kept as written.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding_keeps_what_it_cannot_decode() {
        assert_eq!(percent_decode("p%40ss%3Aword"), "p@ss:word");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    /// The documented default for `max_connections_per_client`: a quarter of `max_connections`, at
    /// most 256, at least 1; an explicit value stands.
    #[test]
    fn the_per_client_connection_limit_follows_max_connections() {
        let limits = |yaml: &str| {
            let path = std::path::Path::new("/nonexistent/amrelay.yml");
            crate::config::from_str(yaml, path, &crate::config::Environment::empty()).unwrap().server.inbound.limits
        };
        assert_eq!(limits("receivers: []\n").max_connections_per_client, 256);
        assert_eq!(limits("server:\n  limits: {max_connections: 100}\n").max_connections_per_client, 25);
        assert_eq!(limits("server:\n  limits: {max_connections: 2}\n").max_connections_per_client, 1);
        let explicit = "server:\n  limits: {max_connections: 100, max_connections_per_client: 90}\n";
        assert_eq!(limits(explicit).max_connections_per_client, 90);
    }
}
