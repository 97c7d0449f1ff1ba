//! A downstream of limited capacity, as a saturated server behaves: it works on `workers`
//! requests at a time, `service` each, and queues the rest, so the more requests it is offered
//! at once, the longer each waits. It counts the most requests it held at once (the concurrency
//! amrelay offered it) and records each group's numbers in arrival order.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::WAIT;
use super::eventually::{ensure, eventually};

#[derive(Default)]
struct Counts {
    held: AtomicUsize,
    most_held: AtomicUsize,
    answered: AtomicUsize,
    /// groupKey → the `n` label of each alert received, in arrival order.
    order: Mutex<HashMap<String, Vec<usize>>>,
}

/// A downstream that serves `workers` requests at a time.
#[derive(Clone)]
pub struct LimitedDownstream {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
}

impl LimitedDownstream {
    pub async fn start(workers: usize, service: Duration) -> LimitedDownstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let capacity = Arc::new(Semaphore::new(workers));
        let shared = counts.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (counts, capacity) = (shared.clone(), capacity.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| serve(request, counts.clone(), capacity.clone(), service));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        LimitedDownstream { addr, counts }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The most requests it held at once.
    pub fn most_held(&self) -> usize {
        self.counts.most_held.load(Ordering::Relaxed)
    }

    /// Each groupKey's `n` labels, in arrival order.
    pub fn order(&self) -> HashMap<String, Vec<usize>> {
        self.counts.order.lock().unwrap().clone()
    }

    /// Waits until `count` requests were answered.
    pub async fn wait_answered(&self, count: usize) {
        eventually(&format!("{count} answers"), WAIT, async || {
            let answered = self.counts.answered.load(Ordering::Relaxed);
            ensure(answered >= count, || format!("{answered} answered"))
        })
        .await;
    }
}

async fn serve(
    request: Request<Incoming>,
    counts: Arc<Counts>,
    capacity: Arc<Semaphore>,
    service: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let held = counts.held.fetch_add(1, Ordering::Relaxed) + 1;
    counts.most_held.fetch_max(held, Ordering::Relaxed);
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(group) = body["groupKey"].as_str() {
        let numbers = body["alerts"].as_array().into_iter().flatten();
        let numbers = numbers.filter_map(|a| a["labels"]["n"].as_str()?.parse::<usize>().ok());
        counts.order.lock().unwrap().entry(group.to_owned()).or_default().extend(numbers);
    }
    {
        let _worker = capacity.acquire().await.unwrap();
        tokio::time::sleep(service).await;
    }
    counts.held.fetch_sub(1, Ordering::Relaxed);
    counts.answered.fetch_add(1, Ordering::Relaxed);
    Ok(Response::new(Full::new(Bytes::new())))
}
