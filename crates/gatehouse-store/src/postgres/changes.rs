//! Appending to the change log. Per backend because the numbering differs:
//! PostgreSQL numbers rows when `nextval` runs, not when they commit.

use crate::sql::map_err;
use gatehouse_oauth::clock::system_now as now;
use gatehouse_oauth::error::StoreError;
use sqlx::PgConnection;

/// Appends one change per id of `entity` (`client` or `key`), as the last
/// statement before COMMIT.
///
/// `BIGSERIAL` numbers rows when `nextval` runs, not when they commit: with
/// two writers, seq 8 may commit before seq 7, and a cache that read 8 and
/// moved its cursor past 7 would never see 7. So these transactions take
/// `EXCLUSIVE` on `changes` first: it conflicts with itself (writers queue)
/// but not with the `ACCESS SHARE` of readers. The lock is held until COMMIT,
/// and PostgreSQL makes a commit visible before it releases the locks, so the
/// next writer draws its number only after the previous one is visible —
/// numbers are committed in order. Taken last so it is held for one insert.
pub(super) async fn record_changes(
    tx: &mut PgConnection,
    entity: &str,
    ids: &[String],
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("LOCK TABLE changes IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    sqlx::query(
        "INSERT INTO changes (entity, entity_id, at) SELECT $3, id, $2 FROM unnest($1::text[]) WITH ORDINALITY AS t(id, n) ORDER BY n",
    )
    .bind(ids)
    .bind(now())
    .bind(entity)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}
