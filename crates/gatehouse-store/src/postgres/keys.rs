//! A new key where PostgreSQL differs: its table lock.

use crate::sql::{Backend, keys, map_err};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::StoredKey;
use sqlx::{PgPool, Postgres};

/// Under READ COMMITTED, `INSERT … WHERE NOT EXISTS` alone is not
/// atomic: two transactions may both see no newer key and both insert.
/// So the transaction first takes `SHARE ROW EXCLUSIVE` on `keys`, which
/// conflicts with itself and with every writer's `ROW EXCLUSIVE`, but not
/// with readers' `ACCESS SHARE`: key writers queue, token requests never
/// wait. The INSERT's snapshot is taken after the lock is granted, so it
/// sees the key a previous holder committed. Lock order is always `keys`
/// then `changes` (in `changes.rs`), so no two writers deadlock.
pub(super) async fn insert_key_unless_newer(
    pool: &PgPool,
    key: &StoredKey,
    newer_than: i64,
) -> Result<bool, StoreError> {
    let mut tx = Postgres::begin_write(pool).await?;
    sqlx::query("LOCK TABLE keys IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    keys::insert_unless_newer(tx, key, newer_than).await
}
