//! Grants: authorization codes, grant families, refresh tokens and the
//! access tokens issued from them. The statements are all here; a code's
//! insert and redemption and a family's extension run them after the
//! backend's row locks (`Backend::share_rows`, `FAMILY_LIVE_LOCKED`;
//! `postgres/locks.rs`).
//!
//! Codes and families are bound to the user's credential generation and to
//! the user's consent for the client (see the `Store` trait): checked in the
//! statement that inserts, consumes or reads them ([`CODE_BOUND`],
//! [`FAMILY_BOUND`]).

use super::{Backend, decode, list_json, map_err, stmt};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::{
    AuthCode, GrantFamily, IssuedToken, Redeemed, RefreshToken, RefreshUse,
};
use gatehouse_oauth::limits::USED_REFRESH_TOKEN_RETENTION_SECS;
use sqlx::{AssertSqlSafe, Pool, Transaction};

/// Whether the grant family `f` is still bound to what it was made under:
/// its user is still at the family's credential generation and still
/// consents to its client (a condition on `grant_families f`).
macro_rules! family_bound {
    () => {
        "EXISTS (SELECT 1 FROM users u WHERE u.id = f.user_id AND u.credentials_gen = f.credentials_gen) \
         AND EXISTS (SELECT 1 FROM consents c WHERE c.user_id = f.user_id AND c.client_id = f.client_id)"
    };
}

/// The same for an unredeemed code (a condition on `auth_codes`).
macro_rules! code_bound {
    () => {
        "EXISTS (SELECT 1 FROM users u \
         WHERE u.id = auth_codes.user_id AND u.credentials_gen = auth_codes.credentials_gen) \
         AND EXISTS (SELECT 1 FROM consents c \
         WHERE c.user_id = auth_codes.user_id AND c.client_id = auth_codes.client_id)"
    };
}

/// Stored only while the user is at the code's credential generation,
/// consents to the client, and the client exists (a metadata document
/// client, `https://…`, is never a row: its document was just checked).
const INSERT_CODE: &str = "INSERT INTO auth_codes (hash, family_id, client_id, user_id, redirect_uri, code_challenge, scopes, resources, nonce, auth_time, expires_at, credentials_gen) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
     WHERE EXISTS (SELECT 1 FROM users WHERE id = $4 AND credentials_gen = $12) \
     AND EXISTS (SELECT 1 FROM consents WHERE user_id = $4 AND client_id = $3) \
     AND (substr($3, 1, 8) = 'https://' OR EXISTS (SELECT 1 FROM clients WHERE id = $3))";
const GET_CODE: &str = "SELECT * FROM auth_codes WHERE hash = $1";
/// A code's first use: one conditional UPDATE decides it.
const CONSUME_CODE: &str = concat!(
    "UPDATE auth_codes SET consumed_at = $1 \
     WHERE hash = $2 AND consumed_at IS NULL AND expires_at > $1 AND ",
    code_bound!()
);
const CODE_FATE: &str = "SELECT family_id, consumed_at FROM auth_codes WHERE hash = $1";
const INSERT_FAMILY: &str = "INSERT INTO grant_families (id, client_id, user_id, scopes, resources, auth_time, created_at, expires_at, revoked_at, credentials_gen) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
/// A retried rotation derives the same successor: stored once.
const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (hash, family_id, expires_at, used_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (hash) DO NOTHING";
const INSERT_ISSUED: &str = "INSERT INTO issued_tokens (jti, family_id, client_id, expires_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (jti) DO NOTHING";
/// A refresh token's first use: one conditional UPDATE decides it.
const USE_REFRESH: &str =
    "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL";
/// The family columns, the refresh-token columns (prefixed `r_`, as both
/// tables have `expires_at`) and whether the family is still bound
/// (`f_bound`, 1 or 0), for the refresh token `$1`.
const REFRESH_WITH_FAMILY: &str = concat!(
    "SELECT r.hash AS r_hash, r.family_id AS r_family_id, \
     r.expires_at AS r_expires_at, r.used_at AS r_used_at, f.*, \
     CAST(CASE WHEN ",
    family_bound!(),
    " THEN 1 ELSE 0 END AS BIGINT) AS f_bound \
     FROM refresh_tokens r JOIN grant_families f ON f.id = r.family_id WHERE r.hash = $1"
);
/// The family `$1` if it is live at `$2` (a row, or none). PostgreSQL runs
/// it with a row lock ([`Backend::FAMILY_LIVE_LOCKED`]).
macro_rules! family_live {
    () => {
        concat!(
            "SELECT 1 FROM grant_families f \
             WHERE f.id = $1 AND f.revoked_at IS NULL AND f.expires_at > $2 AND ",
            family_bound!()
        )
    };
}
pub(crate) const FAMILY_LIVE: &str = family_live!();
/// [`FAMILY_LIVE`] holding the family row until COMMIT (PostgreSQL).
pub(crate) const FAMILY_LIVE_FOR_UPDATE: &str = concat!(family_live!(), " FOR UPDATE OF f");
/// Used rows are needed only for retries inside the grace window (reuse
/// detection reads the family from the token itself).
const DELETE_USED_REFRESH: &str =
    "DELETE FROM refresh_tokens WHERE family_id = $1 AND used_at IS NOT NULL AND used_at < $2";

/// What `prune_grants` deletes, in order, each statement taking `now`.
/// Refresh tokens go with their own expiry or their family's (no refresh
/// works past the family's end). Issued-token records go only at their own
/// expiry, and a family only once it has expired and none of its access
/// tokens is still live: until then revoking the family (or deleting its
/// user) must still be able to revoke them.
const PRUNE_GRANTS: [&str; 6] = [
    "DELETE FROM auth_codes WHERE expires_at <= $1",
    "DELETE FROM federated_logins WHERE expires_at <= $1",
    "DELETE FROM browser_sessions WHERE expires_at <= $1",
    "DELETE FROM refresh_tokens WHERE expires_at <= $1 \
     OR family_id IN (SELECT id FROM grant_families WHERE expires_at <= $1)",
    "DELETE FROM issued_tokens WHERE expires_at <= $1",
    "DELETE FROM grant_families WHERE expires_at <= $1 \
     AND NOT EXISTS (SELECT 1 FROM issued_tokens i WHERE i.family_id = grant_families.id)",
];

/// Stores a code if its user, consent and client still hold.
pub(crate) async fn store_code<D: Backend>(
    conn: &mut D::Connection,
    code: &AuthCode,
) -> Result<bool, StoreError> {
    let inserted = stmt::<D>(INSERT_CODE)
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
        .execute(conn)
        .await?;
    Ok(inserted > 0)
}

pub(crate) async fn get_code<D: Backend>(
    pool: &Pool<D>,
    hash: &str,
) -> Result<Option<AuthCode>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let row = stmt::<D>(GET_CODE)
        .bind(hash)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(decode::code::<D>).transpose()
}

