//! What every handler can reach: the reloader (and through it the current snapshot, the spool and
//! the pipelines), readiness, and request metrics registered up front.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::metrics as m;
use crate::reload::Reloader;

/// Every handler label of `amrelay_http_requests_total`.
const HANDLERS: [&str; 19] = [
    "receivers",
    "receiver_test",
    "webhook",
    "metrics",
    "healthy",
    "ready",
    "reload",
    "status",
    "test",
    "deadletters",
    "threads",
    "history",
    "console",
    "route_test",
    "cross_site",
    "exposure",
    "silences",
    "forbidden",
    "other",
];
/// Status codes whose series are registered up front.
const CODES: [u16; 16] = [200, 201, 400, 401, 403, 404, 405, 408, 409, 412, 413, 415, 429, 500, 502, 503];

/// Request metrics registered up front for every handler and the usual codes, so a usual answer
/// does no registry lookup; a code outside [`CODES`] (and a refusal's own counters, such as
/// `amrelay_batches_rejected_total`) is looked up when it happens.
#[derive(Debug)]
pub struct HttpMetrics {
    requests: HashMap<(&'static str, u16), Counter>,
    durations: HashMap<&'static str, Histogram>,
    /// `amrelay_alerts_received_total`.
    pub alerts_received: Counter,
}

impl HttpMetrics {
    pub fn new() -> HttpMetrics {
        let mut requests = HashMap::new();
        let mut durations = HashMap::new();
        for handler in HANDLERS {
            for code in CODES {
                requests.insert(
                    (handler, code),
                    metrics::counter!(m::HTTP_REQUESTS, "handler" => handler, "code" => code.to_string()),
                );
            }
            durations.insert(handler, metrics::histogram!(m::HTTP_REQUEST_DURATION, "handler" => handler));
        }
        HttpMetrics { requests, durations, alerts_received: metrics::counter!(m::ALERTS_RECEIVED) }
    }

    pub(super) fn record(&self, handler: &'static str, status: http::StatusCode, seconds: f64) {
        match self.requests.get(&(handler, status.as_u16())) {
            Some(counter) => counter.increment(1),
            None => metrics::counter!(m::HTTP_REQUESTS, "handler" => handler, "code" => status.as_str().to_owned())
                .increment(1),
        }
        match self.durations.get(handler) {
            Some(histogram) => histogram.record(seconds),
            None => metrics::histogram!(m::HTTP_REQUEST_DURATION, "handler" => handler).record(seconds),
        }
    }
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What every handler can reach.
#[derive(Debug)]
pub struct AppState {
    pub http_metrics: HttpMetrics,
    pub reloader: Reloader,
    pub metrics: PrometheusHandle,
    /// False until the listener is up, and again once shutdown begins.
    pub ready: AtomicBool,
    pub started_at: SystemTime,
    /// Slots for bcrypt verifications of inbound basic auth.
    pub password_checks: super::auth::PasswordChecks,
    /// Console edits, one at a time (off the request path: only the receivers API takes it).
    pub console_edits: tokio::sync::Mutex<()>,
    /// The bound listener: whether other hosts can reach the admin side.
    pub listener: super::exposure::Listener,
    /// Test messages in flight: at most one per receiver, and a few in all.
    pub tests_in_flight: crate::test_message::TestsInFlight,
}

impl AppState {
    /// Reloads the config file (and the console file) off the async runtime: the one way the
    /// file watcher, SIGHUP, `/-/reload` and console edits reload. Errors are also logged and
    /// counted by the reloader; the running config stays.
    pub async fn reload(self: &std::sync::Arc<Self>) -> Result<(), crate::config::ConfigError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.reloader.reload()).await.unwrap_or_else(|e| {
            Err(crate::config::ConfigError {
                file: self.reloader.path().to_owned(),
                issues: vec![crate::config::Issue {
                    position: None,
                    field: String::new(),
                    message: format!("reload task failed: {e}"),
                }],
            })
        })
    }
}
