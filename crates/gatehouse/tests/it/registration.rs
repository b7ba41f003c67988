//! Dynamic registration of confidential clients (RFC 7591) at /oauth/register,
//! over HTTP against the real server, with the real SQLite store read directly
//! to check what was (and was not) stored.

use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::Duration;

const INITIAL_TOKEN: &str = "iat-0123456789abcdef-first";
const INITIAL_TOKEN_2: &str = "iat-fedcba9876543210-second";

/// Writes a config file into the data directory and returns its path.
fn config_file(dir: &DataDir, registration: &str) -> String {
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(
        &path,
        format!(
            "allowed_audiences = [\"{AUD}\"]\n\
             scopes_supported = [\"tools:read\", \"tools:call\"]\n\
             [registration]\n\
             per_address_per_minute = 1000\n\
             {registration}\n"
        ),
    )
    .expect("write config");
    path.to_str().unwrap().to_string()
}

/// A server whose registration mode is `confidential = "<mode>"`.
fn server_with(dir: &DataDir, registration: &str) -> Server {
    let cfg = config_file(dir, registration);
    Server::start(dir, &["--config", &cfg], &[])
}

/// A server with open registration of confidential clients.
fn open_server(dir: &DataDir) -> Server {
    server_with(dir, "confidential = \"open\"")
}

fn cc() -> Value {
    json!({"client_name": "ci job", "grant_types": ["client_credentials"]})
}

