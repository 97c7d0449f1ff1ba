//! Reloading: the one path from a config file to a running snapshot.
//!
//! Startup, the file watcher, SIGHUP and `POST /-/reload` all call [`Reloader::reload`], which
//! validates the whole new file first and changes nothing on error; only a complete new snapshot
//! is stored. Reloads are serialized by the reloader's lock, which is off the request path:
//! requests only `load` the snapshot.
//!
//! The console file (`--config.console-file`) is loaded with the config file, validated against
//! it, and merged into the same snapshot. A console file that is broken on disk does not stop a
//! reload: the last good console text is validated again and kept running, with the error shown.
//!
//! The reloader owns what outlives snapshots: each receiver's [`Pipeline`] (kept by name, so its
//! queue and connection pool survive a reload) and the pipelines' [`Shared`] parts (spool, shutdown signals).
#![allow(clippy::disallowed_types)] // The registry is touched only by reloads, one at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::{self, Config, ConfigError, ConsoleFile};
use crate::dedup::Dedup;
use crate::deliver::Target;
use crate::editor;
use crate::metrics as m;
use crate::queue::{Pipeline, Shared};
use crate::rule::LabelIndex;
use crate::snapshot::{ActiveReceiver, ConsoleState, Snapshot, Source};
use crate::spool::Spool;
use crate::tls::ClientConfigs;

/// The outcome of the last reload attempt.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    pub last_attempt: Option<SystemTime>,
    pub last_error: Option<String>,
    /// The last attempt could not run the config file as it is on disk (invalid, or its TLS
    /// could not be built): the file is no longer the text the running config was loaded from,
    /// so its line numbers ([`ConsoleState::enabled_lines`]) are not shown.
    pub config_file_changed: bool,
}

/// What outlives snapshots and only reloads touch, one at a time.
#[derive(Debug, Default)]
struct Registry {
    pipelines: HashMap<String, Arc<Pipeline>>,
    /// Outbound TLS configs with the system roots, kept across reloads.
    client_configs: ClientConfigs,
    /// The text of the last console file that was valid, kept running when the file breaks.
    console_good: Option<String>,
    /// The `amrelay_receiver_info` series set to 1 by the last snapshot.
    receiver_info: Vec<[String; 3]>,
}

/// Owns the pipelines and swaps snapshots.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    console_file: ConsoleFile,
    current: ArcSwap<Snapshot>,
    registry: Mutex<Registry>,
    status: ArcSwap<ReloadStatus>,
    shared: Shared,
    /// Notifications recently accepted, for `delivery.dedup_window`.
    dedup: Dedup,
}

impl Reloader {
    /// Starts the pipelines of a loaded config (the first load). Fails only if a receiver's TLS
    /// config cannot be built with the system's CA store.
    pub fn start(path: &Path, config: Config, shared: Shared) -> Result<Reloader, ConfigError> {
        let off = ConsoleFile::Off("no console file".into());
        Reloader::start_with_console(path, config, off, shared)
    }

