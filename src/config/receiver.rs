//! One receiver of the config file or the console file, validated: its name, URL, headers,
//! auth, TLS, rule, retry and concurrency, against the defaults `delivery:` and `templates:` give
//! every receiver. [`super::validate`] checks the rest of the file.

use std::collections::HashSet;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use serde_saphyr::{Location, Spanned};

use super::issues::{Issues, min_version, pem_source, secret};
use super::raw::{RawConcurrency, RawHttpConfig, RawReceiver, RawRetry, RawTlsConfig};
use super::{Auth, Concurrency, Endpoint, ReceiverConfig, RetryPolicy, TlsSettings, TlsSummary};
use crate::rule::{Condition, ParserMode, Rule, parse_matchers_in};
use crate::tls::{self, ClientTlsOptions};

/// The ceiling of adaptive concurrency when none is set (Vector's is 200).
pub(super) const DEFAULT_ADAPTIVE_CONCURRENCY_CEILING: usize = 256;

/// Headers a user may not set through `headers:`, because amrelay owns them.
const RESERVED_HEADERS: [&str; 9] = [
    "authorization",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "user-agent",
    "idempotency-key",
    super::security::SIGNATURE_HEADER,
    super::security::TIMESTAMP_HEADER,
];

/// Validates a `receivers:` list (of the config file or the console file), names unique in it.
pub(super) fn receivers(
    issues: &mut Issues,
    raw: &[Spanned<RawReceiver>],
    defaults: &ReceiverDefaults,
    environment: &super::Environment,
) -> Vec<ReceiverConfig> {
    let mut names = HashSet::new();
    let mut receivers = Vec::new();
    for (index, spanned) in raw.iter().enumerate() {
        let field = format!("receivers[{index}]");
        let at = &spanned.referenced;
        if !names.insert(spanned.value.name.clone()) {
            issues.add(Some(at), format!("{field}.name"), format!("duplicate receiver name {:?}", spanned.value.name));
        }
        let tenant_label = defaults.tenant_label.as_deref();
        if let Some(receiver) = receiver(
            issues,
            &field,
            at,
            &spanned.value,
            (&defaults.defaults, tenant_label),
            environment,
            &defaults.templates,
        ) {
            receivers.push(receiver);
        }
    }
    receivers
}

/// What the config file's `delivery:` and `templates:` give every receiver, the console file's
/// included: its receivers are checked against the same defaults.
#[derive(Debug, Clone)]
pub struct ReceiverDefaults {
    defaults: Defaults,
    templates: super::template::Shared,
    /// `tenancy.label`, which a receiver's `tenant:` needs.
    tenant_label: Option<String>,
}

impl ReceiverDefaults {
    /// The defaults `delivery:` gives, with the shared templates of `templates:`.
    pub(super) fn new(
        queue_capacity: usize,
        max_concurrency: Concurrency,
        timeout: Duration,
        retry: RetryPolicy,
        templates: super::template::Shared,
        time_intervals: super::time_interval::TimeIntervals,
        tenant_label: Option<String>,
    ) -> ReceiverDefaults {
        ReceiverDefaults {
            defaults: Defaults { queue_capacity, max_concurrency, timeout, retry, time_intervals },
            templates,
            tenant_label,
        }
    }
}

#[derive(Debug, Clone)]
struct Defaults {
    queue_capacity: usize,
    max_concurrency: Concurrency,
    timeout: Duration,
    retry: RetryPolicy,
    /// The top-level `time_intervals:`, which receivers name.
    time_intervals: super::time_interval::TimeIntervals,
}

pub(super) fn positive<T: Copy + Default + PartialEq>(
    issues: &mut Issues,
    value: Option<&Spanned<T>>,
    field: &str,
    default: T,
) -> T {
    match value {
        Some(v) if v.value == T::default() => {
            issues.add(Some(&v.referenced), field, "must be greater than 0");
            default
        }
        Some(v) => v.value,
        None => default,
    }
}

/// `max_concurrency`: `adaptive` within `ceiling`, or a number greater than 0.
pub(super) fn concurrency(
    issues: &mut Issues,
    at: Option<&Location>,
    field: &str,
    value: RawConcurrency,
    ceiling: usize,
) -> Concurrency {
    match value {
        RawConcurrency::Adaptive => Concurrency::Adaptive { ceiling },
        RawConcurrency::Fixed(0) => {
            issues.add(at, field, "must be `adaptive` or a number greater than 0");
            Concurrency::Adaptive { ceiling }
        }
        RawConcurrency::Fixed(n) => Concurrency::Fixed(n),
    }
}

