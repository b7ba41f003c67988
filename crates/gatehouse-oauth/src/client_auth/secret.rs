//! `client_secret_basic` and `client_secret_post` (RFC 6749 §2.3.1): a
//! server-minted secret, stored as an HMAC (ARCHITECTURE.md "Secrets") and
//! checked in constant time.

use super::{AuthContext, ClientAuthenticator, Credential, Presented};
use crate::client::{AuthMethod, Client, CredentialKind};
use crate::crypto::{SecretHasher, b64url_decode};
use crate::error::{Challenge, OAuthError};
use crate::tokens::request::TokenRequest;
use async_trait::async_trait;
use std::collections::HashMap;

/// `client_secret_basic`: `Authorization: Basic` (RFC 6749 §2.3.1).
pub struct SecretBasic;

#[async_trait]
impl ClientAuthenticator for SecretBasic {
    fn method(&self) -> AuthMethod {
        AuthMethod::ClientSecretBasic
    }
    fn presented(&self, req: &TokenRequest) -> Option<Presented> {
        req.basic.as_ref().map(|(id, secret)| Presented {
            method: self.method(),
            client_id: id.clone(),
            credential: Credential::Secret(secret.clone()),
            challenge: Challenge::Basic,
        })
    }
    async fn verify(
        &self,
        ctx: &AuthContext<'_>,
        client: &Client,
        presented: &Presented,
    ) -> Result<(), OAuthError> {
        verify_secret(ctx, client, presented)
    }
    fn refuse_unknown(&self, ctx: &AuthContext<'_>, presented: &Presented) {
        burn_secret_check(ctx, presented);
    }
}

/// `client_secret_post`: `client_id` and `client_secret` in the body.
pub struct SecretPost;

#[async_trait]
impl ClientAuthenticator for SecretPost {
    fn method(&self) -> AuthMethod {
        AuthMethod::ClientSecretPost
    }
    fn presented(&self, req: &TokenRequest) -> Option<Presented> {
        let secret = req.param("client_secret")?;
        Some(Presented {
            method: self.method(),
            client_id: req.param("client_id").unwrap_or_default().to_string(),
            credential: Credential::Secret(secret.to_string()),
            challenge: Challenge::None,
        })
    }
    async fn verify(
        &self,
        ctx: &AuthContext<'_>,
        client: &Client,
        presented: &Presented,
    ) -> Result<(), OAuthError> {
        verify_secret(ctx, client, presented)
    }
    fn refuse_unknown(&self, ctx: &AuthContext<'_>, presented: &Presented) {
        burn_secret_check(ctx, presented);
    }
}

/// Either secret method: the client must be registered for a secret method
/// (either one: the kind of credential is pinned, not the transport) and
/// the secret must match a live stored one.
fn verify_secret(
    ctx: &AuthContext<'_>,
    client: &Client,
    presented: &Presented,
) -> Result<(), OAuthError> {
    let Credential::Secret(secret) = &presented.credential else {
        return Err(OAuthError::invalid_client());
    };
    let kind_ok =
        client.metadata.token_endpoint_auth_method.credential_kind() == CredentialKind::Secret;
    let matched = ctx.secrets.verify(client, secret, ctx.now);
    if matched && kind_ok {
        return Ok(());
    }
    // For the operator only: the client is told nothing more than
    // `invalid_client`. Never the secret.
    let reason = if !kind_ok {
        "the client is not registered for a secret method"
    } else {
        "wrong or expired secret"
    };
    tracing::info!(
        client_id = %client.id,
        method = presented.method.as_str(),
        reason,
        "client authentication failed"
    );
    Err(OAuthError::invalid_client())
}

/// An unknown client costs the same work as a known one.
fn burn_secret_check(ctx: &AuthContext<'_>, presented: &Presented) {
    if let Credential::Secret(secret) = &presented.credential {
        ctx.secrets.dummy_verify(secret);
    }
    // Debug-quoted and cut short: the id is whatever the request said.
    let said: String = presented.client_id.chars().take(64).collect();
    tracing::info!(
        client_id = ?said,
        method = presented.method.as_str(),
        reason = "unknown client",
        "client authentication failed"
    );
}

/// The HMAC keys secrets may have been hashed with, by key id.
pub struct SecretVerifier {
    pub hashers: HashMap<String, SecretHasher>,
    pub current: String,
}

impl SecretVerifier {
    /// A value derived from `value` under the current HMAC key, for
    /// `purpose` (domain-separated from secret hashes): unpredictable
    /// without the key, the same on every replica.
    pub fn derive(&self, purpose: &str, value: &str) -> Option<String> {
        let h = self.current()?;
        Some(crate::crypto::b64url(
            &h.hash(&format!("{purpose}\0{value}")),
        ))
    }

    pub fn current(&self) -> Option<&SecretHasher> {
        self.hashers.get(&self.current)
    }

    /// Checks a presented secret against every live stored secret of `client`
    /// in constant time per comparison. Expired secrets never match.
    pub fn verify(&self, client: &Client, secret: &str, now: i64) -> bool {
        let mut ok = false;
        for stored in &client.secrets {
            let live = stored.expires_at.is_none_or(|exp| now < exp);
            let Some(hasher) = self.hashers.get(&stored.key_id) else {
                continue;
            };
            let Some(hash) = b64url_decode(&stored.hash) else {
                continue;
            };
            // Evaluate every secret (no early exit) so timing does not reveal
            // which one matched.
            ok |= hasher.verify(secret, &hash) & live;
        }
        ok
    }

    /// Burns the same work as a real check, for unknown clients.
    pub fn dummy_verify(&self, secret: &str) {
        if let Some(h) = self.current() {
            let _ = h.verify(secret, &[0u8; 32]);
        }
    }
}
