//! The client_credentials grant at /oauth/token (RFC 6749 §4.4), over HTTP
//! against the real server.

use gatehouse_testkit::*;
use serde_json::Value;
use std::time::Duration;

const AUD2: &str = "https://mcp.example.com/tools";

#[tokio::test]
async fn basic_and_post_both_yield_a_token_that_verifies_against_the_jwks() {
    install_crypto();
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);

    let basic = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(basic.status, 200, "{}", basic.text);
    let post = server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(post.status, 200, "{}", post.text);

    for resp in [&basic, &post] {
        assert_eq!(resp.json["token_type"], "Bearer");
        assert_eq!(resp.json["expires_in"], 900);
        assert_eq!(resp.header("cache-control"), Some("no-store"));
        assert_eq!(resp.header("pragma"), Some("no-cache"));
        let token = resp.json["access_token"].as_str().unwrap();
        let (header, claims) = verify_token(&server, token, AUD).await;
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        assert_eq!(claims["sub"], id.as_str());
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["aud"], AUD);
        assert_eq!(claims["iss"], server.base.as_str());
        let iat = claims["iat"].as_i64().unwrap();
        assert_eq!(claims["exp"].as_i64().unwrap() - iat, 900);
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    }
    let jti = |r: &Response| {
        let t = r.json["access_token"].as_str().unwrap();
        let payload = t.split('.').nth(1).unwrap();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()["jti"].clone()
    };
    assert_ne!(jti(&basic), jti(&post), "every token has a unique jti");
}

#[tokio::test]
async fn client_credentials_never_returns_a_refresh_token() {
    let dir = DataDir::new();
    // Registered for refresh tokens (through the code grant, which issues
    // them), so only the grant itself can keep one out of the answer.
    let (id, secret) = create_client(
        &dir,
        &[
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--redirect-uri",
            "https://app.example.com/cb",
        ],
    );
    let (_, client, _) = cli(&dir, &["client", "show", &id]);
    let grants = client["grant_types"].to_string();
    assert!(grants.contains("refresh_token"), "{client}");
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json.get("refresh_token").is_none(), "{}", r.text);
}

#[tokio::test]
async fn resource_becomes_aud_and_a_resource_outside_the_allowed_audiences_is_invalid_target() {
    install_crypto();
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD, "--audience", AUD2], &[]);

    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("resource", AUD2)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, claims) = verify_token(&server, r.json["access_token"].as_str().unwrap(), AUD2).await;
    assert_eq!(claims["aud"], AUD2);

    let r = server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://evil.example/mcp"),
            ],
        )
        .await;
    r.assert_error(400, "invalid_target");

    // Two audiences apply and none was named.
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    r.assert_error(400, "invalid_target");

    // More than one resource in one request.
    let r = server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("resource", AUD),
                ("resource", AUD2),
            ],
        )
        .await;
    r.assert_error(400, "invalid_target");

    // Not an absolute URI / has a fragment.
    for bad in ["/mcp", "https://mcp.example.com/tools#frag"] {
        let r = server
            .token(
                Some((&id, &secret)),
                &[("grant_type", "client_credentials"), ("resource", bad)],
            )
            .await;
        r.assert_error(400, "invalid_target");
    }
}

#[tokio::test]
async fn a_client_restricted_to_an_audience_cannot_get_another() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &["--audience", AUD2]);
    let server = Server::start(&dir, &["--audience", AUD, "--audience", AUD2], &[]);
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("resource", AUD)],
        )
        .await;
    r.assert_error(400, "invalid_target");
    // Without a resource, its single permitted audience applies.
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn wrong_secret_and_unknown_client_give_the_same_401_invalid_client() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let wrong = server
        .token(
            Some((&id, "not-the-secret")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let unknown = server
        .token(
            Some(("c_nobody", &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    wrong.assert_error(401, "invalid_client");
    unknown.assert_error(401, "invalid_client");
    assert_eq!(
        wrong.text, unknown.text,
        "bodies must not reveal which part was wrong"
    );
    for r in [&wrong, &unknown] {
        assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.starts_with("Basic")),
            "Basic was used, so the challenge is Basic"
        );
    }
    // client_secret_post failure: same body, no Basic challenge.
    let post = server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "wrong"),
            ],
        )
        .await;
    post.assert_error(401, "invalid_client");
    assert_eq!(post.text, wrong.text);
    // No credentials at all.
    let none = server
        .token(
            None,
            &[("grant_type", "client_credentials"), ("client_id", &id)],
        )
        .await;
    none.assert_error(401, "invalid_client");
    // The secret never appears in the logs.
    assert!(!server.logs().contains(&secret));
}

