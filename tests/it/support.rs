//! Shared fixtures: a relay on an ephemeral port, recording downstream servers (HTTP and HTTPS)
//! that fail on demand, a test PKI, and a small HTTP client.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amrelay::app::{Options, Relay};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The relay

/// A relay running in this process on 127.0.0.1:0, with its config in a temporary folder.
pub struct TestRelay {
    pub relay: Option<Relay>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestRelay {
    /// Writes `yaml` as the config file and starts a relay on it.
    pub async fn start(yaml: &str) -> TestRelay {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, yaml).await
    }

    /// Like `start`, in a folder that already holds other files (secrets, certificates).
    pub async fn start_in(dir: tempfile::TempDir, yaml: &str) -> TestRelay {
        let config_file = dir.path().join("amrelay.yml");
        std::fs::write(&config_file, yaml).unwrap();
        let options = Options {
            listen_address: Some("127.0.0.1:0".into()),
            shutdown_timeout: Duration::from_secs(5),
            ..Options::new(config_file)
        };
        let relay = Relay::start(options).await.expect("relay starts");
        let addr = relay.local_addr();
        TestRelay { relay: Some(relay), addr, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        post_json(&self.url(path), body).await
    }

    /// The value of one metric series, `name{labels}`, in this process's scrape.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_in(&get(&self.url("/metrics")).await.text(), series)
    }

    /// Waits until a metric reaches `value`.
    pub async fn wait_metric(&self, series: &str, value: f64) {
        wait_for_metric(&self.url("/metrics"), series, value, String::new).await;
    }
}

// ---------------------------------------------------------------------------------------------
// A small client

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn send(request: Request<Full<Bytes>>) -> Reply {
    let response =
        tokio::time::timeout(WAIT, client().request(request)).await.expect("answer in time").expect("request succeeds");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply { status: parts.status, headers: parts.headers, body }
}

pub async fn post_json(url: &str, body: impl Into<Bytes>) -> Reply {
    let request = Request::post(url).header("content-type", "application/json").body(Full::new(body.into())).unwrap();
    send(request).await
}

pub async fn get(url: &str) -> Reply {
    send(Request::get(url).body(Full::new(Bytes::new())).unwrap()).await
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// An alert as Alertmanager sends it.
pub fn alert(status: &str, labels: Value) -> Value {
    let fingerprint = format!("{:016x}", amrelay::fingerprint::fnv1a(labels.to_string().as_bytes()));
    serde_json::json!({
        "status": status, "labels": labels, "annotations": {"summary": "test"},
        "startsAt": "2026-11-29T04:36:08.227Z",
        "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2026-11-29T04:40:00Z" },
        "generatorURL": "http://prometheus.example:9090/graph", "fingerprint": fingerprint,
    })
}

