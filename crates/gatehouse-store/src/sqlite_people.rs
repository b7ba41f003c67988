//! People rows in SQLite: accounts, browser sessions, consent,
//! authorization codes and refresh-token families.
//!
//! Every write that decides something (a code's or refresh token's first
//! use, a family's liveness) runs in `BEGIN IMMEDIATE`: the transaction holds
//! SQLite's single write lock from its start, so no other writer — another
//! store on the same file included — runs between its check and its writes,
//! and the single-use decision itself is one conditional UPDATE.
//!
//! Sessions, codes and families are bound to the user's credential
//! generation and codes and families to the user's consent for the client
//! (see the `Store` trait): inserts and uses check the binding in the
//! statement that inserts or uses, which SQLite's single writer makes
//! atomic with respect to any reset or withdrawal.

use crate::common::{
    CODE_BOUND, FAMILY_BOUND, list_json, map_err, people_decoders, refresh_with_family_sql,
};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::{
    AuthCode, BrowserSession, Consent, GrantFamily, IssuedToken, Redeemed, RefreshToken,
    RefreshUse, User,
};
use gatehouse_oauth::limits::USED_REFRESH_TOKEN_RETENTION_SECS;
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

people_decoders!(SqliteRow);

async fn begin_immediate(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)
}

pub(crate) async fn insert_user(pool: &SqlitePool, user: &User) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, name, password_hash, groups, created_at, credentials_gen) VALUES (?, ?, ?, ?, ?, ?)",
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

pub(crate) async fn get_user(pool: &SqlitePool, id: &str) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT * FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(user_from_row).transpose()
}

pub(crate) async fn get_user_by_name(
    pool: &SqlitePool,
    name: &str,
) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT * FROM users WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(user_from_row).transpose()
}

pub(crate) async fn list_users(pool: &SqlitePool) -> Result<Vec<User>, StoreError> {
    let rows = sqlx::query("SELECT * FROM users ORDER BY name")
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    rows.iter().map(user_from_row).collect()
}

