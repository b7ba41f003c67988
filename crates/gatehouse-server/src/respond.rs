//! Turning protocol results into HTTP responses, in one place.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_oauth::error::{Challenge, OAuthError};

/// A protocol error as an HTTP response: RFC 6749 §5.2 JSON body, the status
/// from the error code, `Cache-Control: no-store`, and the challenge on 401.
pub struct ApiError(pub OAuthError);

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        crate::store_log::report(&e);
        let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = json_response(status, &e.body(), NO_STORE);
        let challenge = match e.challenge {
            Challenge::None => None,
            Challenge::Basic => Some("Basic realm=\"gatehouse\"".to_string()),
            Challenge::Bearer => Some(format!("Bearer error=\"{}\"", e.code.as_str())),
            Challenge::BearerWithoutError => Some("Bearer realm=\"gatehouse\"".to_string()),
        };
        if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        // Refusals say themselves whether (and when) a retry may succeed:
        // a full registration cap does not pass in seconds, so it carries
        // none.
        if let Some(secs) = e.retry_after {
            resp = with_retry_after(resp, secs);
        }
        resp
    }
}

/// `resp` with `Retry-After: secs` (RFC 9110 §10.2.3).
pub fn with_retry_after(mut resp: Response, secs: impl Into<u64>) -> Response {
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.into()));
    resp
}

/// `n` seconds in words, for pages: "1 second", "5 seconds".
pub fn seconds_in_words(n: u32) -> String {
    if n == 1 {
        "1 second".to_string()
    } else {
        format!("{n} seconds")
    }
}

/// A wait as whole seconds for `Retry-After`: rounded up, at least 1.
pub fn whole_seconds(wait: std::time::Duration) -> u32 {
    u32::try_from(wait.as_secs_f64().ceil() as u64)
        .unwrap_or(u32::MAX)
        .max(1)
}

/// 405 for a method the endpoint does not serve, with `Allow` (RFC 9110
/// §15.5.6) and an RFC 6749 error body.
pub fn method_not_allowed(allow: &'static str) -> Response {
    let mut resp = ApiError(OAuthError::invalid_request("method not allowed")).into_response();
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

pub const NO_STORE: &str = "no-store";

/// Discovery documents and keys: cacheable, briefly, so that a key rotation
/// is seen within minutes.
pub const PUBLIC_CACHE: &str = "public, max-age=300";

pub fn json_response(
    status: StatusCode,
    body: &serde_json::Value,
    cache: &'static str,
) -> Response {
    bytes_response(status, serde_json::to_vec(body).unwrap_or_default(), cache)
}

pub fn bytes_response(status: StatusCode, body: impl Into<Body>, cache: &'static str) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if cache == NO_STORE {
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    resp
}
