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

/// A per-address cap as SQL's signed integer (a cap beyond it is no cap).
pub(crate) fn cap_value(max: u64) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
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
        "gateway_session" => Ok(KeyKind::GatewaySession),
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

/// A list (groups, scopes, resources) as the JSON array text it is stored as.
pub(crate) fn list_json(list: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(list).map_err(corrupt)
}

/// A stored JSON array of strings; anything else is `Corrupt`.
pub(crate) fn list_from(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
}

/// Whether the grant family `f` is still bound to what it was made under:
/// its user is still at the family's credential generation and still
/// consents to its client (a condition on `grant_families f`).
pub(crate) const FAMILY_BOUND: &str = "EXISTS (SELECT 1 FROM users u \
     WHERE u.id = f.user_id AND u.credentials_gen = f.credentials_gen) \
     AND EXISTS (SELECT 1 FROM consents c WHERE c.user_id = f.user_id AND c.client_id = f.client_id)";

/// The same for an unredeemed code (a condition on `auth_codes`): checked
/// in the statement that consumes it.
pub(crate) const CODE_BOUND: &str = "EXISTS (SELECT 1 FROM users u \
     WHERE u.id = auth_codes.user_id AND u.credentials_gen = auth_codes.credentials_gen) \
     AND EXISTS (SELECT 1 FROM consents c \
     WHERE c.user_id = auth_codes.user_id AND c.client_id = auth_codes.client_id)";

/// The family columns, the refresh-token columns (prefixed `r_`, as both
/// tables have `expires_at`) and whether the family is still bound
/// (`f_bound`, 1 or 0; see [`FAMILY_BOUND`]) that a refresh-token lookup
/// selects.
pub(crate) fn refresh_with_family_sql() -> String {
    format!(
        "SELECT r.hash AS r_hash, r.family_id AS r_family_id, \
         r.expires_at AS r_expires_at, r.used_at AS r_used_at, f.*, \
         CAST(CASE WHEN {FAMILY_BOUND} THEN 1 ELSE 0 END AS BIGINT) AS f_bound \
         FROM refresh_tokens r JOIN grant_families f ON f.id = r.family_id"
    )
}

/// Row decoders for the people tables, expanded once per backend's row type
/// (sqlx has no row trait that both `SqliteRow` and `PgRow` decode through
/// without a long list of bounds). Every column goes through `try_get` and
/// every JSON column through [`list_from`]: a row that does not decode is an
/// error, never a panic.
macro_rules! people_decoders {
    ($row:ty) => {
        fn col<'r, T>(row: &'r $row, name: &str) -> Result<T, StoreError>
        where
            T: sqlx::Decode<'r, <$row as sqlx::Row>::Database>
                + sqlx::Type<<$row as sqlx::Row>::Database>,
        {
            sqlx::Row::try_get(row, name).map_err(crate::common::map_err)
        }

        fn list_col(row: &$row, name: &str) -> Result<Vec<String>, StoreError> {
            crate::common::list_from(&col::<String>(row, name)?)
        }

        fn user_from_row(row: &$row) -> Result<User, StoreError> {
            Ok(User {
                id: col(row, "id")?,
                name: col(row, "name")?,
                password_hash: col(row, "password_hash")?,
                groups: list_col(row, "groups")?,
                created_at: col(row, "created_at")?,
                credentials_gen: col(row, "credentials_gen")?,
            })
        }

        fn consent_from_row(row: &$row) -> Result<Consent, StoreError> {
            Ok(Consent {
                client_id: col(row, "client_id")?,
                resource: col(row, "resource")?,
                scopes: list_col(row, "scopes")?,
                granted_at: col(row, "granted_at")?,
            })
        }

        fn session_from_row(row: &$row) -> Result<BrowserSession, StoreError> {
            Ok(BrowserSession {
                user_id: col(row, "user_id")?,
                auth_time: col(row, "auth_time")?,
                expires_at: col(row, "expires_at")?,
                credentials_gen: col(row, "credentials_gen")?,
            })
        }

        fn code_from_row(row: &$row) -> Result<AuthCode, StoreError> {
            Ok(AuthCode {
                hash: col(row, "hash")?,
                family_id: col(row, "family_id")?,
                client_id: col(row, "client_id")?,
                user_id: col(row, "user_id")?,
                redirect_uri: col(row, "redirect_uri")?,
                code_challenge: col(row, "code_challenge")?,
                scopes: list_col(row, "scopes")?,
                resources: list_col(row, "resources")?,
                nonce: col(row, "nonce")?,
                auth_time: col(row, "auth_time")?,
                expires_at: col(row, "expires_at")?,
                credentials_gen: col(row, "credentials_gen")?,
            })
        }

        fn family_from_row(row: &$row) -> Result<GrantFamily, StoreError> {
            Ok(GrantFamily {
                id: col(row, "id")?,
                client_id: col(row, "client_id")?,
                user_id: col(row, "user_id")?,
                scopes: list_col(row, "scopes")?,
                resources: list_col(row, "resources")?,
                auth_time: col(row, "auth_time")?,
                created_at: col(row, "created_at")?,
                expires_at: col(row, "expires_at")?,
                revoked: col::<Option<i64>>(row, "revoked_at")?.is_some(),
                credentials_gen: col(row, "credentials_gen")?,
            })
        }

        /// A row of [`refresh_with_family_sql`](crate::common::refresh_with_family_sql):
        /// a family no longer bound reads as revoked.
        fn refresh_with_family(row: &$row) -> Result<(RefreshToken, GrantFamily), StoreError> {
            let token = RefreshToken {
                hash: col(row, "r_hash")?,
                family_id: col(row, "r_family_id")?,
                expires_at: col(row, "r_expires_at")?,
                used_at: col(row, "r_used_at")?,
            };
            let mut family = family_from_row(row)?;
            family.revoked |= col::<i64>(row, "f_bound")? == 0;
            Ok((token, family))
        }
    };
}
pub(crate) use people_decoders;