    /// Like [`Reloader::start`], with the console file's receivers merged in (a broken console
    /// file is logged and shown; the config file's receivers start regardless).
    pub fn start_with_console(
        path: &Path,
        mut config: Config,
        console_file: ConsoleFile,
        shared: Shared,
    ) -> Result<Reloader, ConfigError> {
        let mut registry = Registry::default();
        let console = merge_console(&console_file, &mut config, &mut registry);
        let snapshot = build_snapshot(config, console, &mut registry, &shared)?;
        record_success(&snapshot);
        apply_byte_limits(&shared, &snapshot);
        if let Some(error) = &snapshot.console.error {
            record_result(false);
            tracing::error!(file = %console_file.path().unwrap_or(Path::new("")).display(), error = %error.replace('\n', "; "), "console file invalid; its receivers are not running");
        }
        let last_error = snapshot.console.error.clone();
        Ok(Reloader {
            console_file,
            path: path.to_owned(),
            current: ArcSwap::from_pointee(snapshot),
            registry: Mutex::new(registry),
            status: ArcSwap::from_pointee(ReloadStatus {
                last_attempt: Some(SystemTime::now()),
                last_error,
                config_file_changed: false,
            }),
            shared,
            dedup: Dedup::default(),
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

    /// Where console-managed receivers are kept, or why there are none.
    pub fn console_file(&self) -> &ConsoleFile {
        &self.console_file
    }

    /// The last reload attempt's outcome.
    pub fn status(&self) -> ReloadStatus {
        ReloadStatus::clone(&self.status.load())
    }

    /// Where every pipeline keeps its notifications; opened once per process.
    pub fn spool(&self) -> &Arc<Spool> {
        &self.shared.spool
    }

    /// The duplicate filter of `delivery.dedup_window`.
    pub fn dedup(&self) -> &Dedup {
        &self.dedup
    }

    /// The process byte budget (`server.limits.max_memory_bytes`): what requests and queues hold.
    pub fn budget(&self) -> &Arc<crate::memory::Budget> {
        &self.shared.budget
    }

    /// What every pipeline shares (spool, memory budget, shutdown signals, task tracker).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Re-reads the config file and, if it is valid, makes it current. On error the running
    /// config stays, the error is logged and `amrelay_config_last_reload_successful` drops to 0.
    /// Blocking (file reads): call it from a blocking context.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let mut registry = self.registry.lock().expect("registry lock");
        // The process environment is read here, at the edge: parsing only gets it as an argument.
        let result = config::load(&self.path, &config::Environment::from_process());
        let attempted = Some(SystemTime::now());
        let mut config = match result {
            Ok(config) => config,
            Err(e) => return Err(self.failed(attempted, e, true)),
        };
        let previous = self.current.load();
        warn_about_restart_only_changes(&previous, &config);
        let unchanged = config.hash == previous.hash;
        let console_good = registry.console_good.clone();
        let console = merge_console(&self.console_file, &mut config, &mut registry);
        let snapshot = match build_snapshot(config, console, &mut registry, &self.shared) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                registry.console_good = console_good;
                return Err(self.failed(attempted, e, true));
            }
        };
        tracing::info!(file = %self.path.display(), receivers = snapshot.receivers.len(), unchanged, "config reloaded");
        record_success(&snapshot);
        apply_byte_limits(&self.shared, &snapshot);
        let console_error = snapshot.console.error.clone();
        self.current.store(Arc::new(snapshot));
        if let Some(error) = console_error {
            // The config file's receivers are current; the console file's last good ones run.
            let file = self.console_file.path().unwrap_or(Path::new("")).to_owned();
            let e = ConfigError {
                file,
                issues: vec![config::Issue { position: None, field: String::new(), message: error }],
            };
            return Err(self.failed(attempted, e, false));
        }
        self.status.store(Arc::new(ReloadStatus {
            last_attempt: attempted,
            last_error: None,
            config_file_changed: false,
        }));
        Ok(())
    }

    /// Logs a failed reload and records it; the running config stays (`config_file_changed`:
    /// the config file on disk is not the one running).
    fn failed(&self, attempted: Option<SystemTime>, e: ConfigError, config_file_changed: bool) -> ConfigError {
        tracing::error!(file = %self.path.display(), error = %e.to_string().replace('\n', "; "), "config reload failed; keeping the running config");
        record_result(false);
        self.status.store(Arc::new(ReloadStatus {
            last_attempt: attempted,
            last_error: Some(e.to_string()),
            config_file_changed,
        }));
        e
    }

    /// The pipelines of the current receivers.
    pub fn pipelines(&self) -> Vec<Arc<Pipeline>> {
        self.registry.lock().expect("registry lock").pipelines.values().cloned().collect()
    }
}