fn is_valid_receiver_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

pub(super) fn retry_policy(
    issues: &mut Issues,
    at: &Location,
    field: &str,
    base: RetryPolicy,
    raw: &RawRetry,
) -> RetryPolicy {
    let policy = RetryPolicy {
        max_attempts: raw.max_attempts.unwrap_or(base.max_attempts),
        initial_backoff: raw.initial_backoff.map_or(base.initial_backoff, |d| d.0),
        max_backoff: raw.max_backoff.map_or(base.max_backoff, |d| d.0),
        max_elapsed: raw.max_elapsed.map_or(base.max_elapsed, |d| d.0),
    };
    if policy.max_attempts == 0 {
        issues.add(Some(at), format!("{field}.max_attempts"), "must be at least 1");
    }
    if policy.initial_backoff.is_zero() {
        issues.add(Some(at), format!("{field}.initial_backoff"), "must be greater than 0");
    }
    if policy.max_backoff < policy.initial_backoff {
        issues.add(Some(at), format!("{field}.max_backoff"), "must not be less than initial_backoff");
    }
    if policy.max_elapsed.is_zero() {
        issues.add(Some(at), format!("{field}.max_elapsed"), "must be greater than 0");
    }
    policy
}

/// The endpoint of `history.export`: checked as a receiver named `history-export` would be
/// (URL or `url_file`, `http_config`, TLS, timeout), its errors named under `history.export`.
pub(super) fn export_endpoint(
    issues: &mut Issues,
    at: &Location,
    export: &mut super::raw::RawHistoryExport,
    defaults: &ReceiverDefaults,
    environment: &super::Environment,
) -> Option<super::Endpoint> {
    let mut raw: RawReceiver =
        serde_json::from_value(serde_json::json!({"name": "history-export"})).expect("a name is a whole receiver");
    raw.url = export.url.clone();
    raw.url_file = export.url_file.clone();
    raw.timeout = export.timeout;
    raw.http_config = std::mem::take(&mut export.http_config);
    let shared = &defaults.templates;
    receiver(issues, "history.export", at, &raw, (&defaults.defaults, None), environment, shared).map(|r| r.endpoint)
}

