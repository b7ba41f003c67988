//! `private_key_jwt`: client authentication with a JWT assertion signed by a
//! key the client registered (RFC 7523 §2.2 and §3, RFC 7521 §4.2, OpenID
//! Connect Core §9).
//!
//! Every check failure is the same `invalid_client` at the caller; the
//! reason is returned here only so it can be logged (never the assertion).

use crate::client::Client;
use crate::client_auth::jwks::{ASSERTION_ALGS, PublicJwk, parse_jwks};
use crate::crypto::b64url_decode;
use crate::limits::{MAX_ASSERTION_BYTES, MAX_JTI_BYTES};
use crate::settings::ClientAuthSettings;
use serde::Deserialize;
use serde_json::Value;

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew tolerated on `exp`, `iat` and `nbf` (RFC 7519 §4.1.4 and
/// §4.1.5 allow "some small leeway").
pub const LEEWAY_SECS: i64 = 60;

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    /// RFC 7515 §4.1.11: extensions we do not understand must be refused.
    crit: Option<Value>,
}

/// The claims RFC 7523 §3 requires or this server uses. Numeric dates are
/// bounded (±2^53), so the arithmetic below cannot overflow.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Value,
    #[serde(deserialize_with = "numeric_date")]
    exp: i64,
    #[serde(default, deserialize_with = "optional_numeric_date")]
    iat: Option<i64>,
    #[serde(default, deserialize_with = "optional_numeric_date")]
    nbf: Option<i64>,
    jti: Option<String>,
}

/// RFC 7519 §2 NumericDate: seconds, possibly fractional (truncated here).
/// Anything not a finite number within ±2^53 is refused.
fn numeric_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    const LIMIT: f64 = 9_007_199_254_740_992.0;
    let n = serde_json::Number::deserialize(d)?;
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) if i.unsigned_abs() <= LIMIT as u64 => Ok(i),
        (None, Some(f)) if f.is_finite() && f.abs() <= LIMIT => Ok(f.trunc() as i64),
        _ => Err(serde::de::Error::custom("NumericDate out of range")),
    }
}

fn optional_numeric_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    numeric_date(d).map(Some)
}

/// Decodes one base64url JWT segment holding a JSON object. The bytes must be
/// UTF-8 throughout (RFC 7519 §7.2 step 5, RFC 8259 §8.1): `serde_json`
/// skips members it is not asked for without checking their encoding, so
/// without this a header or claims set with invalid UTF-8 in an unknown
/// member would pass here and be refused by other JWT libraries.
pub(crate) fn json_segment<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let bytes = b64url_decode(segment)?;
    serde_json::from_str(std::str::from_utf8(&bytes).ok()?).ok()
}

/// What a verified assertion leaves to record: its `jti`, to be remembered
/// (per client) until `remember_until`, so that it is accepted once only
/// (RFC 7523 §3 item 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub jti: String,
    pub remember_until: i64,
}

/// Spends what checking a known client's assertion would — one signature
/// verification — on an assertion naming an unknown client, so the time of
/// the (identical) refusal does not tell whether a client id exists. Mirrors
/// the secret path's dummy HMAC.
pub fn dummy_verify(assertion: &str) {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    };
    static PUBLIC: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let public = PUBLIC.get_or_init(|| {
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map(|k| k.public_key().as_ref().to_vec())
            .unwrap_or_default()
    });
    if assertion.len() > MAX_ASSERTION_BYTES {
        return;
    }
    let (input, sig) = assertion.rsplit_once('.').unwrap_or((assertion, ""));
    let sig = b64url_decode(sig).unwrap_or_default();
    let _ = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public).verify(input.as_bytes(), &sig);
}

/// The endpoints an assertion may be addressed to: the issuer identifier,
/// the token endpoint (RFC 7523 §3 item 3), and the endpoint actually called
/// when that is the revocation or introspection endpoint — which is where
/// clients such as authlib address the assertions they send there.
pub struct Audience<'a> {
    pub issuer: &'a str,
    pub token_endpoint: &'a str,
    pub called_endpoint: &'a str,
}

/// The client an assertion claims to come from, read before any check so the
/// client (and its keys) can be looked up: RFC 7523 §3 item 2 makes `sub`
/// the client id. `None` for anything that is not a readable JWT.
pub fn claimed_client_id(assertion: &str) -> Option<String> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return None;
    }
    let payload = assertion.split('.').nth(1)?;
    let v: Value = json_segment(payload)?;
    v.get("sub")?.as_str().map(str::to_string)
}

/// The `kid` an assertion's header names, read before any check so a key set
/// fetched from a `jwks_uri` can be refreshed when it lacks that key
/// (OpenID Connect Core §10.1.1). `None` for no `kid` or no readable header.
pub fn header_kid(assertion: &str) -> Option<String> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return None;
    }
    let header = assertion.split('.').next()?;
    let h: Header = json_segment(header)?;
    h.kid
}

