//! Collecting a config's problems with their positions, and reading the files it names.
//!
//! Every part of validation ([`super::validate`], [`super::security`], …) reports into one
//! [`Issues`] and reads secret and TLS files through it, so that one `check-config` run shows
//! every mistake and the watcher learns every file to watch. It sits below those parts and uses
//! none of them.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

use super::{Issue, Secret};
use crate::tls::{self, PemSource};

/// Secret, certificate and key files larger than this are refused (a typo naming a log file or
/// `/dev/zero` must not exhaust memory).
const MAX_REFERENCED_FILE_BYTES: u64 = 1024 * 1024;

/// Collects issues with their positions.
pub(super) struct Issues {
    pub(super) list: Vec<Issue>,
    pub(super) base_dir: PathBuf,
    /// Every file the config names, so a watcher can reload when one changes.
    pub(super) files: Vec<PathBuf>,
    /// Problems that do not make the config invalid (a secret file others can read).
    pub(super) warnings: Vec<Issue>,
    /// The file's text, to place template errors inside their strings.
    pub(super) text: String,
    /// `Some`: files may be read only under these (canonical) folders, and the message that
    /// refuses any other; `None`: any file (the config file, written by the operator).
    readable: Option<(Vec<PathBuf>, &'static str)>,
}

impl Issues {
    /// No issues yet, for a file in `base_dir` with this text.
    pub(super) fn new(base_dir: &Path, text: &str) -> Issues {
        Issues {
            list: Vec::new(),
            base_dir: base_dir.to_owned(),
            files: Vec::new(),
            warnings: Vec::new(),
            text: text.to_owned(),
            readable: None,
        }
    }

    /// Refuses, with `why`, every file read outside `dirs` (canonical folders): what the console
    /// validates may make the relay read nothing else, whatever key names the file.
    pub(super) fn reading_only_under(mut self, dirs: Vec<PathBuf>, why: &'static str) -> Issues {
        self.readable = Some((dirs, why));
        self
    }

    /// Whether `full` may be read: always for the config file; for the console, only a file
    /// whose real path (links resolved) lies under an allowed folder.
    fn may_read(&self, full: &Path) -> Result<(), String> {
        let Some((dirs, why)) = &self.readable else {
            return Ok(());
        };
        let real = full.canonicalize().ok();
        match real {
            Some(real) if dirs.iter().any(|dir| real.starts_with(dir)) => Ok(()),
            _ => Err((*why).to_owned()),
        }
    }

    pub(super) fn add(&mut self, at: Option<&Location>, field: impl Into<String>, message: impl Into<String>) {
        let position = at.filter(|l| l.line() > 0).map(|l| (l.line(), l.column()));
        self.list.push(Issue { position, field: field.into(), message: message.into() });
    }

    /// Records an error at a line and column worked out by the caller.
    pub(super) fn add_at(
        &mut self,
        position: Option<(u64, u64)>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.list.push(Issue { position, field: field.into(), message: message.into() });
    }

    /// The config file's text.
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// Records a warning: the config stays valid.
    pub(super) fn warn(&mut self, at: Option<&Location>, field: impl Into<String>, message: impl Into<String>) {
        let position = at.filter(|l| l.line() > 0).map(|l| (l.line(), l.column()));
        self.warnings.push(Issue { position, field: field.into(), message: message.into() });
    }

    /// How many errors so far.
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// Reads a file the config names, recording it for the watcher; an issue when it cannot be
    /// read or may not be (see [`Issues::reading_only_under`]).
    pub(super) fn read_file(&mut self, at: &Location, field: &str, path: &str) -> Option<Vec<u8>> {
        let full = self.resolve(path);
        if let Err(why) = self.may_read(&full) {
            self.add(Some(at), field, why);
            return None;
        }
        self.files.push(full.clone());
        match read_bounded(&full) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.add(Some(at), field, format!("cannot read {}: {e}", full.display()));
                None
            }
        }
    }

    /// Reads a secret from a file, trimming surrounding white space as Prometheus does.
    pub(super) fn read_secret(&mut self, at: &Location, field: &str, path: &str) -> Option<Secret> {
        // Read first: a file the console may not read gets no warning about its permissions.
        let bytes = self.read_file(at, field, path)?;
        if let Some(warning) = readable_by_others(&self.resolve(path)) {
            self.warn(Some(at), field, warning);
        }
        match String::from_utf8(bytes) {
            Ok(text) => Some(Secret::new(text.trim())),
            Err(_) => {
                self.add(Some(at), field, "file is not valid UTF-8");
                None
            }
        }
    }

    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() { path.to_owned() } else { self.base_dir.join(path) }
    }
}

/// Reads a file the config names, refusing what is not a regular file or is implausibly large.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::with_capacity(metadata.len().min(MAX_REFERENCED_FILE_BYTES) as usize);
    file.take(MAX_REFERENCED_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_REFERENCED_FILE_BYTES {
        return Err(std::io::Error::other(format!("larger than {MAX_REFERENCED_FILE_BYTES} bytes")));
    }
    Ok(bytes)
}

/// A warning when every user of the machine can read the secret file at `path`.
fn readable_by_others(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!("{} is readable by every user (mode {:o}): restrict it, e.g. chmod 600", path.display(), mode & 0o777)
    })
}

/// A secret given either inline or by file, never both.
pub(super) fn secret(
    issues: &mut Issues,
    at: &Location,
    field: &str,
    (inline_key, inline): (&str, &Option<String>),
    (file_key, file): (&str, &Option<String>),
) -> Option<Secret> {
    match (inline, file) {
        (Some(value), None) => Some(Secret::new(value.as_str())),
        (None, Some(path)) => issues.read_secret(at, &format!("{field}.{file_key}"), path),
        (Some(_), Some(_)) => {
            issues.add(
                Some(at),
                format!("{field}.{inline_key}"),
                format!("{inline_key} and {file_key} are mutually exclusive"),
            );
            None
        }
        (None, None) => {
            issues.add(
                Some(at),
                format!("{field}.{inline_key}"),
                format!("one of {inline_key} or {file_key} is required"),
            );
            None
        }
    }
}

/// `min_version: TLS12 | TLS13` of a `tls_config` or `tls_server_config` (default TLS12).
pub(super) fn min_version(
    issues: &mut Issues,
    at: &Location,
    field: &str,
    raw: Option<&str>,
) -> Option<tls::MinVersion> {
    match raw {
        None | Some("TLS12") => Some(tls::MinVersion::Tls12),
        Some("TLS13") => Some(tls::MinVersion::Tls13),
        Some(other) => {
            issues.add(
                Some(at),
                format!("{field}.min_version"),
                format!("{other:?} is not supported: use TLS12 or TLS13"),
            );
            None
        }
    }
}

pub(super) fn pem_source(
    issues: &mut Issues,
    at: &Location,
    field: &str,
    key: &str,
    inline: &Option<String>,
    file: &Option<String>,
) -> Option<Option<PemSource>> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            issues.add(Some(at), format!("{field}.{key}"), format!("{key} and {key}_file are mutually exclusive"));
            None
        }
        (Some(pem), None) => Some(Some(PemSource { name: format!("{field}.{key}"), bytes: pem.clone().into_bytes() })),
        (None, Some(path)) => {
            let bytes = issues.read_file(at, &format!("{field}.{key}_file"), path)?;
            Some(Some(PemSource { name: issues.resolve(path).display().to_string(), bytes }))
        }
        (None, None) => Some(None),
    }
}