fn receiver(
    issues: &mut Issues,
    field: &str,
    at: &Location,
    raw: &RawReceiver,
    (defaults, tenant_label): (&Defaults, Option<&str>),
    environment: &super::Environment,
    shared_templates: &super::template::Shared,
) -> Option<ReceiverConfig> {
    let before = issues.list.len();
    if !is_valid_receiver_name(&raw.name) {
        issues.add(
            Some(at),
            format!("{field}.name"),
            format!("{:?} is not a valid receiver name: use letters, digits, '_', '-' and '.', starting with a letter or digit", raw.name),
        );
    }
    let (url, url_template) = match receiver_url(issues, field, at, raw) {
        Some((url, template)) => (Some(url), template),
        None => (None, None),
    };
    let timeout = raw.timeout.map_or(defaults.timeout, |d| d.0);
    if timeout.is_zero() {
        issues.add(Some(at), format!("{field}.timeout"), "must be greater than 0");
    }
    let retry = match &raw.retry {
        Some(r) => retry_policy(issues, at, &format!("{field}.retry"), defaults.retry, r),
        None => defaults.retry,
    };
    let queue_capacity = raw.queue_capacity.unwrap_or(defaults.queue_capacity);
    if queue_capacity == 0 {
        issues.add(Some(at), format!("{field}.queue_capacity"), "must be greater than 0");
    }
    if raw.adaptive_concurrency_ceiling == Some(0) {
        issues.add(Some(at), format!("{field}.adaptive_concurrency_ceiling"), "must be greater than 0");
    }
    let ceiling = match (raw.adaptive_concurrency_ceiling, defaults.max_concurrency) {
        (Some(c), _) if c > 0 => c,
        (_, Concurrency::Adaptive { ceiling }) => ceiling,
        (_, Concurrency::Fixed(_)) => DEFAULT_ADAPTIVE_CONCURRENCY_CEILING,
    };
    let max_concurrency = match raw.max_concurrency {
        Some(value) => concurrency(issues, Some(at), &format!("{field}.max_concurrency"), value, ceiling),
        // A ceiling bounds an inherited adaptive limit; a pinned number stays pinned.
        None => match defaults.max_concurrency {
            Concurrency::Adaptive { .. } => Concurrency::Adaptive { ceiling },
            fixed => fixed,
        },
    };

    let http = &raw.http_config;
    let mut headers = headers(issues, field, at, raw);
    headers.extend(super::http::http_headers(issues, field, http.http_headers.as_ref()));
    super::http::unsupported(issues, field, at, http);
    let auth = auth(issues, field, at, http, environment);
    let tls = tls_settings(issues, &format!("{field}.http_config.tls_config"), at, &http.tls_config);
    let mut rule = rule(issues, field, raw);
    let tenant = super::tenancy::receiver_tenant(issues, field, at, raw, tenant_label, &mut rule);
    let signing = super::security::signing(issues, field, raw.signing.as_ref());
    let proxy = super::http::proxy_settings(
        issues,
        &format!("{field}.http_config"),
        at,
        super::http::ProxyKeys {
            proxy_url: http.proxy_url.as_ref(),
            no_proxy: http.no_proxy.as_deref(),
            from_environment: http.proxy_from_environment,
            connect_header: &http.proxy_connect_header,
        },
        url.as_ref(),
        environment,
    );
    let templating = super::template::receiver(issues, field, raw, shared_templates);
    let thread = raw.thread.as_ref().map(|t| {
        let preset = raw.preset.as_ref().and_then(|p| crate::template::Preset::parse(&p.value));
        super::thread::check(issues, field, t, preset, url.as_ref())
    });
    // A preset's URL unlike its API (`Preset::url_hint`): a warning, the URL itself not shown.
    if let (Some(preset), Some(url)) = (raw.preset.as_ref(), url.as_ref())
        && let Some(hint) = crate::template::Preset::parse(&preset.value).and_then(|p| p.url_hint(url.path()))
    {
        issues.warn(Some(&preset.referenced), format!("{field}.url"), hint);
    }
    if let Some(Some(spec)) = &thread
        && spec.api == super::thread::ThreadApi::Slack
    {
        slack_web_api(issues, field, at, raw, templating.as_ref().is_some_and(|t| t.auth.is_some()), auth.as_ref());
    }

    let mute = super::mute::receiver_mute(
        issues,
        field,
        &raw.mute_time_intervals,
        &raw.active_time_intervals,
        raw.on_mute.as_ref(),
        &defaults.time_intervals,
    );

    if issues.list.len() > before {
        return None;
    }
    let templating = templating?;
    Some(ReceiverConfig {
        name: raw.name.clone(),
        tenant,
        enabled: raw.enabled,
        send_resolved: raw.send_resolved,
        max_alerts: raw.max_alerts,
        rule,
        queue_capacity,
        max_concurrency,
        endpoint: Endpoint {
            url: url?,
            headers,
            auth: templating.auth.or(auth)?,
            timeout,
            retry,
            tls: tls?,
            enable_http2: raw.http_config.enable_http2,
            follow_redirects: raw.http_config.follow_redirects,
            signing: signing?,
            proxy: proxy?,
            template: templating.renderer,
            rate_limit: templating.rate_limit,
            thread: thread.flatten(),
            url_template,
            guard: None,
        },
        mute,
    })
}

/// Slack's Web API needs a bot token and a channel; without either every post is refused.
fn slack_web_api(
    issues: &mut Issues,
    field: &str,
    at: &Location,
    raw: &RawReceiver,
    token_option: bool,
    auth: Option<&Auth>,
) {
    if !token_option && matches!(auth, Some(Auth::None)) {
        issues.add(
            Some(at),
            format!("{field}.preset_options.token_file"),
            "Slack's Web API needs a bot token: preset_options.token_file (or http_config.authorization)",
        );
    }
    let has_channel = raw.preset_options.as_ref().is_some_and(|o| o.value.contains_key("channel"));
    if !has_channel {
        issues.add(Some(at), format!("{field}.preset_options.channel"), "Slack's Web API needs the channel to post to");
    }
}

/// `url`, or the URL read from `url_file` (watched like every secret file); never both. A
/// mistake in a URL read from a file is reported without its text: it may carry a token. A URL
/// with templates in its path or query ([`crate::url_template`]) gives its origin and the
/// compiled template.
type TemplatedUrl = (Uri, Option<std::sync::Arc<crate::url_template::UrlTemplate>>);

