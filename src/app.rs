//! Putting the relay together: build (load config, start pipelines, bind), run, drain.
//!
//! [`Relay::start`] does everything that may fail — an invalid config or an unusable listen
//! address is reported before anything is served. [`Relay::run`] serves until its shutdown
//! future completes; [`Relay::shutdown`] then stops accepting, lets open requests finish, and
//! gives queued notifications until the shutdown timeout to be delivered. Every dispatcher is
//! tracked by one `TaskTracker`, and shutdown is two `CancellationToken`s (drain, then stop), so
//! the drain waits on the tasks themselves, never by polling counters.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::queue::{self, Shared};
use crate::reload::Reloader;
use crate::server::{self, AppState};
use crate::spool::{Spool, Stored};

/// What the command line decides.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: PathBuf,
    /// Overrides `server.listen_address`.
    pub listen_address: Option<String>,
    /// How long shutdown waits for open requests and queued notifications.
    pub shutdown_timeout: Duration,
    /// Reload when the config file (or a file it names) changes on disk.
    pub watch_config: bool,
    /// `--config.console-file`: `None` for the default (beside the spool), an empty path for off.
    pub console_file: Option<PathBuf>,
}

impl Options {
    /// Defaults for `config_file`: its own listen address, a 30 s drain, file watching on.
    pub fn new(config_file: impl Into<PathBuf>) -> Options {
        Options {
            config_file: config_file.into(),
            listen_address: None,
            shutdown_timeout: Duration::from_secs(30),
            watch_config: true,
            console_file: None,
        }
    }
}

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    local_addr: SocketAddr,
    state: Arc<AppState>,
    /// Cancelled to stop accepting connections.
    stop_serving: CancellationToken,
    server: JoinHandle<()>,
    watcher: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl Relay {
    /// Loads the config, starts every receiver's pipeline and binds the listener.
    pub async fn start(options: Options) -> anyhow::Result<Relay> {
        let metrics = crate::metrics::install();
        let config =
            crate::config::load(&options.config_file, &crate::config::Environment::from_process()).map_err(|e| {
                crate::reload::record_result(false);
                anyhow::anyhow!("{e}")
            })?;
        // The process byte budget: the runtime's, charged by requests, queues and the store.
        let budget = crate::memory::Budget::process();
        let (spool, restored) = match (&config.delivery.spool, &config.delivery.nats) {
            (_, Some(nats)) => {
                let backend = crate::spool::nats::Backend::connect(nats, config.delivery.max_dead_letters)
                    .await
                    .map_err(anyhow::Error::msg)?;
                backend.warn_if_smaller_than(config.server.max_request_bytes);
                (Spool::shared(backend), Vec::new())
            }
            (Some(spool_config), None) => {
                let (spool, restored) =
                    Spool::open(spool_config, config.delivery.max_dead_letters).map_err(anyhow::Error::msg)?;
                tracing::info!(path = %spool_config.path.display(), pending = restored.len(), "spool opened");
                (spool, restored)
            }
            (None, None) => {
                tracing::info!(
                    "no delivery.spool.path: queued notifications are kept in memory only and a crash loses them"
                );
                (Spool::memory(config.delivery.max_dead_letters, budget.clone()), Vec::new())
            }
        };
        let console_file =
            crate::editor::probe(crate::config::console_file(options.console_file.as_deref(), &config.delivery));
        match &console_file {
            crate::config::ConsoleFile::At(path) => {
                tracing::info!(file = %path.display(), "receivers can be edited in the console")
            }
            other => tracing::info!(reason = other.editing_off().unwrap_or_default(), "console editing off"),
        }
        for action in ["create", "replace", "delete", "enable", "disable"] {
            // Registered at zero, so that a dashboard's increase() sees the first change.
            // Of global receivers (tenant ""); a tenant's series appears with its first change.
            metrics::counter!(crate::metrics::CONFIG_CHANGES, "source" => "console", "action" => action, "tenant" => "")
                .increment(0);
        }
        // Silences live next to the spool file, in JetStream (opened once it is provisioned,
        // below) or, without either, in memory.
        let silences = match (&config.delivery.spool, &config.delivery.nats) {
            (_, Some(_)) => crate::mute::Silences::shared_later(),
            (Some(spool_config), None) => {
                crate::mute::Silences::open(&spool_config.path).map_err(anyhow::Error::msg)?
            }
            (None, None) => crate::mute::Silences::in_memory(),
        };
        let spool = Arc::new(spool);
        if let Some(export) = &config.history_export {
            // Before the restore below, whose dead letters of removed receivers are records too.
            spool.export_history(crate::history_export::start(export).map_err(anyhow::Error::msg)?);
            tracing::info!(url = %crate::redact::url(&export.endpoint.url), "history records are exported");
        }
        let reloader = Reloader::start_with_console(
            &options.config_file,
            config,
            console_file,
            Shared::new(spool, budget).with_silences(silences),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        restore(&reloader, restored);
        let address =
            options.listen_address.clone().unwrap_or_else(|| reloader.snapshot().server.listen_address.clone());
        let listener = TcpListener::bind(&address).await.with_context(|| format!("cannot listen on {address}"))?;
        let local_addr = listener.local_addr()?;
        let http_metrics = crate::server::HttpMetrics::new();
        let state = Arc::new(AppState {
            http_metrics,
            reloader,
            metrics,
            ready: false.into(),
            started_at: SystemTime::now(),
            password_checks: Default::default(),
            console_edits: Default::default(),
            listener: server::Listener { local_addr },
            tests_in_flight: Default::default(),
        });
        if let Some(warning) =
            crate::config::exposure_warning(&local_addr.to_string(), &state.reloader.snapshot().server.inbound)
        {
            tracing::warn!("{warning}");
        }
        let stop_serving = CancellationToken::new();
        let server = tokio::spawn(server::serve(
            listener,
            state.clone(),
            stop_serving.clone().cancelled_owned(),
            options.shutdown_timeout,
        ));
        let watcher = if options.watch_config {
            Some(crate::watch::start(state.clone()).context("cannot watch the config file")?)
        } else {
            None
        };
        if let Some(backend) = state.reloader.spool().backend() {
            // Made while the listener answers: alive (`/-/healthy`), not ready (`/-/ready` 503),
            // as long as the servers need; a rollout's replicas start together and keep them busy.
            tracing::info!(address = %local_addr, "listening, not ready until the JetStream streams and consumers are made");
            if let Err(e) = backend.provision().await {
                stop_serving.cancel();
                return Err(anyhow::Error::msg(e));
            }
            // The shared silences, retried as the streams are: replicas that start together on a
            // fresh cluster keep the servers busy for a while.
            let nats = backend.config();
            let bucket = format!("{}_SILENCES", nats.stream);
            let mut wait = Duration::from_millis(200);
            while let Err(e) = state.reloader.shared().silences.share(backend.jetstream(), &bucket, nats.replicas).await
            {
                tracing::warn!(bucket = %bucket, error = %e, retry_in = ?wait, "the shared silences are not open yet; not ready meanwhile");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            // Every replica delivers from the shared queue, into the current receivers' pipelines.
            crate::spool::nats::consume(backend.clone(), Arc::new(Pipelines(state.clone())));
        }
        state.ready.store(true, Ordering::Relaxed);
        let snapshot = state.reloader.snapshot();
        tracing::info!(
            address = %local_addr, config = %options.config_file.display(), receivers = snapshot.receivers.len(),
            version = env!("CARGO_PKG_VERSION"), "amrelay started"
        );
        Ok(Relay { local_addr, state, stop_serving, server, watcher, shutdown_timeout: options.shutdown_timeout })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Shared state, for reloads and inspection.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Reloads the config file, as SIGHUP and `POST /-/reload` do. Errors are also logged and
    /// counted; the running config stays.
    pub async fn reload(&self) -> Result<(), crate::config::ConfigError> {
        self.state.reload().await
    }

    /// Serves until `shutdown` completes, then drains (see [`Relay::shutdown`]).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> usize {
        shutdown.await;
        tracing::info!("shutdown requested; draining");
        self.shutdown().await
    }

    /// Stops accepting and finishes open requests. With a persistent spool, workers then stop
    /// after their current attempt and the spool is flushed: everything not yet delivered is
    /// delivered after the next start. Without one, queued notifications get until the shutdown
    /// timeout to be delivered. Returns how many notifications are left undelivered.
    pub async fn shutdown(mut self) -> usize {
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        self.state.ready.store(false, Ordering::Relaxed);
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
        self.stop_serving.cancel();
        let _ = (&mut self.server).await;
        let reloader = &self.state.reloader;
        let shared = reloader.shared();
        let spool = reloader.spool().clone();
        shared.tracker.close();
        if !spool.is_persistent() {
            // Dispatchers take nothing new, deliver what they hold, and exit.
            shared.drain.cancel();
            let _ = tokio::time::timeout_at(deadline, shared.tracker.wait()).await;
        }
        // Whatever is still running stops after its current attempt.
        shared.stop.cancel();
        let _ = tokio::time::timeout_at(deadline, shared.tracker.wait()).await;
        let left = queue::total_depth(&reloader.pipelines());
        spool.close().await;
        match (left, spool.is_persistent()) {
            (0, _) => tracing::info!("all accepted notifications delivered; exiting"),
            (left, true) => {
                tracing::info!(pending = left, "pending notifications stay in the spool for the next start")
            }
            (left, false) => tracing::error!(
                undelivered = left,
                "shutdown timeout reached without a spool; these notifications are lost"
            ),
        }
        left
    }
}

/// Hands notifications restored from the spool back to their receivers, in acceptance order.
/// A receiver that no longer exists cannot take them: they become dead letters, to be replayed
/// if it comes back.
fn restore(reloader: &Reloader, restored: Vec<Stored>) {
    let snapshot = reloader.snapshot();
    for stored in restored {
        match snapshot.receiver(&stored.receiver) {
            Some(receiver) => {
                metrics::counter!(crate::metrics::NOTIFICATIONS_RESTORED, "receiver" => stored.receiver.clone())
                    .increment(1);
                crate::accept::restore(&receiver.pipeline, stored);
            }
            None => {
                tracing::error!(receiver = %stored.receiver, group_key = %stored.header.group_key,
                    "restored notification for a receiver no longer configured; dead-lettered");
                let info = crate::deliver::receiver_removed(&stored.receiver);
                reloader.spool().record_history(removed_record(&stored));
                reloader.spool().dead_letter(
                    &stored.receiver.as_str().into(),
                    stored.seq,
                    stored.header,
                    stored.body,
                    info,
                );
            }
        }
    }
}

/// The history record of a notification given up because its receiver is gone.
fn removed_record(stored: &Stored) -> crate::history::Record {
    let ending = crate::deliver::history::Ending {
        attempts: stored.header.attempts,
        reason: Some(crate::deliver::DeadLetterReason::ReceiverRemoved.as_str()),
        error: Some("receiver no longer in the config".into()),
        ..Default::default()
    };
    let outcome = crate::history::Outcome::ReceiverRemoved;
    let of = crate::deliver::history::Finished::stored(stored);
    crate::deliver::history::record(&stored.receiver, None, of, outcome, ending)
}

/// Where the shared queue's consumer hands what it pulls: the pipeline of the receiver of that
/// name in the config that runs now.
struct Pipelines(Arc<AppState>);

impl crate::spool::nats::Sink for Pipelines {
    fn queue(&self, receiver: &str) -> Option<Box<dyn FnOnce(Stored) + Send>> {
        let pipeline = self.0.reloader.snapshot().receiver(receiver)?.pipeline.clone();
        Some(Box::new(move |stored| crate::accept::restore(&pipeline, stored)))
    }

    fn receiver_removed(&self, receiver: &str, header: &crate::spool::Header, body: &[u8]) -> crate::spool::DeadInfo {
        let stored =
            Stored { receiver: receiver.to_owned(), seq: 0, header: header.clone(), body: body.to_vec().into() };
        self.0.reloader.spool().record_history(removed_record(&stored));
        crate::deliver::receiver_removed(receiver)
    }
}
