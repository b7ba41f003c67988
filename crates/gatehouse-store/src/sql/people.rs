//! People: accounts, browser sessions and consent. Reads are shared
//! operations; the writes that must not race a password change, a user's
//! deletion or a withdrawal run inside one transaction, after the backend's
//! row locks (`Backend::lock_user_grants`, `share_rows`;
//! `postgres/locks.rs`).

use super::grants::revoke_families;
use super::{Backend, decode, list_json, map_err, stmt};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::{BrowserSession, Consent, User};
use sqlx::Pool;

const INSERT_USER: &str = "INSERT INTO users (id, name, password_hash, groups, created_at, credentials_gen) \
     VALUES ($1, $2, $3, $4, $5, $6)";
const USER_BY_ID: &str = "SELECT * FROM users WHERE id = $1";
const USER_BY_NAME: &str = "SELECT * FROM users WHERE name = $1";
const LIST_USERS: &str = "SELECT * FROM users ORDER BY name";
/// A new credential generation: every session, code and family made under
/// the old one is dead from this commit on, whenever it was (or will be)
/// stored.
const SET_PASSWORD: &str =
    "UPDATE users SET password_hash = $1, credentials_gen = credentials_gen + 1 WHERE id = $2";
const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";
const DELETE_SESSIONS_OF_USER: &str = "DELETE FROM browser_sessions WHERE user_id = $1";
const DELETE_CONSENTS_OF_USER: &str = "DELETE FROM consents WHERE user_id = $1";
/// A code issued under the old password (or to a deleted user) must not
/// become a grant.
const DELETE_CODES_OF_USER: &str =
    "DELETE FROM auth_codes WHERE user_id = $1 AND consumed_at IS NULL";
const DELETE_LINKS_OF_USER: &str = "DELETE FROM linked_identities WHERE user_id = $1";

/// Stored only while the user is at the session's credential generation.
const INSERT_SESSION: &str = "INSERT INTO browser_sessions (hash, user_id, auth_time, expires_at, credentials_gen) \
     SELECT $1, $2, $3, $4, $5 \
     WHERE EXISTS (SELECT 1 FROM users WHERE id = $2 AND credentials_gen = $5)";
/// A live session whose user is still at its credential generation.
const GET_SESSION: &str = "SELECT s.* FROM browser_sessions s \
     JOIN users u ON u.id = s.user_id AND u.credentials_gen = s.credentials_gen \
     WHERE s.hash = $1 AND s.expires_at > $2";
const DELETE_SESSION: &str = "DELETE FROM browser_sessions WHERE hash = $1";

const GET_CONSENT: &str =
    "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2 AND resource = $3";
const LIST_CONSENTS: &str =
    "SELECT * FROM consents WHERE user_id = $1 ORDER BY client_id, resource";
/// Recorded only while the user and the client exist: a consent to a client
/// deleted meanwhile would be inherited by a client created later under the
/// same id. A metadata document client (`https://…`) is never a row; its
/// id is its document's URL, which nobody else can take over.
const RECORD_CONSENT: &str = "INSERT INTO consents (user_id, client_id, resource, scopes, granted_at) \
     SELECT $1, $2, $3, $4, $5 \
     WHERE EXISTS (SELECT 1 FROM users WHERE id = $1) AND (substr($2, 1, 8) = 'https://' OR EXISTS (SELECT 1 FROM clients WHERE id = $2)) \
     ON CONFLICT (user_id, client_id, resource) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at";
const DELETE_CONSENT: &str = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2";
const DELETE_CODES_OF_CONSENT: &str =
    "DELETE FROM auth_codes WHERE user_id = $1 AND client_id = $2 AND consumed_at IS NULL";

pub(crate) async fn insert_user<D: Backend>(pool: &Pool<D>, user: &User) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    insert_user_in::<D>(&mut conn, user).await
}

/// Inserts a user on `conn` (a transaction's, or a pooled connection).
pub(crate) async fn insert_user_in<D: Backend>(
    conn: &mut D::Connection,
    user: &User,
) -> Result<(), StoreError> {
    stmt::<D>(INSERT_USER)
        .bind(&user.id)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(list_json(&user.groups)?)
        .bind(user.created_at)
        .bind(user.credentials_gen)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn get_user<D: Backend>(
    pool: &Pool<D>,
    id: &str,
) -> Result<Option<User>, StoreError> {
    one_user(pool, USER_BY_ID, id).await
}

pub(crate) async fn get_user_by_name<D: Backend>(
    pool: &Pool<D>,
    name: &str,
) -> Result<Option<User>, StoreError> {
    one_user(pool, USER_BY_NAME, name).await
}

async fn one_user<D: Backend>(
    pool: &Pool<D>,
    sql: &'static str,
    key: &str,
) -> Result<Option<User>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let row = stmt::<D>(sql).bind(key).fetch_optional(&mut *conn).await?;
    row.as_ref().map(decode::user::<D>).transpose()
}

pub(crate) async fn list_users<D: Backend>(pool: &Pool<D>) -> Result<Vec<User>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let rows = stmt::<D>(LIST_USERS).fetch_all(&mut *conn).await?;
    rows.iter().map(decode::user::<D>).collect()
}

/// The writes of a password change, in the caller's locked transaction: a
/// new credential generation, and the user's sessions, unredeemed codes and
/// grant families gone (families revoked). Whether the user exists.
pub(crate) async fn change_password<D: Backend>(
    tx: &mut D::Connection,
    id: &str,
    password_hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let updated = stmt::<D>(SET_PASSWORD)
        .bind(password_hash)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if updated > 0 {
        for sql in [DELETE_SESSIONS_OF_USER, DELETE_CODES_OF_USER] {
            stmt::<D>(sql).bind(id).execute(&mut *tx).await?;
        }
        revoke_families::<D>(tx, "user_id = $2", &[id], now).await?;
    }
    Ok(updated > 0)
}

