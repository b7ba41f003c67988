//! Token revocation (RFC 7009).
//!
//! Access tokens are self-contained JWTs (RFC 9068) and nothing is stored per
//! token (docs/decisions.md "Principles"), so revoking one records its `jti` in
//! the Store until the token's own `exp`; the introspection endpoint and every
//! replica read that one deny-list. A refresh token is revoked with its whole
//! grant (the family of rotated tokens and the access tokens issued from it).

use crate::error::OAuthError;
use crate::issuer::REVOKE_PATH;
use crate::server::AuthorizationServer;
use crate::tokens::request::TokenRequest;
use crate::tokens::verify::verify_own;

impl AuthorizationServer {
    /// `POST /oauth/revoke` (RFC 7009 §2.1). The client authenticates exactly
    /// as at the token endpoint (§2.1: "the client also includes its
    /// authentication credentials as described in Section 2.3 of RFC 6749").
    ///
    /// Answers `Ok` — HTTP 200 — whenever the request itself was valid, also
    /// for a token that is unknown, malformed, expired or another client's.
    /// §2.2 covers the invalid ones ("invalid tokens do not cause an error
    /// response"); for another client's token §2.1 would allow an error, and
    /// answering 200 without revoking is a deliberate choice (docs/decisions.md
    /// "Revocation and introspection") so the answer never tells whether
    /// someone else's token is live. Only a token issued to the authenticated
    /// client is revoked (§2.1: the server verifies "whether the token was
    /// issued to the client making the revocation request"; docs/decisions.md
    /// "Revocation and introspection").
    pub async fn revoke(&self, req: &TokenRequest) -> Result<(), OAuthError> {
        let client = self.authenticate(req, REVOKE_PATH).await?;
        let token = req
            .param("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        // `token_type_hint` (§2.1) is only a hint: both kinds are tried, and
        // an unknown or different hint changes nothing and is not an error.
        let Some(claims) = verify_own(&self.keys.snapshot(), self.settings.issuer.as_str(), token)
        else {
            return self.revoke_refresh_token(&client.id, token).await;
        };
        if !claims.live_at(self.now()) {
            // An expired token is already refused everywhere.
            return Ok(());
        }
        if claims.client_id != client.id {
            tracing::info!(
                client_id = %client.id,
                "revocation of a token issued to another client ignored"
            );
            return Ok(());
        }
        if self
            .store
            .revoke_token(&claims.jti, &claims.client_id, claims.exp)
            .await?
        {
            tracing::info!(client_id = %client.id, jti = %claims.jti, "access token revoked");
        }
        Ok(())
    }

    /// Revokes a refresh token of the calling client — and with it its whole
    /// grant (RFC 7009 §2.1: "the authorization server SHOULD also
    /// invalidate all access tokens based on the same authorization grant").
    async fn revoke_refresh_token(&self, client_id: &str, token: &str) -> Result<(), OAuthError> {
        if token.len() > crate::limits::MAX_PARAM_BYTES {
            return Ok(());
        }
        let found = self
            .store
            .find_refresh_token(&crate::grant_records::lookup_hash(token))
            .await?;
        match found {
            Some((_, family)) if family.client_id == client_id && !family.revoked => {
                self.store.revoke_family(&family.id, self.now()).await?;
                tracing::info!(%client_id, sub = %family.user_id, "refresh token revoked with its grant");
            }
            // Already revoked: nothing to do.
            Some((_, family)) if family.client_id == client_id => {}
            Some(_) => {
                tracing::info!(%client_id, "revocation of a refresh token issued to another client ignored");
            }
            None => {}
        }
        Ok(())
    }

    /// `revocation_endpoint_auth_methods_supported` (RFC 8414 §2): the same
    /// registry the token endpoint authenticates with.
    pub fn revocation_auth_methods(&self) -> Vec<String> {
        self.auth_methods()
            .iter()
            .map(|m| m.as_str().to_string())
            .collect()
    }
}