/// Merges `extra` into the minimal client_credentials request.
fn cc_with(extra: Value) -> Value {
    let mut body = cc();
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// POSTs raw bytes to the registration endpoint.
async fn post_raw(server: &Server, content_type: Option<&str>, body: Vec<u8>) -> Response {
    let mut req = server.http.post(server.url("/oauth/register")).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    Response::from(req.send().await.expect("register request")).await
}

/// POSTs an oversized JSON body. The server may answer 413 before reading
/// the whole body and close the connection; the client, still writing, can
/// then see a reset instead of the answer. Only such transport failures are
/// retried: any answer that arrives is returned. Each attempt uses its own
/// connection, so the closed one never lingers in the shared client's pool.
async fn post_oversized(server: &Server, body: Vec<u8>) -> Response {
    for _ in 0..10 {
        let req = reqwest::Client::new()
            .post(server.url("/oauth/register"))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Ok(resp) = req.send().await {
            return Response::from(resp).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no answer to an oversized request in 10 attempts");
}

/// Stored (metadata, secrets) JSON of one client, read from the database.
async fn stored(dir: &DataDir, id: &str) -> (Value, Value) {
    let pool = db(dir).await;
    let (metadata, secrets): (String, String) =
        sqlx::query_as("SELECT metadata, secrets FROM clients WHERE id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("stored client");
    pool.close().await;
    (
        serde_json::from_str(&metadata).expect("metadata is JSON"),
        serde_json::from_str(&secrets).expect("secrets is JSON"),
    )
}

/// Whether any file in the data directory contains `needle` (database, WAL,
/// shared memory, key-encryption key).
fn data_dir_contains(dir: &DataDir, needle: &[u8]) -> bool {
    std::fs::read_dir(dir.path()).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Asserts a refused registration: status, code, and nothing stored.
async fn assert_refused(dir: &DataDir, r: &Response, status: u16, code: &str, what: &str) {
    assert_eq!(
        r.status, status,
        "{what}: unexpected status; body: {}",
        r.text
    );
    assert_eq!(
        r.json["error"], code,
        "{what}: unexpected error; body: {}",
        r.text
    );
    assert!(
        r.json["error_description"].is_string(),
        "{what}: error without description: {}",
        r.text
    );
    assert!(r.json.get("client_secret").is_none(), "{what}: {}", r.text);
    assert_eq!(
        client_count(dir).await,
        0,
        "{what}: a refused registration stored a client"
    );
}

#[tokio::test]
async fn a_client_credentials_client_registers_without_redirect_uris_and_gets_its_secret_once() {
    let dir = DataDir::new();
    let server = open_server(&dir);

    let before = now();
    let absent = server.register(&cc(), None).await;
    let empty = server
        .register(
            &cc_with(json!({"redirect_uris": [], "response_types": []})),
            None,
        )
        .await;
    for r in [&absent, &empty] {
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let id = r.json["client_id"].as_str().expect("client_id");
        assert!(id.starts_with("c_"), "generated ids are c_ + base62: {id}");
        assert!(id[2..].bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        let secret = r.json["client_secret"].as_str().expect("client_secret");
        assert_eq!(secret.len(), 43, "256 bits, base64url: {secret}");
        assert!(is_base64url(secret), "{secret}");
        assert_eq!(r.json["client_secret_expires_at"], 0, "{}", r.text);
        let issued = r.json["client_id_issued_at"]
            .as_i64()
            .expect("client_id_issued_at");
        assert!((before - 5..=now() + 5).contains(&issued), "{issued}");
        assert_eq!(r.json["grant_types"], json!(["client_credentials"]));
        assert_eq!(
            r.json["token_endpoint_auth_method"], "client_secret_basic",
            "the RFC 7591 default for a client_credentials client"
        );
        assert_eq!(r.json["client_name"], "ci job");
        assert!(
            r.json["redirect_uris"]
                .as_array()
                .is_none_or(|a| a.is_empty()),
            "{}",
            r.text
        );
    }
    let (id1, secret1) = (
        absent.json["client_id"].as_str().unwrap(),
        absent.json["client_secret"].as_str().unwrap(),
    );
    let (id2, secret2) = (
        empty.json["client_id"].as_str().unwrap(),
        empty.json["client_secret"].as_str().unwrap(),
    );
    assert_ne!(id1, id2);
    assert_ne!(secret1, secret2);
    assert_eq!(client_count(&dir).await, 2);

    // The store holds an HMAC, never the secret.
    for (id, secret) in [(id1, secret1), (id2, secret2)] {
        let (_, secrets) = stored(&dir, id).await;
        let text = secrets.to_string();
        assert!(
            !text.contains(secret),
            "stored secrets contain the secret: {text}"
        );
        let entries = secrets.as_array().expect("secrets is an array");
        assert_eq!(entries.len(), 1, "{text}");
        let hash = entries[0]["hash"].as_str().expect("a hash is stored");
        assert_ne!(hash, secret);
        assert!(
            entries[0]["key_id"].is_string(),
            "the hash records its HMAC key: {text}"
        );
        assert!(
            !data_dir_contains(&dir, secret.as_bytes()),
            "the secret is written somewhere in the data directory"
        );
    }

    // Shown once: never again, neither by the admin CLI nor in the logs.
    let (ok, shown, err) = cli(&dir, &["client", "show", id1]);
    assert!(ok, "{err}");
    assert_eq!(shown["client_id"], id1);
    assert!(!shown.to_string().contains(secret1), "{shown}");
    assert!(shown.get("client_secret").is_none(), "{shown}");
    assert!(
        !server.logs().contains(secret1),
        "the secret reached the logs"
    );
}

#[tokio::test]
async fn a_registered_client_gets_a_token_with_client_secret_basic_and_with_client_secret_post() {
    install_crypto();
    let dir = DataDir::new();
    let server = open_server(&dir);

    let basic = server.register(&cc(), None).await;
    assert_eq!(basic.status, 201, "{}", basic.text);
    let post = server
        .register(
            &cc_with(json!({"token_endpoint_auth_method": "client_secret_post"})),
            None,
        )
        .await;
    assert_eq!(post.status, 201, "{}", post.text);
    assert_eq!(
        post.json["token_endpoint_auth_method"],
        "client_secret_post"
    );

    let (bid, bsecret) = (
        basic.json["client_id"].as_str().unwrap(),
        basic.json["client_secret"].as_str().unwrap(),
    );
    let (pid, psecret) = (
        post.json["client_id"].as_str().unwrap(),
        post.json["client_secret"].as_str().unwrap(),
    );

    let r = server
        .token(
            Some((bid, bsecret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "client_secret_basic: {}", r.text);
    let (_, claims) = verify_token(&server, r.json["access_token"].as_str().unwrap(), AUD).await;
    assert_eq!(claims["sub"], bid);
    assert_eq!(claims["client_id"], bid);
    assert_eq!(claims["aud"], AUD);

    let r = server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", pid),
                ("client_secret", psecret),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "client_secret_post: {}", r.text);
    let (_, claims) = verify_token(&server, r.json["access_token"].as_str().unwrap(), AUD).await;
    assert_eq!(claims["sub"], pid);
    assert_eq!(claims["client_id"], pid);

    // docs/decisions.md "Keys, secrets and identifiers": what is pinned is the
    // kind of credential (a secret), so a client registered for
    // client_secret_post may also use Basic.
    let r = server
        .token(
            Some((pid, psecret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "post client via Basic: {}", r.text);

    // One client's secret does not authenticate the other.
    let r = server
        .token(
            Some((bid, psecret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    r.assert_error(401, "invalid_client");
}

#[tokio::test]
async fn a_client_secret_in_the_request_is_ignored() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let chosen = "my-own-chosen-secret-that-must-not-be-used-0001";
    let r = server
        .register(
            &cc_with(json!({"client_secret": chosen, "client_id": "c_mychoice"})),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["client_id"].as_str().unwrap();
    let secret = r.json["client_secret"].as_str().unwrap();
    assert_ne!(secret, chosen, "the server generates the secret");
    assert_eq!(secret.len(), 43);
    assert_ne!(
        id, "c_mychoice",
        "registration never lets a client choose its id"
    );

    let r = server
        .token(Some((id, chosen)), &[("grant_type", "client_credentials")])
        .await;
    r.assert_error(401, "invalid_client");
    let r = server
        .token(Some((id, secret)), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        !data_dir_contains(&dir, chosen.as_bytes()),
        "the ignored secret was stored"
    );
}

#[tokio::test]
async fn none_with_client_credentials_is_invalid_client_metadata_and_stores_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let r = server
        .register(
            &cc_with(json!({"token_endpoint_auth_method": "none"})),
            None,
        )
        .await;
    assert_refused(
        &dir,
        &r,
        400,
        "invalid_client_metadata",
        "none + client_credentials",
    )
    .await;
}

#[tokio::test]
async fn refresh_token_alone_is_invalid_client_metadata_and_stores_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    for grants in [
        json!(["refresh_token"]),
        json!(["refresh_token", "refresh_token"]),
    ] {
        let r = server
            .register(&cc_with(json!({"grant_types": grants})), None)
            .await;
        assert_refused(
            &dir,
            &r,
            400,
            "invalid_client_metadata",
            &grants.to_string(),
        )
        .await;
    }
}

#[tokio::test]
async fn implicit_and_password_are_invalid_client_metadata_and_store_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    for grants in [
        json!(["implicit"]),
        json!(["password"]),
        // Not even beside an acceptable grant.
        json!(["client_credentials", "implicit"]),
        json!(["client_credentials", "password"]),
    ] {
        let r = server
            .register(&cc_with(json!({"grant_types": grants})), None)
            .await;
        assert_refused(
            &dir,
            &r,
            400,
            "invalid_client_metadata",
            &grants.to_string(),
        )
        .await;
    }
}

#[tokio::test]
async fn an_empty_grant_list_is_invalid_client_metadata_and_stores_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let r = server
        .register(&cc_with(json!({"grant_types": []})), None)
        .await;
    assert_refused(&dir, &r, 400, "invalid_client_metadata", "grant_types: []").await;
}

#[tokio::test]
async fn unknown_grant_types_and_unknown_fields_are_dropped_and_the_response_echoes_what_was_stored()
 {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let r = server
        .register(
            &json!({
                "client_name": "agent",
                "grant_types": [
                    "client_credentials",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "refresh_token"
                ],
                "scope": "tools:read",
                "x_vendor_field": "dropped",
                "nested_unknown": {"a": [1, 2, 3]},
                "jwks_uri": "https://agent.example/jwks.json"
            }),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["client_id"].as_str().unwrap();
    assert_eq!(
        r.json["grant_types"],
        json!(["client_credentials"]),
        "unknown grants, and refresh_token beside a grant that issues none, are dropped"
    );
    assert_eq!(r.json["scope"], "tools:read");
    for field in ["x_vendor_field", "nested_unknown", "jwks_uri"] {
        assert!(r.json.get(field).is_none(), "{field} echoed: {}", r.text);
    }

    // Stored: exactly what was echoed.
    let (metadata, _) = stored(&dir, id).await;
    let text = metadata.to_string();
    for dropped in [
        "x_vendor_field",
        "nested_unknown",
        "jwt-bearer",
        "jwks_uri",
        "refresh_token",
    ] {
        assert!(!text.contains(dropped), "{dropped} was stored: {text}");
    }
    assert_eq!(metadata["grant_types"], json!(["client_credentials"]));

    // The admin view of the stored client equals the 201 echo, minus the
    // secret (shown once) and the RFC 7592 management members (the token is
    // shown once too), and plus the admin-only fields.
    let (ok, mut shown, err) = cli(&dir, &["client", "show", id]);
    assert!(ok, "{err}");
    let mut echoed = r.json.clone();
    let echoed_map = echoed.as_object_mut().unwrap();
    echoed_map.remove("client_secret");
    echoed_map.remove("client_secret_expires_at");
    echoed_map.remove("registration_access_token");
    echoed_map.remove("registration_client_uri");
    let shown_map = shown.as_object_mut().unwrap();
    shown_map.remove("origin");
    shown_map.remove("secrets");
    assert_eq!(echoed, shown, "the response echoes what was stored");

    // Nothing supported among the requested grants: nothing to register.
    let before = client_count(&dir).await;
    let r = server
        .register(
            &cc_with(json!({"grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"]})),
            None,
        )
        .await;
    r.assert_error(400, "invalid_client_metadata");
    assert_eq!(client_count(&dir).await, before);
}

#[tokio::test]
async fn each_unsafe_redirect_uri_is_invalid_redirect_uri_and_stores_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let long = format!("https://app.example/{}", "a".repeat(2100));
    let bad = [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:msgbox(1)",
        "about:blank",
        "blob:https://app.example/0b6e1f4c",
        "https://app.example/cb#fragment",
        "https://app.example/cb#",
        "https://user:pass@app.example/cb",
        "https://user@app.example/cb",
        "https://*.example.com/cb",
        "https://app.example/*",
        "http://app.example.com/cb",
        "http://10.0.0.1/cb",
        "/relative/cb",
        "not a uri",
        long.as_str(),
    ];
    for uri in bad {
        let r = server
            .register(&cc_with(json!({"redirect_uris": [uri]})), None)
            .await;
        assert_refused(&dir, &r, 400, "invalid_redirect_uri", uri).await;
        // One bad URI among good ones spoils the request too.
        let r = server
            .register(
                &cc_with(json!({"redirect_uris": ["https://app.example/cb", uri]})),
                None,
            )
            .await;
        assert_refused(&dir, &r, 400, "invalid_redirect_uri", uri).await;
    }

    // Safe ones are kept and echoed.
    let good = json!([
        "https://app.example/cb",
        "http://127.0.0.1:8765/cb",
        "http://localhost/cb",
        "http://[::1]:9000/cb"
    ]);
    let r = server
        .register(&cc_with(json!({"redirect_uris": good})), None)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["redirect_uris"], good);
    assert_eq!(client_count(&dir).await, 1);
}

#[tokio::test]

async fn a_redirect_uri_that_is_not_a_valid_absolute_uri_is_invalid_redirect_uri() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    // The WHATWG URL parser repairs all of these, but the string stored (and
    // later compared exactly) is the raw one, which is not a URI at all
    // (RFC 6749 §3.1.2: an absolute URI per RFC 3986 §4.3).
    for uri in [
        " https://app.example/cb",
        "https://app.example/cb ",
        "https://app.example/c b",
        "https://app.example/cb\u{0}",
        "https://app.example/cb\n",
        "https://@app.example/cb",
    ] {
        let r = server
            .register(&cc_with(json!({"redirect_uris": [uri]})), None)
            .await;
        assert_refused(&dir, &r, 400, "invalid_redirect_uri", &format!("{uri:?}")).await;
    }
}

#[tokio::test]
async fn registration_off_refuses_confidential_clients_saying_so_and_hides_the_endpoint() {
    let dir = DataDir::new();
    // "off" is the default: no [registration] confidential key at all;
    // public registration (on by default) is switched off too, so nothing
    // may register.
    let server = server_with(&dir, "public = false");
    for body in [
        cc(),
        cc_with(json!({"token_endpoint_auth_method": "client_secret_post"})),
    ] {
        let r = server.register(&body, None).await;
        assert_refused(&dir, &r, 400, "invalid_client_metadata", "registration off").await;
        assert!(
            r.json["error_description"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("disabled"),
            "the description says registration is disabled: {}",
            r.text
        );
        // An initial access token changes nothing while registration is off.
        let r = server.register(&body, Some(INITIAL_TOKEN)).await;
        assert_refused(
            &dir,
            &r,
            400,
            "invalid_client_metadata",
            "registration off + bearer",
        )
        .await;
    }
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m = server.get_json(path).await;
        assert_eq!(m.status, 200, "{}", m.text);
        assert!(
            m.json.get("registration_endpoint").is_none(),
            "{path} advertises registration while it is off: {}",
            m.text
        );
    }
}

#[tokio::test]
async fn initial_token_mode_requires_a_valid_bearer_token() {
    let dir = DataDir::new();
    let server = server_with(
        &dir,
        &format!(
            "confidential = \"initial-token\"\ninitial_access_tokens = [\"{INITIAL_TOKEN}\", \"{INITIAL_TOKEN_2}\"]"
        ),
    );

    let r = server.register(&cc(), None).await;
    assert_refused(&dir, &r, 401, "invalid_token", "no bearer").await;
    // RFC 6750 §3.1: a request without credentials gets a challenge that
    // names no error.
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"gatehouse\""),
        "a 401 carries a Bearer challenge"
    );
    let prefix = &INITIAL_TOKEN[..INITIAL_TOKEN.len() - 1];
    let longer = format!("{INITIAL_TOKEN}x");
    for wrong in ["wrong-token-0123456789", prefix, longer.as_str(), ""] {
        let r = server.register(&cc(), Some(wrong)).await;
        assert_refused(&dir, &r, 401, "invalid_token", wrong).await;
        let challenge = if wrong.is_empty() {
            "Bearer realm=\"gatehouse\""
        } else {
            "Bearer error=\"invalid_token\""
        };
        assert_eq!(r.header("www-authenticate"), Some(challenge), "{wrong:?}");
    }
    // The right token under another scheme is not a bearer token.
    let r = Response::from(
        server
            .http
            .post(server.url("/oauth/register"))
            .header("authorization", format!("Basic {INITIAL_TOKEN}"))
            .json(&cc())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_refused(&dir, &r, 401, "invalid_token", "Basic scheme").await;

    let r = server.register(&cc(), Some(INITIAL_TOKEN)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json["client_secret"].is_string());
    let r = server.register(&cc(), Some(INITIAL_TOKEN_2)).await;
    assert_eq!(
        r.status, 201,
        "every configured token is accepted: {}",
        r.text
    );
    assert_eq!(client_count(&dir).await, 2);
    assert!(
        !server.logs().contains(INITIAL_TOKEN),
        "the initial access token reached the logs"
    );

    let m = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        m.json["registration_endpoint"],
        format!("{}/oauth/register", server.base),
        "{}",
        m.text
    );
}

#[tokio::test]
async fn open_mode_lets_anyone_register_and_advertises_the_endpoint() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let r = server.register(&cc(), None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // A bearer token, even a meaningless one, is not required and not checked.
    let r = server.register(&cc(), Some("anything-at-all")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let m = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        m.json["registration_endpoint"],
        format!("{}/oauth/register", server.base),
        "{}",
        m.text
    );
}

#[tokio::test]
async fn malformed_json_is_invalid_request_and_stores_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    for body in [
        "",
        "{",
        "{\"grant_types\": [\"client_credentials\"]",
        "{\"grant_types\": [\"client_credentials\"],}",
        "{'grant_types': ['client_credentials']}",
        "{\"grant_types\": [\"client_credentials\"]} trailing",
    ] {
        let r = post_raw(&server, Some("application/json"), body.as_bytes().to_vec()).await;
        assert_refused(&dir, &r, 400, "invalid_request", body).await;
    }
    // Deep nesting is refused, not a crash.
    let deep = format!(
        "{{\"x\": {}{}, \"grant_types\": [\"client_credentials\"]}}",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let r = post_raw(&server, Some("application/json"), deep.into_bytes()).await;
    assert_refused(&dir, &r, 400, "invalid_request", "deeply nested").await;
    assert_eq!(server.get_json("/healthz").await.status, 200);
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_invalid_client_metadata() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    for body in [
        "[]",
        "[{\"grant_types\": [\"client_credentials\"]}]",
        "\"client_credentials\"",
        "42",
        "null",
    ] {
        let r = post_raw(&server, Some("application/json"), body.as_bytes().to_vec()).await;
        assert_refused(&dir, &r, 400, "invalid_client_metadata", body).await;
    }
}

#[tokio::test]
async fn non_utf8_bytes_are_invalid_request_and_store_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let mut inside_string = b"{\"client_name\": \"".to_vec();
    inside_string.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    inside_string.extend_from_slice(b"\", \"grant_types\": [\"client_credentials\"]}");
    let latin1 =
        b"{\"client_name\": \"caf\xe9\", \"grant_types\": [\"client_credentials\"]}".to_vec();
    let binary = vec![0xff, 0xfe, 0x00, 0x7b, 0x80, 0x81];
    for (what, body) in [
        ("inside a string", inside_string),
        ("latin-1", latin1),
        ("binary", binary),
    ] {
        let r = post_raw(&server, Some("application/json"), body).await;
        assert_refused(&dir, &r, 400, "invalid_request", what).await;
    }
}

#[tokio::test]
async fn a_wrong_content_type_is_invalid_request_and_stores_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let body = serde_json::to_vec(&cc()).unwrap();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonp"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let r = post_raw(&server, ct, body.clone()).await;
        assert_refused(&dir, &r, 400, "invalid_request", &format!("{ct:?}")).await;
    }
    // Parameters and case do not matter.
    for ct in ["application/json; charset=utf-8", "Application/JSON"] {
        let r = post_raw(&server, Some(ct), body.clone()).await;
        assert_eq!(r.status, 201, "{ct}: {}", r.text);
    }
}