/// Some settings are read once at start: say so when a reload changes them.
fn warn_about_restart_only_changes(previous: &Snapshot, config: &Config) {
    if config.server.listen_address != previous.server.listen_address {
        tracing::warn!("server.listen_address changed; the new address takes effect after a restart");
    }
    if previous.server.inbound.tls.is_some() != config.server.inbound.tls.is_some() {
        let now = if config.server.inbound.tls.is_some() { "TLS only" } else { "plain HTTP, without TLS" };
        tracing::warn!("server.tls_server_config changed: new connections are served with {now}");
    }
    if config.delivery.nats != previous.delivery.nats {
        tracing::warn!("delivery.nats changed; the new NATS settings take effect after a restart");
    }
    if config.delivery.spool != previous.delivery.spool {
        tracing::warn!("delivery.spool changed; the new spool settings take effect after a restart");
    }
}

/// Loads the console file and adds its receivers to `config`; a broken file keeps the last good
/// text's receivers (validated again against this config), with the error recorded. Also finds
/// the `enabled:` line of each of the config file's receivers, once per load.
fn merge_console(file: &ConsoleFile, config: &mut Config, registry: &mut Registry) -> ConsoleState {
    let enabled_lines = editor::file::loaded_text(&config.source, config.hash)
        .map(|text| editor::lines::enabled_lines(&text, config.receivers.iter().map(|r| (r.name.as_str(), r.enabled))))
        .unwrap_or_default();
    let Some(path) = file.path() else {
        return ConsoleState {
            file: file.clone(),
            max_receivers: config.console.max_receivers,
            enabled_lines,
            ..ConsoleState::off("")
        };
    };
    let fail = |message: String| ConfigError {
        file: path.to_owned(),
        issues: vec![config::Issue { position: None, field: String::new(), message }],
    };
    let on_disk = editor::file::read_on_disk(path);
    let (disk_hash, changed_at, text) = (on_disk.hash, on_disk.changed_at, on_disk.text.map_err(fail));
    let loaded = text.and_then(|text| config::console_from_str(&text, path, config).map(|c| (c, text)));
    let (console, error) = match loaded {
        Ok((console, text)) => {
            registry.console_good = Some(text);
            (Some(console), None)
        }
        Err(e) => {
            let kept =
                registry.console_good.as_deref().and_then(|good| config::console_from_str(good, path, config).ok());
            let error = if kept.is_some() {
                format!("{e}\n(the console file's last good receivers keep running)")
            } else {
                e.to_string()
            };
            (kept, Some(error))
        }
    };
    let mut state = ConsoleState {
        file: file.clone(),
        hash: console.as_ref().map(|c| c.hash),
        disk_hash,
        changed_at,
        error,
        conflicts: Vec::new(),
        max_receivers: config.console.max_receivers,
        enabled_lines,
    };
    if let Some(console) = console {
        for conflict in &console.conflicts {
            tracing::error!(file = %path.display(), field = %conflict.field, problem = %conflict.message, "console receiver skipped");
        }
        for warning in &console.warnings {
            tracing::warn!(file = %path.display(), field = %warning.field, problem = %warning.message, "console file warning");
        }
        state.conflicts = console.conflicts;
        config.referenced_files.extend(console.referenced_files);
        config.console_receivers = console.receivers.len();
        config.receivers.extend(console.receivers);
    }
    state
}

