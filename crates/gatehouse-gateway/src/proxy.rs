//! The forward stage: one request to the upstream MCP server (Streamable
//! HTTP). Responses, SSE included, stream back as they arrive; the filter
//! stage reads them on the way.

use crate::refusal::Refusal;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use futures_util::TryStreamExt;

/// Request headers passed upstream: every `mcp-*` header but the session id
/// (the caller's is replaced by the upstream's own), and `Accept`. The
/// client's `Authorization` and cookies never are (MCP forbids token
/// passthrough); `Content-Type` and `Last-Event-ID` are set here.
fn forward_request_header(name: &HeaderName) -> bool {
    (is_mcp(name) && name.as_str() != SESSION_HEADER) || *name == header::ACCEPT
}

/// Response headers passed back: every `mcp-*` header plus these.
fn forward_response_header(name: &HeaderName) -> bool {
    is_mcp(name) || matches!(name.as_str(), "content-type" | "cache-control")
}

fn is_mcp(name: &HeaderName) -> bool {
    name.as_str().starts_with("mcp-")
}

/// `Mcp-Session-Id`, as `http` spells header names.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// What goes upstream besides the client's headers.
pub struct Outbound<'a> {
    pub method: Method,
    /// The upstream's own session id.
    pub session: Option<&'a str>,
    /// The upstream's own event id to resume after (GET).
    pub last_event: Option<&'a str>,
    /// A JSON body (POST).
    pub body: Option<String>,
}

/// The client for upstream calls ([`crate::deadlines::upstream_client`])
/// and how long an upstream may take to start its answer.
#[derive(Clone)]
pub struct Upstream {
    pub client: reqwest::Client,
    pub headers_timeout: std::time::Duration,
}

/// Forwards a request. The upstream has `headers_timeout` to start its
/// answer (else 504); the body then streams without a deadline — an SSE
/// stream may rightly last for hours, and ends when either side closes.
pub async fn forward(
    http: &Upstream,
    upstream: &reqwest::Url,
    headers: &HeaderMap,
    out: Outbound<'_>,
) -> Result<Response, Refusal> {
    let headers_timeout = http.headers_timeout;
    let mut req = http.client.request(out.method, upstream.clone());
    for (name, value) in headers {
        if forward_request_header(name) {
            req = req.header(name, value);
        }
    }
    if let Some(session) = out.session {
        req = req.header(SESSION_HEADER, session);
    }
    if let Some(id) = out.last_event {
        req = req.header("last-event-id", id);
    }
    if let Some(body) = out.body {
        req = req
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .body(body);
    }
    let resp = match tokio::time::timeout(headers_timeout, req.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(%upstream, error = %e, "upstream request failed");
            return Err(Refusal::Upstream);
        }
        Err(_) => {
            tracing::warn!(%upstream, timeout = ?headers_timeout, "the upstream did not answer in time");
            return Err(Refusal::UpstreamTimeout);
        }
    };
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for (name, value) in resp.headers() {
        if forward_response_header(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let mut out = Response::new(Body::from_stream(
        resp.bytes_stream().map_err(std::io::Error::other),
    ));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}
