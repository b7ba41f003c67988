//! The grant registry (docs/decisions.md "Principles"): each grant type is one
//! [`Grant`]; the token endpoint dispatches through the registry and the
//! discovery document lists what is registered.

pub mod authorization_code;
pub mod client_credentials;
pub mod people;
pub mod refresh_token;

use crate::client::Client;
use crate::client_auth::SecretVerifier;
use crate::error::OAuthError;
use crate::keys::keyset::KeySet;
use crate::settings::Settings;
use crate::store::Store;
use crate::tokens::issue::TokenResponse;
use crate::tokens::request::TokenRequest;
use async_trait::async_trait;

/// What a grant may use while answering one token request.
pub struct TokenContext<'a> {
    pub settings: &'a Settings,
    /// The keys now: `keys.current` signs access tokens; ID tokens may
    /// use another algorithm's current key.
    pub keys: &'a KeySet,
    pub store: &'a dyn Store,
    /// The server's HMAC keys (refresh-token successors are derived with
    /// the current one).
    pub secrets: &'a SecretVerifier,
    pub now: i64,
}

#[async_trait]
pub trait Grant: Send + Sync {
    /// The `grant_type` value (RFC 6749 §4).
    fn grant_type(&self) -> &'static str;
    /// Whether clients using this grant must hold a credential (a public
    /// client, `none`, cannot use it).
    fn requires_credential(&self) -> bool;
    /// Whether this grant issues refresh tokens (so `refresh_token` may be
    /// registered alongside it).
    fn issues_refresh_tokens(&self) -> bool {
        false
    }
    /// Whether a client may be registered for this grant by naming it in
    /// `grant_types` (the refresh grant only rides along another).
    fn registrable_alone(&self) -> bool {
        true
    }
    /// Whether the grant returns through a redirect URI (so a client
    /// registered for it needs `redirect_uris` and may use `response_type`
    /// `code`).
    fn uses_redirect(&self) -> bool {
        false
    }
    /// Whether the grant serves people (it exists only with `[people]
    /// enabled`).
    fn for_people(&self) -> bool {
        false
    }
    /// Exchanges an authenticated client's request for tokens.
    async fn exchange(
        &self,
        ctx: &TokenContext<'_>,
        client: &Client,
        req: &TokenRequest,
    ) -> Result<TokenResponse, OAuthError>;
}

/// The grant a registration gets when it names none (RFC 7591 §2).
pub const REGISTRATION_DEFAULT: &str = authorization_code::GRANT_TYPE;

/// Every grant this build implements, in the order metadata lists them.
pub fn all() -> Vec<Box<dyn Grant>> {
    vec![
        Box::new(client_credentials::ClientCredentials),
        Box::new(authorization_code::AuthorizationCode),
        Box::new(refresh_token::RefreshTokenGrant),
    ]
}
