//! A local fake of the destinations issue 23 added presets for, answering as each documents,
//! by the first segment of the path it is called at (`/matrix/…`, `/pushover`, …):
//! - Matrix (`PUT …/send/m.room.message/{txnId}`): `{"event_id": "$…"}`, the same event for a
//!   transaction id already seen, as the spec requires of a homeserver;
//! - Rocket.Chat `{"success": true}`, Pushover `{"status": 1, "request": …}`, Splunk On-Call
//!   `{"result": "success", "entity_id": …}`; the others `{}` (they answer by status).
//!
//! A test scripts other answers (an error family, a rate limit) for a preset's next requests, in
//! order (each preset's receiver delivers in parallel with the others).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::serve::{json_response, serve_on, wait_for_calls};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Bytes,
    pub at: Instant,
    pub status: u16,
}

impl Seen {
    /// The preset the request was for: the path's first segment.
    pub fn preset(&self) -> &str {
        self.path.trim_start_matches('/').split('/').next().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A scripted answer: status, body and an optional `Retry-After`.
pub type Scripted = (u16, Value, Option<&'static str>);

#[derive(Default)]
struct State {
    script: HashMap<String, VecDeque<Scripted>>,
    seen: Vec<Seen>,
    /// Matrix: transaction path → the event it made.
    transactions: HashMap<String, String>,
}

#[derive(Clone)]
pub struct Vendors {
    pub addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Vendors {
    pub async fn start() -> Vendors {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Vendors { addr: listener.local_addr().unwrap(), state: Arc::default() };
        let server = fake.clone();
        serve_on(listener, move |request| server.clone().answer(request));
        fake
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests for `preset` so, in order.
    pub fn script(&self, preset: &str, answers: impl IntoIterator<Item = Scripted>) {
        self.state.lock().unwrap().script.entry(preset.to_owned()).or_default().extend(answers);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Waits (bounded) until `count` requests were answered.
    pub async fn wait(&self, count: usize) -> Vec<Seen> {
        wait_for_calls(count, || self.seen()).await
    }

    async fn answer(self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let at = Instant::now();
        let (parts, body) = request.into_parts();
        let raw = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let mut seen = Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            raw,
            at,
            status: 200,
        };
        let mut state = self.state.lock().unwrap();
        let scripted = state.script.get_mut(seen.preset()).and_then(VecDeque::pop_front);
        let (status, answer, retry_after) = match scripted {
            Some(scripted) => scripted,
            None => (200, documented_success(&mut state, &seen), None),
        };
        seen.status = status;
        state.seen.push(seen);
        let mut response = json_response(status, &answer);
        if let Some(wait) = retry_after {
            response.headers_mut().insert("retry-after", wait.parse().unwrap());
        }
        response
    }
}

fn documented_success(state: &mut State, seen: &Seen) -> Value {
    match seen.preset() {
        "matrix" => {
            let next = format!("$event{}", state.transactions.len() + 1);
            let event = state.transactions.entry(seen.path.clone()).or_insert(next);
            json!({"event_id": event})
        }
        "rocketchat" => json!({"success": true}),
        "pushover" => json!({"status": 1, "request": "647d2300-702c-4b38-8b2f-d56326ae460b"}),
        "victorops" => json!({"result": "success", "entity_id": seen.body["entity_id"]}),
        _ => json!({}),
    }
}
