//! The real `gatehouse gateway` process for the gateway's attack and
//! session tests: started on a chosen port (so it can be restarted in
//! place, or run twice behind one resource URL), spoken to with raw bodies.

use crate::{Response, free_port, spawn_ready};
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};

/// Only `ci-bot` may call only `search_issues`; everything else is denied
/// by default.
pub const POLICIES: &str = r#"
@id("ci-bot-search")
permit (principal == Client::"ci-bot", action == Action::"call_tool", resource == Tool::"search_issues");
"#;

pub struct Gw {
    child: Child,
    /// Where requests go: the listener plus the resource's path.
    pub url: String,
    pub port: u16,
    pub logs: Arc<Mutex<String>>,
    pub http: reqwest::Client,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start one gateway.
pub struct GwOptions<'a> {
    pub policies: &'a Path,
    pub issuer: &'a str,
    pub upstream: &'a str,
    /// The resource URL (the tokens' audience); default: this listener's.
    pub resource: Option<&'a str>,
    /// The port to listen on; default: a free one.
    pub port: Option<u16>,
    pub extra: &'a [&'a str],
}

impl Gw {
    pub fn start(o: &GwOptions) -> Result<Gw, String> {
        let port = o.port.unwrap_or_else(free_port);
        let listen = format!("127.0.0.1:{port}");
        let own = format!("http://{listen}/mcp");
        let resource = o.resource.unwrap_or(&own);
        let policies = o.policies.display().to_string();
        let mut args = vec![
            "gateway",
            "--listen",
            &listen,
            "--upstream",
            o.upstream,
            "--resource",
            resource,
            "--issuer",
            o.issuer,
            "--policies",
            &policies,
        ];
        args.extend_from_slice(o.extra);
        let (child, _, logs) = spawn_ready(&args, &[], "gateway started")?;
        Ok(Gw {
            child,
            url: format!("http://{listen}/mcp"),
            port,
            logs,
            http: reqwest::Client::new(),
        })
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Any method, an optional raw body, extra headers.
    pub async fn send(
        &self,
        method: &str,
        token: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, &self.url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream");
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Response::from(req.send().await.unwrap()).await
    }

    /// POSTs a raw JSON-RPC body.
    pub async fn post(&self, token: &str, body: &str, headers: &[(&str, &str)]) -> Response {
        self.send("POST", token, Some(body), headers).await
    }
}

/// The JSON-RPC messages of an SSE body, in order.
pub fn sse_messages(text: &str) -> Vec<serde_json::Value> {
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            serde_json::from_str(&data.join("\n")).ok()
        })
        .collect()
}

/// The `id:` fields of an SSE body, in order.
pub fn sse_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(String::from)
        .collect()
}
