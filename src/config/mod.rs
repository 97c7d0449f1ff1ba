//! Configuration: the YAML file, checked completely before anything uses it.
//!
//! Two types, as ripgrep and Vector do it: [`raw::RawConfig`] mirrors the file (serde, defaults,
//! unknown keys rejected), and [`Config`] is the validated result the runtime sees — parsed URLs,
//! compiled rules, `Duration`s, secrets and TLS material already read from their files. Every
//! problem found is reported at once, each with its file, line and field, so one `check-config`
//! run shows all mistakes.

pub mod access;
mod console;
mod console_policy;
pub mod duration;
mod environment;
mod grafana;
pub mod history;
pub mod http;
mod issues;
pub mod mute;
pub mod nats;
mod raw;
mod receiver;
pub mod security;
mod template;
mod template_raw;
pub mod tenancy;
pub mod thread;
pub mod time_interval;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::http::{HeaderName, HeaderValue, Uri};

use crate::fingerprint::fnv1a;
use crate::rule::Rule;

pub use crate::secret::Secret;
pub use console::{ConsoleConfig, ConsoleFile, DEFAULT_CONSOLE_FILE, console_file, console_from_str, load_console};
pub use console_policy::ConsolePolicy;
pub use environment::Environment;
pub use grafana::GrafanaAuth;
pub use history::HistoryConfig;
pub use receiver::ReceiverDefaults;
pub use security::{
    ClientAuthType, DEFAULT_MAX_MEMORY_BYTES, Inbound, InboundAuth, Limits, Proxy, ServerTls, exposure_warning,
    is_loopback_address,
};
pub use template::RateLimit;
pub use validate::DEFAULT_MAX_DEAD_LETTER_BYTES;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub source: PathBuf,
    /// A stable hash of the file's bytes, exported as `amrelay_config_hash`.
    pub hash: u64,
    pub server: ServerConfig,
    pub delivery: DeliveryConfig,
    pub receivers: Vec<ReceiverConfig>,
    /// Secret and TLS files the config names (absolute or relative to the working folder).
    pub referenced_files: Vec<PathBuf>,
    /// Problems that do not make the config invalid, such as a secret file others can read.
    pub warnings: Vec<Issue>,
    /// Defaults and shared templates its `delivery:` and `templates:` give every receiver: the
    /// console file's receivers are validated with them too.
    pub receiver_defaults: ReceiverDefaults,
    /// How many of `receivers`, at the end, come from the console file (merged by the reloader).
    pub console_receivers: usize,
    /// `console:`: the folders console receivers may read files from, and how many there may be.
    pub console: ConsolePolicy,
    /// `history:`: the record of every finished notification.
    pub history: HistoryConfig,
    /// `history.export`: where records are posted too (read at start).
    pub history_export: Option<history::HistoryExport>,
}

/// The process-wide parts of `delivery:` (the rest are receiver defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// `None`: memory only, a crash loses queued notifications.
    pub spool: Option<SpoolConfig>,
    /// `delivery.nats`: the shared JetStream queue (exclusive with `spool`).
    pub nats: Option<nats::NatsConfig>,
    /// Identical notifications accepted again within this window are not delivered twice.
    pub dedup_window: Option<Duration>,
    /// `delivery.dedup_key_file`: the key of the dedup identity (the same on every replica);
    /// `None`: the documented fixed key (see [`crate::route`]).
    pub dedup_key: Option<crate::secret::Secret>,
    /// Dead letters kept; the oldest go first.
    pub max_dead_letters: usize,
    /// Dead letters' body bytes kept; the oldest go first.
    pub max_dead_letter_bytes: u64,
}

/// `delivery.spool`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    pub path: PathBuf,
    pub max_bytes: u64,
    /// Bodies of queued notifications kept in memory at most (the rest are read back from the
    /// file when their turn comes): see [`crate::memory`].
    pub memory_window_bytes: u64,
    /// Share one commit between concurrent requests (on unless benchmarking).
    pub group_commit: bool,
}

/// `server:`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen_address: String,
    pub max_request_bytes: usize,
    /// TLS, sender authentication and limits of the listener.
    pub inbound: Inbound,
    /// `tenancy:` (`None`: off, every receiver is global). Kept with the server's settings: who
    /// may see and save what depends on it.
    pub tenancy: Option<tenancy::Tenancy>,
}

/// One downstream receiver.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub name: String,
    /// `tenant:` — it sees only this tenant's alerts (the clause is `rule.tenant`); `None`: global.
    pub tenant: Option<String>,
    pub enabled: bool,
    pub send_resolved: bool,
    /// 0 means no limit.
    pub max_alerts: usize,
    pub rule: Rule,
    pub queue_capacity: usize,
    pub max_concurrency: Concurrency,
    pub endpoint: Endpoint,
    /// `mute_time_intervals`, `active_time_intervals`, `on_mute`.
    pub mute: mute::Mute,
}

