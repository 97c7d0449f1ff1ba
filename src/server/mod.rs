//! The HTTP listener: accepts connections (TLS when configured), serves HTTP/1.1 and HTTP/2,
//! enforces the connection limits, shuts down gracefully.
//!
//! Each accepted connection reads the current config snapshot once: its TLS certificate, limits
//! and (per request) credentials come from the newest valid config, so a renewed certificate is
//! used from the next handshake on, without a restart.

mod admin;
mod auth;
mod body;
mod browser;
mod conn;
mod console;
mod limits;
mod response;
mod routes;
mod state;
mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use state::{AppState, HttpMetrics};

use crate::config::Limits;
use crate::metrics as m;

/// Serves `listener` until `shutdown` completes, then waits up to `drain` for open requests.
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>, drain: Duration) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(AtomicUsize::new(0));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (limits, tls) = {
                    let snapshot = state.reloader.snapshot();
                    let inbound = &snapshot.server.inbound;
                    (inbound.limits, inbound.tls.as_ref().map(|tls| tls.config.clone()))
                };
                // Over the limit: close at once, so a flood of idle connections costs nothing.
                let Some(slot) = conn::Slot::take(&open, limits.max_connections) else {
                    metrics::counter!(m::CONNECTION_ERRORS, "reason" => "max_connections").increment(1);
                    tracing::debug!(%peer, "connection refused: server.limits.max_connections reached");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let service = service_fn(move |request| routes::handle(state.clone(), request));
                let builder = builder(&limits);
                let watcher = graceful.watcher();
                let io = conn::IdleTimeout::new(stream, limits.idle_timeout);
                tokio::spawn(async move {
                    let _slot = slot;
                    let result = match tls {
                        None => watcher.watch(builder.serve_connection(TokioIo::new(io), service).into_owned()).await,
                        Some(tls) => {
                            // The handshake is bounded like the headers that follow it.
                            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                            let stream = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io)).await {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => {
                                    metrics::counter!(m::CONNECTION_ERRORS, "reason" => "tls").increment(1);
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    metrics::counter!(m::CONNECTION_ERRORS, "reason" => "timeout").increment(1);
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                            watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await
                        }
                    };
                    if let Err(e) = result {
                        let reason = connection_error_reason(e.as_ref());
                        metrics::counter!(m::CONNECTION_ERRORS, "reason" => reason).increment(1);
                        tracing::debug!(%peer, reason, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => tracing::warn!("open connections did not finish in time"),
    }
}

/// Concurrent HTTP/2 streams per connection: Alertmanager sends one notification at a time per
/// connection, and each stream may buffer up to `max_request_bytes`.
const MAX_CONCURRENT_STREAMS: u32 = 16;

/// An HTTP/1.1 + HTTP/2 connection builder with the configured header read timeout.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    builder
}

/// The `reason` label for a connection that ended with an error.
fn connection_error_reason(error: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            if hyper.is_timeout() {
                return "timeout";
            }
            if hyper.is_parse() || hyper.is_parse_too_large() {
                return "malformed";
            }
        }
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return "timeout";
        }
        current = e.source();
    }
    "other"
}
