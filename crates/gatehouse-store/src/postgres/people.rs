//! People rows in PostgreSQL: accounts, browser sessions, consent,
//! authorization codes and refresh-token families.
//!
//! Replicas race, so every decision is made by the database under READ
//! COMMITTED, never by a read-then-write in the process:
//! - a code's or refresh token's first use is one conditional UPDATE
//!   (`… AND consumed_at IS NULL`): a second transaction updating the same
//!   row waits for the first, re-checks the condition on the committed row
//!   and updates nothing;
//! - `extend_family` locks the family row (`FOR UPDATE`) while it checks
//!   liveness and adds the successor, and revoking takes the same row lock
//!   (its UPDATE) before copying issued tokens into `revocations`: either the
//!   extension commits first and its access token is revoked with the family,
//!   or the revocation commits first and the extension sees it and refuses;
//! - sessions, codes and families are bound to the user's credential
//!   generation, and codes and families to the user's consent for the client
//!   (see the `Store` trait). Under READ COMMITTED a check-then-insert does
//!   not see another transaction's uncommitted reset or withdrawal, so every
//!   insert or redemption first takes the user's row `FOR SHARE` (and the
//!   client's, for codes), which a reset, withdrawal or user deletion holds
//!   `FOR UPDATE` (`lock_user_grants`) and a client deletion holds by
//!   deleting it, and only then checks, in a later statement — whose
//!   snapshot is taken after the lock was granted, so it sees whatever
//!   committed before. Either the insert commits first (and the reset or
//!   withdrawal, running after it, deletes or revokes what it stored), or it
//!   sees the change and stores nothing. The checks are repeated at every
//!   use (session lookup, redemption, refresh), joined to the user's row.

use crate::common::{
    CODE_BOUND, FAMILY_BOUND, list_json, map_err, people_decoders, refresh_with_family_sql,
};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::{
    AuthCode, BrowserSession, Consent, GrantFamily, IssuedToken, Redeemed, RefreshToken,
    RefreshUse, User,
};
use gatehouse_oauth::limits::USED_REFRESH_TOKEN_RETENTION_SECS;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool};

people_decoders!(PgRow);

async fn begin(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    pool.begin().await.map_err(map_err)
}

pub(super) async fn insert_user(pool: &PgPool, user: &User) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, name, password_hash, groups, created_at, credentials_gen) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(list_json(&user.groups)?)
    .bind(user.created_at)
    .bind(user.credentials_gen)
    .execute(pool)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(super) async fn get_user(pool: &PgPool, id: &str) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(user_from_row).transpose()
}

pub(super) async fn get_user_by_name(
    pool: &PgPool,
    name: &str,
) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT * FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(user_from_row).transpose()
}

pub(super) async fn list_users(pool: &PgPool) -> Result<Vec<User>, StoreError> {
    let rows = sqlx::query("SELECT * FROM users ORDER BY name")
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    rows.iter().map(user_from_row).collect()
}

pub(super) async fn set_user_password(
    pool: &PgPool,
    id: &str,
    password_hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = begin(pool).await?;
    lock_user_grants(&mut tx, id).await?;
    // A new credential generation: every session, code and family made
    // under the old one is dead from this commit on.
    let updated = sqlx::query(
        "UPDATE users SET password_hash = $1, credentials_gen = credentials_gen + 1 WHERE id = $2",
    )
    .bind(password_hash)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    if updated > 0 {
        for sql in [
            "DELETE FROM browser_sessions WHERE user_id = $1",
            // A code issued under the old password must not become a grant.
            "DELETE FROM auth_codes WHERE user_id = $1 AND consumed_at IS NULL",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        revoke_families(&mut tx, "user_id = $2", &[id], now).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(updated > 0)
}

/// Takes, in the one order every writer of a user's grants uses, the user's
/// row and then their families (by id): concurrent resets, deletions and
/// withdrawals of one user queue instead of deadlocking, and a code being
/// redeemed at the same moment (which holds the user's row `FOR SHARE`,
/// see `redeem_code`) either finishes first — its family is then revoked
/// here — or finds its code gone.
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

/// Marks the families selected by `families_where` (a condition on
/// `grant_families`, its one parameter bound to `key`) revoked at `now`,
/// keeping an earlier revocation time, and adds every access token issued
/// from them that is still live at `now` to `revocations`, as
/// `revoke_token` does. Returns how many families there were.
async fn revoke_families(
    tx: &mut PgConnection,
    families_where: &str,
    keys: &[&str],
    now: i64,
) -> Result<u64, StoreError> {
    let mut update = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE grant_families SET revoked_at = COALESCE(revoked_at, $1) WHERE {families_where}"
    )))
    .bind(now);
    for key in keys {
        update = update.bind(*key);
    }
    let families = update
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    if families > 0 {
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO revocations (jti, client_id, expires_at, revoked_at) \
             SELECT jti, client_id, expires_at, $1 FROM issued_tokens \
             WHERE expires_at > $1 AND family_id IN (SELECT id FROM grant_families WHERE {families_where}) \
             ON CONFLICT (jti) DO NOTHING"
        )))
        .bind(now);
        for key in keys {
            insert = insert.bind(*key);
        }
        insert.execute(&mut *tx).await.map_err(map_err)?;
    }
    Ok(families)
}

