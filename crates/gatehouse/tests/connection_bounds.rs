//! Bounded connections on every listener, against the real binary (`serve`
//! and the standalone `gateway`): a capped number of connections, a
//! header-read timeout against half-sent requests (slowloris), an idle
//! timeout on keep-alive connections, a deadline on request bodies — and
//! long SSE answers that none of these cut.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::Method;
use axum::response::Response as AxumResponse;
use axum::routing::any;
use common::issuer::TestIssuer;
use common::stall::*;
use common::*;
use std::net::SocketAddr;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const POLICIES: &str =
    "permit (principal == Client::\"ci-bot\", action == Action::\"call_tool\", resource);\n";

/// Open-files limit the slowloris runs start the binary with.
const NOFILE: u32 = 128;
/// Stalled connections opened: more than the process has descriptors.
const STALLED: usize = 160;
/// The connection cap for those runs: well under `NOFILE`.
const CAP: u32 = 80;

/// A running `gatehouse` process, killed when dropped.
struct Proc {
    child: Child,
    base: String,
    addr: SocketAddr,
    logs: Arc<Mutex<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }
}

fn spawn(args: &[&str], marker: &'static str, nofile: Option<u32>) -> Proc {
    let (child, addr, logs) = spawn_ready_limited(args, &[], marker, nofile)
        .unwrap_or_else(|logs| panic!("did not start:\n{logs}"));
    Proc {
        child,
        base: format!("http://{addr}"),
        addr: addr.parse().unwrap(),
        logs,
    }
}

