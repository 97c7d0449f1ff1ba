//! One delivery attempt to one receiver, and what its outcome means.
//!
//! Every failure is classified once, here: its kind (for metrics and the test-message API), whether
//! it is worth retrying, and a precise, secret-free description for logs.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};

use super::backoff::parse_retry_after;
use super::client::{self, HttpClient};
use super::failure::{Failure, FailureKind};
use super::redirect::{Hop, MAX_REDIRECTS, Origin, refused, resolve, strip_secrets};
use super::{Authorizer, Used};
use crate::config::{Endpoint, RetryPolicy};

/// How much of an error answer's body is kept for the log line.
const BODY_SNIPPET_BYTES: usize = 256;

/// The `Idempotency-Key` header, stable across retries of one notification.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A receiver's endpoint, ready to send to: URL, headers, credentials, client with its pool.
#[derive(Debug)]
pub struct Target {
    /// The receiver's tenant (`tenancy:`), recorded in its history.
    pub tenant: Option<String>,
    pub url: Uri,
    pub headers: HeaderMap,
    /// Adds the credentials to each attempt.
    pub authorizer: Authorizer,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub client: HttpClient,
    /// HMAC key of `signing:`; each request then carries a signature and timestamp.
    pub signing: Option<ring::hmac::Key>,
    /// `follow_redirects`: re-send to a 307/308's `Location`, at most [`MAX_REDIRECTS`] times,
    /// secrets only to the receiver's own origin and never from https to http
    /// ([`super::redirect`]).
    pub follow_redirects: bool,
    /// The receiver's template: each notification is rendered once before its first attempt.
    pub template: Option<std::sync::Arc<crate::template::Renderer>>,
    /// A `url` with templates: rendered with the template, before the first attempt.
    pub url_template: Option<std::sync::Arc<crate::url_template::UrlTemplate>>,
    /// `rate_limit:`, awaited before each attempt; the bucket survives reloads that keep it.
    pub rate_limit: Option<std::sync::Arc<super::RateLimiter>>,
    /// `thread:` — one message per alert group (see [`super::thread_memory`]).
    pub thread: Option<crate::config::thread::ThreadSpec>,
    /// Every secret value of the receiver's definition, scrubbed from what its downstream answers
    /// before that text reaches a [`Failure`]'s detail (so status, dead letters, logs and test
    /// answers alike).
    pub scrubber: crate::redact::Scrubber,
    /// TLS fingerprint, HTTP/2 flag and proxy: when they are unchanged a reload keeps the client.
    client_key: (u64, bool, u64),
}

