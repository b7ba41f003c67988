//! JWT access tokens (RFC 9068) and the token response (RFC 6749 §5.1).

use crate::crypto::{b64url, random_bytes};
use crate::error::OAuthError;
use crate::keys::SigningKey;
use serde::Serialize;

/// RFC 9068 §2.2 claims. `aud` is one string: every token has exactly one
/// audience (docs/decisions.md "Tokens").
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub client_id: &'a str,
    pub aud: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub scope: &'a str,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// When the person signed in (people's tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The person's groups (people's tokens only; Cedar `Group`s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<&'a [String]>,
    /// For a person who signs in at an identity provider: the provider's id
    /// and the email it last stated (the gateway's Cedar `User` attributes
    /// `idp`, `email`, `email_verified`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// A unique token id: 128 random bits.
pub fn new_jti() -> String {
    b64url(&random_bytes::<16>())
}

/// The JSON body of a successful token response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// OIDC Core §3.1.3.3, with the `openid` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The access token's `aud`, for the log line; not part of the response.
    #[serde(skip)]
    pub audience: String,
}

impl TokenResponse {
    /// A bearer access token for `audience` valid for `expires_in`
    /// seconds, with its granted `scope` (omitted when empty); no refresh
    /// or ID token.
    pub fn bearer(
        access_token: String,
        expires_in: u64,
        scope: String,
        audience: &str,
    ) -> TokenResponse {
        TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in,
            scope: (!scope.is_empty()).then_some(scope),
            refresh_token: None,
            id_token: None,
            audience: audience.to_string(),
        }
    }
}

/// Signs an access token with `typ: at+jwt` (RFC 9068 §2.1).
pub fn sign_access_token(
    key: &SigningKey,
    claims: &AccessTokenClaims<'_>,
) -> Result<String, OAuthError> {
    key.sign_jwt("at+jwt", claims).map_err(|e| {
        tracing::error!(error = %e, "access token signing failed");
        OAuthError::server_error()
    })
}