/// A code's redemption inside `tx`, once the backend holds its locks:
/// consumes the code and stores the family, its refresh token and the access
/// token; or, the code already used or unknown, says which. Commits.
pub(crate) async fn redeem<D: Backend>(
    mut tx: Transaction<'static, D>,
    hash: &str,
    now: i64,
    family: &GrantFamily,
    refresh: Option<&RefreshToken>,
    access: &IssuedToken,
) -> Result<Redeemed, StoreError> {
    let consumed = stmt::<D>(CONSUME_CODE)
        .bind(now)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    if consumed > 0 {
        insert_family::<D>(&mut *tx, family, now).await?;
        if let Some(refresh) = refresh {
            insert_refresh::<D>(&mut *tx, &family.id, refresh).await?;
        }
        insert_issued::<D>(&mut *tx, &family.id, access).await?;
        tx.commit().await.map_err(map_err)?;
        return Ok(Redeemed::Fresh);
    }
    let found = stmt::<D>(CODE_FATE)
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await.map_err(map_err)?;
    let Some(row) = found else {
        return Ok(Redeemed::Unknown);
    };
    Ok(match D::get::<Option<i64>>(&row, "consumed_at")? {
        Some(_) => Redeemed::Reused {
            family_id: D::get(&row, "family_id")?,
        },
        None => Redeemed::Unknown,
    })
}

async fn insert_family<D: Backend>(
    tx: &mut D::Connection,
    f: &GrantFamily,
    now: i64,
) -> Result<(), StoreError> {
    stmt::<D>(INSERT_FAMILY)
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
        .execute(tx)
        .await?;
    Ok(())
}

async fn insert_refresh<D: Backend>(
    tx: &mut D::Connection,
    family_id: &str,
    t: &RefreshToken,
) -> Result<(), StoreError> {
    stmt::<D>(INSERT_REFRESH)
        .bind(&t.hash)
        .bind(family_id)
        .bind(t.expires_at)
        .bind(t.used_at)
        .execute(tx)
        .await?;
    Ok(())
}

async fn insert_issued<D: Backend>(
    tx: &mut D::Connection,
    family_id: &str,
    t: &IssuedToken,
) -> Result<(), StoreError> {
    stmt::<D>(INSERT_ISSUED)
        .bind(&t.jti)
        .bind(family_id)
        .bind(&t.client_id)
        .bind(t.expires_at)
        .execute(tx)
        .await?;
    Ok(())
}

async fn refresh_and_family<D: Backend>(
    conn: &mut D::Connection,
    hash: &str,
) -> Result<Option<(RefreshToken, GrantFamily)>, StoreError> {
    let row = stmt::<D>(REFRESH_WITH_FAMILY)
        .bind(hash)
        .fetch_optional(conn)
        .await?;
    row.as_ref()
        .map(decode::refresh_with_family::<D>)
        .transpose()
}

/// A refresh token's use: marked used by one conditional UPDATE (the
/// first use is the one that changed the row), then read with its family,
/// in one write transaction. Shared: the UPDATE's row lock (PostgreSQL) or
/// the write lock (SQLite) is all the ordering it needs.
pub(crate) async fn use_refresh_token<D: Backend>(
    pool: &Pool<D>,
    hash: &str,
    now: i64,
) -> Result<Option<RefreshUse>, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    let marked = stmt::<D>(USE_REFRESH)
        .bind(now)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    let found = refresh_and_family::<D>(&mut *tx, hash).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(found.map(|(token, family)| RefreshUse {
        family,
        token,
        first_use: marked > 0,
    }))
}