pub(super) async fn delete_user(pool: &PgPool, id: &str, now: i64) -> Result<bool, StoreError> {
    let mut tx = begin(pool).await?;
    lock_user_grants(&mut tx, id).await?;
    revoke_families(&mut tx, "user_id = $2", &[id], now).await?;
    for sql in [
        "DELETE FROM browser_sessions WHERE user_id = $1",
        "DELETE FROM consents WHERE user_id = $1",
        "DELETE FROM auth_codes WHERE user_id = $1 AND consumed_at IS NULL",
    ] {
        sqlx::query(sql)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    tx.commit().await.map_err(map_err)?;
    Ok(deleted > 0)
}

/// Takes the user's row `FOR SHARE` until the transaction ends: waits for a
/// reset, withdrawal or deletion of the user in progress (they hold it
/// `FOR UPDATE`, see `lock_user_grants`) and holds the next one off. The
/// caller's next statement sees whatever that change committed.
async fn share_user(tx: &mut PgConnection, user_id: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR SHARE")
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// The same for a client's row, which deleting the client locks first.
async fn share_client(tx: &mut PgConnection, client_id: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT 1 FROM clients WHERE id = $1 FOR SHARE")
        .bind(client_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(super) async fn insert_session(
    pool: &PgPool,
    hash: &str,
    session: &BrowserSession,
) -> Result<bool, StoreError> {
    let mut tx = begin(pool).await?;
    share_user(&mut tx, &session.user_id).await?;
    let inserted = sqlx::query(
        "INSERT INTO browser_sessions (hash, user_id, auth_time, expires_at, credentials_gen) \
         SELECT $1, $2, $3, $4, $5 \
         WHERE EXISTS (SELECT 1 FROM users WHERE id = $2 AND credentials_gen = $5)",
    )
    .bind(hash)
    .bind(&session.user_id)
    .bind(session.auth_time)
    .bind(session.expires_at)
    .bind(session.credentials_gen)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    tx.commit().await.map_err(map_err)?;
    Ok(inserted > 0)
}

pub(super) async fn get_session(
    pool: &PgPool,
    hash: &str,
    now: i64,
) -> Result<Option<BrowserSession>, StoreError> {
    let row = sqlx::query(
        "SELECT s.* FROM browser_sessions s \
         JOIN users u ON u.id = s.user_id AND u.credentials_gen = s.credentials_gen \
         WHERE s.hash = $1 AND s.expires_at > $2",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    row.as_ref().map(session_from_row).transpose()
}

pub(super) async fn delete_session(pool: &PgPool, hash: &str) -> Result<bool, StoreError> {
    let deleted = sqlx::query("DELETE FROM browser_sessions WHERE hash = $1")
        .bind(hash)
        .execute(pool)
        .await
        .map_err(map_err)?
        .rows_affected();
    Ok(deleted > 0)
}

pub(super) async fn list_consents(
    pool: &PgPool,
    user_id: &str,
) -> Result<Vec<Consent>, StoreError> {
    let rows =
        sqlx::query("SELECT * FROM consents WHERE user_id = $1 ORDER BY client_id, resource")
            .bind(user_id)
            .fetch_all(pool)
            .await
            .map_err(map_err)?;
    rows.iter().map(consent_from_row).collect()
}

pub(super) async fn revoke_consent(
    pool: &PgPool,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let mut tx = begin(pool).await?;
    lock_user_grants(&mut tx, user_id).await?;
    let forgotten = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    sqlx::query(
        "DELETE FROM auth_codes WHERE user_id = $1 AND client_id = $2 AND consumed_at IS NULL",
    )
    .bind(user_id)
    .bind(client_id)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    revoke_families(
        &mut tx,
        "user_id = $2 AND client_id = $3",
        &[user_id, client_id],
        now,
    )
    .await?;
    tx.commit().await.map_err(map_err)?;
    Ok(forgotten)
}

pub(super) async fn get_consent(
    pool: &PgPool,
    user_id: &str,
    client_id: &str,
    resource: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    let row = sqlx::query(
        "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2 AND resource = $3",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(resource)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    row.as_ref().map(|r| list_col(r, "scopes")).transpose()
}

pub(super) async fn record_consent(
    pool: &PgPool,
    user_id: &str,
    client_id: &str,
    resource: &str,
    scopes: &[String],
    at: i64,
) -> Result<(), StoreError> {
    // Recorded only while the user and the client exist, under their row
    // locks (as codes are): a consent to a client deleted meanwhile would be
    // inherited by a client created later under the same id.
    let mut tx = begin(pool).await?;
    share_user(&mut tx, user_id).await?;
    share_client(&mut tx, client_id).await?;
    sqlx::query(
        "INSERT INTO consents (user_id, client_id, resource, scopes, granted_at) \
         SELECT $1, $2, $3, $4, $5 \
         WHERE EXISTS (SELECT 1 FROM users WHERE id = $1) AND EXISTS (SELECT 1 FROM clients WHERE id = $2) \
         ON CONFLICT (user_id, client_id, resource) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(resource)
    .bind(list_json(scopes)?)
    .bind(at)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(())
}

pub(super) async fn insert_code(pool: &PgPool, code: &AuthCode) -> Result<bool, StoreError> {
    let mut tx = begin(pool).await?;
    share_user(&mut tx, &code.user_id).await?;
    share_client(&mut tx, &code.client_id).await?;
    let inserted = sqlx::query(
        "INSERT INTO auth_codes (hash, family_id, client_id, user_id, redirect_uri, code_challenge, scopes, resources, nonce, auth_time, expires_at, credentials_gen) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
         WHERE EXISTS (SELECT 1 FROM users WHERE id = $4 AND credentials_gen = $12) \
         AND EXISTS (SELECT 1 FROM consents WHERE user_id = $4 AND client_id = $3) \
         AND EXISTS (SELECT 1 FROM clients WHERE id = $3)",
    )
    .bind(&code.hash)
    .bind(&code.family_id)
    .bind(&code.client_id)
    .bind(&code.user_id)
    .bind(&code.redirect_uri)
    .bind(&code.code_challenge)
    .bind(list_json(&code.scopes)?)
    .bind(list_json(&code.resources)?)
    .bind(&code.nonce)
    .bind(code.auth_time)
    .bind(code.expires_at)
    .bind(code.credentials_gen)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    tx.commit().await.map_err(map_err)?;
    Ok(inserted > 0)
}

pub(super) async fn get_code(pool: &PgPool, hash: &str) -> Result<Option<AuthCode>, StoreError> {
    let row = sqlx::query("SELECT * FROM auth_codes WHERE hash = $1")
        .bind(hash)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(code_from_row).transpose()
}

async fn insert_family(tx: &mut PgConnection, f: &GrantFamily, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO grant_families (id, client_id, user_id, scopes, resources, auth_time, created_at, expires_at, revoked_at, credentials_gen) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&f.id)
    .bind(&f.client_id)
    .bind(&f.user_id)
    .bind(list_json(&f.scopes)?)
    .bind(list_json(&f.resources)?)
    .bind(f.auth_time)
    .bind(f.created_at)
    .bind(f.expires_at)
    .bind(f.revoked.then_some(now))
    .bind(f.credentials_gen)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Inserts a refresh token unless one with its hash exists (a retried
/// rotation derives the same successor).
async fn insert_refresh(
    tx: &mut PgConnection,
    family_id: &str,
    t: &RefreshToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, family_id, expires_at, used_at) VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO NOTHING",
    )
    .bind(&t.hash)
    .bind(family_id)
    .bind(t.expires_at)
    .bind(t.used_at)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn insert_issued(
    tx: &mut PgConnection,
    family_id: &str,
    t: &IssuedToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO issued_tokens (jti, family_id, client_id, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(&t.jti)
    .bind(family_id)
    .bind(&t.client_id)
    .bind(t.expires_at)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(super) async fn redeem_code(
    pool: &PgPool,
    hash: &str,
    now: i64,
    family: &GrantFamily,
    refresh: Option<&RefreshToken>,
    access: &IssuedToken,
) -> Result<Redeemed, StoreError> {
    let mut tx = begin(pool).await?;
    // Serialises with `lock_user_grants` (see there) and with deleting the
    // client; the binding is then checked in the consuming statement.
    share_user(&mut tx, &family.user_id).await?;
    share_client(&mut tx, &family.client_id).await?;
    let consumed = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE auth_codes SET consumed_at = $1 \
         WHERE hash = $2 AND consumed_at IS NULL AND expires_at > $1 AND {CODE_BOUND}"
    )))
    .bind(now)
    .bind(hash)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    if consumed > 0 {
        insert_family(&mut tx, family, now).await?;
        if let Some(refresh) = refresh {
            insert_refresh(&mut tx, &family.id, refresh).await?;
        }
        insert_issued(&mut tx, &family.id, access).await?;
        tx.commit().await.map_err(map_err)?;
        return Ok(Redeemed::Fresh);
    }
    let found: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT family_id, consumed_at FROM auth_codes WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(match found {
        Some((family_id, Some(_))) => Redeemed::Reused { family_id },
        _ => Redeemed::Unknown,
    })
}

async fn refresh_and_family(
    tx: &mut PgConnection,
    hash: &str,
) -> Result<Option<(RefreshToken, GrantFamily)>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{} WHERE r.hash = $1",
        refresh_with_family_sql()
    )))
    .bind(hash)
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_err)?;
    row.as_ref().map(refresh_with_family).transpose()
}

pub(super) async fn use_refresh_token(
    pool: &PgPool,
    hash: &str,
    now: i64,
) -> Result<Option<RefreshUse>, StoreError> {
    let mut tx = begin(pool).await?;
    let marked =
        sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL")
            .bind(now)
            .bind(hash)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
    let found = refresh_and_family(&mut tx, hash).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(found.map(|(token, family)| RefreshUse {
        family,
        token,
        first_use: marked > 0,
    }))
}

pub(super) async fn find_refresh_token(
    pool: &PgPool,
    hash: &str,
) -> Result<Option<(RefreshToken, GrantFamily)>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    refresh_and_family(&mut conn, hash).await
}

