//! `amrelay history`: the notification history of a running relay (`GET /api/v1/history`), as a
//! table or as the API's JSON.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Bounds the whole request: a relay that does not answer is an error, not a hang.
const TIMEOUT: Duration = Duration::from_secs(30);
/// An answer larger than this is not read: a page of 1,000 records is about 1 MiB.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The flags of `amrelay history`.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// The relay's base URL; by default the listen address of --config.file.
    #[arg(long = "relay.url", value_name = "URL")]
    pub url: Option<String>,
    /// A file holding the bearer token to send (`server.authorization` of the relay).
    #[arg(long = "bearer-token-file", value_name = "FILE", conflicts_with = "basic_auth_user")]
    pub bearer_token_file: Option<PathBuf>,
    /// A `server.basic_auth_users` name; its password is read from --basic-auth-password-file.
    #[arg(long = "basic-auth-user", value_name = "USER", requires = "basic_auth_password_file")]
    pub basic_auth_user: Option<String>,
    #[arg(long = "basic-auth-password-file", value_name = "FILE")]
    pub basic_auth_password_file: Option<PathBuf>,
    #[arg(long)]
    pub receiver: Option<String>,
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long = "group-key")]
    pub group_key: Option<String>,
    #[arg(long)]
    pub alertname: Option<String>,
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// delivered, dead_lettered or receiver_removed.
    #[arg(long)]
    pub outcome: Option<String>,
    /// RFC 3339 time or Unix seconds.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub limit: Option<usize>,
    /// The `next_after` of a previous page.
    #[arg(long)]
    pub after: Option<u64>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl HistoryArgs {
    /// The query string of the filters given.
    fn query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        let limit = self.limit.map(|l| l.to_string());
        let after = self.after.map(|a| a.to_string());
        for (key, value) in [
            ("receiver", &self.receiver),
            ("tenant", &self.tenant),
            ("group_key", &self.group_key),
            ("alertname", &self.alertname),
            ("fingerprint", &self.fingerprint),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
            ("limit", &limit),
            ("after", &after),
        ] {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        query.finish()
    }

    fn authorization(&self) -> Result<Option<String>, String> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path)
                .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        if let Some(file) = &self.bearer_token_file {
            return Ok(Some(format!("Bearer {}", read(file)?)));
        }
        match (&self.basic_auth_user, &self.basic_auth_password_file) {
            (Some(user), Some(file)) => {
                let pair = format!("{user}:{}", read(file)?);
                Ok(Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))))
            }
            _ => Ok(None),
        }
    }
}

/// Runs `amrelay history` against `base` (the relay's URL); prints the page and returns whether
/// the relay answered it.
pub async fn history(base: &str, args: &HistoryArgs) -> Result<(), String> {
    let url = format!("{}/api/v1/history?{}", base.trim_end_matches('/'), args.query());
    let uri: http::Uri = url.parse().map_err(|e| format!("--relay.url {base:?}: {e}"))?;
    let mut request = http::Request::get(uri).header(http::header::USER_AGENT, crate::deliver::USER_AGENT_VALUE);
    if let Some(authorization) = args.authorization()? {
        request = request.header(http::header::AUTHORIZATION, authorization);
    }
    let request = request.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let roots = rustls_native_certs::load_native_certs();
    let mut store = rustls::RootCertStore::empty();
    store.add_parsable_certificates(roots.certs);
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(store)
            .with_no_client_auth();
    let connector =
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let exchange = async {
        let answer = client.request(request).await.map_err(|e| format!("cannot reach {base}: {e}"))?;
        let status = answer.status();
        let body = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{base} did not answer within {TIMEOUT:?}"))??;
    let answer: Value = serde_json::from_slice(&body).map_err(|_| {
        format!("{base} answered {status} with: {}", String::from_utf8_lossy(&body[..body.len().min(300)]))
    })?;
    if !status.is_success() {
        return Err(format!("{base} answered {status}: {}", answer["error"].as_str().unwrap_or(&answer.to_string())));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
    } else {
        print!("{}", table(&answer));
    }
    Ok(())
}

/// The records as a table, newest first, with the cursor of the next page.
fn table(answer: &Value) -> String {
    let mut out = format!(
        "{:<24} {:<20} {:<16} {:<8} {:>6} {:>8} {:>5} {:>9}  {}\n",
        "FINISHED", "RECEIVER", "OUTCOME", "STATUS", "ALERTS", "ATTEMPTS", "HTTP", "LATENCY", "ALERTNAMES"
    );
    for record in answer["data"].as_array().into_iter().flatten() {
        let finished = record["finished_unix_ms"].as_u64().unwrap_or(0);
        let time = jiff::Timestamp::from_millisecond(finished as i64).map(|t| t.to_string()).unwrap_or_default();
        let names: Vec<&str> =
            record["alertnames"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        out.push_str(&format!(
            "{:<24} {:<20} {:<16} {:<8} {:>6} {:>8} {:>5} {:>7}ms  {}\n",
            time,
            record["receiver"].as_str().unwrap_or(""),
            record["outcome"].as_str().unwrap_or(""),
            record["status"].as_str().unwrap_or(""),
            record["alerts"].as_u64().unwrap_or(0),
            record["attempts"].as_u64().unwrap_or(0),
            record["http_status"].as_u64().map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            record["latency_ms"].as_u64().unwrap_or(0),
            names.join(","),
        ));
    }
    if let Some(next) = answer["next_after"].as_u64() {
        out.push_str(&format!("more: --after {next}\n"));
    }
    out
}
