//! Client authentication at the token, revocation and introspection
//! endpoints (RFC 6749 §2.3).
//!
//! Each method is one [`ClientAuthenticator`] in its own file: it finds its
//! credential in a request and verifies it against the client. The registry
//! ([`authenticators`]) lists them; the server finds the method that
//! presented the credential there and lets it verify, and
//! `token_endpoint_auth_methods_supported` is derived from the same list.
//! Adding a method is one file and one line in [`authenticators`].
//!
//! Also here: what those methods need, the client's keys for
//! `private_key_jwt` (`assertion`, `jwks`, `jwks_uri`, `client_keys`).

pub mod assertion;
pub mod client_keys;
pub mod jwks;
pub mod jwks_uri;
pub mod private_key_jwt;
pub mod public;
pub mod secret;

pub use secret::SecretVerifier;

use crate::client::{AuthMethod, Client, ClientOrigin, CredentialKind};
use crate::error::{Challenge, OAuthError};
use crate::server::AuthorizationServer;
use crate::settings::Settings;
use crate::store::Store;
use crate::tokens::request::TokenRequest;
use async_trait::async_trait;
use client_keys::ClientKeySource;
use std::sync::Arc;

/// A credential found in a request.
#[derive(Debug, Clone)]
pub struct Presented {
    /// The method that found it, which verifies it.
    pub method: AuthMethod,
    pub client_id: String,
    pub credential: Credential,
    /// How to challenge on failure (Basic when Basic was used).
    pub challenge: Challenge,
}

#[derive(Debug, Clone)]
pub enum Credential {
    Secret(String),
    /// A `client_assertion` and its `client_assertion_type` (RFC 7521 §4.2).
    Assertion {
        assertion: String,
        kind: String,
    },
    /// Nothing but a `client_id`: a public client (RFC 6749 §2.1).
    None,
}

impl Credential {
    pub fn kind(&self) -> CredentialKind {
        match self {
            Credential::Secret(_) => CredentialKind::Secret,
            Credential::Assertion { .. } => CredentialKind::PrivateKeyJwt,
            Credential::None => CredentialKind::None,
        }
    }
}

/// What a method may use while verifying one credential.
pub struct AuthContext<'a> {
    pub settings: &'a Settings,
    pub store: &'a dyn Store,
    pub secrets: &'a SecretVerifier,
    /// Where `private_key_jwt` clients' keys come from.
    pub client_keys: &'a ClientKeySource,
    /// The path called (the token, revocation or introspection endpoint):
    /// an assertion may be addressed to it.
    pub endpoint: &'a str,
    pub now: i64,
}

#[async_trait]
pub trait ClientAuthenticator: Send + Sync {
    /// The RFC 7591 method name this authenticator implements.
    fn method(&self) -> AuthMethod;
    /// The credential this method finds in the request, if any.
    fn presented(&self, req: &TokenRequest) -> Option<Presented>;
    /// Verifies a credential this method presented against a known client.
    /// Every failure is `invalid_client`, whatever went wrong.
    async fn verify(
        &self,
        ctx: &AuthContext<'_>,
        client: &Client,
        presented: &Presented,
    ) -> Result<(), OAuthError>;
    /// Called instead of [`Self::verify`] when the client is unknown: burns
    /// the work a real check would, so timing does not tell the two apart.
    fn refuse_unknown(&self, _ctx: &AuthContext<'_>, _presented: &Presented) {}
}

/// Every client authentication method this build implements; the token
/// endpoint and the discovery document both read this one list.
pub fn authenticators() -> Vec<Box<dyn ClientAuthenticator>> {
    vec![
        Box::new(secret::SecretBasic),
        Box::new(secret::SecretPost),
        Box::new(private_key_jwt::PrivateKeyJwt),
        Box::new(public::PublicClient),
    ]
}

/// Finds the one credential in a request. Two credentials in one request, or
/// a body `client_id` naming someone other than the authenticated client, is
/// `invalid_request` (docs/decisions.md "Keys, secrets and identifiers").
pub fn find_credential(
    authenticators: &[Box<dyn ClientAuthenticator>],
    req: &TokenRequest,
) -> Result<Presented, OAuthError> {
    let mut found: Option<Presented> = None;
    for a in authenticators {
        if let Some(p) = a.presented(req) {
            if found.is_some() {
                return Err(OAuthError::invalid_request(
                    "more than one client authentication method used",
                ));
            }
            found = Some(p);
        }
    }
    let presented = found.ok_or_else(OAuthError::invalid_client)?;
    if let Some(body_id) = req.param("client_id")
        && body_id != presented.client_id
    {
        return Err(OAuthError::invalid_request(
            "client_id does not match the authenticated client",
        ));
    }
    Ok(presented)
}

impl AuthorizationServer {
    /// The client a token, revocation or introspection request claims to
    /// be, before anything is verified (the Basic or body `client_id`, or an
    /// assertion's unverified `sub`): what failed authentications are
    /// counted under. `None` when the request names no single client.
    pub fn claimed_client_id(&self, req: &TokenRequest) -> Option<String> {
        find_credential(self.registry.authenticators(), req)
            .ok()
            .map(|p| p.client_id)
    }

    /// Authenticates the client of a token request (also used as-is by the
    /// revocation and introspection endpoints): the method that presented
    /// the credential verifies it. Every failure is the same
    /// `invalid_client`, whatever went wrong. `endpoint` is the path called.
    pub(crate) async fn authenticate(
        &self,
        req: &TokenRequest,
        endpoint: &str,
    ) -> Result<Arc<Client>, OAuthError> {
        let presented = find_credential(self.registry.authenticators(), req)?;
        let method = self
            .registry
            .authenticator(presented.method)
            .ok_or_else(OAuthError::invalid_client)?;
        let ctx = AuthContext {
            settings: &self.settings,
            store: self.store.as_ref(),
            secrets: &self.secrets,
            client_keys: &self.client_keys,
            endpoint,
            now: self.now(),
        };
        let known = self.client_named(&presented.client_id).await?;
        let Some(client) = known else {
            method.refuse_unknown(&ctx, &presented);
            return Err(OAuthError::invalid_client());
        };
        method.verify(&ctx, &client, &presented).await?;
        if client.origin == ClientOrigin::Dynamic {
            self.clients.mark_used(&client.id);
        }
        Ok(client)
    }
}
