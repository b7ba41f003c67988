//! private_key_jwt client authentication (RFC 7523 §2.2) over HTTP against
//! the real server: assertions made by an independent JWT library
//! (jsonwebtoken) with keys generated here, checked for success and for each
//! refusal — with the stored state (tokens, used `jti`s) unchanged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_testkit::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client key: the private half for jsonwebtoken, the public JWK to register.
struct Key {
    alg: Algorithm,
    enc: EncodingKey,
    jwk: Value,
    kid: String,
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo (RFC 5208 §5),
/// which is what jsonwebtoken's aws-lc backend parses for RSA.
fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
    // DER: tag, length (short or long form), content.
    fn tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
        let (len, skip) = if b[1] < 0x80 {
            (b[1] as usize, 2)
        } else {
            let n = (b[1] & 0x7f) as usize;
            let len = b[2..2 + n]
                .iter()
                .fold(0usize, |a, x| (a << 8) | *x as usize);
            (len, 2 + n)
        };
        (b[0], &b[skip..skip + len], &b[skip + len..])
    }
    let (_, info, _) = tlv(pkcs8);
    let (_, _, rest) = tlv(info); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04, "privateKey is an OCTET STRING");
    key.to_vec()
}

fn key(alg: Alg) -> Key {
    let (signing, pkcs8) = SigningKey::generate(alg).expect("generate");
    let (jalg, enc) = match alg {
        Alg::ES256 => (Algorithm::ES256, EncodingKey::from_ec_der(&pkcs8)),
        Alg::RS256 => (
            Algorithm::RS256,
            EncodingKey::from_rsa_der(&pkcs1_of(&pkcs8)),
        ),
        Alg::EdDSA => (Algorithm::EdDSA, EncodingKey::from_ed_der(&pkcs8)),
    };
    let mut jwk = signing.public_jwk();
    jwk.as_object_mut().expect("jwk").remove("alg");
    Key {
        alg: jalg,
        enc,
        kid: signing.kid.clone(),
        jwk,
    }
}

fn now() -> i64 {
    gatehouse_oauth::clock::system_now()
}

/// Claims a well-behaved client sends: one-minute lifetime, fresh `jti`.
fn claims(client: &str, aud: &str) -> Value {
    json!({"iss": client, "sub": client, "aud": aud, "iat": now(), "exp": now() + 60,
           "jti": gatehouse_oauth::tokens::issue::new_jti()})
}

fn sign(key: &Key, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key.enc).expect("sign")
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

struct Setup {
    dir: DataDir,
    server: Server,
    /// A private_key_jwt client registered with `key`.
    id: String,
    key: Key,
}

/// Writes `jwks` to a file and registers a private_key_jwt client with it.
fn create_pkjwt_client(dir: &DataDir, jwks: &Value) -> Result<String, String> {
    let file = dir.path().join(format!("jwks-{}.json", now_nanos()));
    std::fs::write(&file, jwks.to_string()).expect("write jwks");
    let file = file.display().to_string();
    let (ok, out, err) = cli(
        dir,
        &[
            "client",
            "create",
            "--name",
            "pk",
            "--grant",
            "client_credentials",
            "--auth-method",
            "private_key_jwt",
            "--jwks",
            &file,
        ],
    );
    if !ok {
        return Err(err);
    }
    assert!(out["client_secret"].is_null(), "no secret for a key client");
    Ok(out["client_id"].as_str().expect("client_id").to_string())
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn setup(alg: Alg) -> Setup {
    install_crypto();
    let dir = DataDir::new();
    let key = key(alg);
    let id = create_pkjwt_client(&dir, &json!({ "keys": [key.jwk] })).expect("client create");
    // Each refusal case here is checked on its own, many from one address:
    // the failure backoff (client_auth_failures.rs) is raised out of the way.
    let server = Server::start(
        &dir,
        &["--audience", AUD],
        &[
            ("GATEHOUSE_CLIENT_AUTH__FREE_FAILURES_PER_ADDRESS", "1000"),
            (
                "GATEHOUSE_CLIENT_AUTH__FREE_FAILURES_PER_ADDRESS_CLIENT",
                "1000",
            ),
        ],
    );
    Setup {
        dir,
        server,
        id,
        key,
    }
}

async fn with_assertion(server: &Server, assertion: &str) -> Response {
    server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion),
            ],
        )
        .await
}