/// The writes of a user's deletion, in the caller's locked transaction:
/// families revoked, then sessions, consents, unredeemed codes and the
/// account itself gone. Whether the user existed.
pub(crate) async fn remove_user<D: Backend>(
    tx: &mut D::Connection,
    id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    revoke_families::<D>(tx, "user_id = $2", &[id], now).await?;
    for sql in [
        DELETE_SESSIONS_OF_USER,
        DELETE_CONSENTS_OF_USER,
        DELETE_CODES_OF_USER,
        DELETE_LINKS_OF_USER,
    ] {
        stmt::<D>(sql).bind(id).execute(&mut *tx).await?;
    }
    let deleted = stmt::<D>(DELETE_USER).bind(id).execute(&mut *tx).await?;
    Ok(deleted > 0)
}

/// Stores a session if its user is still at its credential generation.
pub(crate) async fn store_session<D: Backend>(
    conn: &mut D::Connection,
    hash: &str,
    session: &BrowserSession,
) -> Result<bool, StoreError> {
    let inserted = stmt::<D>(INSERT_SESSION)
        .bind(hash)
        .bind(&session.user_id)
        .bind(session.auth_time)
        .bind(session.expires_at)
        .bind(session.credentials_gen)
        .execute(conn)
        .await?;
    Ok(inserted > 0)
}

pub(crate) async fn get_session<D: Backend>(
    pool: &Pool<D>,
    hash: &str,
    now: i64,
) -> Result<Option<BrowserSession>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let row = stmt::<D>(GET_SESSION)
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(decode::session::<D>).transpose()
}

pub(crate) async fn delete_session<D: Backend>(
    pool: &Pool<D>,
    hash: &str,
) -> Result<bool, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let deleted = stmt::<D>(DELETE_SESSION)
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    Ok(deleted > 0)
}

pub(crate) async fn get_consent<D: Backend>(
    pool: &Pool<D>,
    user_id: &str,
    client_id: &str,
    resource: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let row = stmt::<D>(GET_CONSENT)
        .bind(user_id)
        .bind(client_id)
        .bind(resource)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref()
        .map(|r| decode::list_col::<D>(r, "scopes"))
        .transpose()
}

pub(crate) async fn list_consents<D: Backend>(
    pool: &Pool<D>,
    user_id: &str,
) -> Result<Vec<Consent>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let rows = stmt::<D>(LIST_CONSENTS)
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(decode::consent::<D>).collect()
}

/// Records (or replaces) a consent while the user and the client exist.
pub(crate) async fn store_consent<D: Backend>(
    conn: &mut D::Connection,
    user_id: &str,
    client_id: &str,
    resource: &str,
    scopes: &[String],
    at: i64,
) -> Result<(), StoreError> {
    stmt::<D>(RECORD_CONSENT)
        .bind(user_id)
        .bind(client_id)
        .bind(resource)
        .bind(list_json(scopes)?)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// The writes of a withdrawal, in the caller's locked transaction: the
/// consents to the client, its unredeemed codes for the user, and its grant
/// families (revoked). How many consents there were.
pub(crate) async fn withdraw_consent<D: Backend>(
    tx: &mut D::Connection,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let forgotten = stmt::<D>(DELETE_CONSENT)
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    stmt::<D>(DELETE_CODES_OF_CONSENT)
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    revoke_families::<D>(
        tx,
        "user_id = $2 AND client_id = $3",
        &[user_id, client_id],
        now,
    )
    .await?;
    Ok(forgotten)
}

/// A password reset: the user's grants locked first
/// ([`Backend::lock_user_grants`]), then [`change_password`].
pub(crate) async fn set_user_password<D: Backend>(
    pool: &Pool<D>,
    id: &str,
    password_hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    D::lock_user_grants(&mut tx, id).await?;
    let updated = change_password::<D>(&mut tx, id, password_hash, now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(updated)
}

/// A user's deletion: the user's grants locked first, then [`remove_user`].
pub(crate) async fn delete_user<D: Backend>(
    pool: &Pool<D>,
    id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    D::lock_user_grants(&mut tx, id).await?;
    let deleted = remove_user::<D>(&mut tx, id, now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(deleted)
}

/// A withdrawal: the user's grants locked first, then [`withdraw_consent`].
pub(crate) async fn revoke_consent<D: Backend>(
    pool: &Pool<D>,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    D::lock_user_grants(&mut tx, user_id).await?;
    let forgotten = withdraw_consent::<D>(&mut tx, user_id, client_id, now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(forgotten)
}

/// A new session, under its user's row ([`Backend::share_rows`]).
pub(crate) async fn insert_session<D: Backend>(
    pool: &Pool<D>,
    hash: &str,
    session: &BrowserSession,
) -> Result<bool, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    D::share_rows(&mut tx, &session.user_id, None).await?;
    let inserted = store_session::<D>(&mut tx, hash, session).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(inserted)
}

/// A consent, under its user's and client's rows (as codes are).
pub(crate) async fn record_consent<D: Backend>(
    pool: &Pool<D>,
    user_id: &str,
    client_id: &str,
    resource: &str,
    scopes: &[String],
    at: i64,
) -> Result<(), StoreError> {
    let mut tx = D::begin_write(pool).await?;
    D::share_rows(&mut tx, user_id, Some(client_id)).await?;
    store_consent::<D>(&mut tx, user_id, client_id, resource, scopes, at).await?;
    tx.commit().await.map_err(map_err)
}
