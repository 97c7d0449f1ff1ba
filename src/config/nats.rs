//! `delivery.nats:` — the shared JetStream queue, for several replicas (see [`crate::spool::nats`]).
//!
//! Checked like the rest of the file: every URL parses, at most one way to authenticate, secret
//! and TLS files are read now (so a missing file is a config error with its position, never a
//! surprise at the first reconnect), and the limits are in range.

use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::Secret;
use super::issues::{Issues, min_version, pem_source};
use super::raw::{RawNats, RawTlsConfig};
use crate::tls::{self, ClientTlsOptions};

/// Default stream name.
pub const DEFAULT_STREAM: &str = "AMRELAY";
/// Default number of delivery partitions (see [`crate::spool::nats`]).
pub const DEFAULT_PARTITIONS: u32 = 64;
const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// JetStream keeps at most 5 replicas of a stream.
const MAX_REPLICAS: usize = 5;

/// How amrelay authenticates to NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsAuth {
    None,
    /// The contents of a `.creds` file (JWT and NKey seed).
    Credentials(Secret),
    Token(Secret),
    UserPassword {
        user: String,
        password: Secret,
    },
}

impl NatsAuth {
    /// For the status API.
    pub fn kind(&self) -> &'static str {
        match self {
            NatsAuth::None => "none",
            NatsAuth::Credentials(_) => "credentials_file",
            NatsAuth::Token(_) => "token",
            NatsAuth::UserPassword { .. } => "user_password",
        }
    }
}

/// `delivery.nats`, validated.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// As written; may hold `user:password@`, so only [`NatsConfig::redacted_urls`] is shown.
    pub urls: Vec<String>,
    pub stream: String,
    pub replicas: usize,
    pub duplicate_window: Duration,
    pub max_bytes: u64,
    pub ack_wait: Duration,
    pub partitions: u32,
    pub auth: NatsAuth,
    pub tls: Option<tls::ClientTls>,
    /// Everything above, hashed: a reload compares it to say that a change needs a restart.
    pub fingerprint: u64,
}

impl PartialEq for NatsConfig {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for NatsConfig {}

impl NatsConfig {
    /// The URLs without any `user:password@`, for logs and the status API.
    pub fn redacted_urls(&self) -> Vec<String> {
        self.urls.iter().map(|u| redact_url(u)).collect()
    }
}

/// Drops the user information of a URL (`nats://user:pass@host:4222` → `nats://host:4222`).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    if scheme.is_empty() { rest.to_owned() } else { format!("{scheme}://{rest}") }
}

