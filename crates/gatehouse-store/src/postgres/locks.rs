//! The row locks PostgreSQL takes before the shared statements of people's
//! grants (`crate::sql::people`, `crate::sql::grants`), through the
//! `Backend` hooks (`lock_user_grants`, `share_rows`, `FAMILY_LIVE_LOCKED`).
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
//!
//! For grants:
//!
//! - a code's or refresh token's first use is one conditional UPDATE
//!   (`… AND consumed_at IS NULL`): a second transaction updating the same
//!   row waits for the first, re-checks the condition on the committed row
//!   and updates nothing;
//! - inserting or redeeming a code first holds the user's and the client's
//!   rows `FOR SHARE` (above), so it serialises with a reset,
//!   withdrawal or deletion;
//! - `extend_family` locks the family row (`FOR UPDATE`) while it checks
//!   liveness and adds the successor, and revoking takes the same row lock
//!   (its UPDATE) before copying issued tokens into `revocations`: either the
//!   extension commits first and its access token is revoked with the family,
//!   or the revocation commits first and the extension sees it and refuses.

use crate::sql::map_err;
use gatehouse_oauth::error::StoreError;
use sqlx::PgConnection;

/// Takes, in the one order every writer of a user's grants uses, the user's
/// row and then their families (by id): concurrent resets, deletions and
/// withdrawals of one user queue instead of deadlocking, and a code being
/// redeemed at the same moment (which holds the user's row `FOR SHARE`,
/// see `sql::grants::redeem_code`) either finishes first — its family is then
/// revoked here — or finds its code gone.
pub(super) async fn lock_user_grants(
    tx: &mut PgConnection,
    user_id: &str,
) -> Result<(), StoreError> {
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

/// Takes the user's row (and the client's) `FOR SHARE` until the
/// transaction ends: waits for a reset, withdrawal or deletion of the user
/// in progress (they hold it `FOR UPDATE`, see [`lock_user_grants`]) or a
/// deletion of the client (which locks its row first), and holds the next
/// one off. The caller's next statement sees whatever that change committed.
pub(super) async fn share_rows(
    tx: &mut PgConnection,
    user_id: &str,
    client_id: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR SHARE")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    if let Some(client_id) = client_id {
        sqlx::query("SELECT 1 FROM clients WHERE id = $1 FOR SHARE")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}
