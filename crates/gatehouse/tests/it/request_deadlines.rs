//! Deadlines on requests through the real binary: a request body that
//! trickles in gets 408 (gateway and authorization server), an upstream that
//! never answers gets 504 — while a long SSE answer through the gateway
//! outlives every connection timeout.

use gatehouse_testkit::issuer::TestIssuer;
use gatehouse_testkit::limited::*;
use gatehouse_testkit::stall::*;
use gatehouse_testkit::*;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn a_long_sse_stream_through_the_gateway_outlives_the_header_and_idle_timeouts() {
    install_crypto();
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let gap = Duration::from_millis(1800);
    let up = upstream(seen.clone(), gap).await;
    let (_gw, resource) = gateway(
        &dir,
        &issuer.base,
        &up,
        "header_read_timeout = \"1s\"\nidle_timeout = \"1s\"\nrequest_body_timeout = \"1s\"\n\
         upstream_response_timeout = \"1s\"\n",
        None,
    );
    let token = issuer.token("ci-bot", &resource);
    let start = Instant::now();
    let mut resp = reqwest::Client::new()
        .get(&resource)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    let mut arrivals = Vec::new();
    while let Some(chunk) = resp.chunk().await.expect("the stream is not cut") {
        text.push_str(&String::from_utf8_lossy(&chunk));
        arrivals.push(start.elapsed());
    }
    for n in 0..3 {
        assert!(
            text.contains(&format!("\"params\":{{\"n\":{n}}}")),
            "event {n} missing: {text}"
        );
    }
    assert!(
        start.elapsed() >= gap * 2,
        "the stream ended early: {arrivals:?}"
    );
    assert_eq!(*seen.lock().unwrap(), vec!["GET"]);
}

#[tokio::test]
async fn an_upstream_that_never_answers_gets_504_after_the_upstream_response_timeout() {
    install_crypto();
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let hung = format!("{}/mcp", accepts_and_ignores().await);
    let (_gw, resource) = gateway(
        &dir,
        &issuer.base,
        &hung,
        "upstream_response_timeout = \"1s\"\n",
        None,
    );
    let start = Instant::now();
    let r = reqwest::Client::new()
        .post(&resource)
        .bearer_auth(issuer.token("ci-bot", &resource))
        .header("accept", "application/json, text/event-stream")
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "search", "arguments": {}}}),
        )
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(r.status(), 504);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32603, "{body}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// Sends a request head announcing a 200-byte body, then only 20 bytes;
/// returns the answer and how long it took.
async fn stalled_body(addr: SocketAddr, head: &str) -> ((u16, String), Duration) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    tcp.write_all(format!("{head}Content-Length: 200\r\n\r\n{{\"jsonrpc\": \"2.0\", ").as_bytes())
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), read_response(&mut tcp))
        .await
        .expect("an answer to the stalled body");
    (answer, start.elapsed())
}

#[tokio::test]
async fn a_request_body_that_stalls_gets_408_after_the_body_timeout_and_changes_nothing() {
    install_crypto();
    let limits = "request_body_timeout = \"1s\"\n";
    // The gateway: the call never reaches the upstream.
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let up = upstream(seen.clone(), Duration::ZERO).await;
    let (gw, resource) = gateway(&dir, &issuer.base, &up, limits, None);
    let token = issuer.token("ci-bot", &resource);
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
    );
    let ((status, body), took) = stalled_body(gw.addr, &head).await;
    assert_eq!(status, 408, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );

    // The authorization server: the registration is refused, nothing stored.
    let dir = DataDir::new();
    let p = serve(&dir, limits, None);
    let ((status, body), took) = stalled_body(
        p.addr,
        "POST /oauth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
    )
    .await;
    assert_eq!(status, 408, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(client_count(&dir).await, 0);
}
