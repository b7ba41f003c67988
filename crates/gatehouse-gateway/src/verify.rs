//! Access-token verification (RFC 9068 §4, RFC 6750) with a cache of verified
//! tokens, so a client's repeated calls cost a hash lookup, not a signature check.

use crate::keys::{KeySource, KeysUnavailable};
use aws_lc_rs::digest;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest bearer token considered at all.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Verified tokens remembered at once.
pub const TOKEN_CACHE_CAPACITY: usize = 50_000;
/// Upper bound on clock-skew leeway (seconds).
pub const MAX_LEEWAY: u64 = 60;
/// No token is honoured further than this from its expiry: the longest
/// access-token lifetime Gatehouse issues (24 h). A token signed with a
/// leaked key cannot be made to outlive the key's retirement for long, in
/// the cache or out of it.
pub const MAX_TOKEN_LIFETIME: u64 = 24 * 3600;
/// Replicas' clocks may run this far ahead of the gateway's: the margin the
/// signing-key retention allows too.
const CLOCK_SKEW_MARGIN: u64 = 300;

/// Who a verified token speaks for (docs/decisions.md "Gateway").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A token issued to the client itself (client_credentials).
    Client { client_id: String },
    /// A token issued to a person, through a client.
    User { sub: String, client_id: String },
}

