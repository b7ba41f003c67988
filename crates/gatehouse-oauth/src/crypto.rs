//! Small cryptographic building blocks over aws-lc-rs: randomness, base64url,
//! HMAC-stored secrets and sealing of private keys at rest.

use aws_lc_rs::{aead, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// base64url without padding (RFC 7515 §2), used for every encoded value.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// `n` bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // aws-lc's RNG only fails if the OS entropy source is gone, in which case
    // no secret can safely be minted at all.
    if rand::fill(&mut buf).is_err() {
        panic!("the operating system's random number generator failed");
    }
    buf
}

/// A fresh client secret: 256 bits from the CSPRNG, base64url (43 characters).
pub fn new_secret() -> String {
    b64url(&random_bytes::<32>())
}

/// Random base62 string of `len` characters (for client ids).
pub fn random_base62(len: usize) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<32>() {
            // Rejection sampling keeps the distribution uniform: 248 = 4 * 62.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// An HMAC-SHA-256 key that turns server-minted secrets into stored hashes
/// (docs/decisions.md "Principles"). Its `id` is recorded beside every hash it
/// makes, so the key can rotate.
pub struct SecretHasher {
    pub id: String,
    key: hmac::Key,
}

impl SecretHasher {
    pub fn new(id: String, key_bytes: &[u8]) -> Self {
        SecretHasher {
            id,
            key: hmac::Key::new(hmac::HMAC_SHA256, key_bytes),
        }
    }

    pub fn hash(&self, secret: &str) -> [u8; 32] {
        let tag = hmac::sign(&self.key, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Constant-time comparison of `secret`'s hash against a stored hash.
    pub fn verify(&self, secret: &str, stored: &[u8]) -> bool {
        bool::from(self.hash(secret).as_slice().ct_eq(stored))
    }
}

/// AES-256-GCM under the key-encryption key (docs/decisions.md "Keys,
/// secrets and identifiers": private key material is sealed in the Store,
/// the KEK never lives beside it).
pub struct Kek(aead::LessSafeKey);

#[derive(Debug, thiserror::Error)]
#[error("sealed value could not be opened (wrong key-encryption key or corrupt record)")]
pub struct SealError;

impl Kek {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, bytes).map_err(|_| SealError)?;
        Ok(Kek(aead::LessSafeKey::new(unbound)))
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. the key id) so a
    /// sealed value cannot be moved to another row. Output: nonce || ciphertext || tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<12>();
        let mut buf = plaintext.to_vec();
        let nonce = aead::Nonce::assume_unique_for_key(nonce_bytes);
        if self
            .0
            .seal_in_place_append_tag(nonce, aead::Aad::from(context.as_bytes()), &mut buf)
            .is_err()
        {
            // Only possible for inputs larger than GCM's limit (64 GiB).
            panic!("AES-GCM sealing failed");
        }
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 12 + 16 {
            return Err(SealError);
        }
        let (nonce, rest) = sealed.split_at(12);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
        let mut buf = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, aead::Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SealError)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_context() {
        let kek = Kek::from_bytes(&random_bytes::<32>()).unwrap();
        let sealed = kek.seal("kid-1", b"private");
        assert_eq!(kek.open("kid-1", &sealed).unwrap(), b"private");
        assert!(kek.open("kid-2", &sealed).is_err());
    }

    #[test]
    fn secret_hashes_verify_only_the_same_secret() {
        let h = SecretHasher::new("k".into(), &random_bytes::<32>());
        let stored = h.hash("abc");
        assert!(h.verify("abc", &stored));
        assert!(!h.verify("abd", &stored));
        assert_ne!(stored.as_slice(), b"abc");
    }

    #[test]
    fn base62_ids_have_the_requested_length_and_alphabet() {
        let id = random_base62(22);
        assert_eq!(id.len(), 22);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
