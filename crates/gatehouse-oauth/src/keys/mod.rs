//! The server's signing keys (ARCHITECTURE.md "Code map"): this module
//! holds one key pair ready to sign; `keyset` is the set that signs and is
//! published, sealed under the KEK in the store; `keyring` swaps it at run
//! time and rotates; `states` derives each key's state from the clock.
//!
//! Signing keys held in memory as ready key pairs (docs/decisions.md
//! "Principles") and the compact JWS signer over them.
//!
//! Written by hand rather than with `jsonwebtoken::encode` because that crate
//! re-parses the PEM/DER private key on every call (RS256 ≈ 1 ms instead of
//! 0.37 ms); a compact JWS is three base64url parts and one signature.

pub mod keyring;
pub mod keyset;
pub mod states;

use crate::crypto::b64url;
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fmt;
use std::str::FromStr;

/// JWS algorithms Gatehouse signs with (RFC 7518 §3, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    ES256,
    RS256,
    EdDSA,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::ES256 => "ES256",
            Alg::RS256 => "RS256",
            Alg::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ES256" => Ok(Alg::ES256),
            "RS256" => Ok(Alg::RS256),
            "EdDSA" => Ok(Alg::EdDSA),
            other => Err(format!(
                "unsupported signing algorithm {other:?} (expected ES256, RS256 or EdDSA)"
            )),
        }
    }
}

enum Pair {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// One parsed signing key with its public JWK and RFC 7638 `kid`.
pub struct SigningKey {
    pub alg: Alg,
    pub kid: String,
    pair: Pair,
    public_jwk: Value,
    rng: SystemRandom,
}

#[derive(Debug, thiserror::Error)]
#[error("signing key rejected: {0}")]
pub struct KeyError(String);

impl SigningKey {
    /// Generates a new key; returns it with its PKCS#8 encoding for sealing.
    pub fn generate(alg: Alg) -> Result<(SigningKey, Vec<u8>), KeyError> {
        let pkcs8 = match alg {
            Alg::ES256 => EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map(|d| d.as_ref().to_vec()),
            Alg::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .and_then(|k| k.as_der())
                .map(|d| d.as_ref().to_vec()),
            Alg::EdDSA => Ed25519KeyPair::generate()
                .and_then(|k| AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k))
                .map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| KeyError("key generation failed".into()))?;
        let key = SigningKey::from_pkcs8(alg, &pkcs8)?;
        Ok((key, pkcs8))
    }

    pub fn from_pkcs8(alg: Alg, pkcs8: &[u8]) -> Result<SigningKey, KeyError> {
        let reject = |e: aws_lc_rs::error::KeyRejected| KeyError(e.to_string());
        let (pair, public_jwk) = match alg {
            Alg::ES256 => {
                let k =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                        .map_err(reject)?;
                // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
                let point = k.public_key().as_ref();
                if point.len() != 65 {
                    return Err(KeyError("unexpected P-256 public key encoding".into()));
                }
                let jwk = json!({
                    "crv": "P-256",
                    "kty": "EC",
                    "x": b64url(&point[1..33]),
                    "y": b64url(&point[33..65]),
                });
                (Pair::Es256(k), jwk)
            }
            Alg::RS256 => {
                let k = RsaKeyPair::from_pkcs8(pkcs8).map_err(reject)?;
                let public = k.public_key();
                let jwk = json!({
                    "e": b64url(public.exponent().big_endian_without_leading_zero()),
                    "kty": "RSA",
                    "n": b64url(public.modulus().big_endian_without_leading_zero()),
                });
                (Pair::Rs256(k), jwk)
            }
            Alg::EdDSA => {
                let k = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(reject)?;
                let jwk = json!({
                    "crv": "Ed25519",
                    "kty": "OKP",
                    "x": b64url(k.public_key().as_ref()),
                });
                (Pair::EdDsa(k), jwk)
            }
        };
        let kid = thumbprint(&public_jwk);
        Ok(SigningKey {
            alg,
            kid,
            pair,
            public_jwk,
            rng: SystemRandom::new(),
        })
    }

