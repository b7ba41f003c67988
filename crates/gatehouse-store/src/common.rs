//! Conversions shared by the SQL backends: both store clients as JSON text
//! columns and keys with the same kinds, so decoding lives in one place.

use gatehouse_oauth::client::{Client, ClientMetadata, ClientOrigin, StoredSecret};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::KeyKind;

/// A unique-key violation is the caller's `Conflict` (e.g. a taken client
/// id); every other database error means the store cannot answer now.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

pub(crate) fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(crate) fn origin_from(s: &str) -> Result<ClientOrigin, StoreError> {
    match s {
        "cli" => Ok(ClientOrigin::Cli),
        "dynamic" => Ok(ClientOrigin::Dynamic),
        other => Err(StoreError::Corrupt(format!(
            "unknown client origin {other:?}"
        ))),
    }
}

pub(crate) fn kind_from(s: &str) -> Result<KeyKind, StoreError> {
    match s {
        "signing" => Ok(KeyKind::Signing),
        "secret_hmac" => Ok(KeyKind::SecretHmac),
        other => Err(StoreError::Corrupt(format!("unknown key kind {other:?}"))),
    }
}

pub(crate) fn registration_token_json(c: &Client) -> Result<Option<String>, StoreError> {
    c.registration_token
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(corrupt)
}

/// The columns of a `clients` row, as both backends read them.
pub(crate) struct ClientRow {
    pub id: String,
    pub origin: String,
    pub metadata: String,
    pub secrets: String,
    pub created_at: i64,
    pub registration_token: Option<String>,
    pub revision: i64,
}

impl ClientRow {
    /// Decodes the JSON columns; a row that does not decode is `Corrupt`
    /// rather than a panic, since the database is outside our control.
    pub fn into_client(self) -> Result<Client, StoreError> {
        Ok(Client {
            id: self.id,
            origin: origin_from(&self.origin)?,
            metadata: serde_json::from_str::<ClientMetadata>(&self.metadata).map_err(corrupt)?,
            secrets: serde_json::from_str::<Vec<StoredSecret>>(&self.secrets).map_err(corrupt)?,
            created_at: self.created_at,
            registration_token: self
                .registration_token
                .map(|t| serde_json::from_str::<StoredSecret>(&t))
                .transpose()
                .map_err(corrupt)?,
            revision: self.revision,
        })
    }
}
