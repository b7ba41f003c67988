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
//!   grant family's liveness is checked under its row lock (see `people.rs`);
//! - the change log is numbered in commit order (see [`record_changes`]).

use crate::common::{ClientRow, cap_value, corrupt, map_err, registration_token_json};
use async_trait::async_trait;
use gatehouse_oauth::client::{Client, ClientOrigin};
use gatehouse_oauth::clock::system_now as now;
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::{
    AuthCode, BrowserSession, Consent, GrantFamily, IssuedToken, Redeemed, RefreshToken,
    RefreshUse, User,
};
use gatehouse_oauth::store::{Admission, Change, KeyKind, RegistrationCaps, Store, StoredKey};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::{Connection, PgPool, Row};
use std::str::FromStr;

mod keys;
mod options;
mod people;
pub use options::PostgresOptions;
use options::valid_schema;

pub struct PostgresStore {
    pool: PgPool,
    described: String,
}

fn client_from_row(row: &PgRow) -> Result<Client, StoreError> {
    ClientRow {
        id: row.try_get("id").map_err(map_err)?,
        origin: row.try_get("origin").map_err(map_err)?,
        metadata: row.try_get("metadata").map_err(map_err)?,
        secrets: row.try_get("secrets").map_err(map_err)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        registration_token: row.try_get("registration_token").map_err(map_err)?,
        revision: row.try_get("revision").map_err(map_err)?,
    }
    .into_client()
}

impl PostgresStore {
    /// Connects to `url` and applies the migrations in `migrations/postgres`
    /// (under a lock: see [`Store::migrate`]).
    pub async fn open(url: &str, options: &PostgresOptions) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore::connect(url, options).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without touching the schema; [`Store::migrate`] brings it up
    /// to date.
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
}

/// The advisory lock key for migrating this database and schema.
const MIGRATION_LOCK_KEY: &str =
    "hashtextextended('gatehouse-migrate|' || current_database() || '|' || current_schema(), 0)";