/// A version "4" batch of `alerts` for `group_key`.
pub fn batch(group_key: &str, alerts: Vec<Value>) -> String {
    let firing = alerts.iter().any(|a| a["status"] == "firing");
    serde_json::json!({
        "receiver": "amrelay", "status": if firing { "firing" } else { "resolved" }, "alerts": alerts,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "version": "4", "groupKey": group_key, "truncatedAlerts": 0,
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Downstream receivers

/// How the downstream answers one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer { status, headers: Vec::new(), delay: Duration::ZERO }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    /// Answers only after `delay` (a hanging receiver, with a long one).
    pub fn delayed(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

/// One request the downstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body exactly as received.
    pub raw_body: Bytes,
    /// The client's address: the same one means the same (kept-alive) connection.
    pub peer: SocketAddr,
    /// HTTP/1.1 or HTTP/2.
    pub version: http::Version,
    pub at: Instant,
    /// The status the downstream answered.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Fingerprint-free identity of the alerts: the value of `label` in each, in order.
    pub fn labels(&self, label: &str) -> Vec<String> {
        self.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["labels"][label].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

#[derive(Default)]
struct DownstreamState {
    script: VecDeque<Answer>,
    fallback: Option<Answer>,
    received: Vec<Received>,
}

/// A recording HTTP(S) server on 127.0.0.1 that answers 200 unless scripted otherwise.
#[derive(Clone)]
pub struct Downstream {
    pub addr: SocketAddr,
    pub scheme: &'static str,
    state: Arc<Mutex<DownstreamState>>,
    arrived: Arc<Notify>,
}

impl Downstream {
    pub async fn start() -> Downstream {
        Self::start_with(None).await
    }

    /// An HTTPS downstream using `tls`.
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> Downstream {
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Downstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let downstream = Downstream {
            addr: listener.local_addr().unwrap(),
            scheme: if tls.is_some() { "https" } else { "http" },
            state: Arc::default(),
            arrived: Arc::default(),
        };
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let server = downstream.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let server = server.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| server.clone().answer(request, peer));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        downstream
    }

    /// The URL to configure, with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    /// Answers every unscripted request this way (instead of 200).
    pub fn always(&self, answer: Answer) {
        self.state.lock().unwrap().fallback = Some(answer);
    }

    async fn answer(self, request: Request<Incoming>, peer: SocketAddr) -> Result<Response<Full<Bytes>>, Infallible> {
        let at = Instant::now();
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let answer = {
            let mut state = self.state.lock().unwrap();
            let answer = state.script.pop_front().or_else(|| state.fallback.clone()).unwrap_or(Answer::status(200));
            state.received.push(Received {
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                raw_body: body.clone(),
                peer,
                version: parts.version,
                at,
                answered: answer.status,
            });
            answer
        };
        self.arrived.notify_waiters();
        tokio::time::sleep(answer.delay).await;
        let mut response = Response::new(Full::new(Bytes::from(format!("answered {}", answer.status))));
        *response.status_mut() = StatusCode::from_u16(answer.status).unwrap();
        for (name, value) in answer.headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        Ok(response)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Requests answered with a 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.answered)).collect()
    }

    /// Waits until at least `count` requests arrived; returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + WAIT;
        loop {
            let notified = self.arrived.notified();
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "expected {count} requests at {}, got {}", self.url(""), received.len());
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
        }
    }

    /// Asserts that nothing more than `count` requests arrives within `quiet`.
    pub async fn assert_stays_at(&self, count: usize, quiet: Duration) {
        tokio::time::sleep(quiet).await;
        assert_eq!(self.received().len(), count, "unexpected extra requests at {}", self.url(""));
    }
}

// ---------------------------------------------------------------------------------------------
// Test PKI

