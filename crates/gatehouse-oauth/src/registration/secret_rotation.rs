//! Client secret rotation without downtime (docs/machines.md "Managing clients
//! and rotating secrets"): a new secret is added and the previous ones keep
//! working for a grace period, each with its own expiry, so a fleet can switch
//! over at its own pace.
//!
//! The change goes through [`Store::update_client`], which records a change
//! in the same transaction: every running server's client cache drops the old
//! record within one poll interval, without a restart. Expired secrets stay
//! in the record until the next rotation prunes them; the verifier refuses
//! them exactly like a wrong secret (same path, same answer).

use crate::client::{CredentialKind, StoredSecret};
use crate::client_auth::SecretVerifier;
use crate::clock::Clock;
use crate::error::{ErrorCode, OAuthError};
use crate::limits::MAX_LIVE_SECRETS;
use crate::registration::management::{mint_secret, secs};
use crate::store::Store;
use std::time::Duration;

/// Longest grace period a rotation accepts: a leaked secret should not be
/// kept alive for months by accident.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(90 * 24 * 3600);

/// Attempts when another writer changes the client between read and write.
const ATTEMPTS: usize = 3;

/// The outcome of a rotation: the new secret, shown this once.
#[derive(Debug)]
pub struct RotatedSecret {
    pub client_id: String,
    pub secret: String,
    /// Unix seconds; `None` = never.
    pub expires_at: Option<i64>,
    /// When each previous live secret now stops working.
    pub previous_expire_at: Vec<i64>,
}

impl RotatedSecret {
    pub fn response(&self) -> serde_json::Value {
        serde_json::json!({
            "client_id": self.client_id,
            "client_secret": self.secret,
            "client_secret_expires_at": self.expires_at.unwrap_or(0),
            "previous_secrets_expire_at": self.previous_expire_at,
        })
    }
}

fn is_live(s: &StoredSecret, now: i64) -> bool {
    s.expires_at.is_none_or(|exp| now < exp)
}

/// Adds a new secret to client `id` and limits every previous live secret to
/// `now + grace` (a secret already expiring sooner keeps its expiry). The new
/// secret lives for `lifetime` when one is configured. Refused, changing
/// nothing, when the client is unknown, has no secret (a public client), or
/// already holds [`MAX_LIVE_SECRETS`] live secrets.
pub async fn rotate_secret(
    store: &dyn Store,
    secrets: &SecretVerifier,
    id: &str,
    grace: Duration,
    lifetime: Option<Duration>,
    clock: &dyn Clock,
) -> Result<RotatedSecret, OAuthError> {
    if grace > MAX_ROTATION_GRACE {
        return Err(OAuthError::invalid_request(format!(
            "the grace period may be at most {} days",
            MAX_ROTATION_GRACE.as_secs() / 86_400
        )));
    }
    for _ in 0..ATTEMPTS {
        let Some(client) = store.get_client(id).await? else {
            return Err(OAuthError::invalid_request(format!(
                "no client with id {id:?}"
            )));
        };
        if client.metadata.token_endpoint_auth_method.credential_kind() != CredentialKind::Secret {
            return Err(OAuthError::invalid_request(format!(
                "client {id:?} authenticates with {} and has no secret to rotate",
                client.metadata.token_endpoint_auth_method.as_str()
            )));
        }
        let now = clock.now();
        // Expired secrets are pruned here; they would be refused anyway.
        let mut live: Vec<StoredSecret> = client
            .secrets
            .iter()
            .filter(|s| is_live(s, now))
            .cloned()
            .collect();
        if live.len() >= MAX_LIVE_SECRETS {
            return Err(OAuthError::invalid_request(format!(
                "client {id:?} already has {} live secrets, the most it may hold; \
                 wait until a previous secret's grace period ends",
                live.len()
            )));
        }
        let grace_end = now.saturating_add(secs(grace));
        for s in &mut live {
            s.expires_at = Some(s.expires_at.map_or(grace_end, |e| e.min(grace_end)));
        }
        let previous_expire_at = live.iter().filter_map(|s| s.expires_at).collect();
        let (secret, record) = mint_secret(secrets, now, lifetime)?;
        let expires_at = record.expires_at;
        live.push(record);
        let mut next = client;
        next.secrets = live;
        if store.update_client(&next).await? {
            tracing::info!(client_id = %id, grace_secs = grace.as_secs(), "client secret rotated");
            return Ok(RotatedSecret {
                client_id: id.to_string(),
                secret,
                expires_at,
                previous_expire_at,
            });
        }
    }
    Err(OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        format!("client {id:?} kept changing during the rotation; retry"),
    )
    .with_retry_after(1))
}
