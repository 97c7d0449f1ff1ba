//! Who can reach the admin side of the relay, decided before any handler runs.
//!
//! Two endpoints groups: the **ingest and scrape** side (`/webhook…`, `/metrics`, `/-/healthy`,
//! `/-/ready`), which Alertmanager, Prometheus and the kubelet call by whatever name or address
//! routes to the pod; and the **admin** side (the console page, every `/api/v1/…` endpoint and
//! `/-/reload`), which reads alert contents, receivers and dead letters or changes state.
//!
//! The admin side is refused (`403`, saying what to configure) in two cases:
//! - **Nothing authenticates and other hosts can connect**: no inbound credentials, no required
//!   client certificate, and a listener not bound to a loopback address. A stranger on the
//!   network could otherwise add a receiver pointing at themselves and get every alert.
//! - **DNS rebinding**: a page on `attacker.example` whose name re-resolves to the relay's
//!   address makes the victim's browser send same-origin requests with `Host:
//!   attacker.example`. So a browser's `Host` must be an IP literal (the user typed the address,
//!   the listen address's among them: a rebinding page can only make the browser send its own
//!   name), `localhost` (or a name under `.localhost`), or one of `server.external_hosts`.

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::HOST;

use super::response::ApiError;
use crate::config::Inbound;

/// The listener as bound: what decides whether other hosts can connect.
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    pub local_addr: SocketAddr,
}

impl Listener {
    /// Only this machine can connect (`127.0.0.0/8` or `::1`).
    pub fn loopback_only(&self) -> bool {
        self.local_addr.ip().is_loopback()
    }
}

/// Whether `path` belongs to the admin side (see the module documentation).
pub fn is_admin(path: &str) -> bool {
    !(path == "/webhook" || path.starts_with("/webhook/") || matches!(path, "/metrics" | "/-/healthy" | "/-/ready"))
}

/// Lets an admin request through, or says why not; other requests always pass.
pub fn guard(
    listener: &Listener,
    inbound: &Inbound,
    path: &str,
    headers: &HeaderMap,
    authority: Option<&str>,
) -> Result<(), ApiError> {
    if !is_admin(path) {
        return Ok(());
    }
    if !inbound.authenticates() && !listener.loopback_only() {
        return Err(ApiError::Forbidden(format!(
            "the console and admin API are closed: this listener ({}) is reachable from other hosts and no inbound \
             credentials are configured; set server.basic_auth_users or server.authorization (or require client \
             certificates), or listen on 127.0.0.1",
            listener.local_addr
        )));
    }
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).or(authority);
    match host {
        Some(host) if !host_allowed(host, &inbound.external_hosts) => Err(ApiError::Forbidden(format!(
            "refusing Host {:?}: the console and admin API answer only to IP addresses, localhost, the listen \
             address and server.external_hosts (a browser sending another name may be under DNS rebinding)",
            clip(host)
        ))),
        _ => Ok(()),
    }
}

/// Whether a `Host` value (with or without port) is one the admin side answers to.
fn host_allowed(host: &str, external_hosts: &[String]) -> bool {
    let name = host_name(host);
    if name.is_empty() {
        return false;
    }
    // Any IP literal, the listen address's included.
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let under_localhost = name.len() > ".localhost".len()
        && name.is_char_boundary(name.len() - ".localhost".len())
        && name[name.len() - ".localhost".len()..].eq_ignore_ascii_case(".localhost");
    // `external_hosts` are stored lowercase.
    name.eq_ignore_ascii_case("localhost")
        || under_localhost
        || external_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(name))
}

