//! The serde-facing shape of the YAML file: exactly what a user may write, with defaults and
//! `deny_unknown_fields` so that a typo is an error rather than a silently ignored key.
//!
//! Nothing here is trusted by the runtime; [`super::validate`] turns it into [`super::Config`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use super::duration::PromDuration;
use crate::rule::Operator;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub delivery: RawDelivery,
    pub receivers: Vec<Spanned<RawReceiver>>,
    /// Files of shared template macros (globs, relative to the config file).
    pub templates: Vec<Spanned<String>>,
    /// `console:` — what receivers edited in the console may do.
    pub console: Option<Spanned<RawConsole>>,
    /// Named sets of time intervals, as Alertmanager's (see [`super::time_interval`]).
    pub time_intervals: Vec<Spanned<super::time_interval::RawTimeIntervalSet>>,
    /// Alertmanager's older spelling of `time_intervals` (deprecated there, still read): the two
    /// lists are one, names unique across both.
    pub mute_time_intervals: Vec<Spanned<super::time_interval::RawTimeIntervalSet>>,
    /// `tenancy:` — the tenant label, and what editors' receivers may reach.
    pub tenancy: Option<Spanned<RawTenancy>>,
    /// `history:` — the record of every finished notification.
    pub history: Option<Spanned<RawHistory>>,
}

/// `tenancy:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTenancy {
    /// The label whose value is an alert's tenant (e.g. `namespace`).
    pub label: Option<String>,
    /// Receivers saved by an editor may reach private ranges (never loopback or link-local).
    pub allow_private_networks: bool,
    /// Host globs (`*.slack.com`) receivers saved by an editor are restricted to, when set.
    pub allowed_hosts: Vec<String>,
}

/// One entry of `server.access` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAccessRule {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    /// `admin`, `editor`, `viewer` or `sender`: parsed by `super::access`.
    pub role: Option<String>,
    pub tenants: Vec<String>,
}

/// `server.auth_proxy` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuthProxy {
    pub user_header: Option<String>,
    pub groups_header: Option<String>,
    pub trusted_cidrs: Vec<String>,
}

/// `history:` — whether finished notifications are recorded, and for how long.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHistory {
    pub enabled: Option<bool>,
    pub retention: Option<PromDuration>,
    pub max_bytes: Option<u64>,
    pub export: Option<Spanned<RawHistoryExport>>,
}

/// `history.export:` — where records are posted as they are written, in batches.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHistoryExport {
    pub url: Option<Spanned<String>>,
    pub url_file: Option<Spanned<String>>,
    pub http_config: RawHttpConfig,
    pub timeout: Option<PromDuration>,
    pub batch_max_events: Option<usize>,
    pub flush_interval: Option<PromDuration>,
}

/// `console:` — limits on receivers edited in the console.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConsole {
    /// Folders whose files a console receiver may name (`ca_file`, `password_file` …); none by
    /// default, so a console receiver reads no file on the relay.
    pub allowed_file_dirs: Vec<String>,
    /// Receivers the console file may hold.
    pub max_receivers: Option<usize>,
}

/// The console file (`--config.console-file`): receivers only, of the same schema.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConsoleFile {
    pub receivers: Vec<Spanned<RawReceiver>>,
}

/// `server:` — the inbound listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen_address: Option<Spanned<String>>,
    pub max_request_bytes: Option<Spanned<u64>>,
    pub tls_server_config: Option<Spanned<RawTlsServerConfig>>,
    pub basic_auth_users: Option<Spanned<BTreeMap<String, String>>>,
    pub authorization: Option<Spanned<RawAuthorization>>,
    pub open_endpoints: Option<Spanned<Vec<String>>>,
    pub limits: Option<Spanned<RawLimits>>,
    /// Host names (besides the listen address, IP literals and `localhost`) that browsers may use
    /// to reach the console and the admin API.
    pub external_hosts: Option<Spanned<Vec<String>>>,
    /// `server.grafana`: how Grafana's webhook contact point signs what it posts.
    pub grafana: Option<Spanned<RawGrafana>>,
    /// `server.access`: roles over tenants, checked by `super::access`.
    pub access: Option<Spanned<Vec<RawAccessRule>>>,
    /// `server.auth_proxy`: the user (and groups) an authenticating proxy vouches for.
    pub auth_proxy: Option<Spanned<RawAuthProxy>>,
}

/// `server.grafana:` — the HMAC signature of Grafana's webhook contact point.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawGrafana {
    pub hmac_secret: Option<String>,
    pub hmac_secret_file: Option<String>,
    pub signature_header: Option<String>,
    pub timestamp_header: Option<String>,
    pub max_age: Option<PromDuration>,
}

