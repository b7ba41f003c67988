//! The client credentials grant (RFC 6749 §4.4): a confidential client gets an
//! access token for itself. Never a refresh token (§4.4.3). Nothing is
//! written anywhere per token (docs/decisions.md "Principles").

use super::{Grant, TokenContext};
use crate::client::Client;
use crate::error::{ErrorCode, OAuthError};
use crate::resource::select_audience;
use crate::scope::{PEOPLE_SCOPES, granted_scopes};
use crate::tokens::issue::{AccessTokenClaims, TokenResponse, new_jti, sign_access_token};
use crate::tokens::request::TokenRequest;
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
        let mut scopes = granted_scopes(ctx.settings, client, req.param("scope"))?;
        // `openid` and `profile` speak for a person (OIDC Core §3.1.2.1):
        // asked for, they are refused; registered, they are left out.
        let personal = |s: &String| PEOPLE_SCOPES.contains(&s.as_str());
        if let Some(s) = req.param("scope").and(scopes.iter().find(|s| personal(s))) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("scope {s:?} is for people's sign-in, not for client_credentials"),
            ));
        }
        scopes.retain(|s| !personal(s));
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
            auth_time: None,
            groups: None,
            idp: None,
            email: None,
            email_verified: None,
        };
        let access_token = sign_access_token(&ctx.keys.current, &claims)?;
        Ok(TokenResponse::bearer(access_token, ttl, scope, &aud))
    }
}
