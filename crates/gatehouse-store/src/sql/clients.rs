//! Clients: the statements both backends run, and the operations made of
//! them. Registration admission is per backend only in what it locks
//! first (`sqlite/clients.rs`, `postgres/clients.rs`); its statements are
//! here.

use super::{Backend, corrupt, decode, map_err, stmt};
use gatehouse_oauth::cache::CLIENT_ENTITY;
use gatehouse_oauth::client::{Client, ClientOrigin};
use gatehouse_oauth::clock::system_now as now;
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::{Admission, RegistrationCaps};
use sqlx::{Pool, Transaction};

const GET: &str = "SELECT * FROM clients WHERE id = $1";
const LIST: &str = "SELECT * FROM clients ORDER BY created_at, id";
const COUNT: &str = "SELECT COUNT(*) AS n FROM clients WHERE origin = $1";
const INSERT: &str = "INSERT INTO clients (id, origin, metadata, secrets, created_at, updated_at, registration_token, revision) \
     VALUES ($1, $2, $3, $4, $5, $5, $6, $7)";
/// A compare-and-set: a client deleted and re-created under the same id
/// starts again at revision 0, and its creation time tells it from the one
/// that was read.
const UPDATE: &str = "UPDATE clients SET metadata = $1, secrets = $2, registration_token = $3, updated_at = $4, revision = revision + 1 \
     WHERE id = $5 AND revision = $6 AND created_at = $7";
const DELETE: &str = "DELETE FROM clients WHERE id = $1";
const DELETE_IDLE: &str = "DELETE FROM clients WHERE origin = $1 AND COALESCE(last_used_at, created_at) < $2 RETURNING id";
const DELETE_UNUSED: &str = "DELETE FROM clients WHERE origin = $1 AND last_used_at IS NULL AND created_at < $2 RETURNING id";
/// One `INSERT … SELECT … WHERE (counts) < caps`; each count stops at its
/// cap, so its cost is bounded however many clients there are.
const REGISTER: &str = "INSERT INTO clients (id, origin, metadata, secrets, created_at, updated_at, registration_token, revision, registered_from) \
     SELECT $1, $2, $3, $4, $5, $5, $6, $7, $8 \
     WHERE (SELECT COUNT(*) FROM (SELECT 1 FROM clients WHERE origin = $9 LIMIT $10) AS everyone) < $10 \
       AND ($11 = 0 OR (SELECT COUNT(*) FROM (SELECT 1 FROM clients WHERE registered_from = $8 LIMIT $11) AS mine) < $11)";
/// Which cap refused a registration (read on the rare path, under the same
/// lock as the insert).
const TOTAL_CAP_REACHED: &str = "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM clients WHERE origin = $1 LIMIT $2) AS everyone) >= $2 AS total_reached";

/// A client's JSON columns: metadata, secrets, registration token.
fn json_columns(c: &Client) -> Result<(String, String, Option<String>), StoreError> {
    let metadata = serde_json::to_string(&c.metadata).map_err(corrupt)?;
    let secrets = serde_json::to_string(&c.secrets).map_err(corrupt)?;
    let token = c
        .registration_token
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(corrupt)?;
    Ok((metadata, secrets, token))
}

/// A per-address cap as SQL's signed integer (a cap beyond it is no cap).
fn cap_value(max: u64) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

pub(crate) async fn get_client<D: Backend>(
    pool: &Pool<D>,
    id: &str,
) -> Result<Option<Client>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let row = stmt::<D>(GET).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(decode::client::<D>).transpose()
}

pub(crate) async fn list_clients<D: Backend>(pool: &Pool<D>) -> Result<Vec<Client>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let rows = stmt::<D>(LIST).fetch_all(&mut *conn).await?;
    rows.iter().map(decode::client::<D>).collect()
}

pub(crate) async fn count_clients<D: Backend>(
    pool: &Pool<D>,
    origin: ClientOrigin,
) -> Result<u64, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let n: i64 = stmt::<D>(COUNT)
        .bind(origin.as_str())
        .fetch_value(&mut *conn, "n")
        .await?;
    Ok(n.max(0) as u64)
}

