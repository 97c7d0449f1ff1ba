//! A local OAuth2 token endpoint (client credentials) on 127.0.0.1: it records every token
//! request and answers as a test scripts it — by default a new token each time (`tok-1`,
//! `tok-2`, …) with the configured `expires_in`; scripted answers (an error status, a refusal)
//! go first; `stop` makes it refuse connections, as a down endpoint does.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;

/// One token request as the endpoint saw it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The form fields, in order.
    pub form: Vec<(String, String)>,
}

impl TokenRequest {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    requests: Vec<TokenRequest>,
    script: VecDeque<(u16, String)>,
    issued: usize,
    expires_in: u64,
}

/// The endpoint; clones share it.
#[derive(Clone)]
pub struct TokenEndpoint {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl TokenEndpoint {
    /// Issues tokens valid for `expires_in` seconds (0: no `expires_in` in the answer).
    pub async fn start(expires_in: u64) -> TokenEndpoint {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), expires_in)
    }

    /// The same, on a listener the test already bound (to bring a stopped endpoint back).
    pub fn start_on(listener: TcpListener, expires_in: u64) -> TokenEndpoint {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State { expires_in, ..State::default() }));
        let shared = state.clone();
        let server = super::serve::serve_on(listener, move |request| answer(shared.clone(), request));
        TokenEndpoint { addr, state, server: Arc::new(server) }
    }

    pub fn url(&self) -> String {
        format!("http://{}/oauth2/token", self.addr)
    }

    /// Answers the next requests with these statuses and bodies, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = (u16, &'static str)>) {
        self.state.lock().unwrap().script.extend(answers.into_iter().map(|(s, b)| (s, b.to_owned())));
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Stops accepting connections: new ones are refused.
    pub fn stop(&self) {
        self.server.abort();
    }
}

async fn answer(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, text) = {
        let mut state = state.lock().unwrap();
        state.requests.push(TokenRequest {
            authorization: header("authorization"),
            content_type: header("content-type"),
            form: form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        });
        match state.script.pop_front() {
            Some(scripted) => scripted,
            None => {
                state.issued += 1;
                let expires =
                    if state.expires_in > 0 { format!(r#","expires_in":{}"#, state.expires_in) } else { String::new() };
                (200, format!(r#"{{"access_token":"tok-{}","token_type":"bearer"{expires}}}"#, state.issued))
            }
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert("content-type", "application/json".parse().unwrap());
    // No kept-alive connection: a stopped endpoint is really gone.
    response.headers_mut().insert("connection", "close".parse().unwrap());
    response
}