    /// The public JWK as published in the JWKS (RFC 7517 §4).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.public_jwk.clone();
        if let Value::Object(m) = &mut jwk {
            m.insert("kid".into(), Value::String(self.kid.clone()));
            m.insert("alg".into(), Value::String(self.alg.as_str().into()));
            m.insert("use".into(), Value::String("sig".into()));
        }
        jwk
    }

    pub(crate) fn sign_bytes(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        let fail = |_| KeyError("signing failed".into());
        match &self.pair {
            Pair::Es256(k) => k
                .sign(&self.rng, input)
                .map(|s| s.as_ref().to_vec())
                .map_err(fail),
            Pair::Rs256(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, input, &mut sig)
                    .map_err(fail)?;
                Ok(sig)
            }
            Pair::EdDsa(k) => Ok(k.sign(input).as_ref().to_vec()),
        }
    }

    /// Checks a JWS signature made by this key over `input` (RFC 7515 §5.2),
    /// so the server can recognise its own access tokens at the revocation
    /// and introspection endpoints without a JWT library.
    pub fn verify(&self, input: &[u8], sig: &[u8]) -> bool {
        use signature::UnparsedPublicKey;
        match &self.pair {
            Pair::Es256(k) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, k.public_key().as_ref())
                    .verify(input, sig)
                    .is_ok()
            }
            Pair::Rs256(k) => UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                k.public_key().as_ref(),
            )
            .verify(input, sig)
            .is_ok(),
            Pair::EdDsa(k) => UnparsedPublicKey::new(&signature::ED25519, k.public_key().as_ref())
                .verify(input, sig)
                .is_ok(),
        }
    }

    /// A compact JWS (RFC 7515 §7.1) of `claims` with header `typ`, `alg`, `kid`.
    pub fn sign_jwt(&self, typ: &str, claims: &impl Serialize) -> Result<String, KeyError> {
        let header = json!({"alg": self.alg.as_str(), "kid": self.kid, "typ": typ});
        let header = serde_json::to_vec(&header).map_err(|e| KeyError(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError(e.to_string()))?;
        let mut out = String::with_capacity(64 + payload.len() * 4 / 3 + 128);
        out.push_str(&b64url(&header));
        out.push('.');
        out.push_str(&b64url(&payload));
        let sig = self.sign_bytes(out.as_bytes())?;
        out.push('.');
        out.push_str(&b64url(&sig));
        Ok(out)
    }
}

/// RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic
/// order with no whitespace, base64url. `serde_json` (without
/// `preserve_order`) keeps object keys sorted, so the canonical form is its
/// compact serialisation of exactly those members.
pub fn thumbprint(public_jwk: &Value) -> String {
    let required: &[&str] = match public_jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => &[],
    };
    let mut canonical = serde_json::Map::new();
    for k in required {
        if let Some(v) = public_jwk.get(*k) {
            canonical.insert((*k).to_string(), v.clone());
        }
    }
    let bytes = serde_json::to_vec(&Value::Object(canonical)).unwrap_or_default();
    b64url(digest::digest(&digest::SHA256, &bytes).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn every_algorithm_round_trips_through_pkcs8() {
        for alg in [Alg::ES256, Alg::RS256, Alg::EdDSA] {
            let (key, pkcs8) = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &pkcs8).unwrap();
            assert_eq!(key.kid, again.kid);
            let jwt = key.sign_jwt("at+jwt", &json!({"a": 1})).unwrap();
            assert_eq!(jwt.split('.').count(), 3);
            let (input, sig) = jwt.rsplit_once('.').unwrap();
            let sig = crate::crypto::b64url_decode(sig).unwrap();
            assert!(again.verify(input.as_bytes(), &sig));
            assert!(!again.verify(b"other", &sig));
        }
    }
}
