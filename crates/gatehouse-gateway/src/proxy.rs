//! Forwarding to the upstream MCP server (Streamable HTTP). Responses, SSE
//! included, are streamed through as they arrive, never buffered whole.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::Response;
use futures_util::TryStreamExt;

/// Request headers passed upstream: every `mcp-*` header plus these. The
/// client's `Authorization` and cookies never are (MCP forbids token passthrough).
fn forward_request_header(name: &HeaderName) -> bool {
    is_mcp(name) || matches!(name.as_str(), "accept" | "content-type" | "last-event-id")
}

/// Response headers passed back: every `mcp-*` header plus these.
fn forward_response_header(name: &HeaderName) -> bool {
    is_mcp(name) || matches!(name.as_str(), "content-type" | "cache-control")
}

fn is_mcp(name: &HeaderName) -> bool {
    name.as_str().starts_with("mcp-")
}

pub fn upstream_error() -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32603, "message": "the upstream MCP server is unavailable"}
    });
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
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
    method: Method,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let headers_timeout = http.headers_timeout;
    let mut req = http.client.request(method, upstream.clone());
    for (name, value) in headers {
        if forward_request_header(name) {
            req = req.header(name, value);
        }
    }
    let resp = match tokio::time::timeout(headers_timeout, req.body(body).send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(%upstream, error = %e, "upstream request failed");
            return upstream_error();
        }
        Err(_) => {
            tracing::warn!(%upstream, timeout = ?headers_timeout, "the upstream did not answer in time");
            let mut resp = upstream_error();
            *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
            return resp;
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
    out
}