/// A stream name JetStream accepts, and that is safe as a subject token.
fn is_valid_stream_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Validates `delivery.nats`.
pub(super) fn nats_config(issues: &mut Issues, spanned: &Spanned<RawNats>) -> Option<NatsConfig> {
    let (at, raw) = (&spanned.referenced, &spanned.value);
    let before = issues.len();
    let field = "delivery.nats";
    if raw.urls.is_empty() {
        issues.add(Some(at), format!("{field}.urls"), "at least one URL is required (e.g. nats://nats:4222)");
    }
    for (index, url) in raw.urls.iter().enumerate() {
        if let Err(e) = url.parse::<async_nats::ServerAddr>() {
            // The URL may hold a password: name it without.
            issues.add(
                Some(at),
                format!("{field}.urls[{index}]"),
                format!("{:?} is not a NATS URL: {e}", redact_url(url)),
            );
        }
    }
    let stream = raw.stream.clone().unwrap_or_else(|| DEFAULT_STREAM.to_owned());
    if !is_valid_stream_name(&stream) {
        issues.add(
            Some(at),
            format!("{field}.stream"),
            format!("{stream:?} is not a valid stream name: use letters, digits, '_' and '-' (at most 64)"),
        );
    }
    let replicas = raw.replicas.unwrap_or(1);
    if !(1..=MAX_REPLICAS).contains(&replicas) {
        issues.add(Some(at), format!("{field}.replicas"), format!("must be between 1 and {MAX_REPLICAS}"));
    }
    let duplicate_window = raw.duplicate_window.as_ref().map_or(DEFAULT_DUPLICATE_WINDOW, |d| d.0);
    if duplicate_window < Duration::from_millis(100) {
        issues.add(Some(at), format!("{field}.duplicate_window"), "must be at least 100ms");
    }
    let max_bytes = raw.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes == 0 || max_bytes > i64::MAX as u64 {
        issues.add(Some(at), format!("{field}.max_bytes"), "must be greater than 0");
    }
    let ack_wait = raw.ack_wait.as_ref().map_or(DEFAULT_ACK_WAIT, |d| d.0);
    if ack_wait < Duration::from_secs(1) {
        issues.add(Some(at), format!("{field}.ack_wait"), "must be at least 1s");
    }
    let partitions = raw.partitions.unwrap_or(DEFAULT_PARTITIONS);
    if !(1..=1024).contains(&partitions) {
        issues.add(Some(at), format!("{field}.partitions"), "must be between 1 and 1024");
    }
    let auth = auth(issues, at, field, raw);
    let tls = match &raw.tls_config {
        Some(tls) => tls_config(issues, at, &format!("{field}.tls_config"), tls),
        None => Some(None),
    };
    if issues.len() > before {
        return None;
    }
    let mut fingerprint = Vec::new();
    for url in &raw.urls {
        fingerprint.extend_from_slice(url.as_bytes());
        fingerprint.push(0);
    }
    fingerprint.extend_from_slice(
        format!("{stream}\0{replicas}\0{duplicate_window:?}\0{max_bytes}\0{ack_wait:?}\0{partitions}\0").as_bytes(),
    );
    let auth = auth?;
    match &auth {
        NatsAuth::None => {}
        NatsAuth::Credentials(s) | NatsAuth::Token(s) => fingerprint.extend_from_slice(s.expose().as_bytes()),
        NatsAuth::UserPassword { user, password } => {
            fingerprint.extend_from_slice(user.as_bytes());
            fingerprint.push(0);
            fingerprint.extend_from_slice(password.expose().as_bytes());
        }
    }
    let tls = tls?;
    if let Some(tls) = &tls {
        fingerprint.extend_from_slice(&tls.options().fingerprint(None).to_le_bytes());
    }
    Some(NatsConfig {
        urls: raw.urls.clone(),
        stream,
        replicas,
        duplicate_window,
        max_bytes,
        ack_wait,
        partitions,
        auth,
        tls,
        fingerprint: crate::fingerprint::fnv1a(&fingerprint),
    })
}

fn auth(issues: &mut Issues, at: &Location, field: &str, raw: &RawNats) -> Option<NatsAuth> {
    let given = [raw.credentials_file.is_some(), raw.token_file.is_some(), raw.user.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        issues.add(
            Some(at),
            field.to_owned(),
            "credentials_file, token_file and user/password_file are mutually exclusive",
        );
        return None;
    }
    if raw.password_file.is_some() && raw.user.is_none() {
        issues.add(Some(at), format!("{field}.password_file"), "needs user");
        return None;
    }
    if let Some(path) = &raw.credentials_file {
        let creds = issues.read_secret(at, &format!("{field}.credentials_file"), path)?;
        // Checked now, so a broken file is a config error rather than a failed connection.
        if let Err(e) = async_nats::ConnectOptions::with_credentials(creds.expose()) {
            issues.add(Some(at), format!("{field}.credentials_file"), format!("not a NATS credentials file: {e}"));
            return None;
        }
        return Some(NatsAuth::Credentials(creds));
    }
    if let Some(path) = &raw.token_file {
        return issues.read_secret(at, &format!("{field}.token_file"), path).map(NatsAuth::Token);
    }
    if let Some(user) = &raw.user {
        let Some(path) = &raw.password_file else {
            issues.add(Some(at), format!("{field}.password_file"), "is required with user");
            return None;
        };
        let password = issues.read_secret(at, &format!("{field}.password_file"), path)?;
        return Some(NatsAuth::UserPassword { user: user.clone(), password });
    }
    Some(NatsAuth::None)
}

