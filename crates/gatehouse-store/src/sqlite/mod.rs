//! The embedded SQLite store.
//!
//! SQLite has one writer at a time: every write that decides something (a
//! code's or refresh token's first use, a family's liveness, a new key)
//! runs in `BEGIN IMMEDIATE`, so the transaction holds the write lock from
//! its start and no other writer — another store on the same file included
//! — runs between its check and its writes; the decision itself is one
//! conditional statement. The statements are shared with PostgreSQL
//! (`crate::sql`); this directory holds only what SQLite does differently,
//! in files named like PostgreSQL's: `changes.rs` (numbering), `clients.rs`,
//! `keys.rs` (what runs where the locking differs) and `migrate.rs`. The
//! row locks PostgreSQL takes before people's grants are no-ops here
//! (`Backend::lock_user_grants`, `share_rows`): the write lock already
//! excludes every other writer.

mod changes;
mod clients;
mod keys;
mod migrate;

use crate::sql::{Backend, map_err};
use gatehouse_oauth::error::StoreError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let store = SqliteStore::connect(path).await?;
        store.migrate_schema().await?;
        Ok(store)
    }

    /// Opens (creating if needed) the database at `path` without touching
    /// its schema; [`Store::migrate`](gatehouse_oauth::store::Store::migrate)
    /// brings it up to date.
    pub async fn connect(path: &Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(SqliteStore {
            pool,
            path: path.to_path_buf(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn describe_store(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    async fn migrate_schema(&self) -> Result<Vec<i64>, StoreError> {
        migrate::migrate(&self.pool, &self.path).await
    }

    async fn pending_schema(&self) -> Result<Vec<i64>, StoreError> {
        migrate::pending(&self.pool).await
    }
}

impl Backend for Sqlite {
    async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
        pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)
    }

    async fn record_changes(
        tx: &mut SqliteConnection,
        entity: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        changes::record_changes(tx, entity, ids).await
    }

    async fn forget_clients(
        tx: &mut SqliteConnection,
        ids: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        clients::forget_clients(tx, ids, now).await
    }

    async fn lock_user_grants(_: &mut SqliteConnection, _: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn share_rows(
        _: &mut SqliteConnection,
        _: &str,
        _: Option<&str>,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    const FAMILY_LIVE_LOCKED: &'static str = crate::sql::grants::FAMILY_LIVE;
}

crate::sql::impl_store!(SqliteStore);
