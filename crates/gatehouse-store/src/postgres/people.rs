//! People writes where PostgreSQL differs from SQLite: the row locks taken
//! before the shared statements (`crate::sql::people`).
//!
//! Replicas race, so every decision is made by the database under READ
//! COMMITTED, never by a read-then-write in the process. Sessions, codes and
//! families are bound to the user's credential generation, and codes and
//! families to the user's consent for the client (see the `Store` trait).
//! Under READ COMMITTED a check-then-insert does not see another
//! transaction's uncommitted reset or withdrawal, so every insert or
//! redemption first takes the user's row `FOR SHARE` (and the client's, for
//! codes and consents), which a reset, withdrawal or user deletion holds
//! `FOR UPDATE` ([`lock_user_grants`]) and a client deletion holds by
//! deleting it, and only then checks, in a later statement — whose snapshot
//! is taken after the lock was granted, so it sees whatever committed
//! before. Either the insert commits first (and the reset or withdrawal,
//! running after it, deletes or revokes what it stored), or it sees the
//! change and stores nothing. The checks are repeated at every use (session
//! lookup, redemption, refresh), joined to the user's row.

use crate::sql::{Backend, map_err, people};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::BrowserSession;
use sqlx::{PgConnection, PgPool, Postgres};

/// Takes, in the one order every writer of a user's grants uses, the user's
/// row and then their families (by id): concurrent resets, deletions and
/// withdrawals of one user queue instead of deadlocking, and a code being
/// redeemed at the same moment (which holds the user's row `FOR SHARE`,
/// see `grants::redeem_code`) either finishes first — its family is then
/// revoked here — or finds its code gone.
async fn lock_user_grants(tx: &mut PgConnection, user_id: &str) -> Result<(), StoreError> {
    for sql in [
        "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
        "SELECT 1 FROM grant_families WHERE user_id = $1 ORDER BY id FOR UPDATE",
    ] {
        sqlx::query(sql)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// Takes the user's row `FOR SHARE` until the transaction ends: waits for a
/// reset, withdrawal or deletion of the user in progress (they hold it
/// `FOR UPDATE`, see [`lock_user_grants`]) and holds the next one off. The
/// caller's next statement sees whatever that change committed.
pub(super) async fn share_user(tx: &mut PgConnection, user_id: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR SHARE")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// The same for a client's row, which deleting the client locks first.
pub(super) async fn share_client(tx: &mut PgConnection, client_id: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT 1 FROM clients WHERE id = $1 FOR SHARE")
        .bind(client_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(super) async fn set_user_password(
    pool: &PgPool,
    id: &str,
    password_hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = Postgres::begin_write(pool).await?;
    lock_user_grants(&mut tx, id).await?;
    let updated = people::change_password::<Postgres>(&mut tx, id, password_hash, now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(updated)
}

pub(super) async fn delete_user(pool: &PgPool, id: &str, now: i64) -> Result<bool, StoreError> {
    let mut tx = Postgres::begin_write(pool).await?;
    lock_user_grants(&mut tx, id).await?;
    let deleted = people::remove_user::<Postgres>(&mut tx, id, now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(deleted)
}

pub(super) async fn revoke_consent(
    pool: &PgPool,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let mut tx = Postgres::begin_write(pool).await?;
    lock_user_grants(&mut tx, user_id).await?;
    let forgotten = people::withdraw_consent::<Postgres>(&mut tx, user_id, client_id, now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(forgotten)
}

pub(super) async fn insert_session(
    pool: &PgPool,
    hash: &str,
    session: &BrowserSession,
) -> Result<bool, StoreError> {
    let mut tx = Postgres::begin_write(pool).await?;
    share_user(&mut tx, &session.user_id).await?;
    let inserted = people::store_session::<Postgres>(&mut tx, hash, session).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(inserted)
}

/// Recorded under the user's and the client's row locks (as codes are).
pub(super) async fn record_consent(
    pool: &PgPool,
    user_id: &str,
    client_id: &str,
    resource: &str,
    scopes: &[String],
    at: i64,
) -> Result<(), StoreError> {
    let mut tx = Postgres::begin_write(pool).await?;
    share_user(&mut tx, user_id).await?;
    share_client(&mut tx, client_id).await?;
    people::store_consent::<Postgres>(&mut tx, user_id, client_id, resource, scopes, at).await?;
    tx.commit().await.map_err(map_err)
}
