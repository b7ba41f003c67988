//! `POST /oauth/revoke` (RFC 7009) and `POST /oauth/introspect` (RFC 7662).
//! Both read their form exactly like the token endpoint: same body limits,
//! same strict parser (repeated parameters refused), same client
//! authentication and the same 401 `invalid_client` with a Basic challenge,
//! and their failed authentications count towards the same backoff.

use crate::AppState;
use crate::client_addr::ClientAddr;
use crate::respond::{ApiError, NO_STORE, bytes_response, json_response};
use crate::token::read_authenticated;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_oauth::error::OAuthError;

/// RFC 7009 §2.2: 200 with an empty body, whether or not anything was revoked.
pub async fn revoke(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let attempt = match read_authenticated(&state, addr, &headers, body).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let result = state.server.revoke(&attempt.req).await;
    attempt.finish(&state, &result);
    match result {
        Ok(()) => {
            // An empty body has no media type to declare.
            let mut resp = bytes_response(StatusCode::OK, Body::empty(), NO_STORE);
            resp.headers_mut().remove(axum::http::header::CONTENT_TYPE);
            resp
        }
        Err(e) => ApiError(e).into_response(),
    }
}

/// RFC 7662 §2.2: the JSON introspection response, never cached (it can
/// change at any moment, e.g. on revocation).
pub async fn introspect(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let attempt = match read_authenticated(&state, addr, &headers, body).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let result = state.server.introspect(&attempt.req).await;
    attempt.finish(&state, &result);
    match result {
        Ok(answer) => match serde_json::to_value(&answer) {
            Ok(json) => json_response(StatusCode::OK, &json, NO_STORE),
            Err(_) => ApiError(OAuthError::server_error()).into_response(),
        },
        Err(e) => ApiError(e).into_response(),
    }
}
