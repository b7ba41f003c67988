//! Grants where SQLite differs from PostgreSQL only in what it locks:
//! here, `BEGIN IMMEDIATE` (the single writer) and nothing more.

use crate::sql::grants::{self, FAMILY_LIVE};
use crate::sql::{Backend, map_err, stmt};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::{AuthCode, GrantFamily, IssuedToken, Redeemed, RefreshToken};
use sqlx::{Sqlite, SqlitePool};

/// One statement, on its own.
pub(super) async fn insert_code(pool: &SqlitePool, code: &AuthCode) -> Result<bool, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    grants::store_code::<Sqlite>(&mut conn, code).await
}

pub(super) async fn redeem_code(
    pool: &SqlitePool,
    hash: &str,
    now: i64,
    family: &GrantFamily,
    refresh: Option<&RefreshToken>,
    access: &IssuedToken,
) -> Result<Redeemed, StoreError> {
    let tx = Sqlite::begin_write(pool).await?;
    grants::redeem(tx, hash, now, family, refresh, access).await
}

/// The family's liveness and the successor's insert under one write lock.
pub(super) async fn extend_family(
    pool: &SqlitePool,
    family_id: &str,
    now: i64,
    successor: &RefreshToken,
    access: &IssuedToken,
) -> Result<bool, StoreError> {
    let mut tx = Sqlite::begin_write(pool).await?;
    let live = stmt::<Sqlite>(FAMILY_LIVE)
        .bind(family_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if live {
        grants::extend::<Sqlite>(&mut tx, family_id, now, successor, access).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(live)
}
