//! `POST /oauth/register` (RFC 7591 §3).

use crate::AppState;
use crate::body::read_body;
use crate::respond::{ApiError, NO_STORE, json_response};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_oauth::error::{ErrorCode, OAuthError};
use serde_json::Value;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Sources the registration rate limiter tracks at once.
const MAX_TRACKED_SOURCES: usize = 100_000;

/// IPv6 sources are limited per /64, the smallest block a host usually gets.
pub(crate) fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The per-address budget shared by registration and RFC 7592 management
/// (whose requests also cost a Store read and an HMAC before any check can
/// fail); `Some` answer when the source is over it.
pub(crate) fn over_budget(state: &AppState, peer: SocketAddr) -> Option<Response> {
    let limiter = &state.registration_limiter;
    let source = rate_key(peer.ip());
    // Refuse new sources once the limiter tracks too many (it is swept every
    // minute), so its memory stays bounded.
    let full = limiter.len() >= MAX_TRACKED_SOURCES;
    (full || limiter.check_key(&source).is_err()).then(|| {
        ApiError(OAuthError::new(
            ErrorCode::SlowDown,
            "too many registration requests from this address; retry later",
        ))
        .into_response()
    })
}

pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = over_budget(&state, peer) {
        return refused;
    }
    let bytes = match read_body(&headers, body, "application/json").await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let parsed: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return ApiError(OAuthError::invalid_request(format!(
                "request body is not valid JSON: {e}"
            )))
            .into_response();
        }
    };
    let Value::Object(request) = parsed else {
        return ApiError(OAuthError::invalid_metadata(
            "the request body must be a JSON object",
        ))
        .into_response();
    };
    match state.server.register(&request, bearer(&headers)).await {
        Ok(created) => {
            tracing::info!(
                client_id = %created.client.id,
                grant_types = ?created.client.metadata.grant_types,
                "client registered"
            );
            json_response(StatusCode::CREATED, &created.response(), NO_STORE)
        }
        Err(e) => ApiError(e).into_response(),
    }
}
