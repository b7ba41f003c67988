//! A client-side deadline on every Store operation.
//!
//! PostgreSQL's `statement_timeout` bounds a statement only while the server
//! can still talk to us. When the network path to the database silently drops
//! packets (a failover, a cut link, a stalled proxy), a query already sent
//! waits for TCP to give up — many minutes — and so would the request behind
//! it. sqlx has no per-query client timeout, so this wrapper puts one on every
//! call: past the deadline the operation is abandoned and the caller gets
//! `Unavailable`, which the server answers with 503 and `Retry-After`.
//!
//! Two limits, stated plainly:
//! - an abandoned write may still have committed (its COMMIT was sent, the
//!   answer never came): the 503 means "unknown", as with any timeout;
//! - sqlx checks an abandoned connection with a ping before reusing it, and
//!   that ping has no timeout of its own: on a path that stays black-holed,
//!   each abandoned operation holds one pool slot until the kernel gives up
//!   on the TCP connection. Requests then fail at `acquire_timeout` (still a
//!   prompt 503), and the pool recovers once those connections die.

use async_trait::async_trait;
use gatehouse_oauth::client::{Client, ClientOrigin};
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::{Change, KeyKind, Store, StoredKey};
use std::future::Future;
use std::time::Duration;

/// `inner` with every operation bounded by `deadline` (migrations excepted:
/// they may legitimately wait for another replica's migration lock).
pub struct Bounded<S> {
    inner: S,
    deadline: Duration,
}

impl<S: Store> Bounded<S> {
    pub fn new(inner: S, deadline: Duration) -> Self {
        Bounded { inner, deadline }
    }

    async fn within<T>(
        &self,
        what: &str,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        within(self.deadline, what, op).await
    }
}

/// `op`'s result, or `Unavailable` once `deadline` has passed without one.
async fn within<T>(
    deadline: Duration,
    what: &str,
    op: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, op).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!(
            "{what}: no answer from the store within {deadline:?}"
        ))),
    }
}

#[async_trait]
impl<S: Store> Store for Bounded<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        self.inner.migrate().await
    }

    async fn close(&self) {
        let _ = tokio::time::timeout(self.deadline, self.inner.close()).await;
    }

    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        self.within("get_client", self.inner.get_client(id)).await
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        self.within("insert_client", self.inner.insert_client(client))
            .await
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        self.within("update_client", self.inner.update_client(client))
            .await
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        self.within("delete_client", self.inner.delete_client(id))
            .await
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.within("list_clients", self.inner.list_clients()).await
    }

    async fn count_clients(&self, origin: ClientOrigin) -> Result<u64, StoreError> {
        self.within("count_clients", self.inner.count_clients(origin))
            .await
    }

    async fn touch_clients(&self, ids: &[String], at: i64) -> Result<(), StoreError> {
        self.within("touch_clients", self.inner.touch_clients(ids, at))
            .await
    }

    async fn delete_idle_clients(
        &self,
        origin: ClientOrigin,
        before: i64,
    ) -> Result<u64, StoreError> {
        self.within(
            "delete_idle_clients",
            self.inner.delete_idle_clients(origin, before),
        )
        .await
    }

    async fn latest_change(&self) -> Result<i64, StoreError> {
        self.within("latest_change", self.inner.latest_change())
            .await
    }

    async fn changes_since(&self, seq: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        self.within("changes_since", self.inner.changes_since(seq, limit))
            .await
    }

    async fn prune_changes(&self, before: i64) -> Result<u64, StoreError> {
        self.within("prune_changes", self.inner.prune_changes(before))
            .await
    }

    async fn keys(&self, kind: KeyKind) -> Result<Vec<StoredKey>, StoreError> {
        self.within("keys", self.inner.keys(kind)).await
    }

    async fn insert_key_unless_newer(
        &self,
        key: &StoredKey,
        newer_than: i64,
    ) -> Result<bool, StoreError> {
        self.within(
            "insert_key_unless_newer",
            self.inner.insert_key_unless_newer(key, newer_than),
        )
        .await
    }

    async fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        self.within("delete_key", self.inner.delete_key(id)).await
    }

    async fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.within(
            "revoke_token",
            self.inner.revoke_token(jti, client_id, expires_at),
        )
        .await
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        self.within("is_revoked", self.inner.is_revoked(jti)).await
    }

    async fn prune_revocations(&self, now: i64) -> Result<u64, StoreError> {
        self.within("prune_revocations", self.inner.prune_revocations(now))
            .await
    }

    async fn record_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.within(
            "record_assertion_jti",
            self.inner.record_assertion_jti(client_id, jti, expires_at),
        )
        .await
    }

    async fn prune_assertion_jtis(&self, now: i64) -> Result<u64, StoreError> {
        self.within("prune_assertion_jtis", self.inner.prune_assertion_jtis(now))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_operation_that_never_answers_is_unavailable_at_the_deadline() {
        let started = std::time::Instant::now();
        let result: Result<(), StoreError> = within(
            Duration::from_millis(200),
            "get_client",
            std::future::pending(),
        )
        .await;
        assert!(
            matches!(&result, Err(StoreError::Unavailable(m)) if m.contains("get_client")),
            "{result:?}"
        );
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn an_answer_before_the_deadline_passes_through_unchanged() {
        let ok = within(Duration::from_secs(3), "ping", async { Ok(7) }).await;
        assert_eq!(ok.ok(), Some(7));
        let conflict: Result<(), StoreError> = within(Duration::from_secs(3), "insert", async {
            Err(StoreError::Conflict("exists".into()))
        })
        .await;
        assert!(matches!(conflict, Err(StoreError::Conflict(_))));
    }
}
