//! The rest of Alertmanager's `http_config` (Prometheus' `common/config.HTTPClientConfig`), as
//! Alertmanager spells it: `oauth2`, `http_headers`, `proxy_from_environment`, `no_proxy`,
//! `proxy_connect_header`, `follow_redirects`, `bearer_token`/`bearer_token_file`, and every key
//! amrelay does not support, each refused with a message that says so (a key silently ignored
//! would send notifications other than the user means).
//!
//! Pure, as all of config: the proxy variables come from the [`Environment`] the loader passes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::{HeaderName, HeaderValue, Uri};
use serde_saphyr::{Location, Spanned};

use super::environment::Environment;
use super::issues::{Issues, secret};
use super::raw::{RawHeader, RawHttpConfig, RawOAuth2, RawTlsConfig};
use super::security::Proxy;
use super::{Secret, TlsSettings};

/// The keys of `http_config` (and its `tls_config`/`basic_auth`/`authorization`) that Prometheus
/// defines and amrelay refuses, with why. Read by [`unsupported`] and docs/configuration.md.
pub const UNSUPPORTED: &[(&str, &str)] = &[
    ("basic_auth.username_ref", "secret-manager references are not supported; use username or username_file"),
    ("basic_auth.password_ref", "secret-manager references are not supported; use password or password_file"),
    (
        "authorization.credentials_ref",
        "secret-manager references are not supported; use credentials or credentials_file",
    ),
    ("tls_config.ca_ref", "secret-manager references are not supported; use ca or ca_file"),
    ("tls_config.cert_ref", "secret-manager references are not supported; use cert or cert_file"),
    ("tls_config.key_ref", "secret-manager references are not supported; use key or key_file"),
    ("tls_config.max_version", "amrelay always allows up to TLS 1.3; use min_version to restrict"),
    ("authorization.user", "only server.authorization names the user its token acts as"),
];

/// Refuses, by name, every key of Alertmanager's `http_config` that amrelay does not support.
pub(super) fn unsupported(issues: &mut Issues, field: &str, at: &Location, raw: &RawHttpConfig) {
    let present = [
        raw.basic_auth.as_ref().is_some_and(|b| b.value.username_ref.is_some()),
        raw.basic_auth.as_ref().is_some_and(|b| b.value.password_ref.is_some()),
        raw.authorization.as_ref().is_some_and(|a| a.value.credentials_ref.is_some()),
        raw.tls_config.ca_ref.is_some(),
        raw.tls_config.cert_ref.is_some(),
        raw.tls_config.key_ref.is_some(),
        raw.tls_config.max_version.is_some(),
        raw.authorization.as_ref().is_some_and(|a| a.value.user.is_some()),
    ];
    for ((key, why), present) in UNSUPPORTED.iter().zip(present) {
        if present {
            issues.add(Some(at), format!("{field}.http_config.{key}"), format!("not supported by amrelay: {why}"));
        }
    }
}

fn unsupported_oauth2(issues: &mut Issues, field: &str, at: &Location, raw: &RawOAuth2) {
    let jwt = "only the client_credentials grant is supported (not the JWT bearer grant)";
    for (key, present, why) in [
        ("client_secret_ref", raw.client_secret_ref.is_some(), "secret-manager references are not supported"),
        ("client_certificate_key_id", raw.client_certificate_key_id.is_some(), jwt),
        ("client_certificate_key", raw.client_certificate_key.is_some(), jwt),
        ("client_certificate_key_file", raw.client_certificate_key_file.is_some(), jwt),
        ("client_certificate_key_ref", raw.client_certificate_key_ref.is_some(), jwt),
        ("signature_algorithm", raw.signature_algorithm.is_some(), jwt),
        ("iss", raw.iss.is_some(), jwt),
        ("audience", raw.audience.is_some(), jwt),
        ("claims", raw.claims.is_some(), jwt),
    ] {
        if present {
            issues.add(Some(at), format!("{field}.{key}"), format!("not supported by amrelay: {why}"));
        }
    }
    if raw.grant_type.as_deref().is_some_and(|g| !g.is_empty() && g != "client_credentials") {
        issues.add(Some(at), format!("{field}.grant_type"), format!("not supported by amrelay: {jwt}"));
    }
    if raw.tls_config.ca_ref.is_some() || raw.tls_config.cert_ref.is_some() || raw.tls_config.key_ref.is_some() {
        issues.add(
            Some(at),
            format!("{field}.tls_config"),
            "not supported by amrelay: secret-manager references (ca_ref, cert_ref, key_ref)",
        );
    }
    if raw.tls_config.max_version.is_some() {
        issues.add(Some(at), format!("{field}.tls_config.max_version"), "not supported by amrelay");
    }
}

