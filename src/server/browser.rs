//! Keeping browsers out of state changes, and telling them how to treat what amrelay serves.
//!
//! A page on another site can make a logged-in browser send requests to amrelay: a form or
//! `fetch(…, {mode: "no-cors"})` POST to `/webhook`, `/-/reload` or a test endpoint, with any
//! Basic credentials the browser has cached. Alertmanager and scripts send no `Sec-Fetch-Site`
//! and no `Origin`; browsers send both on such requests. So a state-changing request (anything
//! but GET, HEAD and OPTIONS) is refused with 403 when the browser says it comes from another
//! site, or when its `Origin` names a host other than the one it was sent to. The console itself
//! is same-origin and unaffected.
//!
//! Every answer carries `X-Content-Type-Options: nosniff` and `X-Frame-Options: DENY`; the
//! console page a Content-Security-Policy that allows its own inline script and style by hash,
//! nothing else.

use base64::Engine;
use http::header::{HOST, ORIGIN};
use http::{HeaderMap, HeaderValue, Method};

use super::response::HttpResponse;

/// Why a request was refused as cross-site, for the error answer.
pub fn cross_site(method: &Method, headers: &HeaderMap) -> Option<String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!("refusing a {method} that the browser marks Sec-Fetch-Site: {site}"));
    }
    let origin = headers.get(ORIGIN)?.to_str().unwrap_or("");
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    if origin == "null" || origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
        return Some(format!("refusing a {method} from origin {origin:?}, which is not this server"));
    }
    None
}

/// Adds the headers every answer carries.
pub fn harden(response: &mut HttpResponse) {
    let headers = response.headers_mut();
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
}

/// The console's Content-Security-Policy: its one inline `<script>` and `<style>` by SHA-256,
/// calls to its own origin, nothing loaded from elsewhere, never framed.
pub fn console_policy(page: &str) -> HeaderValue {
    let script = inline_hash(page, "<script>", "</script>");
    let style = inline_hash(page, "<style>", "</style>");
    let policy = format!(
        "default-src 'none'; connect-src 'self'; img-src 'self' data:; style-src {style}; \
         script-src {script}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// `'sha256-…'` of the text between `open` and `close`, or `'none'` when there is no such element.
fn inline_hash(page: &str, open: &str, close: &str) -> String {
    let Some(start) = page.find(open).map(|at| at + open.len()) else {
        return "'none'".into();
    };
    let Some(end) = page[start..].find(close).map(|at| start + at) else {
        return "'none'".into();
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, &page.as_bytes()[start..end]);
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn browsers_marking_another_site_are_refused_scripts_are_not() {
        let post = Method::POST;
        assert!(cross_site(&post, &headers(&[("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site(&post, &headers(&[("sec-fetch-site", "same-site")])).is_some());
        assert!(cross_site(&post, &headers(&[("sec-fetch-site", "same-origin")])).is_none());
        assert!(cross_site(&post, &headers(&[("sec-fetch-site", "none")])).is_none());
        assert!(cross_site(&post, &headers(&[("origin", "https://evil.example"), ("host", "relay:9098")])).is_some());
        assert!(cross_site(&post, &headers(&[("origin", "null"), ("host", "relay:9098")])).is_some());
        assert!(cross_site(&post, &headers(&[("origin", "http://relay:9098"), ("host", "relay:9098")])).is_none());
        // Alertmanager, curl, scripts: no browser headers at all.
        assert!(cross_site(&post, &HeaderMap::new()).is_none());
        // Reading is never refused here.
        assert!(cross_site(&Method::GET, &headers(&[("sec-fetch-site", "cross-site")])).is_none());
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_script_by_hash() {
        let page = "<style>b{}</style><script>run()</script>";
        let policy = console_policy(page);
        let policy = policy.to_str().unwrap();
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(policy.contains("script-src 'sha256-"), "{policy}");
        assert_eq!(inline_hash("<p>", "<script>", "</script>"), "'none'");
    }
}
