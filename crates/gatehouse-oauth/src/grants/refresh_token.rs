//! The refresh token grant (RFC 6749 §6) with rotation (OAuth 2.1 §4.3.1,
//! RFC 9700 §4.14.2): every use returns a new refresh token and retires the
//! one presented. Presenting a retired one again means it was copied — the
//! whole grant is revoked — except within a short grace window, in which a
//! client retrying a response it lost gets the very same successor again
//! (docs/decisions.md "Tokens"): the successor is derived from the token
//! presented under the server's HMAC key, so only hashes need be stored.

use super::people::{
    access_token, family_of, family_tag, id_token, invalid_grant, narrow_resource, narrow_scopes,
    refresh_prefix, refresh_row,
};
use super::{Grant, TokenContext};
use crate::client::Client;
use crate::error::OAuthError;
use crate::grant_records::lookup_hash;
use crate::limits::MAX_PARAM_BYTES;
use crate::tokens::issue::TokenResponse;
use crate::tokens::request::TokenRequest;
use async_trait::async_trait;
use subtle::ConstantTimeEq;

pub struct RefreshTokenGrant;

pub const GRANT_TYPE: &str = "refresh_token";

/// Domain separation for [`crate::client_auth::SecretVerifier::derive`].
const SUCCESSOR: &str = "gatehouse refresh-token successor";

#[async_trait]
impl Grant for RefreshTokenGrant {
    fn grant_type(&self) -> &'static str {
        GRANT_TYPE
    }

    fn requires_credential(&self) -> bool {
        false
    }

    fn for_people(&self) -> bool {
        true
    }

    /// Registered only beside a grant that issues refresh tokens (the
    /// registration classifier handles `refresh_token` itself).
    fn registrable_alone(&self) -> bool {
        false
    }

    async fn exchange(
        &self,
        ctx: &TokenContext<'_>,
        client: &Client,
        req: &TokenRequest,
    ) -> Result<TokenResponse, OAuthError> {
        let presented = req
            .param("refresh_token")
            .filter(|t| t.len() <= MAX_PARAM_BYTES)
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
        let hash = lookup_hash(presented);
        // Read first: a request that fails its checks must not mark the
        // token used.
        let found = ctx.store.find_refresh_token(&hash).await?;
        if found.is_none()
            && let Some((family_id, tag)) = family_of(presented)
            && bool::from(
                family_tag(ctx.secrets, family_id)?
                    .as_bytes()
                    .ct_eq(tag.as_bytes()),
            )
        {
            // A token in this server's form that it no longer holds: a
            // retired one whose row was let go (used rows are kept only for
            // the grace window, USED_REFRESH_TOKEN_RETENTION_SECS), or an
            // expired one. Presented again, it means what any retired token
            // does: it was copied, so the grant ends. The tag (an HMAC of the family
            // id) shows the server wrote that prefix: a made-up one costs no
            // store write, and only a holder of the family's tokens has it.
            if ctx.store.revoke_family(family_id, ctx.now).await? {
                tracing::warn!(
                    client_id = %client.id,
                    "a retired refresh token was used again; its grant is revoked"
                );
            }
            return Err(invalid_grant("refresh token"));
        }
        let (token, family) = found
            .filter(|(t, f)| {
                f.client_id == client.id
                    && !f.revoked
                    && ctx.now < f.expires_at
                    && ctx.now < t.expires_at
            })
            .ok_or_else(|| invalid_grant("refresh token"))?;
        let scopes = narrow_scopes(req, &family.scopes)?;
        let aud = narrow_resource(req, &family.resources)?;
        let user = ctx
            .store
            .get_user(&family.user_id)
            .await?
            .ok_or_else(|| invalid_grant("refresh token"))?;
        let used = ctx
            .store
            .use_refresh_token(&token.hash, ctx.now)
            .await?
            .ok_or_else(|| invalid_grant("refresh token"))?;
        if !used.first_use {
            let grace = ctx.settings.people.refresh_grace.as_secs() as i64;
            // Times are whole seconds: a grace of 0 turns retries off.
            let within_grace =
                grace > 0 && used.token.used_at.is_some_and(|at| ctx.now - at <= grace);
            if !within_grace {
                ctx.store.revoke_family(&family.id, ctx.now).await?;
                tracing::warn!(
                    client_id = %client.id,
                    sub = %family.user_id,
                    "a rotated refresh token was used again; its grant is revoked"
                );
                return Err(invalid_grant("refresh token"));
            }
        }
        let successor = ctx.secrets.derive(SUCCESSOR, presented).ok_or_else(|| {
            tracing::error!("no current secret-hashing key to derive a refresh token");
            OAuthError::server_error()
        })?;
        let successor = format!("{}{successor}", refresh_prefix(ctx.secrets, &family.id)?);
        let successor_row = refresh_row(ctx, &successor, &family.id, family.expires_at);
        let scope = scopes.join(" ");
        let (access, issued) =
            access_token(ctx, client, &user, &aud, &scope, family.auth_time).await?;
        if !ctx
            .store
            .extend_family(&family.id, ctx.now, &successor_row, &issued)
            .await?
        {
            return Err(invalid_grant("refresh token"));
        }
        let id_token = id_token(ctx, client, &user, &scopes, family.auth_time, None)?;
        Ok(TokenResponse {
            refresh_token: Some(successor),
            id_token,
            ..TokenResponse::bearer(access, ctx.settings.access_token_ttl.as_secs(), scope, &aud)
        })
    }
}
