//! Rows into records, for either driver. Every column goes through
//! [`Driver::get`] and every JSON column through [`list_from`] or serde: a
//! row that does not decode is an error (`Corrupt` for bad JSON or an unknown
//! name), never a panic, since the database is outside our control.

use super::driver::Col;
use super::{Driver, corrupt, list_from};
use gatehouse_oauth::client::{Client, ClientMetadata, ClientOrigin, StoredSecret};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::{
    AuthCode, BrowserSession, Consent, FederatedLogin, GrantFamily, LinkedIdentity, RefreshToken,
    User,
};
use gatehouse_oauth::store::{Change, KeyKind, StoredKey};

fn col<D: Driver, T: Col>(row: &D::Row, name: &str) -> Result<T, StoreError> {
    D::get(row, name)
}

/// A JSON array column.
pub(crate) fn list_col<D: Driver>(row: &D::Row, name: &str) -> Result<Vec<String>, StoreError> {
    list_from(&col::<D, String>(row, name)?)
}

fn origin_from(s: &str) -> Result<ClientOrigin, StoreError> {
    match s {
        "cli" => Ok(ClientOrigin::Cli),
        "dynamic" => Ok(ClientOrigin::Dynamic),
        other => Err(StoreError::Corrupt(format!(
            "unknown client origin {other:?}"
        ))),
    }
}

fn kind_from(s: &str) -> Result<KeyKind, StoreError> {
    match s {
        "signing" => Ok(KeyKind::Signing),
        "secret_hmac" => Ok(KeyKind::SecretHmac),
        "gateway_session" => Ok(KeyKind::GatewaySession),
        other => Err(StoreError::Corrupt(format!("unknown key kind {other:?}"))),
    }
}

pub(crate) fn client<D: Driver>(row: &D::Row) -> Result<Client, StoreError> {
    let metadata: String = col::<D, _>(row, "metadata")?;
    let secrets: String = col::<D, _>(row, "secrets")?;
    let token: Option<String> = col::<D, _>(row, "registration_token")?;
    Ok(Client {
        id: col::<D, _>(row, "id")?,
        origin: origin_from(&col::<D, String>(row, "origin")?)?,
        metadata: serde_json::from_str::<ClientMetadata>(&metadata).map_err(corrupt)?,
        secrets: serde_json::from_str::<Vec<StoredSecret>>(&secrets).map_err(corrupt)?,
        created_at: col::<D, _>(row, "created_at")?,
        registration_token: token
            .map(|t| serde_json::from_str::<StoredSecret>(&t))
            .transpose()
            .map_err(corrupt)?,
        revision: col::<D, _>(row, "revision")?,
    })
}

pub(crate) fn key<D: Driver>(row: &D::Row) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        id: col::<D, _>(row, "id")?,
        kind: kind_from(&col::<D, String>(row, "kind")?)?,
        alg: col::<D, _>(row, "alg")?,
        sealed: col::<D, _>(row, "sealed")?,
        created_at: col::<D, _>(row, "created_at")?,
        activate_at: col::<D, _>(row, "activate_at")?,
    })
}

pub(crate) fn change<D: Driver>(row: &D::Row) -> Result<Change, StoreError> {
    Ok(Change {
        seq: col::<D, _>(row, "seq")?,
        entity: col::<D, _>(row, "entity")?,
        entity_id: col::<D, _>(row, "entity_id")?,
    })
}

pub(crate) fn user<D: Driver>(row: &D::Row) -> Result<User, StoreError> {
    Ok(User {
        id: col::<D, _>(row, "id")?,
        name: col::<D, _>(row, "name")?,
        password_hash: col::<D, _>(row, "password_hash")?,
        groups: list_col::<D>(row, "groups")?,
        created_at: col::<D, _>(row, "created_at")?,
        credentials_gen: col::<D, _>(row, "credentials_gen")?,
    })
}

pub(crate) fn consent<D: Driver>(row: &D::Row) -> Result<Consent, StoreError> {
    Ok(Consent {
        client_id: col::<D, _>(row, "client_id")?,
        resource: col::<D, _>(row, "resource")?,
        scopes: list_col::<D>(row, "scopes")?,
        granted_at: col::<D, _>(row, "granted_at")?,
    })
}

