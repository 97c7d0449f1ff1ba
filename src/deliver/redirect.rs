//! Where `follow_redirects` may take one attempt, and what goes with it.
//!
//! The rules, checked per hop against the receiver's URL (its origin: scheme, host and port):
//! - a 307/308 is followed at most [`MAX_REDIRECTS`] times, re-sending the same request;
//! - to the same origin, everything goes as on the first request;
//! - to another origin, the body and the plain headers go, and nothing secret: no
//!   `Authorization` (static or an OAuth2 token, which is not even fetched), no `headers:` or
//!   secret/file `http_headers`, no signature — so a compromised or misconfigured downstream
//!   cannot collect the receiver's credentials by redirecting to a host of its choosing;
//! - from https to http, never: the attempt fails with a detail saying why and, like every
//!   redirect not followed, is not retried (a 3xx is final; the notification is dead-lettered).

use http::header::AUTHORIZATION;
use http::uri::Scheme;
use http::{HeaderMap, HeaderName, Uri};

use crate::config::security::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// Most redirects one attempt follows (Go's client stops after 10 too).
pub const MAX_REDIRECTS: usize = 10;

/// A `Location` against the URL that answered it: absolute, or a path on the same host.
pub(super) fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    let target: Uri = location.parse().ok()?;
    if target.scheme().is_some() {
        return matches!(target.scheme_str(), Some("http" | "https")).then_some(target);
    }
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let base_path = base.path();
        format!("{}{location}", &base_path[..=base_path.rfind('/').unwrap_or(0)])
    };
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(path.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// Scheme, host and port: what a redirect must keep for the credentials to follow it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    pub(super) fn of(url: &Uri) -> Origin {
        let scheme = url.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let default = match scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        };
        Origin { host: url.host().unwrap_or("").to_ascii_lowercase(), port: url.port_u16().or(default), scheme }
    }
}

/// Where a request of one attempt goes, against the receiver's URL (as the Fetch standard and
/// Go's client: the origin, not the last hop). The first request and every redirect to the same
/// origin carry everything; a redirect to another origin carries the body and the non-secret
/// headers only: no `Authorization` (static or OAuth2), no secret `headers`/`http_headers`, no
/// signature. A redirect from https to http is never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hop {
    SameOrigin,
    OtherOrigin,
}

/// Removes what only the receiver's own origin may see: every header marked sensitive (all of
/// `headers:`, `http_headers` secrets and files, any `Authorization`) and the signature.
pub(super) fn strip_secrets(headers: &mut HeaderMap) {
    let secret: Vec<HeaderName> = headers.iter().filter(|(_, v)| v.is_sensitive()).map(|(n, _)| n.clone()).collect();
    for name in secret {
        headers.remove(&name);
    }
    headers.remove(AUTHORIZATION);
    for name in [SIGNATURE_HEADER, TIMESTAMP_HEADER] {
        headers.remove(name);
    }
}

/// Why a redirect from `from` to `to` is not followed, if it is not: https never hands over to
/// plain http (the body, and to the same host the credentials, would cross the network
/// readable).
pub(super) fn refused(from: &Uri, to: &Uri) -> Option<&'static str> {
    (from.scheme() == Some(&Scheme::HTTPS) && to.scheme() != Some(&Scheme::HTTPS))
        .then_some("not followed: a redirect from https to http would send the notification in clear")
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn an_origin_is_scheme_host_and_port() {
        let origin = Origin::of(&uri("https://Hooks.Example/a"));
        assert_eq!(origin, Origin::of(&uri("https://hooks.example:443/b?c")));
        assert_eq!(Origin::of(&uri("http://127.0.0.1/")), Origin::of(&uri("http://127.0.0.1:80/x")));
        for other in ["http://hooks.example/a", "https://hooks.example:8443/a", "https://evil.example/a"] {
            assert_ne!(origin, Origin::of(&uri(other)), "{other}");
        }
        assert_ne!(Origin::of(&uri("http://127.0.0.1:9000/")), Origin::of(&uri("http://127.0.0.1:9001/")));
    }

    #[test]
    fn another_origin_gets_only_the_plain_headers() {
        let mut headers = HeaderMap::new();
        let mut secret = HeaderValue::from_static("k3y");
        secret.set_sensitive(true);
        headers.insert("x-api-key", secret);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_static("sha256=00"));
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from_static("1"));
        headers.insert("x-plain", HeaderValue::from_static("visible"));
        strip_secrets(&mut headers);
        assert_eq!(headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-plain"]);
    }

    #[test]
    fn https_never_hands_over_to_http() {
        assert!(refused(&uri("https://a.example/"), &uri("http://a.example/")).is_some());
        assert!(refused(&uri("https://a.example/"), &uri("https://b.example/")).is_none());
        assert!(refused(&uri("http://a.example/"), &uri("https://a.example/")).is_none());
        assert_eq!(resolve(&uri("https://a.example/x/y"), "z").unwrap(), uri("https://a.example/x/z"));
        assert_eq!(resolve(&uri("https://a.example/x"), "ftp://b/"), None);
    }
}
