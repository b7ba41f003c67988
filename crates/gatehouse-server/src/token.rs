//! `POST /oauth/token` (RFC 6749 §3.2).

use crate::AppState;
use crate::body::read_body;
use crate::client_addr::ClientAddr;
use crate::respond::{self, ApiError, NO_STORE, bytes_response};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_oauth::error::{Challenge, ErrorCode, OAuthError};
use gatehouse_oauth::form::form_decode;
use gatehouse_oauth::tokens::request::TokenRequest;
use std::time::Duration;

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

/// A request that authenticates its client (token, revocation,
/// introspection endpoints), read once the failure backoff
/// ([`crate::auth_failures`]) let it through; [`Attempt::finish`] counts
/// its outcome.
pub(crate) struct Attempt {
    pub req: TokenRequest,
    addr: ClientAddr,
    client_id: Option<String>,
}

/// 429 `slow_down`: the code the registration limit answers with too. RFC
/// 6749 §5.2 has no code for "held back"; `slow_down` (RFC 8628 §3.5) says
/// exactly that, and unlike `invalid_client` it cannot be mistaken for a
/// wrong credential, so a well-behaved client waits instead of giving up.
fn held_back(wait: Duration) -> Response {
    let secs = respond::whole_seconds(wait);
    ApiError(
        OAuthError::new(
            ErrorCode::SlowDown,
            format!("too many failed client authentications from this address; retry in {secs} s"),
        )
        .with_retry_after(secs),
    )
    .into_response()
}

/// Reads a form request with client credentials the same way for all three
/// endpoints (body limits, strict form parsing, Basic decoding), refusing
/// it while its address — or its address with the client it names — must
/// wait after failed authentications. Both checks come before any
/// credential is looked at, so a held-back request costs a table lookup.
pub(crate) async fn read_authenticated(
    state: &AppState,
    addr: ClientAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Attempt, Response> {
    let failures = &state.auth_failures;
    if let Some(wait) = failures.address_wait(addr) {
        return Err(held_back(wait));
    }
    let bytes = read_body(headers, body, "application/x-www-form-urlencoded").await?;
    let parsed = parse_token_request(headers.get(header::AUTHORIZATION), &bytes);
    let req = match parsed {
        Ok(req) => req,
        Err(e) => {
            // An unreadable Basic header is a failed authentication too.
            if e.code == ErrorCode::InvalidClient {
                failures.failed(addr, None);
            }
            return Err(ApiError(e).into_response());
        }
    };
    let client_id = state.server.claimed_client_id(&req);
    if let Some(wait) = client_id
        .as_deref()
        .and_then(|id| failures.client_wait(addr, id))
    {
        return Err(held_back(wait));
    }
    Ok(Attempt {
        req,
        addr,
        client_id,
    })
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

impl Attempt {
    /// Counts the attempt if its client authentication failed; anything
    /// else — success, or a later refusal such as `invalid_grant` — is not
    /// counted.
    pub(crate) fn finish<T>(&self, state: &AppState, result: &Result<T, OAuthError>) {
        let Err(e) = result else { return };
        if e.code != ErrorCode::InvalidClient {
            return;
        }
        if state
            .auth_failures
            .failed(self.addr, self.client_id.as_deref())
        {
            tracing::info!(
                client_addr = %self.addr,
                client_id = self.client_id.as_deref().unwrap_or(""),
                "failed client authentications: further attempts from this address wait"
            );
        }
    }
}

pub async fn token(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let attempt = match read_authenticated(&state, addr, &headers, body).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let result = state.server.token(&attempt.req).await;
    attempt.finish(&state, &result);
    match result {
        Ok(tokens) => match serde_json::to_vec(&tokens) {
            Ok(json) => bytes_response(StatusCode::OK, json, NO_STORE),
            Err(_) => ApiError(OAuthError::server_error()).into_response(),
        },
        Err(e) => ApiError(e).into_response(),
    }
}
