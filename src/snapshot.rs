//! The running configuration: an immutable snapshot swapped atomically on reload.
//!
//! The request path `load`s the current snapshot once per request (lock-free, `arc-swap`) and
//! uses it to the end, so a request that began before a reload finishes on the rules it began
//! with: every batch is routed entirely by the old rules or entirely by the new ones.
//!
//! All reloads — startup, the file watcher, SIGHUP, `POST /-/reload` — go through
//! [`Reloader::reload`], which validates the whole new file first and changes nothing on error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::config::{self, Config, ConfigError, DeliveryConfig, ReceiverConfig, ServerConfig};
use crate::dedup::Dedup;
use crate::metrics as m;
use crate::queue::Pipeline;
use crate::rule::LabelIndex;
use crate::spool::Spool;
use crate::tls::ClientConfigs;

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
}

impl Snapshot {
    /// The receiver with this name, enabled or not.
    pub fn receiver(&self, name: &str) -> Option<&ActiveReceiver> {
        self.receivers.iter().find(|r| r.config.name == name)
    }
}

/// The outcome of the last reload attempt.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    pub last_attempt: Option<SystemTime>,
    pub last_error: Option<String>,
}

/// Owns the pipelines and swaps snapshots; reloads are serialized by its lock.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    current: ArcSwap<Snapshot>,
    pipelines: Mutex<HashMap<String, Arc<Pipeline>>>,
    /// Outbound TLS configs with the system roots, kept across reloads; locked with `pipelines`.
    client_configs: Mutex<ClientConfigs>,
    status: Mutex<ReloadStatus>,
    /// Where every pipeline keeps its notifications; opened once per process.
    pub spool: Arc<Spool>,
    /// Notifications recently accepted, for `delivery.dedup_window`.
    pub dedup: Dedup,
    stopping: watch::Receiver<bool>,
}

impl Reloader {
    /// Starts the pipelines of a loaded config (the first load). Fails only if a receiver's TLS
    /// config cannot be built with the system's CA store.
    pub fn start(
        path: &Path,
        config: Config,
        spool: Arc<Spool>,
        stopping: watch::Receiver<bool>,
    ) -> Result<Reloader, ConfigError> {
        let mut pipelines = HashMap::new();
        let mut client_configs = ClientConfigs::new();
        let snapshot = build_snapshot(config, &mut pipelines, &mut client_configs, &spool, &stopping)?;
        record_success(&snapshot);
        Ok(Reloader {
            path: path.to_owned(),
            current: ArcSwap::from_pointee(snapshot),
            pipelines: Mutex::new(pipelines),
            client_configs: Mutex::new(client_configs),
            status: Mutex::new(ReloadStatus { last_attempt: Some(SystemTime::now()), last_error: None }),
            spool,
            dedup: Dedup::default(),
            stopping,
        })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The config file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last reload attempt's outcome.
    pub fn status(&self) -> ReloadStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// Re-reads the config file and, if it is valid, makes it current. On error the running
    /// config stays, the error is logged and `amrelay_config_last_reload_successful` drops to 0.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let mut pipelines = self.pipelines.lock().expect("pipelines lock");
        let mut client_configs = self.client_configs.lock().expect("client configs lock");
        let result = config::load(&self.path, &config::Environment::from_process());
        let mut status = self.status.lock().expect("status lock");
        status.last_attempt = Some(SystemTime::now());
        let config = match result {
            Ok(config) => config,
            Err(e) => return Err(reload_failed(&self.path, &mut status, e)),
        };
        let previous = self.current.load();
        if config.server.listen_address != previous.server.listen_address {
            tracing::warn!("server.listen_address changed; the new address takes effect after a restart");
        }
        if previous.server.inbound.tls.is_some() != config.server.inbound.tls.is_some() {
            let now = if config.server.inbound.tls.is_some() { "TLS only" } else { "plain HTTP, without TLS" };
            tracing::warn!("server.tls_server_config changed: new connections are served with {now}");
        }
        if config.delivery.spool != previous.delivery.spool {
            tracing::warn!("delivery.spool changed; the new spool settings take effect after a restart");
        }
        let unchanged = config.hash == previous.hash;
        let snapshot = match build_snapshot(config, &mut pipelines, &mut client_configs, &self.spool, &self.stopping) {
            Ok(snapshot) => snapshot,
            Err(e) => return Err(reload_failed(&self.path, &mut status, e)),
        };
        tracing::info!(file = %self.path.display(), receivers = snapshot.receivers.len(), unchanged, "config reloaded");
        record_success(&snapshot);
        status.last_error = None;
        self.current.store(Arc::new(snapshot));
        Ok(())
    }