/// A CA with a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files.
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl Pki {
    /// Creates the PKI, writing `ca.pem`, `server.pem`, `server-key.pem`, `client.pem` and
    /// `client-key.pem` into `dir`. `name` makes distinct CAs distinguishable.
    pub fn create(dir: &Path, name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let server_params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["amrelay-client".to_string()]).unwrap();
        client_params.distinguished_name.push(DnType::CommonName, "amrelay client");
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

        let files = [
            ("ca.pem", ca_cert.pem()),
            ("server.pem", server_cert.pem()),
            ("server-key.pem", server_key.serialize_pem()),
            ("client.pem", client_cert.pem()),
            ("client-key.pem", client_key.serialize_pem()),
        ];
        for (file, pem) in &files {
            std::fs::write(dir.join(file), pem).unwrap();
        }
        Pki {
            dir: dir.to_owned(),
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }

    /// A rustls server config with this PKI's server certificate; with `require_client_cert`,
    /// clients must present a certificate signed by this CA.
    pub fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = amrelay::tls::provider();
        let certs: Vec<CertificateDer> =
            CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(certs, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

// ---------------------------------------------------------------------------------------------
// The real binary

/// `amrelay` running as a child process on an ephemeral port; killed when dropped.
pub struct RelayProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Every log line so far (stderr), shared with the reader thread.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl RelayProcess {
    /// Starts `amrelay --config.file config` with `args`, and waits for its listener.
    pub fn spawn(config: &Path, args: &[&str]) -> RelayProcess {
        Self::spawn_with_env(config, args, &[])
    }

    /// Like `spawn`, with extra environment variables.
    pub fn spawn_with_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> RelayProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"))
            .envs(env.iter().copied())
            .arg(format!("--config.file={}", config.display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .args(args)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("amrelay binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        all_process_logs().lock().unwrap().push(log.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = line.contains("amrelay started").then(|| field(&line, "address")).flatten() {
                    let _ = tx.send(address);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx.recv_timeout(WAIT).unwrap_or_else(|_| panic!("amrelay did not start: {:?}", log.lock().unwrap()));
        RelayProcess { child, addr: addr.parse().unwrap(), log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a Unix signal to the process.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code. Async, so that servers on the
    /// test's runtime (downstreams) keep answering meanwhile.
    pub async fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "amrelay did not exit:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The value of one metric series in this process's scrape.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_in(&get(&self.url("/metrics")).await.text(), series)
    }

    /// Waits until a metric reaches `value`.
    pub async fn wait_metric(&self, series: &str, value: f64) {
        wait_for_metric(&self.url("/metrics"), series, value, || self.logs()).await;
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Every binary run of the suite is checked: no secret a test uses may reach a log line.
        if !std::thread::panicking() {
            assert_no_secret_in(&self.logs());
        }
    }
}

/// The value of `key=` in a logfmt line.
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    Some(line[start..].split(' ').next()?.trim_matches('"').to_owned())
}

/// Waits until `series` in the scrape at `url` reaches `value`; `context` explains a failure.
async fn wait_for_metric(url: &str, series: &str, value: f64, context: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let current = metric_in(&get(url).await.text(), series);
        if current == Some(value) {
            return;
        }
        assert!(Instant::now() < deadline, "{series} is {current:?}, expected {value}\n{}", context());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one series in a scrape.
pub fn metric_in(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

// ---------------------------------------------------------------------------------------------
// Security helpers

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

/// A rustls client that trusts `ca_file` and presents `cert`/`key` files when given.
pub fn tls_client(ca_file: &Path, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    use amrelay::tls::{ClientTlsOptions, MinVersion, PemSource};
    let pem = |path: &Path| PemSource { name: path.display().to_string(), bytes: std::fs::read(path).unwrap() };
    let tls = amrelay::tls::ClientTls::check(ClientTlsOptions {
        ca: Some(pem(ca_file)),
        cert: identity.map(|(cert, _)| pem(cert)),
        key: identity.map(|(_, key)| pem(key)),
        insecure_skip_verify: false,
        min_version: MinVersion::Tls12,
    })
    .unwrap();
    let mut config = (*amrelay::tls::ClientConfigs::new().get(&tls).unwrap()).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The outcome of one HTTPS exchange with the relay.
#[derive(Debug)]
pub struct TlsExchange {
    pub reply: Reply,
    /// `h2` or `http/1.1`, as negotiated by ALPN.
    pub alpn: Option<Vec<u8>>,
    /// The server's certificate, DER.
    pub server_cert: Vec<u8>,
}

/// Connects to `addr` over TLS with `client` and sends one request; `Err` holds the reason a
/// handshake or exchange failed.
pub async fn tls_request(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<TlsExchange, String> {
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(client).connect(name, tcp).await.map_err(|e| e.to_string())?;
        let (_, session) = tls.get_ref();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let server_cert = session.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
        let mut request = Request::builder().method(method).uri(format!("https://localhost{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).unwrap();
        let io = TokioIo::new(tls);
        let response = if alpn.as_deref() == Some(b"h2") {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            sender.send_request(request).await.map_err(|e| e.to_string())?
        } else {
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let mut request = request;
            request.headers_mut().insert("host", "localhost".parse().unwrap());
            sender.send_request(request).await.map_err(|e| e.to_string())?
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(TlsExchange { reply: Reply { status: parts.status, headers: parts.headers, body }, alpn, server_cert })
    };
    tokio::time::timeout(WAIT, exchange).await.unwrap_or_else(|_| Err("timed out".into()))
}

/// The first certificate in a PEM file, DER.
pub fn first_cert_der(pem_file: &Path) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(pem_file).unwrap().next().unwrap().unwrap().to_vec()
}

/// Runs `amrelay check-config FILE` with `env`; returns (success, stdout).
pub fn check_config_with_env(file: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"))
        .envs(env.iter().copied())
        .arg("check-config")
        .arg(file)
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Outside programs: Alertmanager, Prometheus, promtool, amtool, kubectl
// (tests/it/real_programs.rs and tests/it/deploy_checks.rs)

/// Every wait on an outside program (start-up, a flush, a scrape) is bounded by this.
pub const PROGRAM_WAIT: Duration = Duration::from_secs(30);

/// The path of the first of `names` found on `PATH`; fails naming what installs it.
///
/// These tests are not skipped when a program is missing: `.ci/run` installs them, and a
/// developer is told how to.
pub fn program(names: &[&str], install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "none of {names:?} is on PATH; this test runs the real program: {install} \
         (.ci/run installs it)"
    );
}

/// `program` for a binary of a Debian package.
pub fn debian_program(names: &[&str], package: &str) -> PathBuf {
    program(names, &format!("install the Debian package `{package}` (apt-get install {package})"))
}

/// A free port on 127.0.0.1 for a program that takes its listen address as a flag.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process, killed and reaped when dropped, its stdout and stderr in a log file.
pub struct ChildGuard {
    pub name: String,
    child: std::process::Child,
    log: PathBuf,
}

impl ChildGuard {
    /// Starts `command` with its output going to `log`.
    pub fn spawn(name: &str, command: &mut std::process::Command, log: PathBuf) -> ChildGuard {
        let out = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildGuard { name: name.to_owned(), child, log }
    }

    /// The last lines the program printed.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until `url` answers 200. Returns false if the program exited first.
    pub async fn wait_ready(&mut self, url: &str) -> bool {
        let deadline = Instant::now() + PROGRAM_WAIT;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if try_get(url).await.is_some_and(|r| r.status == 200) {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready at {url} within {PROGRAM_WAIT:?}; its log:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server program on a free 127.0.0.1 port and waits until `ready_path` answers 200.
/// `command` builds the command line for a port. Another process may take the port between
/// `free_port` and the program's bind, so a program that exits before it is ready is retried
/// on another port.
pub async fn start_server(
    name: &str,
    dir: &Path,
    ready_path: &str,
    command: impl Fn(u16) -> std::process::Command,
) -> (ChildGuard, u16) {
    for attempt in 1..=3 {
        let port = free_port();
        let log = dir.join(format!("{name}-{attempt}.log"));
        let mut child = ChildGuard::spawn(name, &mut command(port), log);
        if child.wait_ready(&format!("http://127.0.0.1:{port}{ready_path}")).await {
            return (child, port);
        }
        eprintln!("{name} exited before it was ready (attempt {attempt}):\n{}", child.log_tail());
    }
    panic!("{name} did not start; see its logs above");
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    /// stdout then stderr.
    pub output: String,
}

/// Runs `command` to its end (killed after `PROGRAM_WAIT`), with `stdin` as its input.
/// Blocking: from async code, call it in `spawn_blocking`.
pub fn run_program(command: &mut std::process::Command, stdin: Option<&Path>) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let input = match stdin {
        Some(file) => std::process::Stdio::from(std::fs::File::open(file).unwrap()),
        None => std::process::Stdio::null(),
    };
    let mut child = command
        .stdin(input)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let deadline = Instant::now() + PROGRAM_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {PROGRAM_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = std::fs::read_to_string(&out).unwrap_or_default() + &std::fs::read_to_string(&err).unwrap_or_default();
    Finished { success: status.success(), output }
}

/// A GET that tolerates nothing listening yet: `None` instead of a panic.
pub async fn try_get(url: &str) -> Option<Reply> {
    let request = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(2), client().request(request)).await.ok()?.ok()?;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(2), body.collect()).await.ok()?.ok()?.to_bytes();
    Some(Reply { status: parts.status, headers: parts.headers, body })
}

/// Percent-encodes a query-string value.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `time` as RFC 3339 in UTC, as Alertmanager's API takes it.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    amrelay::testmsg::rfc3339(time)
}

/// Three downstreams: one that accepts, one that fails once with 503, one that refuses with 400.
pub async fn three_downstreams() -> (Downstream, Downstream, Downstream) {
    let ok = Downstream::start().await;
    let flaky = Downstream::start().await;
    flaky.script([Answer::status(503)]);
    let refusing = Downstream::start().await;
    refusing.always(Answer::status(400));
    (ok, flaky, refusing)
}

/// A relay with a spool after real traffic that makes every amrelay metric appear in its
/// scrape: matched and filtered alerts, deliveries, a retry after a 503, a dead letter after a
/// 400, a rejected batch, a reload, spool commits and the admin endpoints. Receiver names start with `prefix`, so that
/// concurrent tests (the recorder is process-wide) count apart.
pub async fn relay_after_traffic(prefix: &str) -> (TestRelay, Vec<Downstream>) {
    const MULTI: &str = include_str!("../fixtures/am-payload-multi.json");
    let (ok, flaky, refusing) = three_downstreams().await;
    let yaml = format!(
        "delivery:
  retry: {{initial_backoff: 10ms, max_backoff: 50ms}}
  spool: {{path: spool.redb}}
receivers:
  - name: {prefix}-ok
    url: {}
    conditions:
      - {{label: severity, operator: In, values: [critical]}}
  - name: {prefix}-flaky
    url: {}
  - name: {prefix}-refused
    url: {}
",
        ok.url("/ok"),
        flaky.url("/flaky"),
        refusing.url("/refused"),
    );
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", MULTI).await.status, 200);
    assert_eq!(relay.post("/webhook", "not json").await.status, 400);
    let reload = send(Request::post(relay.url("/-/reload")).body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    for path in ["/-/healthy", "/-/ready", "/api/v1/status"] {
        assert_eq!(get(&relay.url(path)).await.status, 200, "{path}");
    }
    for (receiver, metric) in
        [("ok", "amrelay_notifications_delivered_total"), ("flaky", "amrelay_notifications_delivered_total")]
    {
        relay.wait_metric(&format!(r#"{metric}{{receiver="{prefix}-{receiver}"}}"#), 1.0).await;
    }
    relay
        .wait_metric(
            &format!(
                r#"amrelay_notifications_dead_lettered_total{{receiver="{prefix}-refused",reason="non_retryable"}}"#
            ),
            1.0,
        )
        .await;
    (relay, vec![ok, flaky, refusing])
}

/// The names of the samples in a Prometheus text scrape, histograms' `_bucket`, `_sum` and
/// `_count` included, plus every name a `# TYPE` line declares.
pub fn sample_names(scrape: &str) -> std::collections::BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(typed) => typed.split_whitespace().next(),
            None if line.starts_with('#') || line.trim().is_empty() => None,
            None => line.split(['{', ' ']).next(),
        })
        .map(str::to_owned)
        .collect()
}

/// The `amrelay_*` metric names a PromQL expression uses.
pub fn amrelay_metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("amrelay_") {
        let preceded_by_word =
            rest[..start].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
        if !preceded_by_word {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

// ---------------------------------------------------------------------------------------------
// A browser: headless Chromium over WebDriver (tests/it/console.rs)

/// Headless Chromium driven over WebDriver by `chromedriver`, started on a free 127.0.0.1 port
/// in a process group of its own, with a fresh profile. Fails naming the Debian packages
/// (`chromium`, `chromium-driver`) when they are missing.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: std::process::Child,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let chromium = debian_program(&["chromium"], "chromium");
        let chromedriver = debian_program(&["chromedriver"], "chromium-driver");
        let profile = tempfile::tempdir().unwrap();
        let log = profile.path().join("chromedriver.log");
        for attempt in 1..=3 {
            let port = free_port();
            let mut driver = spawn_in_own_group(
                std::process::Command::new(&chromedriver).arg(format!("--port={port}")),
                std::fs::File::create(&log).unwrap(),
            );
            let url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + PROGRAM_WAIT;
            let ready = loop {
                if let Ok(Some(_)) = driver.try_wait() {
                    break false;
                }
                if try_get(&format!("{url}/status")).await.is_some_and(|r| r.status == 200) {
                    break true;
                }
                assert!(
                    Instant::now() < deadline,
                    "chromedriver not ready: {}",
                    std::fs::read_to_string(&log).unwrap()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if !ready {
                eprintln!("chromedriver exited (attempt {attempt}): {}", std::fs::read_to_string(&log).unwrap());
                continue;
            }
            let args = [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("--user-data-dir={}", profile.path().join("profile").display())])
            .collect::<Vec<_>>();
            let capabilities = serde_json::json!({
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            });
            let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
            let mut builder = fantoccini::ClientBuilder::new(HttpConnector::new());
            let connect = builder.capabilities(capabilities).connect(&url);
            let client = tokio::time::timeout(PROGRAM_WAIT, connect)
                .await
                .expect("chromium starts in time")
                .unwrap_or_else(|e| panic!("chromium did not start: {e}\n{}", std::fs::read_to_string(&log).unwrap()));
            return Browser { client, driver, log, _profile: profile };
        }
        panic!("chromedriver did not start; see its logs above");
    }

    /// Runs `test` against a fresh browser, then ends the session and the browser's processes
    /// whatever the test did, and only then reports its panic.
    pub async fn run<F, Fut>(test: F)
    where
        F: FnOnce(fantoccini::Client) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let browser = Browser::start().await;
        let outcome = tokio::spawn(test(browser.client.clone())).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), browser.client.clone().close()).await;
        let log = std::fs::read_to_string(&browser.log).unwrap_or_default();
        drop(browser);
        if let Err(e) = outcome {
            eprintln!("chromedriver log tail:\n{}", &log[log.len().saturating_sub(3000)..]);
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the Chromium processes it started share its process group.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}

fn spawn_in_own_group(command: &mut std::process::Command, log: std::fs::File) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    command
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"))
}

/// Waits until the text of the element `css` satisfies `done`; returns it. Finds the element
/// anew at every try, as the console re-renders its figures.
pub async fn wait_text(client: &fantoccini::Client, css: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = match client.find(fantoccini::Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{css}: text is {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element `css`, finding it again if a re-render replaced it in between.
pub async fn click(client: &fantoccini::Client, css: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let clicked = match client.find(fantoccini::Locator::Css(css)).await {
            Ok(element) => element.click().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match clicked {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "cannot click {css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
