//! Graceful shutdown on SIGTERM: the real server stops accepting, lets
//! in-flight requests finish within `[limits] shutdown_grace`, closes its store
//! and exits 0. The in-flight request is a gateway call to an MCP upstream (in
//! this test) that takes its time to answer.

use axum::Router;
use axum::routing::post;
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// An MCP upstream that answers every call after `delay`; `arrived` is
/// notified as each call reaches it.
async fn slow_upstream(delay: Duration, arrived: Arc<Notify>) -> String {
    let app = Router::new().route(
        "/mcp",
        post(move |body: String| async move {
            arrived.notify_one();
            tokio::time::sleep(delay).await;
            let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            axum::Json(json!({"jsonrpc": "2.0", "id": msg["id"].clone(),
                "result": {"content": [{"type": "text", "text": "slow answer"}]}}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}

/// `serve` with an embedded gateway in front of a slow upstream; returns the
/// server, the gateway resource URL and a token for it.
async fn serve_slow(
    dir: &DataDir,
    delay: Duration,
    arrived: Arc<Notify>,
    extra_toml: &str,
) -> (Server, String, String) {
    install_crypto();
    let port = free_port();
    let upstream = slow_upstream(delay, arrived).await;
    let policies = dir.path().join("p.cedar");
    std::fs::write(
        &policies,
        "permit (principal == Client::\"ci-bot\", action == Action::\"call_tool\", resource);\n",
    )
    .unwrap();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "{extra_toml}\n[[gateway.servers]]\nresource = \"{resource}\"\nupstream = \"{upstream}\"\npolicies = \"{}\"\n",
            policies.display()
        ),
    )
    .unwrap();
    let (id, secret) = create_client(dir, &["--id", "ci-bot"]);
    let listen = format!("127.0.0.1:{port}");
    let cfg = config.display().to_string();
    let server = Server::start(dir, &["--config", &cfg, "--listen", &listen], &[]);
    let t = server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("resource", &resource),
            ],
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    let token = t.json["access_token"].as_str().unwrap().to_string();
    (server, resource, token)
}

fn call(resource: &str, token: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(resource)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "search", "arguments": {}}}))
}

fn sigterm(server: &Server) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_zero() {
    let dir = DataDir::new();
    let arrived = Arc::new(Notify::new());
    let (mut server, resource, token) =
        serve_slow(&dir, Duration::from_millis(1500), arrived.clone(), "").await;
    let in_flight = tokio::spawn(call(&resource, &token).send());
    // SIGTERM only once the call is in flight (it reached the upstream).
    arrived.notified().await;
    sigterm(&server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new connections once shutdown has begun.
    let addr = server.addr.clone();
    let refused = tokio::task::spawn_blocking(move || {
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(500))
            .is_err()
    })
    .await
    .unwrap();
    assert!(refused, "a new connection was accepted during shutdown");
    // The call that was in flight completes normally.
    let r = in_flight.await.unwrap().expect("in-flight call completed");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "slow answer");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the server exited");
    assert!(status.success(), "{status}");
    let logs = server.logs();
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(logs.contains("gatehouse stopped"), "{logs}");
}

#[tokio::test]
async fn a_request_outliving_the_shutdown_grace_period_does_not_hold_the_process() {
    let dir = DataDir::new();
    let arrived = Arc::new(Notify::new());
    let (mut server, resource, token) = serve_slow(
        &dir,
        Duration::from_secs(30),
        arrived.clone(),
        "[limits]\nshutdown_grace = \"1s\"\n",
    )
    .await;
    let in_flight = tokio::spawn(call(&resource, &token).send());
    arrived.notified().await;
    let signalled = Instant::now();
    sigterm(&server);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the server exited despite a stuck request");
    let took = signalled.elapsed();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        server.logs().contains("shutdown grace period"),
        "{}",
        server.logs()
    );
    // The stuck call ends (with a transport error), it is not left hanging.
    let ended = tokio::time::timeout(Duration::from_secs(5), in_flight).await;
    assert!(ended.is_ok(), "the in-flight call was left hanging");
}

#[tokio::test]
async fn a_shutdown_grace_period_over_ten_minutes_stops_the_start_naming_the_key() {
    let dir = DataDir::new();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(&config, "[limits]\nshutdown_grace = \"11m\"\n").unwrap();
    let cfg = config.display().to_string();
    let logs = match Server::try_start(&dir, &["--config", &cfg], &[]) {
        Ok(_) => panic!("started with an 11-minute grace period"),
        Err(logs) => logs,
    };
    assert!(logs.contains("limits.shutdown_grace"), "{logs}");
}