/// Sends a chunked request (no Content-Length) of `total` body bytes and
/// returns the status code of the answer.
fn chunked_register(addr: String, total: usize) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /oauth/register HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        addr
    );
    let _ = stream.write_all(head.as_bytes());
    let mut body = b"{\"grant_types\": [\"client_credentials\"], \"pad\": \"".to_vec();
    body.resize(total - 2, b'a');
    body.extend_from_slice(b"\"}");
    for chunk in body.chunks(8192) {
        if stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .and_then(|_| stream.write_all(chunk))
            .and_then(|_| stream.write_all(b"\r\n"))
            .is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
}

#[tokio::test]
async fn a_body_over_64_kib_is_413_and_stores_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let body_of = |total: usize| {
        let mut body = b"{\"grant_types\": [\"client_credentials\"], \"pad\": \"".to_vec();
        body.resize(total - 2, b'a');
        body.extend_from_slice(b"\"}");
        assert_eq!(body.len(), total);
        body
    };

    let r = post_oversized(&server, body_of(64 * 1024 + 1)).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(
        r.json["error"], "invalid_request",
        "413 still has a JSON error: {}",
        r.text
    );
    let r = post_oversized(&server, body_of(1024 * 1024)).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(client_count(&dir).await, 0);

    // Without a Content-Length the limit holds as well.
    // (Retried only when the connection was reset before an answer was read.)
    let mut status = None;
    for _ in 0..10 {
        let addr = server.addr.clone();
        status = tokio::task::spawn_blocking(move || chunked_register(addr, 80 * 1024))
            .await
            .unwrap();
        if status.is_some() {
            break;
        }
    }
    assert_eq!(status, Some(413));
    assert_eq!(client_count(&dir).await, 0);

    // The limit is inclusive: exactly 64 KiB is accepted (unknown field dropped).
    let r = post_raw(&server, Some("application/json"), body_of(64 * 1024)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json.get("pad").is_none());
    assert_eq!(client_count(&dir).await, 1);
}

