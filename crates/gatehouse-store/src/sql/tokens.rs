//! Single-use token records: revoked access tokens (RFC 7009) and the `jti`s
//! of client assertions already seen (RFC 7523 §3). Each is one
//! `INSERT … ON CONFLICT DO NOTHING` judged by how many rows it inserted, the
//! same statement on both backends.

use super::{Backend, map_err, stmt};
use gatehouse_oauth::clock::system_now as now;
use gatehouse_oauth::error::StoreError;
use sqlx::Pool;

const REVOKE: &str = "INSERT INTO revocations (jti, client_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (jti) DO NOTHING";
const IS_REVOKED: &str = "SELECT EXISTS (SELECT 1 FROM revocations WHERE jti = $1) AS revoked";
const PRUNE_REVOCATIONS: &str = "DELETE FROM revocations WHERE expires_at <= $1";
const RECORD_JTI: &str = "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (client_id, jti) DO NOTHING";
const PRUNE_JTIS: &str = "DELETE FROM assertion_jtis WHERE expires_at <= $1";

pub(crate) async fn revoke_token<D: Backend>(
    pool: &Pool<D>,
    jti: &str,
    client_id: &str,
    expires_at: i64,
) -> Result<bool, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let inserted = stmt::<D>(REVOKE)
        .bind(jti)
        .bind(client_id)
        .bind(expires_at)
        .bind(now())
        .execute(&mut *conn)
        .await?;
    Ok(inserted > 0)
}

pub(crate) async fn is_revoked<D: Backend>(pool: &Pool<D>, jti: &str) -> Result<bool, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    stmt::<D>(IS_REVOKED)
        .bind(jti)
        .fetch_value(&mut *conn, "revoked")
        .await
}

pub(crate) async fn prune_revocations<D: Backend>(
    pool: &Pool<D>,
    now: i64,
) -> Result<u64, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    stmt::<D>(PRUNE_REVOCATIONS)
        .bind(now)
        .execute(&mut *conn)
        .await
}

pub(crate) async fn record_assertion_jti<D: Backend>(
    pool: &Pool<D>,
    client_id: &str,
    jti: &str,
    expires_at: i64,
) -> Result<bool, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let inserted = stmt::<D>(RECORD_JTI)
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?;
    Ok(inserted > 0)
}

pub(crate) async fn prune_assertion_jtis<D: Backend>(
    pool: &Pool<D>,
    now: i64,
) -> Result<u64, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    stmt::<D>(PRUNE_JTIS).bind(now).execute(&mut *conn).await
}
