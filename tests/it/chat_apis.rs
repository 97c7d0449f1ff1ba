//! Local fakes of the chat APIs amrelay threads through, each answering as its documentation
//! says and recording what it got:
//! - Slack Web API (https://api.slack.com/methods/chat.postMessage, …/chat.update): HTTP 200
//!   always, `{"ok": true, "channel", "ts"}` or `{"ok": false, "error"}`; a bot token required.
//! - Telegram Bot API (https://core.telegram.org/bots/api#sendmessage, #editmessagetext):
//!   `{"ok": true, "result": Message}`, or the error's HTTP status with `description`.
//! - Google Chat incoming webhook (spaces.messages.create): `threadKey`,
//!   `messageReplyOption`, and `requestId` (a repeated one answers the message already made).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::serve::{json_response, serve_on, wait_for_calls};

pub const SLACK_TOKEN: &str = "xoxb-fake-b0t-t0ken";
pub const TELEGRAM_BOT: &str = "/bot123456:FAKE-t0ken";
pub const CHAT_SPACE: &str = "/v1/spaces/AAAA/messages";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Slack,
    Telegram,
    GoogleChat,
}

/// A message in the fake channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    /// Slack: the parent's `ts`; Telegram: the replied-to message id; Google Chat: the thread key.
    pub thread: Option<String>,
    pub edits: u32,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The API method: `chat.postMessage`, `editMessageText`, `messages.create`, ….
    pub method: String,
    pub query: String,
    pub body: Value,
    pub authorization: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct State {
    next_id: u64,
    messages: BTreeMap<String, Message>,
    calls: Vec<Call>,
    /// Google Chat: request id → the message it made.
    requests: HashMap<String, String>,
    /// Answer the next `n` creations with a 503 after making the message (a lost answer).
    lose_answers: u32,
}

#[derive(Clone)]
pub struct FakeChat {
    pub addr: std::net::SocketAddr,
    pub api: Api,
    state: Arc<Mutex<State>>,
}

impl FakeChat {
    pub async fn start(api: Api) -> FakeChat {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeChat {
            addr: listener.local_addr().unwrap(),
            api,
            state: Arc::new(Mutex::new(State { next_id: 100, ..State::default() })),
        };
        let server = fake.clone();
        serve_on(listener, move |request| server.clone().answer(request));
        fake
    }

    /// The URL a receiver posts its first message to.
    pub fn url(&self) -> String {
        match self.api {
            Api::Slack => format!("http://{}/api/chat.postMessage", self.addr),
            Api::Telegram => format!("http://{}{TELEGRAM_BOT}/sendMessage", self.addr),
            Api::GoogleChat => format!("http://{}{CHAT_SPACE}?key=k3y&token=t0k", self.addr),
        }
    }

    pub fn messages(&self) -> BTreeMap<String, Message> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn delete(&self, id: &str) {
        self.state.lock().unwrap().messages.remove(id);
    }

    pub fn lose_answers(&self, n: u32) {
        self.state.lock().unwrap().lose_answers = n;
    }

    /// Waits until `count` requests were answered.
    pub async fn wait_calls(&self, count: usize) -> Vec<Call> {
        wait_for_calls(count, || self.calls()).await
    }

    async fn answer(self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or("").to_owned();
        let authorization = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (status, answer) = {
            let mut state = self.state.lock().unwrap();
            let (status, answer, method) = match self.api {
                Api::Slack => slack(&mut state, &path, &body, authorization.as_deref()),
                Api::Telegram => telegram(&mut state, &path, &body),
                Api::GoogleChat => google_chat(&mut state, &path, &query, &body),
            };
            state.calls.push(Call { method, query, body, authorization, status });
            (status, answer)
        };
        json_response(status, &answer)
    }
}

fn text_of(body: &Value) -> String {
    body["text"].as_str().unwrap_or_default().to_owned()
}

fn lost(state: &mut State) -> bool {
    let lose = state.lose_answers > 0;
    state.lose_answers = state.lose_answers.saturating_sub(1);
    lose
}

