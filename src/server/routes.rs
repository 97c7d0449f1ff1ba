//! Request dispatch by method and path, with per-handler metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

use http::{Method, Request};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;

use super::response::{ApiError, HttpResponse};
use super::{admin, webhook};
use crate::metrics as m;
use crate::snapshot::Reloader;

/// What every handler can reach.
#[derive(Debug)]
pub struct AppState {
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
    metrics::counter!(m::HTTP_REQUESTS, "handler" => handler, "code" => response.status().as_str().to_owned())
        .increment(1);
    metrics::histogram!(m::HTTP_REQUEST_DURATION, "handler" => handler).record(started.elapsed().as_secs_f64());
    Ok(response)
}
