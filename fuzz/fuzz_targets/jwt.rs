//! JWT parsing before and after the signature check: client assertions at
//! the token endpoint (`gatehouse_oauth::client_auth::assertion`: `claimed_client_id`,
//! `header_kid`, `verify`) and access tokens at the gateway
//! (`gatehouse_gateway::verify::Verifier`).
//!
//! Input: a mode byte, then
//! - mode 0: a raw token, given to every parser; none may accept it;
//! - mode 1: header JSON, a newline, claims JSON — signed here with the
//!   client's registered key, so the claim checks after the signature are
//!   reached, and given to `assertion::verify`;
//! - mode 2: the same, signed with the issuer's key and given to the
//!   gateway's verifier.
//!
//! Whatever is accepted is checked against the rules independently.

#![no_main]

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_gateway::keys::LocalJwks;
use gatehouse_gateway::verify::{Principal, Verifier, VerifierConfig};
use gatehouse_oauth::client_auth::assertion::{self, Audience, LEEWAY_SECS, claimed_client_id, header_kid};
use gatehouse_oauth::client::{AuthMethod, Client, ClientMetadata, ClientOrigin};
use gatehouse_oauth::settings::ClientAuthSettings;
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

const ISSUER: &str = "https://as.example";
const TOKEN_ENDPOINT: &str = "https://as.example/oauth/token";
const RESOURCE: &str = "https://mcp.example/mcp";
const CLIENT_ID: &str = "c_fuzz";
/// A fixed "now" for assertions (the gateway reads the clock itself).
const NOW: i64 = 1_800_000_000;

struct Fixture {
    client_key: Ed25519KeyPair,
    client: Client,
    jwks: Value,
    issuer_key: Ed25519KeyPair,
    verifier: Verifier,
    runtime: tokio::runtime::Runtime,
}

fn jwk(key: &Ed25519KeyPair, kid: &str) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let client_key = Ed25519KeyPair::generate().expect("key");
        let issuer_key = Ed25519KeyPair::generate().expect("key");
        let jwks = json!({"keys": [jwk(&client_key, "client-key")]});
        let client = Client {
            id: CLIENT_ID.into(),
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
                jwks: Some(jwks.clone()),
                jwks_uri: None,
                extra: Default::default(),
            },
            secrets: vec![],
            registration_token: None,
            revision: 0,
            created_at: 0,
        };
        let keys = LocalJwks::from_document(&json!({"keys": [jwk(&issuer_key, "as-key")]}))
            .expect("issuer JWKS");
        let verifier = Verifier::new(
            VerifierConfig {
                issuer: ISSUER.into(),
                audience: RESOURCE.into(),
                algorithms: vec![Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256],
                leeway: 60,
                accept_plain_jwt: false,
            },
            Arc::new(keys),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        Fixture {
            client_key,
            client,
            jwks,
            issuer_key,
            verifier,
            runtime,
        }
    })
}

fn sign(key: &Ed25519KeyPair, header: &[u8], claims: &[u8]) -> String {
    let mut out = URL_SAFE_NO_PAD.encode(header);
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(claims));
    let sig = key.sign(out.as_bytes());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
    out
}

fn audience() -> Audience<'static> {
    Audience {
        issuer: ISSUER,
        token_endpoint: TOKEN_ENDPOINT,
        called_endpoint: TOKEN_ENDPOINT,
    }
}

fn check_assertion(f: &Fixture, jws: &str, header: &[u8], claims: &[u8]) {
    let _ = header_kid(jws);
    let claimed = claimed_client_id(jws);
    let settings = ClientAuthSettings::default();
    let Ok(accepted) = assertion::verify(jws, &f.client, &f.jwks, &audience(), &settings, NOW)
    else {
        return;
    };
    // Accepted: the header and claims must say what RFC 7523 §3 requires.
    let h: Value = serde_json::from_slice(header).expect("accepted header is JSON");
    let c: Value = serde_json::from_slice(claims).expect("accepted claims are JSON");
    assert_eq!(h["alg"], "EdDSA");
    assert!(h.get("crit").is_none_or(Value::is_null));
    assert_eq!(c["iss"], CLIENT_ID);
    assert_eq!(c["sub"], CLIENT_ID);
    assert_eq!(claimed.as_deref(), Some(CLIENT_ID));
    let aud_ok = |a: &Value| a == ISSUER || a == TOKEN_ENDPOINT;
    match &c["aud"] {
        Value::Array(a) => assert!(a.len() == 1 && aud_ok(&a[0])),
        a => assert!(aud_ok(a)),
    }
    let exp = c["exp"].as_f64().expect("exp is a number");
    assert!((exp as i64) + LEEWAY_SECS > NOW);
    assert!((exp as i64) - NOW <= 3600);
    assert_eq!(c["jti"], accepted.jti.as_str());
    assert!(!accepted.jti.is_empty() && accepted.jti.len() <= 256);
}

fn check_access_token(f: &Fixture, token: &str, header: &[u8], claims: &[u8]) {
    let Ok(verified) = f.runtime.block_on(f.verifier.verify(token)) else {
        return;
    };
    let h: Value = serde_json::from_slice(header).expect("accepted header is JSON");
    let c: Value = serde_json::from_slice(claims).expect("accepted claims are JSON");
    assert_eq!(h["alg"], "EdDSA");
    assert_eq!(h["kid"], "as-key");
    // RFC 7515 §4.1.11: a token naming critical extensions the verifier
    // does not implement (it implements none) must be refused.
    assert!(
        h.get("crit").is_none_or(Value::is_null),
        "crit accepted: {h}"
    );
    let typ = h["typ"].as_str().expect("typ").to_ascii_lowercase();
    assert!(typ == "at+jwt" || typ == "application/at+jwt", "{typ}");
    assert_eq!(c["iss"], ISSUER);
    match &c["aud"] {
        Value::Array(a) => assert!(a.iter().any(|x| x == RESOURCE)),
        a => assert_eq!(a, RESOURCE),
    }
    let sub = c["sub"].as_str().expect("sub");
    let client_id = c["client_id"].as_str().expect("client_id");
    match &verified.principal {
        Principal::Client { client_id: id } => assert!(id == client_id && id == sub),
        Principal::User {
            sub: s,
            client_id: id,
        } => {
            assert!(s == sub && id == client_id && sub != client_id)
        }
    }
    assert_eq!(c["exp"].as_u64(), Some(verified.exp));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(verified.exp + 60 > now);
}

fuzz_target!(
    init: {
        // Key generation seeds aws-lc's entropy pool, which can take longer
        // than libFuzzer's per-input timeout on a loaded machine.
        fixture();
    },
    |data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    match mode % 3 {
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            let _ = header_kid(token);
            let _ = claimed_client_id(token);
            let settings = ClientAuthSettings::default();
            assert!(
                assertion::verify(token, &f.client, &f.jwks, &audience(), &settings, NOW).is_err()
            );
            assert!(f.runtime.block_on(f.verifier.verify(token)).is_err());
        }
        m => {
            let (header, claims) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            if m == 1 {
                let jws = sign(&f.client_key, header, claims);
                check_assertion(f, &jws, header, claims);
            } else {
                let jws = sign(&f.issuer_key, header, claims);
                check_access_token(f, &jws, header, claims);
            }
        }
    }
    }
);
