//! Every answer the gateway gives instead of the upstream's, in one type:
//! its HTTP status, its body (an OAuth error for token problems, RFC 6750
//! §3.1; a JSON-RPC error for everything else, JSON-RPC 2.0 §5.1) and its
//! headers. `WWW-Authenticate` goes only with 401 and `insufficient_scope`
//! (RFC 6750 §3): a policy denial never carries it, since MCP clients answer
//! a challenge by asking for a new token, which would not change the
//! decision (docs/gateway.md "The gateway").

use crate::jsonrpc;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

/// JSON-RPC error for calls the policies deny (implementation-defined
/// server error range, JSON-RPC 2.0 §5.1).
pub const FORBIDDEN_CODE: i64 = -32003;
/// JSON-RPC "Invalid params" (JSON-RPC 2.0 §5.1): arguments the policies
/// cannot be asked about (nested too deeply, not an object).
pub const INVALID_PARAMS_CODE: i64 = -32602;
/// JSON-RPC "Invalid Request" (JSON-RPC 2.0 §5.1).
pub const INVALID_REQUEST_CODE: i64 = -32600;
/// JSON-RPC "Parse error" (JSON-RPC 2.0 §5.1).
pub const PARSE_ERROR_CODE: i64 = -32700;
/// JSON-RPC "Internal error" (JSON-RPC 2.0 §5.1): the upstream failed, or
/// its answer could not be checked.
pub const INTERNAL_ERROR_CODE: i64 = -32603;
/// The code MCP SDKs use for an unknown session.
pub const SESSION_NOT_FOUND_CODE: i64 = -32001;

/// The methods that reach an upstream (Streamable HTTP).
pub const ALLOWED_METHODS: &str = "GET, POST, DELETE";

/// Why the gateway answers a request itself.
#[derive(Debug)]
pub enum Refusal {
    /// RFC 6750 §2.3 query tokens are refused: URLs end up in logs.
    TokenInQuery,
    /// No bearer token: 401 with a bare challenge (RFC 6750 §3.1).
    NoToken,
    /// 401 `invalid_token`.
    InvalidToken,
    /// 403 `insufficient_scope`.
    InsufficientScope,
    /// The issuer's keys or token status could not be had: 503 with
    /// `Retry-After`, not the client's fault, so not a 401.
    IssuerUnavailable,
    /// An HTTP method no upstream is sent: 405 with `Allow`.
    MethodNotAllowed,
    /// A GET or DELETE with a body.
    BodyNotAllowed,
    /// A body over the limit.
    TooLarge,
    /// A body the listener cut off at `[limits] request_body_timeout`: 408.
    BodyTimeout,
    /// A body that is not JSON.
    ParseError,
    /// A body that is JSON but not a JSON-RPC request the gateway forwards.
    InvalidRequest(&'static str),
    /// A request whose `Mcp-Method`/`Mcp-Name` headers disagree with its body;
    /// carries the request's id text.
    HeadersDisagree(Option<Box<serde_json::value::RawValue>>),
    /// An `Mcp-Session-Id` that was not bound to this caller here.
    SessionNotFound,
    /// A `Last-Event-ID` that was not issued to this caller here.
    UnknownEvent,
    /// The upstream could not be reached, or answered what cannot be passed on.
    Upstream,
    /// The upstream did not start its answer within
    /// `[limits] upstream_response_timeout`: 504.
    UpstreamTimeout,
    /// The gateway itself failed (logged where it happened): 500, never
    /// blamed on the upstream or the client.
    Internal,
    /// Nothing in the request was allowed: the JSON-RPC answers the gateway
    /// made (a message, or an array for a batch) with their status.
    Answered { status: StatusCode, body: String },
}

fn json(status: StatusCode, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn rpc(status: StatusCode, code: i64, message: &str) -> Response {
    json(status, jsonrpc::error_text(None, code, message))
}

fn oauth(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description});
    json(status, body.to_string())
}

impl Refusal {
    /// The response; `challenge` renders the `WWW-Authenticate` value for an
    /// error code (RFC 6750 §3), added only where RFC 6750 asks for one.
    pub fn render(self, challenge: impl Fn(Option<&str>) -> String) -> Response {
        let challenged = match &self {
            Refusal::NoToken => Some(None),
            Refusal::InvalidToken => Some(Some("invalid_token")),
            Refusal::InsufficientScope => Some(Some("insufficient_scope")),
            _ => None,
        };
        let mut resp = self.response();
        if let Some(error) = challenged
            && let Ok(v) = HeaderValue::from_str(&challenge(error))
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }

    /// The status and body: an OAuth error (RFC 6750 §3.1) for the bearer
    /// token's refusals, a JSON-RPC error (or the answer already made) for
    /// everything else.
    fn response(self) -> Response {
        match self {
            Refusal::TokenInQuery => oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "access tokens are accepted only in the Authorization header",
            ),
            Refusal::NoToken => oauth(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required",
            ),
            Refusal::InvalidToken => oauth(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is invalid or expired",
            ),
            Refusal::InsufficientScope => oauth(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "the access token lacks a required scope",
            ),
            Refusal::IssuerUnavailable => {
                let mut resp = rpc(
                    StatusCode::SERVICE_UNAVAILABLE,
                    INTERNAL_ERROR_CODE,
                    "the authorization server cannot be reached; retry later",
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
                resp
            }
            Refusal::MethodNotAllowed => {
                let mut resp = rpc(
                    StatusCode::METHOD_NOT_ALLOWED,
                    INVALID_REQUEST_CODE,
                    "only POST, GET and DELETE are accepted",
                );
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
                resp
            }
            Refusal::BodyNotAllowed => rpc(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST_CODE,
                "GET and DELETE requests carry no body",
            ),
            Refusal::TooLarge => rpc(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID_REQUEST_CODE,
                "request body too large",
            ),
            Refusal::BodyTimeout => rpc(
                StatusCode::REQUEST_TIMEOUT,
                INVALID_REQUEST_CODE,
                "request body not received in time",
            ),
            Refusal::ParseError => rpc(StatusCode::BAD_REQUEST, PARSE_ERROR_CODE, "parse error"),
            Refusal::InvalidRequest(why) => rpc(StatusCode::BAD_REQUEST, INVALID_REQUEST_CODE, why),
            Refusal::HeadersDisagree(id) => json(
                StatusCode::BAD_REQUEST,
                jsonrpc::error_text(
                    id.as_deref(),
                    INVALID_REQUEST_CODE,
                    "Mcp-Method or Mcp-Name headers disagree with the request body",
                ),
            ),
            Refusal::SessionNotFound => rpc(
                StatusCode::NOT_FOUND,
                SESSION_NOT_FOUND_CODE,
                "session not found",
            ),
            Refusal::UnknownEvent => rpc(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST_CODE,
                "Last-Event-ID was not issued for this session's principal",
            ),
            Refusal::Upstream => rpc(
                StatusCode::BAD_GATEWAY,
                INTERNAL_ERROR_CODE,
                "the upstream MCP server is unavailable",
            ),
            Refusal::UpstreamTimeout => rpc(
                StatusCode::GATEWAY_TIMEOUT,
                INTERNAL_ERROR_CODE,
                "the upstream MCP server did not answer in time",
            ),
            Refusal::Internal => rpc(
                StatusCode::INTERNAL_SERVER_ERROR,
                INTERNAL_ERROR_CODE,
                "the gateway failed; its log says why",
            ),
            Refusal::Answered { status, body } => json(status, body),
        }
    }
}
