//! Dynamic client registration (RFC 7591 §3): who may register what
//! (`registration.public`, `registration.confidential`, initial access
//! tokens), then the one classifier and the one way clients are stored.

use crate::client::{AuthMethod, ClientOrigin, new_client_id};
use crate::error::{ErrorCode, OAuthError};
use crate::registration::classify::classify;
use crate::registration::create::{CreatedClient, NewClient, Registrant, create_client};
use crate::server::AuthorizationServer;
use crate::settings::RegistrationMode;
use crate::store::RegistrationCaps;
use aws_lc_rs::digest;
use serde_json::Value;
use subtle::ConstantTimeEq;

impl AuthorizationServer {
    /// Dynamic client registration (RFC 7591 §3). `initial_token` is the
    /// bearer token the request carried, if any; `source` the client address
    /// the registration counts against (`registration.max_clients_per_address`).
    pub async fn register(
        &self,
        body: &serde_json::Map<String, Value>,
        initial_token: Option<&str>,
        source: &str,
    ) -> Result<CreatedClient, OAuthError> {
        let reg = &self.settings.registration;
        let token_required = || {
            OAuthError::new(
                ErrorCode::InvalidToken,
                "a valid initial access token is required to register a confidential client",
            )
            .with_bearer_challenge(initial_token)
        };
        let token_ok = initial_token.is_some_and(|t| self.initial_token_ok(t));
        // When only confidential clients may register and they need a
        // token, check it before validating anything, so an unauthenticated
        // caller learns nothing about what would be accepted.
        let public = reg.public && self.settings.people.enabled;
        if !public && reg.confidential == RegistrationMode::InitialToken && !token_ok {
            return Err(token_required());
        }
        let metadata = classify(body, &self.capabilities(), None)?;
        if metadata.token_endpoint_auth_method == AuthMethod::None && !public {
            return Err(OAuthError::invalid_metadata(
                "registration of public clients is disabled on this server",
            ));
        }
        // private_key_jwt carries no secret, but it is a confidential client
        // all the same (RFC 6749 §2.1), so `registration.confidential` gates
        // it like the secret methods.
        let confidential = metadata.token_endpoint_auth_method != AuthMethod::None;
        if confidential {
            match reg.confidential {
                RegistrationMode::Off => {
                    return Err(OAuthError::invalid_metadata(
                        "registration of confidential clients is disabled on this server (registration.confidential = \"off\")",
                    ));
                }
                RegistrationMode::InitialToken if !token_ok => return Err(token_required()),
                RegistrationMode::InitialToken | RegistrationMode::Open => {}
            }
        }
        let registrant = Registrant {
            address: source,
            caps: RegistrationCaps {
                total: reg.max_clients,
                per_address: reg.max_clients_per_address,
            },
        };
        let new = NewClient {
            id: new_client_id(),
            origin: ClientOrigin::Dynamic,
            metadata,
            secret_lifetime: self.settings.secret_lifetime,
        };
        let mut created = create_client(
            self.store.as_ref(),
            &self.secrets,
            new,
            Some(&registrant),
            self.now(),
        )
        .await?;
        created.registration_client_uri = Some(self.registration_client_uri(&created.client.id));
        Ok(created)
    }

    /// Initial access tokens compare in constant time over their SHA-256, so
    /// neither content nor length leaks.
    fn initial_token_ok(&self, presented: &str) -> bool {
        let p = digest::digest(&digest::SHA256, presented.as_bytes());
        let mut ok = false;
        for t in &self.settings.registration.initial_access_tokens {
            let c = digest::digest(&digest::SHA256, t.as_bytes());
            ok |= bool::from(p.as_ref().ct_eq(c.as_ref()));
        }
        ok
    }
}