/// Every used assertion `jti`: (client_id, jti).
async fn jtis(dir: &DataDir) -> Vec<(String, String)> {
    let pool = db(dir).await;
    let rows = sqlx::query_as("SELECT client_id, jti FROM assertion_jtis ORDER BY jti")
        .fetch_all(&pool)
        .await
        .expect("read assertion_jtis");
    pool.close().await;
    rows
}

/// A 401 `invalid_client` with the Basic challenge, and no token.
fn assert_refused(r: &Response, case: &str) {
    assert_eq!(r.status, 401, "{case}: {}", r.text);
    assert_eq!(r.json["error"], "invalid_client", "{case}: {}", r.text);
    assert_eq!(
        r.json["error_description"], "client authentication failed",
        "{case}: the answer never says which check failed"
    );
    assert!(r.json.get("access_token").is_none(), "{case}");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic")),
        "{case}: {:?}",
        r.header("www-authenticate")
    );
}

async fn assert_success(s: &Setup, aud: &str) {
    let r = with_assertion(
        &s.server,
        &sign(&s.key, Some(&s.key.kid), &claims(&s.id, aud)),
    )
    .await;
    assert_eq!(r.status, 200, "aud {aud}: {}", r.text);
    let token = r.json["access_token"].as_str().expect("access_token");
    let (_, c) = verify_token(&s.server, token, AUD).await;
    assert_eq!(c["client_id"], s.id.as_str());
    assert_eq!(c["sub"], s.id.as_str());
}

#[tokio::test]
async fn es256_assertions_work_with_the_issuer_or_the_token_endpoint_as_aud() {
    let s = setup(Alg::ES256);
    assert_success(&s, &s.server.base).await;
    assert_success(&s, &s.server.url("/oauth/token")).await;
    // A one-element array is the same audience (docs/decisions.md
    // "Client authentication with JWTs").
    let mut c = claims(&s.id, &s.server.base);
    c["aud"] = json!([s.server.base]);
    let r = with_assertion(&s.server, &sign(&s.key, Some(&s.key.kid), &c)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // No `kid`: the key that fits the algorithm is tried.
    let r = with_assertion(
        &s.server,
        &sign(&s.key, None, &claims(&s.id, &s.server.base)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(jtis(&s.dir).await.len(), 4, "each accepted jti is recorded");
}

#[tokio::test]
async fn rs256_assertions_work_with_the_issuer_or_the_token_endpoint_as_aud() {
    let s = setup(Alg::RS256);
    assert_success(&s, &s.server.base).await;
    assert_success(&s, &s.server.url("/oauth/token")).await;
    // A body client_id naming the same client is fine (RFC 7521 §4.2).
    let assertion = sign(&s.key, Some(&s.key.kid), &claims(&s.id, &s.server.base));
    let r = s
        .server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &s.id),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_replayed_jti_is_refused_and_recorded_once() {
    let s = setup(Alg::ES256);
    let assertion = sign(&s.key, Some(&s.key.kid), &claims(&s.id, &s.server.base));
    let r = with_assertion(&s.server, &assertion).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = jtis(&s.dir).await;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].0, s.id);
    let r = with_assertion(&s.server, &assertion).await;
    assert_refused(&r, "replay");
    // Also a new assertion reusing the jti.
    let mut c = claims(&s.id, &s.server.base);
    c["jti"] = json!(before[0].1);
    let r = with_assertion(&s.server, &sign(&s.key, Some(&s.key.kid), &c)).await;
    assert_refused(&r, "reused jti");
    assert_eq!(jtis(&s.dir).await, before);
    let logs = s.server.logs();
    assert!(logs.contains("jti already used"), "reason logged:\n{logs}");
    assert!(
        !logs.contains(&assertion),
        "the assertion never reaches the logs"
    );
}

/// The reason the server logs for each refused case in the test below.
fn reason(case: &str) -> &'static str {
    match case {
        "expired" => "expired",
        c if c.starts_with("lifetime") => "lifetime longer",
        "no exp" => "unreadable or incomplete claims",
        "iat in the future" => "issued in the future",
        "nbf in the future" => "not yet valid",
        c if c.contains("aud") => "aud is not this server",
        "iss is not sub" => "iss or sub is not the client id",
        "iss = sub but not this client" | "not a JWT" => "unknown or unreadable client",
        "unknown kid" => "no key of the client has this kid and alg",
        c if c.contains("another key") => "signature does not verify",
        "alg none" | "HS256 keyed with the public key" => "algorithm not accepted",
        "missing jti" => "no jti",
        other => panic!("no reason for {other}"),
    }
}

