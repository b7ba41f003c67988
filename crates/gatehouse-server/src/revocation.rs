//! `POST /oauth/revoke` (RFC 7009) and `POST /oauth/introspect` (RFC 7662).
//! Both read their form exactly like the token endpoint: same body limits,
//! same strict parser (repeated parameters refused), same client
//! authentication and the same 401 `invalid_client` with a Basic challenge.

use crate::AppState;
use crate::respond::{ApiError, NO_STORE, bytes_response, json_response};
use crate::token::read_token_request;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_oauth::error::OAuthError;

/// RFC 7009 §2.2: 200 with an empty body, whether or not anything was revoked.
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let req = match read_token_request(&headers, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match state.server.revoke(&req).await {
        Ok(()) => bytes_response(StatusCode::OK, Body::empty(), NO_STORE),
        Err(e) => ApiError(e).into_response(),
    }
}

/// RFC 7662 §2.2: the JSON introspection response, never cached (it can
/// change at any moment, e.g. on revocation).
pub async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let req = match read_token_request(&headers, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match state.server.introspect(&req).await {
        Ok(answer) => match serde_json::to_value(&answer) {
            Ok(json) => json_response(StatusCode::OK, &json, NO_STORE),
            Err(_) => ApiError(OAuthError::server_error()).into_response(),
        },
        Err(e) => ApiError(e).into_response(),
    }
}
