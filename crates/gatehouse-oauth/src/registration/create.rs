//! Storing a new client: the one way clients are created, by the command
//! line and by dynamic registration (RFC 7591 §3.2.1, RFC 7592 §3).

use crate::client::{Client, ClientMetadata, ClientOrigin, CredentialKind};
use crate::client_auth::SecretVerifier;
use crate::error::{ErrorCode, OAuthError, StoreError};
use crate::registration::management::mint_secret;
use crate::store::{Admission, RegistrationCaps, Store};
use serde_json::Value;
use std::time::Duration;

/// A newly created client and its secret, shown this once.
pub struct CreatedClient {
    pub client: Client,
    pub secret: Option<String>,
    /// RFC 7592 §3: the token that manages this registration (self-registered
    /// clients only), shown this once; only its HMAC is stored.
    pub registration_access_token: Option<String>,
    /// RFC 7592 §3: where the registration is read, replaced and deleted.
    pub registration_client_uri: Option<String>,
}

impl CreatedClient {
    /// The RFC 7591 §3.2.1 response body (with RFC 7592 §3 members when the
    /// registration can be managed).
    pub fn response(&self) -> Value {
        let mut body = self.client.registration_view();
        if let Value::Object(m) = &mut body {
            if let Some(secret) = &self.secret {
                m.insert("client_secret".into(), secret.clone().into());
                // 0 = never expires; strict clients require the member.
                m.insert(
                    "client_secret_expires_at".into(),
                    crate::registration::management::secret_expires_at(&self.client).into(),
                );
            }
            if let Some(token) = &self.registration_access_token {
                m.insert("registration_access_token".into(), token.clone().into());
            }
            if let Some(uri) = &self.registration_client_uri {
                m.insert("registration_client_uri".into(), uri.clone().into());
            }
        }
        body
    }
}

/// Where a self-registered client came from, and the caps it is stored
/// under (`registration.max_clients`, `registration.max_clients_per_address`).
pub struct Registrant<'a> {
    pub address: &'a str,
    pub caps: RegistrationCaps,
}

/// What a new client is made of.
pub struct NewClient {
    pub id: String,
    pub origin: ClientOrigin,
    pub metadata: ClientMetadata,
    /// How long its secret lives, when it gets one (`secret_lifetime`).
    pub secret_lifetime: Option<Duration>,
}

/// Stores a new client at `now`, minting its secret when its method needs one (valid
/// for `secret_lifetime` when set) and, for a self-registered client, its
/// RFC 7592 registration access token. Both are returned once; only their
/// HMACs are stored. With a `registrant`, the client is stored only while
/// the store and its address are under their caps, checked by the store in
/// the same step as the insert.
pub async fn create_client(
    store: &dyn Store,
    secrets: &SecretVerifier,
    new: NewClient,
    registrant: Option<&Registrant<'_>>,
    now: i64,
) -> Result<CreatedClient, OAuthError> {
    let NewClient {
        id,
        origin,
        metadata,
        secret_lifetime,
    } = new;
    let created_at = now;
    let (stored, secret) =
        if metadata.token_endpoint_auth_method.credential_kind() == CredentialKind::Secret {
            let (secret, record) = mint_secret(secrets, created_at, secret_lifetime)?;
            (vec![record], Some(secret))
        } else {
            (Vec::new(), None)
        };
    let (token, registration_token) = if origin == ClientOrigin::Dynamic {
        let (token, record) = mint_secret(secrets, created_at, None)?;
        (Some(token), Some(record))
    } else {
        (None, None)
    };
    let client = Client {
        id,
        origin,
        metadata,
        secrets: stored,
        created_at,
        registration_token,
        revision: 0,
    };
    let stored = match registrant {
        None => store
            .insert_client(&client)
            .await
            .map(|()| Admission::Stored),
        Some(r) => {
            store
                .insert_registered_client(&client, r.address, r.caps)
                .await
        }
    };
    match stored {
        Ok(Admission::TotalCapReached) => {
            tracing::warn!(
                cap = registrant.map(|r| r.caps.total),
                "dynamic registration cap reached"
            );
            Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the server is not accepting new registrations",
            ))
        }
        // Refused like the total cap: the address must delete a
        // registration (RFC 7592 §2.3) or wait for an unused one to expire,
        // which does not pass in seconds.
        Ok(Admission::AddressCapReached) => {
            if let Some(r) = registrant {
                tracing::warn!(
                    client_addr = r.address,
                    cap = r.caps.per_address,
                    "per-address registration cap reached"
                );
            }
            Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "this address has registered as many clients as it may; delete unused registrations or wait for them to expire",
            ))
        }
        Ok(Admission::Stored) => Ok(CreatedClient {
            client,
            secret,
            registration_access_token: token,
            registration_client_uri: None,
        }),
        Err(StoreError::Conflict(_)) => Err(OAuthError::invalid_request(format!(
            "a client with id {:?} already exists",
            client.id
        ))),
        Err(e) => Err(e.into()),
    }
}