fn tls_config(issues: &mut Issues, at: &Location, field: &str, raw: &RawTlsConfig) -> Option<Option<tls::ClientTls>> {
    let ca = pem_source(issues, at, field, "ca", &raw.ca, &raw.ca_file)?;
    let cert = pem_source(issues, at, field, "cert", &raw.cert, &raw.cert_file)?;
    let key = pem_source(issues, at, field, "key", &raw.key, &raw.key_file)?;
    let min_version = min_version(issues, at, field, raw.min_version.as_deref())?;
    if raw.server_name.is_some() {
        issues.add(
            Some(at),
            format!("{field}.server_name"),
            "is not supported for NATS: the URL's host name is verified",
        );
        return None;
    }
    let options = ClientTlsOptions { ca, cert, key, insecure_skip_verify: raw.insecure_skip_verify, min_version };
    match tls::ClientTls::check(options) {
        Ok(client) => Some(Some(client)),
        Err(e) => {
            issues.add(Some(at), field.to_owned(), e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{ConfigError, Environment, from_str};

    fn load(delivery: &str, dir: &Path) -> Result<crate::config::Config, ConfigError> {
        let yaml = format!("delivery:\n{delivery}receivers:\n  - name: a\n    url: http://127.0.0.1:1/\n");
        from_str(&yaml, &dir.join("amrelay.yml"), &Environment::empty())
    }

    fn messages(error: ConfigError) -> Vec<String> {
        error.issues.into_iter().map(|i| format!("{}: {}", i.field, i.message)).collect()
    }

    #[test]
    fn defaults_and_secrets_from_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let config = load(
            "  nats:\n    urls: [nats://n1:4222, nats://n2:4222]\n    user: amrelay\n    password_file: pw\n",
            dir.path(),
        )
        .unwrap();
        let nats = config.delivery.nats.unwrap();
        assert_eq!(nats.stream, "AMRELAY");
        assert_eq!(nats.replicas, 1);
        assert_eq!(nats.duplicate_window, Duration::from_secs(120));
        assert_eq!(nats.ack_wait, Duration::from_secs(30));
        assert_eq!(nats.partitions, DEFAULT_PARTITIONS);
        assert_eq!(nats.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(nats.auth, NatsAuth::UserPassword { user: "amrelay".into(), password: Secret::new("s3cret") });
        assert!(!format!("{nats:?}").contains("s3cret"));
    }

    #[test]
    fn every_mistake_is_reported_with_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let error = load(
            "  nats:\n    urls: []\n    stream: a.b\n    replicas: 7\n    ack_wait: 10ms\n    partitions: 0\n    max_bytes: 0\n",
            dir.path(),
        )
        .unwrap_err();
        let text = messages(error).join("\n");
        for field in ["urls", "stream", "replicas", "ack_wait", "partitions", "max_bytes"] {
            assert!(text.contains(&format!("delivery.nats.{field}")), "{field} missing in:\n{text}");
        }
    }

    #[test]
    fn nats_and_spool_are_exclusive_and_so_are_the_ways_to_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "token").unwrap();
        let error = load("  spool: {path: s.redb}\n  nats: {urls: [nats://n:4222]}\n", dir.path()).unwrap_err();
        assert!(messages(error).join("\n").contains("mutually exclusive"));
        let error = load("  nats: {urls: [nats://n:4222], token_file: t, user: u, password_file: t}\n", dir.path())
            .unwrap_err();
        assert!(messages(error).join("\n").contains("mutually exclusive"));
        let error = load("  nats: {urls: [nats://n:4222], credentials_file: t}\n", dir.path()).unwrap_err();
        assert!(messages(error).join("\n").contains("not a NATS credentials file"));
    }

    #[test]
    fn a_password_in_a_bad_url_is_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let error = load("  nats: {urls: ['nats://u:hunter2@:bad:port']}\n", dir.path()).unwrap_err();
        let text = messages(error).join("\n");
        assert!(text.contains("delivery.nats.urls[0]"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn urls_lose_their_user_information() {
        assert_eq!(redact_url("nats://u:secret@nats-0:4222"), "nats://nats-0:4222");
        assert_eq!(redact_url("tls://nats:4222"), "tls://nats:4222");
        assert_eq!(redact_url("token@127.0.0.1:4222"), "127.0.0.1:4222");
    }

    #[test]
    fn stream_names_are_subject_safe() {
        assert!(is_valid_stream_name("AMRELAY"));
        assert!(is_valid_stream_name("amrelay-prod_1"));
        assert!(!is_valid_stream_name("a.b"));
        assert!(!is_valid_stream_name("a*"));
        assert!(!is_valid_stream_name(""));
    }
}
