//! Federated sign-in: identities at upstream providers linked to accounts,
//! and sign-ins under way at a provider (`migrations/*/…_federation.sql`).

use super::people::insert_user_in;
use super::{Backend, decode, list_json, map_err, stmt};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::{FederatedLogin, LinkedIdentity, User};
use sqlx::Pool;

const FIND_LINKED: &str = "SELECT u.*, l.provider, l.subject, l.user_id, l.email, l.email_verified, \
     l.linked_at, l.last_sign_in_at \
     FROM linked_identities l JOIN users u ON u.id = l.user_id \
     WHERE l.provider = $1 AND l.subject = $2";
/// Linked only while the account exists and the identity is free.
const INSERT_LINK: &str = "INSERT INTO linked_identities \
     (provider, subject, user_id, email, email_verified, linked_at, last_sign_in_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7 \
     WHERE EXISTS (SELECT 1 FROM users WHERE id = $3) \
     ON CONFLICT (provider, subject) DO NOTHING";
const REFRESH_LINK: &str = "UPDATE linked_identities \
     SET email = $1, email_verified = $2, last_sign_in_at = $3 \
     WHERE provider = $4 AND subject = $5 AND user_id = $6";
const SET_GROUPS: &str = "UPDATE users SET groups = $1 WHERE id = $2";
const LIST_LINKS: &str =
    "SELECT * FROM linked_identities WHERE user_id = $1 ORDER BY provider, subject";
const INSERT_LOGIN: &str = "INSERT INTO federated_logins (hash, provider, browser, request, expires_at) \
     VALUES ($1, $2, $3, $4, $5)";
/// One DELETE decides which callback gets the sign-in.
const TAKE_LOGIN: &str = "DELETE FROM federated_logins WHERE hash = $1 RETURNING *";

pub(crate) async fn find_linked_user<D: Backend>(
    pool: &Pool<D>,
    provider: &str,
    subject: &str,
) -> Result<Option<(User, LinkedIdentity)>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let row = stmt::<D>(FIND_LINKED)
        .bind(provider)
        .bind(subject)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref()
        .map(|r| Ok((decode::user::<D>(r)?, decode::linked_identity::<D>(r)?)))
        .transpose()
}

async fn insert_link<D: Backend>(
    conn: &mut D::Connection,
    l: &LinkedIdentity,
) -> Result<bool, StoreError> {
    let inserted = stmt::<D>(INSERT_LINK)
        .bind(&l.provider)
        .bind(&l.subject)
        .bind(&l.user_id)
        .bind(l.email.clone())
        .bind(l.email_verified)
        .bind(l.linked_at)
        .bind(l.last_sign_in_at)
        .execute(conn)
        .await?;
    Ok(inserted > 0)
}

pub(crate) async fn create_linked_user<D: Backend>(
    pool: &Pool<D>,
    user: &User,
    identity: &LinkedIdentity,
) -> Result<bool, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    insert_user_in::<D>(&mut tx, user).await?;
    if !insert_link::<D>(&mut tx, identity).await? {
        // Dropping the transaction rolls the new user back.
        return Ok(false);
    }
    tx.commit().await.map_err(map_err)?;
    Ok(true)
}

pub(crate) async fn link_identity<D: Backend>(
    pool: &Pool<D>,
    identity: &LinkedIdentity,
) -> Result<bool, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    insert_link::<D>(&mut conn, identity).await
}

pub(crate) async fn refresh_linked_identity<D: Backend>(
    pool: &Pool<D>,
    l: &LinkedIdentity,
    groups: &[String],
) -> Result<bool, StoreError> {
    let mut tx = D::begin_write(pool).await?;
    let updated = stmt::<D>(REFRESH_LINK)
        .bind(l.email.clone())
        .bind(l.email_verified)
        .bind(l.last_sign_in_at)
        .bind(&l.provider)
        .bind(&l.subject)
        .bind(&l.user_id)
        .execute(&mut *tx)
        .await?;
    if updated > 0 {
        stmt::<D>(SET_GROUPS)
            .bind(list_json(groups)?)
            .bind(&l.user_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(updated > 0)
}

pub(crate) async fn list_linked_identities<D: Backend>(
    pool: &Pool<D>,
    user_id: &str,
) -> Result<Vec<LinkedIdentity>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let rows = stmt::<D>(LIST_LINKS)
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(decode::linked_identity::<D>).collect()
}

pub(crate) async fn insert_federated_login<D: Backend>(
    pool: &Pool<D>,
    l: &FederatedLogin,
) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    stmt::<D>(INSERT_LOGIN)
        .bind(&l.hash)
        .bind(&l.provider)
        .bind(&l.browser)
        .bind(&l.request)
        .bind(l.expires_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn take_federated_login<D: Backend>(
    pool: &Pool<D>,
    hash: &str,
    now: i64,
) -> Result<Option<FederatedLogin>, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    let row = stmt::<D>(TAKE_LOGIN)
        .bind(hash)
        .fetch_optional(&mut *conn)
        .await?;
    let login = row.as_ref().map(decode::federated_login::<D>).transpose()?;
    // Consumed either way: an expired sign-in is gone, not waiting.
    Ok(login.filter(|l| l.expires_at > now))
}
