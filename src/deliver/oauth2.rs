//! OAuth 2.0 client credentials (RFC 6749 §4.4), as Alertmanager's `http_config.oauth2` sends it
//! (Prometheus' `common/config` over `golang.org/x/oauth2/clientcredentials`).
//!
//! One [`TokenSource`] per receiver. Each attempt reads the cached token without a lock
//! (`ArcSwap`); a token is used until less than [`EXPIRY_DELTA`] of its `expires_in` is left (as
//! `x/oauth2`), then one attempt fetches a new one while the others wait for it (one fetch at a
//! time, never a stampede). A delivery answered `401` drops the token it used, so the next
//! authorization fetches a fresh one ([`super::Target::send`] retries such an attempt once).
//!
//! The token request: `POST token_url`, form-encoded `grant_type=client_credentials`, `scope`
//! (the scopes joined by spaces) and `endpoint_params`; the client authenticates with HTTP basic
//! auth (id and secret form-encoded first, per RFC 6749 §2.3.1) and, if the endpoint refuses
//! that, with `client_id`/`client_secret` in the form — `x/oauth2`'s auto-detection — remembering
//! what worked. A failure is [`FailureKind::Auth`]: counted as its own outcome (`auth`) and
//! retried with backoff like a connection error. Neither the secret nor a token reaches a log
//! or an error message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};

use super::client::{self, HttpClient};
use super::{Failure, FailureKind};
use crate::config::http::OAuth2Config;

/// A token is renewed when less than this is left of its lifetime (`x/oauth2`'s `expiryDelta`).
pub const EXPIRY_DELTA: Duration = Duration::from_secs(10);

/// The most of a token response that is read.
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

const STYLE_UNKNOWN: u8 = 0;
const STYLE_HEADER: u8 = 1;
const STYLE_PARAMS: u8 = 2;

/// A token ready to send.
#[derive(Debug)]
pub struct Token {
    /// `<type> <access token>`, marked sensitive.
    header: HeaderValue,
    /// When to stop using it; `None` when the endpoint gave no `expires_in`.
    renew_at: Option<Instant>,
}

impl Token {
    /// The access token alone, for scrubbing it from what a downstream answers.
    pub fn secret(&self) -> &str {
        let value = self.header.to_str().unwrap_or("");
        value.split_once(' ').map_or(value, |(_, token)| token)
    }

    fn fresh(&self, now: Instant) -> bool {
        self.renew_at.is_none_or(|at| now < at)
    }
}

/// One receiver's client-credentials tokens.
pub struct TokenSource {
    config: OAuth2Config,
    client: HttpClient,
    timeout: Duration,
    cached: ArcSwapOption<Token>,
    /// One fetch at a time; attempts that find a fresh token never touch it.
    fetching: tokio::sync::Mutex<()>,
    style: AtomicU8,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.config.token_url.to_string())
            .field("client_id", &self.config.client_id)
            .field("cached", &self.cached.load().is_some())
            .finish()
    }
}