/// Builds a snapshot, reusing the pipeline of every receiver whose name is unchanged and starting
/// pipelines for new ones. Pipelines of removed receivers are dropped from the registry; they drain
/// once the last snapshot holding them is gone. Every receiver's TLS config is built first, so an
/// error changes nothing.
fn build_snapshot(
    config: Config,
    console: ConsoleState,
    registry: &mut Registry,
    shared: &Shared,
) -> Result<Snapshot, ConfigError> {
    let first_console = config.receivers.len() - config.console_receivers;
    let mut tls = Vec::with_capacity(config.receivers.len());
    let mut issues = Vec::new();
    for (index, receiver) in config.receivers.iter().enumerate() {
        match registry.client_configs.get(&receiver.endpoint.tls.client) {
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
    let pipelines = &mut registry.pipelines;
    let mut next = HashMap::with_capacity(config.receivers.len());
    let mut receivers = Vec::with_capacity(config.receivers.len());
    let mut insecure = 0;
    log_warnings(&config);
    let mut label_index = LabelIndex::default();
    for (index, (mut receiver, client_config)) in config.receivers.into_iter().zip(tls).enumerate() {
        receiver.rule.intern(&mut label_index);
        if receiver.endpoint.tls.insecure_skip_verify {
            insecure += 1;
            tracing::warn!(receiver = %receiver.name, "TLS certificate verification is disabled (insecure_skip_verify: true)");
        }
        let pipeline = match pipelines.remove(&receiver.name) {
            Some(existing) => {
                // The same TLS settings keep the client, and so its pooled connections.
                let previous = existing.downstream().target.load();
                let mut target = Target::new(&receiver.endpoint, Some(&previous), &client_config);
                target.tenant = receiver.tenant.clone();
                existing.update(&receiver, target);
                existing
            }
            None => {
                let mut target = Target::new(&receiver.endpoint, None, &client_config);
                target.tenant = receiver.tenant.clone();
                Pipeline::start(&receiver, target, shared)
            }
        };
        next.insert(receiver.name.clone(), pipeline.clone());
        let source = if index < first_console { Source::File } else { Source::Console };
        receivers.push(ActiveReceiver { config: receiver, pipeline, source });
    }
    for name in pipelines.keys() {
        tracing::info!(receiver = %name, "receiver removed; its queued notifications are still delivered");
    }
    *pipelines = next;
    metrics::gauge!(m::TLS_INSECURE_RECEIVERS).set(insecure as f64);
    record_receiver_info(&mut registry.receiver_info, &receivers);
    // JetStream drops duplicates by this identity too (`Nats-Msg-Id`), across replicas.
    let delivery = &config.delivery;
    let dedup_identity = (delivery.dedup_window.is_some() || delivery.nats.is_some())
        .then(|| crate::route::identity_key(delivery.dedup_key.as_ref()));
    Ok(Snapshot {
        source: config.source,
        hash: config.hash,
        loaded_at: SystemTime::now(),
        server: config.server,
        delivery: config.delivery,
        history: config.history,
        receivers,
        label_index,
        dedup_identity,
        referenced_files: config.referenced_files,
        verified: Default::default(),
        console,
    })
}

/// `amrelay_receiver_info{receiver,tenant,source}` = 1 for each receiver of the new snapshot; a
/// series of the previous one that is gone (receiver removed, tenant or source changed) drops to 0.
fn record_receiver_info(previous: &mut Vec<[String; 3]>, receivers: &[ActiveReceiver]) {
    let current: Vec<[String; 3]> = receivers
        .iter()
        .map(|r| {
            let source = match r.source {
                Source::File => "file",
                Source::Console => "console",
            };
            [r.config.name.clone(), r.config.tenant.clone().unwrap_or_default(), source.to_owned()]
        })
        .collect();
    for gone in previous.iter().filter(|labels| !current.contains(labels)) {
        let [receiver, tenant, source] = gone.clone();
        metrics::gauge!(m::RECEIVER_INFO, "receiver" => receiver, "tenant" => tenant, "source" => source).set(0.0);
    }
    for [receiver, tenant, source] in current.iter().cloned() {
        metrics::gauge!(m::RECEIVER_INFO, "receiver" => receiver, "tenant" => tenant, "source" => source).set(1.0);
    }
    *previous = current;
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

/// The byte bounds a snapshot sets for what the process holds: the memory budget
/// (`server.limits.max_memory_bytes`) and the dead letters' (`delivery.max_dead_letter_bytes`).
/// Applied when a config becomes current, not per request.
fn apply_byte_limits(shared: &Shared, snapshot: &Snapshot) {
    shared.budget.set_limit(snapshot.server.inbound.limits.max_memory_bytes);
    shared.spool.set_max_dead_letter_bytes(snapshot.delivery.max_dead_letter_bytes);
    shared.spool.apply_history(&snapshot.history);
}
