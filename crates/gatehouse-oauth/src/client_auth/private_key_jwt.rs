//! `private_key_jwt`: a JWT assertion signed with a key the client
//! registered (RFC 7523 §2.2 and §3, RFC 7521 §4.2). The checks on the JWT
//! itself are [`super::assertion`]'s; the keys come from `jwks` or
//! `jwks_uri` ([`super::client_keys`]).

use super::assertion::{self, Audience, JWT_BEARER_ASSERTION_TYPE};
use super::{AuthContext, ClientAuthenticator, Credential, Presented};
use crate::client::{AuthMethod, Client, CredentialKind};
use crate::error::{Challenge, OAuthError};
use crate::issuer::TOKEN_PATH;
use crate::tokens::request::TokenRequest;
use async_trait::async_trait;

/// `private_key_jwt`: `client_assertion` in the body (RFC 7523 §2.2). The
/// client is the assertion's `sub` (RFC 7523 §3 item 2); a body `client_id`
/// is optional (RFC 7521 §4.2) and must then name the same client.
pub struct PrivateKeyJwt;

#[async_trait]
impl ClientAuthenticator for PrivateKeyJwt {
    fn method(&self) -> AuthMethod {
        AuthMethod::PrivateKeyJwt
    }

    fn presented(&self, req: &TokenRequest) -> Option<Presented> {
        let assertion = req.param("client_assertion")?;
        Some(Presented {
            method: self.method(),
            client_id: assertion::claimed_client_id(assertion).unwrap_or_default(),
            credential: Credential::Assertion {
                assertion: assertion.to_string(),
                kind: req
                    .param("client_assertion_type")
                    .unwrap_or_default()
                    .to_string(),
            },
            challenge: Challenge::None,
        })
    }

    /// Verifies the assertion and records its `jti` so it is accepted once
    /// only, on every replica (RFC 7523 §3 item 7). Refusals are logged with
    /// their reason, never with the assertion, and answered with the one
    /// `invalid_client`.
    async fn verify(
        &self,
        ctx: &AuthContext<'_>,
        client: &Client,
        presented: &Presented,
    ) -> Result<(), OAuthError> {
        let refuse = |reason: &str| {
            tracing::info!(client_id = %client.id, reason, "client assertion refused");
            OAuthError::invalid_client()
        };
        let Credential::Assertion { assertion, kind } = &presented.credential else {
            return Err(refuse("no client assertion"));
        };
        if client.metadata.token_endpoint_auth_method.credential_kind()
            != CredentialKind::PrivateKeyJwt
        {
            return Err(refuse("client is not registered for private_key_jwt"));
        }
        if kind != JWT_BEARER_ASSERTION_TYPE {
            return Err(refuse("client_assertion_type is not jwt-bearer"));
        }
        let issuer = &ctx.settings.issuer;
        let audience = Audience {
            issuer: issuer.as_str(),
            token_endpoint: &issuer.endpoint(TOKEN_PATH),
            called_endpoint: &issuer.endpoint(ctx.endpoint),
        };
        let allow = ctx.settings.client_auth.allow_http_loopback_jwks_uri;
        let keys = ctx
            .client_keys
            .keys(client, assertion, allow)
            .await
            .map_err(|e| refuse(&e))?;
        let accepted = assertion::verify_with_keys(
            assertion,
            client,
            &keys,
            &audience,
            &ctx.settings.client_auth,
            ctx.now,
        )
        .map_err(refuse)?;
        let fresh = ctx
            .store
            .record_assertion_jti(&client.id, &accepted.jti, accepted.remember_until)
            .await?;
        if !fresh {
            return Err(refuse("jti already used"));
        }
        Ok(())
    }

    fn refuse_unknown(&self, _ctx: &AuthContext<'_>, presented: &Presented) {
        if let Credential::Assertion { assertion, .. } = &presented.credential {
            assertion::dummy_verify(assertion);
        }
        tracing::info!("client assertion refused: unknown or unreadable client");
    }
}