/// The validated `oauth2:` block: what [`crate::deliver::oauth2`] needs to fetch tokens.
#[derive(Debug, Clone)]
pub struct OAuth2Config {
    pub client_id: String,
    pub client_secret: Secret,
    pub token_url: Uri,
    pub scopes: Vec<String>,
    /// Extra form parameters of the token request, in name order.
    pub endpoint_params: Vec<(String, String)>,
    /// TLS towards the token endpoint (its own `tls_config`).
    pub tls: TlsSettings,
    /// Proxy towards the token endpoint (its own `proxy_url`/`proxy_from_environment`).
    pub proxy: Option<Proxy>,
    /// Hash of everything above, secret included: an unchanged block keeps its token on reload.
    pub fingerprint: u64,
    /// The receiver's outbound guard (a tenant's console receiver): the token endpoint is reached
    /// under the same rules.
    pub guard: Option<std::sync::Arc<super::tenancy::OutboundGuard>>,
}

impl PartialEq for OAuth2Config {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

/// Validates a `tls_config` block at a field path (passed in: it lives with the rest of TLS
/// validation, which uses this module).
pub(super) type TlsSettingsFn = fn(&mut Issues, &str, &Location, &RawTlsConfig) -> Option<TlsSettings>;

/// Validates `http_config.oauth2`.
pub(super) fn oauth2(
    issues: &mut Issues,
    field: &str,
    spanned: &Spanned<RawOAuth2>,
    environment: &Environment,
    tls_settings: TlsSettingsFn,
) -> Option<OAuth2Config> {
    let (at, raw) = (&spanned.referenced, &spanned.value);
    let field = format!("{field}.http_config.oauth2");
    let before = issues.len();
    unsupported_oauth2(issues, &field, at, raw);
    let client_id = raw.client_id.clone().unwrap_or_default();
    if client_id.is_empty() {
        issues.add(Some(at), format!("{field}.client_id"), "is required");
    }
    let client_secret = secret(
        issues,
        at,
        &field,
        ("client_secret", &raw.client_secret),
        ("client_secret_file", &raw.client_secret_file),
    );
    let token_url = match raw.token_url.as_deref().map(str::parse::<Uri>) {
        None => {
            issues.add(Some(at), format!("{field}.token_url"), "is required");
            None
        }
        Some(Ok(url))
            if matches!(url.scheme_str(), Some("http" | "https"))
                && url.host().is_some()
                && !url.authority().is_some_and(|a| a.as_str().contains('@')) =>
        {
            Some(url)
        }
        Some(Ok(_)) => {
            issues.add(
                Some(at),
                format!("{field}.token_url"),
                "must be an absolute http:// or https:// URL without credentials",
            );
            None
        }
        Some(Err(e)) => {
            issues.add(Some(at), format!("{field}.token_url"), format!("invalid URL: {e}"));
            None
        }
    };
    let mut endpoint_params = Vec::new();
    for (name, value) in &raw.endpoint_params {
        // As golang.org/x/oauth2: only grant_type may be overridden.
        if matches!(name.as_str(), "scope" | "client_id" | "client_secret") {
            issues.add(
                Some(at),
                format!("{field}.endpoint_params.{name}"),
                "cannot overwrite a parameter the token request sets",
            );
        } else {
            endpoint_params.push((name.clone(), value.clone()));
        }
    }
    let tls = tls_settings(issues, &format!("{field}.tls_config"), at, &raw.tls_config);
    let proxy = proxy_settings(
        issues,
        &field,
        at,
        ProxyKeys {
            proxy_url: raw.proxy_url.as_ref(),
            no_proxy: raw.no_proxy.as_deref(),
            from_environment: raw.proxy_from_environment,
            connect_header: &raw.proxy_connect_header,
        },
        token_url.as_ref(),
        environment,
    );
    if issues.len() > before {
        return None;
    }
    let (client_secret, token_url, tls, proxy) = (client_secret?, token_url?, tls?, proxy?);
    let fingerprint = crate::fingerprint::fnv1a(
        format!(
            "{client_id}\0{}\0{token_url}\0{:?}\0{endpoint_params:?}\0{}\0{:?}",
            client_secret.expose(),
            raw.scopes,
            tls.fingerprint,
            proxy.as_ref().map(|p| (p.url.to_string(), p.authorization.as_ref().map(|a| a.expose().to_owned()))),
        )
        .as_bytes(),
    );
    Some(OAuth2Config {
        client_id,
        client_secret,
        token_url,
        scopes: raw.scopes.clone(),
        endpoint_params,
        tls,
        proxy,
        fingerprint,
        guard: None,
    })
}

/// Headers Prometheus refuses in `http_headers` (`common/config.ReservedHeaders`), lowercased,
/// plus `transfer-encoding`, which amrelay sets.
const RESERVED: &[&str] = &[
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-prometheus-scrape-timeout-seconds",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "transfer-encoding",
    "idempotency-key",
];

/// `http_config.http_headers`: per header, `values` as written, `secrets` and `files` (read
/// now, white space trimmed, and watched like every file the config names) kept out of logs.
pub(super) fn http_headers(
    issues: &mut Issues,
    field: &str,
    spanned: Option<&Spanned<BTreeMap<String, RawHeader>>>,
) -> Vec<(HeaderName, HeaderValue)> {
    let Some(spanned) = spanned else { return Vec::new() };
    let at = &spanned.referenced;
    let mut out = Vec::new();
    for (name, header) in &spanned.value {
        let header_field = format!("{field}.http_config.http_headers.{name}");
        let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
            issues.add(Some(at), header_field, "invalid header name");
            continue;
        };
        if RESERVED.contains(&header_name.as_str()) {
            issues.add(Some(at), header_field, "setting this header is not allowed (Alertmanager refuses it too)");
            continue;
        }
        let mut add = |issues: &mut Issues, value: &str, sensitive: bool, what: String| {
            match HeaderValue::from_str(value) {
                Ok(mut v) => {
                    v.set_sensitive(sensitive);
                    out.push((header_name.clone(), v));
                }
                // Never echo the value: it may be a secret.
                Err(_) => issues.add(Some(at), what, "is not a valid header value"),
            }
        };
        for (i, value) in header.values.iter().enumerate() {
            add(issues, value, false, format!("{header_field}.values[{i}]"));
        }
        for (i, value) in header.secrets.iter().enumerate() {
            add(issues, value, true, format!("{header_field}.secrets[{i}]"));
        }
        for (i, path) in header.files.iter().enumerate() {
            let what = format!("{header_field}.files[{i}]");
            if let Some(secret) = issues.read_secret(at, &what, path) {
                add(issues, secret.expose(), true, what);
            }
        }
    }
    out
}