/// [`verify_with_keys`] against a JWKS document, parsed here (the server
/// keeps parsed keys instead; this is for callers holding a document).
pub fn verify(
    assertion: &str,
    client: &Client,
    jwks: &Value,
    audience: &Audience<'_>,
    settings: &ClientAuthSettings,
    now: i64,
) -> Result<Accepted, &'static str> {
    let keys = parse_jwks(jwks).map_err(|_| "client keys unusable")?;
    verify_with_keys(assertion, client, &keys, audience, settings, now)
}

/// Checks a client assertion for `client`, against the client's keys
/// (registered inline or fetched), at time `now` (Unix seconds): compact JWS
/// with an accepted `alg`, signed by one of the client's keys; `iss` = `sub` =
/// client id; `aud` one of `audience` (a string or a one-element array,
/// docs/decisions.md "Client authentication with JWTs"); `exp` in the future
/// and within the configured lifetime; `iat` and `nbf` not in the future; a
/// `jti`. Whether the `jti` was seen before is the caller's check (the Store).
///
/// At most one signature is checked per assertion: the key its `kid` names,
/// or without a `kid` the one key that fits its `alg`. An assertion without
/// a `kid` for a client holding several keys of its `alg` is refused before
/// any signature check, so an unauthenticated request cannot make the server
/// try every key.
pub fn verify_with_keys(
    assertion: &str,
    client: &Client,
    keys: &[PublicJwk],
    audience: &Audience<'_>,
    settings: &ClientAuthSettings,
    now: i64,
) -> Result<Accepted, &'static str> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err("assertion too large");
    }
    let mut parts = assertion.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS");
    };
    let header: Header = json_segment(h).ok_or("unreadable header")?;
    // The algorithm is checked against a fixed list and against each key
    // before use, never taken from the token alone (RFC 8725 §3.1).
    if !ASSERTION_ALGS.contains(&header.alg.as_str()) {
        return Err("algorithm not accepted");
    }
    if header.crit.is_some() {
        return Err("critical header extensions not supported");
    }
    let sig = b64url_decode(s).ok_or("unreadable signature")?;
    let signing_input = &assertion.as_bytes()[..h.len() + 1 + p.len()];
    let key = pick_key(keys, &header.alg, header.kid.as_deref())?;
    if !key.verify(&header.alg, signing_input, &sig) {
        return Err("signature does not verify with the client's key");
    }
    let claims: Claims = json_segment(p).ok_or("unreadable or incomplete claims")?;
    // RFC 7523 §3 items 1 and 2; RFC 7521 §5.2: for client authentication
    // both name the client.
    if claims.iss != client.id || claims.sub != client.id {
        return Err("iss or sub is not the client id");
    }
    if !audience_ok(&claims.aud, audience, settings) {
        return Err("aud is not this server");
    }
    // RFC 7523 §3 item 4: the JWT must not be used on or after `exp`.
    if now >= claims.exp + LEEWAY_SECS {
        return Err("expired");
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
        return Err("not yet valid (nbf)");
    }
    if claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
        return Err("issued in the future (iat)");
    }
    // RFC 7523 §3 items 4 and 6 let the server bound how far ahead `exp`
    // may be; the bound also caps how long a `jti` must be remembered.
    let lifetime = claims.exp - claims.iat.unwrap_or(now).min(now);
    let max = i64::try_from(settings.max_assertion_lifetime.as_secs()).unwrap_or(i64::MAX);
    if lifetime > max {
        return Err("lifetime longer than client_auth.max_assertion_lifetime");
    }
    let jti = claims.jti.filter(|j| !j.is_empty()).ok_or("no jti")?;
    if jti.len() > MAX_JTI_BYTES {
        return Err("jti too long");
    }
    Ok(Accepted {
        jti,
        remember_until: claims.exp + LEEWAY_SECS,
    })
}

/// The one key to check an assertion signed with `alg` against. With a
/// `kid`, the key of that `kid`; keys registered without any `kid` cannot be
/// named, so then a `kid` in the header (which many libraries add) is a hint
/// that is ignored (RFC 7515 §4.1.4). Without a usable `kid`, the one key
/// that fits `alg` — and when several do, none: the assertion must say which.
pub(crate) fn pick_key<'k>(
    keys: &'k [PublicJwk],
    alg: &str,
    kid: Option<&str>,
) -> Result<&'k PublicJwk, &'static str> {
    let named = kid.filter(|_| keys.iter().any(|k| k.kid.is_some()));
    let mut fitting = keys
        .iter()
        .filter(|k| k.fits(alg) && named.is_none_or(|n| k.kid.as_deref() == Some(n)));
    match (fitting.next(), fitting.next()) {
        (Some(key), None) => Ok(key),
        (None, _) if named.is_some() => Err("no key of the client has this kid and alg"),
        (None, _) => Err("no key of the client fits this alg"),
        (Some(_), Some(_)) => {
            Err("no kid, and the client has several keys for this alg: the assertion must name one")
        }
    }
}

