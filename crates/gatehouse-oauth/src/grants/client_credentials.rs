//! The client credentials grant (RFC 6749 §4.4): a confidential client gets an
//! access token for itself. Never a refresh token (§4.4.3). Nothing is
//! written anywhere per token (DESIGN.md principle 2).

use super::{Grant, TokenContext};
use crate::client::Client;
use crate::error::{ErrorCode, OAuthError};
use crate::resource::select_audience;
use crate::scope::parse_scope;
use crate::token::{AccessTokenClaims, TokenResponse, new_jti, sign_access_token};
use crate::token_request::TokenRequest;
use async_trait::async_trait;

pub struct ClientCredentials;

pub const GRANT_TYPE: &str = "client_credentials";

#[async_trait]
impl Grant for ClientCredentials {
    fn grant_type(&self) -> &'static str {
        GRANT_TYPE
    }

    fn requires_credential(&self) -> bool {
        true
    }

    async fn exchange(
        &self,
        ctx: &TokenContext<'_>,
        client: &Client,
        req: &TokenRequest,
    ) -> Result<TokenResponse, OAuthError> {
        let scopes = granted_scopes(ctx, client, req.param("scope"))?;
        let requested: Vec<&str> = req.params_all("resource").collect();
        let aud = select_audience(
            &ctx.settings.allowed_audiences,
            client.metadata.audiences.as_deref(),
            &requested,
        )?;
        let scope = scopes.join(" ");
        let ttl = ctx.settings.access_token_ttl.as_secs();
        let claims = AccessTokenClaims {
            iss: ctx.settings.issuer.as_str(),
            sub: &client.id,
            client_id: &client.id,
            aud: &aud,
            scope: &scope,
            iat: ctx.now,
            exp: ctx.now + ttl as i64,
            jti: new_jti(),
        };
        Ok(TokenResponse {
            access_token: sign_access_token(ctx.signer, &claims)?,
            token_type: "Bearer",
            expires_in: ttl,
            scope: (!scope.is_empty()).then_some(scope),
            refresh_token: None,
        })
    }
}

/// The scopes a token gets (DECISIONS.md "Scopes"): requested ⊆ registered
/// (or ⊆ supported for a client registered without scopes); omitted → the
/// registered scopes, or `default_scopes`.
fn granted_scopes(
    ctx: &TokenContext<'_>,
    client: &Client,
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    let invalid = |d: String| OAuthError::new(ErrorCode::InvalidScope, d);
    let allowed: &[String] = client
        .metadata
        .scopes
        .as_deref()
        .unwrap_or(&ctx.settings.scopes_supported);
    // A scope the operator has since removed from scopes_supported is no
    // longer granted, even to a client registered with it.
    let supported = |s: &String| {
        ctx.settings.scopes_supported.is_empty() || ctx.settings.scopes_supported.contains(s)
    };
    match requested {
        None => Ok(client
            .metadata
            .scopes
            .clone()
            .unwrap_or_else(|| ctx.settings.default_scopes.clone())
            .into_iter()
            .filter(supported)
            .collect()),
        Some(s) => {
            let scopes = parse_scope(s).map_err(invalid)?;
            if let Some(bad) = scopes
                .iter()
                .find(|s| !allowed.contains(s) || !supported(s))
            {
                return Err(invalid(format!(
                    "scope {bad:?} is not allowed for this client"
                )));
            }
            Ok(scopes)
        }
    }
}
