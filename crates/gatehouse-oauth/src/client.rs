//! The registered client record and the rules about identifiers.

use serde::{Deserialize, Serialize};

/// How a client proves its identity at the token endpoint
/// (RFC 7591 §2 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT assertion signed with one of the client's registered keys
    /// (RFC 7523 §2.2, OpenID Connect Core §9).
    PrivateKeyJwt,
    /// A public client (no credential). Never allowed with client_credentials.
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "private_key_jwt" => Some(AuthMethod::PrivateKeyJwt),
            "none" => Some(AuthMethod::None),
            _ => None,
        }
    }

    /// The kind of credential this method pins (docs/decisions.md "Keys,
    /// secrets and identifiers": a secret client may send its secret by Basic
    /// or in the body; the kind is what is fixed).
    pub fn credential_kind(self) -> CredentialKind {
        match self {
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => CredentialKind::Secret,
            AuthMethod::PrivateKeyJwt => CredentialKind::PrivateKeyJwt,
            AuthMethod::None => CredentialKind::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Secret,
    PrivateKeyJwt,
    None,
}

/// Where a client came from: the operator's CLI, dynamic registration, or
/// a metadata document at its URL (never stored, see `client_documents`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientOrigin {
    Cli,
    Dynamic,
    Document,
}

impl ClientOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientOrigin::Cli => "cli",
            ClientOrigin::Dynamic => "dynamic",
            ClientOrigin::Document => "metadata_document",
        }
    }
}

/// One stored secret: an HMAC of the secret under the server key `key_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    pub key_id: String,
    /// base64url HMAC-SHA-256 of the secret.
    pub hash: String,
    pub created_at: i64,
    /// Unix seconds after which the secret is refused; `None` = never.
    pub expires_at: Option<i64>,
}

/// Client metadata as registered (RFC 7591 §2), after validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    /// `None`: registered without scopes (may request any supported scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// `None`: any of the server's allowed audiences. Restricts what the
    /// client may obtain, nothing else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// The resources this client serves (`client create --resource-server`):
    /// it may introspect tokens meant for them. Set by the operator only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_servers: Option<Vec<String>>,
    /// The public keys a `private_key_jwt` client signs its assertions with
    /// (RFC 7591 §2 `jwks`), validated by [`crate::client_auth::jwks::validate_client_jwks`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Where a `private_key_jwt` client publishes its public keys instead
    /// (RFC 7591 §2 `jwks_uri`), checked by
    /// [`crate::client_auth::client_keys::validate_jwks_uri`]; exclusive with `jwks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Other RFC 7591 fields kept verbatim after validation (client_uri,
    /// logo_uri, contacts, tos_uri, policy_uri, software_id, software_version).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub id: String,
    pub origin: ClientOrigin,
    pub metadata: ClientMetadata,
    pub secrets: Vec<StoredSecret>,
    pub created_at: i64,
    /// HMAC of the RFC 7592 registration access token; `None` for clients
    /// created on the command line, which cannot be managed over HTTP.
    pub registration_token: Option<StoredSecret>,
    /// Bumped by every update; [`crate::store::Store::update_client`] writes
    /// only over the revision it read (optimistic concurrency).
    pub revision: i64,
}

impl Client {
    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.metadata.grant_types.iter().any(|g| g == grant_type)
    }

    /// The RFC 7591 §3.2.1 view of the client, without secret material.
    pub fn registration_view(&self) -> serde_json::Value {
        let m = &self.metadata;
        let mut out = serde_json::Map::new();
        out.insert("client_id".into(), self.id.clone().into());
        out.insert("client_id_issued_at".into(), self.created_at.into());
        if let Some(name) = &m.client_name {
            out.insert("client_name".into(), name.clone().into());
        }
        out.insert("grant_types".into(), m.grant_types.clone().into());
        out.insert("response_types".into(), m.response_types.clone().into());
        out.insert("redirect_uris".into(), m.redirect_uris.clone().into());
        out.insert(
            "token_endpoint_auth_method".into(),
            m.token_endpoint_auth_method.as_str().into(),
        );
        if let Some(scopes) = &m.scopes {
            out.insert("scope".into(), scopes.join(" ").into());
        }
        if let Some(aud) = &m.audiences {
            out.insert("audiences".into(), aud.clone().into());
        }
        if let Some(rs) = &m.resource_servers {
            out.insert("resource_servers".into(), rs.clone().into());
        }
        if let Some(jwks) = &m.jwks {
            out.insert("jwks".into(), jwks.clone());
        }
        if let Some(uri) = &m.jwks_uri {
            out.insert("jwks_uri".into(), uri.clone().into());
        }
        for (k, v) in &m.extra {
            out.insert(k.clone(), v.clone());
        }
        serde_json::Value::Object(out)
    }
}

/// A generated client id: `c_` + 22 base62 characters (≈131 bits).
pub fn new_client_id() -> String {
    format!("c_{}", crate::crypto::random_base62(22))
}

/// Checks an operator-chosen client id: `[a-z0-9._-]{1,64}`, never `u_…`
/// (user subjects live in that space, docs/decisions.md "Keys, secrets and
/// identifiers").
pub fn validate_chosen_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > crate::limits::MAX_CLIENT_ID_BYTES {
        return Err("client id must be 1 to 64 characters".into());
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err("client id may contain only a-z, 0-9, '.', '_' and '-'".into());
    }
    if id.starts_with("u_") {
        return Err("client ids starting with 'u_' are reserved for users".into());
    }
    Ok(())
}

/// Whether `id` could be a client id at all: generated (`c_` + base62) and
/// chosen ids both fit `[A-Za-z0-9._-]{1,64}`. Anything else is refused before
/// any lookup, so arbitrary strings never reach the cache or the store.
pub fn plausible_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= crate::limits::MAX_CLIENT_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}