/// [`Store::migrate`] on one dedicated connection.
async fn migrate_on(conn: &mut PgConnection) -> Result<Vec<i64>, StoreError> {
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
pub(crate) async fn record_changes(
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

use gatehouse_oauth::cache::CLIENT_ENTITY as CLIENT;

#[async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.described.clone()
    }

    /// Two replicas starting together do not race: migrations run on one
    /// connection holding a session advisory lock keyed on the database and
    /// schema (so separate schemas migrate independently), and the versions
    /// already applied are read under that lock, so the answer is exactly
    /// what this call applied. That connection has no `statement_timeout`:
    /// waiting for another replica's migration, or a long index build, is
    /// not a failure. It is closed afterwards, never returned to the pool
    /// with that setting.
    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?.detach();
        let result = migrate_on(&mut conn).await;
        let _ = conn.close().await;
        result
    }

    /// Closes every connection (graceful shutdown).
    async fn close(&self) {
        self.pool.close().await;
    }

    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query("SELECT * FROM clients WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn insert_client(&self, c: &Client) -> Result<(), StoreError> {
        let metadata = serde_json::to_string(&c.metadata).map_err(corrupt)?;
        let secrets = serde_json::to_string(&c.secrets).map_err(corrupt)?;
        let token = registration_token_json(c)?;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO clients (id, origin, metadata, secrets, created_at, updated_at, registration_token, revision) VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(c.origin.as_str())
        .bind(metadata)
        .bind(secrets)
        .bind(c.created_at)
        .bind(token)
        .bind(c.revision)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        record_changes(&mut tx, CLIENT, std::slice::from_ref(&c.id)).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn update_client(&self, c: &Client) -> Result<bool, StoreError> {
        let metadata = serde_json::to_string(&c.metadata).map_err(corrupt)?;
        let secrets = serde_json::to_string(&c.secrets).map_err(corrupt)?;
        let token = registration_token_json(c)?;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // `created_at` tells a client deleted and re-created under the same id
        // (back at revision 0) from the one that was read.
        let updated = sqlx::query(
            "UPDATE clients SET metadata = $1, secrets = $2, registration_token = $3, updated_at = $4, revision = revision + 1 WHERE id = $5 AND revision = $6 AND created_at = $7",
        )
        .bind(metadata)
        .bind(secrets)
        .bind(token)
        .bind(now())
        .bind(&c.id)
        .bind(c.revision)
        .bind(c.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if updated > 0 {
            record_changes(&mut tx, CLIENT, std::slice::from_ref(&c.id)).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(updated > 0)
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let deleted = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if deleted > 0 {
            let ids = [id.to_string()];
            people::forget_clients(&mut tx, &ids, now()).await?;
            record_changes(&mut tx, CLIENT, &ids).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(deleted > 0)
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query("SELECT * FROM clients ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn count_clients(&self, origin: ClientOrigin) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clients WHERE origin = $1")
            .bind(origin.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n.max(0) as u64)
    }

    async fn touch_clients(&self, ids: &[String], at: i64) -> Result<(), StoreError> {
        // One statement for the whole batch; `GREATEST` so a late, older
        // batch from another replica never moves a client's last use back.
        sqlx::query(
            "UPDATE clients SET last_used_at = GREATEST(COALESCE(last_used_at, $1), $1) WHERE id = ANY($2)",
        )
        .bind(at)
        .bind(ids)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn delete_idle_clients(
        &self,
        origin: ClientOrigin,
        before: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let ids: Vec<String> = sqlx::query_scalar(
            "DELETE FROM clients WHERE origin = $1 AND COALESCE(last_used_at, created_at) < $2 RETURNING id",
        )
        .bind(origin.as_str())
        .bind(before)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        people::forget_clients(&mut tx, &ids, now()).await?;
        record_changes(&mut tx, CLIENT, &ids).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(ids.len() as u64)
    }

    /// One `INSERT … SELECT … WHERE (counts) < caps` under a transaction
    /// advisory lock that every registration takes: under READ COMMITTED
    /// two inserts would each count without the other's row, so the lock
    /// makes them count one after the other. Registrations are rare, so one
    /// lock for all of them costs nothing; each count stops at its cap.
    async fn insert_registered_client(
        &self,
        c: &Client,
        address: &str,
        caps: RegistrationCaps,
    ) -> Result<Admission, StoreError> {
        let metadata = serde_json::to_string(&c.metadata).map_err(corrupt)?;
        let secrets = serde_json::to_string(&c.secrets).map_err(corrupt)?;
        let token = registration_token_json(c)?;
        let (total, per_address) = (cap_value(caps.total), cap_value(caps.per_address));
        let dynamic = ClientOrigin::Dynamic.as_str();
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // A registration that cannot get its turn within seconds is refused
        // (503) instead of holding a pooled connection in the queue.
        sqlx::query("SET LOCAL lock_timeout = '5s'")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('gatehouse-register', 0))")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let inserted = sqlx::query(
            "INSERT INTO clients (id, origin, metadata, secrets, created_at, updated_at, registration_token, revision, registered_from) \
             SELECT $1, $2, $3, $4, $5, $5, $6, $7, $8 \
             WHERE (SELECT COUNT(*) FROM (SELECT 1 FROM clients WHERE origin = $9 LIMIT $10) AS everyone) < $10 \
               AND ($11 = 0 OR (SELECT COUNT(*) FROM (SELECT 1 FROM clients WHERE registered_from = $8 LIMIT $11) AS mine) < $11)",
        )
        .bind(&c.id)
        .bind(c.origin.as_str())
        .bind(metadata)
        .bind(secrets)
        .bind(c.created_at)
        .bind(token)
        .bind(c.revision)
        .bind(address)
        .bind(dynamic)
        .bind(total)
        .bind(per_address)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if inserted == 0 {
            let full: bool = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM clients WHERE origin = $1 LIMIT $2) AS everyone) >= $2",
            )
            .bind(dynamic)
            .bind(total)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            return Ok(if full {
                Admission::TotalCapReached
            } else {
                Admission::AddressCapReached
            });
        }
        record_changes(&mut tx, CLIENT, std::slice::from_ref(&c.id)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Admission::Stored)
    }

    async fn delete_unused_clients(
        &self,
        origin: ClientOrigin,
        before: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let ids: Vec<String> = sqlx::query_scalar(
            "DELETE FROM clients WHERE origin = $1 AND last_used_at IS NULL AND created_at < $2 RETURNING id",
        )
        .bind(origin.as_str())
        .bind(before)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        people::forget_clients(&mut tx, &ids, now()).await?;
        record_changes(&mut tx, CLIENT, &ids).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(ids.len() as u64)
    }

    async fn latest_change(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM changes")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(seq.unwrap_or(0))
    }

    async fn changes_since(&self, seq: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, entity, entity_id FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(Change {
                    seq: r.try_get("seq").map_err(map_err)?,
                    entity: r.try_get("entity").map_err(map_err)?,
                    entity_id: r.try_get("entity_id").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn prune_changes(&self, before: i64) -> Result<u64, StoreError> {
        let n = sqlx::query(
            "DELETE FROM changes WHERE at < $1 AND seq < (SELECT MAX(seq) FROM changes)",
        )
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(n)
    }

    async fn keys(&self, kind: KeyKind) -> Result<Vec<StoredKey>, StoreError> {
        keys::keys(&self.pool, kind).await
    }

    async fn insert_key_unless_newer(
        &self,
        key: &StoredKey,
        newer_than: i64,
    ) -> Result<bool, StoreError> {
        keys::insert_key_unless_newer(&self.pool, key, newer_than).await
    }

    async fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        keys::delete_key(&self.pool, id).await
    }

    async fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO revocations (jti, client_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(client_id)
        .bind(expires_at)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(inserted > 0)
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revocations WHERE jti = $1)")
            .bind(jti)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn prune_revocations(&self, now: i64) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM revocations WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        Ok(n)
    }

    async fn record_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(inserted > 0)
    }

    async fn prune_assertion_jtis(&self, now: i64) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM assertion_jtis WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        Ok(n)
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        people::insert_user(&self.pool, user).await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        people::get_user(&self.pool, id).await
    }

    async fn get_user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        people::get_user_by_name(&self.pool, name).await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        people::list_users(&self.pool).await
    }

    async fn set_user_password(
        &self,
        id: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        people::set_user_password(&self.pool, id, password_hash, now).await
    }

    async fn delete_user(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        people::delete_user(&self.pool, id, now).await
    }

    async fn insert_session(
        &self,
        hash: &str,
        session: &BrowserSession,
    ) -> Result<bool, StoreError> {
        people::insert_session(&self.pool, hash, session).await
    }

    async fn get_session(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<BrowserSession>, StoreError> {
        people::get_session(&self.pool, hash, now).await
    }

    async fn delete_session(&self, hash: &str) -> Result<bool, StoreError> {
        people::delete_session(&self.pool, hash).await
    }

    async fn get_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        people::get_consent(&self.pool, user_id, client_id, resource).await
    }

    async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
        people::list_consents(&self.pool, user_id).await
    }

    async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        people::revoke_consent(&self.pool, user_id, client_id, now).await
    }

    async fn record_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scopes: &[String],
        at: i64,
    ) -> Result<(), StoreError> {
        people::record_consent(&self.pool, user_id, client_id, resource, scopes, at).await
    }

    async fn insert_code(&self, code: &AuthCode) -> Result<bool, StoreError> {
        people::insert_code(&self.pool, code).await
    }

    async fn get_code(&self, hash: &str) -> Result<Option<AuthCode>, StoreError> {
        people::get_code(&self.pool, hash).await
    }

    async fn redeem_code(
        &self,
        hash: &str,
        now: i64,
        family: &GrantFamily,
        refresh: Option<&RefreshToken>,
        access: &IssuedToken,
    ) -> Result<Redeemed, StoreError> {
        people::redeem_code(&self.pool, hash, now, family, refresh, access).await
    }

    async fn use_refresh_token(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<RefreshUse>, StoreError> {
        people::use_refresh_token(&self.pool, hash, now).await
    }

    async fn find_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<(RefreshToken, GrantFamily)>, StoreError> {
        people::find_refresh_token(&self.pool, hash).await
    }

    async fn extend_family(
        &self,
        family_id: &str,
        now: i64,
        successor: &RefreshToken,
        access: &IssuedToken,
    ) -> Result<bool, StoreError> {
        people::extend_family(&self.pool, family_id, now, successor, access).await
    }

    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<bool, StoreError> {
        people::revoke_family(&self.pool, family_id, now).await
    }

    async fn prune_grants(&self, now: i64) -> Result<u64, StoreError> {
        people::prune_grants(&self.pool, now).await
    }
}
