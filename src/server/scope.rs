//! Tenant scoping of the endpoints that name a receiver in their path or query: a viewer or
//! editor names only its tenants' receivers; any other — another tenant's, a global one, or one
//! no longer configured — answers `404` exactly as an unknown name does, so names do not leak.
//!
//! Checked in one place before the handler runs (the lists scope themselves: the receivers API,
//! the route test, the status). Admins are never restricted.

use super::auth::Caller;
use super::response::ApiError;
use crate::snapshot::Snapshot;

/// `Err` when the request names a receiver the caller does not see, or (for a viewer or editor)
/// asks for what spans every receiver without naming one of its own.
pub fn check(caller: &Caller<'_>, snapshot: &Snapshot, path: &str, query: Option<&str>) -> Result<(), ApiError> {
    if caller.all_tenants() {
        return Ok(());
    }
    let seen = |name: &str| {
        snapshot
            .receiver(name)
            .filter(|r| caller.sees(&r.config))
            .map(|_| ())
            .ok_or_else(|| ApiError::NotFound(format!("unknown receiver {name:?}")))
    };
    if let Some(name) = path.strip_prefix("/api/v1/receivers/").and_then(|rest| rest.strip_suffix("/test")) {
        return seen(name);
    }
    match path {
        "/api/v1/threads" | "/api/v1/deadletters" | "/api/v1/deadletters/replay" => {
            let named = form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .find(|(key, _)| key == "receiver")
                .map(|(_, value)| value.into_owned());
            match named {
                Some(name) => seen(&name),
                None => Err(ApiError::BadRequest(
                    "name one of your tenants' receivers: ?receiver=NAME (you see no other receiver's)".into(),
                )),
            }
        }
        // A body is found by sequence number alone: shown to admins only.
        "/api/v1/deadletters/body" => Err(ApiError::Forbidden(
            "dead-letter bodies are shown to admins only; list your receiver's dead letters instead".into(),
        )),
        _ => Ok(()),
    }
}
