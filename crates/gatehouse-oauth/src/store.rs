//! The Store trait: everything Gatehouse shares through storage. Backends live
//! in `gatehouse-store`; this crate has no SQL (docs/decisions.md "Shape").

use crate::client::{Client, ClientOrigin};
use crate::error::StoreError;
use crate::grant_records::{
    AuthCode, BrowserSession, Consent, FederatedLogin, GrantFamily, IssuedToken, LinkedIdentity,
    Redeemed, RefreshToken, RefreshUse, User,
};
use async_trait::async_trait;

/// The caps a self-registration is stored under
/// ([`Store::insert_registered_client`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationCaps {
    /// Most self-registered clients in the store (`registration.max_clients`).
    pub total: u64,
    /// Most live self-registered clients per address, 0: no cap
    /// (`registration.max_clients_per_address`).
    pub per_address: u64,
}

/// Whether a self-registration was stored ([`Store::insert_registered_client`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Stored,
    /// The store holds `RegistrationCaps::total` self-registered clients.
    TotalCapReached,
    /// The address holds `RegistrationCaps::per_address` of them.
    AddressCapReached,
}

/// What kind of key a stored key row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A JWS signing key (PKCS#8, sealed).
    Signing,
    /// The HMAC key that hashes client secrets (32 bytes, sealed).
    SecretHmac,
    /// The HMAC key the embedded gateway binds session ids to callers with
    /// (32 bytes, sealed).
    GatewaySession,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Signing => "signing",
            KeyKind::SecretHmac => "secret_hmac",
            KeyKind::GatewaySession => "gateway_session",
        }
    }
}

/// A key row: private material sealed under the key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub id: String,
    pub kind: KeyKind,
    /// JWS algorithm for signing keys; empty for HMAC keys.
    pub alg: String,
    pub sealed: Vec<u8>,
    pub created_at: i64,
    /// When the key starts signing (or hashing) new values, Unix seconds.
    /// A key's state — pending, current, previous, retired — is derived from
    /// this and the clock ([`crate::keys::states`]), never stored.
    pub activate_at: i64,
}