fn receiver_url(issues: &mut Issues, field: &str, at: &Location, raw: &RawReceiver) -> Option<TemplatedUrl> {
    let (text, at, key) = match (&raw.url, &raw.url_file) {
        (Some(url), None) => (url.value.clone(), &url.referenced, "url"),
        (None, Some(file)) => {
            let text = issues.read_secret(&file.referenced, &format!("{field}.url_file"), &file.value)?;
            (text.expose().to_owned(), &file.referenced, "url_file")
        }
        (Some(url), Some(_)) => {
            issues.add(Some(&url.referenced), format!("{field}.url"), "url and url_file are mutually exclusive");
            return None;
        }
        (None, None) => {
            issues.add(Some(at), format!("{field}.url"), "one of url or url_file is required");
            return None;
        }
    };
    let field = format!("{field}.{key}");
    if crate::url_template::is_template(&text) {
        let template = match crate::url_template::UrlTemplate::compile(&text) {
            Ok(template) => template,
            Err(why) => {
                issues.add(Some(at), field, why);
                return None;
            }
        };
        let origin = checked_url(issues, &field, at, template.origin())?;
        // Checked once against a sample: a template that cannot render a URL is refused now.
        if let Err(why) = template.check(&crate::template::sample_notification()) {
            issues.add(Some(at), field, why);
            return None;
        }
        return Some((origin, Some(std::sync::Arc::new(template))));
    }
    checked_url(issues, &field, at, &text).map(|url| (url, None))
}

fn checked_url(issues: &mut Issues, field: &str, at: &Location, text: &str) -> Option<Uri> {
    let field = field.to_owned();
    match text.parse::<Uri>() {
        Ok(url) if url.authority().is_some_and(|a| a.as_str().contains('@')) => {
            issues.add(Some(at), field, "must not contain credentials: use http_config.basic_auth");
            None
        }
        Ok(url) if matches!(url.scheme_str(), Some("http" | "https")) && url.host().is_some() => Some(url),
        Ok(_) => {
            issues.add(Some(at), field, "must be an absolute http:// or https:// URL");
            None
        }
        Err(e) => {
            issues.add(Some(at), field, format!("invalid URL: {e}"));
            None
        }
    }
}

fn headers(issues: &mut Issues, field: &str, at: &Location, raw: &RawReceiver) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (name, value) in &raw.headers {
        let header_field = format!("{field}.headers.{name}");
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            (Ok(n), _) if RESERVED_HEADERS.contains(&n.as_str()) => {
                issues.add(
                    Some(at),
                    header_field,
                    "is set by amrelay and cannot be overridden (use http_config for auth)",
                );
            }
            (Ok(n), Ok(mut v)) => {
                // Custom headers often carry API keys: keep them out of Debug output.
                v.set_sensitive(true);
                out.push((n, v))
            }
            (Err(_), _) => issues.add(Some(at), header_field, "invalid header name"),
            (_, Err(_)) => issues.add(Some(at), header_field, "invalid header value"),
        }
    }
    out
}

fn auth(
    issues: &mut Issues,
    receiver_field: &str,
    at: &Location,
    http: &RawHttpConfig,
    environment: &super::Environment,
) -> Option<Auth> {
    let field = format!("{receiver_field}.http_config");
    let bearer = http.bearer_token.is_some() || http.bearer_token_file.is_some();
    let kinds = [http.basic_auth.is_some(), http.authorization.is_some(), http.oauth2.is_some(), bearer];
    if kinds.iter().filter(|k| **k).count() > 1 && (http.oauth2.is_some() || bearer) {
        issues.add(
            Some(at),
            field,
            "at most one of basic_auth, authorization, oauth2 and bearer_token/bearer_token_file may be set",
        );
        return None;
    }
    if let Some(oauth2) = &http.oauth2 {
        return super::http::oauth2(issues, receiver_field, oauth2, environment, tls_settings)
            .map(|c| Auth::OAuth2(Box::new(c)));
    }
    if bearer {
        let credentials = super::http::bearer_token(issues, receiver_field, at, http)?;
        return Some(Auth::Authorization { scheme: "Bearer".into(), credentials });
    }
    match (&http.basic_auth, &http.authorization) {
        (Some(_), Some(a)) => {
            issues.add(
                Some(&a.referenced),
                format!("{field}.authorization"),
                "basic_auth and authorization are mutually exclusive",
            );
            None
        }
        (Some(basic), None) => {
            let (at, raw) = (&basic.referenced, &basic.value);
            let field = format!("{field}.basic_auth");
            let username = match (&raw.username, &raw.username_file) {
                (Some(u), None) => Some(u.clone()),
                (None, Some(path)) => {
                    issues.read_secret(at, &format!("{field}.username_file"), path).map(|s| s.expose().to_owned())
                }
                (Some(_), Some(_)) => {
                    issues.add(
                        Some(at),
                        format!("{field}.username"),
                        "username and username_file are mutually exclusive",
                    );
                    None
                }
                (None, None) => {
                    issues.add(Some(at), format!("{field}.username"), "is required");
                    None
                }
            };
            let password =
                secret(issues, at, &field, ("password", &raw.password), ("password_file", &raw.password_file))?;
            Some(Auth::Basic { username: username?, password })
        }
        (None, Some(authorization)) => {
            let (at, raw) = (&authorization.referenced, &authorization.value);
            let field = format!("{field}.authorization");
            let scheme = raw.kind.clone().unwrap_or_else(|| "Bearer".into());
            if scheme.eq_ignore_ascii_case("basic") {
                issues.add(Some(at), format!("{field}.type"), "Basic is not allowed here: use basic_auth");
                return None;
            }
            if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                issues.add(Some(at), format!("{field}.type"), format!("{scheme:?} is not a valid scheme"));
                return None;
            }
            let credentials = secret(
                issues,
                at,
                &field,
                ("credentials", &raw.credentials),
                ("credentials_file", &raw.credentials_file),
            )?;
            Some(Auth::Authorization { scheme, credentials })
        }
        (None, None) => {
            let _ = at;
            Some(Auth::None)
        }
    }
}