#[tokio::test]
async fn a_client_name_over_256_bytes_is_invalid_client_metadata() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    // 129 two-byte characters: 258 bytes but only 129 characters.
    for name in ["é".repeat(129), "a".repeat(257), "x".repeat(10_000)] {
        let r = server
            .register(&cc_with(json!({"client_name": name})), None)
            .await;
        assert_refused(
            &dir,
            &r,
            400,
            "invalid_client_metadata",
            &format!("{} bytes", name.len()),
        )
        .await;
    }
    // Exactly 256 bytes is fine.
    let name = "é".repeat(128);
    let r = server
        .register(&cc_with(json!({"client_name": name})), None)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["client_name"], name.as_str());
}

#[tokio::test]
async fn eleven_redirect_uris_are_refused_and_store_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let uris: Vec<String> = (0..11)
        .map(|i| format!("https://app.example/cb{i}"))
        .collect();
    let r = server
        .register(&cc_with(json!({"redirect_uris": uris})), None)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json["error"] == "invalid_redirect_uri" || r.json["error"] == "invalid_client_metadata",
        "{}",
        r.text
    );
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("redirect_uris"),
        "the description names the field: {}",
        r.text
    );
    assert_eq!(client_count(&dir).await, 0);

    // Ten is the limit, not an error.
    let r = server
        .register(&cc_with(json!({"redirect_uris": uris[..10]})), None)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["redirect_uris"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn a_scope_not_in_scopes_supported_is_invalid_client_metadata() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let long = "s".repeat(300);
    for scope in [
        "admin",
        "tools:read admin",
        "tools:read\u{7f}",
        "a\"b",
        long.as_str(),
    ] {
        let r = server
            .register(&cc_with(json!({"scope": scope})), None)
            .await;
        assert_refused(&dir, &r, 400, "invalid_client_metadata", scope).await;
    }
    // Supported scopes are registered, and bound the client's tokens.
    let r = server
        .register(&cc_with(json!({"scope": "tools:read"})), None)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["scope"], "tools:read");
    let (id, secret) = (
        r.json["client_id"].as_str().unwrap(),
        r.json["client_secret"].as_str().unwrap(),
    );
    let t = server
        .token(Some((id, secret)), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.json["scope"], "tools:read");
    let t = server
        .token(
            Some((id, secret)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "tools:call"),
            ],
        )
        .await;
    t.assert_error(400, "invalid_scope");
}

