//! A naive JSON-RPC upstream written for the gateway's attack tests: it does
//! everything a careless MCP server might. It accepts any HTTP method and
//! executes whatever JSON-RPC body comes with it, notifications included;
//! it echoes request ids the way a JavaScript server does (`1.0`, `1e0` and
//! `-0` come back as `1`, `1`, `0`); it answers lists as JSON or SSE, with a
//! priming event whose id can be resumed from; it replays its stored SSE
//! events on a GET with `Last-Event-ID`; it can answer lists with JSON no
//! strict parser accepts. It records every call it executed.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// The upstream's tools: the policies let `ci-bot` call only the first.
pub const TOOLS: [&str; 3] = ["search_issues", "delete_repo", "merge_pr"];

/// A list answer no strict JSON parser reads.
#[derive(Clone, Copy, Debug)]
pub enum Broken {
    /// A lone surrogate escape in a tool name.
    LoneSurrogate,
    /// `NaN` as a value.
    NaN,
    /// Arrays nested 200 deep inside an item.
    Deep,
    /// `tools` is an object, not an array.
    NotAnArray,
}

/// One JSON-RPC message the upstream executed.
#[derive(Clone, Debug, PartialEq)]
pub struct Executed {
    /// The HTTP method it came with.
    pub http: String,
    pub method: String,
    /// `params.name`, when there is one.
    pub name: Option<String>,
    /// The `Mcp-Session-Id` it came with.
    pub session: Option<String>,
}

#[derive(Default)]
pub struct State {
    pub executed: Vec<Executed>,
    /// Every HTTP request: (method, Mcp-Session-Id, Last-Event-ID).
    pub requests: Vec<(String, Option<String>, Option<String>)>,
    /// Answer requests as SSE streams (with a priming event).
    pub sse: bool,
    pub broken: Option<Broken>,
    /// Data of the events a GET without `Last-Event-ID` streams.
    pub get_events: Vec<String>,
    /// Every SSE event sent on a POST stream, for replay: (id, data).
    events: Vec<(String, String)>,
    sessions: u32,
}

pub struct Naive {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl Naive {
    pub async fn start() -> Naive {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let app = Router::new().route(
            "/mcp",
            any(move |method: Method, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { serve(&state, method, headers, body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Naive {
            url: format!("http://{addr}/mcp"),
            state,
        }
    }

    pub fn executed(&self) -> Vec<Executed> {
        self.state.lock().unwrap().executed.clone()
    }

    /// (JSON-RPC method, name) of every executed call.
    pub fn calls(&self) -> Vec<(String, Option<String>)> {
        self.executed()
            .into_iter()
            .map(|e| (e.method, e.name))
            .collect()
    }

    pub fn requests(&self) -> Vec<(String, Option<String>, Option<String>)> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap())
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// A request id echoed as a JavaScript server would: numbers go through a
/// double, and integral ones print as integers.
fn js_id(id: &Value) -> String {
    match id {
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < 9e15 {
                format!("{}", f as i64)
            } else {
                format!("{f}")
            }
        }
        other => other.to_string(),
    }
}

fn tools_result(broken: Option<Broken>) -> String {
    let all = || {
        TOOLS
            .iter()
            .map(|t| format!(r#"{{"name":"{t}"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    match broken {
        None => format!(r#"{{"tools":[{}]}}"#, all()),
        Some(Broken::LoneSurrogate) => {
            format!(r#"{{"tools":[{},{{"name":"delete_repo\ud800"}}]}}"#, all())
        }
        Some(Broken::NaN) => format!(r#"{{"tools":[{},{{"name":"x","score":NaN}}]}}"#, all()),
        Some(Broken::Deep) => format!(
            r#"{{"tools":[{},{{"name":"x","deep":{}{}}}]}}"#,
            all(),
            "[".repeat(200),
            "]".repeat(200)
        ),
        Some(Broken::NotAnArray) => r#"{"tools":{"name":"delete_repo"}}"#.to_string(),
    }
}

fn serve(state: &Mutex<State>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let session = header(&headers, "mcp-session-id");
    let last_event = header(&headers, "last-event-id");
    let mut st = state.lock().unwrap();
    st.requests
        .push((method.to_string(), session.clone(), last_event.clone()));
    if method == Method::GET && body.is_empty() {
        let text = match &last_event {
            Some(after) => {
                let start = st.events.iter().position(|(id, _)| id == after);
                start.map_or(String::new(), |i| {
                    st.events[i + 1..]
                        .iter()
                        .map(|(id, data)| format!("id: {id}\ndata: {data}\n\n"))
                        .collect()
                })
            }
            None => st
                .get_events
                .iter()
                .map(|d| format!("event: message\ndata: {d}\n\n"))
                .collect(),
        };
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(text))
            .unwrap();
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let messages = match &parsed {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    };
    let mut answers = Vec::new();
    let mut new_session = None;
    for msg in &messages {
        let Some(rpc) = msg["method"].as_str() else {
            continue;
        };
        st.executed.push(Executed {
            http: method.to_string(),
            method: rpc.to_string(),
            name: msg["params"]["name"].as_str().map(String::from),
            session: session.clone(),
        });
        if rpc == "initialize" {
            st.sessions += 1;
            new_session = Some(format!("sess-{}", st.sessions));
        }
        let Some(id) = msg.get("id") else { continue };
        let result = match rpc {
            "tools/list" => tools_result(st.broken),
            "tools/call" => json!({"content": [{"type": "text", "text": format!("called {}", msg["params"]["name"].as_str().unwrap_or(""))}]}).to_string(),
            "initialize" => json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "naive", "version": "1"}}).to_string(),
            _ => "{}".to_string(),
        };
        answers.push(format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#,
            js_id(id)
        ));
    }
    let mut resp = Response::builder();
    if let Some(s) = &new_session {
        resp = resp.header("mcp-session-id", s.as_str());
    }
    if answers.is_empty() {
        return resp
            .status(StatusCode::ACCEPTED)
            .body(Body::empty())
            .unwrap();
    }
    if st.sse {
        let mut text = String::new();
        let mut event = |st: &mut State, data: String| {
            let id = format!("ev-{}", st.events.len() + 1);
            text.push_str(&format!("id: {id}\ndata: {data}\n\n"));
            st.events.push((id, data));
        };
        event(&mut st, String::new());
        for a in answers {
            event(&mut st, a);
        }
        return resp
            .header("content-type", "text/event-stream")
            .body(Body::from(text))
            .unwrap();
    }
    let text = if parsed.is_array() {
        format!("[{}]", answers.join(","))
    } else {
        answers.remove(0)
    };
    resp.header("content-type", "application/json")
        .body(Body::from(text))
        .unwrap()
}
