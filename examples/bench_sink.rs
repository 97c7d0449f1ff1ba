//! A downstream for `benches/compare.sh`: answers 200 to every POST and counts requests and the
//! alerts in their bodies (a webhook batch, or a bare array of alerts as `am2am` forwards them);
//! `GET /count` returns `requests alerts`.
//!
//! Usage: `bench_sink 127.0.0.1:19100`

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Method, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(untagged)]
enum Posted {
    Batch { alerts: Vec<serde::de::IgnoredAny> },
    Alerts(Vec<serde::de::IgnoredAny>),
}

impl Posted {
    fn alerts(&self) -> usize {
        match self {
            Posted::Batch { alerts } | Posted::Alerts(alerts) => alerts.len(),
        }
    }
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    alerts: AtomicU64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:19100".into());
    let listener = tokio::net::TcpListener::bind(&address).await.expect("bind");
    let counts = Arc::new(Counts::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let counts = counts.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let counts = counts.clone();
                async move {
                    if request.method() == Method::GET {
                        let text = format!(
                            "{} {}\n",
                            counts.requests.load(Ordering::Relaxed),
                            counts.alerts.load(Ordering::Relaxed)
                        );
                        return Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))));
                    }
                    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let alerts = serde_json::from_slice::<Posted>(&body).map(|b| b.alerts()).unwrap_or(0);
                    counts.requests.fetch_add(1, Ordering::Relaxed);
                    counts.alerts.fetch_add(alerts as u64, Ordering::Relaxed);
                    Ok(Response::new(Full::new(Bytes::new())))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
