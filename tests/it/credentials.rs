//! The secrets the tests use, how a client presents them, and the check that none of them
//! reaches a log: one list, so a new secret in a test is checked everywhere by adding it here.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::{Reply, send};

/// Every secret the tests put in a config, an environment variable or a request: none may ever
/// appear in a log line of the real binary (checked when each `RelayProcess` is dropped, and
/// over all of them by `secrets::no_secret_reaches_any_log`).
pub const TEST_SECRETS: &[&str] = &[
    "wonderland",
    "s3cret-token",
    "inbound-b3arer-t0ken",
    "am-b4sic-passw0rd",
    "wr0ng-passw0rd-attempt",
    "downstream-b3arer-from-env",
    "hmac-s1gning-secret-0123456789",
    "pr0xy-passw0rd",
    "custom-header-ap1-key",
];

/// Asserts that `text` holds none of [`TEST_SECRETS`].
pub fn assert_no_secret_in(text: &str) {
    for secret in TEST_SECRETS {
        assert!(!text.contains(secret), "secret {secret:?} leaked into:\n{text}");
    }
}

/// The log lines of one `RelayProcess`, shared with its reader thread.
pub type ProcessLog = Arc<Mutex<Vec<String>>>;

/// The logs of every `RelayProcess` this test binary started.
pub fn all_process_logs() -> &'static Mutex<Vec<ProcessLog>> {
    static LOGS: std::sync::OnceLock<Mutex<Vec<ProcessLog>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(Mutex::default)
}

/// A bcrypt hash of `password` at the lowest cost (fast tests; the format is the same).
pub fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// A request with extra headers, answered whole.
pub async fn request_with(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(Full::new(body.into())).unwrap()).await
}
