//! Recognising this server's own access tokens (RFC 9068) where it must judge
//! one it issued: the revocation (RFC 7009) and introspection (RFC 7662)
//! endpoints.
//!
//! Only tokens signed by a key of this server's key set (the keys the JWKS
//! publishes) and carrying this server's `iss` are recognised; anything else
//! — another issuer's token, a forged or altered one, a refresh token, junk —
//! is simply not one of ours, which both endpoints treat as "nothing to do"
//! (RFC 7009 §2.2) or `active: false` (RFC 7662 §2.2). Expiry is left to the
//! caller, which knows the time.

use crate::crypto::b64url_decode;
use crate::keys::keyset::KeySet;
use crate::limits::MAX_PARAM_BYTES;
use serde::Deserialize;

/// The claims of one of our access tokens, as issued (`token.rs`): `aud` is
/// always a single string (docs/decisions.md "Tokens").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessToken {
    pub iss: String,
    pub sub: String,
    pub client_id: String,
    pub aud: String,
    #[serde(default)]
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl AccessToken {
    /// Whether the token is still within its lifetime at `now` (RFC 7519
    /// §4.1.4: it must not be accepted on or after `exp`).
    pub fn live_at(&self, now: i64) -> bool {
        now < self.exp
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

/// Whether a JOSE `typ` names an RFC 9068 access token (case-insensitive,
/// with or without the `application/` prefix; RFC 7515 §4.1.9).
fn is_access_token_typ(typ: &str) -> bool {
    let t = typ.to_ascii_lowercase();
    t == "at+jwt" || t == "application/at+jwt"
}

/// Verifies `token` as an access token this server issued: compact JWS with
/// `typ: at+jwt`, signed by the key named by `kid` with exactly that key's
/// algorithm (no algorithm taken from the token alone, RFC 8725 §3.1), and
/// `iss` equal to `issuer`. Returns its claims, or `None` when it is not one
/// of ours. Never fails loudly: callers must not reveal why.
pub fn verify_own(keys: &KeySet, issuer: &str, token: &str) -> Option<AccessToken> {
    if token.len() > MAX_PARAM_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Header = serde_json::from_slice(&b64url_decode(h)?).ok()?;
    if !header.typ.as_deref().is_some_and(is_access_token_typ) {
        return None;
    }
    let kid = header.kid?;
    let key = keys.find(&kid, &header.alg)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    if !key.verify(signing_input.as_bytes(), &b64url_decode(s)?) {
        return None;
    }
    let claims: AccessToken = serde_json::from_slice(&b64url_decode(p)?).ok()?;
    (claims.iss == issuer).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alg, SigningKey};
    use serde_json::json;
    use std::sync::Arc;

    fn keyset(alg: Alg) -> KeySet {
        let (key, _) = SigningKey::generate(alg).unwrap();
        let key = Arc::new(key);
        KeySet {
            version: 1,
            current: key.clone(),
            currents: vec![key.clone()],
            published: vec![key],
        }
    }

    fn claims(iss: &str) -> serde_json::Value {
        json!({"iss": iss, "sub": "c_1", "client_id": "c_1", "aud": "https://r.example",
               "scope": "a", "iat": 1, "exp": 2, "jti": "j"})
    }

    #[test]
    fn own_tokens_verify_with_every_algorithm() {
        for alg in [Alg::ES256, Alg::RS256, Alg::EdDSA] {
            let keys = keyset(alg);
            let t = keys
                .current
                .sign_jwt("at+jwt", &claims("https://as"))
                .unwrap();
            let c = verify_own(&keys, "https://as", &t).unwrap();
            assert_eq!((c.jti.as_str(), c.exp), ("j", 2));
            assert!(c.live_at(1) && !c.live_at(2));
        }
    }

    #[test]
    fn foreign_altered_and_mistyped_tokens_are_not_ours() {
        let keys = keyset(Alg::ES256);
        let other = keyset(Alg::ES256);
        let good = keys
            .current
            .sign_jwt("at+jwt", &claims("https://as"))
            .unwrap();
        let by_other = other
            .current
            .sign_jwt("at+jwt", &claims("https://as"))
            .unwrap();
        assert!(verify_own(&keys, "https://as", &by_other).is_none());
        assert!(verify_own(&keys, "https://other", &good).is_none());
        let id_token = keys.current.sign_jwt("JWT", &claims("https://as")).unwrap();
        assert!(verify_own(&keys, "https://as", &id_token).is_none());
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = crate::crypto::b64url(
            serde_json::to_string(&claims("https://as"))
                .unwrap()
                .replace("c_1", "c_2")
                .as_bytes(),
        );
        parts[1] = &forged;
        assert!(verify_own(&keys, "https://as", &parts.join(".")).is_none());
        for junk in ["", "a.b", "a.b.c", "a.b.c.d", &format!("{good}.x")] {
            assert!(verify_own(&keys, "https://as", junk).is_none(), "{junk}");
        }
    }
}