impl Target {
    /// Builds the target, reusing `previous`'s client (and so its connection pool) when the TLS
    /// settings are the same; otherwise a new client uses `client_config` (built from
    /// `endpoint.tls` by [`crate::tls::ClientConfigs`]).
    pub fn new(endpoint: &Endpoint, previous: Option<&Target>, client_config: &rustls::ClientConfig) -> Target {
        let proxy_key = endpoint.proxy.as_ref().map_or(0, |p| {
            crate::fingerprint::fnv1a(
                format!("{}\0{}", p.url, p.authorization.as_ref().map_or("", |a| a.expose())).as_bytes(),
            )
        });
        // A changed outbound guard (tenancy:) needs a new client too.
        let guard_key = endpoint.guard.as_ref().map_or(0, |g| crate::fingerprint::fnv1a(format!("{g:?}").as_bytes()));
        let client_key = (endpoint.tls.fingerprint, endpoint.enable_http2, proxy_key ^ guard_key);
        let client = match previous {
            Some(p) if p.client_key == client_key => p.client.clone(),
            _ => client::build(
                &endpoint.tls,
                client_config,
                endpoint.enable_http2,
                endpoint.timeout,
                (endpoint.proxy.as_ref(), endpoint.guard.as_ref()),
            ),
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(client::USER_AGENT_VALUE));
        for (name, value) in &endpoint.headers {
            headers.append(name.clone(), value.clone());
        }
        Target {
            url: endpoint.url.clone(),
            headers,
            authorizer: Authorizer::new(&endpoint.auth, endpoint.timeout, previous.map(|p| &p.authorizer)),
            timeout: endpoint.timeout,
            retry: endpoint.retry,
            client,
            signing: endpoint
                .signing
                .as_ref()
                .map(|s| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s.expose().as_bytes())),
            follow_redirects: endpoint.follow_redirects,
            scrubber: super::secrets::scrubber(endpoint),
            tenant: None,
            client_key,
            template: endpoint.template.clone(),
            url_template: endpoint.url_template.clone(),
            thread: endpoint.thread,
            rate_limit: endpoint.rate_limit.map(|limit| match previous.and_then(|p| p.rate_limit.as_ref()) {
                Some(bucket) if bucket.limit == limit => bucket.clone(),
                _ => std::sync::Arc::new(super::RateLimiter::new(limit)),
            }),
        }
    }

    /// Sends `body` once, within the timeout, and classifies the answer. Within the attempt, a
    /// `401` to an OAuth2 token is retried once with a fresh token, and with `follow_redirects`
    /// a 307/308 is followed (the same POST, the same body) under the rules of [`Hop`].
    pub async fn send(&self, body: Bytes, idempotency_key: Option<&str>) -> Result<StatusCode, Failure> {
        self.send_to(self.url.clone(), None, body, idempotency_key).await
    }

    /// Like [`send`](Self::send), to `url` and with `content_type` instead of the target's (a
    /// rendered template's, see [`super::Prepared`]).
    pub async fn send_to(
        &self,
        url: Uri,
        content_type: Option<HeaderValue>,
        body: Bytes,
        idempotency_key: Option<&str>,
    ) -> Result<StatusCode, Failure> {
        self.request(Method::POST, url, content_type, body, idempotency_key, false).await.map(|(status, _)| status)
    }

    /// One attempt of a notification without `thread:` (or a test message): like
    /// [`send_to`](Self::send_to), and the answer judged as the receiver's destination documents
    /// it ([`super::verdict`]), so a DingTalk `errcode` or a Slack `ok: false` in an HTTP 200 is
    /// a failure, never a delivery.
    pub async fn send_judged(
        &self,
        url: Uri,
        content_type: Option<HeaderValue>,
        body: Bytes,
        idempotency_key: Option<&str>,
    ) -> Result<StatusCode, Failure> {
        let preset = self.template.as_ref().and_then(|t| t.preset());
        let rule = super::verdict::rule(preset);
        // Matrix: the event is PUT with the notification's id as its transaction id, so a retry
        // (or a restart's) never posts it twice.
        let (method, url) = match (preset, idempotency_key) {
            (Some(crate::template::Preset::Matrix), Some(txn)) => {
                (Method::PUT, crate::template::presets::transaction_url(&url, txn))
            }
            _ => (Method::POST, url),
        };
        let result = self.request(method, url, content_type, body, idempotency_key, rule.reads_body()).await;
        super::verdict::judge(rule, &self.scrubber, result).map(|(status, _)| status)
    }

    /// Like [`send_to`](Self::send_to), with `method`; with `answer`, a 2xx answer's body is read
    /// (at most 64 KiB; a longer one gives `None`) and returned.
    pub async fn request(
        &self,
        method: Method,
        url: Uri,
        content_type: Option<HeaderValue>,
        body: Bytes,
        idempotency_key: Option<&str>,
        answer: bool,
    ) -> Result<(StatusCode, Option<Bytes>), Failure> {
        let signature = self
            .signing
            .as_ref()
            .map(|key| crate::signing::sign(key, SystemTime::now(), idempotency_key.unwrap_or(""), &body));
        // The receiver's own URL: a redirect's origin is compared with it (cloning a `Uri` shares
        // its bytes). The first request needs no comparison, so it allocates nothing for it.
        let first = url.clone();
        let mut url = url;
        let (mut refreshed, mut redirects) = (false, 0);
        loop {
            let mut request = Request::builder()
                .method(method.clone())
                .uri(url.clone())
                .body(Full::new(body.clone()))
                .expect("valid request parts");
            let hop = if redirects == 0 || Origin::of(&url) == Origin::of(&first) {
                Hop::SameOrigin
            } else {
                Hop::OtherOrigin
            };
            *request.headers_mut() = self.headers.clone();
            if let Some(content_type) = &content_type {
                request.headers_mut().insert(CONTENT_TYPE, content_type.clone());
            }
            let used = match hop {
                Hop::SameOrigin => {
                    let used = self.authorizer.authorize(request.headers_mut()).await?;
                    if let Some(signature) = &signature {
                        signature.clone().insert_into(request.headers_mut());
                    }
                    used
                }
                Hop::OtherOrigin => {
                    strip_secrets(request.headers_mut());
                    Used::default()
                }
            };
            if let Some(key) = idempotency_key.and_then(|k| HeaderValue::from_str(k).ok()) {
                request.headers_mut().insert(IDEMPOTENCY_KEY.clone(), key);
            }
            match self.exchange(request, answer, used.secret()).await {
                Err(f)
                    if f.kind == FailureKind::Status(StatusCode::UNAUTHORIZED)
                        && !refreshed
                        && self.authorizer.refused(&used) =>
                {
                    refreshed = true;
                }
                Err(Failure { redirect: Some(location), kind, retry_after, detail, answer })
                    if self.follow_redirects =>
                {
                    // Not followed: final, as any redirect not followed (a 3xx is not retried).
                    let stop = if let Some(why) = refused(&url, &location) {
                        Some(why.to_owned())
                    } else if redirects >= MAX_REDIRECTS {
                        Some(format!("stopped after {MAX_REDIRECTS} redirects"))
                    } else {
                        None
                    };
                    if let Some(why) = stop {
                        return Err(Failure {
                            kind,
                            retry_after,
                            detail: format!("{detail} ({why})"),
                            redirect: None,
                            answer,
                        });
                    }
                    redirects += 1;
                    url = *location;
                }
                result => return result,
            }
        }
    }

    /// One request and its answer. An error answer's body is read (at most 64 KiB), scrubbed of
    /// the receiver's secrets and of `token` (the OAuth2 token this request carried), and only
    /// then cut to a snippet for the failure's detail: every consumer of the detail gets the
    /// scrubbed text, and no secret survives half cut at the snippet's end.
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        answer: bool,
        token: Option<&str>,
    ) -> Result<(StatusCode, Option<Bytes>), Failure> {
        let url = request.uri().clone();
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| Failure::from_client_error(&e))?;
            let status = response.status();
            let redirect = match status {
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| resolve(&url, l)),
                _ => None,
            };
            if status.is_success() {
                if answer {
                    let body = Limited::new(response.into_body(), DRAIN_BYTES).collect().await.ok();
                    return Ok((status, body.map(|b| b.to_bytes())));
                }
                drain(response.into_body()).await;
                return Ok((status, None));
            }
            let retry_after =
                response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
            let scrubbed = match Limited::new(response.into_body(), 64 * 1024).collect().await {
                Ok(body) => {
                    let body = body.to_bytes();
                    let text = String::from_utf8_lossy(&body);
                    Some(self.scrubber.scrub(&text, token.as_slice()).into_owned())
                }
                Err(_) => None,
            };
            let mut failure =
                Failure::from_status(status, retry_after, scrubbed.as_deref().map(snippet).unwrap_or_default());
            failure.redirect = redirect.map(Box::new);
            failure.answer = scrubbed.map(Bytes::from);
            Err(failure)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(
                FailureKind::Timeout,
                format!("no answer within {}", crate::config::duration::format(self.timeout)),
            )),
        }
    }
}