pub(crate) async fn insert_client<D: Backend>(
    pool: &Pool<D>,
    c: &Client,
) -> Result<(), StoreError> {
    let (metadata, secrets, token) = json_columns(c)?;
    let mut tx = D::begin_write(pool).await?;
    stmt::<D>(INSERT)
        .bind(&c.id)
        .bind(c.origin.as_str())
        .bind(metadata)
        .bind(secrets)
        .bind(c.created_at)
        .bind(token)
        .bind(c.revision)
        .execute(&mut *tx)
        .await?;
    D::record_changes(&mut *tx, CLIENT_ENTITY, std::slice::from_ref(&c.id)).await?;
    tx.commit().await.map_err(map_err)
}

pub(crate) async fn update_client<D: Backend>(
    pool: &Pool<D>,
    c: &Client,
) -> Result<bool, StoreError> {
    let (metadata, secrets, token) = json_columns(c)?;
    let mut tx = D::begin_write(pool).await?;
    let updated = stmt::<D>(UPDATE)
        .bind(metadata)
        .bind(secrets)
        .bind(token)
        .bind(now())
        .bind(&c.id)
        .bind(c.revision)
        .bind(c.created_at)
        .execute(&mut *tx)
        .await?;
    if updated > 0 {
        D::record_changes(&mut *tx, CLIENT_ENTITY, std::slice::from_ref(&c.id)).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(updated > 0)
}

pub(crate) async fn delete_client<D: Backend>(
    pool: &Pool<D>,
    id: &str,
) -> Result<bool, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    let deleted = stmt::<D>(DELETE).bind(id).execute(&mut *tx).await?;
    if deleted > 0 {
        let ids = [id.to_string()];
        D::forget_clients(&mut *tx, &ids, now()).await?;
        D::record_changes(&mut *tx, CLIENT_ENTITY, &ids).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(deleted > 0)
}

/// Clients of `origin` last used (or, never used, created) before `before`.
pub(crate) async fn delete_idle_clients<D: Backend>(
    pool: &Pool<D>,
    origin: ClientOrigin,
    before: i64,
) -> Result<u64, StoreError> {
    delete_returning(pool, DELETE_IDLE, origin, before).await
}

/// Clients of `origin` never used and created before `before`.
pub(crate) async fn delete_unused_clients<D: Backend>(
    pool: &Pool<D>,
    origin: ClientOrigin,
    before: i64,
) -> Result<u64, StoreError> {
    delete_returning(pool, DELETE_UNUSED, origin, before).await
}

/// Runs a `DELETE … RETURNING id` of clients and forgets what they leave.
async fn delete_returning<D: Backend>(
    pool: &Pool<D>,
    sql: &'static str,
    origin: ClientOrigin,
    before: i64,
) -> Result<u64, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    let rows = stmt::<D>(sql)
        .bind(origin.as_str())
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
    let ids = rows
        .iter()
        .map(|r| D::get::<String>(r, "id"))
        .collect::<Result<Vec<_>, _>>()?;
    if !ids.is_empty() {
        D::forget_clients(&mut *tx, &ids, now()).await?;
        D::record_changes(&mut *tx, CLIENT_ENTITY, &ids).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(ids.len() as u64)
}

/// Registration admission inside `tx`, once the backend holds whatever
/// makes the counts stable until COMMIT (see each backend's `clients.rs`):
/// inserts `c` unless a cap is reached, and commits only if it did.
pub(crate) async fn admit<D: Backend>(
    mut tx: Transaction<'static, D>,
    c: &Client,
    address: &str,
    caps: RegistrationCaps,
) -> Result<Admission, StoreError> {
    let (metadata, secrets, token) = json_columns(c)?;
    let (total, per_address) = (cap_value(caps.total), cap_value(caps.per_address));
    let dynamic = ClientOrigin::Dynamic.as_str();
    let inserted = stmt::<D>(REGISTER)
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
        .await?;
    if inserted == 0 {
        let total_reached: bool = stmt::<D>(TOTAL_CAP_REACHED)
            .bind(dynamic)
            .bind(total)
            .fetch_value(&mut *tx, "total_reached")
            .await?;
        return Ok(if total_reached {
            Admission::TotalCapReached
        } else {
            Admission::AddressCapReached
        });
    }
    D::record_changes(&mut *tx, CLIENT_ENTITY, std::slice::from_ref(&c.id)).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(Admission::Stored)
}