#[tokio::test]
async fn basic_credentials_are_form_urldecoded() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &["--id", "ci.job_1"]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
    let encoded_id = "ci.job%5F1";
    let r = server
        .token(
            Some((encoded_id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(id, "ci.job_1");
}

#[tokio::test]
async fn two_authentication_methods_in_one_request_is_invalid_request() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let r = server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    r.assert_error(400, "invalid_request");
    // A body client_id naming another client than Basic's.
    let r = server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "c_other"),
            ],
        )
        .await;
    r.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn scope_must_be_a_subset_of_the_registered_scopes() {
    let dir = DataDir::new();
    let cfg = dir.path().join("gatehouse.toml");
    std::fs::write(
        &cfg,
        format!("allowed_audiences = [\"{AUD}\"]\nscopes_supported = [\"tools:read\", \"tools:call\", \"admin\"]\n"),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let (id, secret) = create_client(
        &dir,
        &["--config", &cfg, "--scope", "tools:read tools:call"],
    );
    let server = Server::start(&dir, &["--config", &cfg], &[]);

    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["scope"], "tools:read tools:call",
        "omitted scope → registered scopes"
    );

    let r = server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "tools:read"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["scope"], "tools:read");

    let r = server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "tools:read admin"),
            ],
        )
        .await;
    r.assert_error(400, "invalid_scope");

    // Absurd scope strings: precise errors, not 500s.
    let long = "x".repeat(5000);
    let many = (0..200)
        .map(|i| format!("s{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    for bad in [long.as_str(), many.as_str(), "a\"b", "tools:read\u{7f}"] {
        let r = server
            .token(
                Some((&id, &secret)),
                &[("grant_type", "client_credentials"), ("scope", bad)],
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(
            r.json["error"] == "invalid_scope" || r.json["error"] == "invalid_request",
            "{}",
            r.text
        );
    }
}

#[tokio::test]
async fn protocol_errors_follow_rfc_6749_section_5_2() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let auth = Some((id.as_str(), secret.as_str()));

    server
        .token(auth, &[("scope", "x")])
        .await
        .assert_error(400, "invalid_request");
    server
        .token(auth, &[("grant_type", "urn:example:unknown")])
        .await
        .assert_error(400, "unsupported_grant_type");
    server
        .token(
            auth,
            &[
                ("grant_type", "password"),
                ("username", "a"),
                ("password", "b"),
            ],
        )
        .await
        .assert_error(400, "unsupported_grant_type");
    server
        .token(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
        )
        .await
        .assert_error(400, "invalid_request");

    // Wrong content type.
    let r = Response::from(
        server
            .http
            .post(server.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/json")
            .body(r#"{"grant_type":"client_credentials"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "invalid_request");

    // Non-UTF-8 form body.
    let r = Response::from(
        server
            .http
            .post(server.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b"grant_type=client_credentials&scope=%FF%FE".to_vec())
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "invalid_request");

    // Body over 64 KiB → 413. The server may answer before reading the whole
    // body and close the connection, so the client, still writing, can see a
    // reset instead of the answer: only such transport failures are retried,
    // each on a fresh connection; any answer is kept.
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(70 * 1024)
    );
    let mut answer = None;
    for _ in 0..10 {
        let sent = reqwest::Client::new()
            .post(server.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big.clone())
            .send()
            .await;
        if let Ok(resp) = sent {
            answer = Some(Response::from(resp).await);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = answer.expect("no answer to an oversized request in 10 attempts");
    assert_eq!(r.status, 413, "{}", r.text);

    // GET → 405 (on a fresh connection: the one above may have been closed).
    let r = Response::from(
        reqwest::Client::new()
            .get(server.url("/oauth/token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[tokio::test]
async fn the_cli_refuses_refresh_token_alone_and_stores_nothing() {
    let dir = DataDir::new();
    let (ok, _, err) = cli(
        &dir,
        &[
            "client",
            "create",
            "--name",
            "x",
            "--grant",
            "refresh_token",
        ],
    );
    assert!(!ok, "refresh_token alone must be refused");
    assert!(err.contains("refresh_token"), "{err}");
    assert_eq!(client_count(&dir).await, 0);
}

#[tokio::test]
async fn a_token_minted_before_a_restart_still_verifies_after_it_and_the_client_still_works() {
    install_crypto();
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json["access_token"].as_str().unwrap().to_string();
    let jwks_before = server.get_json("/.well-known/jwks.json").await.json;
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    server.stop();

    // Same address, so the derived issuer is the same.
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(&dir, &["--audience", AUD, "--listen", &listen], &[]);
    let jwks_after = server.get_json("/.well-known/jwks.json").await.json;
    assert_eq!(jwks_before, jwks_after, "the signing key is reused");
    let (_, claims) = verify_token(&server, &token, AUD).await;
    assert_eq!(claims["sub"], id.as_str());
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_client_deleted_while_the_server_runs_is_refused_within_seconds() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let (ok, out, err) = cli(&dir, &["client", "delete", &id]);
    assert!(ok, "{err}");
    assert_eq!(out["deleted"], id.as_str());

    let refused = eventually(Duration::from_secs(5), || async {
        server
            .token(
                Some((&id, &secret)),
                &[("grant_type", "client_credentials")],
            )
            .await
            .status
            == 401
    })
    .await;
    assert!(refused, "a deleted client must stop working within seconds");
    server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn a_client_created_while_the_server_runs_works_at_once() {
    let dir = DataDir::new();
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    // An unknown id is looked up (and remembered as unknown)...
    server
        .token(
            Some(("late.client", "x")),
            &[("grant_type", "client_credentials")],
        )
        .await
        .assert_error(401, "invalid_client");
    // ...then created: the change sequence evicts the negative entry.
    let (id, secret) = create_client(&dir, &["--id", "late.client"]);
    let ok = eventually(Duration::from_secs(5), || async {
        server
            .token(
                Some((&id, &secret)),
                &[("grant_type", "client_credentials")],
            )
            .await
            .status
            == 200
    })
    .await;
    assert!(
        ok,
        "a client created from the CLI must work on the running server"
    );
}

#[tokio::test]
async fn tokens_and_secrets_never_reach_the_logs() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    // Everything the server can say, at every level, for successes and
    // failures alike.
    let config = dir.path().join("open.toml");
    std::fs::write(
        &config,
        format!("allowed_audiences = [\"{AUD}\"]\n[registration]\nconfidential = \"open\"\n"),
    )
    .unwrap();
    let server = Server::start(
        &dir,
        &["--config", config.to_str().unwrap()],
        &[("RUST_LOG", "trace")],
    );
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json["access_token"].as_str().unwrap().to_string();
    // A near miss of the real secret, sent both ways a secret can travel.
    let mut near = secret.clone();
    near.pop();
    near.push(if secret.ends_with('A') { 'B' } else { 'A' });
    server
        .token(Some((&id, &near)), &[("grant_type", "client_credentials")])
        .await
        .assert_error(401, "invalid_client");
    server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &near),
            ],
        )
        .await
        .assert_error(401, "invalid_client");
    // The token revoked, then revoked again (nothing to revoke).
    for _ in 0..2 {
        let r = server
            .http
            .post(server.url("/oauth/revoke"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A registration: its secret and registration token are answered once.
    let reg = server
        .register(
            &serde_json::json!({"client_name": "logged?", "grant_types": ["client_credentials"]}),
            None,
        )
        .await;
    assert_eq!(reg.status, 201, "{}", reg.text);
    let reg_secret = reg.json["client_secret"].as_str().unwrap().to_string();
    let reg_token = reg.json["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let logs = server.logs();
    assert!(logs.contains("gatehouse started"));
    assert!(
        logs.contains("kid="),
        "the start line names the key id: {logs}"
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "not verbose: {logs}"
    );
    assert!(logs.contains("access token revoked"), "{logs}");
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    for (what, value) in [
        ("the Basic credentials", basic.as_str()),
        ("the secret", secret.as_str()),
        ("the near miss", near.as_str()),
        ("the access token", token.as_str()),
        ("the registered secret", reg_secret.as_str()),
        ("the registration token", reg_token.as_str()),
    ] {
        assert!(!logs.contains(value), "{what} is in the logs: {logs}");
    }
}

#[tokio::test]
async fn implausible_client_ids_are_refused_like_unknown_ones() {
    let dir = DataDir::new();
    let (_, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let reference = server
        .token(
            Some(("c_nobody", &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let long = "a".repeat(3000);
    for id in [long.as_str(), "with space", "naïve", "a/b"] {
        let r = server
            .token(Some((id, &secret)), &[("grant_type", "client_credentials")])
            .await;
        r.assert_error(401, "invalid_client");
        assert_eq!(r.text, reference.text);
    }
}

#[tokio::test]
async fn every_invalid_client_answer_carries_a_basic_challenge() {
    let dir = DataDir::new();
    let (id, _) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let r = server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "wrong"),
            ],
        )
        .await;
    r.assert_error(401, "invalid_client");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic")),
        "RFC 7235 §3.1: a 401 carries a challenge"
    );
}

#[tokio::test]
async fn the_cli_accepts_scopes_without_a_config_and_the_token_gets_them() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &["--scope", "deploy:read deploy:write"]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let r = server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "deploy:read"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["scope"], "deploy:read");
    server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "deploy:admin"),
            ],
        )
        .await
        .assert_error(400, "invalid_scope");
}

#[tokio::test]
async fn client_create_never_creates_signing_keys() {
    let dir = DataDir::new();
    create_client(&dir, &[]);
    let pool = db(&dir).await;
    let signing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM keys WHERE kind = 'signing'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(signing, 0, "signing keys are the server's to create");
}
