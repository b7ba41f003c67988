//! Token introspection (RFC 7662) for authenticated confidential clients,
//! typically resource servers that want to know whether a token is still
//! good right now (for instance after a revocation).

use crate::client::{Client, CredentialKind};
use crate::error::OAuthError;
use crate::issuer::INTROSPECT_PATH;
use crate::resource::same_resource;
use crate::server::AuthorizationServer;
use crate::tokens::request::TokenRequest;
use crate::tokens::verify::{AccessToken, verify_own};
use serde::Serialize;

/// The RFC 7662 §2.2 response. Inactive is exactly `{"active": false}`: the
/// RFC forbids saying more about a token that is not active, and whether a
/// token is expired, revoked, foreign, malformed or simply not the caller's
/// to see must be indistinguishable (docs/decisions.md "Revocation and
/// introspection": no token scanning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten)]
    pub token: Option<ActiveToken>,
}

/// What an active token's introspection reveals (RFC 7662 §2.2 members).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveToken {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub client_id: String,
    pub sub: String,
    /// One audience (a string), or for a refresh token covering several
    /// resources, the list (RFC 7662 §2.2 allows either).
    pub aud: serde_json::Value,
    pub iss: String,
    pub exp: i64,
    pub iat: i64,
    /// An access token's `jti`; absent for refresh tokens, which have none
    /// (their lookup hash is not shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    pub token_type: &'static str,
}

impl Introspection {
    pub fn inactive() -> Self {
        Introspection {
            active: false,
            token: None,
        }
    }

    fn active(t: AccessToken) -> Self {
        Introspection {
            active: true,
            token: Some(ActiveToken {
                scope: (!t.scope.is_empty()).then_some(t.scope),
                client_id: t.client_id,
                sub: t.sub,
                aud: t.aud.into(),
                iss: t.iss,
                exp: t.exp,
                iat: t.iat,
                jti: Some(t.jti),
                token_type: "Bearer",
            }),
        }
    }
}

/// Whether `caller` may learn about `token` (docs/decisions.md "Revocation and
/// introspection"): it was issued to the caller, or it is meant for a resource
/// the caller is registered to serve (`resource_servers`, never `audiences`,
/// which only restrict what a client obtains).
fn may_see(caller: &Client, token: &AccessToken) -> bool {
    token.client_id == caller.id
        || caller
            .metadata
            .resource_servers
            .as_deref()
            .is_some_and(|rs| rs.iter().any(|r| same_resource(r, &token.aud)))
}

impl AuthorizationServer {
    /// `POST /oauth/introspect` (RFC 7662 §2.1). The caller must authenticate
    /// as a confidential client (§2.1: the endpoint "MUST require some form
    /// of authorization"; §4: so that it cannot be used to scan for tokens);
    /// anything else is `invalid_client` before the token is even looked at.
    pub async fn introspect(&self, req: &TokenRequest) -> Result<Introspection, OAuthError> {
        let caller = self.authenticate(req, INTROSPECT_PATH).await?;
        if caller.metadata.token_endpoint_auth_method.credential_kind() == CredentialKind::None {
            return Err(OAuthError::invalid_client());
        }
        let token = req
            .param("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        // `token_type_hint` is only a hint (§2.1); only access tokens exist.
        // Who may see the token is decided before any Store read, so other
        // clients' tokens never cost one.
        match verify_own(&self.keys.snapshot(), self.settings.issuer.as_str(), token) {
            Some(claims) if claims.live_at(self.now()) && may_see(&caller, &claims) => {
                if self.still_active(&claims).await? {
                    Ok(Introspection::active(claims))
                } else {
                    Ok(Introspection::inactive())
                }
            }
            Some(_) => Ok(Introspection::inactive()),
            None => self.introspect_refresh_token(&caller, token).await,
        }
    }

    /// A refresh token is shown only to the client it was issued to, while
    /// it is unused, unexpired and its grant unrevoked.
    async fn introspect_refresh_token(
        &self,
        caller: &Client,
        token: &str,
    ) -> Result<Introspection, OAuthError> {
        if token.len() > crate::limits::MAX_PARAM_BYTES {
            return Ok(Introspection::inactive());
        }
        let now = self.now();
        let found = self
            .store
            .find_refresh_token(&crate::grant_records::lookup_hash(token))
            .await?;
        let Some((t, f)) = found else {
            return Ok(Introspection::inactive());
        };
        let live = f.client_id == caller.id
            && !f.revoked
            && t.used_at.is_none()
            && now < t.expires_at
            && now < f.expires_at;
        if !live {
            return Ok(Introspection::inactive());
        }
        Ok(Introspection {
            active: true,
            token: Some(ActiveToken {
                scope: (!f.scopes.is_empty()).then(|| f.scopes.join(" ")),
                client_id: f.client_id,
                sub: f.user_id,
                aud: match f.resources.as_slice() {
                    [one] => one.clone().into(),
                    many => many.to_vec().into(),
                },
                iss: self.settings.issuer.as_str().to_string(),
                exp: t.expires_at.min(f.expires_at),
                iat: f.created_at,
                jti: None,
                token_type: "refresh_token",
            }),
        })
    }

    /// The claims of `token` if it is one of this server's access tokens and
    /// still good right now: well signed, unexpired, its client not deleted,
    /// not revoked. Shared by introspection and the embedded gateway's
    /// instant cut-off, which asks the same question in-process.
    pub async fn live_token(&self, token: &str) -> Result<Option<AccessToken>, OAuthError> {
        let Some(claims) = verify_own(&self.keys.snapshot(), self.settings.issuer.as_str(), token)
        else {
            return Ok(None);
        };
        if !claims.live_at(self.now()) || !self.still_active(&claims).await? {
            return Ok(None);
        }
        Ok(Some(claims))
    }

    /// The Store's part of "still good": the token's client exists and the
    /// token is not revoked.
    async fn still_active(&self, claims: &AccessToken) -> Result<bool, OAuthError> {
        // A deleted client's tokens die with it: an operator deleting a
        // compromised client must not leave its tokens active (cached read).
        if self.client_named(&claims.client_id).await?.is_none() {
            return Ok(false);
        }
        Ok(!self.store.is_revoked(&claims.jti).await?)
    }

    /// `introspection_endpoint_auth_methods_supported` (RFC 8414 §2): the
    /// token endpoint's authenticators that carry a credential.
    pub fn introspection_auth_methods(&self) -> Vec<String> {
        self.auth_methods()
            .iter()
            .filter(|m| m.credential_kind() != CredentialKind::None)
            .map(|m| m.as_str().to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_is_exactly_active_false() {
        let v = serde_json::to_value(Introspection::inactive()).unwrap();
        assert_eq!(v, serde_json::json!({"active": false}));
    }

    #[test]
    fn active_lists_the_rfc_7662_members() {
        let t = AccessToken {
            iss: "https://as".into(),
            sub: "c_1".into(),
            client_id: "c_1".into(),
            aud: "https://r".into(),
            scope: String::new(),
            iat: 1,
            exp: 2,
            jti: "j".into(),
        };
        let v = serde_json::to_value(Introspection::active(t)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"active": true, "client_id": "c_1", "sub": "c_1",
                "aud": "https://r", "iss": "https://as", "exp": 2, "iat": 1,
                "jti": "j", "token_type": "Bearer"})
        );
    }
}
