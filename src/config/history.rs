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