/// `bearer_token`/`bearer_token_file`: the deprecated spelling of `authorization` (type Bearer).
pub(super) fn bearer_token(issues: &mut Issues, field: &str, at: &Location, raw: &RawHttpConfig) -> Option<Secret> {
    if raw.bearer_token.is_none() && raw.bearer_token_file.is_none() {
        return None;
    }
    let field = format!("{field}.http_config");
    secret(issues, at, &field, ("bearer_token", &raw.bearer_token), ("bearer_token_file", &raw.bearer_token_file))
}

/// The proxy keys of one `http_config` or `oauth2` block.
pub(super) struct ProxyKeys<'a> {
    pub proxy_url: Option<&'a Spanned<String>>,
    pub no_proxy: Option<&'a str>,
    pub from_environment: bool,
    pub connect_header: &'a BTreeMap<String, Vec<String>>,
}

/// Which proxy, if any, requests to `destination` go through: `proxy_url` (unless `no_proxy`
/// exempts the destination), or the environment's `HTTPS_PROXY`/`HTTP_PROXY` and `NO_PROXY`
/// with `proxy_from_environment`, decided as Go's `httpproxy` decides (localhost and loopback
/// addresses never go through a proxy chosen that way). `Some(None)`: no proxy; `None`: error.
pub(super) fn proxy_settings(
    issues: &mut Issues,
    field: &str,
    at: &Location,
    keys: ProxyKeys<'_>,
    destination: Option<&Uri>,
    environment: &Environment,
) -> Option<Option<Proxy>> {
    let before = issues.len();
    if keys.from_environment && keys.proxy_url.is_some() {
        issues.add(Some(at), format!("{field}.proxy_from_environment"), "proxy_url must not be set with it");
    }
    if keys.from_environment && keys.no_proxy.is_some() {
        issues.add(Some(at), format!("{field}.no_proxy"), "must not be set with proxy_from_environment");
    }
    if keys.proxy_url.is_none() && !keys.from_environment && keys.no_proxy.is_some() {
        issues.add(Some(at), format!("{field}.no_proxy"), "needs proxy_url");
    }
    if !keys.connect_header.is_empty() && keys.proxy_url.is_none() && !keys.from_environment {
        issues.add(Some(at), format!("{field}.proxy_connect_header"), "needs proxy_url or proxy_from_environment");
    }
    let mut connect_headers = Vec::new();
    for (name, values) in keys.connect_header {
        let what = format!("{field}.proxy_connect_header.{name}");
        let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
            issues.add(Some(at), what, "invalid header name");
            continue;
        };
        for value in values {
            match HeaderValue::from_str(value) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    connect_headers.push((header_name.clone(), v));
                }
                Err(_) => issues.add(Some(at), what.clone(), "is not a valid header value"),
            }
        }
    }
    if issues.len() > before {
        return None;
    }
    let (proxy, no_proxy) = if keys.from_environment {
        let Some(destination) = destination else { return Some(None) };
        let env = |upper: &str, lower: &str| {
            environment.get(upper).or_else(|| environment.get(lower)).filter(|v| !v.is_empty()).map(str::to_owned)
        };
        let (name, url) = if destination.scheme_str() == Some("https") {
            ("HTTPS_PROXY", env("HTTPS_PROXY", "https_proxy"))
        } else {
            ("HTTP_PROXY", env("HTTP_PROXY", "http_proxy"))
        };
        let Some(url) = url else { return Some(None) };
        // As Go: a proxy given without a scheme is an http:// one.
        let url = if url.contains("://") { url } else { format!("http://{url}") };
        let field = format!("{field}.proxy_from_environment ({name})");
        let spanned = Spanned { value: url, referenced: *at, defined: *at };
        let proxy = super::security::proxy_url(issues, &field, &spanned)?;
        (proxy, Some(env("NO_PROXY", "no_proxy").unwrap_or_default()))
    } else {
        let Some(spanned) = keys.proxy_url else { return Some(None) };
        let proxy = super::security::proxy_url(issues, &format!("{field}.proxy_url"), spanned)?;
        (proxy, keys.no_proxy.map(str::to_owned))
    };
    if let (Some(no_proxy), Some(destination)) = (no_proxy, destination)
        && bypasses_proxy(&no_proxy, destination)
    {
        return Some(None);
    }
    Some(Some(Proxy { connect_headers, ..proxy }))
}

