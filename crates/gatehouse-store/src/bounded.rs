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
use gatehouse_oauth::grant_records::{
    AuthCode, BrowserSession, Consent, FederatedLogin, GrantFamily, IssuedToken, LinkedIdentity,
    Redeemed, RefreshToken, RefreshUse, User,
};
use gatehouse_oauth::store::{Admission, Change, KeyKind, RegistrationCaps, Store, StoredKey};
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

    async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        self.within("pending_migrations", self.inner.pending_migrations())
            .await
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

    async fn insert_registered_client(
        &self,
        client: &Client,
        address: &str,
        caps: RegistrationCaps,
    ) -> Result<Admission, StoreError> {
        self.within(
            "insert_registered_client",
            self.inner.insert_registered_client(client, address, caps),
        )
        .await
    }

    async fn delete_unused_clients(
        &self,
        origin: ClientOrigin,
        before: i64,
    ) -> Result<u64, StoreError> {
        self.within(
            "delete_unused_clients",
            self.inner.delete_unused_clients(origin, before),
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

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        self.within("insert_user", self.inner.insert_user(user))
            .await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.within("get_user", self.inner.get_user(id)).await
    }

    async fn get_user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.within("get_user_by_name", self.inner.get_user_by_name(name))
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.within("list_users", self.inner.list_users()).await
    }

    async fn set_user_password(
        &self,
        id: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.within(
            "set_user_password",
            self.inner.set_user_password(id, password_hash, now),
        )
        .await
    }

    async fn delete_user(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        self.within("delete_user", self.inner.delete_user(id, now))
            .await
    }

    async fn find_linked_user(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<(User, LinkedIdentity)>, StoreError> {
        self.within(
            "find_linked_user",
            self.inner.find_linked_user(provider, subject),
        )
        .await
    }

    async fn create_linked_user(
        &self,
        user: &User,
        identity: &LinkedIdentity,
    ) -> Result<bool, StoreError> {
        self.within(
            "create_linked_user",
            self.inner.create_linked_user(user, identity),
        )
        .await
    }

    async fn link_identity(&self, identity: &LinkedIdentity) -> Result<bool, StoreError> {
        self.within("link_identity", self.inner.link_identity(identity))
            .await
    }

    async fn refresh_linked_identity(
        &self,
        identity: &LinkedIdentity,
        groups: &[String],
    ) -> Result<bool, StoreError> {
        self.within(
            "refresh_linked_identity",
            self.inner.refresh_linked_identity(identity, groups),
        )
        .await
    }

    async fn list_linked_identities(
        &self,
        user_id: &str,
    ) -> Result<Vec<LinkedIdentity>, StoreError> {
        self.within(
            "list_linked_identities",
            self.inner.list_linked_identities(user_id),
        )
        .await
    }

    async fn insert_federated_login(&self, login: &FederatedLogin) -> Result<(), StoreError> {
        self.within(
            "insert_federated_login",
            self.inner.insert_federated_login(login),
        )
        .await
    }

    async fn take_federated_login(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<FederatedLogin>, StoreError> {
        self.within(
            "take_federated_login",
            self.inner.take_federated_login(hash, now),
        )
        .await
    }

    async fn insert_session(
        &self,
        hash: &str,
        session: &BrowserSession,
    ) -> Result<bool, StoreError> {
        self.within("insert_session", self.inner.insert_session(hash, session))
            .await
    }

    async fn get_session(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<BrowserSession>, StoreError> {
        self.within("get_session", self.inner.get_session(hash, now))
            .await
    }

    async fn delete_session(&self, hash: &str) -> Result<bool, StoreError> {
        self.within("delete_session", self.inner.delete_session(hash))
            .await
    }

    async fn get_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.within(
            "get_consent",
            self.inner.get_consent(user_id, client_id, resource),
        )
        .await
    }

    async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
        self.within("list_consents", self.inner.list_consents(user_id))
            .await
    }

    async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.within(
            "revoke_consent",
            self.inner.revoke_consent(user_id, client_id, now),
        )
        .await
    }

    async fn record_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scopes: &[String],
        at: i64,
    ) -> Result<(), StoreError> {
        self.within(
            "record_consent",
            self.inner
                .record_consent(user_id, client_id, resource, scopes, at),
        )
        .await
    }

    async fn insert_code(&self, code: &AuthCode) -> Result<bool, StoreError> {
        self.within("insert_code", self.inner.insert_code(code))
            .await
    }

    async fn get_code(&self, hash: &str) -> Result<Option<AuthCode>, StoreError> {
        self.within("get_code", self.inner.get_code(hash)).await
    }

    async fn redeem_code(
        &self,
        hash: &str,
        now: i64,
        family: &GrantFamily,
        refresh: Option<&RefreshToken>,
        access: &IssuedToken,
    ) -> Result<Redeemed, StoreError> {
        self.within(
            "redeem_code",
            self.inner.redeem_code(hash, now, family, refresh, access),
        )
        .await
    }

    async fn use_refresh_token(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<RefreshUse>, StoreError> {
        self.within("use_refresh_token", self.inner.use_refresh_token(hash, now))
            .await
    }

    async fn find_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<(RefreshToken, GrantFamily)>, StoreError> {
        self.within("find_refresh_token", self.inner.find_refresh_token(hash))
            .await
    }

    async fn extend_family(
        &self,
        family_id: &str,
        now: i64,
        successor: &RefreshToken,
        access: &IssuedToken,
    ) -> Result<bool, StoreError> {
        self.within(
            "extend_family",
            self.inner.extend_family(family_id, now, successor, access),
        )
        .await
    }

    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<bool, StoreError> {
        self.within("revoke_family", self.inner.revoke_family(family_id, now))
            .await
    }

    async fn prune_grants(&self, now: i64) -> Result<u64, StoreError> {
        self.within("prune_grants", self.inner.prune_grants(now))
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
