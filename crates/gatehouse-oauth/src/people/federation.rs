//! Federated sign-in's protocol side, toward an upstream OpenID Provider
//! (OIDC Core §3.1, RFC 7636, RFC 9207): what the provider's discovery
//! document must say, and the checks an ID token must pass before the person
//! it names is signed in here — signature by a key of the provider (a fixed
//! list of algorithms, never `none` or HMAC), `iss`, `aud`, `azp`, `exp`,
//! `iat`, `nonce` — and how its claims become the identity linked to an
//! account (by provider and `sub` only, docs/decisions.md "People"), its
//! email and groups, with the provider's allow-lists applied. No I/O here:
//! the fetches and the pages are the binary's and the HTTP layer's.

use crate::client_auth::assertion::{json_segment, pick_key};
use crate::client_auth::jwks::{ASSERTION_ALGS, PublicJwk};
use crate::crypto::b64url_decode;
use serde_json::{Map, Value};

/// Signature algorithms accepted on ID tokens: those a key Gatehouse reads
/// can verify, as for client assertions — asymmetric only (an HMAC
/// "signature" would be keyed with the client secret, RFC 8725 §3.1).
pub const ID_TOKEN_ALGS: &[&str] = ASSERTION_ALGS;
/// Clock leeway on `exp`, `iat` and `nbf`.
pub const LEEWAY_SECS: i64 = 60;
/// An ID token issued longer ago than this is refused: the sign-in it
/// reports is not the one under way.
pub const MAX_ID_TOKEN_AGE_SECS: i64 = 10 * 60;
/// The longest ID token read (a few claims and a signature).
pub const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;
/// The longest subject kept (OIDC Core §2: at most 255 ASCII characters).
pub const MAX_SUBJECT_BYTES: usize = 255;

/// What Gatehouse needs from a provider's discovery document (OIDC
/// Discovery §3, RFC 8414 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// RFC 9207: the provider sends `iss` with its authorization responses,
    /// which must then be checked (the mix-up defence).
    pub iss_parameter_supported: bool,
}

impl ProviderMetadata {
    /// Reads a discovery document that must be `expected_issuer`'s own
    /// (OIDC Discovery §4.3: the `issuer` in it equals the one it was
    /// fetched for, exactly).
    pub fn from_discovery(doc: &Value, expected_issuer: &str) -> Result<ProviderMetadata, String> {
        let s = |field: &str| -> Result<String, String> {
            doc.get(field)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("the provider's discovery document has no {field}"))
        };
        let issuer = s("issuer")?;
        if issuer != expected_issuer {
            return Err(format!(
                "the provider's discovery document names issuer {issuer:?}, not {expected_issuer:?}"
            ));
        }
        Ok(ProviderMetadata {
            issuer,
            authorization_endpoint: s("authorization_endpoint")?,
            token_endpoint: s("token_endpoint")?,
            jwks_uri: s("jwks_uri")?,
            iss_parameter_supported: doc
                .get("authorization_response_iss_parameter_supported")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// What the ID token of one sign-in must carry.
pub struct Expected<'a> {
    /// The provider's issuer identifier.
    pub issuer: &'a str,
    /// Gatehouse's client id at the provider.
    pub client_id: &'a str,
    /// The `nonce` sent with this sign-in's authorization request.
    pub nonce: &'a str,
}

fn segment(s: &str) -> Result<Map<String, Value>, String> {
    json_segment(s).ok_or_else(|| "a segment is not a base64url JSON object".into())
}

fn int(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{name} is not a number of seconds")),
    }
}

/// Verifies an ID token (OIDC Core §3.1.3.7) against the provider's keys at
/// `now`; returns its claims. At most one signature is checked: the key its
/// `kid` names, or the one key that fits its `alg`.
pub fn verify_id_token(
    id_token: &str,
    keys: &[PublicJwk],
    expected: &Expected<'_>,
    now: i64,
) -> Result<Map<String, Value>, String> {
    if id_token.len() > MAX_ID_TOKEN_BYTES {
        return Err("the ID token is too large".into());
    }
    let mut parts = id_token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the ID token is not a compact JWS".into());
    };
    let header = segment(h)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("the ID token names no alg")?;
    if !ID_TOKEN_ALGS.contains(&alg) {
        return Err(format!("the ID token's alg {alg:?} is not accepted"));
    }
    if header.contains_key("crit") {
        return Err("the ID token has critical header extensions".into());
    }
    // The same one-key choice as for client assertions.
    let kid = header.get("kid").and_then(Value::as_str);
    let key = pick_key(keys, alg, kid)
        .map_err(|_| "no one key of the provider fits the ID token's kid and alg")?;
    let signature = b64url_decode(sig).ok_or("the ID token's signature is not base64url")?;
    let input = &id_token.as_bytes()[..h.len() + 1 + p.len()];
    if !key.verify(alg, input, &signature) {
        return Err("the ID token's signature does not verify".into());
    }
    let claims = segment(p)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(expected.issuer) {
        return Err(format!("the ID token's iss is not {:?}", expected.issuer));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return Err("the ID token's aud does not name this client".into());
    }
    // OIDC Core §3.1.3.7 items 4 and 5.
    match text("azp") {
        Some(azp) if azp != expected.client_id => {
            return Err("the ID token's azp is another client".into());
        }
        None if audiences.len() > 1 => {
            return Err("the ID token has several audiences and no azp".into());
        }
        _ => {}
    }
    let exp = int(&claims, "exp")?.ok_or("the ID token has no exp")?;
    if now >= exp + LEEWAY_SECS {
        return Err("the ID token has expired".into());
    }
    let iat = int(&claims, "iat")?.ok_or("the ID token has no iat")?;
    if iat > now + LEEWAY_SECS {
        return Err("the ID token was issued in the future".into());
    }
    if now - iat > MAX_ID_TOKEN_AGE_SECS {
        return Err("the ID token was issued too long ago".into());
    }
    if int(&claims, "nbf")?.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
        return Err("the ID token is not valid yet".into());
    }
    // Compared in constant time: the nonce is this sign-in's secret.
    let nonce_ok = text("nonce").is_some_and(|n| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            n.as_bytes(),
            expected.nonce.as_bytes(),
        ))
    });
    if !nonce_ok {
        return Err("the ID token's nonce is not this sign-in's".into());
    }
    match text("sub") {
        Some(s) if !s.is_empty() && s.len() <= MAX_SUBJECT_BYTES => Ok(claims),
        _ => Err("the ID token has no usable sub".into()),
    }
}

