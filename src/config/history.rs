//! `history:` in the config file: whether each finished notification is recorded, and how much
//! of it is kept (by age and by bytes, the oldest going first).

use std::time::Duration;

use serde_saphyr::Spanned;

use super::issues::Issues;
use super::raw::RawHistory;

/// A week: long enough to answer "what happened last weekend".
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// With a spool file: 64 MiB, about 150,000 records of a 10-alert notification.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Without one the records are in memory, under a smaller bound.
pub const DEFAULT_MEMORY_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// `history:` — validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    pub enabled: bool,
    pub retention: Duration,
    /// `None`: the default of the store ([`HistoryConfig::max_bytes`]).
    pub max_bytes: Option<u64>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig { enabled: true, retention: DEFAULT_RETENTION, max_bytes: None }
    }
}

impl HistoryConfig {
    /// The byte bound: as configured, or the default of a store on disk or in memory.
    pub fn max_bytes(&self, on_disk: bool) -> u64 {
        self.max_bytes.unwrap_or(if on_disk { DEFAULT_MAX_BYTES } else { DEFAULT_MEMORY_MAX_BYTES })
    }
}

/// Validates `history:`.
pub(super) fn history(issues: &mut Issues, raw: Option<&Spanned<RawHistory>>) -> HistoryConfig {
    let mut config = HistoryConfig::default();
    let Some(spanned) = raw else {
        return config;
    };
    let (at, raw) = (&spanned.referenced, &spanned.value);
    if let Some(enabled) = raw.enabled {
        config.enabled = enabled;
    }
    match raw.retention {
        Some(retention) if retention.0.is_zero() => issues.add(Some(at), "history.retention", "must be greater than 0"),
        Some(retention) => config.retention = retention.0,
        None => {}
    }
    match raw.max_bytes {
        Some(0) => issues.add(Some(at), "history.max_bytes", "must be greater than 0"),
        Some(bytes) => config.max_bytes = Some(bytes),
        None => {}
    }
    config
}

/// `history.export:` — validated: the endpoint (as a receiver's: URL, `http_config`, TLS,
/// timeout) and how records are batched.
#[derive(Debug, Clone)]
pub struct HistoryExport {
    pub endpoint: super::Endpoint,
    pub batch_max_events: usize,
    pub flush_interval: Duration,
}

/// Records per posted batch, and the longest a record waits for its batch to fill.
pub const DEFAULT_BATCH_MAX_EVENTS: usize = 100;
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Validates `history.export`, its endpoint with the code that checks a receiver's.
pub(super) fn export(
    issues: &mut Issues,
    raw: Option<&mut Spanned<RawHistory>>,
    defaults: &super::ReceiverDefaults,
    environment: &super::Environment,
) -> Option<HistoryExport> {
    let export = raw?.value.export.as_mut()?;
    let at = export.referenced;
    let at = &at;
    let batch_max_events = match export.value.batch_max_events {
        Some(0) => {
            issues.add(Some(at), "history.export.batch_max_events", "must be greater than 0");
            return None;
        }
        Some(n) => n.min(10_000),
        None => DEFAULT_BATCH_MAX_EVENTS,
    };
    let flush_interval = match export.value.flush_interval {
        Some(d) if d.0.is_zero() => {
            issues.add(Some(at), "history.export.flush_interval", "must be greater than 0");
            return None;
        }
        Some(d) => d.0,
        None => DEFAULT_FLUSH_INTERVAL,
    };
    let endpoint = super::receiver::export_endpoint(issues, at, &mut export.value, defaults, environment)?;
    Some(HistoryExport { endpoint, batch_max_events, flush_interval })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Environment, from_str};

    /// `history.export` is checked as a receiver's endpoint is, its errors named under it.
    #[test]
    fn export_errors_name_their_field() {
        let load = |yaml: &str| from_str(yaml, Path::new("amrelay.yml"), &Environment::default());
        let ok = load("history: {export: {url: 'https://sink.example/records', batch_max_events: 50}}\n").unwrap();
        let export = ok.history_export.unwrap();
        assert_eq!((export.batch_max_events, export.flush_interval), (50, super::DEFAULT_FLUSH_INTERVAL));
        for (yaml, field) in [
            ("history: {export: {}}\n", "history.export.url"),
            ("history: {export: {url: 'not a url'}}\n", "history.export.url"),
            ("history: {export: {url: 'https://s/', batch_max_events: 0}}\n", "history.export.batch_max_events"),
            ("history: {export: {url: 'https://s/', flush_interval: 0s}}\n", "history.export.flush_interval"),
            ("history: {retention: 0s}\n", "history.retention"),
        ] {
            let error = load(yaml).unwrap_err().to_string();
            assert!(error.contains(field), "{yaml}: {error}");
        }
        assert!(load("history: {}\n").unwrap().history_export.is_none());
    }
}
