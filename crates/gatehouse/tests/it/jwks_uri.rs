//! private_key_jwt clients whose keys live at a `jwks_uri` (RFC 7591 §2,
//! RFC 7523 §2.2) over real HTTP against the real binary: the client's JWKS
//! is served by an in-test axum server on 127.0.0.1 (allowed by
//! `client_auth.allow_http_loopback_jwks_uri`), which counts every fetch.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_testkit::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AUD: &str = "https://mcp.example.com/tools";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A little more than the server's one refetch per client per 10 s.
const REFETCH_WAIT: Duration = Duration::from_millis(10_500);

struct Key {
    enc: EncodingKey,
    jwk: Value,
    kid: String,
}

fn key() -> Key {
    let (signing, pkcs8) = SigningKey::generate(Alg::ES256).expect("generate");
    Key {
        enc: EncodingKey::from_ec_der(&pkcs8),
        jwk: signing.public_jwk(),
        kid: signing.kid.clone(),
    }
}

/// The client's key server: `/jwks` serves `jwks`, `/redirect` redirects to
/// it, `/big` is 100 KiB, `/private` carries a private member.
#[derive(Default)]
struct KeyServer {
    jwks: Mutex<Value>,
    hits: Mutex<std::collections::HashMap<&'static str, usize>>,
    total: AtomicUsize,
}

impl KeyServer {
    fn hit(&self, path: &'static str) {
        self.total.fetch_add(1, Ordering::SeqCst);
        *self.hits.lock().expect("hits").entry(path).or_default() += 1;
    }
    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
    fn serve(&self, jwks: Value) {
        *self.jwks.lock().expect("jwks") = jwks;
    }
}

async fn serve_doc(State(ks): State<Arc<KeyServer>>, Path(kind): Path<String>) -> AxumResponse {
    let mut doc = ks.jwks.lock().expect("jwks").clone();
    let path = match kind.as_str() {
        "jwks" => "/jwks",
        "redirect" => "/redirect",
        "big" => "/big",
        "private" => "/private",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ks.hit(path);
    match path {
        "/redirect" => return (StatusCode::FOUND, [(header::LOCATION, "/jwks")]).into_response(),
        "/big" => doc["padding"] = json!("x".repeat(100 * 1024)),
        "/private" => doc["keys"][0]["d"] = json!("AAAA"),
        _ => {}
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

async fn start_key_server(jwks: Value) -> (Arc<KeyServer>, String) {
    let ks = Arc::new(KeyServer::default());
    ks.serve(jwks);
    let app = Router::new()
        .route("/{kind}", get(serve_doc))
        .with_state(ks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (ks, base)
}

/// The failure backoff is raised out of the way: these tests send many
/// refused assertions from one address on purpose (the refetch bound must
/// hold however many arrive), which the backoff would otherwise hold back
/// before their keys are looked at (tested in client_auth_failures.rs).
fn config(dir: &DataDir, allow_loopback: bool) -> String {
    let cfg = dir.path().join("gatehouse.toml");
    std::fs::write(
        &cfg,
        format!(
            "allowed_audiences = [\"{AUD}\"]\n[registration]\nconfidential = \"open\"\n\
             [client_auth]\nallow_http_loopback_jwks_uri = {allow_loopback}\n\
             free_failures_per_address = 1000\nfree_failures_per_address_client = 1000\n"
        ),
    )
    .expect("write config");
    cfg.display().to_string()
}

/// `client create` for a private_key_jwt client with `extra` arguments.
fn create_args<'a>(cfg: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let base = "client create --name pk --grant client_credentials --auth-method private_key_jwt";
    let mut args: Vec<&str> = base.split(' ').collect();
    args.extend(["--config", cfg]);
    args.extend_from_slice(extra);
    args
}

fn create(dir: &DataDir, cfg: &str, uri: &str) -> Result<String, String> {
    let (ok, out, err) = cli(dir, &create_args(cfg, &["--jwks-uri", uri]));
    if !ok {
        return Err(err);
    }
    assert_eq!(out["jwks_uri"], uri);
    assert!(
        out["client_secret"].is_null() && out["jwks"].is_null(),
        "{out}"
    );
    Ok(out["client_id"].as_str().expect("client_id").to_string())
}

async fn token(server: &Server, client: &str, key: &Key, kid: &str) -> Response {
    let now = gatehouse_oauth::clock::system_now();
    let claims = json!({"iss": client, "sub": client, "aud": server.base, "iat": now,
        "exp": now + 60, "jti": gatehouse_oauth::tokens::issue::new_jti()});
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    let jwt = jsonwebtoken::encode(&header, &claims, &key.enc).expect("sign");
    server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &jwt),
            ],
        )
        .await
}

