//! Bounded connections on every listener, against the real binary (`serve`
//! and the standalone `gateway`): a capped number of connections, a
//! header-read timeout against half-sent requests (slowloris), an idle
//! timeout on keep-alive connections; the limits' own checks.

use gatehouse_testkit::limited::*;
use gatehouse_testkit::stall::*;
use gatehouse_testkit::*;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Open-files limit the slowloris runs start the binary with.
const NOFILE: u32 = 128;
/// Stalled connections opened: more than the process has descriptors.
const STALLED: usize = 160;
/// The connection cap for those runs: well under `NOFILE`.
const CAP: u32 = 80;

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
async fn with_the_cap_above_the_descriptor_limit_accept_failures_pause_and_the_server_recovers() {
    let dir = DataDir::new();
    // A misconfiguration: more connections allowed than descriptors.
    let mut p = serve(
        &dir,
        "max_connections = 1000\nheader_read_timeout = \"1s\"\n",
        Some(NOFILE),
    );
    let start = Instant::now();
    let stalled = stalled_connections(p.addr, STALLED).await;
    let closed = closed_after(stalled, start, Duration::from_secs(10)).await;
    assert!(
        closed.iter().all(Option::is_some),
        "stalled connections left open"
    );
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("{}/healthz", p.base))
        .send()
        .await
        .expect("answered once descriptors are free again");
    assert_eq!(r.status(), 200);
    assert!(p.child.try_wait().unwrap().is_none(), "the process exited");
    let logs = p.logs();
    let failures = logs.matches("accepting connections fails").count();
    assert!(
        (1..=2).contains(&failures),
        "accept failures are logged, not once per retry ({failures}):\n{logs}"
    );
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
