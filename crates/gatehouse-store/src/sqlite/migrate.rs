//! Migrations for SQLite. Per backend: sqlx takes no lock for SQLite, so
//! this one takes a file lock.

use crate::sql::map_err;
use gatehouse_oauth::error::StoreError;
use sqlx::SqlitePool;
use std::path::Path;

/// Two processes opening one data directory at once (a server and an
/// admin command, say) would both find a migration missing and the
/// second would fail on "table already exists". So migrations run under an
/// exclusive lock on a file beside the database, held until this returns.
/// Answers the versions this call applied.
pub(super) async fn migrate(pool: &SqlitePool, path: &Path) -> Result<Vec<i64>, StoreError> {
    let _lock = migration_lock(path).await?;
    let before = applied_versions(pool).await?;
    sqlx::migrate!("./migrations/sqlite")
        .run(pool)
        .await
        .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
    let after = applied_versions(pool).await?;
    Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
}

/// Versions this build knows that the store has not applied.
pub(super) async fn pending(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
    let applied = applied_versions(pool).await?;
    Ok(sqlx::migrate!("./migrations/sqlite")
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect())
}

/// An exclusive lock on `<database>.migrate-lock` (released when the
/// returned file is dropped). The lock is advisory and per open file, so
/// it also orders two stores within one process.
async fn migration_lock(database: &Path) -> Result<std::fs::File, StoreError> {
    let path = database.with_extension("migrate-lock");
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                // Say why the start pauses (another command holds it).
                tracing::info!(
                    lock = %path.display(),
                    "waiting for another gatehouse process to finish migrating"
                );
                file.lock()?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("migration lock: {e}")))?;
    locked.map_err(|e| StoreError::Unavailable(format!("migration lock: {e}")))
}

/// Versions sqlx has recorded as applied (none before the first migration).
async fn applied_versions(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
    let exists: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(map_err)
}
