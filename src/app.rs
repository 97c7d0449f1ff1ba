//! Putting the relay together: build (load config, start pipelines, bind), run, drain.
//!
//! [`Relay::start`] does everything that may fail — an invalid config or an unusable listen
//! address is reported before anything is served. [`Relay::shutdown`] stops accepting, lets open
//! requests finish, and gives queued notifications until the shutdown timeout to be delivered.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::queue;
use crate::server::{self, AppState};
use crate::snapshot::Reloader;

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
}

impl Options {
    /// Defaults for `config_file`: its own listen address, a 30 s drain, file watching on.
    pub fn new(config_file: impl Into<PathBuf>) -> Options {
        Options {
            config_file: config_file.into(),
            listen_address: None,
            shutdown_timeout: Duration::from_secs(30),
            watch_config: true,
        }
    }
}

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    local_addr: SocketAddr,
    state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    watcher: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl Relay {
    /// Loads the config, starts every receiver's pipeline and binds the listener.
    pub async fn start(options: Options) -> anyhow::Result<Relay> {
        let metrics = crate::metrics::install();
        let reloader = Reloader::start(&options.config_file).map_err(|e| anyhow::anyhow!("{e}"))?;
        let address =
            options.listen_address.clone().unwrap_or_else(|| reloader.snapshot().server.listen_address.clone());
        let listener = TcpListener::bind(&address).await.with_context(|| format!("cannot listen on {address}"))?;
        let local_addr = listener.local_addr()?;
        let state = Arc::new(AppState { reloader, metrics, ready: false.into(), started_at: SystemTime::now() });
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(server::serve(
            listener,
            state.clone(),
            async {
                let _ = stopped.await;
            },
            options.shutdown_timeout,
        ));
        let watcher = if options.watch_config {
            Some(crate::watch::start(state.clone()).context("cannot watch the config file")?)
        } else {
            None
        };
        state.ready.store(true, Ordering::Relaxed);
        let snapshot = state.reloader.snapshot();
        tracing::info!(
            address = %local_addr, config = %options.config_file.display(), receivers = snapshot.receivers.len(),
            version = env!("CARGO_PKG_VERSION"), "amrelay started"
        );
        Ok(Relay { local_addr, state, stop: Some(stop), server, watcher, shutdown_timeout: options.shutdown_timeout })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Shared state, for reloads and inspection.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops accepting, finishes open requests, then waits (within the shutdown timeout) for
    /// queued notifications. Returns how many were left undelivered.
    pub async fn shutdown(mut self) -> usize {
        let deadline = Instant::now() + self.shutdown_timeout;
        self.state.ready.store(false, Ordering::Relaxed);
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
        let pipelines = self.state.reloader.pipelines();
        loop {
            let left = queue::total_depth(&pipelines);
            if left == 0 {
                tracing::info!("all queued notifications delivered; exiting");
                return 0;
            }
            if Instant::now() >= deadline {
                tracing::error!(
                    undelivered = left,
                    "shutdown timeout reached with notifications still queued; they are lost"
                );
                return left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
