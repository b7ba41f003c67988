//! The one `Store` implementation, expanded for each backend's store type
//! (`Store` is another crate's trait, so no generic impl can cover both).
//!
//! A shared method runs the generic operation in `crate::sql`. A method
//! marked "per backend" calls the function of the same name in the invoking
//! backend's own modules (`clients`, `keys`), which the
//! matching file names in `sqlite/` and `postgres/` provide; the comment
//! says why it is not shared. The expanding module supplies `self.pool` and
//! the inherent `describe_store`, `migrate_schema` and `pending_schema`.

macro_rules! impl_store {
    ($store:ty) => {
        const _: () = {
            use ::gatehouse_oauth::client::{Client, ClientOrigin};
            use ::gatehouse_oauth::error::StoreError;
            use ::gatehouse_oauth::grant_records::{
                AuthCode, BrowserSession, Consent, FederatedLogin, GrantFamily, IssuedToken,
                LinkedIdentity, Redeemed, RefreshToken, RefreshUse, User,
            };
            use ::gatehouse_oauth::store::{
                Admission, Change, KeyKind, RegistrationCaps, Store, StoredKey,
            };
            use $crate::sql;

            #[::async_trait::async_trait]
            impl Store for $store {
                // Per backend: a file path or a server address.
                fn describe(&self) -> String {
                    self.describe_store()
                }

                // Per backend: SQLite locks a file, PostgreSQL takes an advisory lock.
                async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
                    self.migrate_schema().await
                }

                async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
                    self.pending_schema().await
                }

                async fn close(&self) {
                    self.pool.close().await;
                }

                async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
                    sql::clients::get_client(&self.pool, id).await
                }

                async fn insert_client(&self, c: &Client) -> Result<(), StoreError> {
                    sql::clients::insert_client(&self.pool, c).await
                }

                async fn update_client(&self, c: &Client) -> Result<bool, StoreError> {
                    sql::clients::update_client(&self.pool, c).await
                }

                async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
                    sql::clients::delete_client(&self.pool, id).await
                }

                async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
                    sql::clients::list_clients(&self.pool).await
                }

                async fn count_clients(&self, origin: ClientOrigin) -> Result<u64, StoreError> {
                    sql::clients::count_clients(&self.pool, origin).await
                }

                // Per backend: PostgreSQL updates the batch as one array; SQLite has no arrays.
                async fn touch_clients(&self, ids: &[String], at: i64) -> Result<(), StoreError> {
                    clients::touch_clients(&self.pool, ids, at).await
                }

                async fn delete_idle_clients(
                    &self,
                    origin: ClientOrigin,
                    before: i64,
                ) -> Result<u64, StoreError> {
                    sql::clients::delete_idle_clients(&self.pool, origin, before).await
                }

                // Per backend: PostgreSQL serialises registrations with an advisory lock.
                async fn insert_registered_client(
                    &self,
                    c: &Client,
                    address: &str,
                    caps: RegistrationCaps,
                ) -> Result<Admission, StoreError> {
                    clients::insert_registered_client(&self.pool, c, address, caps).await
                }

                async fn delete_unused_clients(
                    &self,
                    origin: ClientOrigin,
                    before: i64,
                ) -> Result<u64, StoreError> {
                    sql::clients::delete_unused_clients(&self.pool, origin, before).await
                }

                async fn latest_change(&self) -> Result<i64, StoreError> {
                    sql::changes::latest_change(&self.pool).await
                }

                async fn changes_since(
                    &self,
                    seq: i64,
                    limit: u32,
                ) -> Result<Vec<Change>, StoreError> {
                    sql::changes::changes_since(&self.pool, seq, limit).await
                }

                async fn prune_changes(&self, before: i64) -> Result<u64, StoreError> {
                    sql::changes::prune_changes(&self.pool, before).await
                }

                async fn keys(&self, kind: KeyKind) -> Result<Vec<StoredKey>, StoreError> {
                    sql::keys::keys(&self.pool, kind).await
                }

                // Per backend: PostgreSQL locks the `keys` table first.
                async fn insert_key_unless_newer(
                    &self,
                    key: &StoredKey,
                    newer_than: i64,
                ) -> Result<bool, StoreError> {
                    keys::insert_key_unless_newer(&self.pool, key, newer_than).await
                }

                async fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
                    sql::keys::delete_key(&self.pool, id).await
                }

                async fn revoke_token(
                    &self,
                    jti: &str,
                    client_id: &str,
                    expires_at: i64,
                ) -> Result<bool, StoreError> {
                    sql::tokens::revoke_token(&self.pool, jti, client_id, expires_at).await
                }

                async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
                    sql::tokens::is_revoked(&self.pool, jti).await
                }

                async fn prune_revocations(&self, now: i64) -> Result<u64, StoreError> {
                    sql::tokens::prune_revocations(&self.pool, now).await
                }

                async fn record_assertion_jti(
                    &self,
                    client_id: &str,
                    jti: &str,
                    expires_at: i64,
                ) -> Result<bool, StoreError> {
                    sql::tokens::record_assertion_jti(&self.pool, client_id, jti, expires_at).await
                }

                async fn prune_assertion_jtis(&self, now: i64) -> Result<u64, StoreError> {
                    sql::tokens::prune_assertion_jtis(&self.pool, now).await
                }

                async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
                    sql::people::insert_user(&self.pool, user).await
                }

                async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
                    sql::people::get_user(&self.pool, id).await
                }

                async fn get_user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
                    sql::people::get_user_by_name(&self.pool, name).await
                }

                async fn list_users(&self) -> Result<Vec<User>, StoreError> {
                    sql::people::list_users(&self.pool).await
                }

                async fn set_user_password(
                    &self,
                    id: &str,
                    password_hash: &str,
                    now: i64,
                ) -> Result<bool, StoreError> {
                    sql::people::set_user_password(&self.pool, id, password_hash, now).await
                }

                async fn delete_user(&self, id: &str, now: i64) -> Result<bool, StoreError> {
                    sql::people::delete_user(&self.pool, id, now).await
                }

                async fn find_linked_user(
                    &self,
                    provider: &str,
                    subject: &str,
                ) -> Result<Option<(User, LinkedIdentity)>, StoreError> {
                    sql::federation::find_linked_user(&self.pool, provider, subject).await
                }

                async fn create_linked_user(
                    &self,
                    user: &User,
                    identity: &LinkedIdentity,
                ) -> Result<bool, StoreError> {
                    sql::federation::create_linked_user(&self.pool, user, identity).await
                }

                async fn link_identity(
                    &self,
                    identity: &LinkedIdentity,
                ) -> Result<bool, StoreError> {
                    sql::federation::link_identity(&self.pool, identity).await
                }

                async fn refresh_linked_identity(
                    &self,
                    identity: &LinkedIdentity,
                    groups: &[String],
                ) -> Result<bool, StoreError> {
                    sql::federation::refresh_linked_identity(&self.pool, identity, groups).await
                }

                async fn list_linked_identities(
                    &self,
                    user_id: &str,
                ) -> Result<Vec<LinkedIdentity>, StoreError> {
                    sql::federation::list_linked_identities(&self.pool, user_id).await
                }

                async fn insert_federated_login(
                    &self,
                    login: &FederatedLogin,
                ) -> Result<(), StoreError> {
                    sql::federation::insert_federated_login(&self.pool, login).await
                }

                async fn take_federated_login(
                    &self,
                    hash: &str,
                    now: i64,
                ) -> Result<Option<FederatedLogin>, StoreError> {
                    sql::federation::take_federated_login(&self.pool, hash, now).await
                }

                async fn insert_session(
                    &self,
                    hash: &str,
                    session: &BrowserSession,
                ) -> Result<bool, StoreError> {
                    sql::people::insert_session(&self.pool, hash, session).await
                }

                async fn get_session(
                    &self,
                    hash: &str,
                    now: i64,
                ) -> Result<Option<BrowserSession>, StoreError> {
                    sql::people::get_session(&self.pool, hash, now).await
                }

                async fn delete_session(&self, hash: &str) -> Result<bool, StoreError> {
                    sql::people::delete_session(&self.pool, hash).await
                }

                async fn get_consent(
                    &self,
                    user_id: &str,
                    client_id: &str,
                    resource: &str,
                ) -> Result<Option<Vec<String>>, StoreError> {
                    sql::people::get_consent(&self.pool, user_id, client_id, resource).await
                }

                async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
                    sql::people::list_consents(&self.pool, user_id).await
                }

                async fn revoke_consent(
                    &self,
                    user_id: &str,
                    client_id: &str,
                    now: i64,
                ) -> Result<u64, StoreError> {
                    sql::people::revoke_consent(&self.pool, user_id, client_id, now).await
                }

                async fn record_consent(
                    &self,
                    user_id: &str,
                    client_id: &str,
                    resource: &str,
                    scopes: &[String],
                    at: i64,
                ) -> Result<(), StoreError> {
                    sql::people::record_consent(
                        &self.pool, user_id, client_id, resource, scopes, at,
                    )
                    .await
                }

                async fn insert_code(&self, code: &AuthCode) -> Result<bool, StoreError> {
                    sql::grants::insert_code(&self.pool, code).await
                }

                async fn get_code(&self, hash: &str) -> Result<Option<AuthCode>, StoreError> {
                    sql::grants::get_code(&self.pool, hash).await
                }

                async fn redeem_code(
                    &self,
                    hash: &str,
                    now: i64,
                    family: &GrantFamily,
                    refresh: Option<&RefreshToken>,
                    access: &IssuedToken,
                ) -> Result<Redeemed, StoreError> {
                    sql::grants::redeem_code(&self.pool, hash, now, family, refresh, access).await
                }

                async fn use_refresh_token(
                    &self,
                    hash: &str,
                    now: i64,
                ) -> Result<Option<RefreshUse>, StoreError> {
                    sql::grants::use_refresh_token(&self.pool, hash, now).await
                }

                async fn find_refresh_token(
                    &self,
                    hash: &str,
                ) -> Result<Option<(RefreshToken, GrantFamily)>, StoreError> {
                    sql::grants::find_refresh_token(&self.pool, hash).await
                }

                async fn extend_family(
                    &self,
                    family_id: &str,
                    now: i64,
                    successor: &RefreshToken,
                    access: &IssuedToken,
                ) -> Result<bool, StoreError> {
                    sql::grants::extend_family(&self.pool, family_id, now, successor, access).await
                }

                async fn revoke_family(
                    &self,
                    family_id: &str,
                    now: i64,
                ) -> Result<bool, StoreError> {
                    sql::grants::revoke_family(&self.pool, family_id, now).await
                }

                async fn prune_grants(&self, now: i64) -> Result<u64, StoreError> {
                    sql::grants::prune_grants(&self.pool, now).await
                }
            }
        };
    };
}
pub(crate) use impl_store;
