//! Which role each endpoint needs: the one table of `server.access`, checked before any handler
//! runs. Tenant scoping (a viewer sees only its tenants' receivers) is the handlers' part, through
//! [`super::auth::Caller::sees`].
//!
//! | endpoint | sender | viewer | editor | admin |
//! |---|---|---|---|---|
//! | `POST /webhook`, `/webhook/{receiver}` | ✓ | | | ✓ |
//! | `GET /-/healthy`, `/-/ready` | ✓ | ✓ | ✓ | ✓ |
//! | `GET /`, `/api/v1/status`, `/api/v1/receivers[/{name}]`, `/api/v1/deadletters[/body]`, `/api/v1/threads`, `/api/v1/history`, `POST /api/v1/route-test` | | ✓ | ✓ | ✓ |
//! | `GET /api/v1/silences[/{id}]` | | ✓ | ✓ | ✓ |
//! | `PUT`/`DELETE /api/v1/receivers/{name}`, `POST …/{name}/enabled`, `POST …/{name}/test`, `POST /api/v1/receiver-test`, `POST /api/v1/deadletters/replay`, `POST /api/v1/silences`, `DELETE /api/v1/silences/{id}` | | | ✓ | ✓ |
//! | `GET /metrics`, `POST /-/reload` | | | | ✓ |

use http::Method;

use crate::config::access::Role;

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The probes: any authenticated caller, whatever its role.
    Anyone,
    /// Posting alerts: `sender` or `admin`.
    Send,
    /// Reading: `viewer`, `editor` or `admin`.
    View,
    /// Changing what a tenant owns: `editor` or `admin`.
    Edit,
    /// The process itself: `admin`.
    Admin,
}

/// The need of a request, by method and path (an unknown path needs [`Need::View`], so that a
/// sender learns nothing from a 404).
pub fn need(method: &Method, path: &str) -> Need {
    if path == "/webhook" || path.starts_with("/webhook/") {
        return Need::Send;
    }
    match path {
        "/-/healthy" | "/-/ready" => return Need::Anyone,
        "/metrics" | "/-/reload" => return Need::Admin,
        "/api/v1/receiver-test" | "/api/v1/deadletters/replay" => return Need::Edit,
        _ => {}
    }
    // Silences: reading is viewing; making or expiring one changes what a tenant gets.
    if path == "/api/v1/silences" || path.starts_with("/api/v1/silences/") {
        return if *method == Method::GET { Need::View } else { Need::Edit };
    }
    let receiver_change = path.starts_with("/api/v1/receivers/")
        && (matches!(*method, Method::PUT | Method::DELETE)
            || (*method == Method::POST && (path.ends_with("/enabled") || path.ends_with("/test"))));
    if receiver_change { Need::Edit } else { Need::View }
}

/// Whether `role` meets `need`; `None` (no entry of `server.access`) meets only the probes'.
pub fn allowed(role: Option<Role>, need: Need) -> bool {
    match (role, need) {
        (_, Need::Anyone) => true,
        (None, _) => false,
        (Some(Role::Admin), _) => true,
        (Some(Role::Sender), need) => need == Need::Send,
        (Some(Role::Viewer), need) => need == Need::View,
        (Some(Role::Editor), need) => matches!(need, Need::View | Need::Edit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        use Role::*;
        let cases = [
            (Method::POST, "/webhook", [true, false, false, true]),
            (Method::POST, "/webhook/a", [true, false, false, true]),
            (Method::GET, "/-/healthy", [true, true, true, true]),
            (Method::GET, "/api/v1/status", [false, true, true, true]),
            (Method::GET, "/api/v1/receivers/a", [false, true, true, true]),
            (Method::PUT, "/api/v1/receivers/a", [false, false, true, true]),
            (Method::POST, "/api/v1/receivers/a/test", [false, false, true, true]),
            (Method::POST, "/api/v1/deadletters/replay", [false, false, true, true]),
            (Method::GET, "/api/v1/silences", [false, true, true, true]),
            (Method::POST, "/api/v1/silences", [false, false, true, true]),
            (Method::DELETE, "/api/v1/silences/x", [false, false, true, true]),
            (Method::GET, "/metrics", [false, false, false, true]),
            (Method::POST, "/-/reload", [false, false, false, true]),
            (Method::GET, "/no/such/thing", [false, true, true, true]),
        ];
        for (method, path, expected) in cases {
            let got = [Sender, Viewer, Editor, Admin].map(|role| allowed(Some(role), need(&method, path)));
            assert_eq!(got, expected, "{method} {path}");
            assert_eq!(allowed(None, need(&method, path)), path == "/-/healthy");
        }
    }
}
