//! Clients where PostgreSQL differs: registration admission (an advisory
//! lock), the batch of last uses (one array) and what deleting clients
//! takes with them (families locked first).

use crate::sql::grants::revoke_families;
use crate::sql::{Backend, clients, map_err};
use gatehouse_oauth::client::Client;
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::{Admission, RegistrationCaps};
use sqlx::{PgConnection, PgPool, Postgres};

pub(super) async fn touch_clients(
    pool: &PgPool,
    ids: &[String],
    at: i64,
) -> Result<(), StoreError> {
    // One statement for the whole batch; `GREATEST` so a late, older
    // batch from another replica never moves a client's last use back.
    sqlx::query(
        "UPDATE clients SET last_used_at = GREATEST(COALESCE(last_used_at, $1), $1) WHERE id = ANY($2)",
    )
    .bind(at)
    .bind(ids)
    .execute(pool)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// The shared `INSERT … SELECT … WHERE (counts) < caps` under a transaction
/// advisory lock that every registration takes: under READ COMMITTED two
/// inserts would each count without the other's row, so the lock makes them
/// count one after the other. Registrations are rare, so one lock for all of
/// them costs nothing.
pub(super) async fn insert_registered_client(
    pool: &PgPool,
    c: &Client,
    address: &str,
    caps: RegistrationCaps,
) -> Result<Admission, StoreError> {
    let mut tx = Postgres::begin_write(pool).await?;
    // A registration that cannot get its turn within seconds is refused
    // (503) instead of holding a pooled connection in the queue.
    for sql in [
        "SET LOCAL lock_timeout = '5s'",
        "SELECT pg_advisory_xact_lock(hashtextextended('gatehouse-register', 0))",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.map_err(map_err)?;
    }
    clients::admit(tx, c, address, caps).await
}

/// What deleting clients takes with them, inside the deleting transaction
/// (after the `clients` rows are deleted, which holds off any code being
/// issued or redeemed for them, see `people::share_client`): every consent
/// given to them, their unredeemed codes, and their grant families —
/// revoked, with every access token issued from them still live at `now`
/// added to the revocations. A client created again under one of these ids
/// inherits nothing. The families are locked first, in id order, and
/// consents go before codes, the order a withdrawal takes them in, so the
/// two queue rather than deadlock.
pub(super) async fn forget_clients(
    tx: &mut PgConnection,
    ids: &[String],
    now: i64,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    for sql in [
        "SELECT 1 FROM grant_families WHERE client_id = ANY($1) ORDER BY id FOR UPDATE",
        "DELETE FROM consents WHERE client_id = ANY($1)",
        "DELETE FROM auth_codes WHERE client_id = ANY($1) AND consumed_at IS NULL",
    ] {
        sqlx::query(sql)
            .bind(ids)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    for id in ids {
        revoke_families::<Postgres>(tx, "client_id = $2", &[id.as_str()], now).await?;
    }
    Ok(())
}
