//! Request dispatch by method and path, with per-handler metrics.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

use http::{Method, Request};
use hyper::body::Incoming;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::PrometheusHandle;

use super::response::{ApiError, HttpResponse};
use super::{admin, console, webhook};
use crate::metrics as m;
use crate::snapshot::Reloader;

/// Every handler label of `amrelay_http_requests_total`.
const HANDLERS: [&str; 11] = [
    "webhook",
    "metrics",
    "healthy",
    "ready",
    "reload",
    "status",
    "test",
    "deadletters",
    "console",
    "route_test",
    "other",
];
/// Status codes whose series are registered up front.
const CODES: [u16; 11] = [200, 400, 401, 404, 405, 408, 413, 415, 500, 502, 503];

/// Request metrics registered once, so answering a request does no registry lookup.
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

    fn record(&self, handler: &'static str, status: http::StatusCode, seconds: f64) {
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
}

/// The receiver named by `/api/v1/receivers/{name}/test`.
fn test_target(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/receivers/")?.strip_suffix("/test").filter(|name| !name.contains('/'))
}

/// Answers one request; never fails (errors become answers).
pub async fn handle(state: Arc<AppState>, request: Request<Incoming>) -> Result<HttpResponse, Infallible> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let snapshot = state.reloader.snapshot();
    if let Err(refused) = super::auth::authorize(&snapshot.server.inbound, &path, request.headers()).await {
        let response = refused.into_response();
        metrics::counter!(m::HTTP_REQUESTS, "handler" => "auth", "code" => response.status().as_str().to_owned())
            .increment(1);
        return Ok(response);
    }
    drop(snapshot);
    let (handler, result) = match (path.as_str(), &method) {
        ("/webhook", &Method::POST) => ("webhook", webhook::handle(&state, request, None).await),
        (p, &Method::POST) if p.starts_with("/webhook/") => {
            let name = &p["/webhook/".len()..];
            ("webhook", webhook::handle(&state, request, Some(name)).await)
        }
        ("/webhook", _) => ("webhook", Err(ApiError::MethodNotAllowed("POST"))),
        (p, _) if p.starts_with("/webhook/") => ("webhook", Err(ApiError::MethodNotAllowed("POST"))),
        ("/metrics", &Method::GET | &Method::HEAD) => ("metrics", Ok(admin::metrics(&state))),
        ("/-/healthy", &Method::GET | &Method::HEAD) => ("healthy", Ok(admin::healthy())),
        ("/-/ready", &Method::GET | &Method::HEAD) => ("ready", Ok(admin::ready(&state))),
        ("/-/reload", &Method::POST | &Method::PUT) => ("reload", admin::reload(&state).await),
        ("/api/v1/status", &Method::GET) => ("status", Ok(admin::status(&state))),
        ("/", &Method::GET | &Method::HEAD) => ("console", Ok(console::page())),
        ("/api/v1/route-test", &Method::POST) => ("route_test", console::route_test(&state, request).await),
        ("/", _) => ("console", Err(ApiError::MethodNotAllowed("GET"))),
        ("/api/v1/route-test", _) => ("route_test", Err(ApiError::MethodNotAllowed("POST"))),
        ("/api/v1/deadletters", &Method::GET) => ("deadletters", admin::dead_letters(&state).await),
        ("/api/v1/deadletters/replay", &Method::POST) => {
            let query = request.uri().query().map(str::to_owned);
            ("deadletters", admin::replay(&state, query.as_deref()).await)
        }
        (p, &Method::POST) if test_target(p).is_some() => {
            ("test", admin::test_receiver(&state, test_target(p).unwrap_or_default()).await)
        }
        ("/metrics" | "/-/healthy" | "/-/ready" | "/api/v1/status", _) => {
            ("other", Err(ApiError::MethodNotAllowed("GET")))
        }
        ("/-/reload", _) => ("reload", Err(ApiError::MethodNotAllowed("POST, PUT"))),
        _ => ("other", Err(ApiError::NotFound(format!("no such endpoint: {path}")))),
    };
    let response = result.unwrap_or_else(ApiError::into_response);
    state.http_metrics.record(handler, response.status(), started.elapsed().as_secs_f64());
    Ok(response)
}
