//! A local HTTP/1.1 and HTTP/2 server for the fakes of outside APIs: every connection accepted
//! on 127.0.0.1:0 is served by `answer`, until the test's runtime ends.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::eventually::eventually;

/// Serves `answer` on `listener`; the task accepting connections is returned (abort it to stop).
pub fn serve_on<F, Fut>(listener: TcpListener, answer: F) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let answer = answer.clone();
                    async move { Ok::<_, Infallible>(answer(request).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}

/// A JSON answer with `status`.
pub fn json_response(status: u16, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let body = if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
    response
}

/// Waits (bounded) until a fake has recorded `count` calls, and returns them.
pub async fn wait_for_calls<T: std::fmt::Debug>(count: usize, calls: impl Fn() -> Vec<T>) -> Vec<T> {
    eventually(&format!("{count} calls"), super::WAIT, async || {
        let calls = calls();
        if calls.len() >= count { Ok(calls) } else { Err(format!("{calls:#?}")) }
    })
    .await
}