pub(crate) fn session<D: Driver>(row: &D::Row) -> Result<BrowserSession, StoreError> {
    Ok(BrowserSession {
        user_id: col::<D, _>(row, "user_id")?,
        auth_time: col::<D, _>(row, "auth_time")?,
        expires_at: col::<D, _>(row, "expires_at")?,
        credentials_gen: col::<D, _>(row, "credentials_gen")?,
    })
}

pub(crate) fn code<D: Driver>(row: &D::Row) -> Result<AuthCode, StoreError> {
    Ok(AuthCode {
        hash: col::<D, _>(row, "hash")?,
        family_id: col::<D, _>(row, "family_id")?,
        client_id: col::<D, _>(row, "client_id")?,
        user_id: col::<D, _>(row, "user_id")?,
        redirect_uri: col::<D, _>(row, "redirect_uri")?,
        code_challenge: col::<D, _>(row, "code_challenge")?,
        scopes: list_col::<D>(row, "scopes")?,
        resources: list_col::<D>(row, "resources")?,
        nonce: col::<D, _>(row, "nonce")?,
        auth_time: col::<D, _>(row, "auth_time")?,
        expires_at: col::<D, _>(row, "expires_at")?,
        credentials_gen: col::<D, _>(row, "credentials_gen")?,
    })
}

pub(crate) fn family<D: Driver>(row: &D::Row) -> Result<GrantFamily, StoreError> {
    Ok(GrantFamily {
        id: col::<D, _>(row, "id")?,
        client_id: col::<D, _>(row, "client_id")?,
        user_id: col::<D, _>(row, "user_id")?,
        scopes: list_col::<D>(row, "scopes")?,
        resources: list_col::<D>(row, "resources")?,
        auth_time: col::<D, _>(row, "auth_time")?,
        created_at: col::<D, _>(row, "created_at")?,
        expires_at: col::<D, _>(row, "expires_at")?,
        revoked: col::<D, Option<i64>>(row, "revoked_at")?.is_some(),
        credentials_gen: col::<D, _>(row, "credentials_gen")?,
    })
}

/// A row of [`grants::REFRESH_WITH_FAMILY`](super::grants::REFRESH_WITH_FAMILY):
/// a family no longer bound reads as revoked.
pub(crate) fn refresh_with_family<D: Driver>(
    row: &D::Row,
) -> Result<(RefreshToken, GrantFamily), StoreError> {
    let token = RefreshToken {
        hash: col::<D, _>(row, "r_hash")?,
        family_id: col::<D, _>(row, "r_family_id")?,
        expires_at: col::<D, _>(row, "r_expires_at")?,
        used_at: col::<D, _>(row, "r_used_at")?,
    };
    let mut family = family::<D>(row)?;
    family.revoked |= col::<D, i64>(row, "f_bound")? == 0;
    Ok((token, family))
}

pub(crate) fn linked_identity<D: Driver>(row: &D::Row) -> Result<LinkedIdentity, StoreError> {
    Ok(LinkedIdentity {
        provider: col::<D, _>(row, "provider")?,
        subject: col::<D, _>(row, "subject")?,
        user_id: col::<D, _>(row, "user_id")?,
        email: col::<D, _>(row, "email")?,
        email_verified: col::<D, _>(row, "email_verified")?,
        linked_at: col::<D, _>(row, "linked_at")?,
        last_sign_in_at: col::<D, _>(row, "last_sign_in_at")?,
    })
}

pub(crate) fn federated_login<D: Driver>(row: &D::Row) -> Result<FederatedLogin, StoreError> {
    Ok(FederatedLogin {
        hash: col::<D, _>(row, "hash")?,
        provider: col::<D, _>(row, "provider")?,
        browser: col::<D, _>(row, "browser")?,
        request: col::<D, _>(row, "request")?,
        expires_at: col::<D, _>(row, "expires_at")?,
    })
}
