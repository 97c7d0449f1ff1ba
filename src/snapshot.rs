//! The running configuration: an immutable snapshot, swapped atomically by every reload
//! ([`crate::reload`]).
//!
//! The request path `load`s the current snapshot once per request (lock-free, `arc-swap`) and
//! passes it down — sender auth, routing and acceptance all use that one — so a request that
//! began before a reload finishes on the rules it began with: every batch is routed entirely by
//! the old rules or entirely by the new ones.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{ConsoleFile, DeliveryConfig, Issue, ReceiverConfig, ServerConfig};
use crate::editor::EnabledLine;
use crate::queue::Pipeline;
use crate::rule::LabelIndex;
use crate::verified_senders::VerifiedSenders;

/// One receiver as the request path sees it: its rule and its pipeline.
#[derive(Debug)]
pub struct ActiveReceiver {
    pub config: ReceiverConfig,
    pub pipeline: Arc<Pipeline>,
    /// Which file defines it.
    pub source: Source,
}

/// Where a receiver is defined: the config file (read-only in the console) or the console file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    File,
    Console,
}

/// The console file (`--config.console-file`) as this snapshot loaded it.
#[derive(Debug, Clone)]
pub struct ConsoleState {
    pub file: ConsoleFile,
    /// Hash of the console receivers running (the last good file's, when the file is broken).
    pub hash: Option<u64>,
    /// Hash of the bytes on disk when loaded (`u64::MAX`: no file), for the watcher.
    pub disk_hash: u64,
    /// When the file was last modified.
    pub changed_at: Option<SystemTime>,
    /// Why the file on disk is not what runs: the last good console receivers are kept.
    pub error: Option<String>,
    /// Console receivers skipped because the config file defines the same name.
    pub conflicts: Vec<Issue>,
    /// `console.max_receivers`: how many the console may create.
    pub max_receivers: usize,
    /// The line of the config file that flips each of its receivers' `enabled:`, found in the
    /// text this snapshot was loaded from (empty when that text could not be read again), so
    /// that the status and receivers endpoints read no file.
    pub enabled_lines: BTreeMap<String, EnabledLine>,
}

impl ConsoleState {
    /// No console file.
    pub fn off(why: &str) -> ConsoleState {
        ConsoleState {
            file: ConsoleFile::Off(why.into()),
            hash: None,
            disk_hash: u64::MAX,
            changed_at: None,
            error: None,
            conflicts: Vec::new(),
            max_receivers: crate::config::ConsolePolicy::default().max_receivers,
            enabled_lines: BTreeMap::new(),
        }
    }
}

/// A loaded configuration with its receivers' pipelines.
#[derive(Debug)]
pub struct Snapshot {
    pub source: PathBuf,
    pub hash: u64,
    pub loaded_at: SystemTime,
    pub server: ServerConfig,
    pub delivery: DeliveryConfig,
    /// `history:`: recording finished notifications, and their bounds.
    pub history: crate::config::HistoryConfig,
    pub receivers: Vec<ActiveReceiver>,
    /// Every label name the receivers' rules read: alerts are decoded against it.
    pub label_index: LabelIndex,
    /// The HMAC key of the dedup identity, built once per config; `None` when neither
    /// `delivery.dedup_window` nor `delivery.nats` asks for the identity.
    pub dedup_identity: Option<ring::hmac::Key>,
    /// Secret and TLS files the config names: a change to one reloads the config.
    pub referenced_files: Vec<PathBuf>,
    /// Sender credentials verified under this config.
    pub verified: VerifiedSenders,
    /// The console file and its receivers' state.
    pub console: ConsoleState,
}

impl Snapshot {
    /// The receiver with this name, enabled or not.
    pub fn receiver(&self, name: &str) -> Option<&ActiveReceiver> {
        self.receivers.iter().find(|r| r.config.name == name)
    }
}
