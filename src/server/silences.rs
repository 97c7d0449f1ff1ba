//! `/api/v1/silences[/{id}]`: silences through an API shaped like Alertmanager's v2.
//!
//! `POST` `{matchers, startsAt, endsAt, createdBy, comment, receivers?}` → `{silenceID}` (with
//! an `id`, it replaces that silence); `GET` lists them all with `status.state`; `GET /{id}` one;
//! `DELETE /{id}` expires it. Reading takes the viewer role and changing the editor role
//! (`roles`), scoped to the caller's tenants; the same authentication and exposure rules as
//! the rest of `/api/v1/*` (applied in `routes` before this runs), the same refusal of
//! cross-site browser requests (`browser::cross_site`), and a POST must say
//! `Content-Type: application/json`, which a cross-site form cannot send without a preflight.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::auth::Caller;
use super::body::{check_content_type, read_body};
use super::response::{ApiError, HttpResponse, json};
use crate::mute::{Posted, Silences, StoreError};
use crate::snapshot::Snapshot;

/// A silence is a few matchers and a comment.
const MAX_SILENCE_BYTES: usize = 64 * 1024;

/// `Some(None)` for the list, `Some(Some(id))` for one silence, `None` for other paths.
pub fn route(path: &str) -> Option<Option<&str>> {
    match path.strip_prefix("/api/v1/silences")? {
        "" => Some(None),
        rest => rest.strip_prefix('/').filter(|id| !id.is_empty() && !id.contains('/')).map(Some),
    }
}

/// Answers one request to the silences API.
///
/// With tenancy, a viewer or editor (a caller not of every tenant) sees only the silences whose
/// receivers are all its tenants' receivers, and an editor's silence names only those: omitted,
/// they are every receiver of its tenants (never a global one); another's is `404`, as the
/// receivers API answers. A tenant's receiver gets only its tenant's alerts, so such a silence
/// can only mute alerts of the editor's tenants.
pub async fn handle(
    silences: &Silences,
    snapshot: &Snapshot,
    caller: &Caller<'_>,
    id: Option<&str>,
    method: &Method,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let now = jiff::Timestamp::now();
    let sees = |receivers: &[String]| {
        caller.all_tenants() || (!receivers.is_empty() && receivers.iter().all(|name| caller.sees_name(snapshot, name)))
    };
    let visible = |id: &str| {
        silences.get(id).filter(|s| sees(&s.receivers)).ok_or_else(|| store_error(StoreError::NotFound(id.to_owned())))
    };
    match (id, method) {
        (None, &Method::GET) => {
            silences.record_gauges(now);
            let all = silences.all();
            let list: Vec<Value> = all.iter().filter(|s| sees(&s.receivers)).map(|s| s.to_json(Some(now))).collect();
            Ok(json(StatusCode::OK, &list))
        }
        (None, &Method::POST) => {
            check_content_type(&request)?;
            let body = read_body(request, MAX_SILENCE_BYTES).await?;
            let mut posted: Posted =
                serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid silence: {e}")))?;
            if let Some(unknown) = posted.receivers.iter().flatten().find(|r| snapshot.receiver(r).is_none()) {
                return Err(ApiError::BadRequest(format!("receivers: no receiver named {unknown:?}")));
            }
            if !caller.all_tenants() {
                let own =
                    || snapshot.receivers.iter().filter(|r| caller.sees(&r.config)).map(|r| r.config.name.clone());
                let receivers = posted.receivers.get_or_insert_with(|| own().collect());
                if receivers.is_empty() {
                    return Err(ApiError::BadRequest("receivers: your tenants have no receiver to silence".into()));
                }
                if let Some(foreign) = receivers.iter().find(|name| !sees(std::slice::from_ref(name))) {
                    return Err(ApiError::NotFound(format!("unknown receiver {foreign:?}")));
                }
                if let Some(id) = &posted.id {
                    visible(id)?;
                }
            }
            let receivers = posted.receivers.clone().unwrap_or_default();
            let id = silences.put(posted, now).await.map_err(store_error)?;
            tracing::info!(silence = %id, user = caller.name(), receivers = ?receivers, "silence saved");
            Ok(json(StatusCode::OK, &json!({ "silenceID": id })))
        }
        (None, _) => Err(ApiError::MethodNotAllowed("GET, POST")),
        (Some(id), &Method::GET) => Ok(json(StatusCode::OK, &visible(id)?.to_json(Some(now)))),
        (Some(id), &Method::DELETE) => {
            visible(id)?;
            silences.expire(id, now).await.map_err(store_error)?;
            tracing::info!(silence = %id, user = caller.name(), "silence expired");
            Ok(json(StatusCode::OK, &json!({ "status": "success" })))
        }
        (Some(_), _) => Err(ApiError::MethodNotAllowed("GET, DELETE")),
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(message) => ApiError::BadRequest(message),
        StoreError::NotFound(_) => ApiError::NotFound(e.to_string()),
        StoreError::Write(_) => {
            tracing::warn!(error = %e, "silence not saved");
            ApiError::Internal(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn paths() {
        assert_eq!(route("/api/v1/silences"), Some(None));
        assert_eq!(route("/api/v1/silences/abc"), Some(Some("abc")));
        assert_eq!(route("/api/v1/silences/"), None);
        assert_eq!(route("/api/v1/silences/a/b"), None);
        assert_eq!(route("/api/v1/silencesx"), None);
    }
}
