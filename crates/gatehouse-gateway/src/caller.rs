//! Who is calling: the bearer token (RFC 6750 §2.1, header only), verified,
//! still active at the issuer when the instant cut-off is on, and carrying
//! the server's required scopes.

use crate::refusal::Refusal;
use crate::route::Route;
use crate::verify::{VerifiedToken, VerifyError};
use axum::http::{HeaderMap, Uri, header};
use serde_json::Value;
use std::sync::Arc;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub(crate) async fn authenticate(
    route: &Route,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Arc<VerifiedToken>, Refusal> {
    // RFC 6750 §2.3 query tokens are refused: URLs end up in logs.
    if uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("access_token=")))
    {
        return Err(Refusal::TokenInQuery);
    }
    let token = bearer(headers).ok_or(Refusal::NoToken)?;
    let verified = match route.verifier.verify(token).await {
        Ok(v) => v,
        Err(VerifyError::Invalid(why)) => {
            tracing::info!(reason = why, resource = %route.server.resource, "token refused");
            return Err(Refusal::InvalidToken);
        }
        Err(VerifyError::KeysUnavailable(e)) => {
            tracing::warn!(error = %e, "cannot verify tokens: issuer keys unavailable");
            return Err(Refusal::IssuerUnavailable);
        }
    };
    // The instant cut-off, when enabled: is the token still active at the
    // issuer (not revoked, its client not deleted)? Fails closed.
    if let Some(status) = &route.token_status {
        let jti = verified.claims.get("jti").and_then(Value::as_str);
        match status.is_active(token, jti).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(resource = %route.server.resource, "token refused: no longer active at the issuer");
                return Err(Refusal::InvalidToken);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check whether tokens are revoked");
                return Err(Refusal::IssuerUnavailable);
            }
        }
    }
    if let Some(missing) = route
        .server
        .required_scopes
        .iter()
        .find(|s| !verified.scopes.contains(s))
    {
        tracing::info!(scope = %missing, "token lacks a required scope");
        return Err(Refusal::InsufficientScope);
    }
    Ok(verified)
}
