//! The PostgreSQL store, for several replicas sharing one database.
//!
//! Every guarantee the Store trait documents is enforced in SQL, never by a
//! read-then-write in the process, because two replicas may race:
//! - single-use values (assertion `jti`s, revocations) are
//!   `INSERT … ON CONFLICT DO NOTHING` and judged by `rows_affected`;
//! - a new key is inserted only while no newer one exists, under a table
//!   lock (see `keys.rs`);
//! - `update_client` is a compare-and-set on `(revision, created_at)`;
//! - codes and refresh tokens are consumed by one conditional UPDATE, and a
//!   grant family's liveness is checked under its row lock (see `locks.rs`);
//! - the change log is numbered in commit order (see `changes.rs`).
//!
//! The statements are shared with SQLite (`crate::sql`); this directory
//! holds only what PostgreSQL does differently, in files named like
//! SQLite's: `changes.rs` (numbering), `clients.rs`, `keys.rs` (what runs
//! where the locking differs) and `migrate.rs`; plus `locks.rs`, the row
//! locks taken before the shared statements of people's grants (SQLite's
//! single writer needs none), and the connection settings in `options.rs`.

mod changes;
mod clients;
mod keys;
mod locks;
mod migrate;
mod options;
pub use options::PostgresOptions;

use crate::sql::{Backend, map_err};
use gatehouse_oauth::error::StoreError;
use options::valid_schema;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres, Transaction};
use std::str::FromStr;

pub struct PostgresStore {
    pool: PgPool,
    described: String,
}

impl PostgresStore {
    /// Connects to `url` and applies the migrations in `migrations/postgres`
    /// (under a lock: see `migrate.rs`).
    pub async fn open(url: &str, options: &PostgresOptions) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore::connect(url, options).await?;
        store.migrate_schema().await?;
        Ok(store)
    }

    /// Connects without touching the schema;
    /// [`Store::migrate`](gatehouse_oauth::store::Store::migrate) brings it
    /// up to date.
    pub async fn connect(
        url: &str,
        options: &PostgresOptions,
    ) -> Result<PostgresStore, StoreError> {
        // The URL may carry a password: never echo it back in an error.
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Unavailable("invalid PostgreSQL URL".into()))?;
        let described = format!(
            "postgres://{}:{}/{}",
            connect.get_host(),
            connect.get_port(),
            connect.get_database().unwrap_or("")
        );
        let timeout_ms = options.statement_timeout.as_millis().to_string();
        connect = connect.options([("statement_timeout", timeout_ms.as_str())]);
        if let Some(schema) = &options.schema {
            if !valid_schema(schema) {
                return Err(StoreError::Unavailable(format!(
                    "invalid schema name {schema:?}"
                )));
            }
            // Sent as a startup parameter, so every pooled connection has it.
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(map_err)?;
        let described = match &options.schema {
            Some(schema) => format!("{described} (schema {schema})"),
            None => described,
        };
        Ok(PostgresStore { pool, described })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn describe_store(&self) -> String {
        self.described.clone()
    }

    /// Migrations on one dedicated connection, closed afterwards (see
    /// `migrate.rs`): it is never returned to the pool with the settings
    /// migrating gives it.
    async fn migrate_schema(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?.detach();
        let result = migrate::migrate_on(&mut conn).await;
        let _ = conn.close().await;
        result
    }

    async fn pending_schema(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        migrate::pending(&mut conn).await
    }
}

impl Backend for Postgres {
    async fn begin_write(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
        pool.begin().await.map_err(map_err)
    }

    async fn record_changes(
        tx: &mut PgConnection,
        entity: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        changes::record_changes(tx, entity, ids).await
    }

    async fn forget_clients(
        tx: &mut PgConnection,
        ids: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        clients::forget_clients(tx, ids, now).await
    }

    async fn lock_user_grants(tx: &mut PgConnection, user_id: &str) -> Result<(), StoreError> {
        locks::lock_user_grants(tx, user_id).await
    }

    async fn share_rows(
        tx: &mut PgConnection,
        user_id: &str,
        client_id: Option<&str>,
    ) -> Result<(), StoreError> {
        locks::share_rows(tx, user_id, client_id).await
    }

    const FAMILY_LIVE_LOCKED: &'static str = crate::sql::grants::FAMILY_LIVE_FOR_UPDATE;
}

crate::sql::impl_store!(PostgresStore);
