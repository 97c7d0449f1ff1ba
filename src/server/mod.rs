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
mod exposure;
mod grafana;
mod history;
mod limits;
mod receiver_items;
mod receivers_api;
mod response;
mod roles;
mod routes;
mod scope;
mod silences;
mod state;
mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use exposure::Listener;
pub use state::{AppState, HttpMetrics};

use crate::config::Limits;
use crate::metrics as m;

/// Serves `listener` until `shutdown` completes, then waits up to `drain` for open requests.
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>, drain: Duration) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(conn::Open::default());
    everyone_is_admin_note(&state.reloader.snapshot().server.inbound);
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
                let slot = match conn::Slot::take(&open, peer.ip(), limits.max_connections, limits.max_connections_per_client) {
                    Ok(slot) => slot,
                    Err(refusal) => {
                        let reason = match refusal {
                            conn::Refusal::MaxConnections => "max_connections",
                            conn::Refusal::MaxConnectionsPerClient => "max_connections_per_client",
                        };
                        metrics::counter!(m::CONNECTION_ERRORS, "reason" => reason).increment(1);
                        tracing::debug!(%peer, "connection refused: server.limits.{reason} reached");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let activity = conn::Activity::new();
                let requests = activity.clone();
                let service = service_fn(move |request| {
                    let state = state.clone();
                    let in_flight = requests.request();
                    async move {
                        let response = routes::handle(state, request, Some(peer.ip())).await;
                        drop(in_flight);
                        response
                    }
                });
                let builder = builder(&limits);
                let watcher = graceful.watcher();
                let io = conn::IdleTimeout::new(stream, limits.idle_timeout);
                tokio::spawn(async move {
                    let _slot = slot;
                    let serve = async { match tls {
                        None => watcher.watch(builder.serve_connection(TokioIo::new(io), service).into_owned()).await,
                        Some(tls) => {
                            // The handshake is bounded like the headers that follow it.
                            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                            let stream = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io)).await {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => {
                                    handshake_failed(peer, &e);
                                    return Ok(());
                                }
                                Err(_) => {
                                    metrics::counter!(m::CONNECTION_ERRORS, "reason" => "timeout").increment(1);
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return Ok(());
                                }
                            };
                            watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await
                        }
                    }};
                    // No request for too long (none at all, or only PINGs): close. Nothing is
                    // in flight then, so nothing is lost.
                    let result = tokio::select! {
                        result = serve => result,
                        () = activity.expired(limits.header_read_timeout, limits.idle_timeout) => {
                            metrics::counter!(m::CONNECTION_ERRORS, "reason" => "no_request").increment(1);
                            tracing::debug!(%peer, "connection closed: no request within its deadline");
                            return;
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

/// Counts a failed TLS handshake; a refused client certificate (wrong CA, expired, a version
/// rustls does not accept) is also logged with its reason, at most once per
/// [`REFUSAL_LOG_INTERVAL`], so a misconfigured Alertmanager shows up without flooding the log.
fn handshake_failed(peer: std::net::SocketAddr, error: &std::io::Error) {
    let rustls_error = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
    let client_certificate =
        matches!(rustls_error, Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented));
    if !client_certificate {
        metrics::counter!(m::CONNECTION_ERRORS, "reason" => "tls").increment(1);
        tracing::debug!(%peer, error = %error, "TLS handshake failed");
        return;
    }
    metrics::counter!(m::CONNECTION_ERRORS, "reason" => "client_certificate").increment(1);
    static LAST_LOG_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = crate::spool::unix_ms(std::time::SystemTime::now());
    let last = LAST_LOG_MS.load(std::sync::atomic::Ordering::Relaxed);
    if now.saturating_sub(last) >= REFUSAL_LOG_INTERVAL.as_millis() as u64
        && LAST_LOG_MS
            .compare_exchange(last, now, std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(%peer, error = %error, "client certificate refused (further refusals within 10s are only counted)");
    }
}

/// Without `server.access` every authenticated caller is admin, as before roles existed: said
/// once at start, since the webhook credential Alertmanager holds can then edit receivers.
fn everyone_is_admin_note(inbound: &crate::config::Inbound) {
    if inbound.auth.is_enabled() && inbound.auth.access.is_none() {
        tracing::info!(
            "no server.access: every authenticated caller is admin — the webhook credential can also edit receivers \
             (give Alertmanager the sender role in server.access)"
        );
    }
}

/// The shortest interval between two logged client-certificate refusals.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

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
