//! Loading (or creating on first start) the keys that live in the Store,
//! sealed under the key-encryption key (DECISIONS.md "Keys").

use crate::client_auth::SecretVerifier;
use crate::crypto::{Kek, SecretHasher, random_bytes};
use crate::keys::{Alg, SigningKey};
use crate::store::{KeyKind, Store, StoredKey};
use crate::util::now;
use std::collections::HashMap;
use std::sync::Arc;

/// The signing keys: `current` signs, `all` is what the JWKS publishes (every
/// key that may still verify a live token).
pub struct KeySet {
    pub current: Arc<SigningKey>,
    pub all: Vec<Arc<SigningKey>>,
}

impl KeySet {
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.all.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyLoadError(pub String);

fn store_err(e: crate::error::StoreError) -> KeyLoadError {
    KeyLoadError(format!("reading keys from the store failed: {e}"))
}

const CURRENT: &str = "current";

/// Ensures a current key of `kind`/`alg` exists, creating it with `make`
/// (which returns the key id and the plaintext to seal) if there is none.
async fn ensure_current(
    store: &dyn Store,
    kek: &Kek,
    kind: KeyKind,
    alg: &str,
    make: impl FnOnce() -> Result<(String, Vec<u8>), KeyLoadError>,
) -> Result<Vec<StoredKey>, KeyLoadError> {
    let keys = store.keys(kind).await.map_err(store_err)?;
    if keys.iter().any(|k| k.status == CURRENT && k.alg == alg) {
        return Ok(keys);
    }
    let (id, plaintext) = make()?;
    let row = StoredKey {
        sealed: kek.seal(&seal_context(kind, &id), &plaintext),
        id,
        kind,
        alg: alg.to_string(),
        created_at: now(),
        status: CURRENT.to_string(),
    };
    // Another process may have won the race; either way one current key exists.
    store.insert_key_if_absent(&row).await.map_err(store_err)?;
    store.keys(kind).await.map_err(store_err)
}

/// What a sealed key is bound to: a sealed value moved to another row or
/// kind does not open.
fn seal_context(kind: KeyKind, id: &str) -> String {
    format!("gatehouse/v1|{}|{id}", kind.as_str())
}

fn open(kek: &Kek, row: &StoredKey) -> Result<Vec<u8>, KeyLoadError> {
    kek.open(&seal_context(row.kind, &row.id), &row.sealed).map_err(|_| {
        KeyLoadError(format!(
            "key {} in the store cannot be decrypted: the key-encryption key does not match the one it was sealed with",
            row.id
        ))
    })
}

pub async fn load_signing_keys(
    store: &dyn Store,
    kek: &Kek,
    alg: Alg,
) -> Result<KeySet, KeyLoadError> {
    let rows = ensure_current(store, kek, KeyKind::Signing, alg.as_str(), || {
        let (key, pkcs8) = SigningKey::generate(alg).map_err(|e| KeyLoadError(e.to_string()))?;
        Ok((key.kid.clone(), pkcs8))
    })
    .await?;
    let mut all = Vec::new();
    let mut current = None;
    for row in &rows {
        let key_alg: Alg = row.alg.parse().map_err(KeyLoadError)?;
        let key = SigningKey::from_pkcs8(key_alg, &open(kek, row)?)
            .map_err(|e| KeyLoadError(format!("key {}: {e}", row.id)))?;
        let key = Arc::new(key);
        if row.status == CURRENT && key_alg == alg {
            current = Some(key.clone());
        }
        all.push(key);
    }
    let current = current.ok_or_else(|| KeyLoadError("no current signing key".into()))?;
    Ok(KeySet { current, all })
}

pub async fn load_secret_verifier(
    store: &dyn Store,
    kek: &Kek,
) -> Result<SecretVerifier, KeyLoadError> {
    let rows = ensure_current(store, kek, KeyKind::SecretHmac, "", || {
        let id = format!("h_{}", crate::crypto::random_base62(12));
        Ok((id, random_bytes::<32>().to_vec()))
    })
    .await?;
    let mut hashers = HashMap::new();
    let mut current = None;
    for row in &rows {
        let bytes = open(kek, row)?;
        if row.status == CURRENT {
            current = Some(row.id.clone());
        }
        hashers.insert(row.id.clone(), SecretHasher::new(row.id.clone(), &bytes));
    }
    let current = current.ok_or_else(|| KeyLoadError("no current secret key".into()))?;
    Ok(SecretVerifier { hashers, current })
}