/// Whether Go's `httpproxy` (used by Prometheus' `ProxyConfig` whenever `no_proxy` or the
/// environment is involved) sends `destination` directly: localhost and loopback addresses
/// always, and whatever `no_proxy` lists — `*`, IP addresses and CIDR ranges, and domains
/// (`example.com` matches it and its subdomains, `.example.com` and `*.example.com` only the
/// subdomains), each optionally with `:port`.
pub fn bypasses_proxy(no_proxy: &str, destination: &Uri) -> bool {
    let Some(host) = destination.host() else { return true };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let port =
        destination.port_u16().unwrap_or(if destination.scheme_str() == Some("https") { 443 } else { 80 }).to_string();
    let ip = host.parse::<IpAddr>().ok();
    if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
        return true;
    }
    for entry in no_proxy.split(',') {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.is_empty() {
            continue;
        }
        if entry == "*" {
            return true;
        }
        if let Some((network, bits)) = entry.split_once('/') {
            if let (Ok(network), Ok(bits), Some(ip)) = (network.parse::<IpAddr>(), bits.parse::<u8>(), ip)
                && super::access::in_cidr(ip, network, bits)
            {
                return true;
            }
            continue;
        }
        let (entry_host, entry_port) = split_host_port(&entry);
        if let Ok(entry_ip) = entry_host.parse::<IpAddr>() {
            if ip == Some(entry_ip) && entry_port.is_none_or(|p| p == port) {
                return true;
            }
            continue;
        }
        let entry_host = entry_host.strip_prefix('*').unwrap_or(entry_host);
        let (suffix, exact) = match entry_host.strip_prefix('.') {
            Some(_) => (entry_host.to_owned(), None),
            None => (format!(".{entry_host}"), Some(entry_host)),
        };
        if (host.ends_with(&suffix) || exact == Some(host.as_str())) && entry_port.is_none_or(|p| p == port) {
            return true;
        }
    }
    false
}

