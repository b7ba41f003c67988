//! Peers that never answer, for deadline tests, and raw-TCP clients that
//! stall on purpose (HTTP clients always finish what they send).

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A host that accepts TCP connections and never says a word. Returns its
/// `http://` base URL; it lives as long as the test's runtime.
pub async fn accepts_and_ignores() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    base
}

/// A host that never accepts: its listen backlog is full (filled by the
/// test's own connections), so a new connection never completes.
pub struct FullBacklog {
    pub base: String,
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

pub async fn never_accepts() -> FullBacklog {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(1).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => fillers.push(tcp),
            _ => break,
        }
    }
    FullBacklog {
        base: format!("http://{addr}"),
        _listener: listener,
        _fillers: fillers,
    }
}

/// Opens `n` connections to `addr` that each send the start of a request
/// head and then stall. Connections the kernel completes before the server
/// accepts them count too (they wait in its backlog).
pub async fn stalled_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        out.push(tcp);
    }
    out
}

/// How long after `since` the server closed each connection (EOF or reset
/// while reading), or `None` for those still open after `limit`.
pub async fn closed_after(
    conns: Vec<TcpStream>,
    since: Instant,
    limit: Duration,
) -> Vec<Option<Duration>> {
    let waits: Vec<_> = conns
        .into_iter()
        .map(|mut tcp| tokio::spawn(async move { closed_within(&mut tcp, since, limit).await }))
        .collect();
    let mut out = Vec::with_capacity(waits.len());
    for w in waits {
        out.push(w.await.expect("join"));
    }
    out
}

/// Reads one HTTP/1.1 response with a `Content-Length` body: (status, body).
pub async fn read_response(tcp: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("status line");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = tcp.read(&mut chunk).await.expect("read body");
                assert!(n > 0, "connection closed mid-body");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
            return (status, body);
        }
        let n = tcp.read(&mut chunk).await.expect("read head");
        assert!(n > 0, "connection closed before a response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Waits until the server closes `tcp`; how long that took from `since`
/// (`None`: still open after `limit`).
pub async fn closed_within(
    tcp: &mut TcpStream,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return since.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout_at((since + limit).into(), wait)
        .await
        .ok()
}
