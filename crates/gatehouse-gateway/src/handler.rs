//! The MCP endpoint: verify the bearer token, check the required scopes,
//! authorize each JSON-RPC message with the policies, forward what is allowed
//! and filter list answers.

use crate::route::Route;
use crate::verify::VerifyError;
use crate::{authz, filter, jsonrpc, proxy, sessions};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

/// Largest request body passed upstream.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub(crate) async fn handle(
    State(route): State<Arc<Route>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // RFC 6750 §2.3 query tokens are refused: URLs end up in logs.
    if uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("access_token=")))
    {
        return route.refuse(
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "access tokens are accepted only in the Authorization header",
        );
    }
    let Some(token) = bearer(&headers) else {
        return route.refuse(StatusCode::UNAUTHORIZED, None, "a bearer token is required");
    };
    let verified = match route.verifier.verify(token).await {
        Ok(v) => v,
        Err(VerifyError::Invalid(why)) => {
            tracing::info!(reason = why, resource = %route.server.resource, "token refused");
            return route.refuse(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "the access token is invalid or expired",
            );
        }
        Err(VerifyError::KeysUnavailable(e)) => {
            tracing::warn!(error = %e, "cannot verify tokens: issuer keys unavailable");
            return unavailable();
        }
    };
    // The instant cut-off, when enabled: is the token still active at the
    // issuer (not revoked, its client not deleted)? Fails closed.
    if let Some(status) = &route.token_status {
        let jti = verified.claims.get("jti").and_then(Value::as_str);
        match status.is_active(token, jti).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(resource = %route.server.resource, "token refused: no longer active at the issuer");
                return route.refuse(
                    StatusCode::UNAUTHORIZED,
                    Some("invalid_token"),
                    "the access token is invalid or expired",
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check whether tokens are revoked");
                return unavailable();
            }
        }
    }
    if let Some(missing) = route
        .server
        .required_scopes
        .iter()
        .find(|s| !verified.scopes.contains(s))
    {
        tracing::info!(scope = %missing, "token lacks a required scope");
        return route.refuse(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "the access token lacks a required scope",
        );
    }
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        // The listener's `[limits] request_body_timeout` cut the body off.
        Err(e) if crate::deadlines::body_timed_out(&e) => {
            return rpc_refusal(
                StatusCode::REQUEST_TIMEOUT,
                Value::Null,
                -32600,
                "request body not received in time",
            );
        }
        Err(_) => {
            return rpc_refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                Value::Null,
                -32600,
                "request body too large",
            );
        }
    };
    if method != Method::POST {
        // GET opens the server's SSE stream; DELETE ends a session. Either
        // must come from the session's own principal.
        let principal = sessions::principal_key(&verified.principal);
        if let Some(session) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok())
            && !route.sessions.may_use(session, &principal)
        {
            return rpc_refusal(
                StatusCode::NOT_FOUND,
                Value::Null,
                -32001,
                "session not found",
            );
        }
        return proxy::forward(&route.http, &route.upstream, method, &headers, bytes).await;
    }
    let parsed: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return rpc_refusal(StatusCode::BAD_REQUEST, Value::Null, -32700, "parse error"),
    };
    let messages: Vec<&Value> = match &parsed {
        Value::Array(items) if !items.is_empty() => items.iter().collect(),
        Value::Object(_) => vec![&parsed],
        _ => {
            return rpc_refusal(
                StatusCode::BAD_REQUEST,
                Value::Null,
                -32600,
                "invalid request",
            );
        }
    };
    if parsed.is_object() && !jsonrpc::headers_agree(&headers, &parsed) {
        return rpc_refusal(
            StatusCode::BAD_REQUEST,
            parsed.get("id").cloned().unwrap_or(Value::Null),
            -32600,
            "Mcp-Method or Mcp-Name headers disagree with the request body",
        );
    }
    let policies = match route.policies.read() {
        Ok(p) => p.clone(),
        Err(_) => return proxy::upstream_error(),
    };
    let principal = sessions::principal_key(&verified.principal);
    if let Some(session) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok())
        && !route.sessions.may_use(session, &principal)
    {
        tracing::warn!(
            principal,
            "session used by a principal other than its creator"
        );
        return rpc_refusal(
            StatusCode::NOT_FOUND,
            Value::Null,
            -32001,
            "session not found",
        );
    }
    let mut pending: filter::Pending = Vec::new();
    let mut denied: Vec<Value> = Vec::new();
    let mut allowed: Vec<&Value> = Vec::new();
    // A single refused request answers 403, or 400 when its arguments are
    // what could not be authorized.
    let mut refusal_status = StatusCode::FORBIDDEN;
    for msg in &messages {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let refusal = match jsonrpc::classify(msg, &route.server.allowed_methods) {
            jsonrpc::Call::Pass => None,
            jsonrpc::Call::List(kind) => {
                pending.push((id.clone(), kind));
                None
            }
            jsonrpc::Call::Authorize(action, name, arguments) => policies
                .check(&verified, &route.server.name, action, name, arguments)
                .err(),
            jsonrpc::Call::Probe(action, name) => {
                (!policies.may_allow(&verified, &route.server.name, action, name))
                    .then_some(authz::Refusal::Denied)
            }
            jsonrpc::Call::Invalid(why) => Some(authz::Refusal::BadArguments(why.to_string())),
            jsonrpc::Call::Deny(why) => {
                tracing::info!(reason = why, "request refused by the gateway");
                Some(authz::Refusal::Denied)
            }
        };
        match refusal {
            None => allowed.push(msg),
            Some(_) if msg.get("id").is_none() => {}
            Some(authz::Refusal::Denied) => {
                denied.push(jsonrpc::error(id, FORBIDDEN_CODE, "forbidden"));
            }
            Some(authz::Refusal::BadArguments(why)) => {
                refusal_status = StatusCode::BAD_REQUEST;
                denied.push(jsonrpc::error(id, INVALID_PARAMS_CODE, &why));
            }
        }
    }
    // A Cedar denial never carries WWW-Authenticate (DECISIONS.md): that
    // would send SDKs into a step-up loop.
    if allowed.is_empty() {
        let body = if parsed.is_array() {
            Value::Array(denied)
        } else {
            denied
                .pop()
                .unwrap_or_else(|| jsonrpc::error(Value::Null, FORBIDDEN_CODE, "forbidden"))
        };
        let status = if parsed.is_array() {
            StatusCode::FORBIDDEN
        } else {
            refusal_status
        };
        return json_response(status, &body);
    }
    // Batches are decided element by element: only the allowed elements go
    // upstream, and the denials are merged into the answer.
    let bytes = if denied.is_empty() {
        bytes
    } else {
        Bytes::from(Value::Array(allowed.into_iter().cloned().collect()).to_string())
    };
    let resp = proxy::forward(&route.http, &route.upstream, method, &headers, bytes).await;
    if let Some(created) = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        route.sessions.bind(created, &principal);
    }
    if denied.is_empty() && (pending.is_empty() || !resp.status().is_success()) {
        return resp;
    }
    filter::Filter {
        pending,
        extra: denied,
        token: verified,
        policies,
        server: route.server.name.clone(),
    }
    .response(resp)
    .await
}

/// 503 with `Retry-After` (DECISIONS.md): the issuer could not be asked, which
/// is not the client's fault, so not a 401.
fn unavailable() -> Response {
    let mut resp = proxy::upstream_error();
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    resp
}

/// JSON-RPC error code for calls the policies deny (implementation-defined
/// server error range, JSON-RPC 2.0 §5.1).
pub const FORBIDDEN_CODE: i64 = -32003;

/// JSON-RPC "Invalid params" (JSON-RPC 2.0 §5.1): arguments the policies
/// cannot be asked about (nested too deeply, not an object).
pub const INVALID_PARAMS_CODE: i64 = -32602;

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn rpc_refusal(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    json_response(status, &jsonrpc::error(id, code, message))
}
