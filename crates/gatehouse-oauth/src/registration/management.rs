//! Client management after registration (RFC 7592): read, replace and delete
//! a self-registered client's registration, authenticated by the registration
//! access token issued with it.
//!
//! The token is minted like a client secret (256 bits from the CSPRNG) and
//! stored only as an HMAC under the server's secret-hashing key, so the same
//! constant-time check applies (docs/decisions.md "Principles"). Every failure
//! to authenticate — no token, a wrong token, another client's token, an
//! unknown client, a client created on the command line (which has no token) —
//! is the same `401 invalid_token`, so the endpoint cannot be used to learn
//! which client ids exist.

use crate::AuthorizationServer;
use crate::client::{Client, ClientMetadata, CredentialKind, StoredSecret, plausible_client_id};
use crate::client_auth::SecretVerifier;
use crate::crypto::{b64url, b64url_decode, new_secret};
use crate::error::{ErrorCode, OAuthError};
use crate::issuer::REGISTER_PATH;
use crate::registration::classify::classify;
use serde_json::{Map, Value};
use std::time::Duration;

/// Mints a secret (client secret or registration access token) and its
/// stored record: the HMAC under the current secret-hashing key, expiring
/// after `lifetime` when one is given.
pub fn mint_secret(
    secrets: &SecretVerifier,
    now: i64,
    lifetime: Option<Duration>,
) -> Result<(String, StoredSecret), OAuthError> {
    let hasher = secrets.current().ok_or_else(|| {
        tracing::error!("no current secret hashing key");
        OAuthError::server_error()
    })?;
    let secret = new_secret();
    let record = StoredSecret {
        key_id: hasher.id.clone(),
        hash: b64url(&hasher.hash(&secret)),
        created_at: now,
        expires_at: lifetime.map(|l| now.saturating_add(secs(l))),
    };
    Ok((secret, record))
}

/// A duration in whole seconds, saturating (configured values are bounded,
/// but arithmetic on them must never wrap).
pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// `client_secret_expires_at` (RFC 7591 §3.2.1) for a client: when its newest
/// secret expires, or 0 for "never". Only meaningful for secret clients.
pub fn secret_expires_at(client: &Client) -> i64 {
    client
        .secrets
        .iter()
        .max_by_key(|s| s.created_at)
        .and_then(|s| s.expires_at)
        .unwrap_or(0)
}

/// The one answer for every failed management authentication (RFC 7592 §2:
/// 401 with a Bearer challenge; RFC 6750 §3.1 `invalid_token`).
fn invalid_token(presented: Option<&str>) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidToken,
        "the registration access token is missing, invalid or not valid for this client",
    )
    .with_bearer_challenge(presented)
}

/// Checks `presented` against a stored token in constant time; burns the same
/// work when there is nothing to compare against.
fn token_matches(secrets: &SecretVerifier, stored: Option<&StoredSecret>, presented: &str) -> bool {
    let checked = stored.and_then(|s| {
        let hasher = secrets.hashers.get(&s.key_id)?;
        let hash = b64url_decode(&s.hash)?;
        Some(hasher.verify(presented, &hash))
    });
    match checked {
        Some(ok) => ok,
        None => {
            secrets.dummy_verify(presented);
            false
        }
    }
}

impl AuthorizationServer {
    /// `{issuer}/oauth/register/{client_id}` (RFC 7592 §3).
    pub fn registration_client_uri(&self, client_id: &str) -> String {
        self.settings
            .issuer
            .endpoint(&format!("{REGISTER_PATH}/{client_id}"))
    }

    /// The client a management request may act on. Read from the Store, not
    /// the cache: management is not a hot path and must see the latest state.
    async fn managed_client(&self, id: &str, token: Option<&str>) -> Result<Client, OAuthError> {
        let presented = token.unwrap_or_default();
        let client = if plausible_client_id(id) {
            self.store.get_client(id).await?
        } else {
            None
        };
        let stored = client.as_ref().and_then(|c| c.registration_token.as_ref());
        let ok = token_matches(&self.secrets, stored, presented) && !presented.is_empty();
        match client {
            Some(c) if ok => Ok(c),
            _ => Err(invalid_token(token)),
        }
    }