#[derive(Debug)]
pub struct VerifiedToken {
    pub principal: Principal,
    pub scopes: Vec<String>,
    pub groups: Vec<String>,
    pub exp: u64,
    /// The key that signed it: a cached token is honoured only while that
    /// key is still published (`gatehouse key retire` ends both).
    pub kid: String,
    pub claims: Value,
    /// Cedar decisions already made for this token (its claims never change).
    pub decisions: crate::decisions::DecisionCache,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Refused; the reason is for logs only, never for the client.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    KeysUnavailable(#[from] KeysUnavailable),
}

pub struct VerifierConfig {
    pub issuer: String,
    /// This server's resource URL: the `aud` every token must carry.
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    pub leeway: u64,
    /// Accept `typ: JWT` as well as `at+jwt` (for issuers that do not type tokens).
    pub accept_plain_jwt: bool,
}

pub struct Verifier {
    config: VerifierConfig,
    keys: Arc<dyn KeySource>,
    cache: RwLock<HashMap<[u8; 32], Arc<VerifiedToken>>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn typ_ok(typ: Option<&str>, accept_plain: bool) -> bool {
    match typ {
        Some(t) => {
            t.eq_ignore_ascii_case("at+jwt")
                || t.eq_ignore_ascii_case("application/at+jwt")
                || (accept_plain && t.eq_ignore_ascii_case("jwt"))
        }
        None => false,
    }
}

/// Whether the JWK's key type can carry this algorithm (so a public key can
/// never be used as an HMAC secret, whatever the header says).
fn key_fits(jwk: &jsonwebtoken::jwk::Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    let family_ok = matches!(
        (&jwk.algorithm, alg),
        (P::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
            | (
                P::RSA(_),
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
            )
            | (
                P::RSA(_),
                Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512
            )
            | (P::OctetKeyPair(_), Algorithm::EdDSA)
    );
    let declared_ok = jwk
        .common
        .key_algorithm
        .is_none_or(|ka| ka.to_string() == format!("{alg:?}"));
    family_ok && declared_ok
}

impl Verifier {
    pub fn new(mut config: VerifierConfig, keys: Arc<dyn KeySource>) -> Verifier {
        config.leeway = config.leeway.min(MAX_LEEWAY);
        // HMAC algorithms are never acceptable for access tokens here.
        config
            .algorithms
            .retain(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
        Verifier {
            config,
            keys,
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Invalid("token too long"));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        let t = now();
        if let Some(hit) = self.cache.read().ok().and_then(|c| c.get(&key).cloned()) {
            if hit.exp + self.config.leeway <= t {
                return Err(VerifyError::Invalid("expired"));
            }
            // A retired key takes its cached tokens with it. A key the
            // source still holds answers from memory even while the issuer
            // is down, so an error here means the key is gone from the last
            // set and a refetch failed: refuse (503), never trust.
            return match self.keys.key(&hit.kid).await {
                Ok(Some(_)) => Ok(hit),
                Ok(None) => {
                    if let Ok(mut cache) = self.cache.write() {
                        cache.remove(&key);
                    }
                    Err(VerifyError::Invalid("its key was retired"))
                }
                Err(e) => Err(VerifyError::KeysUnavailable(e)),
            };
        }
        let verified = Arc::new(self.verify_uncached(token).await?);
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= TOKEN_CACHE_CAPACITY {
                cache.retain(|_, v| v.exp + self.config.leeway > t);
                if cache.len() >= TOKEN_CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(key, verified.clone());
        }
        Ok(verified)
    }

    async fn verify_uncached(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        use VerifyError::Invalid;
        let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid("malformed"))?;
        // RFC 7515 §4.1.11: no header extension is implemented here, so a
        // token marking any as critical cannot be understood. The JWT
        // library reads `crit` but does not refuse it.
        if header.crit.is_some() {
            return Err(Invalid("critical header extensions not supported"));
        }
        if !self.config.algorithms.contains(&header.alg) {
            return Err(Invalid("algorithm not allowed"));
        }
        if !typ_ok(header.typ.as_deref(), self.config.accept_plain_jwt) {
            return Err(Invalid("wrong typ"));
        }
        let kid = header.kid.as_deref().ok_or(Invalid("no kid"))?;
        let jwk = self.keys.key(kid).await?.ok_or(Invalid("unknown kid"))?;
        if !key_fits(&jwk, header.alg) {
            return Err(Invalid("key does not fit the algorithm"));
        }
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| Invalid("unusable key"))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.config.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Value>(token, &decoding, &validation)
            .map_err(|_| Invalid("signature or claims rejected"))?;
        let claims = data.claims;
        let sub = claims["sub"].as_str().ok_or(Invalid("no sub"))?.to_string();
        let client_id = claims["client_id"].as_str().map(String::from);
        // RFC 9068 §2.2: a token whose sub equals its client_id was issued to
        // the client itself; anything else speaks for a person.
        let principal = match client_id {
            Some(c) if c == sub => Principal::Client { client_id: c },
            Some(c) => Principal::User { sub, client_id: c },
            None => return Err(Invalid("no client_id")),
        };
        let strings = |v: &Value| -> Vec<String> {
            match v {
                Value::String(s) => s
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let exp = claims["exp"].as_u64().ok_or(Invalid("exp not a number"))?;
        if exp > now() + MAX_TOKEN_LIFETIME + self.config.leeway.max(CLOCK_SKEW_MARGIN) {
            return Err(Invalid(
                "expires further ahead than any token is issued for",
            ));
        }
        Ok(VerifiedToken {
            scopes: strings(&claims["scope"]),
            groups: strings(&claims["groups"]),
            exp,
            kid: kid.to_string(),
            principal,
            claims,
            decisions: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::LocalJwks;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn sign(key: &Ed25519KeyPair, header: &[u8], claims: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn verifier(key: &Ed25519KeyPair) -> Verifier {
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "k", "alg": "EdDSA",
            "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
        });
        let keys = LocalJwks::from_document(&json!({ "keys": [jwk] })).unwrap();
        Verifier::new(
            VerifierConfig {
                issuer: "https://as.example".into(),
                audience: "https://mcp.example/mcp".into(),
                algorithms: vec![Algorithm::EdDSA],
                leeway: 60,
                accept_plain_jwt: false,
            },
            Arc::new(keys),
        )
    }

    fn claims() -> Vec<u8> {
        format!(
            r#"{{"iss":"https://as.example","aud":"https://mcp.example/mcp","sub":"c","client_id":"c","exp":{}}}"#,
            now() + 600
        )
        .into_bytes()
    }

    /// A key source whose answer for every kid the test switches: the
    /// key, gone, or unobtainable.
    struct Switch {
        jwk: Arc<jsonwebtoken::jwk::Jwk>,
        mode: std::sync::atomic::AtomicU8,
    }

    impl KeySource for Switch {
        fn key<'a>(&'a self, _kid: &'a str) -> crate::keys::KeyFuture<'a> {
            let answer = match self.mode.load(std::sync::atomic::Ordering::Relaxed) {
                0 => Ok(Some(self.jwk.clone())),
                1 => Ok(None),
                _ => Err(crate::keys::KeysUnavailable("issuer unreachable".into())),
            };
            Box::pin(std::future::ready(answer))
        }
    }

    #[tokio::test]
    async fn a_cached_token_ends_with_its_key_and_is_never_trusted_while_keys_cannot_be_had() {
        let key = Ed25519KeyPair::generate().unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "k", "alg": "EdDSA",
            "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
        }))
        .unwrap();
        let keys = Arc::new(Switch {
            jwk: Arc::new(jwk),
            mode: std::sync::atomic::AtomicU8::new(0),
        });
        let v = Verifier::new(
            VerifierConfig {
                issuer: "https://as.example".into(),
                audience: "https://mcp.example/mcp".into(),
                algorithms: vec![Algorithm::EdDSA],
                leeway: 60,
                accept_plain_jwt: false,
            },
            keys.clone(),
        );
        let token = sign(
            &key,
            br#"{"alg":"EdDSA","typ":"at+jwt","kid":"k"}"#,
            &claims(),
        );
        assert!(v.verify(&token).await.is_ok(), "verified, and cached");
        assert!(v.verify(&token).await.is_ok(), "a cache hit");
        keys.mode.store(2, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(
            v.verify(&token).await,
            Err(VerifyError::KeysUnavailable(_))
        ));
        keys.mode.store(1, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(
            v.verify(&token).await,
            Err(VerifyError::Invalid("its key was retired"))
        ));
        // Gone from the cache too: with the key back it is verified afresh.
        keys.mode.store(0, std::sync::atomic::Ordering::Relaxed);
        assert!(v.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_living_longer_than_any_issued_is_refused() {
        let key = Ed25519KeyPair::generate().unwrap();
        let v = verifier(&key);
        let far = format!(
            r#"{{"iss":"https://as.example","aud":"https://mcp.example/mcp","sub":"c","client_id":"c","exp":{}}}"#,
            now() + MAX_TOKEN_LIFETIME + CLOCK_SKEW_MARGIN + 60
        );
        let token = sign(
            &key,
            br#"{"alg":"EdDSA","typ":"at+jwt","kid":"k"}"#,
            far.as_bytes(),
        );
        assert!(matches!(
            v.verify(&token).await,
            Err(VerifyError::Invalid(
                "expires further ahead than any token is issued for"
            ))
        ));
    }

    // fuzz/fuzz_targets/jwt.rs checks both on every token it gets accepted.
    #[tokio::test]
    async fn a_token_naming_critical_header_extensions_is_refused() {
        let key = Ed25519KeyPair::generate().unwrap();
        let v = verifier(&key);
        let plain = sign(
            &key,
            br#"{"alg":"EdDSA","typ":"at+jwt","kid":"k"}"#,
            &claims(),
        );
        assert!(v.verify(&plain).await.is_ok());
        let crit = sign(
            &key,
            br#"{"alg":"EdDSA","typ":"at+jwt","kid":"k","crit":["exp"]}"#,
            &claims(),
        );
        assert!(matches!(
            v.verify(&crit).await,
            Err(VerifyError::Invalid(
                "critical header extensions not supported"
            ))
        ));
    }

    /// The JWT library refuses this itself (it keeps unknown header members
    /// as JSON values); pinned so that stays true across upgrades — client
    /// assertions needed a fix for the same input.
    #[tokio::test]
    async fn a_token_header_with_invalid_utf8_is_refused() {
        let key = Ed25519KeyPair::generate().unwrap();
        let v = verifier(&key);
        let token = sign(
            &key,
            b"{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"k\",\"x\":\"\xf5\xff\"}",
            &claims(),
        );
        assert!(matches!(
            v.verify(&token).await,
            Err(VerifyError::Invalid("malformed"))
        ));
    }
}
