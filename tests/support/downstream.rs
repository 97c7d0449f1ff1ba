//! Recording downstream receivers (HTTP and HTTPS) on 127.0.0.1 that answer as a test scripts
//! them: the far side of every delivery, where tests observe what amrelay actually sent.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::WAIT;

/// How the downstream answers one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
    /// The answer's body: `answered {status}` unless given (a vendor's JSON verdict).
    pub body: Option<String>,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer { status, headers: Vec::new(), delay: Duration::ZERO, body: None }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    /// Answers with `body` as JSON, as a vendor's API answers (`{"errcode": 0}`, `{"ok": false}`).
    pub fn json(status: u16, body: Value) -> Answer {
        Answer { body: Some(body.to_string()), ..Answer::status(status) }
            .with_header("content-type", "application/json")
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
    /// The query string, without `?` (empty when there is none).
    pub query: String,
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
                query: parts.uri.query().unwrap_or("").to_owned(),
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
        let body = answer.body.unwrap_or_else(|| format!("answered {}", answer.status));
        let mut response = Response::new(Full::new(Bytes::from(body)));
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

/// Three downstreams: one that accepts, one that fails once with 503, one that refuses with 400.
pub async fn three_downstreams() -> (Downstream, Downstream, Downstream) {
    let ok = Downstream::start().await;
    let flaky = Downstream::start().await;
    flaky.script([Answer::status(503)]);
    let refusing = Downstream::start().await;
    refusing.always(Answer::status(400));
    (ok, flaky, refusing)
}
