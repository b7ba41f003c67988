//! Secret rotation (`gatehouse client rotate-secret`) and RFC 7592 client
//! management at /oauth/register/{client_id}, over HTTP against the real
//! binary, with the real SQLite store read directly to check what changed.

use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Writes a config file with open registration (and `extra` appended).
fn config_file(dir: &DataDir, extra: &str) -> String {
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(
        &path,
        format!(
            "allowed_audiences = [\"{AUD}\"]\n\
             scopes_supported = [\"tools:read\", \"tools:call\"]\n\
             [registration]\n\
             confidential = \"open\"\n\
             per_address_per_minute = 1000\n\
             {extra}\n"
        ),
    )
    .expect("write config");
    path.to_str().unwrap().to_string()
}

fn open_server(dir: &DataDir) -> Server {
    let cfg = config_file(dir, "");
    Server::start(dir, &["--config", &cfg], &[])
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Everything stored about one client (None when there is no row).
async fn row(dir: &DataDir, id: &str) -> Option<Value> {
    let pool = db(dir).await;
    let r: Option<(String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT metadata, secrets, registration_token, revision FROM clients WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(&pool)
    .await
    .expect("read client");
    pool.close().await;
    r.map(|(m, s, t, rev)| {
        json!({
            "metadata": serde_json::from_str::<Value>(&m).unwrap(),
            "secrets": serde_json::from_str::<Value>(&s).unwrap(),
            "registration_token": t,
            "revision": rev,
        })
    })
}

async fn change_count(dir: &DataDir) -> i64 {
    let pool = db(dir).await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM changes")
        .fetch_one(&pool)
        .await
        .expect("count changes");
    pool.close().await;
    n
}

async fn cc_token(server: &Server, id: &str, secret: &str) -> Response {
    server
        .token(Some((id, secret)), &[("grant_type", "client_credentials")])
        .await
}

fn rotate(dir: &DataDir, id: &str, grace: &str) -> (bool, Value, String) {
    cli(dir, &["client", "rotate-secret", id, "--grace", grace])
}

/// Registers a client_credentials client; returns the 201 body.
async fn register(server: &Server, extra: Value) -> Value {
    let mut body = json!({"client_name": "agent", "grant_types": ["client_credentials"]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = server.register(&body, None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// A management request with an optional bearer token and JSON body.
async fn manage(
    server: &Server,
    method: reqwest::Method,
    id: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut req = server
        .http
        .request(method, server.url(&format!("/oauth/register/{id}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    Response::from(req.send().await.expect("management request")).await
}

fn assert_invalid_token(r: &Response, what: &str) {
    assert_invalid_token_for(r, what, Some("a token"));
}

/// The one 401; its challenge names the error only when a token was
/// presented (RFC 6750 §3.1).
fn assert_invalid_token_for(r: &Response, what: &str, presented: Option<&str>) {
    assert_eq!(r.status, 401, "{what}: {}", r.text);
    assert_eq!(r.json["error"], "invalid_token", "{what}: {}", r.text);
    let challenge = match presented {
        Some(t) if !t.is_empty() => "Bearer error=\"invalid_token\"",
        _ => "Bearer realm=\"gatehouse\"",
    };
    assert_eq!(r.header("www-authenticate"), Some(challenge), "{what}");
}

// ---------------------------------------------------------------- rotation

#[tokio::test]
async fn a_rotation_reaches_a_running_server_and_both_secrets_work_during_the_grace() {
    let dir = DataDir::new();
    let (id, old) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    // The running server has the client cached now.
    assert_eq!(cc_token(&server, &id, &old).await.status, 200);

    let (ok, out, err) = rotate(&dir, &id, "1h");
    assert!(ok, "rotate-secret failed: {err}");
    let new = s(&out, "client_secret").to_string();
    assert_ne!(new, old);
    assert_eq!(out["client_id"], id.as_str());
    assert_eq!(out["client_secret_expires_at"], 0);
    let grace_end = out["previous_secrets_expire_at"][0].as_i64().unwrap();
    assert!((grace_end - (now() + 3600)).abs() <= 5, "{out}");

    // Within one poll interval, without a restart.
    let picked_up = eventually(Duration::from_secs(5), || async {
        cc_token(&server, &id, &new).await.status == 200
    })
    .await;
    assert!(
        picked_up,
        "the running server never accepted the new secret"
    );
    assert_eq!(cc_token(&server, &id, &old).await.status, 200, "grace");
    // The secret was printed once and only its HMAC is stored.
    let stored = row(&dir, &id).await.unwrap();
    assert_eq!(stored["secrets"].as_array().unwrap().len(), 2);
    assert!(!stored.to_string().contains(&new));
}

#[tokio::test]
async fn the_previous_secret_stops_when_the_grace_ends_and_is_refused_like_a_wrong_one() {
    let dir = DataDir::new();
    let (id, old) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    assert_eq!(cc_token(&server, &id, &old).await.status, 200);

    let (ok, out, err) = rotate(&dir, &id, "2s");
    assert!(ok, "{err}");
    let new = s(&out, "client_secret").to_string();
    let stopped = eventually(Duration::from_secs(10), || async {
        cc_token(&server, &id, &old).await.status == 401
    })
    .await;
    assert!(stopped, "the old secret kept working after its grace");
    let expired = cc_token(&server, &id, &old).await;
    let wrong = cc_token(&server, &id, "not-the-secret").await;
    expired.assert_error(401, "invalid_client");
    assert_eq!(expired.text, wrong.text, "expired and wrong look alike");
    assert_eq!(
        expired.header("www-authenticate"),
        wrong.header("www-authenticate")
    );
    assert_eq!(cc_token(&server, &id, &new).await.status, 200);
}

#[tokio::test]
async fn a_rotation_beyond_the_live_secret_cap_is_refused_and_changes_nothing() {
    let dir = DataDir::new();
    let (id, first) = create_client(&dir, &[]);
    let mut secrets = vec![first];
    for _ in 0..3 {
        let (ok, out, err) = rotate(&dir, &id, "1h");
        assert!(ok, "{err}");
        secrets.push(s(&out, "client_secret").to_string());
    }
    let before = row(&dir, &id).await.unwrap();
    let changes = change_count(&dir).await;
    assert_eq!(before["secrets"].as_array().unwrap().len(), 4);

    let (ok, out, err) = rotate(&dir, &id, "1h");
    assert!(!ok, "a fifth live secret was accepted: {out}");
    assert!(out.is_null(), "nothing on stdout: {out}");
    assert!(err.contains("live secrets"), "{err}");
    assert_eq!(row(&dir, &id).await.unwrap(), before);
    assert_eq!(change_count(&dir).await, changes);

    // All four still work.
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    for secret in &secrets {
        assert_eq!(cc_token(&server, &id, secret).await.status, 200);
    }
}

#[tokio::test]
async fn rotating_an_unknown_client_or_with_a_bad_grace_fails_and_changes_nothing() {
    let dir = DataDir::new();
    let (id, _) = create_client(&dir, &[]);
    let before = row(&dir, &id).await.unwrap();
    let changes = change_count(&dir).await;

    let (ok, out, err) = rotate(&dir, "c_doesnotexist", "1h");
    assert!(!ok && out.is_null());
    assert!(err.contains("no client"), "{err}");

    let (ok, _, err) = rotate(&dir, &id, "soon");
    assert!(!ok);
    assert!(err.contains("invalid duration"), "{err}");

    let (ok, _, err) = rotate(&dir, &id, "400d");
    assert!(!ok);
    assert!(err.contains("grace period"), "{err}");

    assert_eq!(client_count(&dir).await, 1);
    assert_eq!(row(&dir, &id).await.unwrap(), before);
    assert_eq!(change_count(&dir).await, changes);
}

#[tokio::test]
async fn client_secret_expires_at_reflects_a_configured_secret_lifetime() {
    let dir = DataDir::new();
    let cfg = config_file(&dir, "[client_auth]\nsecret_lifetime = \"1h\"");
    let server = Server::start(&dir, &["--config", &cfg], &[]);
    let created = register(&server, json!({})).await;
    let exp = created["client_secret_expires_at"].as_i64().unwrap();
    assert!((exp - (now() + 3600)).abs() <= 5, "{created}");
    let read = manage(
        &server,
        reqwest::Method::GET,
        s(&created, "client_id"),
        Some(s(&created, "registration_access_token")),
        None,
    )
    .await;
    assert_eq!(read.json["client_secret_expires_at"], exp);

    let (ok, out, err) = cli(
        &dir,
        &[
            "client",
            "create",
            "--config",
            &cfg,
            "--name",
            "x",
            "--grant",
            "client_credentials",
        ],
    );
    assert!(ok, "{err}");
    let exp = out["client_secret_expires_at"].as_i64().unwrap();
    assert!((exp - (now() + 3600)).abs() <= 5, "{out}");
    let id = s(&out, "client_id");
    let (ok, out, err) = cli(&dir, &["client", "rotate-secret", id, "--config", &cfg]);
    assert!(ok, "{err}");
    let exp = out["client_secret_expires_at"].as_i64().unwrap();
    assert!((exp - (now() + 3600)).abs() <= 5, "{out}");

    // Without the setting, secrets never expire (RFC 7591 §3.2.1: 0).
    let dir2 = DataDir::new();
    let server2 = open_server(&dir2);
    assert_eq!(
        register(&server2, json!({})).await["client_secret_expires_at"],
        0
    );
}

// ------------------------------------------------------------- RFC 7592

#[tokio::test]
async fn registration_returns_a_management_token_stored_only_as_an_hmac_and_get_reads_it_back() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let created = register(&server, json!({"scope": "tools:read"})).await;
    let id = s(&created, "client_id");
    let token = s(&created, "registration_access_token");
    assert!(token.len() >= 43, "{created}");
    assert_eq!(
        created["registration_client_uri"],
        server.url(&format!("/oauth/register/{id}"))
    );
    let stored = row(&dir, id).await.unwrap();
    let hash = stored["registration_token"].as_str().expect("token hash");
    assert!(!hash.contains(token));

    let r = manage(&server, reqwest::Method::GET, id, Some(token), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.json["client_id"], id);
    assert_eq!(r.json["scope"], "tools:read");
    assert_eq!(r.json["client_name"], "agent");
    assert_eq!(
        r.json["registration_client_uri"],
        created["registration_client_uri"]
    );
    assert_eq!(r.json["client_secret_expires_at"], 0);
    assert!(r.json.get("client_secret").is_none(), "{}", r.text);
    // RFC 7592 §3: REQUIRED in the response; not rotated, so the same.
    assert_eq!(r.json["registration_access_token"], token, "{}", r.text);
}

#[tokio::test]
async fn every_method_without_the_right_token_is_the_same_401_and_changes_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let a = register(&server, json!({})).await;
    let b = register(&server, json!({})).await;
    let (cli_id, _) = create_client(&dir, &[]);
    let id = s(&a, "client_id");
    let b_token = s(&b, "registration_access_token");
    let update = json!({"client_id": id, "client_name": "hijacked",
                        "grant_types": ["client_credentials"]});
    let before = row(&dir, id).await.unwrap();
    let mut bodies = Vec::new();
    for (target, token, what) in [
        (id, None, "no token"),
        (
            id,
            Some("wrong-token-wrong-token-wrong-token-wrong-t"),
            "wrong token",
        ),
        (id, Some(""), "empty token"),
        (id, Some(b_token), "another client's token"),
        ("c_unknown0000000000000000", Some(b_token), "unknown client"),
        ("not a valid id!", Some(b_token), "implausible id"),
        (cli_id.as_str(), Some(b_token), "CLI client (has no token)"),
    ] {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let body = (method == reqwest::Method::PUT).then_some(&update);
            let r = manage(&server, method.clone(), target, token, body).await;
            assert_invalid_token_for(&r, &format!("{method} {what}"), token);
            bodies.push(r.text);
        }
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "one answer for every failure: {bodies:?}");
    assert_eq!(row(&dir, id).await.unwrap(), before);
    assert_eq!(client_count(&dir).await, 3);
    // The right token still works.
    let r = manage(
        &server,
        reqwest::Method::GET,
        id,
        Some(s(&a, "registration_access_token")),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["client_name"], "agent");
}

#[tokio::test]
async fn put_replaces_the_metadata_removing_omitted_fields_and_the_secret_keeps_working() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let created = register(
        &server,
        json!({"scope": "tools:read", "client_uri": "https://agent.example"}),
    )
    .await;
    let id = s(&created, "client_id");
    let token = s(&created, "registration_access_token");
    let secret = s(&created, "client_secret");
    // What GET returned may be sent back: read-only members are ignored.
    let body = json!({
        "client_id": id,
        "client_secret": secret,
        "client_name": "agent v2",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_post",
        "scope": "tools:call",
        "registration_client_uri": created["registration_client_uri"],
        "client_id_issued_at": created["client_id_issued_at"],
    });
    let r = manage(&server, reqwest::Method::PUT, id, Some(token), Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["client_name"], "agent v2");
    assert_eq!(r.json["scope"], "tools:call");
    assert_eq!(r.json["token_endpoint_auth_method"], "client_secret_post");
    assert!(
        r.json.get("client_uri").is_none(),
        "omitted → removed: {}",
        r.text
    );
    assert!(r.json.get("client_secret").is_none());
    assert_eq!(r.json["registration_access_token"], token, "RFC 7592 §3");

    let stored = row(&dir, id).await.unwrap();
    assert_eq!(stored["metadata"]["client_name"], "agent v2");
    assert!(stored["metadata"].get("extra").is_none(), "{stored}");
    assert_eq!(stored["revision"], 1);
    let read = manage(&server, reqwest::Method::GET, id, Some(token), None).await;
    assert_eq!(read.json, r.json);
    // The same secret, the new scope, picked up by the running server.
    let got_new_scope = eventually(Duration::from_secs(5), || async {
        let t = cc_token(&server, id, secret).await;
        t.status == 200 && t.json["scope"] == "tools:call"
    })
    .await;
    assert!(got_new_scope, "the running server never saw the update");
}

#[tokio::test]
async fn an_invalid_update_is_a_400_with_the_registration_error_and_changes_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let created = register(&server, json!({"scope": "tools:read"})).await;
    let other = register(&server, json!({})).await;
    let id = s(&created, "client_id");
    let token = s(&created, "registration_access_token");
    let before = row(&dir, id).await.unwrap();
    let changes = change_count(&dir).await;
    let valid = json!({"client_id": id, "grant_types": ["client_credentials"]});
    let with = |k: &str, v: Value| {
        let mut b = valid.clone();
        b[k] = v;
        b
    };
    let cases = [
        (
            with("redirect_uris", json!(["javascript:alert(1)"])),
            "invalid_redirect_uri",
            "javascript: redirect URI",
        ),
        (
            with("grant_types", json!(["implicit"])),
            "invalid_client_metadata",
            "implicit",
        ),
        (
            with("grant_types", json!(["refresh_token"])),
            "invalid_client_metadata",
            "refresh_token alone",
        ),
        (
            with("client_id", other["client_id"].clone()),
            "invalid_client_metadata",
            "another client's id",
        ),
        (
            json!({"grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
            "no client_id",
        ),
        (
            with("client_secret", json!("not-the-secret")),
            "invalid_client_metadata",
            "wrong client_secret",
        ),
        (
            with("client_secret", other["client_secret"].clone()),
            "invalid_client_metadata",
            "another client's secret",
        ),
        (
            with("token_endpoint_auth_method", json!("none")),
            "invalid_client_metadata",
            "public with client_credentials",
        ),
        (
            with("scope", json!("admin")),
            "invalid_client_metadata",
            "unsupported scope",
        ),
        (json!([1, 2]), "invalid_client_metadata", "not an object"),
    ];
    for (body, code, what) in cases {
        let r = manage(&server, reqwest::Method::PUT, id, Some(token), Some(&body)).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        assert_eq!(r.json["error"], code, "{what}: {}", r.text);
        assert!(r.json["error_description"].is_string(), "{what}");
        assert_eq!(
            row(&dir, id).await.unwrap(),
            before,
            "{what} changed the client"
        );
    }
    // Not JSON, and the wrong media type.
    let url = server.url(&format!("/oauth/register/{id}"));
    let r = Response::from(
        server
            .http
            .put(&url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "invalid_request");
    let r = Response::from(
        server
            .http
            .put(&url)
            .bearer_auth(token)
            .header("content-type", "text/plain")
            .body(valid.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "invalid_request");
    // Too large. The server may answer 413 before reading the body and close
    // the connection; a client still writing can then see a reset instead.
    // Only such transport failures are retried.
    let mut oversized = None;
    for _ in 0..10 {
        let sent = reqwest::Client::new()
            .put(&url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(vec![b' '; 70 * 1024])
            .send()
            .await;
        if let Ok(resp) = sent {
            oversized = Some(Response::from(resp).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = oversized.expect("no answer to an oversized request in 10 attempts");
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(row(&dir, id).await.unwrap(), before);
    assert_eq!(change_count(&dir).await, changes);
}

#[tokio::test]
async fn delete_removes_the_client_its_secret_stops_working_and_the_token_with_it() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let created = register(&server, json!({})).await;
    let id = s(&created, "client_id");
    let token = s(&created, "registration_access_token");
    let secret = s(&created, "client_secret");
    assert_eq!(cc_token(&server, id, secret).await.status, 200);

    let r = manage(&server, reqwest::Method::DELETE, id, Some(token), None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert!(row(&dir, id).await.is_none());
    let refused = eventually(Duration::from_secs(5), || async {
        cc_token(&server, id, secret).await.status == 401
    })
    .await;
    assert!(refused, "the deleted client still got tokens");
    cc_token(&server, id, secret)
        .await
        .assert_error(401, "invalid_client");
    let r = manage(&server, reqwest::Method::GET, id, Some(token), None).await;
    assert_invalid_token(&r, "GET after DELETE");
    let r = manage(&server, reqwest::Method::DELETE, id, Some(token), None).await;
    assert_invalid_token(&r, "DELETE after DELETE");
}

#[tokio::test]
async fn other_methods_on_the_management_uri_are_405() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let created = register(&server, json!({})).await;
    let id = s(&created, "client_id");
    let r = manage(
        &server,
        reqwest::Method::POST,
        id,
        Some(s(&created, "registration_access_token")),
        Some(&json!({})),
    )
    .await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert_eq!(r.header("allow"), Some("GET, PUT, DELETE"));
}

#[tokio::test]
async fn management_requests_share_the_per_address_registration_budget() {
    install_crypto();
    let dir = DataDir::new();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(
        &path,
        format!(
            "allowed_audiences = [\"{AUD}\"]\n[registration]\nconfidential = \"open\"\nper_address_per_minute = 3\n"
        ),
    )
    .expect("write config");
    let server = Server::start(&dir, &["--config", path.to_str().unwrap()], &[]);
    let created = register(&server, json!({})).await;
    let id = s(&created, "client_id").to_string();
    let token = s(&created, "registration_access_token").to_string();
    // Guessing tokens costs the same budget as registering.
    for _ in 0..2 {
        let r = manage(&server, reqwest::Method::GET, &id, Some("guess"), None).await;
        assert_invalid_token(&r, "a guessed token");
    }
    let r = manage(&server, reqwest::Method::GET, &id, Some(&token), None).await;
    r.assert_error(429, "slow_down");
    let r = manage(&server, reqwest::Method::DELETE, &id, Some(&token), None).await;
    r.assert_error(429, "slow_down");
    assert!(
        row(&dir, &id).await.is_some(),
        "the refused DELETE deleted nothing"
    );
}
