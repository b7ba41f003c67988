//! `GET`, `PUT` and `DELETE` on `/oauth/register/{client_id}`: RFC 7592
//! client management, authenticated by the registration access token.
//!
//! Body limits, the content-type check and JSON errors are those of
//! registration (`register.rs`); every authentication failure is the same
//! 401 with `WWW-Authenticate: Bearer error="invalid_token"`.

use crate::AppState;
use crate::body::read_body;
use crate::client_addr::ClientAddr;
use crate::register::{bearer, over_budget};
use crate::respond::{ApiError, NO_STORE, json_response};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_oauth::error::OAuthError;
use serde_json::Value;

/// RFC 7592 §2.1: the current registration, 200.
pub async fn read(
    State(state): State<AppState>,
    addr: ClientAddr,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = over_budget(&state, addr) {
        return refused;
    }
    match state
        .server
        .read_registration(&client_id, bearer(&headers))
        .await
    {
        Ok(view) => json_response(StatusCode::OK, &view, NO_STORE),
        Err(e) => ApiError(e).into_response(),
    }
}

/// RFC 7592 §2.2: replace the registration, 200 with the new one.
pub async fn update(
    State(state): State<AppState>,
    addr: ClientAddr,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = over_budget(&state, addr) {
        return refused;
    }
    let token = bearer(&headers);
    // Authenticate before reading the body, so an unauthenticated caller
    // learns nothing about what would be accepted (as registration does).
    if let Err(e) = state.server.read_registration(&client_id, token).await {
        return ApiError(e).into_response();
    }
    let bytes = match read_body(&headers, body, "application/json").await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let request = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return ApiError(OAuthError::invalid_metadata(
                "the request body must be a JSON object",
            ))
            .into_response();
        }
        Err(e) => {
            return ApiError(OAuthError::invalid_request(format!(
                "request body is not valid JSON: {e}"
            )))
            .into_response();
        }
    };
    match state
        .server
        .update_registration(&client_id, token, &request)
        .await
    {
        Ok(view) => json_response(StatusCode::OK, &view, NO_STORE),
        Err(e) => ApiError(e).into_response(),
    }
}

/// RFC 7592 §2.3: delete the registration, 204 without a body.
pub async fn delete(
    State(state): State<AppState>,
    addr: ClientAddr,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = over_budget(&state, addr) {
        return refused;
    }
    match state
        .server
        .delete_registration(&client_id, bearer(&headers))
        .await
    {
        Ok(()) => {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
            resp
        }
        Err(e) => ApiError(e).into_response(),
    }
}
