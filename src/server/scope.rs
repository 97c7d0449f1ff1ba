//! Tenant scoping of the endpoints that name a receiver in their path or query: a viewer or
//! editor names only its tenants' receivers; any other — another tenant's, a global one, or one
//! no longer configured — answers `404` exactly as an unknown name does, so names do not leak.
//!
//! Checked in one place before the handler runs (the lists scope themselves: the receivers API,
//! the route test, the status, the dead letters and their bodies). Admins are never restricted.

use super::auth::Caller;
use super::response::ApiError;
use crate::snapshot::Snapshot;

/// `Err` when the request names a receiver the caller does not see.
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
    if let Some(name) = test_target(path) {
        return seen(name);
    }
    match path {
        // Without a receiver: dead letters, their replay and the history are the caller's only
        // (the handlers filter), and threads answer 400.
        "/api/v1/threads" | "/api/v1/deadletters" | "/api/v1/deadletters/replay" | "/api/v1/history" => {
            match form_urlencoded::parse(query.unwrap_or("").as_bytes()).find(|(key, _)| key == "receiver") {
                Some((_, name)) => seen(&name),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// The receiver named by `/api/v1/receivers/{name}/test`.
pub(super) fn test_target(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/receivers/")?.strip_suffix("/test").filter(|name| !name.contains('/'))
}
