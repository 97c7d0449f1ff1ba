//! Request dispatch by method and path, with per-handler metrics.
//!
//! The snapshot is loaded once here, checked for the sender's credentials, and handed to the
//! handler that needs it, so a request never mixes two configs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request};
use hyper::body::Incoming;

use super::receivers_api::{self, Route};
use super::response::{ApiError, HttpResponse};
use super::state::AppState;
use super::{admin, console, roles, webhook};
use crate::metrics as m;

/// Answers one request from `peer`; never fails (errors become answers).
pub async fn handle(
    state: Arc<AppState>,
    request: Request<Incoming>,
    peer: Option<std::net::IpAddr>,
) -> Result<HttpResponse, Infallible> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if let Some(refused) = super::browser::cross_site(&method, request.headers()) {
        let mut response = ApiError::Forbidden(refused).into_response();
        super::browser::harden(&mut response);
        state.http_metrics.record("cross_site", response.status(), started.elapsed().as_secs_f64());
        return Ok(response);
    }
    let snapshot = state.reloader.snapshot();
    let authority = request.uri().authority().map(|a| a.as_str());
    if let Err(refused) =
        super::exposure::guard(&state.listener, &snapshot.server.inbound, &path, request.headers(), authority)
    {
        let mut response = refused.into_response();
        super::browser::harden(&mut response);
        state.http_metrics.record("exposure", response.status(), started.elapsed().as_secs_f64());
        return Ok(response);
    }
    let auth = super::auth::authorize(
        &snapshot.server.inbound,
        &snapshot.verified,
        &state.password_checks,
        &path,
        request.headers(),
        peer,
    )
    .await;
    let caller = match auth {
        Ok(caller) => caller,
        Err(refused) => {
            let mut response = refused.into_response();
            super::browser::harden(&mut response);
            metrics::counter!(m::HTTP_REQUESTS, "handler" => "auth", "code" => response.status().as_str().to_owned())
                .increment(1);
            return Ok(response);
        }
    };
    if !roles::allowed(caller.role, roles::need(&method, &path)) {
        let role = caller.role.map_or("none", |r| r.as_str());
        let mut response =
            ApiError::Forbidden(format!("user {:?} (role {role}) may not {method} {path}", caller.name()))
                .into_response();
        super::browser::harden(&mut response);
        state.http_metrics.record("forbidden", response.status(), started.elapsed().as_secs_f64());
        return Ok(response);
    }
    if let Err(hidden) = super::scope::check(&caller, &snapshot, &path, request.uri().query()) {
        let mut response = hidden.into_response();
        super::browser::harden(&mut response);
        state.http_metrics.record("forbidden", response.status(), started.elapsed().as_secs_f64());
        return Ok(response);
    }
    let (handler, result) = match (path.as_str(), &method) {
        ("/webhook", &Method::POST) => ("webhook", webhook::handle(&state, &snapshot, request, None).await),
        (p, &Method::POST) if p.starts_with("/webhook/") => {
            let name = &p["/webhook/".len()..];
            ("webhook", webhook::handle(&state, &snapshot, request, Some(name)).await)
        }
        ("/webhook", _) => ("webhook", Err(ApiError::MethodNotAllowed("POST"))),
        (p, _) if p.starts_with("/webhook/") => ("webhook", Err(ApiError::MethodNotAllowed("POST"))),
        ("/metrics", &Method::GET | &Method::HEAD) => ("metrics", Ok(admin::metrics(&state))),
        ("/-/healthy", &Method::GET | &Method::HEAD) => ("healthy", Ok(admin::healthy())),
        ("/-/ready", &Method::GET | &Method::HEAD) => ("ready", Ok(admin::ready(&state))),
        ("/-/reload", &Method::POST | &Method::PUT) => ("reload", admin::reload(&state, &caller).await),
        ("/api/v1/status", &Method::GET) => ("status", Ok(admin::status(&state, &snapshot, &caller))),
        ("/", &Method::GET | &Method::HEAD) => ("console", Ok(console::page())),
        ("/api/v1/route-test", &Method::POST) => {
            let silences = &state.reloader.shared().silences;
            ("route_test", console::route_test(&snapshot, &caller, state.reloader.budget(), silences, request).await)
        }
        ("/", _) => ("console", Err(ApiError::MethodNotAllowed("GET"))),
        ("/api/v1/route-test", _) => ("route_test", Err(ApiError::MethodNotAllowed("POST"))),
        ("/api/v1/deadletters", &Method::GET) => {
            let query = request.uri().query().map(str::to_owned);
            ("deadletters", admin::dead_letters(&state, &caller, query.as_deref()).await)
        }
        ("/api/v1/deadletters/body", &Method::GET) => {
            let query = request.uri().query().map(str::to_owned);
            ("deadletters", admin::dead_letter_body(&state, &caller, query.as_deref()).await)
        }
        ("/api/v1/deadletters/replay", &Method::POST) => {
            let query = request.uri().query().map(str::to_owned);
            ("deadletters", admin::replay(&state, &snapshot, &caller, query.as_deref()).await)
        }
        ("/api/v1/threads", &Method::GET) => {
            let query = request.uri().query().map(str::to_owned);
            ("threads", admin::threads(&snapshot, query.as_deref()).await)
        }
        ("/api/v1/threads", _) => ("threads", Err(ApiError::MethodNotAllowed("GET"))),
        ("/api/v1/history", &Method::GET) => {
            let query = request.uri().query().map(str::to_owned);
            ("history", super::history::list(&state, &caller, query.as_deref()).await)
        }
        ("/api/v1/history", _) => ("history", Err(ApiError::MethodNotAllowed("GET"))),
        (p, _) if super::silences::route(p).is_some() => {
            let id = super::silences::route(p).flatten().map(str::to_owned);
            let silences = state.reloader.shared().silences.clone();
            ("silences", super::silences::handle(&silences, &snapshot, &caller, id.as_deref(), &method, request).await)
        }
        (p, &Method::POST) if super::scope::test_target(p).is_some() => {
            ("test", admin::test_receiver(&state, &snapshot, super::scope::test_target(p).unwrap_or_default()).await)
        }
        ("/api/v1/receiver-test", &Method::POST) => {
            ("receiver_test", receivers_api::test_unsaved(&state, &snapshot, &caller, request).await)
        }
        ("/api/v1/receiver-test", _) => ("receiver_test", Err(ApiError::MethodNotAllowed("POST"))),
        (p, _) if receivers_api::route(p).is_some() => {
            let result = match (receivers_api::route(p), &method) {
                (Some(Route::List), &Method::GET) => receivers_api::list(&state, &snapshot, &caller).await,
                (Some(Route::List), _) => Err(ApiError::MethodNotAllowed("GET")),
                (Some(Route::One(name)), &Method::GET) => receivers_api::get(&state, &snapshot, &caller, name).await,
                (Some(Route::One(name)), &Method::PUT) => {
                    receivers_api::put(&state, &snapshot, &caller, name, request).await
                }
                (Some(Route::One(name)), &Method::DELETE) => {
                    let headers = request.headers().clone();
                    receivers_api::delete(&state, &snapshot, &caller, name, &headers).await
                }
                (Some(Route::One(_)), _) => Err(ApiError::MethodNotAllowed("GET, PUT, DELETE")),
                (Some(Route::Enabled(name)), &Method::POST) => {
                    receivers_api::set_enabled(&state, &snapshot, &caller, name, request).await
                }
                _ => Err(ApiError::MethodNotAllowed("POST")),
            };
            ("receivers", result)
        }
        ("/metrics" | "/-/healthy" | "/-/ready" | "/api/v1/status", _) => {
            ("other", Err(ApiError::MethodNotAllowed("GET")))
        }
        ("/-/reload", _) => ("reload", Err(ApiError::MethodNotAllowed("POST, PUT"))),
        _ => ("other", Err(ApiError::NotFound(format!("no such endpoint: {path}")))),
    };
    let mut response = result.unwrap_or_else(ApiError::into_response);
    super::browser::harden(&mut response);
    state.http_metrics.record(handler, response.status(), started.elapsed().as_secs_f64());
    Ok(response)
}
