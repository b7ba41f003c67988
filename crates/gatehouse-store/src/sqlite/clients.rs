//! Clients where SQLite differs: registration admission (its lock), the
//! batch of last uses (no array parameters) and what deleting clients takes
//! with them (one client at a time).

use crate::sql::grants::revoke_families;
use crate::sql::{clients, map_err, stmt};
use gatehouse_oauth::client::Client;
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::{Admission, RegistrationCaps};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

const TOUCH: &str = "UPDATE clients SET last_used_at = $1 WHERE id = $2";
const FORGET: [&str; 2] = [
    "DELETE FROM consents WHERE client_id = $1",
    "DELETE FROM auth_codes WHERE client_id = $1 AND consumed_at IS NULL",
];

pub(super) async fn touch_clients(
    pool: &SqlitePool,
    ids: &[String],
    at: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    for id in ids {
        stmt::<Sqlite>(TOUCH)
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await.map_err(map_err)
}

/// The shared `INSERT … SELECT … WHERE (counts) < caps`: a writing
/// statement takes SQLite's single write lock before it reads, so the
/// counts it sees cannot change until it commits.
pub(super) async fn insert_registered_client(
    pool: &SqlitePool,
    c: &Client,
    address: &str,
    caps: RegistrationCaps,
) -> Result<Admission, StoreError> {
    let tx = pool.begin().await.map_err(map_err)?;
    clients::admit(tx, c, address, caps).await
}

/// What deleting clients takes with them, inside the deleting transaction
/// (after the `clients` rows are gone): every consent given to them, their
/// unredeemed codes, and their grant families — revoked, with every access
/// token issued from them still live at `now` added to the revocations. A
/// client created again under one of these ids inherits nothing.
pub(super) async fn forget_clients(
    tx: &mut SqliteConnection,
    ids: &[String],
    now: i64,
) -> Result<(), StoreError> {
    for id in ids {
        for sql in FORGET {
            stmt::<Sqlite>(sql).bind(id).execute(&mut *tx).await?;
        }
        revoke_families::<Sqlite>(tx, "client_id = $2", &[id.as_str()], now).await?;
    }
    Ok(())
}
