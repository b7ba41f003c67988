//! Grants where PostgreSQL differs from SQLite: the row locks taken before
//! the shared statements (`crate::sql::grants`).
//!
//! - a code's or refresh token's first use is one conditional UPDATE
//!   (`… AND consumed_at IS NULL`): a second transaction updating the same
//!   row waits for the first, re-checks the condition on the committed row
//!   and updates nothing;
//! - inserting or redeeming a code first holds the user's and the client's
//!   rows `FOR SHARE` (see `people.rs`), so it serialises with a reset,
//!   withdrawal or deletion;
//! - [`extend_family`] locks the family row (`FOR UPDATE`) while it checks
//!   liveness and adds the successor, and revoking takes the same row lock
//!   (its UPDATE) before copying issued tokens into `revocations`: either the
//!   extension commits first and its access token is revoked with the family,
//!   or the revocation commits first and the extension sees it and refuses.

use super::people::{share_client, share_user};
use crate::sql::grants::{self, FAMILY_LIVE};
use crate::sql::{Backend, map_err, stmt};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::{AuthCode, GrantFamily, IssuedToken, Redeemed, RefreshToken};
use sqlx::{AssertSqlSafe, PgPool, Postgres};

pub(super) async fn insert_code(pool: &PgPool, code: &AuthCode) -> Result<bool, StoreError> {
    let mut tx = Postgres::begin_write(pool).await?;
    share_user(&mut tx, &code.user_id).await?;
    share_client(&mut tx, &code.client_id).await?;
    let inserted = grants::store_code::<Postgres>(&mut tx, code).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(inserted)
}

pub(super) async fn redeem_code(
    pool: &PgPool,
    hash: &str,
    now: i64,
    family: &GrantFamily,
    refresh: Option<&RefreshToken>,
    access: &IssuedToken,
) -> Result<Redeemed, StoreError> {
    let mut tx = Postgres::begin_write(pool).await?;
    // Serialises with `lock_user_grants` (see `people.rs`) and with deleting
    // the client; the binding is then checked in the consuming statement.
    share_user(&mut tx, &family.user_id).await?;
    share_client(&mut tx, &family.client_id).await?;
    grants::redeem(tx, hash, now, family, refresh, access).await
}

pub(super) async fn extend_family(
    pool: &PgPool,
    family_id: &str,
    now: i64,
    successor: &RefreshToken,
    access: &IssuedToken,
) -> Result<bool, StoreError> {
    let mut tx = Postgres::begin_write(pool).await?;
    // The row lock is held until COMMIT: a concurrent revocation waits for
    // it (and then revokes the access token added here), or holds it first
    // (and then this re-checks the revoked row and finds it not live).
    let live = stmt::<Postgres>(AssertSqlSafe(format!("{FAMILY_LIVE} FOR UPDATE OF f")))
        .bind(family_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if live {
        grants::extend::<Postgres>(&mut tx, family_id, now, successor, access).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(live)
}
