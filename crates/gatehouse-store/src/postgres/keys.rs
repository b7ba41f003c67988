//! Key rows in PostgreSQL: the signing and secret-hashing keys, sealed, with
//! the conditional insert that lets replicas agree on rotations.

use super::record_changes;
use crate::common::{kind_from, map_err};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::{KeyKind, StoredKey};
use sqlx::{PgPool, Row};

use gatehouse_oauth::cache::KEY_ENTITY as KEY;

pub(super) async fn keys(pool: &PgPool, kind: KeyKind) -> Result<Vec<StoredKey>, StoreError> {
    let rows =
        sqlx::query("SELECT * FROM keys WHERE kind = $1 ORDER BY activate_at, created_at, id")
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

/// Under READ COMMITTED, `INSERT … WHERE NOT EXISTS` alone is not
/// atomic: two transactions may both see no newer key and both insert.
/// So the transaction first takes `SHARE ROW EXCLUSIVE` on `keys`, which
/// conflicts with itself and with every writer's `ROW EXCLUSIVE`, but not
/// with readers' `ACCESS SHARE`: key writers queue, token requests never
/// wait. The INSERT's snapshot is taken after the lock is granted, so it
/// sees the key a previous holder committed. Lock order is always `keys`
/// then `changes` (in [`record_changes`]), so no two writers deadlock.
pub(super) async fn insert_key_unless_newer(
    pool: &PgPool,
    key: &StoredKey,
    newer_than: i64,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    sqlx::query("LOCK TABLE keys IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    let inserted = sqlx::query(
        "INSERT INTO keys (id, kind, alg, sealed, created_at, activate_at) \
         SELECT $1, $2, $3, $4, $5, $6 \
         WHERE NOT EXISTS (SELECT 1 FROM keys WHERE kind = $2 AND alg = $3 AND activate_at > $7) \
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
        record_changes(&mut tx, KEY, std::slice::from_ref(&key.id)).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(inserted > 0)
}

pub(super) async fn delete_key(pool: &PgPool, id: &str) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    let deleted = sqlx::query("DELETE FROM keys WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    if deleted > 0 {
        record_changes(&mut tx, KEY, &[id.to_string()]).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(deleted > 0)
}
