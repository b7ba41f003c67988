//! The token endpoint (RFC 6749 §3.2): find the grant in the registry,
//! authenticate the client, check it may use the grant, let the grant
//! answer.

use crate::error::{ErrorCode, OAuthError};
use crate::grants::TokenContext;
use crate::issuer::TOKEN_PATH;
use crate::server::AuthorizationServer;
use crate::tokens::issue::TokenResponse;
use crate::tokens::request::TokenRequest;

impl AuthorizationServer {
    /// Answers a token request: `unsupported_grant_type` for a grant not
    /// enabled, `invalid_client` when authentication fails,
    /// `unauthorized_client` for a grant the client is not registered for.
    pub async fn token(&self, req: &TokenRequest) -> Result<TokenResponse, OAuthError> {
        let grant_type = req
            .param("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        let grant = self.registry.grant(grant_type).ok_or_else(|| {
            OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "the grant type is not supported by this server",
            )
        })?;
        let client = self.authenticate(req, TOKEN_PATH).await?;
        if !client.allows_grant(grant_type) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!("the client is not registered for the {grant_type} grant"),
            ));
        }
        let keys = self.keys.snapshot();
        let ctx = TokenContext {
            settings: &self.settings,
            keys: &keys,
            store: self.store.as_ref(),
            secrets: &self.secrets,
            now: self.now(),
        };
        let issued = grant.exchange(&ctx, &client, req).await?;
        // Never the token itself: who got what, for whom.
        tracing::info!(
            client_id = %client.id,
            grant = grant_type,
            aud = %issued.audience,
            scope = issued.scope.as_deref().unwrap_or_default(),
            "token issued"
        );
        Ok(issued)
    }
}