pub(super) async fn extend_family(
    pool: &PgPool,
    family_id: &str,
    now: i64,
    successor: &RefreshToken,
    access: &IssuedToken,
) -> Result<bool, StoreError> {
    let mut tx = begin(pool).await?;
    // The row lock is held until COMMIT: a concurrent revocation waits for
    // it (and then revokes the access token added here), or holds it first
    // (and then this re-checks the revoked row and finds it not live).
    let live: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM grant_families f \
         WHERE f.id = $1 AND f.revoked_at IS NULL AND f.expires_at > $2 AND {FAMILY_BOUND} \
         FOR UPDATE OF f"
    )))
    .bind(family_id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_err)?;
    if live.is_some() {
        insert_refresh(&mut tx, family_id, successor).await?;
        insert_issued(&mut tx, family_id, access).await?;
        // Used rows are needed only for retries inside the grace window
        // (reuse detection reads the family from the token itself).
        sqlx::query(
            "DELETE FROM refresh_tokens WHERE family_id = $1 AND used_at IS NOT NULL AND used_at < $2",
        )
        .bind(family_id)
        .bind(now - USED_REFRESH_TOKEN_RETENTION_SECS)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(live.is_some())
}

pub(super) async fn revoke_family(
    pool: &PgPool,
    family_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = begin(pool).await?;
    let families = revoke_families(&mut tx, "id = $2", &[family_id], now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(families > 0)
}

/// What `prune_grants` deletes, in order, each statement taking `now`.
/// Refresh tokens go with their own expiry or their family's (no refresh
/// works past the family's end). Issued-token records go only at their own
/// expiry, and a family only once it has expired and none of its access
/// tokens is still live: until then revoking the family (or deleting its
/// user) must still be able to revoke them.
const PRUNE_GRANTS: [&str; 5] = [
    "DELETE FROM auth_codes WHERE expires_at <= $1",
    "DELETE FROM browser_sessions WHERE expires_at <= $1",
    "DELETE FROM refresh_tokens WHERE expires_at <= $1 \
     OR family_id IN (SELECT id FROM grant_families WHERE expires_at <= $1)",
    "DELETE FROM issued_tokens WHERE expires_at <= $1",
    "DELETE FROM grant_families WHERE expires_at <= $1 \
     AND NOT EXISTS (SELECT 1 FROM issued_tokens i WHERE i.family_id = grant_families.id)",
];

pub(super) async fn prune_grants(pool: &PgPool, now: i64) -> Result<u64, StoreError> {
    let mut tx = begin(pool).await?;
    let mut total = 0;
    for sql in PRUNE_GRANTS {
        total += sqlx::query(sql)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
    }
    tx.commit().await.map_err(map_err)?;
    Ok(total)
}

/// What deleting clients takes with them, inside the deleting transaction
/// (after the `clients` rows are deleted, which holds off any code being
/// issued or redeemed for them, see `share_client`): every consent given to
/// them, their unredeemed codes, and their grant families — revoked, with
/// every access token issued from them still live at `now` added to the
/// revocations. A client created again under one of these ids inherits
/// nothing. The families are locked first, in id order, and consents go
/// before codes, the order a withdrawal takes them in, so the two queue
/// rather than deadlock.
pub(crate) async fn forget_clients(
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
        revoke_families(tx, "client_id = $2", &[id.as_str()], now).await?;
    }
    Ok(())
}
