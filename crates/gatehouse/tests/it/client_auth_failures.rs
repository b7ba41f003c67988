//! Backoff after failed client authentication at the token, revocation and
//! introspection endpoints, against the real binary: failures count per
//! client address and per (address, client id) — never per client id alone
//! — successes never count, and a held-back request is refused before its
//! credential is checked. Clients play different addresses by binding their
//! connections to 127.0.0.2, 127.0.0.3, … (all of 127/8 is loopback).

use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_testkit::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn from(addr: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(addr.parse::<std::net::IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

async fn post(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Response {
    let mut req = http.post(server.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    Response::from(req.send().await.expect("request")).await
}

const GRANT: &[(&str, &str)] = &[("grant_type", "client_credentials"), ("resource", AUD)];

async fn token(http: &reqwest::Client, server: &Server, id: &str, secret: &str) -> Response {
    post(http, server, "/oauth/token", Some((id, secret)), GRANT).await
}

/// 429 `slow_down` with a `Retry-After` of at least a second, and no token.
fn assert_held_back(r: &Response, case: &str) {
    r.assert_error(429, "slow_down");
    assert!(
        r.json["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("too many failed client authentications")),
        "{case}: {}",
        r.text
    );
    let retry = r.header("retry-after").and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry.is_some_and(|s| (1..=900).contains(&s)),
        "{case}: {retry:?}"
    );
    assert!(r.json.get("access_token").is_none(), "{case}");
}

/// What the store holds about clients and tokens: every client row, every
/// revocation, every used assertion `jti`.
async fn stored(dir: &DataDir) -> Vec<String> {
    let pool = db(dir).await;
    let mut rows: Vec<String> = sqlx::query_scalar(
        "SELECT id || '|' || secrets || '|' || revision || '|' || COALESCE(last_used_at, '') FROM clients ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("clients");
    let revoked: Vec<String> = sqlx::query_scalar("SELECT 'revoked ' || jti FROM revocations")
        .fetch_all(&pool)
        .await
        .expect("revocations");
    let jtis: Vec<String> = sqlx::query_scalar("SELECT 'jti ' || jti FROM assertion_jtis")
        .fetch_all(&pool)
        .await
        .expect("jtis");
    pool.close().await;
    rows.extend(revoked);
    rows.extend(jtis);
    rows
}

fn start(dir: &DataDir, env: &[(&str, &str)]) -> Server {
    Server::start(dir, &["--audience", AUD], env)
}

#[tokio::test]
async fn an_attacker_hammering_a_client_id_is_held_back_and_the_client_still_gets_tokens_from_its_own_address()
 {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = start(&dir, &[]);
    let attacker = from("127.0.0.2");
    let victim = from("127.0.0.3");
    let before = stored(&dir).await;
    for i in 0..5 {
        token(&attacker, &server, &id, &format!("guess-{i}"))
            .await
            .assert_error(401, "invalid_client");
    }
    assert_held_back(
        &token(&attacker, &server, &id, "guess-5").await,
        "sixth wrong secret",
    );
    // Held back before the secret is looked at: even the right one waits.
    assert_held_back(
        &token(&attacker, &server, &id, &secret).await,
        "right secret, attacker's address",
    );
    assert_eq!(stored(&dir).await, before, "refusals change nothing");
    // The client itself, from its own address, is not affected.
    let r = token(&victim, &server, &id, &secret).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["access_token"].is_string());
    // Nor is another client id from the attacker's address (5 of its 10
    // free failures are spent).
    let (other, other_secret) = create_client(&dir, &[]);
    let r = token(&attacker, &server, &other, &other_secret).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let logs = server.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("further attempts from this address wait")
                && l.contains("client_addr=127.0.0.2")),
        "{logs}"
    );
}

#[tokio::test]
async fn successful_requests_never_count() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = start(&dir, &[]);
    let http = from("127.0.0.2");
    for _ in 0..30 {
        let r = token(&http, &server, &id, &secret).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // Thirty successes, then failures: the first five are free, as if
    // nothing had come before.
    for _ in 0..5 {
        token(&http, &server, &id, "wrong")
            .await
            .assert_error(401, "invalid_client");
    }
    assert_held_back(&token(&http, &server, &id, "wrong").await, "sixth failure");
}

#[tokio::test]
async fn failed_revocations_and_introspections_count_like_failed_token_requests() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = start(&dir, &[]);
    let good = from("127.0.0.3");
    let r = token(&good, &server, &id, &secret).await;
    let access = r.json["access_token"].as_str().expect("token").to_string();
    let before = stored(&dir).await;

    let attacker = from("127.0.0.4");
    let revoke = [("token", access.as_str())];
    for _ in 0..3 {
        post(
            &attacker,
            &server,
            "/oauth/revoke",
            Some((&id, "wrong")),
            &revoke,
        )
        .await
        .assert_error(401, "invalid_client");
    }
    for _ in 0..2 {
        post(
            &attacker,
            &server,
            "/oauth/introspect",
            Some((&id, "wrong")),
            &revoke,
        )
        .await
        .assert_error(401, "invalid_client");
    }
    // Five failures over both endpoints: held back everywhere, the right
    // secret included, and nothing is revoked.
    assert_held_back(
        &post(
            &attacker,
            &server,
            "/oauth/revoke",
            Some((&id, &secret)),
            &revoke,
        )
        .await,
        "revoke",
    );
    assert_held_back(
        &post(
            &attacker,
            &server,
            "/oauth/introspect",
            Some((&id, &secret)),
            &revoke,
        )
        .await,
        "introspect",
    );
    assert_held_back(&token(&attacker, &server, &id, &secret).await, "token");
    assert_eq!(stored(&dir).await, before, "nothing revoked");
    let seen = post(
        &good,
        &server,
        "/oauth/introspect",
        Some((&id, &secret)),
        &revoke,
    )
    .await;
    assert_eq!(seen.json["active"], true, "{}", seen.text);
}

#[tokio::test]
async fn an_address_failing_as_many_client_ids_is_held_back_for_all_of_them() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    // Configurable: three free failures per address.
    let server = start(
        &dir,
        &[("GATEHOUSE_CLIENT_AUTH__FREE_FAILURES_PER_ADDRESS", "3")],
    );
    let http = from("127.0.0.5");
    for i in 0..3 {
        token(&http, &server, &format!("c_made_up_{i}"), "x")
            .await
            .assert_error(401, "invalid_client");
    }
    assert_held_back(&token(&http, &server, &id, &secret).await, "a real client");
    // A malformed Basic header counts too, and is held back the same way.
    let r = Response::from(
        http.post(server.url("/oauth/token"))
            .header("authorization", "Basic !!!")
            .form(GRANT)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_held_back(&r, "malformed Basic");
    let r = token(&from("127.0.0.6"), &server, &id, &secret).await;
    assert_eq!(r.status, 200, "another address: {}", r.text);
}

/// An ES256 client key: the private half for jsonwebtoken, the public JWK.
fn es256_key() -> (EncodingKey, Value, String) {
    let (signing, pkcs8) = SigningKey::generate(Alg::ES256).expect("generate");
    let mut jwk = signing.public_jwk();
    jwk.as_object_mut().expect("jwk").remove("alg");
    (EncodingKey::from_ec_der(&pkcs8), jwk, signing.kid.clone())
}

fn assertion(key: &EncodingKey, kid: &str, client: &str, aud: &str) -> String {
    let now = gatehouse_oauth::clock::system_now();
    let claims = json!({"iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + 60,
                        "jti": gatehouse_oauth::tokens::issue::new_jti()});
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

async fn with_assertion(http: &reqwest::Client, server: &Server, a: &str) -> Response {
    post(
        http,
        server,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("resource", AUD),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", a),
        ],
    )
    .await
}

#[tokio::test]
async fn a_held_back_assertion_is_refused_before_it_is_verified_or_its_jti_recorded() {
    install_crypto();
    let dir = DataDir::new();
    let (key, jwk, kid) = es256_key();
    let file = dir.path().join("client.jwks");
    std::fs::write(&file, json!({"keys": [jwk]}).to_string()).unwrap();
    let (ok, out, err) = cli(
        &dir,
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
            &file.display().to_string(),
        ],
    );
    assert!(ok, "{err}");
    let id = out["client_id"].as_str().unwrap().to_string();
    let server = start(&dir, &[]);
    let attacker = from("127.0.0.2");
    for _ in 0..5 {
        let wrong_aud = assertion(&key, &kid, &id, "https://elsewhere.example");
        with_assertion(&attacker, &server, &wrong_aud)
            .await
            .assert_error(401, "invalid_client");
    }
    let before = stored(&dir).await;
    let good = assertion(&key, &kid, &id, &server.base);
    assert_held_back(
        &with_assertion(&attacker, &server, &good).await,
        "valid assertion, attacker's address",
    );
    assert_eq!(stored(&dir).await, before, "its jti was not recorded");
    // Not spent: the same assertion works from the client's own address.
    let r = with_assertion(&from("127.0.0.3"), &server, &good).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
