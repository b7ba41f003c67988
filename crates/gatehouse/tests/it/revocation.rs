//! Token revocation (RFC 7009) at /oauth/revoke and introspection (RFC 7662)
//! at /oauth/introspect, over HTTP against the real server and its store.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_oauth::crypto::Kek;
use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::time::Duration;

const AUD2: &str = "https://mcp.example.com/tools";

/// POSTs a form to `path` with optional Basic credentials.
async fn post(
    server: &Server,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Response {
    let mut req = server.http.post(server.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    Response::from(req.send().await.expect("request")).await
}

async fn revoke(server: &Server, basic: (&str, &str), token: &str) -> Response {
    post(server, "/oauth/revoke", Some(basic), &[("token", token)]).await
}

async fn introspect(server: &Server, basic: (&str, &str), token: &str) -> Response {
    let r = post(
        server,
        "/oauth/introspect",
        Some(basic),
        &[("token", token)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r
}

fn assert_inactive(r: &Response) {
    assert_eq!(r.json, json!({"active": false}), "{}", r.text);
}

/// A client_credentials token for `aud`.
async fn token_for(server: &Server, id: &str, secret: &str, aud: &str) -> String {
    let r = server
        .token(
            Some((id, secret)),
            &[("grant_type", "client_credentials"), ("resource", aud)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

/// Every row of the revocations table: (jti, client_id, expires_at).
async fn revocations(dir: &DataDir) -> Vec<(String, String, i64)> {
    let pool = db(dir).await;
    let rows = sqlx::query_as("SELECT jti, client_id, expires_at FROM revocations ORDER BY jti")
        .fetch_all(&pool)
        .await
        .expect("read revocations");
    pool.close().await;
    rows
}

/// The server's current signing key, unsealed from the store with the KEK in
/// the data directory (to mint tokens the server would have signed itself,
/// such as an already expired one).
async fn server_key(dir: &DataDir) -> SigningKey {
    let kek_text = std::fs::read_to_string(dir.path().join("kek")).expect("kek");
    let kek = Kek::from_bytes(&STANDARD.decode(kek_text.trim()).expect("b64")).expect("kek");
    let pool = db(dir).await;
    let (id, alg, sealed): (String, String, Vec<u8>) = sqlx::query_as(
        "SELECT id, alg, sealed FROM keys WHERE kind = 'signing' ORDER BY activate_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("signing key row");
    pool.close().await;
    let pkcs8 = kek
        .open(&format!("gatehouse/v1|signing|{id}"), &sealed)
        .expect("unseal");
    SigningKey::from_pkcs8(alg.parse::<Alg>().expect("alg"), &pkcs8).expect("key")
}

fn now() -> i64 {
    gatehouse_oauth::clock::system_now()
}

fn claims(server: &Server, client: &str, iat: i64, exp: i64) -> Value {
    json!({"iss": server.base, "sub": client, "client_id": client, "aud": AUD,
           "scope": "tools.read", "iat": iat, "exp": exp,
           "jti": gatehouse_oauth::tokens::issue::new_jti()})
}

struct Setup {
    dir: DataDir,
    server: Server,
    /// The owner of the tokens under test, scoped `tools.read`.
    a: (String, String),
    /// Another ordinary client.
    b: (String, String),
    /// A resource server: a client registered for audience AUD.
    rs: (String, String),
}

fn setup() -> Setup {
    install_crypto();
    let dir = DataDir::new();
    let a = create_client(&dir, &["--scope", "tools.read"]);
    let b = create_client(&dir, &[]);
    let rs = create_client(&dir, &["--resource-server", AUD]);
    // Refusals are checked case by case here, many from one address: the
    // failure backoff (client_auth_failures.rs) is raised out of the way.
    let server = Server::start(
        &dir,
        &["--audience", AUD, "--audience", AUD2],
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
        a,
        b,
        rs,
    }
}

fn creds(c: &(String, String)) -> (&str, &str) {
    (c.0.as_str(), c.1.as_str())
}

#[tokio::test]
async fn revoking_its_own_token_makes_introspection_say_inactive_until_exp() {
    let s = setup();
    let token = token_for(&s.server, &s.a.0, &s.a.1, AUD).await;
    let c = claims_of(&token);

    // Active before, with exactly the RFC 7662 members and the token's values.
    let expected = json!({
        "active": true,
        "scope": "tools.read",
        "client_id": s.a.0,
        "sub": s.a.0,
        "aud": AUD,
        "iss": s.server.base,
        "exp": c["exp"],
        "iat": c["iat"],
        "jti": c["jti"],
        "token_type": "Bearer",
    });
    assert_eq!(
        introspect(&s.server, creds(&s.a), &token).await.json,
        expected
    );
    assert_eq!(
        introspect(&s.server, creds(&s.rs), &token).await.json,
        expected,
        "a resource server registered for the token's audience sees it"
    );

    let r = revoke(&s.server, creds(&s.a), &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.text, "", "RFC 7009 §2.2: an empty 200");
    assert_eq!(r.header("cache-control"), Some("no-store"));

    assert_inactive(&introspect(&s.server, creds(&s.a), &token).await);
    assert_inactive(&introspect(&s.server, creds(&s.rs), &token).await);
    let rows = revocations(&s.dir).await;
    assert_eq!(
        rows,
        [(
            c["jti"].as_str().unwrap().to_string(),
            s.a.0.clone(),
            c["exp"].as_i64().unwrap()
        )],
        "kept until the token's own exp"
    );

    // Again, and with client_secret_post: still 200, still one row.
    let r = post(
        &s.server,
        "/oauth/revoke",
        None,
        &[
            ("token", &token),
            ("token_type_hint", "access_token"),
            ("client_id", &s.a.0),
            ("client_secret", &s.a.1),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(revocations(&s.dir).await, rows);

    // Other tokens of the same client stay active.
    let other = token_for(&s.server, &s.a.0, &s.a.1, AUD).await;
    assert_eq!(
        introspect(&s.server, creds(&s.a), &other).await.json["active"],
        true
    );
}

#[tokio::test]
async fn revoking_another_clients_token_answers_200_and_changes_nothing() {
    let s = setup();
    let token = token_for(&s.server, &s.a.0, &s.a.1, AUD).await;
    for who in [&s.b, &s.rs] {
        let r = revoke(&s.server, creds(who), &token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.text, "");
    }
    assert!(revocations(&s.dir).await.is_empty());
    assert_eq!(
        introspect(&s.server, creds(&s.a), &token).await.json["active"],
        true
    );
}

#[tokio::test]
async fn unknown_malformed_expired_and_foreign_tokens_get_200_and_store_nothing() {
    let s = setup();
    let key = server_key(&s.dir).await;
    let expired = key
        .sign_jwt(
            "at+jwt",
            &claims(&s.server, &s.a.0, now() - 1000, now() - 100),
        )
        .unwrap();
    let (other_key, _) = SigningKey::generate(Alg::ES256).unwrap();
    let foreign = other_key
        .sign_jwt("at+jwt", &claims(&s.server, &s.a.0, now(), now() + 600))
        .unwrap();
    for token in ["garbage", "a.b.c", expired.as_str(), foreign.as_str()] {
        for hint in [None, Some("refresh_token"), Some("no_such_type")] {
            let mut form = vec![("token", token)];
            if let Some(h) = hint {
                form.push(("token_type_hint", h));
            }
            let r = post(&s.server, "/oauth/revoke", Some(creds(&s.a)), &form).await;
            assert_eq!(r.status, 200, "{token} {hint:?}: {}", r.text);
            assert_eq!(r.text, "");
        }
    }
    assert!(revocations(&s.dir).await.is_empty());
}

#[tokio::test]
async fn revoke_and_introspect_without_or_with_wrong_client_auth_are_401_invalid_client() {
    let s = setup();
    let token = token_for(&s.server, &s.a.0, &s.a.1, AUD).await;
    for path in ["/oauth/revoke", "/oauth/introspect"] {
        let attempts = [
            post(&s.server, path, None, &[("token", &token)]).await,
            post(
                &s.server,
                path,
                Some((&s.a.0, "wrong")),
                &[("token", &token)],
            )
            .await,
            post(
                &s.server,
                path,
                Some(("c_nobody", &s.a.1)),
                &[("token", &token)],
            )
            .await,
            post(
                &s.server,
                path,
                None,
                &[("token", &token), ("client_id", &s.a.0)],
            )
            .await,
            post(
                &s.server,
                path,
                None,
                &[
                    ("token", &token),
                    ("client_id", &s.a.0),
                    ("client_secret", "wrong"),
                ],
            )
            .await,
        ];
        for r in &attempts {
            r.assert_error(401, "invalid_client");
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|h| h.starts_with("Basic")),
                "{path}: {:?}",
                r.headers
            );
            assert!(
                r.json.get("active").is_none(),
                "nothing learned: {}",
                r.text
            );
        }
    }
    assert!(revocations(&s.dir).await.is_empty());
    assert_eq!(
        introspect(&s.server, creds(&s.a), &token).await.json["active"],
        true
    );
}

#[tokio::test]
async fn a_missing_or_repeated_token_is_invalid_request_and_stores_nothing() {
    let s = setup();
    let token = token_for(&s.server, &s.a.0, &s.a.1, AUD).await;
    for path in ["/oauth/revoke", "/oauth/introspect"] {
        post(&s.server, path, Some(creds(&s.a)), &[])
            .await
            .assert_error(400, "invalid_request");
        post(&s.server, path, Some(creds(&s.a)), &[("token", "")])
            .await
            .assert_error(400, "invalid_request");
        post(
            &s.server,
            path,
            Some(creds(&s.a)),
            &[("token_type_hint", "access_token")],
        )
        .await
        .assert_error(400, "invalid_request");
        // Repeated parameters are refused, as at the token endpoint.
        let r = post(
            &s.server,
            path,
            Some(creds(&s.a)),
            &[("token", &token), ("token", "other")],
        )
        .await;
        r.assert_error(400, "invalid_request");
        // Only a form body is accepted.
        let r = Response::from(
            s.server
                .http
                .post(s.server.url(path))
                .basic_auth(&s.a.0, Some(&s.a.1))
                .json(&json!({"token": token}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_error(400, "invalid_request");
    }
    assert!(revocations(&s.dir).await.is_empty());
    assert_eq!(
        introspect(&s.server, creds(&s.a), &token).await.json["active"],
        true
    );
}

#[tokio::test]
async fn introspection_is_exactly_inactive_for_tokens_that_are_expired_foreign_or_not_the_callers()
{
    let s = setup();
    let key = server_key(&s.dir).await;
    // Sanity: a token minted here with the server's key and live claims is
    // active, so the inactive answers below are about the one thing changed.
    let live = key
        .sign_jwt("at+jwt", &claims(&s.server, &s.a.0, now(), now() + 600))
        .unwrap();
    assert_eq!(
        introspect(&s.server, creds(&s.a), &live).await.json["active"],
        true
    );

    let expired = key
        .sign_jwt(
            "at+jwt",
            &claims(&s.server, &s.a.0, now() - 1000, now() - 1),
        )
        .unwrap();
    let (other_key, _) = SigningKey::generate(Alg::ES256).unwrap();
    let other_key_token = other_key
        .sign_jwt("at+jwt", &claims(&s.server, &s.a.0, now(), now() + 600))
        .unwrap();
    let mut c = claims(&s.server, &s.a.0, now(), now() + 600);
    c["iss"] = json!("https://other-issuer.example");
    let other_issuer = key.sign_jwt("at+jwt", &c).unwrap();
    for t in [&expired, &other_key_token, &other_issuer] {
        assert_inactive(&introspect(&s.server, creds(&s.a), t).await);
        assert_inactive(&introspect(&s.server, creds(&s.rs), t).await);
    }
    for junk in ["garbage", "a.b.c", &format!("{live}x")] {
        assert_inactive(&introspect(&s.server, creds(&s.a), junk).await);
    }

    // A token for an audience the resource server does not serve.
    let for_aud2 = token_for(&s.server, &s.a.0, &s.a.1, AUD2).await;
    assert_inactive(&introspect(&s.server, creds(&s.rs), &for_aud2).await);
    assert_eq!(
        introspect(&s.server, creds(&s.a), &for_aud2).await.json["active"],
        true,
        "its owner still sees it"
    );
    // Another client registered without audiences sees only its own tokens.
    let for_aud = token_for(&s.server, &s.a.0, &s.a.1, AUD).await;
    assert_inactive(&introspect(&s.server, creds(&s.b), &for_aud).await);
    assert!(revocations(&s.dir).await.is_empty());
}

#[tokio::test]
async fn a_revocation_survives_a_restart() {
    let s = setup();
    let token = token_for(&s.server, &s.a.0, &s.a.1, AUD).await;
    let r = revoke(&s.server, creds(&s.a), &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.server.stop();
    let server = Server::start(&s.dir, &["--audience", AUD, "--audience", AUD2], &[]);
    assert_inactive(&introspect(&server, creds(&s.a), &token).await);
    assert_inactive(&introspect(&server, creds(&s.rs), &token).await);
    assert_eq!(revocations(&s.dir).await.len(), 1);
}

#[tokio::test]
async fn metadata_lists_both_endpoints_and_their_auth_methods() {
    let s = setup();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m = s.server.get_json(path).await.json;
        assert_eq!(m["revocation_endpoint"], s.server.url("/oauth/revoke"));
        assert_eq!(
            m["introspection_endpoint"],
            s.server.url("/oauth/introspect")
        );
        assert_eq!(
            m["revocation_endpoint_auth_methods_supported"],
            m["token_endpoint_auth_methods_supported"],
            "revocation takes the token endpoint's authenticators, public clients' too"
        );
        let mut confidential = m["token_endpoint_auth_methods_supported"].clone();
        confidential.as_array_mut().unwrap().retain(|v| v != "none");
        assert_eq!(
            m["introspection_endpoint_auth_methods_supported"], confidential,
            "introspection takes the authenticators that carry a credential"
        );
    }
}

#[tokio::test]
async fn both_endpoints_allow_any_origin_without_credentials() {
    let s = setup();
    let token = token_for(&s.server, &s.a.0, &s.a.1, AUD).await;
    for path in ["/oauth/revoke", "/oauth/introspect"] {
        let r = s
            .server
            .http
            .post(s.server.url(path))
            .header("Origin", "https://app.example")
            .basic_auth(&s.a.0, Some(&s.a.1))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert!(h.get("access-control-allow-credentials").is_none());
    }
}

#[tokio::test]
async fn a_deleted_clients_tokens_are_inactive() {
    let s = setup();
    let token = token_for(&s.server, &s.a.0, &s.a.1, AUD).await;
    let r = introspect(&s.server, creds(&s.rs), &token).await;
    assert_eq!(r.json["active"], true, "{}", r.text);
    let (ok, _, err) = cli(&s.dir, &["client", "delete", &s.a.0]);
    assert!(ok, "{err}");
    // The running server's client cache follows the Store's change log.
    let rs = creds(&s.rs);
    let gone = eventually(Duration::from_secs(10), || async {
        introspect(&s.server, rs, &token).await.json["active"] == false
    })
    .await;
    assert!(gone, "the deleted client's token stayed active");
    assert_inactive(&introspect(&s.server, rs, &token).await);
}