#[tokio::test]
async fn a_wrong_typed_field_is_invalid_client_metadata_and_stores_nothing() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    for extra in [
        json!({"client_name": 5}),
        json!({"client_name": ["ci"]}),
        json!({"grant_types": "client_credentials"}),
        json!({"grant_types": [1]}),
        json!({"scope": ["tools:read"]}),
        json!({"token_endpoint_auth_method": 1}),
        json!({"response_types": "code"}),
    ] {
        let r = server.register(&cc_with(extra.clone()), None).await;
        assert_refused(&dir, &r, 400, "invalid_client_metadata", &extra.to_string()).await;
    }
    // A wrong-typed redirect_uris is a redirect URI error or a metadata error.
    let r = server
        .register(
            &cc_with(json!({"redirect_uris": "https://app.example/cb"})),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json["error"] == "invalid_redirect_uri" || r.json["error"] == "invalid_client_metadata",
        "{}",
        r.text
    );
    assert_eq!(client_count(&dir).await, 0);
}

#[tokio::test]
async fn an_unsupported_token_endpoint_auth_method_is_invalid_client_metadata() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    for method in ["magic_auth", "CLIENT_SECRET_BASIC", ""] {
        let r = server
            .register(
                &cc_with(json!({"token_endpoint_auth_method": method})),
                None,
            )
            .await;
        assert_refused(&dir, &r, 400, "invalid_client_metadata", method).await;
    }
}

