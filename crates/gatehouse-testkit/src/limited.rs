//! The real binary started with a `[limits]` section — `serve`, or the
//! standalone gateway in front of an upstream — for the tests of bounded
//! connections and deadlines.

use crate::*;
use axum::Router;
use axum::body::Body;
use axum::http::Method;
use axum::response::Response as AxumResponse;
use axum::routing::any;
use std::net::SocketAddr;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const POLICIES: &str =
    "permit (principal == Client::\"ci-bot\", action == Action::\"call_tool\", resource);\n";

/// A running `gatehouse` process, killed when dropped.
pub struct Proc {
    pub child: Child,
    pub base: String,
    pub addr: SocketAddr,
    pub logs: Arc<Mutex<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }
}

pub fn spawn(args: &[&str], marker: &'static str, nofile: Option<u32>) -> Proc {
    let (child, addr, logs) = spawn_ready_limited(args, &[], marker, nofile)
        .unwrap_or_else(|logs| panic!("did not start:\n{logs}"));
    Proc {
        child,
        base: format!("http://{addr}"),
        addr: addr.parse().unwrap(),
        logs,
    }
}

pub fn write(dir: &DataDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `gatehouse serve` with `limits` as its `[limits]` section.
pub fn serve(dir: &DataDir, limits: &str, nofile: Option<u32>) -> Proc {
    let cfg = write(dir, "gatehouse.toml", &format!("[limits]\n{limits}\n"));
    let data = dir.path().display().to_string();
    spawn(
        &[
            "serve",
            "--data-dir",
            &data,
            "--config",
            &cfg,
            "--listen",
            "127.0.0.1:0",
        ],
        "gatehouse started",
        nofile,
    )
}

/// The standalone gateway fronting `upstream` at `<base>/mcp`, tokens from
/// `issuer`; returns it and the resource URL.
pub fn gateway(
    dir: &DataDir,
    issuer: &str,
    upstream: &str,
    limits: &str,
    nofile: Option<u32>,
) -> (Proc, String) {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let policies = write(dir, "policies.cedar", POLICIES);
    let cfg = write(
        dir,
        "gateway.toml",
        &format!(
            "[limits]\n{limits}\n[gateway]\nissuer = \"{issuer}\"\nlisten = \"127.0.0.1:{port}\"\n\
             [[gateway.servers]]\nresource = \"{resource}\"\nupstream = \"{upstream}\"\npolicies = \"{policies}\"\n"
        ),
    );
    let p = spawn(&["gateway", "--config", &cfg], "gateway started", nofile);
    (p, resource)
}

/// An MCP upstream recording each call's method; `GET` opens an SSE
/// stream of three events, `gap` apart — longer than every timeout of the
/// gateway under test.
pub async fn upstream(seen: Arc<Mutex<Vec<String>>>, gap: Duration) -> String {
    let app = Router::new().route(
        "/mcp",
        any(move |method: Method, body: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(method.to_string());
                if method == Method::GET {
                    let events = futures_util::stream::unfold(0, move |n| async move {
                        if n == 3 {
                            return None;
                        }
                        if n > 0 {
                            tokio::time::sleep(gap).await;
                        }
                        // A JSON-RPC notification: the gateway withholds anything else.
                        let event = format!(
                            "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"n\":{n}}}}}\n\n"
                        );
                        Some((Ok::<_, std::io::Error>(event), n + 1))
                    });
                    return AxumResponse::builder()
                        .header("content-type", "text/event-stream")
                        .body(Body::from_stream(events))
                        .unwrap();
                }
                let msg: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let reply = serde_json::json!({"jsonrpc": "2.0", "id": msg["id"].clone(),
                    "result": {"content": [{"type": "text", "text": "done"}]}});
                AxumResponse::builder()
                    .header("content-type", "application/json")
                    .body(Body::from(reply.to_string()))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}