fn slack(state: &mut State, path: &str, body: &Value, authorization: Option<&str>) -> (u16, Value, String) {
    let method = path.trim_start_matches("/api/").to_owned();
    let refuse = |error: &str| (200, json!({"ok": false, "error": error}), method.clone());
    if authorization != Some(&format!("Bearer {SLACK_TOKEN}")) {
        return refuse("not_authed");
    }
    let Some(channel) = body["channel"].as_str() else { return refuse("channel_not_found") };
    let channel = if channel.starts_with('#') { "C0FAKE01" } else { channel }.to_owned();
    match method.as_str() {
        "chat.postMessage" => {
            let thread = body["thread_ts"].as_str().map(str::to_owned);
            if let Some(parent) = &thread
                && !state.messages.contains_key(parent)
            {
                return refuse("thread_not_found");
            }
            state.next_id += 1;
            let ts = format!("1700000000.{:06}", state.next_id);
            state.messages.insert(ts.clone(), Message { text: text_of(body), thread, edits: 0 });
            (
                200,
                json!({"ok": true, "channel": channel, "ts": ts, "message": {"type": "message", "text": text_of(body)}}),
                method,
            )
        }
        "chat.update" => {
            let ts = body["ts"].as_str().unwrap_or_default().to_owned();
            match state.messages.get_mut(&ts) {
                Some(message) => {
                    message.text = text_of(body);
                    message.edits += 1;
                    (200, json!({"ok": true, "channel": channel, "ts": ts, "text": text_of(body)}), method)
                }
                None => refuse("message_not_found"),
            }
        }
        _ => refuse("unknown_method"),
    }
}

fn telegram(state: &mut State, path: &str, body: &Value) -> (u16, Value, String) {
    let Some(method) = path.strip_prefix(&format!("{TELEGRAM_BOT}/")).map(str::to_owned) else {
        return (404, json!({"ok": false, "error_code": 404, "description": "Not Found"}), path.to_owned());
    };
    let bad = |description: &str| {
        (
            400,
            json!({"ok": false, "error_code": 400, "description": format!("Bad Request: {description}")}),
            method.clone(),
        )
    };
    if body["chat_id"].is_null() {
        return bad("chat not found");
    }
    let message = |id: &str, text: &str| {
        json!({"ok": true, "result": {"message_id": id.parse::<i64>().unwrap(), "date": 1700000000,
               "chat": {"id": body["chat_id"], "type": "supergroup"}, "text": text}})
    };
    match method.as_str() {
        "sendMessage" => {
            let thread = body["reply_parameters"]["message_id"].as_i64().map(|id| id.to_string());
            state.next_id += 1;
            let id = state.next_id.to_string();
            state.messages.insert(id.clone(), Message { text: text_of(body), thread, edits: 0 });
            (200, message(&id, &text_of(body)), method)
        }
        "editMessageText" => {
            let id = body["message_id"].as_i64().map(|id| id.to_string()).unwrap_or_default();
            match state.messages.get_mut(&id) {
                None => bad("message to edit not found"),
                Some(existing) if existing.text == text_of(body) => bad(
                    "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                ),
                Some(existing) => {
                    existing.text = text_of(body);
                    existing.edits += 1;
                    (200, message(&id, &text_of(body)), method)
                }
            }
        }
        _ => (404, json!({"ok": false, "error_code": 404, "description": "Not Found"}), method),
    }
}

fn google_chat(state: &mut State, path: &str, query: &str, body: &Value) -> (u16, Value, String) {
    let method = "messages.create".to_owned();
    if path != CHAT_SPACE {
        return (404, json!({"error": {"code": 404, "status": "NOT_FOUND"}}), method);
    }
    let pairs: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    // The body's `thread.threadKey` (the query parameter is deprecated; amrelay uses the body).
    let thread_key = body["thread"]["threadKey"].as_str().map(str::to_owned);
    let answer = |id: &str, message: &Message| {
        json!({"name": format!("spaces/AAAA/messages/{id}"), "text": message.text,
               "thread": {"name": format!("spaces/AAAA/threads/{}", message.thread.clone().unwrap_or_default()),
                          "threadKey": message.thread}})
    };
    if let Some(existing) = pairs.get("requestId").and_then(|r| state.requests.get(r))
        && let Some(message) = state.messages.get(existing)
    {
        return (200, answer(existing, message), method);
    }
    state.next_id += 1;
    let id = state.next_id.to_string();
    let message = Message { text: text_of(body), thread: thread_key, edits: 0 };
    let answered = answer(&id, &message);
    state.messages.insert(id.clone(), message);
    if let Some(request_id) = pairs.get("requestId") {
        state.requests.insert(request_id.clone(), id);
    }
    if lost(state) {
        return (503, json!({"error": {"code": 503, "status": "UNAVAILABLE"}}), method);
    }
    (200, answered, method)
}
