//! Time limits on the gateway's own I/O (docs/operations.md "Connections and
//! outbound calls"):
//!
//! - calls to the issuer (discovery, JWKS, introspection) use
//!   [`issuer_client`], whose every request has a total deadline — connect,
//!   headers and body — of [`ISSUER_REQUEST_TIMEOUT`];
//! - calls to an upstream MCP server use [`upstream_client`]: a connect
//!   timeout, and a deadline on the response headers only (applied by
//!   [`crate::proxy`]), since an SSE answer may stream for hours;
//! - a request body that the listener cut off at `[limits]
//!   request_body_timeout` is recognised by `body_timed_out`.

use std::time::Duration;

/// Total time for one request to the issuer.
pub const ISSUER_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to open a TCP connection to the issuer or an upstream.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the gateway waits by default for an upstream's response headers
/// (`[limits] upstream_response_timeout`): the MCP TypeScript SDK's own
/// default request timeout, so a client waiting longer is rare.
pub const DEFAULT_UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The client for the issuer: no redirects, a total deadline per request.
pub fn issuer_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(ISSUER_REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())
}

/// The client for upstream MCP servers: no redirects, a connect timeout, and
/// no total deadline (responses stream); see [`crate::proxy::forward`].
pub fn upstream_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())
}

/// Whether a body-read error is the listener's request-body deadline: an
/// `io::ErrorKind::TimedOut` anywhere in the chain (gatehouse-server's
/// connection module reports it so).
pub(crate) fn body_timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Reads a response body of at most `max` bytes.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err("document too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err("document too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
