//! People writes where SQLite differs from PostgreSQL only in what it
//! locks: here, nothing beyond `BEGIN IMMEDIATE` (the single writer). A
//! binding (credential generation, consent) is checked in the statement
//! that inserts, which the single writer makes atomic with respect to any
//! reset or withdrawal.

use crate::sql::{Backend, map_err, people};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::BrowserSession;
use sqlx::{Sqlite, SqlitePool};

pub(super) async fn set_user_password(
    pool: &SqlitePool,
    id: &str,
    password_hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = Sqlite::begin_write(pool).await?;
    let updated = people::change_password::<Sqlite>(&mut tx, id, password_hash, now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(updated)
}

pub(super) async fn delete_user(pool: &SqlitePool, id: &str, now: i64) -> Result<bool, StoreError> {
    let mut tx = Sqlite::begin_write(pool).await?;
    let deleted = people::remove_user::<Sqlite>(&mut tx, id, now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(deleted)
}

pub(super) async fn revoke_consent(
    pool: &SqlitePool,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let mut tx = Sqlite::begin_write(pool).await?;
    let forgotten = people::withdraw_consent::<Sqlite>(&mut tx, user_id, client_id, now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(forgotten)
}

/// One statement, on its own.
pub(super) async fn insert_session(
    pool: &SqlitePool,
    hash: &str,
    session: &BrowserSession,
) -> Result<bool, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    people::store_session::<Sqlite>(&mut conn, hash, session).await
}

/// One statement, on its own.
pub(super) async fn record_consent(
    pool: &SqlitePool,
    user_id: &str,
    client_id: &str,
    resource: &str,
    scopes: &[String],
    at: i64,
) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    people::store_consent::<Sqlite>(&mut conn, user_id, client_id, resource, scopes, at).await
}
