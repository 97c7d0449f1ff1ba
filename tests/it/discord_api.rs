//! A local fake of Discord's webhook API, as documented at
//! https://discord.com/developers/docs/resources/webhook: `POST /api/webhooks/{id}/{token}`
//! answers 204 without `wait`, or 200 with the created message object when `?wait=true`;
//! `PATCH …/messages/{message_id}` edits that message (200 with the message object) or answers
//! 404 `{"code": 10008, "message": "Unknown Message"}` when it was deleted; `GET` on the webhook
//! URL answers the webhook object (with its `guild_id` and `channel_id`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::serve::{json_response, serve_on, wait_for_calls};

pub const WEBHOOK: &str = "/api/webhooks/1189/t0ken";

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub status: u16,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// message id → its current content.
    messages: BTreeMap<String, String>,
    calls: Vec<Call>,
}

#[derive(Clone)]
pub struct FakeDiscord {
    pub addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeDiscord {
    pub async fn start() -> FakeDiscord {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeDiscord {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Mutex::new(State { next_id: 1_300_000_000_000_000_000, ..State::default() })),
        };
        let server = fake.clone();
        serve_on(listener, move |request| server.clone().answer(request));
        fake
    }

    pub fn webhook_url(&self) -> String {
        format!("http://{}{WEBHOOK}", self.addr)
    }

    pub fn messages(&self) -> BTreeMap<String, String> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Someone deleted the message in the channel.
    pub fn delete(&self, id: &str) {
        self.state.lock().unwrap().messages.remove(id);
    }

    /// Waits until `count` requests were answered.
    pub async fn wait_calls(&self, count: usize) -> Vec<Call> {
        wait_for_calls(count, || self.calls()).await
    }

    async fn answer(self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let content = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["content"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or("").to_owned();
        let wait = query.split('&').any(|p| p == "wait=true");
        let (status, answer) = {
            let mut state = self.state.lock().unwrap();
            let edit = path.strip_prefix(&format!("{WEBHOOK}/messages/")).map(str::to_owned);
            let (status, answer) = match (&parts.method, edit) {
                (&Method::GET, None) if path == WEBHOOK => (200, webhook()),
                (&Method::POST, None) if path == WEBHOOK && !content.is_empty() => {
                    state.next_id += 1;
                    let id = state.next_id.to_string();
                    state.messages.insert(id.clone(), content.clone());
                    if wait { (200, message(&id, &content)) } else { (204, Value::Null) }
                }
                (&Method::PATCH, Some(id)) => match state.messages.get_mut(&id) {
                    Some(existing) => {
                        existing.clone_from(&content);
                        (200, message(&id, &content))
                    }
                    None => (404, json!({"message": "Unknown Message", "code": 10008})),
                },
                _ => (400, json!({"message": "Cannot send an empty message", "code": 50006})),
            };
            state.calls.push(Call { method: parts.method.clone(), path, query, status });
            (status, answer)
        };
        json_response(status, &answer)
    }
}

fn webhook() -> Value {
    json!({"id": "1189", "type": 1, "guild_id": "900", "channel_id": "1100", "name": "amrelay",
           "application_id": null, "token": "t0ken"})
}

fn message(id: &str, content: &str) -> Value {
    json!({"id": id, "type": 0, "channel_id": "1100", "webhook_id": "1189", "content": content,
           "author": {"id": "1189", "username": "amrelay", "bot": true}, "embeds": [], "attachments": []})
}
