//! The keys that live in the Store, sealed under the key-encryption key
//! (docs/decisions.md "Keys, secrets and identifiers"): creating the first
//! one on first start, sealing new ones, and the secret-hashing keys.
//! Signing keys in memory, and how they follow rotations, are
//! [`crate::keys::keyring`]'s business.

use crate::client_auth::SecretVerifier;
use crate::crypto::{Kek, SecretHasher, random_bytes};
use crate::keys::states::{KeyState, KeyTimes, derive_states};
use crate::keys::{Alg, SigningKey};
use crate::store::{KeyKind, Store, StoredKey};
use std::collections::HashMap;
use std::sync::Arc;

/// One version of the signing keys: `current` signs, `published` is what the
/// JWKS publishes (pending, current and previous keys of every algorithm:
/// every key that may verify a live token, or soon will).
pub struct KeySet {
    /// Grows whenever `current` or `published` changes, so a rendering of
    /// the set (the JWKS body) can be cached per version.
    pub version: u64,
    pub current: Arc<SigningKey>,
    /// The current key of every algorithm that has one (`current` among
    /// them): ID tokens may need another algorithm than access tokens
    /// (OIDC's default RS256, or the client's `id_token_signed_response_alg`).
    pub currents: Vec<Arc<SigningKey>>,
    pub published: Vec<Arc<SigningKey>>,
}

impl KeySet {
    /// The JWKS document (RFC 7517 §5).
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.published.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
    }

    /// The key that signs with `alg` now, if there is one.
    pub fn current_for(&self, alg: Alg) -> Option<&Arc<SigningKey>> {
        self.currents.iter().find(|k| k.alg == alg)
    }

    /// The published key with this `kid`, if it signs with `alg`.
    pub fn find(&self, kid: &str, alg: &str) -> Option<&Arc<SigningKey>> {
        self.published
            .iter()
            .find(|k| k.kid == kid && k.alg.as_str() == alg)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyLoadError(pub String);

pub(crate) fn store_err(e: crate::error::StoreError) -> KeyLoadError {
    KeyLoadError(format!("reading or writing keys in the store failed: {e}"))
}

/// The derivation's view of a row ([`crate::keys::states::derive_states`]).
pub fn times(row: &StoredKey) -> KeyTimes<'_> {
    KeyTimes {
        id: &row.id,
        alg: &row.alg,
        created_at: row.created_at,
        activate_at: row.activate_at,
    }
}

/// What a sealed key is bound to: a sealed value moved to another row or
/// kind does not open.
fn seal_context(kind: KeyKind, id: &str) -> String {
    format!("gatehouse/v1|{}|{id}", kind.as_str())
}

pub(crate) fn open(kek: &Kek, row: &StoredKey) -> Result<Vec<u8>, KeyLoadError> {
    kek.open(&seal_context(row.kind, &row.id), &row.sealed).map_err(|_| {
        KeyLoadError(format!(
            "key {} in the store cannot be decrypted: the key-encryption key does not match the one it was sealed with",
            row.id
        ))
    })
}

/// Decrypts and parses a signing key row.
pub(crate) fn parse_signing_key(kek: &Kek, row: &StoredKey) -> Result<SigningKey, KeyLoadError> {
    let alg: Alg = row.alg.parse().map_err(KeyLoadError)?;
    SigningKey::from_pkcs8(alg, &open(kek, row)?)
        .map_err(|e| KeyLoadError(format!("key {}: {e}", row.id)))
}

/// A freshly generated signing key of `alg`, sealed as a row that starts
/// signing at `activate_at`. Its id is its `kid` (the RFC 7638 thumbprint).
pub fn new_signing_key(
    kek: &Kek,
    alg: Alg,
    created_at: i64,
    activate_at: i64,
) -> Result<StoredKey, KeyLoadError> {
    let (key, pkcs8) = SigningKey::generate(alg).map_err(|e| KeyLoadError(e.to_string()))?;
    Ok(StoredKey {
        sealed: kek.seal(&seal_context(KeyKind::Signing, &key.kid), &pkcs8),
        id: key.kid,
        kind: KeyKind::Signing,
        alg: alg.as_str().to_string(),
        created_at,
        activate_at,
    })
}

