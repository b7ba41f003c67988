//! `POST /oauth/register` (RFC 7591 §3).

use crate::AppState;
use crate::body::read_body;
use crate::client_addr::ClientAddr;
use crate::respond::{ApiError, NO_STORE, json_response};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_oauth::error::{ErrorCode, OAuthError};
use serde_json::Value;

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Registrations in progress at once in this process. Each holds a store
/// connection while the store serialises registrations (the caps are
/// counted in the insert), so a burst queues here instead of taking every
/// pooled connection the token endpoint needs.
static IN_PROGRESS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
/// How long a registration waits for its turn before it is refused.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sources the registration rate limiter tracks at once.
const MAX_TRACKED_SOURCES: usize = 100_000;

/// The per-address budget shared by registration and RFC 7592 management
/// (whose requests also cost a Store read and an HMAC before any check can
/// fail); `Some` answer when the source is over it.
pub(crate) fn over_budget(state: &AppState, addr: ClientAddr) -> Option<Response> {
    let limiter = &state.registration_limiter;
    let source = addr.rate_key();
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
    addr: ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = over_budget(&state, addr) {
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
    // The address the registration counts against: per /64 for IPv6, like
    // the rate limit, so one host cannot spread its clients over addresses.
    let source = addr.rate_key().to_string();
    // Taken once the body is read, so a slow sender holds no turn.
    let Ok(Ok(_turn)) = tokio::time::timeout(TURN_WAIT, IN_PROGRESS.acquire()).await else {
        return ApiError(OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "too many registrations in progress; retry later",
        ))
        .into_response();
    };
    match state
        .server
        .register(&request, bearer(&headers), &source)
        .await
    {
        Ok(created) => {
            tracing::info!(
                client_id = %created.client.id,
                client_addr = %addr,
                grant_types = ?created.client.metadata.grant_types,
                "client registered"
            );
            json_response(StatusCode::CREATED, &created.response(), NO_STORE)
        }
        Err(e) => ApiError(e).into_response(),
    }
}