fn assert_refused(r: &Response, case: &str) {
    assert_eq!(r.status, 401, "{case}: {}", r.text);
    assert_eq!(r.json["error"], "invalid_client", "{case}: {}", r.text);
    assert!(r.json.get("access_token").is_none(), "{case}");
}

async fn jti_count(dir: &DataDir) -> i64 {
    let pool = db(dir).await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM assertion_jtis")
        .fetch_one(&pool)
        .await
        .expect("count jtis");
    pool.close().await;
    n
}

/// A server with the loopback allowance, a key server serving `key`, and a
/// client registered from the CLI with its `/jwks`.
async fn setup(key: &Key) -> (DataDir, Server, Arc<KeyServer>, String, String) {
    install_crypto();
    let (ks, base) = start_key_server(json!({"keys": [key.jwk]})).await;
    let dir = DataDir::new();
    let cfg = config(&dir, true);
    let id = create(&dir, &cfg, &format!("{base}/jwks")).expect("client create");
    let server = Server::start(&dir, &["--config", &cfg], &[]);
    (dir, server, ks, id, base)
}

#[tokio::test]
async fn keys_from_jwks_uri_are_fetched_once_and_cached() {
    let k = key();
    let (dir, server, ks, id, _) = setup(&k).await;
    assert_eq!(
        ks.hits("/jwks"),
        0,
        "nothing is fetched before it is needed"
    );
    let r = token(&server, &id, &k, &k.kid).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ks.hits("/jwks"), 1);
    let r = token(&server, &id, &k, &k.kid).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ks.hits("/jwks"), 1, "the second request uses the cache");
    // A key the client never published is refused without a refetch (the
    // last fetch was under 10 s ago).
    let other = key();
    assert_refused(
        &token(&server, &id, &other, &other.kid).await,
        "unknown key",
    );
    assert_eq!(ks.hits("/jwks"), 1);
    assert_eq!(jti_count(&dir).await, 2);
}

#[tokio::test]
async fn rotation_at_the_client_is_picked_up_after_one_refetch() {
    let k1 = key();
    let (dir, server, ks, id, _) = setup(&k1).await;
    assert_eq!(token(&server, &id, &k1, &k1.kid).await.status, 200);
    let k2 = key();
    ks.serve(json!({"keys": [k2.jwk]}));
    tokio::time::sleep(REFETCH_WAIT).await;
    let r = token(&server, &id, &k2, &k2.kid).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ks.hits("/jwks"), 2, "one refetch for the new kid");
    assert_eq!(token(&server, &id, &k2, &k2.kid).await.status, 200);
    assert_eq!(ks.hits("/jwks"), 2);
    // The retired key is gone from the fetched set.
    assert_refused(&token(&server, &id, &k1, &k1.kid).await, "retired key");
    assert_eq!(
        ks.hits("/jwks"),
        2,
        "and its kid does not refetch within 10 s"
    );
    assert_eq!(jti_count(&dir).await, 3);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_refetches_at_most_once_per_ten_seconds() {
    let k = key();
    let (dir, server, ks, id, _) = setup(&k).await;
    assert_eq!(token(&server, &id, &k, &k.kid).await.status, 200);
    tokio::time::sleep(REFETCH_WAIT).await;
    for i in 0..20 {
        let kid = format!("random-{i}-{}", gatehouse_oauth::tokens::issue::new_jti());
        assert_refused(&token(&server, &id, &k, &kid).await, "unknown kid");
    }
    assert_eq!(ks.hits("/jwks"), 2, "twenty unknown kids, one refetch");
    assert_eq!(token(&server, &id, &k, &k.kid).await.status, 200);
    assert_eq!(ks.hits("/jwks"), 2);
    assert_eq!(jti_count(&dir).await, 2);
}