pub(crate) async fn set_user_password(
    pool: &SqlitePool,
    id: &str,
    password_hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = begin_immediate(pool).await?;
    // A new credential generation: every session, code and family made
    // under the old one is dead from this commit on, whenever it was (or
    // will be) stored.
    let updated = sqlx::query(
        "UPDATE users SET password_hash = ?, credentials_gen = credentials_gen + 1 WHERE id = ?",
    )
    .bind(password_hash)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    if updated > 0 {
        for sql in [
            "DELETE FROM browser_sessions WHERE user_id = ?",
            // A code issued under the old password must not become a grant.
            "DELETE FROM auth_codes WHERE user_id = ? AND consumed_at IS NULL",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        revoke_families(&mut tx, "user_id = ?2", &[id], now).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(updated > 0)
}

/// Marks the families selected by `families_where` (a condition on
/// `grant_families`, its one parameter bound to `key`) revoked at `now`,
/// keeping an earlier revocation time, and adds every access token issued
/// from them that is still live at `now` to `revocations`, as
/// `revoke_token` does. Returns how many families there were.
async fn revoke_families(
    tx: &mut SqliteConnection,
    families_where: &str,
    keys: &[&str],
    now: i64,
) -> Result<u64, StoreError> {
    let mut update = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE grant_families SET revoked_at = COALESCE(revoked_at, ?1) WHERE {families_where}"
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
             SELECT jti, client_id, expires_at, ?1 FROM issued_tokens \
             WHERE expires_at > ?1 AND family_id IN (SELECT id FROM grant_families WHERE {families_where}) \
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

pub(crate) async fn delete_user(pool: &SqlitePool, id: &str, now: i64) -> Result<bool, StoreError> {
    let mut tx = begin_immediate(pool).await?;
    revoke_families(&mut tx, "user_id = ?2", &[id], now).await?;
    for sql in [
        "DELETE FROM browser_sessions WHERE user_id = ?",
        "DELETE FROM consents WHERE user_id = ?",
        "DELETE FROM auth_codes WHERE user_id = ? AND consumed_at IS NULL",
    ] {
        sqlx::query(sql)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    let deleted = sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    tx.commit().await.map_err(map_err)?;
    Ok(deleted > 0)
}

pub(crate) async fn insert_session(
    pool: &SqlitePool,
    hash: &str,
    session: &BrowserSession,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO browser_sessions (hash, user_id, auth_time, expires_at, credentials_gen) \
         SELECT ?1, ?2, ?3, ?4, ?5 \
         WHERE EXISTS (SELECT 1 FROM users WHERE id = ?2 AND credentials_gen = ?5)",
    )
    .bind(hash)
    .bind(&session.user_id)
    .bind(session.auth_time)
    .bind(session.expires_at)
    .bind(session.credentials_gen)
    .execute(pool)
    .await
    .map_err(map_err)?
    .rows_affected();
    Ok(inserted > 0)
}

pub(crate) async fn get_session(
    pool: &SqlitePool,
    hash: &str,
    now: i64,
) -> Result<Option<BrowserSession>, StoreError> {
    let row = sqlx::query(
        "SELECT s.* FROM browser_sessions s \
         JOIN users u ON u.id = s.user_id AND u.credentials_gen = s.credentials_gen \
         WHERE s.hash = ? AND s.expires_at > ?",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    row.as_ref().map(session_from_row).transpose()
}

pub(crate) async fn delete_session(pool: &SqlitePool, hash: &str) -> Result<bool, StoreError> {
    let deleted = sqlx::query("DELETE FROM browser_sessions WHERE hash = ?")
        .bind(hash)
        .execute(pool)
        .await
        .map_err(map_err)?
        .rows_affected();
    Ok(deleted > 0)
}

pub(crate) async fn get_consent(
    pool: &SqlitePool,
    user_id: &str,
    client_id: &str,
    resource: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    let row = sqlx::query(
        "SELECT scopes FROM consents WHERE user_id = ? AND client_id = ? AND resource = ?",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(resource)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    row.as_ref().map(|r| list_col(r, "scopes")).transpose()
}

pub(crate) async fn list_consents(
    pool: &SqlitePool,
    user_id: &str,
) -> Result<Vec<Consent>, StoreError> {
    let rows = sqlx::query("SELECT * FROM consents WHERE user_id = ? ORDER BY client_id, resource")
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    rows.iter().map(consent_from_row).collect()
}

pub(crate) async fn revoke_consent(
    pool: &SqlitePool,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let mut tx = begin_immediate(pool).await?;
    let forgotten = sqlx::query("DELETE FROM consents WHERE user_id = ? AND client_id = ?")
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    sqlx::query(
        "DELETE FROM auth_codes WHERE user_id = ? AND client_id = ? AND consumed_at IS NULL",
    )
    .bind(user_id)
    .bind(client_id)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    revoke_families(
        &mut tx,
        "user_id = ?2 AND client_id = ?3",
        &[user_id, client_id],
        now,
    )
    .await?;
    tx.commit().await.map_err(map_err)?;
    Ok(forgotten)
}

pub(crate) async fn record_consent(
    pool: &SqlitePool,
    user_id: &str,
    client_id: &str,
    resource: &str,
    scopes: &[String],
    at: i64,
) -> Result<(), StoreError> {
    // Recorded only while the user and the client exist: a consent to a
    // client deleted meanwhile would be inherited by a client created later
    // under the same id.
    sqlx::query(
        "INSERT INTO consents (user_id, client_id, resource, scopes, granted_at) \
         SELECT ?1, ?2, ?3, ?4, ?5 \
         WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1) AND EXISTS (SELECT 1 FROM clients WHERE id = ?2) \
         ON CONFLICT (user_id, client_id, resource) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(resource)
    .bind(list_json(scopes)?)
    .bind(at)
    .execute(pool)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn insert_code(pool: &SqlitePool, code: &AuthCode) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO auth_codes (hash, family_id, client_id, user_id, redirect_uri, code_challenge, scopes, resources, nonce, auth_time, expires_at, credentials_gen) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 \
         WHERE EXISTS (SELECT 1 FROM users WHERE id = ?4 AND credentials_gen = ?12) \
         AND EXISTS (SELECT 1 FROM consents WHERE user_id = ?4 AND client_id = ?3) \
         AND EXISTS (SELECT 1 FROM clients WHERE id = ?3)",
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
    .execute(pool)
    .await
    .map_err(map_err)?
    .rows_affected();
    Ok(inserted > 0)
}

pub(crate) async fn get_code(
    pool: &SqlitePool,
    hash: &str,
) -> Result<Option<AuthCode>, StoreError> {
    let row = sqlx::query("SELECT * FROM auth_codes WHERE hash = ?")
        .bind(hash)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(code_from_row).transpose()
}

async fn insert_family(
    tx: &mut SqliteConnection,
    f: &GrantFamily,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO grant_families (id, client_id, user_id, scopes, resources, auth_time, created_at, expires_at, revoked_at, credentials_gen) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    tx: &mut SqliteConnection,
    family_id: &str,
    t: &RefreshToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, family_id, expires_at, used_at) VALUES (?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING",
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
    tx: &mut SqliteConnection,
    family_id: &str,
    t: &IssuedToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO issued_tokens (jti, family_id, client_id, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (jti) DO NOTHING",
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

pub(crate) async fn redeem_code(
    pool: &SqlitePool,
    hash: &str,
    now: i64,
    family: &GrantFamily,
    refresh: Option<&RefreshToken>,
    access: &IssuedToken,
) -> Result<Redeemed, StoreError> {
    let mut tx = begin_immediate(pool).await?;
    let consumed = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE auth_codes SET consumed_at = ?1 \
         WHERE hash = ?2 AND consumed_at IS NULL AND expires_at > ?1 AND {CODE_BOUND}"
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
        sqlx::query_as("SELECT family_id, consumed_at FROM auth_codes WHERE hash = ?")
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
    tx: &mut SqliteConnection,
    hash: &str,
) -> Result<Option<(RefreshToken, GrantFamily)>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{} WHERE r.hash = ?",
        refresh_with_family_sql()
    )))
    .bind(hash)
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_err)?;
    row.as_ref().map(refresh_with_family).transpose()
}

pub(crate) async fn use_refresh_token(
    pool: &SqlitePool,
    hash: &str,
    now: i64,
) -> Result<Option<RefreshUse>, StoreError> {
    let mut tx = begin_immediate(pool).await?;
    let marked =
        sqlx::query("UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL")
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

pub(crate) async fn find_refresh_token(
    pool: &SqlitePool,
    hash: &str,
) -> Result<Option<(RefreshToken, GrantFamily)>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    refresh_and_family(&mut conn, hash).await
}

pub(crate) async fn extend_family(
    pool: &SqlitePool,
    family_id: &str,
    now: i64,
    successor: &RefreshToken,
    access: &IssuedToken,
) -> Result<bool, StoreError> {
    let mut tx = begin_immediate(pool).await?;
    let live: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM grant_families f \
         WHERE f.id = ? AND f.revoked_at IS NULL AND f.expires_at > ? AND {FAMILY_BOUND}"
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
            "DELETE FROM refresh_tokens WHERE family_id = ?1 AND used_at IS NOT NULL AND used_at < ?2",
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

pub(crate) async fn revoke_family(
    pool: &SqlitePool,
    family_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = begin_immediate(pool).await?;
    let families = revoke_families(&mut tx, "id = ?2", &[family_id], now).await?;
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
    "DELETE FROM auth_codes WHERE expires_at <= ?1",
    "DELETE FROM browser_sessions WHERE expires_at <= ?1",
    "DELETE FROM refresh_tokens WHERE expires_at <= ?1 \
     OR family_id IN (SELECT id FROM grant_families WHERE expires_at <= ?1)",
    "DELETE FROM issued_tokens WHERE expires_at <= ?1",
    "DELETE FROM grant_families WHERE expires_at <= ?1 \
     AND NOT EXISTS (SELECT 1 FROM issued_tokens i WHERE i.family_id = grant_families.id)",
];

pub(crate) async fn prune_grants(pool: &SqlitePool, now: i64) -> Result<u64, StoreError> {
    let mut tx = begin_immediate(pool).await?;
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
/// (after the `clients` rows are gone): every consent given to them, their
/// unredeemed codes, and their grant families — revoked, with every access
/// token issued from them still live at `now` added to the revocations. A
/// client created again under one of these ids inherits nothing.
pub(crate) async fn forget_clients(
    tx: &mut SqliteConnection,
    ids: &[String],
    now: i64,
) -> Result<(), StoreError> {
    for id in ids {
        for sql in [
            "DELETE FROM consents WHERE client_id = ?",
            "DELETE FROM auth_codes WHERE client_id = ? AND consumed_at IS NULL",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        revoke_families(tx, "client_id = ?2", &[id.as_str()], now).await?;
    }
    Ok(())
}