/// `max_concurrency:` — how many deliveries a receiver may have in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// `adaptive` (the default): follows the downstream, between 1 and `ceiling`
    /// (`adaptive_concurrency_ceiling`).
    Adaptive { ceiling: usize },
    /// A number: exactly this many.
    Fixed(usize),
}

/// Where and how a receiver's notifications are sent.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: Uri,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub auth: Auth,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub tls: TlsSettings,
    pub enable_http2: bool,
    /// `http_config.follow_redirects`: follow 307/308 answers (at most 10), re-sending the POST.
    pub follow_redirects: bool,
    /// HMAC-SHA256 key: when set, each request carries a signature and timestamp header.
    pub signing: Option<Secret>,
    /// HTTP CONNECT proxy to reach the receiver through.
    pub proxy: Option<Proxy>,
    /// The receiver's compiled `payload`/`body`/`preset` (`None`: the v4 payload as is).
    pub template: Option<std::sync::Arc<crate::template::Renderer>>,
    /// `rate_limit:` — attempts wait for a token.
    pub rate_limit: Option<RateLimit>,
    /// `thread:` — one message per alert group, updated (or replied to).
    pub thread: Option<thread::ThreadSpec>,
    /// `url` with templates in its path or query: rendered per notification (`url` is then its
    /// scheme and authority).
    pub url_template: Option<std::sync::Arc<crate::url_template::UrlTemplate>>,
    /// What it may connect to, when a tenant's editor can change it ([`tenancy::OutboundGuard`]);
    /// `None`: anything.
    pub guard: Option<std::sync::Arc<tenancy::OutboundGuard>>,
}

/// Outbound authentication, as Alertmanager's `http_config` sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    None,
    Basic {
        username: String,
        password: Secret,
    },
    Authorization {
        scheme: String,
        credentials: Secret,
    },
    /// `oauth2:` — a client-credentials token, fetched and cached by the delivery side.
    OAuth2(Box<self::http::OAuth2Config>),
}

impl Auth {
    /// The `Authorization` header value, marked sensitive so hyper never logs it.
    pub fn header_value(&self) -> Option<HeaderValue> {
        use base64::Engine;
        let text = match self {
            Auth::None | Auth::OAuth2(_) => return None,
            Auth::Basic { username, password } => {
                let pair = format!("{username}:{}", password.expose());
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
            }
            Auth::Authorization { scheme, credentials } => {
                format!("{scheme} {}", credentials.expose())
            }
        };
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// A short name for status pages and logs: `none`, `basic` or the scheme.
    pub fn kind(&self) -> &str {
        match self {
            Auth::None => "none",
            Auth::Basic { .. } => "basic",
            Auth::Authorization { scheme, .. } => scheme,
            Auth::OAuth2(_) => "oauth2",
        }
    }
}

/// How long and how often to retry one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(600),
        }
    }
}

/// Outbound TLS, checked completely (certificates, key, a trial build); the build step turns it
/// into a rustls config with [`crate::tls::ClientConfigs`].
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub client: crate::tls::ClientTls,
    /// Overrides the host name checked in the server's certificate.
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
    pub insecure_skip_verify: bool,
    /// Hash of the TLS material and options: equal fingerprints can share a connection pool.
    pub fingerprint: u64,
    /// The options as written, for the status API.
    pub summary: TlsSummary,
}

/// `tls_config:` as the status API shows it: where the CA and the client certificate come from
/// (a file name, or `inline`), never key material.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsSummary {
    pub ca: Option<String>,
    pub client_cert: Option<String>,
    pub server_name: Option<String>,
    pub min_version: String,
    pub insecure_skip_verify: bool,
}

/// A problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Line and column (1-based) where known.
    pub position: Option<(u64, u64)>,
    /// The offending field as a path, e.g. `receivers[1].conditions[0].values`.
    pub field: String,
    pub message: String,
}