/// How much of a 2xx answer's body is read: past it, the connection is closed instead of reused.
const DRAIN_BYTES: usize = 64 * 1024;

/// Reads and discards a success answer's body, so the connection goes back to the pool; an
/// answer longer than [`DRAIN_BYTES`] is dropped unread (its connection closes), so a downstream
/// answering 300 MiB costs nothing but that connection.
async fn drain(mut body: hyper::body::Incoming) {
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |data| data.len());
        if read > DRAIN_BYTES {
            return;
        }
    }
}

/// At most [`BODY_SNIPPET_BYTES`] of `text` (cut at a character), on one line.
fn snippet(text: &str) -> String {
    let mut end = text.len().min(BODY_SNIPPET_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut short: String = text[..end].chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if end < text.len() {
        short.push('…');
    }
    short.trim().to_owned()
}

/// Measures one attempt.
pub async fn timed<F: std::future::Future>(future: F) -> (F::Output, Duration) {
    let started = Instant::now();
    let output = future.await;
    (output, started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_only_what_may_succeed_later() {
        let status = |code: u16| Failure::from_status(StatusCode::from_u16(code).unwrap(), None, String::new());
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(status(code).is_retryable(), "{code}");
        }
        for code in [301, 400, 401, 403, 404, 413, 422] {
            assert!(!status(code).is_retryable(), "{code}");
        }
        assert_eq!(status(503).outcome_label(), "5xx");
        assert_eq!(status(404).to_string(), "http_status: HTTP 404 Not Found");
    }

    #[test]
    fn snippets_are_short_and_single_line() {
        assert_eq!(snippet("bad\nthing"), "bad thing");
        assert_eq!(snippet(&"x".repeat(1000)).chars().count(), BODY_SNIPPET_BYTES + 1);
        assert_eq!(snippet(&"é".repeat(200)).chars().count(), BODY_SNIPPET_BYTES / 2 + 1);
    }
}