#[tokio::test]
async fn redirecting_oversize_and_private_documents_fail_with_invalid_client() {
    let k = key();
    let (dir, server, ks, _, base) = setup(&k).await;
    for path in ["/redirect", "/big", "/private"] {
        let id = create(&dir, &config(&dir, true), &format!("{base}{path}")).expect("create");
        // The CLI writes beside the running server, which follows the
        // change sequence; wait until the client is known.
        let mut r = token(&server, &id, &k, &k.kid).await;
        for _ in 0..30 {
            if ks.hits(path) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            r = token(&server, &id, &k, &k.kid).await;
        }
        assert_refused(&r, path);
        assert_eq!(ks.hits(path), 1, "{path} fetched once");
    }
    assert_eq!(ks.hits("/jwks"), 0, "the redirect was not followed");
    assert_eq!(jti_count(&dir).await, 0);
    // Each reason is logged (the client only ever sees invalid_client).
    for reason in ["redirect refused", "larger than", "private member"] {
        let logged = eventually(Duration::from_secs(5), || {
            let logs = server.logs();
            async move { logs.contains(reason) }
        })
        .await;
        assert!(logged, "{reason}: {}", server.logs());
    }
}

#[tokio::test]
async fn without_the_allowance_loopback_and_private_jwks_uris_are_refused() {
    install_crypto();
    let dir = DataDir::new();
    let cfg = config(&dir, false);
    let err = create(&dir, &cfg, "http://127.0.0.1:9/jwks").expect_err("refused");
    assert!(err.contains("jwks_uri must use https"), "{err}");
    let err = create(&dir, &cfg, "https://10.0.0.1/jwks").expect_err("refused");
    assert!(err.contains("private, loopback"), "{err}");
    let (ok, _, err) = cli(&dir, &create_args(&cfg, &[]));
    assert!(!ok && err.contains("--jwks-uri"), "{err}");
    let both = [
        "--jwks",
        "k.json",
        "--jwks-uri",
        "https://keys.example/jwks",
    ];
    let (ok, _, err) = cli(&dir, &create_args(&cfg, &both));
    assert!(!ok && err.contains("not both"), "{err}");
    let server = Server::start(&dir, &["--config", &cfg], &[]);
    for uri in [
        "http://127.0.0.1:9/jwks",
        "https://[::1]/jwks",
        "https://169.254.169.254/",
    ] {
        let r = server
            .register(
                &json!({"grant_types": ["client_credentials"],
                        "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri}),
                None,
            )
            .await;
        r.assert_error(400, "invalid_client_metadata");
    }
    assert_eq!(client_count(&dir).await, 0);
}

#[tokio::test]
async fn dynamic_registration_with_jwks_or_jwks_uri_then_a_token_by_assertion() {
    let k = key();
    let (dir, server, ks, _, base) = setup(&k).await;
    let before = client_count(&dir).await;
    let r = server
        .register(
            &json!({"client_name": "dyn", "grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks": {"keys": [k.jwk]}}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json.get("client_secret").is_none(), "{}", r.text);
    assert_eq!(r.json["jwks"]["keys"][0]["kid"], k.kid.as_str());
    let id = r.json["client_id"].as_str().expect("id").to_string();
    let t = token(&server, &id, &k, &k.kid).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(ks.hits("/jwks"), 0);

    let uri = format!("{base}/jwks");
    let r = server
        .register(
            &json!({"grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["jwks_uri"], uri.as_str());
    assert!(r.json.get("client_secret").is_none() && r.json.get("jwks").is_none());
    let id = r.json["client_id"].as_str().expect("id").to_string();
    let t = token(&server, &id, &k, &k.kid).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(ks.hits("/jwks"), 1);
    assert_eq!(client_count(&dir).await, before + 2);
}

#[tokio::test]
async fn registration_with_both_neither_or_bad_keys_is_refused_and_stores_nothing() {
    let k = key();
    let (dir, server, ks, _, base) = setup(&k).await;
    let before = client_count(&dir).await;
    let mut private = k.jwk.clone();
    private["d"] = json!("AAAA");
    let uri = format!("{base}/jwks");
    let cases = [
        json!({"jwks": {"keys": [k.jwk]}, "jwks_uri": uri}),
        json!({}),
        json!({"jwks": {"keys": [private]}}),
        json!({"jwks": {"keys": []}}),
        json!({"jwks_uri": "https://keys.example/jwks#frag"}),
        json!({"jwks_uri": 7}),
    ];
    for extra in cases {
        let mut body = json!({"grant_types": ["client_credentials"],
                              "token_endpoint_auth_method": "private_key_jwt"});
        for (f, v) in extra.as_object().expect("object") {
            body[f] = v.clone();
        }
        let r = server.register(&body, None).await;
        r.assert_error(400, "invalid_client_metadata");
    }
    assert_eq!(client_count(&dir).await, before);
    // With a secret method the keys would never be used: dropped, like
    // unknown metadata, and the response shows what was stored.
    let r = server
        .register(
            &json!({"grant_types": ["client_credentials"], "jwks": {"keys": [k.jwk]},
                    "jwks_uri": uri}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json["client_secret"].is_string(), "{}", r.text);
    assert!(r.json.get("jwks").is_none() && r.json.get("jwks_uri").is_none());
    assert_eq!(ks.hits("/jwks"), 0, "registration does not fetch");
}

#[tokio::test]
async fn private_key_jwt_registration_is_gated_like_confidential_clients() {
    let k = key();
    let dir = DataDir::new();
    let cfg = dir.path().join("gatehouse.toml");
    std::fs::write(
        &cfg,
        format!(
            "allowed_audiences = [\"{AUD}\"]\n[registration]\nconfidential = \"initial-token\"\n\
             initial_access_tokens = [\"let-me-in-with-this-token\"]\n"
        ),
    )
    .expect("write config");
    let server = Server::start(&dir, &["--config", cfg.to_str().expect("path")], &[]);
    let body = json!({"grant_types": ["client_credentials"],
                      "token_endpoint_auth_method": "private_key_jwt",
                      "jwks": {"keys": [k.jwk]}});
    server
        .register(&body, None)
        .await
        .assert_error(401, "invalid_token");
    assert_eq!(client_count(&dir).await, 0);
    let r = server
        .register(&body, Some("let-me-in-with-this-token"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(client_count(&dir).await, 1);
}

#[tokio::test]
async fn a_jwks_uri_that_never_answers_fails_within_its_deadline_and_holds_up_nothing_else() {
    install_crypto();
    let k = key();
    let hung = gatehouse_testkit::stall::accepts_and_ignores().await;
    let dir = DataDir::new();
    let cfg = config(&dir, true);
    let id = create(&dir, &cfg, &format!("{hung}/jwks")).expect("client create");
    let server = Server::start(&dir, &["--config", &cfg], &[]);
    let start = std::time::Instant::now();
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let asked = std::time::Instant::now();
        let health = server.get_json("/healthz").await;
        // The same client again while the fetch hangs: refused at once, not
        // queued behind it.
        let again = token(&server, &id, &k, &k.kid).await;
        (health.status, again, asked.elapsed())
    };
    let (first, (health, again, meanwhile_took)) =
        tokio::join!(token(&server, &id, &k, &k.kid), meanwhile);
    let took = start.elapsed();
    assert_refused(&first, "a jwks_uri that never answers");
    // The fetch deadline is 5 s (connect, headers and body together).
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_millis(6500),
        "refused after {took:?}"
    );
    assert_eq!(health, 200);
    assert_refused(&again, "a second assertion during the hung fetch");
    assert!(
        meanwhile_took < Duration::from_secs(1),
        "other requests waited {meanwhile_took:?}"
    );
    assert_eq!(jti_count(&dir).await, 0, "no assertion was accepted");
}

/// A public RSA JWK with a modulus of `bits` bits (odd, top bit set: the
/// verifier takes it; nobody holds its private half).
fn rsa_jwk(bits: usize, kid: &str) -> Value {
    let mut n = vec![0xc5u8; bits / 8];
    n[0] |= 0x80;
    n[bits / 8 - 1] |= 1;
    json!({"kty": "RSA", "kid": kid, "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"})
}

/// An ES256 assertion for `client` signed by `key`, naming `kid` if given.
fn assertion(server: &Server, client: &str, key: &Key, kid: Option<&str>) -> String {
    let now = gatehouse_oauth::clock::system_now();
    let claims = json!({"iss": client, "sub": client, "aud": server.base, "iat": now,
        "exp": now + 60, "jti": gatehouse_oauth::tokens::issue::new_jti()});
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, &claims, &key.enc).expect("sign")
}

async fn token_with(server: &Server, jwt: &str) -> Response {
    server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", jwt),
            ],
        )
        .await
}

/// Waits for a log line containing `needle`.
async fn logged(server: &Server, needle: &str) -> bool {
    eventually(Duration::from_secs(5), || {
        let logs = server.logs();
        async move { logs.contains(needle) }
    })
    .await
}

#[tokio::test]
async fn rsa_keys_over_4096_bits_are_refused_wherever_keys_are_read() {
    let k = key();
    let (dir, server, ks, id, _) = setup(&k).await;
    const TOO_BIG: &str = "RSA keys must have at most 4096 bits (this one has 8192)";
    let before = client_count(&dir).await;
    // Dynamic registration: a precise invalid_client_metadata, nothing stored.
    let r = server
        .register(
            &json!({"grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks": {"keys": [rsa_jwk(8192, "big")]}}),
            None,
        )
        .await;
    r.assert_error(400, "invalid_client_metadata");
    assert_eq!(r.json["error_description"], format!("jwks: {TOO_BIG}"));
    // 4096 bits is still fine.
    let r = server
        .register(
            &json!({"grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks": {"keys": [rsa_jwk(4096, "ok")]}}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // The CLI: refused with the same reason, nothing stored.
    let file = dir.path().join("big.json");
    std::fs::write(&file, json!({"keys": [rsa_jwk(8192, "big")]}).to_string()).expect("write");
    let cfg = config(&dir, true);
    let (ok, _, err) = cli(
        &dir,
        &create_args(&cfg, &["--jwks", file.to_str().expect("path")]),
    );
    assert!(!ok && err.contains(TOO_BIG), "{err}");
    assert_eq!(client_count(&dir).await, before + 1);
    // A jwks_uri document with such a key is refused as a whole: the
    // client's good key does not work either until the document is fixed.
    ks.serve(json!({"keys": [k.jwk, rsa_jwk(8192, "big")]}));
    assert_refused(
        &token(&server, &id, &k, &k.kid).await,
        "8192-bit key served",
    );
    assert!(logged(&server, TOO_BIG).await, "{}", server.logs());
    assert_eq!(jti_count(&dir).await, 0);
    ks.serve(json!({"keys": [k.jwk]}));
    tokio::time::sleep(REFETCH_WAIT).await;
    let r = token(&server, &id, &k, &k.kid).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ks.hits("/jwks"), 2);
    assert_eq!(jti_count(&dir).await, 1);
}

#[tokio::test]
async fn several_keys_of_one_alg_need_a_kid_and_only_the_named_key_is_tried() {
    let (k1, k2) = (key(), key());
    let (dir, server, _, _, _) = setup(&k1).await;
    let before = client_count(&dir).await;
    // Two ES256 keys, one without a kid: it could never be named.
    let mut unnamed = k2.jwk.clone();
    unnamed.as_object_mut().expect("jwk").remove("kid");
    let r = server
        .register(
            &json!({"grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks": {"keys": [k1.jwk, unnamed]}}),
            None,
        )
        .await;
    r.assert_error(400, "invalid_client_metadata");
    assert!(
        r.json["error_description"].as_str().is_some_and(
            |d| d.contains("several keys can verify ES256: give each of them a \"kid\"")
        ),
        "{}",
        r.text
    );
    assert_eq!(client_count(&dir).await, before);
    let r = server
        .register(
            &json!({"grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks": {"keys": [k1.jwk, k2.jwk]}}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["client_id"].as_str().expect("id").to_string();
    // Without a kid: refused before any signature check, nothing recorded.
    let kidless = assertion(&server, &id, &k2, None);
    assert_refused(&token_with(&server, &kidless).await, "no kid");
    assert!(
        logged(
            &server,
            "no kid, and the client has several keys for this alg"
        )
        .await,
        "{}",
        server.logs()
    );
    // Naming the other key: that key only is tried.
    assert_refused(
        &token_with(&server, &assertion(&server, &id, &k2, Some(&k1.kid))).await,
        "kid of the other key",
    );
    assert!(logged(&server, "signature does not verify with the client's key").await);
    assert_eq!(jti_count(&dir).await, 0);
    // Named rightly, the same key works.
    let r = token_with(&server, &assertion(&server, &id, &k2, Some(&k2.kid))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(jti_count(&dir).await, 1);
}

#[tokio::test]
async fn replaced_keys_take_effect_although_parsed_keys_are_cached() {
    let (k1, k2) = (key(), key());
    let (dir, server, _, _, _) = setup(&k1).await;
    let body = |k: &Key| {
        json!({"grant_types": ["client_credentials"],
               "token_endpoint_auth_method": "private_key_jwt",
               "jwks": {"keys": [k.jwk]}})
    };
    let r = server.register(&body(&k1), None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["client_id"].as_str().expect("id").to_string();
    let uri = r.json["registration_client_uri"]
        .as_str()
        .expect("uri")
        .to_string();
    let rat = r.json["registration_access_token"]
        .as_str()
        .expect("rat")
        .to_string();
    // Twice with k1: the second assertion is checked with the parsed keys.
    for _ in 0..2 {
        let r = token(&server, &id, &k1, &k1.kid).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let mut update = body(&k2);
    update["client_id"] = json!(id);
    let put = server
        .http
        .put(&uri)
        .bearer_auth(&rat)
        .json(&update)
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 200);
    // The new key works (within a poll of the change log), the old one no
    // longer does: the cached parse of the old document is not used.
    let switched = eventually(Duration::from_secs(5), || async {
        token(&server, &id, &k2, &k2.kid).await.status == 200
    })
    .await;
    assert!(switched, "{}", server.logs());
    assert_refused(&token(&server, &id, &k1, &k1.kid).await, "replaced key");
    assert_eq!(token(&server, &id, &k2, &k2.kid).await.status, 200);
    let pool = db(&dir).await;
    let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM assertion_jtis WHERE client_id = ?")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    assert!(used >= 4, "two with k1, at least two with k2: {used}");
}
