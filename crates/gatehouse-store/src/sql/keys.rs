//! Keys: the signing and secret-hashing keys, sealed. Reading and deleting
//! are shared; a new key's insert is the shared [`insert_unless_newer`]
//! after a per-backend lock (`sqlite/keys.rs`, `postgres/keys.rs`).

use super::{Backend, decode, map_err, stmt};
use gatehouse_oauth::cache::KEY_ENTITY;
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::{KeyKind, StoredKey};
use sqlx::{Pool, Transaction};

const BY_KIND: &str = "SELECT * FROM keys WHERE kind = $1 ORDER BY activate_at, created_at, id";
const DELETE: &str = "DELETE FROM keys WHERE id = $1";
/// Inserts the key unless one of its kind and algorithm activates after
/// `$7`: atomic only while no other writer can insert between the check and
/// the insert, which is what each backend's lock is for.
const INSERT_UNLESS_NEWER: &str = "INSERT INTO keys (id, kind, alg, sealed, created_at, activate_at) \
     SELECT $1, $2, $3, $4, $5, $6 \
     WHERE NOT EXISTS (SELECT 1 FROM keys WHERE kind = $2 AND alg = $3 AND activate_at > $7) \
     ON CONFLICT DO NOTHING";

pub(crate) async fn keys<D: Backend>(
    pool: &Pool<D>,
    kind: KeyKind,
) -> Result<Vec<StoredKey>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let rows = stmt::<D>(BY_KIND)
        .bind(kind.as_str())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(decode::key::<D>).collect()
}

pub(crate) async fn delete_key<D: Backend>(pool: &Pool<D>, id: &str) -> Result<bool, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    let deleted = stmt::<D>(DELETE).bind(id).execute(&mut *tx).await?;
    if deleted > 0 {
        D::record_changes(&mut *tx, KEY_ENTITY, &[id.to_string()]).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(deleted > 0)
}

/// The insert itself, inside `tx` once the backend holds its lock; commits.
pub(crate) async fn insert_unless_newer<D: Backend>(
    mut tx: Transaction<'static, D>,
    key: &StoredKey,
    newer_than: i64,
) -> Result<bool, StoreError> {
    let inserted = stmt::<D>(INSERT_UNLESS_NEWER)
        .bind(&key.id)
        .bind(key.kind.as_str())
        .bind(&key.alg)
        .bind(&key.sealed)
        .bind(key.created_at)
        .bind(key.activate_at)
        .bind(newer_than)
        .execute(&mut *tx)
        .await?;
    if inserted > 0 {
        D::record_changes(&mut *tx, KEY_ENTITY, std::slice::from_ref(&key.id)).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(inserted > 0)
}
