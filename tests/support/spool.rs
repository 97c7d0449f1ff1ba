//! Configs and batches for the spool's durability tests: a spool in a given folder with
//! retries that outlast an outage, and batches told apart by a number.

use std::path::Path;

use serde_json::json;

use super::{alert, batch};

/// A config with a spool in `dir`; `spool_extra` goes inside `spool: {…}`.
pub fn spool_config(dir: &Path, url: &str, spool_extra: &str) -> String {
    format!(
        "delivery:
  retry: {{max_attempts: 1000, initial_backoff: 20ms, max_backoff: 100ms, max_elapsed: 10m}}
  spool: {{path: {}/spool.redb{spool_extra}}}
receivers:
  - name: durable
    url: {url}
",
        dir.display()
    )
}

/// A batch of one firing alert of `group`, numbered `n`.
pub fn numbered(group: &str, n: usize) -> String {
    batch(
        &format!("{{}}:{{alertname=\"{group}\"}}"),
        vec![alert("firing", json!({"alertname": group, "n": n.to_string()}))],
    )
}
