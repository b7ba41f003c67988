//! A `private_key_jwt` client's public keys (RFC 7517 JWKS, RFC 7591 §2
//! `jwks`): validated once when registered, then used to check the
//! signatures of its client assertions (RFC 7523 §3 item 9).
//!
//! Only asymmetric public keys are accepted: a JWKS carrying private members
//! (`d`, …) shows the operator pasted the wrong file, and a symmetric (`oct`)
//! key would make the server hold a shared secret in plaintext — the reason
//! `client_secret_jwt` is not supported either.

use crate::crypto::b64url_decode;
use crate::limits::{MAX_CLIENT_JWKS_BYTES, MAX_CLIENT_JWKS_KEYS, MAX_RSA_KEY_BITS};
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use serde_json::{Map, Value};

/// JWS algorithms accepted on client assertions (RFC 7518 §3.1, RFC 8037
/// §3.1), advertised as `token_endpoint_auth_signing_alg_values_supported`.
/// `none` and the HMAC algorithms are absent on purpose (RFC 8725 §3.1).
pub const ASSERTION_ALGS: &[&str] = &["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// Members that only a private or symmetric JWK carries (RFC 7518 §6.2.2,
/// §6.3.2, §6.4.1; RFC 8037 §2).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// Public members kept when a JWKS is stored; anything else is dropped.
const KEPT_MEMBERS: &[&str] = &["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"];
const MAX_KID_BYTES: usize = 128;
/// RFC 7518 §3.3: RSA keys of 2048 bits or more.
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// And at most [`MAX_RSA_KEY_BITS`]: verifying with a bigger key costs
/// more CPU than any client needs to make an unauthenticated request cost.
const MAX_RSA_MODULUS_BYTES: usize = MAX_RSA_KEY_BITS / 8;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    P256(Vec<u8>),
    P384(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ed25519(Vec<u8>),
}

/// One usable public key of a client, parsed once for each algorithm it can
/// verify (so checking an assertion does not parse the key again).
#[derive(Debug)]
pub struct PublicJwk {
    pub kid: Option<String>,
    /// The JWK's own `alg`, if it names one: then only that algorithm.
    pub alg: Option<String>,
    key: Key,
    /// The key ready to verify, per JWS algorithm.
    verifiers: Vec<(&'static str, ParsedPublicKey)>,
}

fn string<'a>(m: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, String> {
    match m.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("member {field:?} must be a string")),
    }
}

fn bytes(m: &Map<String, Value>, field: &str) -> Result<Vec<u8>, String> {
    let s = string(m, field)?.ok_or_else(|| format!("member {field:?} is required"))?;
    b64url_decode(s).ok_or_else(|| format!("member {field:?} is not base64url"))
}

fn sized(m: &Map<String, Value>, field: &str, len: usize) -> Result<Vec<u8>, String> {
    let b = bytes(m, field)?;
    if b.len() != len {
        return Err(format!("member {field:?} must be {len} bytes"));
    }
    Ok(b)
}