/// One entry of the monotonic change sequence that caches follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub entity: String,
    pub entity_id: String,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A description for logs (backend and location, never credentials).
    fn describe(&self) -> String;

    /// Brings the schema up to date, safely while other processes do the
    /// same; returns the versions this call applied.
    async fn migrate(&self) -> Result<Vec<i64>, StoreError>;
    /// The migrations this build knows that the store has not applied (all
    /// of them for a store never migrated); changes nothing.
    async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError>;
    /// Closes the backend's connections (graceful shutdown); later calls fail.
    async fn close(&self);

    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError>;
    /// Inserts a new client; `Conflict` if the id exists. Records a change.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// Replaces a client's metadata, secrets and registration token if its
    /// stored revision is still `client.revision`, bumping the revision and
    /// recording a change in the same transaction (so every replica's cache
    /// drops the old record within one poll). `false` when the client is gone
    /// or was changed since it was read: the caller re-reads and decides.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;
    /// Deletes a client; `false` if there was none. Records a change. In
    /// the same transaction (as every path that deletes clients: the idle
    /// and unused sweeps below too) it revokes the client's grant families
    /// (every access token issued from them that is still live goes into
    /// the revocations, as [`Store::revoke_family`] does), deletes its
    /// unredeemed codes and forgets every consent given to it: a client
    /// created again under the same id inherits nothing.
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError>;
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
    async fn count_clients(&self, origin: ClientOrigin) -> Result<u64, StoreError>;
    /// Records that these clients were used at `at` (batched by the caller).
    async fn touch_clients(&self, ids: &[String], at: i64) -> Result<(), StoreError>;
    /// Deletes clients of `origin` neither used nor created since `before`,
    /// with their grants, codes and consents (see [`Store::delete_client`]).
    async fn delete_idle_clients(
        &self,
        origin: ClientOrigin,
        before: i64,
    ) -> Result<u64, StoreError>;
    /// Inserts a self-registered client and records `address` (the client
    /// address it registered from, IPv6 as its /64) with it — only while
    /// fewer than `caps.total` self-registered clients exist and fewer than
    /// `caps.per_address` registered from that address (0: no cap per
    /// address). Otherwise nothing is stored and the answer says which cap
    /// was reached. `Conflict` if the id exists. Records a change.
    ///
    /// The counts and the insert are one atomic step, never a
    /// read-then-write in the process: of registrations racing on several
    /// replicas, no more than either cap allows are stored.
    async fn insert_registered_client(
        &self,
        client: &Client,
        address: &str,
        caps: RegistrationCaps,
    ) -> Result<Admission, StoreError>;
    /// Deletes clients of `origin` never used and created before `before`,
    /// with their grants, codes and consents (see [`Store::delete_client`]).
    async fn delete_unused_clients(
        &self,
        origin: ClientOrigin,
        before: i64,
    ) -> Result<u64, StoreError>;

    /// The highest change sequence number (0 when there is none).
    async fn latest_change(&self) -> Result<i64, StoreError>;
    /// Changes must be numbered in commit order: a reader that has seen
    /// sequence number N must never later find a committed change below N.
    /// (SQLite's single writer gives this; a PostgreSQL backend must too.)
    async fn changes_since(&self, seq: i64, limit: u32) -> Result<Vec<Change>, StoreError>;
    /// Deletes changes recorded before `before`, always keeping the newest.
    async fn prune_changes(&self, before: i64) -> Result<u64, StoreError>;

    /// Every key of `kind`, ordered by `activate_at`, `created_at`, id.
    async fn keys(&self, kind: KeyKind) -> Result<Vec<StoredKey>, StoreError>;
    /// Inserts `key` unless a key of the same kind and algorithm has an
    /// `activate_at` later than `newer_than`, and records a change (entity
    /// `"key"`) in the same transaction, so every replica reloads its keys
    /// within one poll. Returns whether this key was inserted.
    ///
    /// The check and the insert are one atomic step in SQL (never a
    /// read-then-write in the process): of several replicas racing the same
    /// conditional insert, exactly one wins. `newer_than = i64::MIN` means
    /// "unless any key exists" (first start); `newer_than = now` means
    /// "unless one is pending" (`gatehouse key rotate`).
    async fn insert_key_unless_newer(
        &self,
        key: &StoredKey,
        newer_than: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes a key row (a retired signing key's private material), recording
    /// a change (entity `"key"`) in the same transaction. `false` if there was
    /// none (another replica deleted it first).
    async fn delete_key(&self, id: &str) -> Result<bool, StoreError>;

    // Revoked access tokens (RFC 7009 §2). Access tokens are self-contained
    // JWTs (RFC 9068), so revocation is a deny-list by `jti`, each entry kept
    // only until the token's own `exp`.
    //
    // What every backend must guarantee (a PostgreSQL backend included):
    // - once `revoke_token` has returned `Ok`, every later `is_revoked` for that
    //   `jti` on any replica answers `true` until `expires_at` (read-your-writes
    //   across connections: the write is committed before returning, and reads
    //   go to the primary, never to a lagging replica);
    // - `revoke_token` is idempotent: revoking twice, or concurrently from two
    //   replicas, is not an error and keeps one row (a unique key on `jti`,
    //   `ON CONFLICT DO NOTHING`), and never shortens an existing entry;
    // - `is_revoked` is a read by primary key (it runs on every introspection);
    // - `prune_revocations` deletes only rows whose `expires_at` has passed, so
    //   a token is never un-revoked while it could still verify.

    /// Records that the access token `jti`, issued to `client_id`, is revoked
    /// until `expires_at` (the token's `exp`, Unix seconds). Returns whether a
    /// new entry was made (`false`: it was already revoked).
    async fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError>;
    /// Whether the access token `jti` has been revoked.
    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Deletes revocations whose token expired at or before `now`.
    async fn prune_revocations(&self, now: i64) -> Result<u64, StoreError>;

    // Client assertion `jti`s (RFC 7523 §3 item 7: "The authorization server
    // MAY ensure that JWTs are not replayed by maintaining the set of used
    // 'jti' values for the length of time for which the JWT would be
    // considered valid"). Keyed by (client_id, jti): `jti` is unique only
    // per issuer, and each client is its own issuer.
    //
    // What every backend must guarantee: `record_assertion_jti` is an atomic
    // insert-if-absent committed before it returns, so of two replicas
    // receiving the same assertion at once exactly one gets `true`;
    // `prune_assertion_jtis` deletes only rows whose `expires_at` has passed
    // (after which the assertion itself is refused as expired).

    /// Records that `client_id` used the assertion `jti`, remembered until
    /// `expires_at` (Unix seconds). Returns `false` if it was already
    /// recorded — a replay.
    async fn record_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes recorded `jti`s whose `expires_at` is at or before `now`.
    async fn prune_assertion_jtis(&self, now: i64) -> Result<u64, StoreError>;

    // People: accounts, sign-in sessions, consent, codes and
    // refresh-token families. Single-use values are consumed by one atomic
    // conditional UPDATE in SQL, never a read-then-write in the process, so
    // of two replicas redeeming the same code or refresh token at once
    // exactly one is first.
    //
    // Credential state. Every session, code and grant family records the
    // user's credential generation (`User::credentials_gen`) it was made
    // under; a password change bumps the generation in its own transaction.
    // Whatever was made under an older generation is dead: the store checks
    // the generation, joined to the user's row, at every use (session
    // lookup, code issue and redemption, refresh-token lookup and
    // extension), in the statement that uses it. A code is also redeemable,
    // and a family refreshable, only while the user's consent for the client
    // exists. So a sign-in that read the old password hash before a reset,
    // or a code issued while consent was being withdrawn, can never outlive
    // the reset or withdrawal, however the requests interleave — also on
    // PostgreSQL under READ COMMITTED, where the inserts take the user's row
    // `FOR SHARE` (resets and withdrawals take it `FOR UPDATE`) and check in
    // a later statement, so they wait for a concurrent reset or withdrawal
    // and then see it.

    /// Inserts a user; `Conflict` when the id or the name is taken.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError>;
    async fn get_user_by_name(&self, name: &str) -> Result<Option<User>, StoreError>;
    /// Every user, ordered by name.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Replaces a user's password hash, bumps their credential generation
    /// (so nothing made under the old one is honoured again), ends their
    /// browser sessions,
    /// deletes their unredeemed codes and revokes their grant families (with every access token issued from
    /// them still live at `now`), in one transaction: a password is reset
    /// because it may be known to someone else, who must lose what it got
    /// them. `false` when there is no such user.
    async fn set_user_password(
        &self,
        id: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes a user with their sessions, consents, unredeemed codes and
    /// linked identities, and revokes their
    /// grant families (with every access token issued from them that is
    /// still live at `now`), in one transaction. `false` when there was none.
    async fn delete_user(&self, id: &str, now: i64) -> Result<bool, StoreError>;

    /// The account linked to `subject` at `provider`, with the link.
    async fn find_linked_user(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<(User, LinkedIdentity)>, StoreError>;
    /// Creates `user` and links `identity` to it, in one transaction (a
    /// person's first sign-in at a provider). `Conflict` when the user's id
    /// or name is taken; `false` (nothing stored) when the identity is
    /// already linked — a concurrent first sign-in won.
    async fn create_linked_user(
        &self,
        user: &User,
        identity: &LinkedIdentity,
    ) -> Result<bool, StoreError>;
    /// Links `identity` to its existing account; `false` when the account
    /// does not exist or the identity is linked already.
    async fn link_identity(&self, identity: &LinkedIdentity) -> Result<bool, StoreError>;
    /// At a sign-in: the link's email fields and last sign-in, and its
    /// account's `groups`, as the provider says now. `false` when the link
    /// is gone.
    async fn refresh_linked_identity(
        &self,
        identity: &LinkedIdentity,
        groups: &[String],
    ) -> Result<bool, StoreError>;
    /// The identities linked to an account, by provider and subject.
    async fn list_linked_identities(
        &self,
        user_id: &str,
    ) -> Result<Vec<LinkedIdentity>, StoreError>;
    /// Records a sign-in sent to a provider.
    async fn insert_federated_login(&self, login: &FederatedLogin) -> Result<(), StoreError>;
    /// Consumes the sign-in whose state hashes to `hash`: the first caller
    /// gets it (if it has not expired at `now`), every later one `None`.
    async fn take_federated_login(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<FederatedLogin>, StoreError>;

    /// Stores a browser session under the [`lookup_hash`](crate::grant_records::lookup_hash) of its cookie
    /// — only if its user still exists with `session.credentials_gen` (the
    /// generation read with the password hash that was checked). `false`:
    /// the password changed meanwhile (or the user is gone), nothing stored.
    async fn insert_session(
        &self,
        hash: &str,
        session: &BrowserSession,
    ) -> Result<bool, StoreError>;
    /// The session, if it exists, has not expired at `now` and was made
    /// under its user's current credential generation.
    async fn get_session(&self, hash: &str, now: i64)
    -> Result<Option<BrowserSession>, StoreError>;
    /// Ends a session (sign-out); `false` when there was none.
    async fn delete_session(&self, hash: &str) -> Result<bool, StoreError>;

    /// The scopes `user_id` has granted `client_id` for `resource`, if any.
    async fn get_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<Vec<String>>, StoreError>;
    /// Records consent for `scopes` (replacing what was recorded for this
    /// user, client and resource).
    async fn record_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scopes: &[String],
        at: i64,
    ) -> Result<(), StoreError>;

    /// Every consent `user_id` has given, ordered by client and resource.
    async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError>;
    /// Withdraws consent: forgets every consent `user_id` gave `client_id`,
    /// deletes the codes not yet redeemed for it, and revokes the user's grant families for that client (with every
    /// access token issued from them still live at `now`), in one
    /// transaction, so the client must ask again. Returns how many consents
    /// were forgotten.
    async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> Result<u64, StoreError>;

    /// Stores a new authorization code — only while its user is still at
    /// `code.credentials_gen`, has a consent for its client, and the client
    /// exists. `false`: one of them changed meanwhile, nothing stored.
    async fn insert_code(&self, code: &AuthCode) -> Result<bool, StoreError>;
    /// The code by [`lookup_hash`](crate::grant_records::lookup_hash), whether consumed or not (the token
    /// endpoint checks the binding before redeeming). `None` once pruned.
    async fn get_code(&self, hash: &str) -> Result<Option<AuthCode>, StoreError>;
    /// Consumes the code if it is unconsumed and unexpired at `now`, its
    /// user still at the code's credential generation and still consenting
    /// to its client (all in the consuming statement), and in the same
    /// transaction stores `family` (under the code's generation), its first
    /// refresh token (if any) and the access token issued. See [`Redeemed`]:
    /// a code whose binding no longer holds is `Unknown`.
    async fn redeem_code(
        &self,
        hash: &str,
        now: i64,
        family: &GrantFamily,
        refresh: Option<&RefreshToken>,
        access: &IssuedToken,
    ) -> Result<Redeemed, StoreError>;

    /// Marks the refresh token used at `now` if it was unused (atomically),
    /// and returns it with its family; when it was already used, returns it
    /// with `first_use: false`. `None`: no such token. The family reads as
    /// `revoked` also when it is no longer bound (credentials changed,
    /// consent withdrawn), here and in [`Store::find_refresh_token`].
    async fn use_refresh_token(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<RefreshUse>, StoreError>;
    /// The refresh token and its family, without changing anything
    /// (introspection, revocation).
    async fn find_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<(RefreshToken, GrantFamily)>, StoreError>;
    /// Adds a successor refresh token (insert-if-absent: a retry inside the
    /// grace window derives the same successor) and records the access token
    /// issued with it — only while the family is neither revoked nor expired
    /// at `now`, its user still at the family's credential generation and
    /// still consenting to its client. Returns whether the family was live.
    async fn extend_family(
        &self,
        family_id: &str,
        now: i64,
        successor: &RefreshToken,
        access: &IssuedToken,
    ) -> Result<bool, StoreError>;
    /// Revokes a family: no refresh token of it works again, and every
    /// access token issued from it still live at `now` is added to the
    /// revocations. Idempotent; `false` when there is no such family.
    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<bool, StoreError>;
    /// Deletes expired codes, sessions, refresh tokens, families and
    /// issued-token records (expired at or before `now`).
    async fn prune_grants(&self, now: i64) -> Result<u64, StoreError>;
}
