//! Reading request bodies with a size limit and a content-type check, so that
//! every refusal is a precise protocol error (413 as JSON, not a bare 413).

use crate::respond::ApiError;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_oauth::error::OAuthError;
use gatehouse_oauth::limits::MAX_BODY_BYTES;

/// Whether the request's media type (parameters ignored) is `expected`.
pub fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mt| mt.trim().eq_ignore_ascii_case(expected))
}

pub fn too_large() -> Response {
    crate::respond::json_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &OAuthError::invalid_request(format!(
            "request body is larger than {MAX_BODY_BYTES} bytes"
        ))
        .body(),
        crate::respond::NO_STORE,
    )
}

/// 408: the body did not arrive within `[limits] request_body_timeout`.
pub fn too_slow() -> Response {
    crate::respond::json_response(
        StatusCode::REQUEST_TIMEOUT,
        &OAuthError::invalid_request("the request body was not received in time").body(),
        crate::respond::NO_STORE,
    )
}

/// Reads the body after checking its declared media type and size.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    content_type: &str,
) -> Result<Bytes, Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    if !has_content_type(headers, content_type) {
        return Err(ApiError(OAuthError::invalid_request(format!(
            "Content-Type must be {content_type}"
        )))
        .into_response());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            if crate::body_timed_out(&e) {
                too_slow()
            } else {
                too_large()
            }
        })
}