pub(crate) async fn find_refresh_token<D: Backend>(
    pool: &Pool<D>,
    hash: &str,
) -> Result<Option<(RefreshToken, GrantFamily)>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    refresh_and_family::<D>(&mut *conn, hash).await
}

/// A live family's extension inside the caller's transaction (after it has
/// found the family live under its lock): the successor refresh token, the
/// access token, and used tokens past the grace window gone.
pub(crate) async fn extend<D: Backend>(
    tx: &mut D::Connection,
    family_id: &str,
    now: i64,
    successor: &RefreshToken,
    access: &IssuedToken,
) -> Result<(), StoreError> {
    insert_refresh::<D>(tx, family_id, successor).await?;
    insert_issued::<D>(tx, family_id, access).await?;
    stmt::<D>(DELETE_USED_REFRESH)
        .bind(family_id)
        .bind(now - USED_REFRESH_TOKEN_RETENTION_SECS)
        .execute(tx)
        .await?;
    Ok(())
}

/// Shared: revoking takes the family's row lock by its UPDATE on both
/// backends (see [`revoke_families`]).
pub(crate) async fn revoke_family<D: Backend>(
    pool: &Pool<D>,
    family_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    let families = revoke_families::<D>(&mut *tx, "id = $2", &[family_id], now).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(families > 0)
}

pub(crate) async fn prune_grants<D: Backend>(pool: &Pool<D>, now: i64) -> Result<u64, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    let mut total = 0;
    for sql in PRUNE_GRANTS {
        total += stmt::<D>(sql).bind(now).execute(&mut *tx).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(total)
}

/// Marks the families selected by `families_where` (a condition on
/// `grant_families` whose parameters from `$2` on are bound to `keys`)
/// revoked at `now` (`$1`), keeping an earlier revocation time, and adds
/// every access token issued from them that is still live at `now` to
/// `revocations`, as `revoke_token` does. Returns how many families there
/// were. Runs in the caller's transaction, after its locks.
pub(crate) async fn revoke_families<D: Backend>(
    tx: &mut D::Connection,
    families_where: &str,
    keys: &[&str],
    now: i64,
) -> Result<u64, StoreError> {
    let mut update = stmt::<D>(AssertSqlSafe(format!(
        "UPDATE grant_families SET revoked_at = COALESCE(revoked_at, $1) WHERE {families_where}"
    )))
    .bind(now);
    for key in keys {
        update = update.bind(*key);
    }
    let families = update.execute(&mut *tx).await?;
    if families > 0 {
        let mut insert = stmt::<D>(AssertSqlSafe(format!(
            "INSERT INTO revocations (jti, client_id, expires_at, revoked_at) \
             SELECT jti, client_id, expires_at, $1 FROM issued_tokens \
             WHERE expires_at > $1 AND family_id IN (SELECT id FROM grant_families WHERE {families_where}) \
             ON CONFLICT (jti) DO NOTHING"
        )))
        .bind(now);
        for key in keys {
            insert = insert.bind(*key);
        }
        insert.execute(&mut *tx).await?;
    }
    Ok(families)
}

/// A new code, under its user's and client's rows
/// ([`Backend::share_rows`]).
pub(crate) async fn insert_code<D: Backend>(
    pool: &Pool<D>,
    code: &AuthCode,
) -> Result<bool, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    D::share_rows(&mut tx, &code.user_id, Some(&code.client_id)).await?;
    let inserted = store_code::<D>(&mut tx, code).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(inserted)
}

/// A code's redemption, under its user's and client's rows: it serialises
/// with a reset, withdrawal or deletion (`Backend::lock_user_grants`) and
/// with deleting the client; the binding is then checked in the consuming
/// statement ([`redeem`]).
pub(crate) async fn redeem_code<D: Backend>(
    pool: &Pool<D>,
    hash: &str,
    now: i64,
    family: &GrantFamily,
    refresh: Option<&RefreshToken>,
    access: &IssuedToken,
) -> Result<Redeemed, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    D::share_rows(&mut tx, &family.user_id, Some(&family.client_id)).await?;
    redeem::<D>(tx, hash, now, family, refresh, access).await
}

/// The family's liveness and the successor's insert in one transaction,
/// the family row held where the backend needs it
/// ([`Backend::FAMILY_LIVE_LOCKED`]): either this commits first and a
/// concurrent revocation revokes the access token added here, or the
/// revocation commits first and this finds the family not live.
pub(crate) async fn extend_family<D: Backend>(
    pool: &Pool<D>,
    family_id: &str,
    now: i64,
    successor: &RefreshToken,
    access: &IssuedToken,
) -> Result<bool, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    let live = stmt::<D>(D::FAMILY_LIVE_LOCKED)
        .bind(family_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if live {
        extend::<D>(&mut tx, family_id, now, successor, access).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(live)
}