fn split_host_port(entry: &str) -> (&str, Option<&str>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => (host, Some(port)),
        _ => (entry, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from golang.org/x/net/http/httpproxy's `proxy_test.go` (`TestUseProxy` and the
    /// `NO_PROXY` table), as facts.
    #[test]
    fn no_proxy_matches_as_go_httpproxy_does() {
        let no_proxy = "foobar.com, .barbaz.net, *.foobaz.org, 10.0.0.0/8, 192.168.1.1, 2001:db8::/32, \
                        [2002:db8:1::1]:8080, example.org:8443";
        let direct = |url: &str| bypasses_proxy(no_proxy, &url.parse().unwrap());
        for url in [
            "http://localhost/",
            "http://127.0.0.1:9093/",
            "http://[::1]/",
            "http://foobar.com/",
            "http://www.foobar.com/",
            "http://www.barbaz.net/",
            "http://x.foobaz.org/",
            "http://10.1.2.3/",
            "http://192.168.1.1/",
            "http://[2001:db8::5]/",
            "https://[2002:db8:1::1]:8080/",
            "https://example.org:8443/",
        ] {
            assert!(direct(url), "{url} goes direct");
        }
        for url in [
            "http://barfoobar.com/",
            "http://barbaz.net/",
            "http://foobaz.org/",
            "http://11.0.0.1/",
            "http://192.168.1.2/",
            "https://[2002:db8:1::1]/",
            "https://example.org/",
            "http://example.com/",
        ] {
            assert!(!direct(url), "{url} goes through the proxy");
        }
        assert!(bypasses_proxy("*", &"https://anything.example/".parse().unwrap()));
        assert!(!bypasses_proxy("", &"https://anything.example/".parse().unwrap()));
    }
}
