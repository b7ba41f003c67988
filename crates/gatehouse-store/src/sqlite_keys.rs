//! Key rows in SQLite: the signing and secret-hashing keys, sealed, with
//! the conditional insert that lets processes sharing the file agree on
//! rotations.

use crate::common::{kind_from, map_err};
use crate::sqlite::record_change;
use gatehouse_oauth::cache::KEY_ENTITY;
use gatehouse_oauth::clock::system_now as now;
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::{KeyKind, StoredKey};
use sqlx::{Row, SqlitePool};

pub(crate) async fn keys(pool: &SqlitePool, kind: KeyKind) -> Result<Vec<StoredKey>, StoreError> {
    let rows =
        sqlx::query("SELECT * FROM keys WHERE kind = ? ORDER BY activate_at, created_at, id")
            .bind(kind.as_str())
            .fetch_all(pool)
            .await
            .map_err(map_err)?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("kind").map_err(map_err)?;
            Ok(StoredKey {
                id: r.try_get("id").map_err(map_err)?,
                kind: kind_from(&kind)?,
                alg: r.try_get("alg").map_err(map_err)?,
                sealed: r.try_get("sealed").map_err(map_err)?,
                created_at: r.try_get("created_at").map_err(map_err)?,
                activate_at: r.try_get("activate_at").map_err(map_err)?,
            })
        })
        .collect()
}

/// One `INSERT … SELECT … WHERE NOT EXISTS` inside `BEGIN IMMEDIATE`:
/// the transaction holds SQLite's single write lock from its start, so
/// no other writer (another store on the same file included) can insert
/// between the check and the insert.
pub(crate) async fn insert_key_unless_newer(
    pool: &SqlitePool,
    key: &StoredKey,
    newer_than: i64,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
    let inserted = sqlx::query(
        "INSERT INTO keys (id, kind, alg, sealed, created_at, activate_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6 \
         WHERE NOT EXISTS (SELECT 1 FROM keys WHERE kind = ?2 AND alg = ?3 AND activate_at > ?7) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&key.id)
    .bind(key.kind.as_str())
    .bind(&key.alg)
    .bind(&key.sealed)
    .bind(key.created_at)
    .bind(key.activate_at)
    .bind(newer_than)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    if inserted > 0 {
        record_change(&mut tx, KEY_ENTITY, &key.id, now()).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(inserted > 0)
}

pub(crate) async fn delete_key(pool: &SqlitePool, id: &str) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    let deleted = sqlx::query("DELETE FROM keys WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    if deleted > 0 {
        record_change(&mut tx, KEY_ENTITY, id, now()).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(deleted > 0)
}