/// The `n`-th (from 0) "client assertion refused" log line, once written.
async fn nth_refusal(server: &Server, n: usize) -> String {
    let found = eventually(std::time::Duration::from_secs(5), || async {
        server.logs().matches("client assertion refused").count() > n
    })
    .await;
    assert!(found, "no refusal logged:\n{}", server.logs());
    server
        .logs()
        .lines()
        .filter(|l| l.contains("client assertion refused"))
        .nth(n)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn each_failed_check_is_the_same_401_and_stores_no_jti() {
    let s = setup(Alg::ES256);
    let id = s.id.as_str();
    let iss = s.server.base.as_str();
    let kid = Some(s.key.kid.as_str());
    let other = key(Alg::ES256);
    let t = now();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(id, iss);
        f(&mut c);
        c
    };
    let hs256_with_public_key = {
        let public = s.key.jwk.to_string();
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(s.key.kid.clone());
        jsonwebtoken::encode(
            &h,
            &claims(id, iss),
            &EncodingKey::from_secret(public.as_bytes()),
        )
        .expect("hs256")
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": s.key.kid})),
        b64(&claims(id, iss))
    );
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            sign(
                &s.key,
                kid,
                &with(&|c| {
                    c["iat"] = json!(t - 600);
                    c["exp"] = json!(t - 120);
                }),
            ),
        ),
        (
            "lifetime over the 1h bound",
            sign(
                &s.key,
                kid,
                &with(&|c| {
                    c["exp"] = json!(t + 3600 + 120);
                }),
            ),
        ),
        (
            "lifetime over the bound without iat",
            sign(
                &s.key,
                kid,
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("iat");
                    c["exp"] = json!(t + 3600 + 120);
                }),
            ),
        ),
        (
            "no exp",
            sign(
                &s.key,
                kid,
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
        ),
        (
            "iat in the future",
            sign(
                &s.key,
                kid,
                &with(&|c| {
                    c["iat"] = json!(t + 600);
                    c["exp"] = json!(t + 900);
                }),
            ),
        ),
        (
            "nbf in the future",
            sign(&s.key, kid, &with(&|c| c["nbf"] = json!(t + 600))),
        ),
        (
            "wrong aud",
            sign(
                &s.key,
                kid,
                &with(&|c| c["aud"] = json!("https://elsewhere.example")),
            ),
        ),
        (
            "aud with two values",
            sign(
                &s.key,
                kid,
                &with(&|c| {
                    c["aud"] = json!([iss, format!("{iss}/oauth/token")]);
                }),
            ),
        ),
        (
            "aud is the resource",
            sign(&s.key, kid, &with(&|c| c["aud"] = json!(AUD))),
        ),
        (
            "iss is not sub",
            sign(&s.key, kid, &with(&|c| c["iss"] = json!("c_someoneelse"))),
        ),
        (
            "iss = sub but not this client",
            sign(
                &s.key,
                kid,
                &with(&|c| {
                    c["iss"] = json!("c_someoneelse");
                    c["sub"] = json!("c_someoneelse");
                }),
            ),
        ),
        (
            "unknown kid",
            sign(&s.key, Some("no-such-kid"), &claims(id, iss)),
        ),
        ("signed by another key", sign(&other, kid, &claims(id, iss))),
        (
            "signed by another key, no kid",
            sign(&other, None, &claims(id, iss)),
        ),
        ("alg none", alg_none),
        ("HS256 keyed with the public key", hs256_with_public_key),
        (
            "missing jti",
            sign(
                &s.key,
                kid,
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            ),
        ),
        ("not a JWT", "not.a.jwt".to_string()),
    ];
    for (n, (case, assertion)) in cases.iter().enumerate() {
        let r = with_assertion(&s.server, assertion).await;
        assert_refused(&r, case);
        // Refused for the intended reason, which only the log tells.
        let line = nth_refusal(&s.server, n).await;
        assert!(line.contains(reason(case)), "{case}: {line}");
    }
    // A valid assertion with the wrong or no assertion type.
    let good = sign(&s.key, kid, &claims(id, iss));
    let r = s
        .server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                ),
                ("client_assertion", &good),
            ],
        )
        .await;
    assert_refused(&r, "wrong assertion type");
    assert!(
        jtis(&s.dir).await.is_empty(),
        "no refused assertion records a jti"
    );
    for (case, assertion) in &cases {
        assert!(
            !s.server.logs().contains(assertion.as_str()),
            "{case}: logged"
        );
    }
    // And the very same good assertion still works afterwards.
    let r = with_assertion(&s.server, &good).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn the_credential_kind_is_pinned_and_two_credentials_are_invalid_request() {
    let s = setup(Alg::ES256);
    let (secret_id, secret) = create_client(&s.dir, &[]);
    // A secret client sending an assertion (signed with our key, naming it).
    let r = with_assertion(
        &s.server,
        &sign(
            &s.key,
            Some(&s.key.kid),
            &claims(&secret_id, &s.server.base),
        ),
    )
    .await;
    assert_refused(&r, "secret client with an assertion");
    // A private_key_jwt client sending Basic.
    let r = s
        .server
        .token(
            Some((&s.id, "anything")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_refused(&r, "key client with Basic");
    // Basic and an assertion together.
    let assertion = sign(&s.key, Some(&s.key.kid), &claims(&s.id, &s.server.base));
    let r = s
        .server
        .token(
            Some((&secret_id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert!(r.json.get("access_token").is_none());
    assert!(jtis(&s.dir).await.is_empty());
    // The secret client still works with its secret.
    let r = s
        .server
        .token(
            Some((&secret_id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn revoke_and_introspect_accept_an_assertion() {
    let s = setup(Alg::EdDSA);
    let get = |aud: String| sign(&s.key, Some(&s.key.kid), &claims(&s.id, &aud));
    let r = with_assertion(&s.server, &get(s.server.base.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json["access_token"].as_str().expect("token").to_string();
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let assertion = get(s.server.base.clone());
        let r = Response::from(
            s.server
                .http
                .post(s.server.url(path))
                .form(&[
                    ("token", token.as_str()),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", &assertion),
                ])
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    // An assertion addressed to the endpoint it is sent to (as authlib does)
    // is accepted there, and only there.
    let introspect_url = s.server.url("/oauth/introspect");
    let post = |path: &'static str, assertion: String| {
        let url = s.server.url(path);
        let token = token.clone();
        let http = s.server.http.clone();
        async move {
            Response::from(
                http.post(url)
                    .form(&[
                        ("token", token.as_str()),
                        ("client_assertion_type", ASSERTION_TYPE),
                        ("client_assertion", &assertion),
                    ])
                    .send()
                    .await
                    .expect("request"),
            )
            .await
        }
    };
    let r = post("/oauth/introspect", get(introspect_url.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = with_assertion(&s.server, &get(introspect_url)).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.json["error"], "invalid_client");
}

#[tokio::test]
async fn metadata_lists_private_key_jwt_and_the_signing_algorithms() {
    let s = setup(Alg::ES256);
    let m = s
        .server
        .get_json("/.well-known/oauth-authorization-server")
        .await
        .json;
    let methods = m["token_endpoint_auth_methods_supported"]
        .as_array()
        .expect("methods");
    assert!(methods.contains(&json!("private_key_jwt")), "{m}");
    assert!(!methods.contains(&json!("client_secret_jwt")), "{m}");
    let algs = json!(["ES256", "ES384", "RS256", "PS256", "EdDSA"]);
    // RFC 8414 §2: each endpoint listing private_key_jwt lists the algorithms.
    for endpoint in ["token", "revocation", "introspection"] {
        let methods = &m[format!("{endpoint}_endpoint_auth_methods_supported")];
        assert!(
            methods
                .as_array()
                .expect("methods")
                .contains(&json!("private_key_jwt")),
            "{m}"
        );
        assert_eq!(
            m[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
            algs,
            "{m}"
        );
    }
}

#[tokio::test]
async fn the_cli_refuses_private_oct_and_missing_jwks_and_stores_nothing() {
    install_crypto();
    let dir = DataDir::new();
    let k = key(Alg::ES256);
    let mut private = k.jwk.clone();
    private["d"] = json!("AAAA");
    for bad in [
        json!({"keys": [private]}),
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
        json!({"keys": []}),
        json!({"keys": vec![k.jwk.clone(); 9]}),
    ] {
        let err = create_pkjwt_client(&dir, &bad).expect_err("refused");
        assert!(err.contains("--jwks"), "{err}");
    }
    let (ok, _, err) = cli(
        &dir,
        &[
            "client",
            "create",
            "--name",
            "x",
            "--grant",
            "client_credentials",
            "--auth-method",
            "private_key_jwt",
        ],
    );
    assert!(!ok && err.contains("--jwks"), "{err}");
    // The stored JWKS keeps public members only.
    let mut extra = k.jwk.clone();
    extra["x5c"] = json!(["junk"]);
    let id = create_pkjwt_client(&dir, &json!({"keys": [extra]})).expect("created");
    let (ok, out, _) = cli(&dir, &["client", "show", &id]);
    assert!(ok);
    assert!(out["jwks"]["keys"][0].get("x5c").is_none(), "{out}");
    assert_eq!(out["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(
        client_count(&dir).await,
        1,
        "only the valid client was stored"
    );
}

#[tokio::test]
async fn a_jti_used_on_one_replica_is_refused_on_another() {
    install_crypto();
    let dir = DataDir::new();
    let k = key(Alg::ES256);
    let id = create_pkjwt_client(&dir, &json!({ "keys": [k.jwk] })).expect("client create");
    // Two replicas sharing one store and one issuer identifier.
    let issuer = "http://127.0.0.1:1";
    let args = ["--audience", AUD, "--issuer", issuer];
    let a = Server::start(&dir, &args, &[]);
    let b = Server::start(&dir, &args, &[]);
    let assertion = sign(&k, Some(&k.kid), &claims(&id, issuer));
    let r = with_assertion(&a, &assertion).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = with_assertion(&b, &assertion).await;
    assert_refused(&r, "replay on the other replica");
    assert!(nth_refusal(&b, 0).await.contains("jti already used"));
    assert_eq!(jtis(&dir).await.len(), 1);
}

#[tokio::test]
async fn client_auth_config_sets_the_lifetime_bound_and_the_token_endpoint_aud() {
    install_crypto();
    let dir = DataDir::new();
    let k = key(Alg::ES256);
    let id = create_pkjwt_client(&dir, &json!({ "keys": [k.jwk] })).expect("client create");
    let cfg = dir.path().join("gatehouse.toml");
    std::fs::write(
        &cfg,
        format!(
            "allowed_audiences = [\"{AUD}\"]\n\
             [client_auth]\n\
             max_assertion_lifetime = \"5m\"\n\
             accept_token_endpoint_aud = false\n"
        ),
    )
    .expect("write config");
    let server = Server::start(&dir, &["--config", cfg.to_str().expect("path")], &[]);
    let at = |lifetime: i64, aud: &str| {
        let mut c = claims(&id, aud);
        c["exp"] = json!(now() + lifetime);
        sign(&k, Some(&k.kid), &c)
    };
    let r = with_assertion(&server, &at(300, &server.base)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_refused(
        &with_assertion(&server, &at(420, &server.base)).await,
        "over 5m",
    );
    assert_refused(
        &with_assertion(&server, &at(60, &server.url("/oauth/token"))).await,
        "token endpoint aud switched off",
    );
    assert_eq!(jtis(&dir).await.len(), 1);
}

#[tokio::test]
async fn dynamic_registration_refuses_private_key_jwt_and_stores_nothing() {
    let dir = DataDir::new();
    let cfg = dir.path().join("gatehouse.toml");
    std::fs::write(
        &cfg,
        format!("allowed_audiences = [\"{AUD}\"]\n[registration]\nconfidential = \"open\"\n"),
    )
    .expect("write config");
    let server = Server::start(&dir, &["--config", cfg.to_str().expect("path")], &[]);
    let r = server
        .register(
            &json!({"client_name": "x", "grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "private_key_jwt"}),
            None,
        )
        .await;
    r.assert_error(400, "invalid_client_metadata");
    assert_eq!(client_count(&dir).await, 0);
}
