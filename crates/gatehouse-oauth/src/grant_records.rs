//! What the Store keeps for people: accounts, browser sign-in sessions,
//! consent, authorization codes and refresh-token families.
//!
//! Codes, refresh tokens and session cookies are 256-bit random values, so
//! they are kept only as their SHA-256 ([`lookup_hash`]): a preimage of a
//! high-entropy value cannot be searched for, and a plain digest can be
//! looked up by key on every replica without a shared secret. (A slow hash
//! would add nothing; a keyed one would tie lookups to the HMAC key's
//! rotation.)

use crate::crypto::b64url;
use aws_lc_rs::digest;

/// A built-in account. `id` is the stable subject, `u_` + a UUID
/// (docs/decisions.md "Keys, secrets and identifiers": disjoint from client
/// ids).
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// The sign-in name, unique, `[a-z0-9._@-]{1,64}`.
    pub name: String,
    /// An argon2id PHC string (`$argon2id$v=19$m=…`).
    pub password_hash: String,
    /// Group names, carried in people's tokens as `groups` (Cedar `Group`s).
    pub groups: Vec<String>,
    pub created_at: i64,
    /// The credential generation: bumped in the same transaction as every
    /// password change. Sessions, codes and grant families record the
    /// generation they were made under and are honoured only while it is
    /// still the user's (see the `Store` trait, `set_user_password`).
    pub credentials_gen: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("groups", &self.groups)
            .field("created_at", &self.created_at)
            .field("credentials_gen", &self.credentials_gen)
            .finish_non_exhaustive()
    }
}

/// A browser's signed-in session (server-side; the cookie holds only a
/// random id, the Store its [`lookup_hash`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    pub user_id: String,
    /// When the user entered their password (OIDC `auth_time`).
    pub auth_time: i64,
    pub expires_at: i64,
    /// The user's [`User::credentials_gen`] when the password was checked.
    pub credentials_gen: i64,
}

/// One consent a user gave: `client_id` may act for them at `resource`
/// with `scopes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub client_id: String,
    pub resource: String,
    pub scopes: Vec<String>,
    pub granted_at: i64,
}

/// An issued authorization code (RFC 6749 §4.1.2), bound to everything the
/// token request must repeat or prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    /// [`lookup_hash`] of the code.
    pub hash: String,
    /// The grant family the code's tokens will belong to (decided when the
    /// code is issued, so a reused code can revoke what it produced).
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    /// The `redirect_uri` the authorization request carried, if any (the
    /// token request must then repeat it exactly, RFC 6749 §4.1.3).
    pub redirect_uri: Option<String>,
    /// The PKCE S256 challenge (RFC 7636 §4.2).
    pub code_challenge: String,
    pub scopes: Vec<String>,
    /// The resources the grant covers (RFC 8707), at least one.
    pub resources: Vec<String>,
    /// OIDC `nonce`, echoed in the ID token.
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub expires_at: i64,
    /// The generation of the session the code was issued from.
    pub credentials_gen: i64,
}

/// One authorization grant to one client for one user: the code and every
/// refresh token rotated from it. Revoking the family stops all of them and
/// the access tokens issued from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantFamily {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    /// What the user granted; a refresh may narrow it per request, never
    /// widen it.
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    pub auth_time: i64,
    pub created_at: i64,
    /// The absolute end of the grant (`[people] session_lifetime`): no
    /// refresh token of the family works after it.
    pub expires_at: i64,
    /// Revoked — or no longer bound: the user's credentials changed since
    /// the grant was made, or the consent for its client was withdrawn.
    pub revoked: bool,
    /// The generation of the code the family was redeemed from.
    pub credentials_gen: i64,
}

/// One refresh token of a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// [`lookup_hash`] of the token.
    pub hash: String,
    pub family_id: String,
    pub expires_at: i64,
    /// When it was exchanged for its successor; `None` while unused.
    pub used_at: Option<i64>,
}

/// An access token issued from a family, remembered until its `exp` so that
/// revoking the family can revoke it too (by `jti`, like RFC 7009).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub jti: String,
    pub client_id: String,
    pub expires_at: i64,
}

/// What [`crate::store::Store::redeem_code`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// This call consumed the code; the family, its first refresh token and
    /// the access token were stored in the same transaction.
    Fresh,
    /// The code had been consumed before: a replay. The caller revokes the
    /// family (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3).
    Reused { family_id: String },
    /// No such code, or it expired.
    Unknown,
}

/// What [`crate::store::Store::use_refresh_token`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshUse {
    pub family: GrantFamily,
    pub token: RefreshToken,
    /// Whether this call marked the token used (the first exchange). When
    /// `false`, `token.used_at` says when the first exchange happened.
    pub first_use: bool,
}

/// SHA-256 of a high-entropy value (a code, refresh token or session id),
/// base64url: the form in which the Store keeps and finds it.
pub fn lookup_hash(value: &str) -> String {
    b64url(digest::digest(&digest::SHA256, value.as_bytes()).as_ref())
}

/// A person's identity at an upstream identity provider, linked to an
/// account by (`provider`, `subject`) and by nothing else: never by email,
/// which would let one provider's account take over another's
/// (docs/decisions.md "People").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedIdentity {
    /// The provider's configured id (`[[people.providers]] id`).
    pub provider: String,
    /// The provider's stable subject for the person (`sub`, or GitHub's
    /// numeric user id).
    pub subject: String,
    pub user_id: String,
    /// As the provider last said, for the gateway's Cedar attributes.
    pub email: Option<String>,
    pub email_verified: bool,
    pub linked_at: i64,
    pub last_sign_in_at: Option<i64>,
}

/// A sign-in under way at an upstream provider: created when the browser is
/// sent there, consumed by the first callback naming its `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedLogin {
    /// [`lookup_hash`] of the `state` sent to the provider.
    pub hash: String,
    /// The provider it was sent to (the callback must come from it).
    pub provider: String,
    /// [`lookup_hash`] of the cookie binding it to the browser that started it.
    pub browser: String,
    /// The authorization request to return to (its query string).
    pub request: String,
    pub expires_at: i64,
}
