//! The embedded SQLite store.

use crate::common::{ClientRow, cap_value, corrupt, map_err, registration_token_json};
use async_trait::async_trait;
use gatehouse_oauth::cache::CLIENT_ENTITY;
use gatehouse_oauth::client::{Client, ClientOrigin};
use gatehouse_oauth::clock::system_now as now;
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::{
    AuthCode, BrowserSession, Consent, GrantFamily, IssuedToken, Redeemed, RefreshToken,
    RefreshUse, User,
};
use gatehouse_oauth::store::{Admission, Change, KeyKind, RegistrationCaps, Store, StoredKey};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

fn client_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Client, StoreError> {
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

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let store = SqliteStore::connect(path).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens (creating if needed) the database at `path` without touching
    /// its schema; [`Store::migrate`] brings it up to date.
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

    /// An exclusive lock on `<database>.migrate-lock` (released when the
    /// returned file is dropped). The lock is advisory and per open file, so
    /// it also orders two stores within one process.
    async fn migration_lock(&self) -> Result<std::fs::File, StoreError> {
        let path = self.path.with_extension("migrate-lock");
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
}

/// Appends one entry to the change log inside the caller's transaction
/// (SQLite's single writer numbers entries in commit order).
pub(crate) async fn record_change(
    tx: &mut sqlx::SqliteConnection,
    entity: &str,
    id: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO changes (entity, entity_id, at) VALUES (?, ?, ?)")
        .bind(entity)
        .bind(id)
        .bind(at)
        .execute(tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    /// Two processes opening one data directory at once (a server and an
    /// admin command, say) would both find a migration missing and the
    /// second would fail on "table already exists": sqlx takes no lock for
    /// SQLite. So migrations run under an exclusive lock on a file beside the
    /// database, held until this returns.
    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let _lock = self.migration_lock().await?;
        let before = applied_versions(&self.pool).await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let after = applied_versions(&self.pool).await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query("SELECT * FROM clients WHERE id = ?")
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
            "INSERT INTO clients (id, origin, metadata, secrets, created_at, updated_at, registration_token, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(c.origin.as_str())
        .bind(metadata)
        .bind(secrets)
        .bind(c.created_at)
        .bind(c.created_at)
        .bind(token)
        .bind(c.revision)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        record_change(&mut tx, CLIENT_ENTITY, &c.id, now()).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn update_client(&self, c: &Client) -> Result<bool, StoreError> {
        let metadata = serde_json::to_string(&c.metadata).map_err(corrupt)?;
        let secrets = serde_json::to_string(&c.secrets).map_err(corrupt)?;
        let token = registration_token_json(c)?;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let updated = sqlx::query(
            "UPDATE clients SET metadata = ?, secrets = ?, registration_token = ?, updated_at = ?, revision = revision + 1 WHERE id = ? AND revision = ? AND created_at = ?",
        )
        .bind(metadata)
        .bind(secrets)
        .bind(token)
        .bind(now())
        .bind(&c.id)
        .bind(c.revision)
        // A client deleted and re-created under the same id starts again at
        // revision 0: its creation time tells it from the one that was read.
        .bind(c.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if updated > 0 {
            record_change(&mut tx, CLIENT_ENTITY, &c.id, now()).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(updated > 0)
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let deleted = sqlx::query("DELETE FROM clients WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if deleted > 0 {
            let at = now();
            crate::sqlite_people::forget_clients(&mut tx, &[id.to_string()], at).await?;
            record_change(&mut tx, CLIENT_ENTITY, id, at).await?;
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
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clients WHERE origin = ?")
            .bind(origin.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n.max(0) as u64)
    }

    async fn touch_clients(&self, ids: &[String], at: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for id in ids {
            sqlx::query("UPDATE clients SET last_used_at = ? WHERE id = ?")
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn delete_idle_clients(
        &self,
        origin: ClientOrigin,
        before: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let ids: Vec<String> = sqlx::query_scalar(
            "DELETE FROM clients WHERE origin = ? AND COALESCE(last_used_at, created_at) < ? RETURNING id",
        )
        .bind(origin.as_str())
        .bind(before)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let at = now();
        crate::sqlite_people::forget_clients(&mut tx, &ids, at).await?;
        for id in &ids {
            record_change(&mut tx, CLIENT_ENTITY, id, at).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(ids.len() as u64)
    }

    /// One `INSERT … SELECT … WHERE (counts) < caps`: a writing statement
    /// takes SQLite's single write lock before it reads, so the counts it
    /// sees cannot change until it commits. Each count stops at its cap, so
    /// its cost is bounded however many clients there are.
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
        let inserted = sqlx::query(
            "INSERT INTO clients (id, origin, metadata, secrets, created_at, updated_at, registration_token, revision, registered_from) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8 \
             WHERE (SELECT COUNT(*) FROM (SELECT 1 FROM clients WHERE origin = ?9 LIMIT ?10)) < ?10 \
               AND (?11 = 0 OR (SELECT COUNT(*) FROM (SELECT 1 FROM clients WHERE registered_from = ?8 LIMIT ?11)) < ?11)",
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
            // Which cap: read under the same write lock, on the rare path.
            let full: bool = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM clients WHERE origin = ? LIMIT ?)) >= ?",
            )
            .bind(dynamic)
            .bind(total)
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
        record_change(&mut tx, CLIENT_ENTITY, &c.id, now()).await?;
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
            "DELETE FROM clients WHERE origin = ? AND last_used_at IS NULL AND created_at < ? RETURNING id",
        )
        .bind(origin.as_str())
        .bind(before)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let at = now();
        crate::sqlite_people::forget_clients(&mut tx, &ids, at).await?;
        for id in &ids {
            record_change(&mut tx, CLIENT_ENTITY, id, at).await?;
        }
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
            "SELECT seq, entity, entity_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(limit as i64)
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
            "DELETE FROM changes WHERE at < ? AND seq < (SELECT MAX(seq) FROM changes)",
        )
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(n)
    }

    async fn keys(&self, kind: KeyKind) -> Result<Vec<StoredKey>, StoreError> {
        crate::sqlite_keys::keys(&self.pool, kind).await
    }

    async fn insert_key_unless_newer(
        &self,
        key: &StoredKey,
        newer_than: i64,
    ) -> Result<bool, StoreError> {
        crate::sqlite_keys::insert_key_unless_newer(&self.pool, key, newer_than).await
    }

    async fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        crate::sqlite_keys::delete_key(&self.pool, id).await
    }

    async fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO revocations (jti, client_id, expires_at, revoked_at) VALUES (?, ?, ?, ?) ON CONFLICT (jti) DO NOTHING",
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
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM revocations WHERE jti = ?")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(found.is_some())
    }

    async fn prune_revocations(&self, now: i64) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM revocations WHERE expires_at <= ?")
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
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT (client_id, jti) DO NOTHING",
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
        let n = sqlx::query("DELETE FROM assertion_jtis WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        Ok(n)
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        crate::sqlite_people::insert_user(&self.pool, user).await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        crate::sqlite_people::get_user(&self.pool, id).await
    }

    async fn get_user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        crate::sqlite_people::get_user_by_name(&self.pool, name).await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        crate::sqlite_people::list_users(&self.pool).await
    }

    async fn set_user_password(
        &self,
        id: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        crate::sqlite_people::set_user_password(&self.pool, id, password_hash, now).await
    }

    async fn delete_user(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        crate::sqlite_people::delete_user(&self.pool, id, now).await
    }

    async fn insert_session(
        &self,
        hash: &str,
        session: &BrowserSession,
    ) -> Result<bool, StoreError> {
        crate::sqlite_people::insert_session(&self.pool, hash, session).await
    }

    async fn get_session(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<BrowserSession>, StoreError> {
        crate::sqlite_people::get_session(&self.pool, hash, now).await
    }

    async fn delete_session(&self, hash: &str) -> Result<bool, StoreError> {
        crate::sqlite_people::delete_session(&self.pool, hash).await
    }

    async fn get_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        crate::sqlite_people::get_consent(&self.pool, user_id, client_id, resource).await
    }

    async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
        crate::sqlite_people::list_consents(&self.pool, user_id).await
    }

    async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        crate::sqlite_people::revoke_consent(&self.pool, user_id, client_id, now).await
    }

    async fn record_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scopes: &[String],
        at: i64,
    ) -> Result<(), StoreError> {
        crate::sqlite_people::record_consent(&self.pool, user_id, client_id, resource, scopes, at)
            .await
    }

    async fn insert_code(&self, code: &AuthCode) -> Result<bool, StoreError> {
        crate::sqlite_people::insert_code(&self.pool, code).await
    }

    async fn get_code(&self, hash: &str) -> Result<Option<AuthCode>, StoreError> {
        crate::sqlite_people::get_code(&self.pool, hash).await
    }

    async fn redeem_code(
        &self,
        hash: &str,
        now: i64,
        family: &GrantFamily,
        refresh: Option<&RefreshToken>,
        access: &IssuedToken,
    ) -> Result<Redeemed, StoreError> {
        crate::sqlite_people::redeem_code(&self.pool, hash, now, family, refresh, access).await
    }

    async fn use_refresh_token(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<RefreshUse>, StoreError> {
        crate::sqlite_people::use_refresh_token(&self.pool, hash, now).await
    }

    async fn find_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<(RefreshToken, GrantFamily)>, StoreError> {
        crate::sqlite_people::find_refresh_token(&self.pool, hash).await
    }

    async fn extend_family(
        &self,
        family_id: &str,
        now: i64,
        successor: &RefreshToken,
        access: &IssuedToken,
    ) -> Result<bool, StoreError> {
        crate::sqlite_people::extend_family(&self.pool, family_id, now, successor, access).await
    }

    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<bool, StoreError> {
        crate::sqlite_people::revoke_family(&self.pool, family_id, now).await
    }

    async fn prune_grants(&self, now: i64) -> Result<u64, StoreError> {
        crate::sqlite_people::prune_grants(&self.pool, now).await
    }
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
