//! `none`: a public client (RFC 6749 §2.1) names itself with `client_id`
//! and proves nothing.

use super::{AuthContext, ClientAuthenticator, Credential, Presented};
use crate::client::{AuthMethod, Client};
use crate::error::{Challenge, OAuthError};
use crate::tokens::request::TokenRequest;
use async_trait::async_trait;

/// `none`: a public client names itself with `client_id` in the body and
/// proves nothing (RFC 6749 §3.2.1); what it may do is limited by its
/// registration (PKCE-bound codes and its own refresh tokens). Presented only
/// when no other credential is, so it never counts as a second one.
pub struct PublicClient;

#[async_trait]
impl ClientAuthenticator for PublicClient {
    fn method(&self) -> AuthMethod {
        AuthMethod::None
    }
    fn presented(&self, req: &TokenRequest) -> Option<Presented> {
        if req.basic.is_some()
            || req.param("client_secret").is_some()
            || req.param("client_assertion").is_some()
        {
            return None;
        }
        Some(Presented {
            method: self.method(),
            client_id: req.param("client_id")?.to_string(),
            credential: Credential::None,
            challenge: Challenge::None,
        })
    }
    /// A confidential client must always prove itself: naming it is not
    /// enough (the kind of credential is pinned, docs/decisions.md "Keys,
    /// secrets and identifiers").
    async fn verify(
        &self,
        _ctx: &AuthContext<'_>,
        client: &Client,
        _presented: &Presented,
    ) -> Result<(), OAuthError> {
        if client.metadata.token_endpoint_auth_method != AuthMethod::None {
            return Err(OAuthError::invalid_client());
        }
        Ok(())
    }
}
