//! The statement text both backends run, written once.
//!
//! SQLite accepts PostgreSQL's `$1, $2 …` placeholders, so every statement
//! that reads or writes one thing is a `const` in this module's files and
//! runs through either driver ([`driver`]). The rule (ARCHITECTURE.md,
//! "crates/gatehouse-store"): **shared text unless locking or numbering
//! differs**. What differs — how a transaction begins and what it locks
//! first, how the change log numbers entries, migrations — is written by hand
//! in `sqlite/` and `postgres/`, in files named after the same concerns, and
//! the shared operations reach it through [`Backend`]. [`impl_store!`] maps
//! every `Store` method to one or the other, once for both stores.

pub(crate) mod changes;
pub(crate) mod clients;
pub(crate) mod decode;
pub(crate) mod driver;
pub(crate) mod federation;
pub(crate) mod grants;
pub(crate) mod keys;
pub(crate) mod people;
mod store_impl;
pub(crate) mod tokens;

pub(crate) use driver::{Driver, stmt};
pub(crate) use store_impl::impl_store;

use gatehouse_oauth::error::StoreError;
use sqlx::{Pool, Transaction};
use std::future::Future;

/// What each backend writes by hand and the shared operations call: the
/// parts where locking or numbering differs.
pub(crate) trait Backend: Driver {
    /// A transaction for a write that decides something. SQLite: `BEGIN
    /// IMMEDIATE`, so it holds the single write lock from its start;
    /// PostgreSQL: a plain `BEGIN`, the decision is made under row locks.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, StoreError>> + Send;

    /// Appends one change-log entry per id of `entity`, numbered in commit
    /// order, as the last write before COMMIT.
    fn record_changes(
        tx: &mut Self::Connection,
        entity: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What deleting clients takes with them (consents, unredeemed codes,
    /// grant families), inside the deleting transaction.
    fn forget_clients(
        tx: &mut Self::Connection,
        ids: &[String],
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// First in a password reset, consent withdrawal or user deletion.
    /// PostgreSQL takes the user's row and then their families `FOR
    /// UPDATE`, in that one order, so such writers queue instead of
    /// deadlocking; SQLite's `BEGIN IMMEDIATE` already excludes every other
    /// writer.
    fn lock_user_grants(
        tx: &mut Self::Connection,
        user_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// First in a write bound to a user (and, for codes and consents, a
    /// client): PostgreSQL holds those rows `FOR SHARE` until COMMIT, so the
    /// binding checked by the next statement sees any reset, withdrawal or
    /// deletion that committed before; SQLite: nothing beyond its write lock.
    fn share_rows(
        tx: &mut Self::Connection,
        user_id: &str,
        client_id: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`grants::FAMILY_LIVE`] as `extend_family` runs it: PostgreSQL holds
    /// the family row `FOR UPDATE` while the successor is added, the lock a
    /// revocation's UPDATE takes too.
    const FAMILY_LIVE_LOCKED: &'static str;
}

/// A unique-key violation is the caller's `Conflict` (e.g. a taken client
/// id); every other database error means the store cannot answer now.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

pub(crate) fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A list (groups, scopes, resources) as the JSON array text it is stored as.
pub(crate) fn list_json(list: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(list).map_err(corrupt)
}

/// A stored JSON array of strings; anything else is `Corrupt`.
pub(crate) fn list_from(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
}