/// RFC 7523 §3 item 3 and docs/decisions.md "Client authentication with JWTs":
/// `aud` is the issuer identifier or, while enabled, the token endpoint URL; a
/// single string or a one-element array. Several audiences are refused: an
/// assertion addressed to others too could be replayed to them.
fn audience_ok(aud: &Value, audience: &Audience<'_>, settings: &ClientAuthSettings) -> bool {
    let one = match aud {
        Value::String(s) => s.as_str(),
        Value::Array(a) if a.len() == 1 => match a[0].as_str() {
            Some(s) => s,
            None => return false,
        },
        _ => return false,
    };
    one == audience.issuer
        || (settings.accept_token_endpoint_aud
            && (one == audience.token_endpoint || one == audience.called_endpoint))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::{AuthMethod, ClientMetadata, ClientOrigin};
    use crate::keys::{Alg, SigningKey};
    use serde_json::json;

    const ISS: &str = "https://as.example";
    const TOKEN: &str = "https://as.example/oauth/token";

    /// The audience of an assertion sent to the token endpoint.
    fn token_endpoint() -> Audience<'static> {
        Audience {
            issuer: ISS,
            token_endpoint: TOKEN,
            called_endpoint: TOKEN,
        }
    }

    /// A `private_key_jwt` client `c_1` holding `key`'s public JWK.
    pub(crate) fn client(key: &SigningKey) -> Client {
        Client {
            id: "c_1".into(),
            origin: ClientOrigin::Cli,
            metadata: ClientMetadata {
                client_name: None,
                grant_types: vec!["client_credentials".into()],
                response_types: vec![],
                redirect_uris: vec![],
                token_endpoint_auth_method: AuthMethod::PrivateKeyJwt,
                scopes: None,
                audiences: None,
                resource_servers: None,
                jwks: Some(json!({"keys": [key.public_jwk()]})),
                jwks_uri: None,
                extra: Default::default(),
            },
            secrets: vec![],
            registration_token: None,
            revision: 0,
            created_at: 0,
        }
    }

    fn check(key: &SigningKey, c: &Client, claims: Value, settings: &ClientAuthSettings) -> bool {
        let jwt = key.sign_jwt("JWT", &claims).unwrap();
        let aud = token_endpoint();
        let jwks = c.metadata.jwks.as_ref().expect("test client has keys");
        verify(&jwt, c, jwks, &aud, settings, 1000).is_ok()
    }

    #[test]
    fn audience_forms_and_the_token_endpoint_switch() {
        let (key, _) = SigningKey::generate(Alg::EdDSA).unwrap();
        let c = client(&key);
        let on = ClientAuthSettings::default();
        let off = ClientAuthSettings {
            accept_token_endpoint_aud: false,
            ..on.clone()
        };
        let base =
            |aud: Value| json!({"iss": "c_1", "sub": "c_1", "aud": aud, "exp": 1100, "jti": "j"});
        assert!(check(&key, &c, base(json!(ISS)), &on));
        assert!(check(&key, &c, base(json!([ISS])), &on));
        assert!(check(&key, &c, base(json!(TOKEN)), &on));
        assert!(!check(&key, &c, base(json!(TOKEN)), &off));
        assert!(!check(&key, &c, base(json!([ISS, TOKEN])), &on));
        assert!(!check(&key, &c, base(json!([])), &on));
        assert!(!check(&key, &c, base(json!(1)), &on));
    }

    #[test]
    fn lifetime_is_bounded_from_iat_or_now() {
        let (key, _) = SigningKey::generate(Alg::ES256).unwrap();
        let c = client(&key);
        let s = ClientAuthSettings::default();
        let claims = |iat: Option<i64>, exp: i64| {
            let mut v = json!({"iss": "c_1", "sub": "c_1", "aud": ISS, "exp": exp, "jti": "j"});
            if let Some(i) = iat {
                v["iat"] = json!(i);
            }
            v
        };
        assert!(check(&key, &c, claims(Some(1000), 4600), &s));
        assert!(!check(&key, &c, claims(Some(1000), 4601), &s));
        assert!(!check(&key, &c, claims(None, 4601), &s));
        assert!(!check(&key, &c, claims(Some(990), 4600), &s));
        assert!(!check(&key, &c, claims(Some(1100), 1200), &s));
    }

    /// A compact JWS over raw header and claims bytes, signed by `key`.
    fn sign_raw(key: &SigningKey, header: &[u8], claims: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            crate::crypto::b64url(header),
            crate::crypto::b64url(claims)
        );
        let sig = key.sign_bytes(input.as_bytes()).unwrap();
        format!("{input}.{}", crate::crypto::b64url(&sig))
    }

    #[test]
    fn an_assertion_with_invalid_utf8_in_an_unknown_member_is_refused() {
        // Found by fuzz/fuzz_targets/jwt.rs: serde skipped the unknown
        // member without checking its bytes, so this verified.
        let (key, _) = SigningKey::generate(Alg::EdDSA).unwrap();
        let c = client(&key);
        let jwks = c.metadata.jwks.clone().unwrap();
        let aud = token_endpoint();
        let s = ClientAuthSettings::default();
        let claims =
            br#"{"iss":"c_1","sub":"c_1","aud":"https://as.example","exp":1100,"jti":"j"}"#;
        let good = sign_raw(&key, br#"{"alg":"EdDSA","typ":"JWT"}"#, claims);
        assert!(verify(&good, &c, &jwks, &aud, &s, 1000).is_ok());
        let bad_header = sign_raw(&key, b"{\"alg\":\"EdDSA\",\"typ\":\"JWT\xf5\xff\"}", claims);
        assert_eq!(
            verify(&bad_header, &c, &jwks, &aud, &s, 1000),
            Err("unreadable header")
        );
        assert_eq!(header_kid(&bad_header), None);
        let bad_claims = sign_raw(
            &key,
            br#"{"alg":"EdDSA"}"#,
            b"{\"iss\":\"c_1\",\"sub\":\"c_1\",\"aud\":\"https://as.example\",\"exp\":1100,\"jti\":\"j\",\"x\":\"\xff\"}",
        );
        assert_eq!(
            verify(&bad_claims, &c, &jwks, &aud, &s, 1000),
            Err("unreadable or incomplete claims")
        );
    }

    #[test]
    fn one_key_at_most_is_tried_and_several_of_one_alg_need_a_kid() {
        let (k1, _) = SigningKey::generate(Alg::ES256).unwrap();
        let (k2, _) = SigningKey::generate(Alg::ES256).unwrap();
        let (ed, _) = SigningKey::generate(Alg::EdDSA).unwrap();
        let mut c = client(&k1);
        let jwks = json!({"keys": [k1.public_jwk(), k2.public_jwk(), ed.public_jwk()]});
        c.metadata.jwks = Some(jwks.clone());
        let keys = parse_jwks(&jwks).unwrap();
        let aud = token_endpoint();
        let s = ClientAuthSettings::default();
        let claims =
            br#"{"iss":"c_1","sub":"c_1","aud":"https://as.example","exp":1100,"jti":"j"}"#;
        let run = |key: &SigningKey, header: String| {
            let jwt = sign_raw(key, header.as_bytes(), claims);
            verify_with_keys(&jwt, &c, &keys, &aud, &s, 1000)
        };
        let named = |alg: &str, kid: &str| format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#);
        assert!(run(&k2, named("ES256", &k2.kid)).is_ok());
        assert_eq!(
            run(&k2, r#"{"alg":"ES256"}"#.into()),
            Err(
                "no kid, and the client has several keys for this alg: the assertion must name one"
            )
        );
        assert_eq!(
            run(&k2, named("ES256", &k1.kid)),
            Err("signature does not verify with the client's key")
        );
        assert_eq!(
            run(&k2, named("ES256", "nobody")),
            Err("no key of the client has this kid and alg")
        );
        // The one EdDSA key needs no kid.
        assert!(run(&ed, r#"{"alg":"EdDSA"}"#.into()).is_ok());
        assert_eq!(
            run(&ed, named("EdDSA", &k1.kid)),
            Err("no key of the client has this kid and alg")
        );
    }

    #[test]
    fn numeric_dates_may_be_fractional_but_not_huge_and_kid_hints_are_handled() {
        let (key, _) = SigningKey::generate(Alg::ES256).unwrap();
        let c = client(&key);
        let s = ClientAuthSettings::default();
        let base = json!({"iss": "c_1", "sub": "c_1", "aud": ISS, "jti": "j"});
        let with = |exp: Value| {
            let mut v = base.clone();
            v["exp"] = exp;
            v
        };
        assert!(check(&key, &c, with(json!(1100.5)), &s));
        assert!(!check(&key, &c, with(json!(i64::MAX)), &s));
        assert!(!check(&key, &c, with(json!(1e300)), &s));
        assert!(!check(&key, &c, with(json!("1100")), &s));
        // Keys registered without a kid still verify a token that names one.
        let mut no_kid = c.clone();
        let mut jwk = key.public_jwk();
        jwk.as_object_mut().unwrap().remove("kid");
        no_kid.metadata.jwks = Some(json!({"keys": [jwk]}));
        assert!(check(&key, &no_kid, with(json!(1100)), &s));
    }
}