fn parse_key(m: &Map<String, Value>) -> Result<PublicJwk, String> {
    if let Some(bad) = PRIVATE_MEMBERS.iter().find(|f| m.contains_key(**f)) {
        return Err(format!(
            "a key carries the private member {bad:?}: register public keys only"
        ));
    }
    let kty = string(m, "kty")?.ok_or("a key has no \"kty\"")?;
    let crv = string(m, "crv")?;
    let key = match (kty, crv) {
        ("EC", Some("P-256")) => {
            let mut point = vec![4u8];
            point.extend(sized(m, "x", 32)?);
            point.extend(sized(m, "y", 32)?);
            Key::P256(point)
        }
        ("EC", Some("P-384")) => {
            let mut point = vec![4u8];
            point.extend(sized(m, "x", 48)?);
            point.extend(sized(m, "y", 48)?);
            Key::P384(point)
        }
        ("OKP", Some("Ed25519")) => Key::Ed25519(sized(m, "x", 32)?),
        ("RSA", _) => {
            let n = bytes(m, "n")?;
            let n: Vec<u8> = n.into_iter().skip_while(|b| *b == 0).collect();
            if n.len() < MIN_RSA_MODULUS_BYTES {
                return Err("RSA keys must have at least 2048 bits".into());
            }
            if n.len() > MAX_RSA_MODULUS_BYTES {
                return Err(format!(
                    "RSA keys must have at most {MAX_RSA_KEY_BITS} bits (this one has {})",
                    rsa_bits(&n)
                ));
            }
            // Leading zero octets are legal in the base64url integers
            // (RFC 7518 §6.3.1 asks senders not to use them) but refused by
            // the verifier: strip them from both.
            let e: Vec<u8> = bytes(m, "e")?.into_iter().skip_while(|b| *b == 0).collect();
            Key::Rsa { n, e }
        }
        ("oct", _) => return Err("symmetric (\"oct\") keys are not accepted".into()),
        (kty, crv) => {
            return Err(format!(
                "unsupported key type {kty:?}{} (supported: EC P-256, EC P-384, RSA, OKP Ed25519)",
                crv.map(|c| format!(" with curve {c:?}"))
                    .unwrap_or_default()
            ));
        }
    };
    if let Some(u) = string(m, "use")?
        && u != "sig"
    {
        return Err(format!(
            "a key has \"use\": {u:?}; only \"sig\" keys can sign assertions"
        ));
    }
    let verifiers = parsed(&key)?;
    let kid = string(m, "kid")?.map(str::to_string);
    if kid
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > MAX_KID_BYTES)
    {
        return Err(format!("\"kid\" must be 1 to {MAX_KID_BYTES} bytes"));
    }
    let alg = string(m, "alg")?.map(str::to_string);
    let jwk = PublicJwk {
        kid,
        alg,
        key,
        verifiers,
    };
    if let Some(a) = &jwk.alg
        && !jwk.fits(a)
    {
        return Err(format!(
            "a key's \"alg\" {a:?} is not one of {} for its key type",
            ASSERTION_ALGS.join(", ")
        ));
    }
    Ok(jwk)
}

/// The bit length of a big-endian modulus without leading zero octets.
fn rsa_bits(n: &[u8]) -> usize {
    n.first()
        .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize)
}

/// The key parsed for each algorithm it fits. A key the verifier would
/// reject on every assertion (an EC point off its curve, an RSA key outside
/// 2048–4096 bits) is refused, so registration fails instead of every later
/// token request.
fn parsed(key: &Key) -> Result<Vec<(&'static str, ParsedPublicKey)>, String> {
    let parsed = match key {
        Key::P256(point) => ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            .map(|p| vec![("ES256", p)]),
        Key::P384(point) => ParsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
            .map(|p| vec![("ES384", p)]),
        Key::Ed25519(x) => ParsedPublicKey::new(&signature::ED25519, x).map(|p| vec![("EdDSA", p)]),
        Key::Rsa { n, e } => {
            let c = RsaPublicKeyComponents { n, e };
            c.to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
                .and_then(|rs| {
                    c.to_parsed_public_key(&signature::RSA_PSS_2048_8192_SHA256)
                        .map(|ps| vec![("RS256", rs), ("PS256", ps)])
                })
        }
    };
    parsed.map_err(|_| {
        "a key is not a valid public key for its type (point not on the curve, or RSA size out of range)".into()
    })
}

/// Parses a stored or registered JWKS into its keys, refusing anything the
/// server would not use (see the module documentation).
pub fn parse_jwks(jwks: &Value) -> Result<Vec<PublicJwk>, String> {
    let keys = jwks
        .as_object()
        .and_then(|m| m.get("keys"))
        .and_then(Value::as_array)
        .ok_or("a JWKS is a JSON object with a \"keys\" array")?;
    if keys.is_empty() || keys.len() > MAX_CLIENT_JWKS_KEYS {
        return Err(format!("a JWKS must hold 1 to {MAX_CLIENT_JWKS_KEYS} keys"));
    }
    let mut out: Vec<PublicJwk> = Vec::with_capacity(keys.len());
    for k in keys {
        let m = k.as_object().ok_or("every key must be a JSON object")?;
        let jwk = parse_key(m)?;
        if jwk.kid.is_some() && out.iter().any(|o| o.kid == jwk.kid) {
            return Err("two keys share one \"kid\"".into());
        }
        out.push(jwk);
    }
    // An assertion names its key with `kid`, and without one only a key
    // that is alone in fitting its `alg` may check it (one signature check
    // per assertion, never one per key): keys that could check the same
    // algorithm must therefore be told apart.
    for (i, a) in out.iter().enumerate() {
        for b in &out[i + 1..] {
            if let Some(alg) = ASSERTION_ALGS.iter().find(|alg| a.fits(alg) && b.fits(alg))
                && (a.kid.is_none() || b.kid.is_none())
            {
                return Err(format!(
                    "several keys can verify {alg}: give each of them a \"kid\" (assertions name the key they were signed with)"
                ));
            }
        }
    }
    Ok(out)
}

