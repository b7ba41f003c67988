//! Migrations for PostgreSQL. Per backend: replicas serialise on an
//! advisory lock keyed on the database and schema.
//!
//! Two replicas starting together do not race: migrations run on one
//! connection holding a session advisory lock keyed on the database and
//! schema (so separate schemas migrate independently), and the versions
//! already applied are read under that lock, so the answer is exactly what
//! this call applied. That connection has no `statement_timeout`: waiting
//! for another replica's migration, or a long index build, is not a failure.

use crate::sql::map_err;
use gatehouse_oauth::error::StoreError;
use sqlx::postgres::PgConnection;

/// The advisory lock key for migrating this database and schema.
const MIGRATION_LOCK_KEY: &str =
    "hashtextextended('gatehouse-migrate|' || current_database() || '|' || current_schema(), 0)";

/// `Store::migrate` on one dedicated connection, which the caller closes.
pub(super) async fn migrate_on(conn: &mut PgConnection) -> Result<Vec<i64>, StoreError> {
    let fail = |e: sqlx::Error| StoreError::Unavailable(format!("migration failed: {e}"));
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await
        .map_err(fail)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"
    )))
    .execute(&mut *conn)
    .await
    .map_err(fail)?;
    let result = async {
        let before = applied_versions(&mut *conn).await?;
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        // Our lock replaces sqlx's (keyed on the database alone).
        migrator.set_locking(false);
        // `run_direct`, not `run`: sqlx's own way around `Acquire`'s
        // lifetime bound inside `async_trait` futures ("not general enough").
        migrator
            .run_direct(None, &mut *conn, false)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let after = applied_versions(&mut *conn).await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }
    .await;
    // Closing the connection would release the lock too; say so explicitly.
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"
    )))
    .execute(&mut *conn)
    .await;
    result
}

/// Versions this build knows that the store has not applied.
pub(super) async fn pending(conn: &mut PgConnection) -> Result<Vec<i64>, StoreError> {
    let applied = applied_versions(conn).await?;
    Ok(sqlx::migrate!("./migrations/postgres")
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect())
}

/// Versions sqlx has recorded as applied (none before the first migration).
async fn applied_versions(conn: &mut PgConnection) -> Result<Vec<i64>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)
}
