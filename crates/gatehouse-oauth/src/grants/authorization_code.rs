//! The authorization code grant (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3) with
//! PKCE (RFC 7636 §4.5): a code issued at the authorization endpoint is
//! exchanged, once, by the client it was issued to, with the verifier of
//! its challenge, at the redirect URI it was issued for.

use super::people::{
    access_token, id_token, invalid_grant, narrow_resource, new_refresh_token, refresh_row,
};
use super::{Grant, TokenContext};
use crate::client::Client;
use crate::error::OAuthError;
use crate::grant_records::{AuthCode, GrantFamily, Redeemed, lookup_hash};
use crate::people::pkce;
use crate::people::redirect::redirect_matches;
use crate::tokens::issue::TokenResponse;
use crate::tokens::request::TokenRequest;
use async_trait::async_trait;

pub struct AuthorizationCode;

pub const GRANT_TYPE: &str = "authorization_code";

#[async_trait]
impl Grant for AuthorizationCode {
    fn grant_type(&self) -> &'static str {
        GRANT_TYPE
    }

    fn requires_credential(&self) -> bool {
        false
    }

    fn issues_refresh_tokens(&self) -> bool {
        true
    }

    fn uses_redirect(&self) -> bool {
        true
    }

    fn for_people(&self) -> bool {
        true
    }

    async fn exchange(
        &self,
        ctx: &TokenContext<'_>,
        client: &Client,
        req: &TokenRequest,
    ) -> Result<TokenResponse, OAuthError> {
        let code = req
            .param("code")
            .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
        let verifier = req
            .param("code_verifier")
            .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
        let hash = lookup_hash(code);
        // Everything the code is bound to is checked before it is consumed,
        // so a request that fails changes nothing. Expiry is left to the
        // redemption: an expired code is refused there, and one that had
        // been used is still recognised as a replay (and revokes).
        let rec = ctx
            .store
            .get_code(&hash)
            .await?
            .filter(|c| c.client_id == client.id)
            .ok_or_else(|| invalid_grant("authorization code"))?;
        check_binding(client, &rec, req, verifier)?;
        let aud = narrow_resource(req, &rec.resources)?;
        let user = ctx
            .store
            .get_user(&rec.user_id)
            .await?
            .ok_or_else(|| invalid_grant("authorization code"))?;
        let scope = rec.scopes.join(" ");
        let (token, issued) = access_token(ctx, client, &user, &aud, &scope, rec.auth_time).await?;
        let family = GrantFamily {
            id: rec.family_id.clone(),
            client_id: client.id.clone(),
            user_id: user.id.clone(),
            scopes: rec.scopes.clone(),
            resources: rec.resources.clone(),
            auth_time: rec.auth_time,
            created_at: ctx.now,
            expires_at: rec.auth_time + ctx.settings.people.session_lifetime.as_secs() as i64,
            revoked: false,
            // The store redeems the code only while this is still the
            // user's generation (and the consent stands).
            credentials_gen: rec.credentials_gen,
        };
        // Refresh tokens only for clients registered for them
        // (docs/decisions.md "Tokens").
        let refresh = client
            .allows_grant(super::refresh_token::GRANT_TYPE)
            .then(|| new_refresh_token(ctx.secrets, &family.id))
            .transpose()?;
        let refresh_record = refresh
            .as_deref()
            .map(|t| refresh_row(ctx, t, &family.id, family.expires_at));
        match ctx
            .store
            .redeem_code(&hash, ctx.now, &family, refresh_record.as_ref(), &issued)
            .await?
        {
            Redeemed::Fresh => {}
            Redeemed::Reused { family_id } => {
                // OAuth 2.1 §4.1.3: a code used twice revokes what it issued.
                ctx.store.revoke_family(&family_id, ctx.now).await?;
                tracing::warn!(client_id = %client.id, "authorization code reused; its grant is revoked");
                return Err(invalid_grant("authorization code"));
            }
            Redeemed::Unknown => return Err(invalid_grant("authorization code")),
        }
        let id_token = id_token(
            ctx,
            client,
            &user,
            &rec.scopes,
            rec.auth_time,
            rec.nonce.as_deref(),
        )?;
        tracing::info!(client_id = %client.id, sub = %user.id, "authorization code exchanged");
        Ok(TokenResponse {
            refresh_token: refresh,
            id_token,
            ..TokenResponse::bearer(token, ctx.settings.access_token_ttl.as_secs(), scope, &aud)
        })
    }
}

/// What a code is bound to besides its client (RFC 6749 §4.1.3, RFC 7636
/// §4.6): the redirect URI it was issued for and the PKCE verifier.
fn check_binding(
    client: &Client,
    rec: &AuthCode,
    req: &TokenRequest,
    verifier: &str,
) -> Result<(), OAuthError> {
    let redirect_ok = match (&rec.redirect_uri, req.param("redirect_uri")) {
        (Some(bound), Some(sent)) => bound == sent,
        (Some(_), None) => false,
        (None, None) => true,
        (None, Some(sent)) => client
            .metadata
            .redirect_uris
            .iter()
            .any(|r| redirect_matches(r, sent)),
    };
    if !redirect_ok {
        return Err(OAuthError::new(
            crate::error::ErrorCode::InvalidGrant,
            "redirect_uri does not match the authorization request",
        ));
    }
    if !pkce::verify(verifier, &rec.code_challenge) {
        return Err(OAuthError::new(
            crate::error::ErrorCode::InvalidGrant,
            "code_verifier does not match the code_challenge",
        ));
    }
    Ok(())
}