/// What a provider says about the person, as Gatehouse keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedIdentity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub groups: Vec<String>,
    /// A name to start the account's name from (`preferred_username`, else
    /// the email).
    pub name_hint: Option<String>,
}

/// Which people of a provider may sign in, and where their groups are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityRules {
    /// A claim name, or a dotted path into nested objects
    /// (`realm_access.roles`); its value a list of strings or one string.
    pub groups_claim: Option<String>,
    /// When set, only verified emails in these domains.
    pub allowed_email_domains: Vec<String>,
    /// When set, only people in at least one of these groups.
    pub allowed_groups: Vec<String>,
}

/// The claim at a dotted path.
fn at_path<'v>(claims: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// The identity in verified ID token `claims`, or why this person may not
/// sign in (for the refusal page and the log).
pub fn identity(
    claims: &Map<String, Value>,
    rules: &IdentityRules,
) -> Result<FederatedIdentity, String> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or("no sub")?
        .to_string();
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    // Only `true` is verified (some providers send "true" as a string;
    // a missing or odd value is not a verification).
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    let raw: Vec<String> = match rules
        .groups_claim
        .as_deref()
        .and_then(|p| at_path(claims, p))
    {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    // Groups become Cedar `Group`s and ride in every token: only names an
    // account may have (accounts::validate_groups), at most MAX_GROUPS.
    let mut groups: Vec<String> = Vec::new();
    for g in raw {
        if groups.len() < crate::limits::MAX_GROUPS
            && !groups.contains(&g)
            && crate::people::accounts::validate_groups(std::slice::from_ref(&g)).is_ok()
        {
            groups.push(g);
        }
    }
    if !rules.allowed_email_domains.is_empty() {
        let domain = email
            .as_deref()
            .filter(|_| email_verified)
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d);
        let allowed = domain.is_some_and(|d| {
            rules
                .allowed_email_domains
                .iter()
                .any(|a| a.eq_ignore_ascii_case(d))
        });
        if !allowed {
            return Err("the provider gave no verified email in an allowed domain".into());
        }
    }
    if !rules.allowed_groups.is_empty() && !groups.iter().any(|g| rules.allowed_groups.contains(g))
    {
        return Err("the person is in none of the allowed groups".into());
    }
    // A name to start the account from; an email only when verified (an
    // unverified one could be anybody's).
    let name_hint = claims
        .get("preferred_username")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| email.clone().filter(|_| email_verified));
    Ok(FederatedIdentity {
        subject,
        email,
        email_verified,
        groups,
        name_hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_auth::jwks::parse_jwks;
    use crate::keys::{Alg, SigningKey};
    use serde_json::json;

    const ISS: &str = "https://login.example.com";
    const CLIENT: &str = "gatehouse";
    const NONCE: &str = "n-0S6_WzA2Mj";
    const NOW: i64 = 1_800_000_000;

    fn expected() -> Expected<'static> {
        Expected {
            issuer: ISS,
            client_id: CLIENT,
            nonce: NONCE,
        }
    }

    fn good_claims() -> Value {
        json!({"iss": ISS, "sub": "248289761001", "aud": CLIENT, "exp": NOW + 300,
               "iat": NOW - 5, "nonce": NONCE, "email": "Alice@Example.com",
               "email_verified": true, "groups": ["mcp-users", "eng"]})
    }

    fn keys(key: &SigningKey) -> Vec<PublicJwk> {
        parse_jwks(&json!({"keys": [key.public_jwk()]})).unwrap()
    }

    #[test]
    fn a_good_id_token_verifies_and_every_broken_claim_is_refused() {
        for alg in [Alg::ES256, Alg::RS256, Alg::EdDSA] {
            let (key, _) = SigningKey::generate(alg).unwrap();
            let ks = keys(&key);
            let sign = |claims: &Value| key.sign_jwt("JWT", claims).unwrap();
            let claims = verify_id_token(&sign(&good_claims()), &ks, &expected(), NOW).unwrap();
            assert_eq!(claims["sub"], "248289761001");
            let broken = |k: &str, v: Value| {
                let mut c = good_claims();
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = v;
                }
                sign(&c)
            };
            for (token, why) in [
                (broken("iss", json!("https://evil.example")), "iss"),
                (broken("aud", json!("other")), "aud"),
                (broken("aud", json!([CLIENT, "other"])), "no azp"),
                (broken("azp", json!("other")), "azp"),
                (broken("exp", json!(NOW - 120)), "expired"),
                (broken("exp", Value::Null), "no exp"),
                (broken("iat", json!(NOW + 600)), "future"),
                (broken("iat", json!(NOW - 3600)), "too long ago"),
                (broken("iat", Value::Null), "no iat"),
                (broken("nbf", json!(NOW + 600)), "not valid yet"),
                (broken("nonce", json!("another")), "nonce"),
                (broken("nonce", Value::Null), "nonce"),
                (broken("sub", json!("")), "sub"),
                (broken("exp", json!("soon")), "number"),
            ] {
                let e = verify_id_token(&token, &ks, &expected(), NOW).unwrap_err();
                assert!(e.contains(why), "{alg:?} {why}: {e}");
            }
            // Several audiences with azp naming this client are fine.
            let mut multi = good_claims();
            multi["aud"] = json!([CLIENT, "other"]);
            multi["azp"] = json!(CLIENT);
            assert!(verify_id_token(&sign(&multi), &ks, &expected(), NOW).is_ok());
        }
    }

    #[test]
    fn forged_and_unsigned_id_tokens_are_refused() {
        let (key, _) = SigningKey::generate(Alg::ES256).unwrap();
        let (other, _) = SigningKey::generate(Alg::ES256).unwrap();
        let ks = keys(&key);
        // Signed by a key the provider does not publish.
        let forged = other.sign_jwt("JWT", &good_claims()).unwrap();
        assert!(verify_id_token(&forged, &ks, &expected(), NOW).is_err());
        // alg none, and HS256 keyed with anything.
        let b64 = |v: &Value| crate::crypto::b64url(v.to_string().as_bytes());
        let payload = b64(&good_claims());
        for alg in ["none", "HS256"] {
            let token = format!("{}.{payload}.", b64(&json!({"alg": alg})));
            let e = verify_id_token(&token, &ks, &expected(), NOW).unwrap_err();
            assert!(e.contains("not accepted"), "{alg}: {e}");
        }
        // A payload swapped under a valid signature.
        let good = key.sign_jwt("JWT", &good_claims()).unwrap();
        let mut parts: Vec<&str> = good.split('.').collect();
        let mut evil = good_claims();
        evil["sub"] = json!("admin");
        let evil = b64(&evil);
        parts[1] = &evil;
        assert!(verify_id_token(&parts.join("."), &ks, &expected(), NOW).is_err());
        for junk in ["", "a.b", "a.b.c.d", &"x".repeat(MAX_ID_TOKEN_BYTES + 1)] {
            assert!(verify_id_token(junk, &ks, &expected(), NOW).is_err());
        }
    }

    #[test]
    fn identities_take_groups_from_the_configured_claim_and_apply_the_allow_lists() {
        let claims = good_claims().as_object().unwrap().clone();
        let rules = IdentityRules {
            groups_claim: Some("groups".into()),
            ..Default::default()
        };
        let id = identity(&claims, &rules).unwrap();
        assert_eq!(id.subject, "248289761001");
        assert_eq!(id.email.as_deref(), Some("alice@example.com"));
        assert!(id.email_verified);
        assert_eq!(id.groups, ["mcp-users", "eng"]);
        // A dotted path, and a single string.
        let nested = json!({"sub": "s", "realm_access": {"roles": ["admin"]}, "team": "ops"});
        let nested = nested.as_object().unwrap();
        let path = |p: &str| IdentityRules {
            groups_claim: Some(p.into()),
            ..Default::default()
        };
        assert_eq!(
            identity(nested, &path("realm_access.roles"))
                .unwrap()
                .groups,
            ["admin"]
        );
        assert_eq!(identity(nested, &path("team")).unwrap().groups, ["ops"]);
        // Names an account could not have are dropped, and so is the 33rd.
        let mut list = vec![
            json!("ok"),
            json!("has space"),
            json!(""),
            json!("x".repeat(65)),
        ];
        list.extend((0..40).map(|i| json!(format!("g{i}"))));
        let odd = json!({"sub": "s", "groups": list});
        let got = identity(odd.as_object().unwrap(), &path("groups"))
            .unwrap()
            .groups;
        assert_eq!(got.len(), crate::limits::MAX_GROUPS);
        assert_eq!(got[0], "ok");
        assert!(
            got.iter()
                .all(|g| !g.contains(' ') && !g.is_empty() && g.len() <= 64)
        );
        assert!(
            identity(nested, &path("nowhere.at.all"))
                .unwrap()
                .groups
                .is_empty()
        );
        // Allow-lists.
        let domains = |d: &str| IdentityRules {
            allowed_email_domains: vec![d.into()],
            ..rules.clone()
        };
        assert!(identity(&claims, &domains("example.com")).is_ok());
        assert!(identity(&claims, &domains("other.example")).is_err());
        let mut unverified = claims.clone();
        unverified.insert("email_verified".into(), json!(false));
        assert!(identity(&unverified, &domains("example.com")).is_err());
        unverified.insert("email_verified".into(), json!("yes"));
        assert!(identity(&unverified, &domains("example.com")).is_err());
        let groups = |g: &str| IdentityRules {
            allowed_groups: vec![g.into()],
            ..rules.clone()
        };
        assert!(identity(&claims, &groups("mcp-users")).is_ok());
        assert!(identity(&claims, &groups("admins")).is_err());
    }

    #[test]
    fn discovery_must_be_the_configured_issuers_own() {
        let doc = json!({"issuer": ISS, "authorization_endpoint": format!("{ISS}/auth"),
            "token_endpoint": format!("{ISS}/token"), "jwks_uri": format!("{ISS}/jwks"),
            "authorization_response_iss_parameter_supported": true});
        let m = ProviderMetadata::from_discovery(&doc, ISS).unwrap();
        assert!(m.iss_parameter_supported);
        assert_eq!(m.token_endpoint, format!("{ISS}/token"));
        let e = ProviderMetadata::from_discovery(&doc, "https://login.example.com/").unwrap_err();
        assert!(e.contains("names issuer"), "{e}");
        let mut missing = doc.clone();
        missing.as_object_mut().unwrap().remove("jwks_uri");
        assert!(
            ProviderMetadata::from_discovery(&missing, ISS)
                .unwrap_err()
                .contains("jwks_uri")
        );
    }
}
