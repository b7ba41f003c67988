//! Appending to the change log. Per backend because the numbering differs:
//! SQLite's single writer assigns `seq` inside the write lock, so entries
//! are numbered in commit order with a plain insert.

use crate::sql::stmt;
use gatehouse_oauth::clock::system_now as now;
use gatehouse_oauth::error::StoreError;
use sqlx::{Sqlite, SqliteConnection};

const APPEND: &str = "INSERT INTO changes (entity, entity_id, at) VALUES ($1, $2, $3)";

/// One entry per id of `entity`, inside the caller's transaction.
pub(super) async fn record_changes(
    tx: &mut SqliteConnection,
    entity: &str,
    ids: &[String],
) -> Result<(), StoreError> {
    let at = now();
    for id in ids {
        stmt::<Sqlite>(APPEND)
            .bind(entity)
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
