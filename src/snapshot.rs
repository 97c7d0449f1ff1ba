//! The running configuration: an immutable snapshot, swapped atomically by every reload
//! ([`crate::reload`]).
//!
//! The request path `load`s the current snapshot once per request (lock-free, `arc-swap`) and
//! passes it down — sender auth, routing and acceptance all use that one — so a request that
//! began before a reload finishes on the rules it began with: every batch is routed entirely by
//! the old rules or entirely by the new ones.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{DeliveryConfig, ReceiverConfig, ServerConfig};
use crate::queue::Pipeline;
use crate::rule::LabelIndex;
use crate::verified::Verified;

/// One receiver as the request path sees it: its rule and its pipeline.
#[derive(Debug)]
pub struct ActiveReceiver {
    pub config: ReceiverConfig,
    pub pipeline: Arc<Pipeline>,
}

/// A loaded configuration with its receivers' pipelines.
#[derive(Debug)]
pub struct Snapshot {
    pub source: PathBuf,
    pub hash: u64,
    pub loaded_at: SystemTime,
    pub server: ServerConfig,
    pub delivery: DeliveryConfig,
    pub receivers: Vec<ActiveReceiver>,
    /// Every label name the receivers' rules read: alerts are decoded against it.
    pub label_index: LabelIndex,
    /// Secret and TLS files the config names: a change to one reloads the config.
    pub referenced_files: Vec<PathBuf>,
    /// Sender credentials verified under this config.
    pub verified: Verified,
}

impl Snapshot {
    /// The receiver with this name, enabled or not.
    pub fn receiver(&self, name: &str) -> Option<&ActiveReceiver> {
        self.receivers.iter().find(|r| r.config.name == name)
    }
}