/// Validates a JWKS given at registration (size, key count, public keys
/// only) and returns the form that is stored: each key reduced to its public
/// members.
pub fn validate_client_jwks(raw: &[u8]) -> Result<Value, String> {
    if raw.len() > MAX_CLIENT_JWKS_BYTES {
        return Err(format!(
            "a JWKS must be at most {MAX_CLIENT_JWKS_BYTES} bytes"
        ));
    }
    validate_jwks_document(raw)
}

/// Validates a JWKS document (registered or fetched from a `jwks_uri`; the
/// caller bounds its size) like [`validate_client_jwks`] and returns its
/// public members only.
pub fn validate_jwks_document(raw: &[u8]) -> Result<Value, String> {
    let jwks: Value = serde_json::from_slice(raw).map_err(|e| format!("not JSON: {e}"))?;
    parse_jwks(&jwks)?;
    let keys: Vec<Value> = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(|m| {
            let kept: Map<String, Value> = m
                .iter()
                .filter(|(k, _)| KEPT_MEMBERS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Value::Object(kept)
        })
        .collect();
    Ok(serde_json::json!({ "keys": keys }))
}

impl PublicJwk {
    /// Whether this key can verify a JWS with `alg` (RFC 7518 §3.1): the key
    /// type decides, and the JWK's own `alg`, when present, narrows it.
    pub fn fits(&self, alg: &str) -> bool {
        let by_type = matches!(
            (&self.key, alg),
            (Key::P256(_), "ES256")
                | (Key::P384(_), "ES384")
                | (Key::Rsa { .. }, "RS256" | "PS256")
                | (Key::Ed25519(_), "EdDSA")
        );
        by_type && self.alg.as_deref().is_none_or(|a| a == alg)
    }

    /// Checks a JWS signature (RFC 7515 §5.2) made with `alg` over `input`.
    pub fn verify(&self, alg: &str, input: &[u8], sig: &[u8]) -> bool {
        self.fits(alg)
            && self
                .verifiers
                .iter()
                .find(|(a, _)| *a == alg)
                .is_some_and(|(_, key)| key.verify_sig(input, sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alg, SigningKey};
    use serde_json::json;

    fn jwks_of(alg: Alg) -> (SigningKey, Value) {
        let (key, _) = SigningKey::generate(alg).unwrap();
        let jwks = json!({ "keys": [key.public_jwk()] });
        (key, jwks)
    }

    #[test]
    fn generated_keys_verify_their_own_signatures_only() {
        for alg in [Alg::ES256, Alg::RS256, Alg::EdDSA] {
            let (key, jwks) = jwks_of(alg);
            let stored = validate_client_jwks(jwks.to_string().as_bytes()).unwrap();
            let keys = parse_jwks(&stored).unwrap();
            let jwt = key.sign_jwt("JWT", &json!({"a": 1})).unwrap();
            let (input, sig) = jwt.rsplit_once('.').unwrap();
            let sig = b64url_decode(sig).unwrap();
            assert!(keys[0].verify(alg.as_str(), input.as_bytes(), &sig));
            assert!(!keys[0].verify(alg.as_str(), b"other", &sig));
            assert!(!keys[0].verify("HS256", input.as_bytes(), &sig));
        }
    }

    #[test]
    fn keys_the_verifier_would_reject_are_refused_at_registration() {
        let (_, jwks) = jwks_of(Alg::ES256);
        let mut off_curve = jwks.clone();
        off_curve["keys"][0]["y"] = json!(crate::crypto::b64url(&[7u8; 32]));
        let err = validate_client_jwks(off_curve.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("not a valid public key"), "{err}");
        let (_, rsa) = jwks_of(Alg::RS256);
        // A leading zero octet in `e` is tolerated (stripped), not refused.
        let mut padded = rsa.clone();
        padded["keys"][0]["e"] = json!(crate::crypto::b64url(&[0, 1, 0, 1]));
        assert!(validate_client_jwks(padded.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn private_symmetric_oversized_and_odd_jwks_are_refused() {
        let (_, jwks) = jwks_of(Alg::ES256);
        let mut private = jwks.clone();
        private["keys"][0]["d"] = json!("AAAA");
        let oct = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        let oct_no_k = json!({"keys": [{"kty": "oct"}]});
        let enc = {
            let mut j = jwks.clone();
            j["keys"][0]["use"] = json!("enc");
            j
        };
        let wrong_alg = {
            let mut j = jwks.clone();
            j["keys"][0]["alg"] = json!("RS256");
            j
        };
        let too_many = json!({ "keys": vec![jwks["keys"][0].clone(); MAX_CLIENT_JWKS_KEYS + 1] });
        for bad in [
            private,
            oct,
            oct_no_k,
            enc,
            wrong_alg,
            too_many,
            json!({"keys": []}),
            json!([]),
        ] {
            assert!(
                validate_client_jwks(bad.to_string().as_bytes()).is_err(),
                "{bad}"
            );
        }
        assert!(validate_client_jwks(&vec![b' '; MAX_CLIENT_JWKS_BYTES + 1]).is_err());
    }

    #[test]
    fn rsa_keys_over_4096_bits_and_unnamed_keys_of_one_alg_are_refused() {
        let (_, rsa) = jwks_of(Alg::RS256);
        let mut big = rsa.clone();
        let mut n = vec![0xc5u8; 1024];
        n[1023] |= 1;
        big["keys"][0]["n"] = json!(crate::crypto::b64url(&n));
        let err = validate_client_jwks(big.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err,
            "RSA keys must have at most 4096 bits (this one has 8192)"
        );
        let (_, a) = jwks_of(Alg::ES256);
        let (_, b) = jwks_of(Alg::ES256);
        let (_, ed) = jwks_of(Alg::EdDSA);
        let mut unnamed = b["keys"][0].clone();
        unnamed.as_object_mut().unwrap().remove("kid");
        let two = json!({"keys": [a["keys"][0], unnamed]});
        let err = validate_client_jwks(two.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("several keys can verify ES256"), "{err}");
        // Named, or of different algorithms, they are fine.
        let named = json!({"keys": [a["keys"][0], b["keys"][0]]});
        assert!(validate_client_jwks(named.to_string().as_bytes()).is_ok());
        let mut lone = ed["keys"][0].clone();
        lone.as_object_mut().unwrap().remove("kid");
        let mixed = json!({"keys": [a["keys"][0], lone]});
        assert!(validate_client_jwks(mixed.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn es384_and_ps256_signatures_verify() {
        use crate::crypto::b64url;
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::rsa::KeySize;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};
        let rng = SystemRandom::new();
        let input = b"header.payload";

        let ec = EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let point = ec.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-384", "x": b64url(&point[1..49]),
                         "y": b64url(&point[49..97])});
        let keys = parse_jwks(&json!({"keys": [jwk]})).unwrap();
        let sig = ec.sign(&rng, input).unwrap();
        assert!(keys[0].verify("ES384", input, sig.as_ref()));
        assert!(!keys[0].verify("ES256", input, sig.as_ref()));

        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = rsa.public_key();
        let jwk = json!({"kty": "RSA", "alg": "PS256",
            "n": b64url(public.modulus().big_endian_without_leading_zero()),
            "e": b64url(public.exponent().big_endian_without_leading_zero())});
        let keys = parse_jwks(&json!({"keys": [jwk]})).unwrap();
        let mut sig = vec![0u8; rsa.public_modulus_len()];
        rsa.sign(&signature::RSA_PSS_SHA256, &rng, input, &mut sig)
            .unwrap();
        assert!(keys[0].verify("PS256", input, &sig));
        assert!(
            !keys[0].verify("RS256", input, &sig),
            "the JWK's alg pins PS256"
        );
    }
}