    /// The pipelines of the current receivers.
    pub fn pipelines(&self) -> Vec<Arc<Pipeline>> {
        self.pipelines.lock().expect("pipelines lock").values().cloned().collect()
    }
}

/// Logs a failed reload and records it; the running config stays.
fn reload_failed(path: &Path, status: &mut ReloadStatus, e: ConfigError) -> ConfigError {
    tracing::error!(file = %path.display(), error = %e.to_string().replace('\n', "; "), "config reload failed; keeping the running config");
    record_result(false);
    status.last_error = Some(e.to_string());
    e
}

/// Builds a snapshot, reusing the pipeline of every receiver whose name is unchanged and starting
/// pipelines for new ones. Pipelines of removed receivers are dropped from the registry; they drain
/// once the last snapshot holding them is gone. Every receiver's TLS config is built first, so an
/// error changes nothing.
fn build_snapshot(
    config: Config,
    pipelines: &mut HashMap<String, Arc<Pipeline>>,
    client_configs: &mut ClientConfigs,
    spool: &Arc<Spool>,
    stopping: &watch::Receiver<bool>,
) -> Result<Snapshot, ConfigError> {
    let mut tls = Vec::with_capacity(config.receivers.len());
    let mut issues = Vec::new();
    for (index, receiver) in config.receivers.iter().enumerate() {
        match client_configs.get(&receiver.endpoint.tls.client) {
            Ok(client_config) => tls.push(client_config),
            Err(message) => issues.push(config::Issue {
                position: None,
                field: format!("receivers[{index}].http_config.tls_config"),
                message,
            }),
        }
    }
    if !issues.is_empty() {
        return Err(ConfigError { file: config.source, issues });
    }
    let mut next = HashMap::with_capacity(config.receivers.len());
    let mut receivers = Vec::with_capacity(config.receivers.len());
    let mut insecure = 0;
    log_warnings(&config);
    let mut label_index = LabelIndex::default();
    for (mut receiver, client_config) in config.receivers.into_iter().zip(tls) {
        receiver.rule.intern(&mut label_index);
        if receiver.endpoint.tls.insecure_skip_verify {
            insecure += 1;
            tracing::warn!(receiver = %receiver.name, "TLS certificate verification is disabled (insecure_skip_verify: true)");
        }
        let pipeline = match pipelines.remove(&receiver.name) {
            Some(existing) => {
                existing.update(&receiver, &client_config);
                existing
            }
            None => Pipeline::start(&receiver, &client_config, spool.clone(), stopping.clone()),
        };
        next.insert(receiver.name.clone(), pipeline.clone());
        receivers.push(ActiveReceiver { config: receiver, pipeline });
    }
    for name in pipelines.keys() {
        tracing::info!(receiver = %name, "receiver removed; its queued notifications are still delivered");
    }
    *pipelines = next;
    metrics::gauge!(m::TLS_INSECURE_RECEIVERS).set(insecure as f64);
    Ok(Snapshot {
        source: config.source,
        hash: config.hash,
        loaded_at: SystemTime::now(),
        server: config.server,
        delivery: config.delivery,
        receivers,
        label_index,
        referenced_files: config.referenced_files,
    })
}

/// Logs what is allowed but unwise (a world-readable secret file, credentials over plain HTTP),
/// at every load, like `insecure_skip_verify`.
fn log_warnings(config: &Config) {
    for warning in &config.warnings {
        let position = warning.position.map(|(line, column)| format!("{line}:{column}")).unwrap_or_default();
        tracing::warn!(file = %config.source.display(), position, field = %warning.field, problem = %warning.message, "config warning");
    }
}

/// Sets the reload metrics after an attempt.
pub fn record_result(success: bool) {
    metrics::gauge!(m::CONFIG_LAST_RELOAD_SUCCESSFUL).set(if success { 1.0 } else { 0.0 });
    metrics::counter!(m::CONFIG_RELOADS, "result" => if success { "success" } else { "failure" }).increment(1);
}

fn record_success(snapshot: &Snapshot) {
    record_result(true);
    let now = snapshot.loaded_at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    metrics::gauge!(m::CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP).set(now);
    metrics::gauge!(m::CONFIG_HASH).set(snapshot.hash as f64);
}