/// `delivery:` — defaults for every receiver's queue, timeout and retry policy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDelivery {
    pub queue_capacity: Option<Spanned<usize>>,
    pub max_concurrency: Option<Spanned<RawConcurrency>>,
    pub adaptive_concurrency_ceiling: Option<Spanned<usize>>,
    pub timeout: Option<Spanned<PromDuration>>,
    pub retry: Option<Spanned<RawRetry>>,
    pub spool: Option<Spanned<RawSpool>>,
    pub nats: Option<Spanned<RawNats>>,
    pub dedup_window: Option<Spanned<PromDuration>>,
    pub dedup_key_file: Option<Spanned<String>>,
    pub max_dead_letters: Option<Spanned<usize>>,
    pub max_dead_letter_bytes: Option<Spanned<u64>>,
}

/// `delivery.spool:` — where accepted notifications are kept until delivered.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSpool {
    pub path: Option<String>,
    pub max_bytes: Option<u64>,
    pub memory_window_bytes: Option<u64>,
    pub group_commit: Option<bool>,
}

/// `retry:` — at delivery level or as a per-receiver override; unset keys inherit.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetry {
    pub max_attempts: Option<u32>,
    pub initial_backoff: Option<PromDuration>,
    pub max_backoff: Option<PromDuration>,
    pub max_elapsed: Option<PromDuration>,
}

fn yes() -> bool {
    true
}

/// One entry of `receivers:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    pub name: String,
    /// `tenant:` — only alerts of this tenant (`tenancy.label`); checked by `super::tenancy`.
    #[serde(default)]
    pub tenant: Option<Spanned<String>>,
    /// Exactly one of `url` and `url_file` (a file holding the URL, as Alertmanager's
    /// `webhook_config.url_file`: the URL often carries a token).
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub url_file: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default)]
    pub max_alerts: usize,
    #[serde(default)]
    pub timeout: Option<PromDuration>,
    #[serde(default)]
    pub retry: Option<RawRetry>,
    #[serde(default)]
    pub queue_capacity: Option<usize>,
    #[serde(default)]
    pub max_concurrency: Option<RawConcurrency>,
    #[serde(default)]
    pub adaptive_concurrency_ceiling: Option<usize>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub http_config: RawHttpConfig,
    #[serde(default)]
    pub conditions: Vec<Spanned<RawCondition>>,
    #[serde(default)]
    pub matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub signing: Option<Spanned<RawSigning>>,
    // Templates and rate limit: parsed and checked by `super::template`.
    #[serde(default)]
    pub payload: Option<Spanned<super::template_raw::RawNode>>,
    #[serde(default)]
    pub body: Option<Spanned<String>>,
    #[serde(default)]
    pub content_type: Option<Spanned<String>>,
    #[serde(default)]
    pub preset: Option<Spanned<String>>,
    #[serde(default)]
    pub preset_options: Option<Spanned<BTreeMap<String, Spanned<super::template_raw::RawNode>>>>,
    #[serde(default)]
    pub rate_limit: Option<Spanned<super::template_raw::RawRateLimit>>,
    /// `thread:`: checked by `super::thread`.
    #[serde(default)]
    pub thread: Option<Spanned<super::thread::RawThread>>,
    /// Quiet hours (names of `time_intervals`) and what muting does: checked by `super::mute`.
    #[serde(default)]
    pub mute_time_intervals: Vec<Spanned<String>>,
    #[serde(default)]
    pub active_time_intervals: Vec<Spanned<String>>,
    #[serde(default)]
    pub on_mute: Option<Spanned<String>>,
}

/// Every key of Alertmanager's `http_config`; [`super::http`] refuses, by name, the few amrelay
/// does not support.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttpConfig {
    pub basic_auth: Option<Spanned<RawBasicAuth>>,
    pub authorization: Option<Spanned<RawAuthorization>>,
    pub oauth2: Option<Spanned<RawOAuth2>>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub tls_config: RawTlsConfig,
    pub follow_redirects: bool,
    pub enable_http2: bool,
    pub proxy_url: Option<Spanned<String>>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: bool,
    pub proxy_connect_header: BTreeMap<String, Vec<String>>,
    pub http_headers: Option<Spanned<BTreeMap<String, RawHeader>>>,
}

impl Default for RawHttpConfig {
    fn default() -> Self {
        RawHttpConfig {
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: RawTlsConfig::default(),
            // Alertmanager follows redirects by default; amrelay does not (see docs/security.md).
            follow_redirects: false,
            enable_http2: true,
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: false,
            proxy_connect_header: BTreeMap::new(),
            http_headers: None,
        }
    }
}

