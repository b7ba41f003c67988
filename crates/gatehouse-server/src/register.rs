//! `POST /oauth/register` (RFC 7591 §3).

use crate::AppState;
use crate::body::read_body;
use crate::client_addr::ClientAddr;
use crate::lru_table::RateBudget;
use crate::respond::{self, ApiError, NO_STORE, json_response};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_oauth::error::{ErrorCode, OAuthError};
use serde_json::Value;
use std::net::IpAddr;

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

/// The per-address budget shared by registration and RFC 7592 management
/// (whose requests also cost a Store read and an HMAC before any check can
/// fail): `per_minute` requests a minute, in bursts of up to as many, per
/// address, in a bounded table that never refuses a new address
/// ([`RateBudget`]).
pub(crate) type RegistrationLimiter = RateBudget<IpAddr>;

/// `Some` answer when the source is over its budget ([`RegistrationLimiter`]).
pub(crate) fn over_budget(state: &AppState, addr: ClientAddr) -> Option<Response> {
    let wait = state.registration_limiter.take(addr.rate_key()).err()?;
    Some(
        ApiError(
            OAuthError::new(
                ErrorCode::SlowDown,
                "too many registration requests from this address; retry later",
            )
            .with_retry_after(respond::whole_seconds(wait)),
        )
        .into_response(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_budget_and_a_full_table_refuses_no_new_one() {
        let l = RegistrationLimiter::new(3, 16);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.take(a).is_ok());
        }
        assert!(l.take(a).is_err(), "over budget");
        for i in 0..1000u32 {
            assert!(
                l.take(IpAddr::from((0x0a00_0000 + i).to_be_bytes()))
                    .is_ok(),
                "{i}"
            );
        }
        assert!(l.table.len() <= 16);
    }
}