impl TokenSource {
    /// A token source for `config`; `timeout` bounds each token request.
    pub fn new(config: &OAuth2Config, timeout: Duration) -> TokenSource {
        // The token endpoint's own TLS settings, checked when the config was parsed. A CA given
        // there replaces the system roots, which are only read when it is not.
        let client = match crate::tls::ClientConfigs::new().get(&config.tls.client) {
            Ok(tls) => client::build(&config.tls, &tls, false, timeout, (config.proxy.as_ref(), config.guard.as_ref())),
            Err(e) => {
                // Only the system CA store can fail here; every fetch will then report it.
                tracing::warn!(token_url = %crate::redact::url(&config.token_url), error = %e, "oauth2 token endpoint TLS");
                let empty = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                    .with_safe_default_protocol_versions()
                    .expect("default TLS versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                client::build(&config.tls, &empty, false, timeout, (config.proxy.as_ref(), config.guard.as_ref()))
            }
        };
        TokenSource {
            config: config.clone(),
            client,
            timeout,
            cached: ArcSwapOption::empty(),
            fetching: tokio::sync::Mutex::new(()),
            style: AtomicU8::new(STYLE_UNKNOWN),
        }
    }

    /// Whether this source was built from `config` (a reload with the same block keeps it).
    pub fn serves(&self, config: &OAuth2Config) -> bool {
        self.config == *config
    }

    /// The current token, fetched if there is none or it is about to expire.
    pub async fn token(&self) -> Result<Arc<Token>, Failure> {
        if let Some(token) = self.cached.load_full().filter(|t| t.fresh(Instant::now())) {
            return Ok(token);
        }
        let _one_at_a_time = self.fetching.lock().await;
        // Another attempt may have fetched one while this one waited.
        if let Some(token) = self.cached.load_full().filter(|t| t.fresh(Instant::now())) {
            return Ok(token);
        }
        let token = Arc::new(self.fetch().await?);
        self.cached.store(Some(token.clone()));
        Ok(token)
    }

    /// The `Authorization` value of `token`.
    pub fn header(token: &Token) -> HeaderValue {
        token.header.clone()
    }

    /// Drops `used` (the downstream refused it), unless a newer token already replaced it.
    pub fn invalidate(&self, used: &Arc<Token>) {
        let current = self.cached.load();
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, used)) {
            self.cached.compare_and_swap(&*current, None);
        }
    }

    async fn fetch(&self) -> Result<Token, Failure> {
        let style = self.style.load(Ordering::Relaxed);
        if style != STYLE_UNKNOWN {
            return self.request(style).await;
        }
        // x/oauth2's auto-detection: basic auth first, then the credentials in the form.
        match self.request(STYLE_HEADER).await {
            Ok(token) => {
                self.style.store(STYLE_HEADER, Ordering::Relaxed);
                Ok(token)
            }
            Err(header_failure) if header_failure.kind == FailureKind::Auth && refused(&header_failure) => {
                let token = self.request(STYLE_PARAMS).await?;
                self.style.store(STYLE_PARAMS, Ordering::Relaxed);
                Ok(token)
            }
            Err(failure) => Err(failure),
        }
    }

    async fn request(&self, style: u8) -> Result<Token, Failure> {
        let c = &self.config;
        let request = self.token_request(style)?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                let transport = Failure::from_client_error(&e);
                failure(c, format!("{}: {}", transport.kind_name(), transport.detail))
            })?;
            let status = response.status();
            let content_type =
                response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let body = Limited::new(response.into_body(), MAX_TOKEN_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| failure(c, format!("reading the answer: {e}")))?;
            if !status.is_success() {
                return Err(failure(c, format!("HTTP {status}: {}", error_summary(&body))));
            }
            parse_token(&body, &content_type).map_err(|why| failure(c, why))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(failure(c, format!("no answer within {}", crate::config::duration::format(self.timeout)))),
        }
    }

    /// The token request, built before any await (the form serializer is not `Send`).
    fn token_request(&self, style: u8) -> Result<Request<Full<Bytes>>, Failure> {
        let c = &self.config;
        let mut form = form_urlencoded::Serializer::new(String::new());
        let overrides_grant = c.endpoint_params.iter().any(|(k, _)| k == "grant_type");
        if !overrides_grant {
            form.append_pair("grant_type", "client_credentials");
        }
        if !c.scopes.is_empty() {
            form.append_pair("scope", &c.scopes.join(" "));
        }
        for (name, value) in &c.endpoint_params {
            form.append_pair(name, value);
        }
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(c.token_url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, client::USER_AGENT_VALUE);
        if style == STYLE_PARAMS {
            form.append_pair("client_id", &c.client_id);
            form.append_pair("client_secret", c.client_secret.expose());
        } else {
            use base64::Engine;
            let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", encode(&c.client_id), encode(c.client_secret.expose()));
            let mut value =
                HeaderValue::from_str(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
                    .map_err(|_| failure(c, "the client credentials do not form a valid header".into()))?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        Ok(builder.body(Full::new(Bytes::from(form.finish()))).expect("valid token request"))
    }
}

fn failure(c: &OAuth2Config, detail: String) -> Failure {
    // An endpoint may echo the secret it was sent (in `error_description`, say).
    let mut secrets = crate::redact::Scrubber::default();
    secrets.secret(c.client_secret.expose());
    let detail = secrets.scrub(&detail, &[]).into_owned();
    Failure::new(FailureKind::Auth, format!("token endpoint {}: {detail}", crate::redact::url(&c.token_url)))
}

/// Whether the endpoint refused the credentials as sent (so the other way may work).
fn refused(failure: &Failure) -> bool {
    ["HTTP 400", "HTTP 401"].iter().any(|s| failure.detail.contains(s))
}

/// RFC 6749 §5.2's `error` (and `error_description`), never the rest of the body: an endpoint
/// might echo what it was sent.
fn error_summary(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| parsed.as_ref().and_then(|v| v.get(name)).and_then(|v| v.as_str()).map(clean);
    match (field("error"), field("error_description")) {
        (Some(error), Some(description)) => format!("{error}: {description}"),
        (Some(error), None) => error,
        _ => "no OAuth2 error in the answer".into(),
    }
}

fn clean(text: &str) -> String {
    text.chars().take(200).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A token response: JSON (RFC 6749 §5.1), or form-encoded as some endpoints (GitHub's) answer.
fn parse_token(body: &[u8], content_type: &str) -> Result<Token, String> {
    let (access_token, token_type, expires_in) =
        if content_type.starts_with("application/x-www-form-urlencoded") || content_type.starts_with("text/plain") {
            let mut fields = std::collections::HashMap::new();
            for (k, v) in form_urlencoded::parse(body) {
                fields.insert(k.into_owned(), v.into_owned());
            }
            let expires = fields.get("expires_in").and_then(|v| v.parse::<u64>().ok());
            (fields.remove("access_token"), fields.remove("token_type"), expires)
        } else {
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| format!("the answer is not a token (JSON: {e})"))?;
            let text = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
            // `expires_in` is a number; some endpoints send it as a string.
            let expires = value.get("expires_in").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
            (text("access_token"), text("token_type"), expires)
        };
    let access_token = access_token.filter(|t| !t.is_empty()).ok_or("the answer has no access_token")?;
    // As x/oauth2's `Token.Type`: the usual types capitalised, none meaning Bearer.
    let token_type = match token_type.as_deref().unwrap_or("") {
        "" => "Bearer".to_owned(),
        t if t.eq_ignore_ascii_case("bearer") => "Bearer".to_owned(),
        t if t.eq_ignore_ascii_case("mac") => "MAC".to_owned(),
        t if t.eq_ignore_ascii_case("basic") => "Basic".to_owned(),
        t => t.to_owned(),
    };
    let mut header = HeaderValue::from_str(&format!("{token_type} {access_token}"))
        .map_err(|_| "the access_token is not a valid header value".to_owned())?;
    header.set_sensitive(true);
    let renew_at =
        expires_in.filter(|s| *s > 0).map(|s| Instant::now() + Duration::from_secs(s).saturating_sub(EXPIRY_DELTA));
    Ok(Token { header, renew_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses_parse_as_x_oauth2_reads_them() {
        let t = parse_token(br#"{"access_token":"abc","token_type":"bearer","expires_in":3600}"#, "application/json")
            .unwrap();
        assert_eq!(t.header, "Bearer abc");
        assert!(t.header.is_sensitive());
        assert!(t.fresh(Instant::now()));
        let t = parse_token(b"access_token=x%20y&token_type=mac&expires_in=5", "application/x-www-form-urlencoded")
            .unwrap();
        assert_eq!(t.header, "MAC x y");
        assert!(!t.fresh(Instant::now()), "less than EXPIRY_DELTA left: renew now");
        let t = parse_token(br#"{"access_token":"abc","expires_in":"20"}"#, "application/json").unwrap();
        assert!(t.renew_at.is_some());
        assert!(parse_token(br#"{"access_token":"abc"}"#, "").unwrap().renew_at.is_none(), "no expiry: keep it");
        assert!(parse_token(br#"{"token_type":"bearer"}"#, "application/json").is_err());
    }

    #[test]
    fn error_answers_are_summarised_without_echoing_the_body() {
        let body = br#"{"error":"invalid_client","error_description":"bad secret","echo":"s3cr3t"}"#;
        assert_eq!(error_summary(body), "invalid_client: bad secret");
        assert_eq!(error_summary(b"client_secret=s3cr3t"), "no OAuth2 error in the answer");
    }
}
