//! A small HTTP client that reads whole answers, every request bounded by [`WAIT`]: tests
//! compare statuses, headers and bodies, never streams.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::WAIT;

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

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
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
    post_json_with(url, body, &[]).await
}

/// A JSON body posted exactly as given (byte for byte: what a signature covers), with extra headers.
pub async fn post_json_with(url: &str, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(Full::new(body.into())).unwrap()).await
}

pub async fn get(url: &str) -> Reply {
    send(Request::get(url).body(Full::new(Bytes::new())).unwrap()).await
}

/// `method url` with a JSON body (when given, sent as `application/json`) and extra headers.
pub async fn call(method: &str, url: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::builder().method(method).uri(url);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    send(request.body(Full::new(body)).unwrap()).await
}