/// `tls_config:` at `field` (the full path of the block).
pub(super) fn tls_settings(issues: &mut Issues, field: &str, at: &Location, raw: &RawTlsConfig) -> Option<TlsSettings> {
    let field = field.to_owned();
    let ca = pem_source(issues, at, &field, "ca", &raw.ca, &raw.ca_file)?;
    let cert = pem_source(issues, at, &field, "cert", &raw.cert, &raw.cert_file)?;
    let key = pem_source(issues, at, &field, "key", &raw.key, &raw.key_file)?;
    let min_version = min_version(issues, at, &field, raw.min_version.as_deref())?;
    let server_name = match raw.server_name.as_deref().map(rustls::pki_types::ServerName::try_from) {
        None => None,
        Some(Ok(name)) => Some(name.to_owned()),
        Some(Err(_)) => {
            issues.add(Some(at), format!("{field}.server_name"), "is not a valid DNS name or IP address");
            return None;
        }
    };
    let options = ClientTlsOptions { ca, cert, key, insecure_skip_verify: raw.insecure_skip_verify, min_version };
    let fingerprint = options.fingerprint(raw.server_name.as_deref());
    match tls::ClientTls::check(options) {
        Ok(client) => Some(TlsSettings {
            client,
            server_name,
            insecure_skip_verify: raw.insecure_skip_verify,
            fingerprint,
            summary: TlsSummary {
                ca: raw.ca_file.clone().or_else(|| raw.ca.as_ref().map(|_| "inline".into())),
                client_cert: raw.cert_file.clone().or_else(|| raw.cert.as_ref().map(|_| "inline".into())),
                server_name: raw.server_name.clone(),
                min_version: raw.min_version.clone().unwrap_or_else(|| "TLS12".into()),
                insecure_skip_verify: raw.insecure_skip_verify,
            },
        }),
        Err(e) => {
            issues.add(Some(at), field, e);
            None
        }
    }
}

fn rule(issues: &mut Issues, field: &str, raw: &RawReceiver) -> Rule {
    let mut rule = Rule::default();
    for (index, spanned) in raw.conditions.iter().enumerate() {
        let (at, c) = (&spanned.referenced, &spanned.value);
        let field = format!("{field}.conditions[{index}]");
        match Condition::parse(&c.label, c.operator, &c.values) {
            Ok(condition) => rule.conditions.push(condition),
            Err(errors) => {
                for e in errors {
                    issues.add(Some(at), format!("{field}.{}", e.field), e.message);
                }
            }
        }
    }
    for (index, spanned) in raw.matchers.iter().enumerate() {
        match parse_matchers_in(ParserMode::Fallback, &spanned.value) {
            Ok(parsed) => {
                if let Some(warning) = parsed.warning {
                    issues.warn(Some(&spanned.referenced), format!("{field}.matchers[{index}]"), warning);
                }
                rule.matchers.extend(parsed.matchers)
            }
            Err(e) => issues.add(
                Some(&spanned.referenced),
                format!("{field}.matchers[{index}]"),
                format!("matcher {:?}: {e}", spanned.value),
            ),
        }
    }
    rule
}