    /// The client information response (RFC 7592 §3): the registration,
    /// its management URI, the registration access token (REQUIRED there:
    /// the one just presented, since tokens are not rotated here) and, for
    /// secret clients, when the secret expires. The secret is not included:
    /// only its HMAC exists.
    fn management_view(&self, client: &Client, token: &str) -> Value {
        let mut body = client.registration_view();
        if let Value::Object(m) = &mut body {
            m.insert(
                "registration_client_uri".into(),
                self.registration_client_uri(&client.id).into(),
            );
            m.insert("registration_access_token".into(), token.into());
            if client.metadata.token_endpoint_auth_method.credential_kind()
                == CredentialKind::Secret
            {
                m.insert(
                    "client_secret_expires_at".into(),
                    secret_expires_at(client).into(),
                );
            }
        }
        body
    }

    /// RFC 7592 §2.1: read the current registration. No new token is issued.
    pub async fn read_registration(
        &self,
        id: &str,
        token: Option<&str>,
    ) -> Result<Value, OAuthError> {
        let client = self.managed_client(id, token).await?;
        Ok(self.management_view(&client, token.unwrap_or_default()))
    }

    /// RFC 7592 §2.2: replace the registration. The body must name the same
    /// `client_id`; a `client_secret`, if sent, must be a live secret of the
    /// client; the metadata goes through the same classifier as registration,
    /// and fields left out are removed. The kind of credential cannot change
    /// (no secret is minted or dropped by an update). A refused update
    /// changes nothing.
    pub async fn update_registration(
        &self,
        id: &str,
        token: Option<&str>,
        body: &Map<String, Value>,
    ) -> Result<Value, OAuthError> {
        let client = self.managed_client(id, token).await?;
        match body.get("client_id") {
            Some(Value::String(s)) if s == id => {}
            Some(_) => {
                return Err(OAuthError::invalid_metadata(
                    "client_id does not match the client being updated (RFC 7592 §2.2)",
                ));
            }
            None => {
                return Err(OAuthError::invalid_metadata(
                    "the update must include the client's client_id (RFC 7592 §2.2)",
                ));
            }
        }
        match body.get("client_secret") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if self.secrets.verify(&client, s, self.now()) => {}
            Some(_) => {
                return Err(OAuthError::invalid_metadata(
                    "client_secret does not match the client's current secret (RFC 7592 §2.2)",
                ));
            }
        }
        // The operator's audience restriction is not client metadata: keep it.
        let metadata = classify(
            body,
            &self.capabilities(),
            client.metadata.audiences.clone(),
        )?;
        if metadata.token_endpoint_auth_method.credential_kind()
            != client.metadata.token_endpoint_auth_method.credential_kind()
        {
            return Err(OAuthError::invalid_metadata(format!(
                "token_endpoint_auth_method cannot change from {} to {}: register a new client instead",
                client.metadata.token_endpoint_auth_method.as_str(),
                metadata.token_endpoint_auth_method.as_str()
            )));
        }
        let mut next = client;
        let resource_servers = next.metadata.resource_servers.take();
        next.metadata = ClientMetadata {
            resource_servers,
            ..metadata
        };
        if !self.store.update_client(&next).await? {
            // Deleted meanwhile (then the token is no longer valid), or
            // changed by another writer since we read it.
            return match self.store.get_client(id).await? {
                None => Err(invalid_token(token)),
                Some(_) => Err(OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the registration was changed concurrently; retry",
                )
                .with_retry_after(1)),
            };
        }
        next.revision += 1;
        tracing::info!(client_id = %id, "client registration updated");
        Ok(self.management_view(&next, token.unwrap_or_default()))
    }

    /// RFC 7592 §2.3: delete the registration; its secrets and token stop
    /// working everywhere within one store poll interval.
    pub async fn delete_registration(
        &self,
        id: &str,
        token: Option<&str>,
    ) -> Result<(), OAuthError> {
        self.managed_client(id, token).await?;
        if !self.store.delete_client(id).await? {
            return Err(invalid_token(token));
        }
        tracing::info!(client_id = %id, "client registration deleted by the client");
        Ok(())
    }
}