/// Every problem found in one file.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub issues: Vec<Issue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file.display())?;
            if let Some((line, column)) = issue.position {
                write!(f, ":{line}:{column}")?;
            }
            if issue.field.is_empty() {
                write!(f, ": {}", issue.message)?;
            } else {
                write!(f, ": {}: {}", issue.field, issue.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads, parses and validates a config file, including the secret and TLS files it names
/// (relative paths resolve against the config file's folder). `${VAR}` takes its value from
/// `environment` (callers pass [`Environment::from_process`]).
pub fn load(path: &Path, environment: &Environment) -> Result<Config, ConfigError> {
    let fail = |field: &str, message: String| ConfigError {
        file: path.to_owned(),
        issues: vec![Issue { position: None, field: field.into(), message }],
    };
    let bytes = std::fs::read(path).map_err(|e| fail("", format!("cannot read file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("", "file is not valid UTF-8".into()))?;
    from_str(&text, path, environment)
}

/// Parses and validates config text as if it were read from `path`, expanding `${VAR}` from
/// `environment`.
pub fn from_str(text: &str, path: &Path, environment: &Environment) -> Result<Config, ConfigError> {
    let base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let raw: raw::RawConfig = if text.trim().is_empty() {
        raw::RawConfig::default()
    } else {
        serde_saphyr::from_str_with_options(text, parse_options(environment)).map_err(|e| parse_error(path, &e))?
    };
    let validated = validate::validate(raw, &base_dir, environment, text)
        .map_err(|issues| ConfigError { file: path.to_owned(), issues })?;
    Ok(Config {
        source: path.to_owned(),
        hash: fnv1a(text.as_bytes()),
        server: validated.server,
        delivery: validated.delivery,
        receivers: validated.receivers,
        referenced_files: validated.files,
        warnings: validated.warnings,
        receiver_defaults: validated.defaults,
        console_receivers: 0,
        console: validated.console,
        history: validated.history,
        history_export: validated.history_export,
    })
}

/// A YAML or schema error as the one issue of a file.
fn parse_error(path: &Path, e: &serde_saphyr::Error) -> ConfigError {
    ConfigError {
        file: path.to_owned(),
        issues: vec![Issue {
            position: e.location().map(|l| (l.line(), l.column())),
            field: String::new(),
            message: strip_position(&e.without_snippet().to_string()),
        }],
    }
}

/// `${VAR}` in a plain (unquoted) scalar is the environment variable's value; an unset variable
/// is an error naming it, `$${VAR}` is a literal `${VAR}`. serde-saphyr redacts expanded values
/// from its error messages, so a secret from the environment is never echoed.
fn parse_options(environment: &Environment) -> serde_saphyr::Options {
    serde_saphyr::Options::default().with_properties(environment.to_properties())
}

/// Drops the parser's own " at line N, column M" suffix: the position is printed in front.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains(", column ") => message[..at].to_owned(),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_VARIABLE: &str =
        "receivers:\n  - name: a\n    url: http://127.0.0.1:1/\n    headers:\n      X-Token: ${AMRELAY_UNIT_TOKEN}\n";

    fn header(config: &Config) -> &str {
        config.receivers[0].endpoint.headers[0].1.to_str().unwrap()
    }

    // The environment is an argument: these tests neither read nor change the process's.
    #[test]
    fn variables_come_from_the_given_environment() {
        let environment = Environment::empty().with("AMRELAY_UNIT_TOKEN", "t0ken");
        let config = from_str(WITH_VARIABLE, Path::new("/nonexistent/amrelay.yml"), &environment).unwrap();
        assert_eq!(header(&config), "t0ken");
    }

    #[test]
    fn an_unset_variable_is_an_error_naming_it_with_its_position() {
        let error = from_str(WITH_VARIABLE, Path::new("/nonexistent/amrelay.yml"), &Environment::empty()).unwrap_err();
        assert_eq!(error.issues.len(), 1);
        assert!(error.issues[0].message.contains("AMRELAY_UNIT_TOKEN"), "{error}");
        assert_eq!(error.issues[0].position.map(|(line, _)| line), Some(5), "{error}");
    }

    #[test]
    fn a_doubled_dollar_is_a_literal_and_a_default_applies_when_unset() {
        let text = "receivers:\n  - name: a\n    url: http://127.0.0.1:1/\n    headers:\n      X-A: $${AMRELAY_UNIT_TOKEN}\n      X-B: ${AMRELAY_UNIT_UNSET:-fallback}\n";
        let environment = Environment::empty().with("AMRELAY_UNIT_TOKEN", "t0ken");
        let config = from_str(text, Path::new("/nonexistent/amrelay.yml"), &environment).unwrap();
        let headers: Vec<_> = config.receivers[0].endpoint.headers.iter().map(|(_, v)| v.to_str().unwrap()).collect();
        assert_eq!(headers, ["${AMRELAY_UNIT_TOKEN}", "fallback"]);
    }

    #[test]
    fn the_environment_prints_names_only() {
        let environment = Environment::empty().with("AMRELAY_UNIT_TOKEN", "s3cret");
        let printed = format!("{environment:?}");
        assert!(printed.contains("AMRELAY_UNIT_TOKEN") && !printed.contains("s3cret"), "{printed}");
    }
}