/// The host part of a `Host` value: `[::1]:9098` → `::1`, `relay:9098` → `relay`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or("", |(ip, _)| ip);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// A header value as shown in an error: at most 64 characters of it.
fn clip(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(address: &str) -> Listener {
        Listener { local_addr: address.parse().unwrap() }
    }

    fn host(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, http::HeaderValue::from_static(value));
        headers
    }

    fn with_token() -> Inbound {
        let mut inbound = Inbound::default();
        inbound.auth.bearer = Some(crate::config::Secret::new("t"));
        inbound
    }

    #[test]
    fn ingest_and_scrape_endpoints_are_never_admin() {
        for path in ["/webhook", "/webhook/team-a", "/metrics", "/-/healthy", "/-/ready"] {
            assert!(!is_admin(path), "{path}");
        }
        for path in ["/", "/api/v1/status", "/api/v1/receivers/x", "/api/v1/deadletters/body", "/-/reload", "/webhookx"]
        {
            assert!(is_admin(path), "{path}");
        }
    }

    /// Regression (review): the shipped config listened on 0.0.0.0 with no credentials and the
    /// console's receivers API let anyone add a receiver.
    #[test]
    fn an_open_listener_without_credentials_closes_the_admin_side() {
        let open = listener("0.0.0.0:9098");
        let none = Inbound::default();
        let refused = guard(&open, &none, "/api/v1/receivers/x", &host("10.1.2.3:9098"), None).unwrap_err();
        assert!(matches!(&refused, ApiError::Forbidden(why) if why.contains("server.basic_auth_users")), "{refused:?}");
        assert!(guard(&open, &none, "/webhook", &host("10.1.2.3:9098"), None).is_ok());
        assert!(guard(&open, &with_token(), "/api/v1/receivers/x", &host("10.1.2.3:9098"), None).is_ok());
        assert!(
            guard(&listener("127.0.0.1:9098"), &none, "/api/v1/receivers/x", &host("127.0.0.1:9098"), None).is_ok()
        );
        assert!(guard(&listener("[::1]:9098"), &none, "/", &host("[::1]:9098"), None).is_ok());
    }

    /// A listener that requires and verifies client certificates authenticates every caller: its
    /// admin side stays open on any address (the credentials are the certificates).
    #[test]
    fn required_client_certificates_count_as_credentials() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["relay".to_owned()]).unwrap().self_signed(&key).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        let tls = |client_auth| crate::config::ServerTls { config: std::sync::Arc::new(config.clone()), client_auth };
        let open = listener("0.0.0.0:9098");
        let required =
            Inbound { tls: Some(tls(crate::config::ClientAuthType::RequireAndVerifyClientCert)), ..Inbound::default() };
        assert!(guard(&open, &required, "/api/v1/status", &host("10.1.2.3"), None).is_ok());
        // A certificate that is only verified when given lets anyone in without one: still closed.
        let optional =
            Inbound { tls: Some(tls(crate::config::ClientAuthType::VerifyClientCertIfGiven)), ..Inbound::default() };
        assert!(guard(&open, &optional, "/api/v1/status", &host("10.1.2.3"), None).is_err());
    }

    /// Regression (review): DNS rebinding passed the cross-site guard, which compared `Origin`
    /// with `Host` only.
    #[test]
    fn a_browser_host_name_must_be_one_the_relay_answers_to() {
        let local = listener("127.0.0.1:9098");
        let inbound = Inbound { external_hosts: vec!["amrelay.example.com".into()], ..Inbound::default() };
        for allowed in [
            "127.0.0.1:9098",
            "localhost:9098",
            "LOCALHOST",
            "console.localhost:1",
            "[::1]:9098",
            "10.0.0.7",
            "amrelay.example.com",
            "AMRELAY.example.com.:443",
        ] {
            assert!(guard(&local, &inbound, "/api/v1/status", &host(allowed), None).is_ok(), "{allowed}");
        }
        for refused in [
            "attacker.example:9098",
            "attacker.example",
            "localhost.attacker.example",
            "amrelay.example.com.attacker.example",
            "",
        ] {
            assert!(guard(&local, &inbound, "/api/v1/status", &host(refused), None).is_err(), "{refused}");
        }
        // Probes and Alertmanager call by any name.
        assert!(guard(&local, &inbound, "/webhook", &host("attacker.example"), None).is_ok());
        // HTTP/2 carries the host in the authority.
        assert!(guard(&local, &inbound, "/", &HeaderMap::new(), Some("attacker.example")).is_err());
        assert!(guard(&local, &inbound, "/", &HeaderMap::new(), None).is_ok());
    }
}