#[tokio::test]
async fn registration_is_rate_limited_per_source_address() {
    let dir = DataDir::new();
    let cfg = dir.path().join("limited.toml");
    std::fs::write(
        &cfg,
        format!(
            "allowed_audiences = [\"{AUD}\"]\n[registration]\nconfidential = \"open\"\nper_address_per_minute = 2\n"
        ),
    )
    .unwrap();
    let server = Server::start(&dir, &["--config", cfg.to_str().unwrap()], &[]);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(server.register(&cc(), None).await);
    }
    assert_eq!(statuses[0].status, 201, "{}", statuses[0].text);
    let limited = statuses.last().unwrap();
    limited.assert_error(429, "slow_down");
    assert!(
        limited.header("retry-after").is_some(),
        "429 carries Retry-After"
    );
    let created = statuses.iter().filter(|r| r.status == 201).count() as i64;
    assert!(
        created <= 2,
        "{created} registrations passed a limit of 2 per minute"
    );
    assert_eq!(client_count(&dir).await, created);
}

#[tokio::test]
async fn registration_stops_at_max_clients() {
    let dir = DataDir::new();
    let cfg = dir.path().join("capped.toml");
    std::fs::write(
        &cfg,
        format!(
            "allowed_audiences = [\"{AUD}\"]\n[registration]\nconfidential = \"open\"\nmax_clients = 1\n"
        ),
    )
    .unwrap();
    let server = Server::start(&dir, &["--config", cfg.to_str().unwrap()], &[]);
    let r = server.register(&cc(), None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = server.register(&cc(), None).await;
    r.assert_error(503, "temporarily_unavailable");
    assert_eq!(client_count(&dir).await, 1);
    // Operator-created clients do not count against the cap.
    create_client(&dir, &[]);
    assert_eq!(client_count(&dir).await, 2);
}

#[tokio::test]
async fn get_on_the_registration_endpoint_is_405() {
    let dir = DataDir::new();
    let server = open_server(&dir);
    let r = Response::from(
        server
            .http
            .get(server.url("/oauth/register"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert_eq!(r.header("allow"), Some("POST"));
}