fn write(dir: &DataDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `gatehouse serve` with `limits` as its `[limits]` section.
fn serve(dir: &DataDir, limits: &str, nofile: Option<u32>) -> Proc {
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
fn gateway(
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
async fn upstream(seen: Arc<Mutex<Vec<String>>>, gap: Duration) -> String {
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
                        let event = format!("event: message\ndata: {{\"n\":{n}}}\n\n");
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

/// Slowloris against `proc`: more half-sent requests than the process has
/// descriptors. `probe` (a cheap GET) must still answer within a couple of
/// header timeouts, every stalled connection must be closed by the server
/// after the header timeout (not before), and `accept` must never have
/// failed for want of descriptors.
async fn slowloris(proc: &Proc, probe: &str) {
    let start = Instant::now();
    let stalled = stalled_connections(proc.addr, STALLED).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let asked = Instant::now();
    let r = http.get(probe).send().await.expect("the probe is answered");
    assert_eq!(r.status(), 200);
    let waited = asked.elapsed();
    // The probe waits in the backlog behind STALLED - CAP connections:
    // one round of header timeouts (1 s) frees CAP slots.
    assert!(
        waited < Duration::from_secs(4),
        "the probe waited {waited:?}"
    );
    let closed = closed_after(stalled, start, Duration::from_secs(10)).await;
    let open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "stalled connections still open after 10 s");
    let first = closed.iter().flatten().min().copied().unwrap();
    let last = closed.iter().flatten().max().copied().unwrap();
    assert!(
        first >= Duration::from_millis(900),
        "a stalled connection was cut before the header timeout: {first:?}"
    );
    assert!(last < Duration::from_secs(6), "the last closed at {last:?}");
    let logs = proc.logs();
    assert!(
        !logs.contains("accepting connections fails"),
        "accept ran out of descriptors:\n{logs}"
    );
    assert!(logs.contains("connection limit reached"), "{logs}");
    // And afterwards, at once.
    let asked = Instant::now();
    let r = http.get(probe).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(asked.elapsed() < Duration::from_secs(1));
}

fn slowloris_limits() -> String {
    format!("max_connections = {CAP}\nheader_read_timeout = \"1s\"\n")
}

#[tokio::test]
async fn half_sent_requests_to_serve_neither_exhaust_descriptors_nor_silence_healthz() {
    let dir = DataDir::new();
    let p = serve(&dir, &slowloris_limits(), Some(NOFILE));
    slowloris(&p, &format!("{}/healthz", p.base)).await;
}

#[tokio::test]
async fn half_sent_requests_to_the_gateway_neither_exhaust_descriptors_nor_silence_its_metadata() {
    let dir = DataDir::new();
    // Neither is contacted to serve the metadata.
    let (p, _) = gateway(
        &dir,
        "http://127.0.0.1:1",
        "http://127.0.0.1:1/mcp",
        &slowloris_limits(),
        Some(NOFILE),
    );
    slowloris(
        &p,
        &format!("{}/.well-known/oauth-protected-resource/mcp", p.base),
    )
    .await;
}

#[tokio::test]
async fn keep_alive_connections_close_after_the_idle_timeout_and_half_requests_after_the_header_timeout()
 {
    let dir = DataDir::new();
    let p = serve(
        &dir,
        "header_read_timeout = \"1s\"\nidle_timeout = \"3s\"\n",
        None,
    );
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let idle = async {
        let mut tcp = TcpStream::connect(p.addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let (status, body) = read_response(&mut tcp).await;
        assert_eq!((status, body.contains("ok")), (200, true));
        // A second request on the same connection: it is kept alive.
        tcp.write_all(request).await.unwrap();
        assert_eq!(read_response(&mut tcp).await.0, 200);
        let answered = Instant::now();
        closed_within(&mut tcp, answered, Duration::from_secs(8)).await
    };
    let half = async {
        let mut tcp = TcpStream::connect(p.addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        assert_eq!(read_response(&mut tcp).await.0, 200);
        let answered = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        closed_within(&mut tcp, answered, Duration::from_secs(8)).await
    };
    let silent = async {
        let mut tcp = TcpStream::connect(p.addr).await.unwrap();
        closed_within(&mut tcp, Instant::now(), Duration::from_secs(8)).await
    };
    let (idle, half, silent) = tokio::join!(idle, half, silent);
    let idle = idle.expect("the idle connection is closed");
    assert!(
        idle >= Duration::from_millis(2800) && idle < Duration::from_millis(4500),
        "idle keep-alive closed after {idle:?}, not the idle timeout (3 s)"
    );
    let half = half.expect("the half-sent request's connection is closed");
    assert!(
        half >= Duration::from_millis(1400) && half < Duration::from_millis(2500),
        "half-sent next request closed {half:?} after the answer, not 1 s after its first byte"
    );
    let silent = silent.expect("the silent connection is closed");
    assert!(
        silent >= Duration::from_millis(900) && silent < Duration::from_millis(2000),
        "a connection that never sent a byte closed after {silent:?}"
    );
}

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
        "header_read_timeout = \"1s\"\nidle_timeout = \"1s\"\nrequest_body_timeout = \"1s\"\n",
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
            text.contains(&format!("data: {{\"n\":{n}}}")),
            "event {n} missing: {text}"
        );
    }
    assert!(
        start.elapsed() >= gap * 2,
        "the stream ended early: {arrivals:?}"
    );
    assert_eq!(*seen.lock().unwrap(), vec!["GET"]);
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

#[tokio::test]
async fn connection_limits_out_of_range_stop_the_start_naming_the_key() {
    let dir = DataDir::new();
    for (limits, key) in [
        ("max_connections = 0", "limits.max_connections"),
        (
            "header_read_timeout = \"10ms\"",
            "limits.header_read_timeout",
        ),
        ("idle_timeout = \"2h\"", "limits.idle_timeout"),
        (
            "request_body_timeout = \"0s\"",
            "limits.request_body_timeout",
        ),
        (
            "upstream_response_timeout = \"5h\"",
            "limits.upstream_response_timeout",
        ),
    ] {
        let cfg = write(&dir, "bad.toml", &format!("[limits]\n{limits}\n"));
        let data = dir.path().display().to_string();
        let err = spawn_ready(
            &[
                "serve",
                "--data-dir",
                &data,
                "--config",
                &cfg,
                "--listen",
                "127.0.0.1:0",
            ],
            &[],
            "gatehouse started",
        )
        .err()
        .unwrap_or_else(|| panic!("{limits} was accepted"));
        assert!(err.contains(key), "{limits}: {err}");
    }
}
