//! `POST /oauth/token` (RFC 6749 §3.2).

use crate::AppState;
use crate::body::read_body;
use crate::respond::{ApiError, NO_STORE, bytes_response};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_oauth::error::{Challenge, OAuthError};
use gatehouse_oauth::token_request::{TokenRequest, form_decode};

/// Decodes `Authorization: Basic` client credentials. Both parts are
/// form-urlencoded before base64 (RFC 6749 §2.3.1), so both are decoded.
fn basic_credentials(value: Option<&HeaderValue>) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client().with_challenge(Challenge::Basic);
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_request(
            "only the Basic authorization scheme is accepted at the token endpoint",
        ));
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let pos = decoded.iter().position(|b| *b == b':').ok_or_else(bad)?;
    let id = form_decode(&decoded[..pos]).map_err(|_| bad())?;
    let secret = form_decode(&decoded[pos + 1..]).map_err(|_| bad())?;
    Ok(Some((id, secret)))
}

/// Reads a form request with client credentials the way the token endpoint
/// does (body limits, strict form parsing, Basic decoding); the revocation
/// and introspection endpoints read theirs with this too.
pub(crate) async fn read_token_request(
    headers: &HeaderMap,
    body: Body,
) -> Result<TokenRequest, Response> {
    let bytes = read_body(headers, body, "application/x-www-form-urlencoded").await?;
    parse_token_request(headers.get(header::AUTHORIZATION), &bytes)
        .map_err(|e| ApiError(e).into_response())
}

/// Parses a token, revocation or introspection request once its body is
/// read: the strict form parser, then the `Authorization: Basic`
/// credentials. Public so the fuzz targets under `fuzz/` exercise exactly
/// what the endpoints run; the endpoints reach it through
/// `read_token_request`.
pub fn parse_token_request(
    authorization: Option<&HeaderValue>,
    body: &[u8],
) -> Result<TokenRequest, OAuthError> {
    let mut req = TokenRequest::from_form(body)?;
    req.basic = basic_credentials(authorization)?;
    Ok(req)
}

pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let req = match read_token_request(&headers, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let result = state.server.token(&req).await;
    match result {
        Ok(tokens) => match serde_json::to_vec(&tokens) {
            Ok(json) => bytes_response(StatusCode::OK, json, NO_STORE),
            Err(_) => ApiError(OAuthError::server_error()).into_response(),
        },
        Err(e) => ApiError(e).into_response(),
    }
}
