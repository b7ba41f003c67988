//! Signing keys that rotate without anyone noticing: `gatehouse key
//! rotate` and `key list` run against the data directory of a real running
//! server, spoken to over HTTP; the server follows without a restart.

use axum::Router;
use axum::routing::post;
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest access token lifetime any replica may use (24 h) plus the
/// 300 s margin — not this server's own lifetime.
const RETENTION: i64 = 86_400 + 300;

fn write(dir: &DataDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn token(server: &Server, id: &str, secret: &str, resource: &str) -> String {
    let r = server
        .token(
            Some((id, secret)),
            &[("grant_type", "client_credentials"), ("resource", resource)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["access_token"].as_str().unwrap().to_string()
}

/// `gatehouse key ARGS --config CFG --data-dir DIR`: (success, JSON, stderr).
fn key_cmd(dir: &DataDir, cfg: &str, args: &[&str]) -> (bool, Value, String) {
    let mut full = vec!["key"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--config", cfg]);
    cli(dir, &full)
}

fn key_list(dir: &DataDir, cfg: &str) -> Value {
    let (ok, out, err) = key_cmd(dir, cfg, &["list"]);
    assert!(ok, "key list failed: {err}");
    out
}

fn state_of<'a>(list: &'a Value, kid: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("{kid} not listed: {list}"))
}

#[tokio::test]
async fn a_pending_key_is_published_at_once_signs_nothing_and_blocks_a_second_rotation() {
    install_crypto();
    let dir = DataDir::new();
    // Without people there is no RS256 ID-token key: one key of one
    // algorithm, so the JWKS and the list show exactly the rotation.
    let cfg = write(
        &dir,
        "gatehouse.toml",
        "[keys]\npre_publication = \"1h\"\n[people]\nenabled = false\n",
    );
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--config", &cfg, "--audience", AUD], &[]);
    let old = token_kid(&token(&server, &id, &secret, AUD).await);
    assert_eq!(jwks_kids(&server).await, std::slice::from_ref(&old));
    let list = key_list(&dir, &cfg);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(state_of(&list, &old)["state"], "current");
    assert!(state_of(&list, &old).get("retire_at").is_none(), "{list}");

    let before = unix_now();
    let (ok, rotated, err) = key_cmd(&dir, &cfg, &["rotate"]);
    assert!(ok, "key rotate failed: {err}");
    let new = rotated["kid"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(rotated["alg"], "ES256");
    assert_eq!(rotated["state"], "pending");
    let activate_at = rotated["activate_at"].as_i64().unwrap();
    assert!(
        (before + 3600..=unix_now() + 3600).contains(&activate_at),
        "{rotated}"
    );
    assert_eq!(rotated["replaces"]["kid"], old.as_str());
    assert_eq!(rotated["replaces"]["retire_at"], activate_at + RETENTION);
    assert!(rotated.get("sealed").is_none() && !rotated.to_string().contains("PRIVATE"));

    // Published within a poll, while tokens are still signed by the old key
    // (and verify against the JWKS).
    assert!(
        eventually(Duration::from_secs(5), || async {
            jwks_kids(&server).await.contains(&new)
        })
        .await,
        "the new key was not published: {}",
        server.logs()
    );
    assert_eq!(jwks_kids(&server).await.len(), 2);
    let during = token(&server, &id, &secret, AUD).await;
    assert_eq!(token_kid(&during), old, "a pending key signs nothing");
    verify_token(&server, &during, AUD).await;

    // A second rotation while one is pending: refused, precisely, and
    // nothing is stored.
    let list = key_list(&dir, &cfg);
    assert_eq!(state_of(&list, &new)["state"], "pending");
    assert_eq!(state_of(&list, &new)["activate_at"], activate_at);
    assert_eq!(state_of(&list, &old)["state"], "current");
    let (ok, out, err) = key_cmd(&dir, &cfg, &["rotate"]);
    assert!(!ok, "a second rotation was accepted: {out}");
    assert!(
        err.contains(&format!("a pending ES256 key already exists: {new}")),
        "{err}"
    );
    assert!(err.contains("nothing was stored"), "{err}");
    assert_eq!(out, Value::Null, "nothing on stdout");
    assert_eq!(key_list(&dir, &cfg), list, "key list unchanged");
    // The text format is for people; it shows the same keys.
    let (ok, _, err) = key_cmd(&dir, &cfg, &["list", "--format", "text"]);
    assert!(ok, "{err}");
}

#[tokio::test]
async fn after_pre_publication_the_new_key_signs_the_old_stays_published_and_both_verify_in_the_embedded_gateway()
 {
    let Embedded {
        dir,
        cfg,
        server,
        resource,
        id,
        secret,
    } = embedded("[keys]\npre_publication = \"2s\"\n").await;
    let first = token(&server, &id, &secret, &resource).await;
    let old = token_kid(&first);
    assert_eq!(call(&resource, &first).await, 200);

    let (ok, rotated, err) = key_cmd(&dir, &cfg, &["rotate"]);
    assert!(ok, "key rotate failed: {err}");
    let new = rotated["kid"].as_str().unwrap().to_string();
    let activate_at = rotated["activate_at"].as_i64().unwrap();

    // After pre-publication (+ a poll), new tokens carry the new kid.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let second = loop {
        let t = token(&server, &id, &secret, &resource).await;
        if token_kid(&t) != old {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tokens are still signed by {old}: {}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(unix_now() >= activate_at, "signed before its activation");
    assert_eq!(token_kid(&second), new);
    let published = jwks_kids(&server).await;
    assert!(
        published.contains(&old) && published.contains(&new),
        "{published:?}"
    );
    verify_token(&server, &second, &resource).await;

    // Both keys' tokens verify through the embedded gateway, no restart.
    assert_eq!(call(&resource, &first).await, 200, "old key's token");
    assert_eq!(call(&resource, &second).await, 200, "new key's token");

    let list = key_list(&dir, &cfg);
    assert_eq!(state_of(&list, &new)["state"], "current");
    assert_eq!(state_of(&list, &old)["state"], "previous");
    assert_eq!(state_of(&list, &old)["retire_at"], activate_at + RETENTION);
    assert!(state_of(&list, &new).get("retire_at").is_none(), "{list}");
    assert!(server.logs().contains("signing keys changed"));
}

#[tokio::test]
async fn bad_key_arguments_and_settings_are_refused_precisely_and_change_nothing() {
    let dir = DataDir::new();
    let cfg = write(&dir, "gatehouse.toml", "[keys]\npre_publication = \"1h\"\n");
    // On a store with no key, a rotation has nothing to hand over from: the
    // key is current at once.
    let (ok, first, err) = key_cmd(&dir, &cfg, &["rotate", "--alg", "EdDSA"]);
    assert!(ok, "{err}");
    assert_eq!(first["state"], "current");
    assert_eq!(first["alg"], "EdDSA");
    let list = key_list(&dir, &cfg);

    let (ok, _, err) = key_cmd(&dir, &cfg, &["rotate", "--alg", "nonsense"]);
    assert!(!ok);
    assert!(
        err.contains("unsupported signing algorithm \"nonsense\" (expected ES256, RS256 or EdDSA)"),
        "{err}"
    );
    for (toml, expected) in [
        (
            "[keys]\npre_publication = \"soon\"\n",
            "invalid configuration at `keys.pre_publication`",
        ),
        (
            "[keys]\npre_publication = \"31d\"\n",
            "invalid configuration at `keys.pre_publication`: must be at most 30 days",
        ),
        (
            "[keys]\nrotate_every = \"1s\"\n",
            "invalid configuration at `keys.rotate_every`: must be between 10s and 10 years",
        ),
        (
            "[keys]\npre_publication = \"1h\"\nrotate_every = \"30m\"\n",
            "invalid configuration at `keys.rotate_every`: must be longer than keys.pre_publication",
        ),
    ] {
        let bad = write(&dir, "bad.toml", toml);
        let (ok, _, err) = key_cmd(&dir, &bad, &["rotate", "--alg", "EdDSA"]);
        assert!(!ok, "{toml}");
        assert!(err.contains(expected), "{toml}: {err}");
        let refused = Server::try_start(&dir, &["--config", &bad], &[]);
        match refused {
            Ok(_) => panic!("serve started with {toml}"),
            Err(logs) => assert!(logs.contains(expected), "{toml}: {logs}"),
        }
    }
    assert_eq!(key_list(&dir, &cfg), list, "key list unchanged");

    // A short pre-publication is allowed, with a warning.
    let short = write(&dir, "short.toml", "[keys]\npre_publication = \"2s\"\n");
    let (ok, _, err) = key_cmd(&dir, &short, &["list"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("shorter than the JWKS cache lifetime"),
        "{err}"
    );
}

#[tokio::test]
async fn with_rotate_every_each_replica_rotates_on_schedule_by_itself() {
    install_crypto();
    let dir = DataDir::new();
    let cfg = write(
        &dir,
        "gatehouse.toml",
        "[keys]\npre_publication = \"2s\"\nrotate_every = \"10s\"\n",
    );
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--config", &cfg, "--audience", AUD], &[]);
    let first = token_kid(&token(&server, &id, &secret, AUD).await);
    // The first key activated at start; its successor is added 8 s later
    // and signs from 10 s.
    let rotated = eventually(Duration::from_secs(25), || async {
        token_kid(&token(&server, &id, &secret, AUD).await) != first
    })
    .await;
    assert!(rotated, "no automatic rotation: {}", server.logs());
    assert!(jwks_kids(&server).await.contains(&first), "old key kept");
    assert!(
        server
            .logs()
            .contains("automatic rotation: new signing key published")
    );
    let list = key_list(&dir, &cfg);
    assert_eq!(state_of(&list, &first)["state"], "previous", "{list}");
}

/// `serve` with the gateway embedded in front of [`upstream`] at
/// `resource`, `ci-bot` allowed to call `search`; `keys_toml` starts the
/// configuration file.
struct Embedded {
    dir: DataDir,
    cfg: String,
    server: Server,
    resource: String,
    id: String,
    secret: String,
}

async fn embedded(keys_toml: &str) -> Embedded {
    install_crypto();
    let dir = DataDir::new();
    let port = free_port();
    let upstream = upstream().await;
    let policies = write(
        &dir,
        "policies.cedar",
        "permit (principal == Client::\"ci-bot\", action == Action::\"call_tool\", resource == Tool::\"search\");",
    );
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let cfg = write(
        &dir,
        "gatehouse.toml",
        &format!(
            "{keys_toml}\n[[gateway.servers]]\nresource = \"{resource}\"\nupstream = \"{upstream}\"\npolicies = \"{policies}\"\n"
        ),
    );
    let (id, secret) = create_client(&dir, &["--id", "ci-bot"]);
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(&dir, &["--config", &cfg, "--listen", &listen], &[]);
    Embedded {
        dir,
        cfg,
        server,
        resource,
        id,
        secret,
    }
}

/// An MCP upstream that answers every call.
async fn upstream() -> String {
    let app = Router::new().route(
        "/mcp",
        post(|body: String| async move {
            let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            axum::Json(
                json!({"jsonrpc": "2.0", "id": msg["id"].clone(), "result": {"content": []}}),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}

/// Calls the tool `search` through the gateway; returns the status.
async fn call(resource: &str, token: &str) -> u16 {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": {}}});
    reqwest::Client::new()
        .post(resource)
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_retired_key_stops_its_tokens_at_the_embedded_gateway_even_cached() {
    let Embedded {
        dir,
        cfg,
        server,
        resource,
        id,
        secret,
    } = embedded("[keys]\npre_publication = \"1h\"\n[people]\nenabled = false\n").await;
    let leaked = token(&server, &id, &secret, &resource).await;
    let old = token_kid(&leaked);
    // Verified once, so the gateway has it cached.
    assert_eq!(call(&resource, &leaked).await, 200);

    let (ok, rotated, err) = key_cmd(&dir, &cfg, &["rotate", "--now"]);
    assert!(ok, "{err}");
    let new = rotated["kid"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(5), || async {
            token_kid(&token(&server, &id, &secret, &resource).await) == new
        })
        .await,
        "the new key does not sign: {}",
        server.logs()
    );
    assert_eq!(
        call(&resource, &leaked).await,
        200,
        "previous keys still verify"
    );
    let (ok, _, err) = key_cmd(&dir, &cfg, &["retire", &old]);
    assert!(ok, "{err}");
    assert!(
        eventually(Duration::from_secs(5), || async {
            call(&resource, &leaked).await == 401
        })
        .await,
        "a token of the retired key is still accepted: {}",
        server.logs()
    );
    let fresh = token(&server, &id, &secret, &resource).await;
    assert_eq!(call(&resource, &fresh).await, 200);
}