/// `http_config.oauth2:` — the client-credentials grant, as Prometheus' `common/config.OAuth2`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOAuth2 {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub scopes: Vec<String>,
    pub token_url: Option<String>,
    pub endpoint_params: BTreeMap<String, String>,
    pub tls_config: RawTlsConfig,
    pub proxy_url: Option<Spanned<String>>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: bool,
    pub proxy_connect_header: BTreeMap<String, Vec<String>>,
    pub grant_type: Option<String>,
    /// Recognised so that they can be refused by name (see [`super::http`]).
    pub client_secret_ref: Option<IgnoredAny>,
    pub client_certificate_key_id: Option<IgnoredAny>,
    pub client_certificate_key: Option<IgnoredAny>,
    pub client_certificate_key_file: Option<IgnoredAny>,
    pub client_certificate_key_ref: Option<IgnoredAny>,
    pub signature_algorithm: Option<IgnoredAny>,
    pub iss: Option<IgnoredAny>,
    pub audience: Option<IgnoredAny>,
    pub claims: Option<IgnoredAny>,
}

/// One entry of `http_config.http_headers:` (Alertmanager 0.28+).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHeader {
    pub values: Vec<String>,
    pub secrets: Vec<String>,
    pub files: Vec<String>,
}

/// `basic_auth:` as in Alertmanager: the password inline or from a file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBasicAuth {
    pub username: Option<String>,
    pub username_file: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub username_ref: Option<IgnoredAny>,
    pub password_ref: Option<IgnoredAny>,
}

/// `authorization:` as in Alertmanager: `type` defaults to `Bearer`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuthorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
    pub credentials_ref: Option<IgnoredAny>,
    /// `server.authorization.user`: the user the bearer token acts as (refused elsewhere).
    pub user: Option<String>,
}

/// `tls_config:` as in Alertmanager.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTlsConfig {
    pub ca: Option<String>,
    pub ca_file: Option<String>,
    pub cert: Option<String>,
    pub cert_file: Option<String>,
    pub key: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub min_version: Option<String>,
    pub max_version: Option<IgnoredAny>,
    pub ca_ref: Option<IgnoredAny>,
    pub cert_ref: Option<IgnoredAny>,
    pub key_ref: Option<IgnoredAny>,
}

/// One label condition, in the Kubernetes label-selector form KubeSphere uses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    pub label: String,
    /// Spelled and parsed by [`crate::rule`], which owns the operators.
    pub operator: Operator,
    #[serde(default)]
    pub values: Vec<String>,
}

/// `server.tls_server_config:`, as in Prometheus' web configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTlsServerConfig {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_ca_file: Option<String>,
    pub client_auth_type: Option<String>,
    pub min_version: Option<String>,
}

/// `server.limits:` — what one client may cost the listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub header_read_timeout: Option<PromDuration>,
    pub idle_timeout: Option<PromDuration>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub max_alerts_per_batch: Option<usize>,
    pub max_json_depth: Option<usize>,
    pub max_labels_per_alert: Option<usize>,
    pub max_group_key_bytes: Option<usize>,
    pub max_memory_bytes: Option<u64>,
}

/// `receivers[].signing:` — the HMAC key, inline or from a file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSigning {
    pub secret: Option<String>,
    pub secret_file: Option<String>,
}

/// `delivery.nats:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNats {
    pub urls: Vec<String>,
    pub stream: Option<String>,
    pub replicas: Option<usize>,
    pub duplicate_window: Option<PromDuration>,
    pub max_bytes: Option<u64>,
    pub ack_wait: Option<PromDuration>,
    pub partitions: Option<u32>,
    pub credentials_file: Option<String>,
    pub token_file: Option<String>,
    pub user: Option<String>,
    pub password_file: Option<String>,
    pub tls_config: Option<RawTlsConfig>,
}

/// `max_concurrency:` as written: `adaptive` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawConcurrency {
    Adaptive,
    Fixed(usize),
}

impl<'de> Deserialize<'de> for RawConcurrency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawConcurrency;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`adaptive` or a number of deliveries in flight")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawConcurrency, E> {
                usize::try_from(v).map(RawConcurrency::Fixed).map_err(|_| E::custom("too large"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawConcurrency, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("must be `adaptive` or a number greater than 0"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawConcurrency, E> {
                match v {
                    "adaptive" => Ok(RawConcurrency::Adaptive),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
