//! Client authentication at the token endpoint (RFC 6749 §2.3).
//!
//! Each method is one [`ClientAuthenticator`]; the registry lists them, and
//! `token_endpoint_auth_methods_supported` is derived from that list.

use crate::client::{AuthMethod, Client, CredentialKind};
use crate::crypto::{SecretHasher, b64url_decode};
use crate::error::{Challenge, OAuthError};
use crate::token_request::TokenRequest;
use std::collections::HashMap;

/// A credential found in a request.
#[derive(Debug, Clone)]
pub struct Presented {
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

pub trait ClientAuthenticator: Send + Sync {
    /// The RFC 7591 method name this authenticator implements.
    fn method(&self) -> AuthMethod;
    /// The credential this method finds in the request, if any.
    fn presented(&self, req: &TokenRequest) -> Option<Presented>;
}

/// Every client authentication method this build implements; the token
/// endpoint and the discovery document both read this one list.
pub fn authenticators() -> Vec<Box<dyn ClientAuthenticator>> {
    vec![
        Box::new(SecretBasic),
        Box::new(SecretPost),
        Box::new(PrivateKeyJwt),
        Box::new(PublicClient),
    ]
}

/// `none`: a public client names itself with `client_id` in the body and
/// proves nothing (RFC 6749 §3.2.1); what it may do is limited by its
/// registration (PKCE-bound codes and its own refresh tokens). Presented only
/// when no other credential is, so it never counts as a second one.
pub struct PublicClient;

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
            client_id: req.param("client_id")?.to_string(),
            credential: Credential::None,
            challenge: Challenge::None,
        })
    }
}

/// `client_secret_basic`: `Authorization: Basic` (RFC 6749 §2.3.1).
pub struct SecretBasic;

impl ClientAuthenticator for SecretBasic {
    fn method(&self) -> AuthMethod {
        AuthMethod::ClientSecretBasic
    }
    fn presented(&self, req: &TokenRequest) -> Option<Presented> {
        req.basic.as_ref().map(|(id, secret)| Presented {
            client_id: id.clone(),
            credential: Credential::Secret(secret.clone()),
            challenge: Challenge::Basic,
        })
    }
}

/// `client_secret_post`: `client_id` and `client_secret` in the body.
pub struct SecretPost;

impl ClientAuthenticator for SecretPost {
    fn method(&self) -> AuthMethod {
        AuthMethod::ClientSecretPost
    }
    fn presented(&self, req: &TokenRequest) -> Option<Presented> {
        let secret = req.param("client_secret")?;
        Some(Presented {
            client_id: req.param("client_id").unwrap_or_default().to_string(),
            credential: Credential::Secret(secret.to_string()),
            challenge: Challenge::None,
        })
    }
}

/// `private_key_jwt`: `client_assertion` in the body (RFC 7523 §2.2). The
/// client is the assertion's `sub` (RFC 7523 §3 item 2); a body `client_id`
/// is optional (RFC 7521 §4.2) and must then name the same client.
pub struct PrivateKeyJwt;

impl ClientAuthenticator for PrivateKeyJwt {
    fn method(&self) -> AuthMethod {
        AuthMethod::PrivateKeyJwt
    }
    fn presented(&self, req: &TokenRequest) -> Option<Presented> {
        let assertion = req.param("client_assertion")?;
        Some(Presented {
            client_id: crate::assertion::claimed_client_id(assertion).unwrap_or_default(),
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
