//! The change log's readers, shared. Appending is per backend, since the
//! numbering differs (`sqlite/changes.rs`, `postgres/changes.rs`).

use super::{Backend, decode, map_err, stmt};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::Change;
use sqlx::Pool;

const LATEST: &str = "SELECT MAX(seq) AS seq FROM changes";
const SINCE: &str =
    "SELECT seq, entity, entity_id FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2";
/// Keeps the newest entry whatever its age, so the latest sequence number
/// never goes back.
const PRUNE: &str = "DELETE FROM changes WHERE at < $1 AND seq < (SELECT MAX(seq) FROM changes)";

pub(crate) async fn latest_change<D: Backend>(pool: &Pool<D>) -> Result<i64, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let seq: Option<i64> = stmt::<D>(LATEST).fetch_value(&mut *conn, "seq").await?;
    Ok(seq.unwrap_or(0))
}

pub(crate) async fn changes_since<D: Backend>(
    pool: &Pool<D>,
    seq: i64,
    limit: u32,
) -> Result<Vec<Change>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let rows = stmt::<D>(SINCE)
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(decode::change::<D>).collect()
}

pub(crate) async fn prune_changes<D: Backend>(
    pool: &Pool<D>,
    before: i64,
) -> Result<u64, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    stmt::<D>(PRUNE).bind(before).execute(&mut *conn).await
}