/// Checks that `kek` opens `row`, so a key is never added next to keys that
/// were sealed under another key-encryption key (every replica would fail to
/// load it).
pub fn check_kek(kek: &Kek, row: &StoredKey) -> Result<(), KeyLoadError> {
    open(kek, row).map(|_| ())
}

/// Creates the first key of `kind`/`alg` with `make` (which returns the id
/// and the plaintext to seal) when there is none, active at once. Two
/// processes starting together agree on one: the insert happens only while
/// no key of that kind and algorithm exists at all.
pub(crate) async fn ensure_first_key(
    store: &dyn Store,
    kek: &Kek,
    kind: KeyKind,
    alg: &str,
    at: i64,
    make: impl FnOnce() -> Result<(String, Vec<u8>), KeyLoadError>,
) -> Result<Vec<StoredKey>, KeyLoadError> {
    let keys = store.keys(kind).await.map_err(store_err)?;
    if keys.iter().any(|k| k.alg == alg) {
        return Ok(keys);
    }
    let (id, plaintext) = make()?;
    let row = StoredKey {
        sealed: kek.seal(&seal_context(kind, &id), &plaintext),
        id,
        kind,
        alg: alg.to_string(),
        created_at: at,
        // A first key has no predecessor and signed nothing yet: it is active
        // from the beginning, so a replica whose clock runs behind the
        // writer's never sees it as pending (and refuses to start).
        activate_at: 0,
    };
    // Another process may have won the race; either way one key exists.
    store
        .insert_key_unless_newer(&row, i64::MIN)
        .await
        .map_err(store_err)?;
    store.keys(kind).await.map_err(store_err)
}

/// The secret-hashing keys: every stored hash names the key that made it, so
/// all are kept; new hashes use the newest active one at `now` (the same
/// derivation as signing keys, without retirement).
pub async fn load_secret_verifier(
    store: &dyn Store,
    kek: &Kek,
    now: i64,
) -> Result<SecretVerifier, KeyLoadError> {
    let rows = ensure_first_key(store, kek, KeyKind::SecretHmac, "", now, || {
        let id = format!("h_{}", crate::crypto::random_base62(12));
        Ok((id, random_bytes::<32>().to_vec()))
    })
    .await?;
    let states = derive_states(&rows.iter().map(times).collect::<Vec<_>>(), now, i64::MAX);
    let mut hashers = HashMap::new();
    let mut current = None;
    for (row, derived) in rows.iter().zip(&states) {
        let bytes = open(kek, row)?;
        if derived.state == KeyState::Current {
            current = Some(row.id.clone());
        }
        hashers.insert(row.id.clone(), SecretHasher::new(row.id.clone(), &bytes));
    }
    let current = current.ok_or_else(|| KeyLoadError("no active secret-hashing key".into()))?;
    Ok(SecretVerifier { hashers, current })
}

/// The embedded gateway's session key: every replica sharing the store binds
/// session ids with the same key, and a restart keeps them valid. Created on
/// first use (one winner when replicas start together); the newest active
/// key is used.
pub async fn load_gateway_session_key(
    store: &dyn Store,
    kek: &Kek,
    now: i64,
) -> Result<Vec<u8>, KeyLoadError> {
    let rows = ensure_first_key(store, kek, KeyKind::GatewaySession, "", now, || {
        let id = format!("g_{}", crate::crypto::random_base62(12));
        Ok((id, random_bytes::<32>().to_vec()))
    })
    .await?;
    let states = derive_states(&rows.iter().map(times).collect::<Vec<_>>(), now, i64::MAX);
    let current = rows
        .iter()
        .zip(&states)
        .find(|(_, d)| d.state == KeyState::Current)
        .map(|(row, _)| row)
        .ok_or_else(|| KeyLoadError("no active gateway session key".into()))?;
    open(kek, current)
}
