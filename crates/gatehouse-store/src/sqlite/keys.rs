//! A new key where SQLite differs: its lock.

use crate::sql::{Backend, keys};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::StoredKey;
use sqlx::{Sqlite, SqlitePool};

/// The shared `INSERT … SELECT … WHERE NOT EXISTS` inside `BEGIN
/// IMMEDIATE`: the transaction holds SQLite's single write lock from its
/// start, so no other writer (another store on the same file included) can
/// insert between the check and the insert.
pub(super) async fn insert_key_unless_newer(
    pool: &SqlitePool,
    key: &StoredKey,
    newer_than: i64,
) -> Result<bool, StoreError> {
    let tx = Sqlite::begin_write(pool).await?;
    keys::insert_unless_newer(tx, key, newer_than).await
}
