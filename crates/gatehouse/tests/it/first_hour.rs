//! What a new user meets in the first hour, against the real binary: admin
//! commands that never create a store by accident, the log lines an operator
//! looks for, resource servers that only introspect, the emergency key
//! commands, `config show`/`config check`, and the responses whose RFCs
//! real clients read literally.

use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::process::Command;

/// Runs `gatehouse ARGS` (without a data directory) and its outcome.
fn bare(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("run gatehouse");
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The environment that points a command at `schema`, with a shared
/// key-encryption key.
fn pg_env<'a>(schema: &'a pg::PgSchema, kek: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("GATEHOUSE_STORE", schema.url.as_str()),
        ("GATEHOUSE_STORE__SCHEMA", schema.name.as_str()),
        ("GATEHOUSE_KEY_ENCRYPTION_KEY", kek),
    ]
}

fn write(dir: &DataDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

// ------------------------------------------------------------ admin stores

#[test]
fn admin_commands_refuse_to_create_a_store_and_say_which_they_used() {
    let dir = DataDir::new();
    for args in [
        &["client", "list"][..],
        &[
            "client",
            "create",
            "--name",
            "x",
            "--grant",
            "client_credentials",
        ],
        &["user", "list"],
        &["key", "list"],
    ] {
        let (ok, out, err) = cli_typed(&dir, args, &[]);
        assert!(!ok, "{args:?} succeeded on no store: {out}");
        assert!(err.contains("no store at"), "{args:?}: {err}");
        assert!(err.contains("--init"), "{args:?} names the way out: {err}");
        // Nothing was made: no database, no key-encryption key.
        let made: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(made.is_empty(), "{args:?} left {made:?}");
    }
    // With --init the store is made, and every command says where it is.
    let (ok, out, err) = cli_typed(
        &dir,
        &[
            "client",
            "create",
            "--name",
            "x",
            "--grant",
            "client_credentials",
            "--init",
        ],
        &[],
    );
    assert!(ok, "{err}");
    let id = out["client_id"].as_str().unwrap().to_string();
    let db = dir.path().join("gatehouse.db");
    assert!(
        err.contains(&format!("using store sqlite:{}", db.display())),
        "{err}"
    );
    assert!(
        err.contains("key_encryption_key_file"),
        "warned once: {err}"
    );
    let (ok, out, err) = cli_typed(&dir, &["client", "list"], &[]);
    assert!(ok, "{err}");
    assert_eq!(out[0]["client_id"], id.as_str());
    assert!(err.contains("using store sqlite:"), "{err}");
    assert!(
        !err.contains("key_encryption_key_file"),
        "the key-encryption-key warning is said once per data directory: {err}"
    );
}

#[tokio::test]
async fn an_admin_command_never_migrates_a_postgresql_schema_by_itself() {
    let schema = pg::PgSchema::create("first_hour_admin_pg").await;
    let dir = DataDir::new();
    let kek = pg::new_kek();
    let env = pg_env(&schema, &kek);
    let args = [
        "client",
        "create",
        "--name",
        "x",
        "--grant",
        "client_credentials",
    ];
    let (ok, out, err) = cli_typed(&dir, &args, &env);
    assert!(!ok, "{out}");
    assert!(err.contains("not initialised"), "{err}");
    assert!(err.contains("gatehouse migrate"), "{err}");
    let tables = schema
        .strings(&format!(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = '{}'",
            schema.name
        ))
        .await;
    assert!(tables.is_empty(), "the schema was touched: {tables:?}");
    // `migrate` is the explicit way; then the same command works.
    let (ok, _, err) = cli_typed(&dir, &["migrate"], &env);
    assert!(ok, "{err}");
    let (ok, out, err) = cli_typed(&dir, &args, &env);
    assert!(ok, "{err}");
    assert!(out["client_id"].is_string(), "{out}");
    assert!(err.contains("using store postgres://"), "{err}");
    assert!(err.contains(&schema.name), "{err}");
}

// ------------------------------------------------------------------- logs

#[tokio::test]
async fn failed_secrets_and_issued_tokens_are_logged_without_the_secret_or_token() {
    install_crypto();
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &["--scope", "tools:read"]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let wrong = format!("{secret}x");
    let r = server
        .token(Some((&id, &wrong)), &[("grant_type", "client_credentials")])
        .await;
    r.assert_error(401, "invalid_client");
    let r = server
        .token(
            Some(("c_nobody\nforged", "s")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    r.assert_error(401, "invalid_client");
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json["access_token"].as_str().unwrap().to_string();
    // The server's stderr is read by another thread: let it catch up.
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            server.logs().contains("token issued")
        })
        .await,
        "no issuance logged: {}",
        server.logs()
    );
    let logs = server.logs();
    let failed: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("client authentication failed"))
        .collect();
    assert_eq!(failed.len(), 2, "{logs}");
    assert!(failed[0].contains(&id) && failed[0].contains("wrong or expired secret"));
    assert!(failed[0].contains("client_secret_basic"), "{}", failed[0]);
    // A client id from the request is quoted: no forged log line.
    assert!(failed[1].contains("unknown client"), "{}", failed[1]);
    assert!(failed[1].contains(r#""c_nobody\nforged""#), "{}", failed[1]);
    assert!(!logs.lines().any(|l| l.starts_with("forged")), "{logs}");
    let issued = logs
        .lines()
        .find(|l| l.contains("token issued"))
        .unwrap_or_else(|| panic!("no issuance logged: {logs}"));
    assert!(issued.contains(&id), "{issued}");
    assert!(issued.contains("client_credentials"), "{issued}");
    assert!(issued.contains(AUD), "{issued}");
    assert!(issued.contains("tools:read"), "{issued}");
    // The start says who may register (open public registration is a default).
    let modes = logs
        .lines()
        .find(|l| l.contains("dynamic client registration"))
        .unwrap_or_else(|| panic!("registration modes not logged: {logs}"));
    assert!(
        modes.contains("public_clients=\"open to anyone\""),
        "{modes}"
    );
    assert!(modes.contains("confidential_clients=\"off\""), "{modes}");
    assert!(!logs.contains(&secret), "a secret in the logs");
    assert!(!logs.contains(&wrong), "a presented secret in the logs");
    assert!(!logs.contains(&token), "a token in the logs");
}

// ------------------------------------------------------- resource servers

#[tokio::test]
async fn a_resource_server_introspects_its_audience_and_mints_nothing() {
    install_crypto();
    let dir = DataDir::new();
    let (app, app_secret) = create_client(&dir, &[]);
    // The README's form: no --grant, no --name.
    let (ok, rs, err) = cli(&dir, &["client", "create", "--resource-server", AUD]);
    assert!(ok, "{err}");
    let rs = (
        rs["client_id"].as_str().unwrap().to_string(),
        rs["client_secret"].as_str().unwrap().to_string(),
    );
    let (_, shown, _) = cli(&dir, &["client", "show", &rs.0]);
    assert_eq!(shown["grant_types"], json!([]), "{shown}");
    assert_eq!(shown["resource_servers"], json!([AUD]), "{shown}");
    // Only --audience: restricted in what it obtains, no right to see others'.
    let audience_only = create_client(&dir, &["--audience", AUD]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let t = server
        .token(
            Some((&app, &app_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let token = t.json["access_token"].as_str().unwrap();
    assert!(introspected_active(&server, &rs, token).await);
    assert!(!introspected_active(&server, &audience_only, token).await);
    let r = server
        .token(
            Some((&rs.0, &rs.1)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    r.assert_error(400, "unauthorized_client");
}

#[test]
fn client_create_says_what_it_chose_and_warns_about_unknown_audiences() {
    let dir = DataDir::new();
    let cfg = write(
        &dir,
        "g.toml",
        &format!("allowed_audiences = [\"{AUD}\"]\n"),
    );
    let (ok, out, err) = cli(
        &dir,
        &[
            "client",
            "create",
            "--config",
            &cfg,
            "--name",
            "desk",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "http://127.0.0.1:7000/cb",
            "--audience",
            "https://elsewhere.example.com/mcp",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out["token_endpoint_auth_method"], "none", "{out}");
    assert!(out.get("client_secret").is_none(), "{out}");
    assert!(err.contains("a public client"), "{err}");
    assert!(
        err.contains("https://elsewhere.example.com/mcp is not among the allowed audiences")
            && err.contains(AUD),
        "{err}"
    );
    // The help says what the default is.
    let out = Command::new(bin())
        .args(["client", "create", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Default: client_secret_basic; none"),
        "{help}"
    );
}

// -------------------------------------------------------------------- keys

async fn token(server: &Server, c: &(String, String)) -> String {
    let r = server
        .token(Some((&c.0, &c.1)), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_emergency_rotation_signs_at_once_and_a_retired_key_stops_verifying() {
    install_crypto();
    let dir = DataDir::new();
    // One algorithm (no people, no RS256 ID-token key), a long
    // pre-publication that --now must skip.
    let cfg = write(
        &dir,
        "gatehouse.toml",
        "[keys]\npre_publication = \"1h\"\n[people]\nenabled = false\n",
    );
    let app = create_client(&dir, &[]);
    let rs = create_client(&dir, &["--resource-server", AUD]);
    let server = Server::start(&dir, &["--config", &cfg, "--audience", AUD], &[]);
    let before = token(&server, &app).await;
    let old = token_kid(&before);
    let key = |args: &[&str]| {
        let mut full = vec!["key"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--config", &cfg]);
        cli(&dir, &full)
    };

    let (ok, rotated, err) = key(&["rotate", "--now"]);
    assert!(ok, "{err}");
    let new = rotated["kid"].as_str().unwrap().to_string();
    assert_eq!(rotated["state"], "current", "{rotated}");
    assert_eq!(rotated["replaces"]["kid"], old.as_str());
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            token_kid(&token(&server, &app).await) == new
        })
        .await,
        "tokens are not signed by the new key: {}",
        server.logs()
    );

    // The current key cannot be retired: nothing would sign.
    let (_, listed, _) = key(&["list"]);
    let (ok, out, err) = key(&["retire", &new]);
    assert!(!ok, "{out}");
    assert!(err.contains("is the current ES256 key"), "{err}");
    assert!(err.contains("rotate --now"), "{err}");
    assert_eq!(key(&["list"]).1, listed, "nothing changed");
    let (ok, _, err) = key(&["retire", "no-such-kid"]);
    assert!(!ok && err.contains("no signing key"), "{err}");
    assert_eq!(key(&["list"]).1, listed, "nothing changed");

    // The leaked key goes: out of the JWKS, and its tokens stop verifying.
    assert!(introspected_active(&server, &rs, &before).await);
    let (ok, retired, err) = key(&["retire", &old]);
    assert!(ok, "{err}");
    assert_eq!(
        retired,
        json!({"retired": old, "alg": "ES256", "was": "previous"})
    );
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            !jwks_kids(&server).await.contains(&old)
        })
        .await,
        "the retired key is still published: {}",
        server.logs()
    );
    assert!(!introspected_active(&server, &rs, &before).await);
    assert!(introspected_active(&server, &rs, &token(&server, &app).await).await);

    // People read times as RFC 3339.
    let (ok, _, err) = key(&["list", "--format", "text"]);
    assert!(ok, "{err}");
    let out = Command::new(bin())
        .args([
            "key",
            "list",
            "--format",
            "text",
            "--config",
            &cfg,
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rfc3339 = |line: &str| {
        let v = line.split_once(": ").map(|(_, v)| v).unwrap_or_default();
        v.len() == 20 && v.as_bytes()[10] == b'T' && v.ends_with('Z')
    };
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("created_at"))
            .all(rfc3339),
        "{text}"
    );
    assert!(text.contains("activate_at: "), "{text}");
}

// ------------------------------------------------------------------ config

#[test]
fn config_show_prints_what_serve_would_use_and_fails_where_serve_would() {
    let dir = DataDir::new();
    let good = write(&dir, "good.toml", "[people]\nsession_lifetime = \"90d\"\n");
    let (ok, shown, err) = cli_typed(&dir, &["config", "show", "--config", &good], &[]);
    assert!(ok, "{err}");
    assert_eq!(shown["people"]["session_lifetime"], "90d", "{shown}");
    assert_eq!(shown["access_token_ttl"], "15m", "{shown}");
    assert_eq!(
        shown["issuer"], "http://127.0.0.1:8080",
        "the effective issuer"
    );
    assert!(!err.contains("would refuse"), "{err}");
    let (ok, _, err) = cli_typed(&dir, &["config", "check", "--config", &good], &[]);
    assert!(ok, "{err}");
    assert!(err.contains("the configuration is valid"), "{err}");

    let bad = write(&dir, "bad.toml", "access_token_ttl = \"2 days\"\n");
    let (ok, shown, err) = cli_typed(&dir, &["config", "show", "--config", &bad], &[]);
    assert!(ok, "show shows: {err}");
    assert_eq!(shown["access_token_ttl"], "2d", "{shown}");
    assert!(
        err.contains("serve would refuse this configuration") && err.contains("access_token_ttl"),
        "an invalid configuration is not shown as fine: {err}"
    );
    let (ok, _, check) = cli_typed(&dir, &["config", "check", "--config", &bad], &[]);
    assert!(!ok);
    assert!(check.contains("access_token_ttl"), "{check}");
    // Exactly what serve says.
    let served = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            &bad,
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!served.status.success());
    let served = String::from_utf8_lossy(&served.stderr);
    let line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("error:"))
            .map(str::to_string)
    };
    assert_eq!(line(&check), line(&served), "{check}\n---\n{served}");
}

// ------------------------------------------------------------- conformance

fn code_client(extra: Value) -> Value {
    let mut body = json!({
        "redirect_uris": ["http://127.0.0.1:7000/cb"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "desk"
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn every_advertised_scope_registers_and_response_types_default_to_code() {
    let dir = DataDir::new();
    let cfg = write(
        &dir,
        "g.toml",
        &format!("allowed_audiences = [\"{AUD}\"]\nscopes_supported = [\"mcp\"]\n"),
    );
    let server = Server::start(&dir, &["--config", &cfg], &[]);
    let m = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    // OIDC Discovery §3: the OIDC scopes are listed whenever people can
    // sign in; RFC 8414 §2: each one is registrable.
    assert_eq!(
        m.json["scopes_supported"],
        json!(["mcp", "openid", "profile"])
    );
    assert_eq!(m.json["request_uri_parameter_supported"], false);
    for scope in ["mcp openid", "mcp openid profile", "profile"] {
        let r = server
            .register(&code_client(json!({"scope": scope})), None)
            .await;
        assert_eq!(r.status, 201, "{scope}: {}", r.text);
        assert_eq!(r.json["scope"], scope);
        // RFC 7591 §2: `code` by default, and shown.
        assert_eq!(r.json["response_types"], json!(["code"]), "{}", r.text);
    }
    let count = client_count(&dir).await;
    for (body, what) in [
        (
            code_client(json!({"scope": "mcp admin"})),
            "a scope not offered",
        ),
        (
            code_client(json!({"response_types": ["token"]})),
            "the implicit grant",
        ),
        (
            code_client(json!({"response_types": ["id_token", "token"]})),
            "implicit OpenID Connect",
        ),
    ] {
        let r = server.register(&body, None).await;
        r.assert_error(400, "invalid_client_metadata");
        assert!(
            r.json["error_description"]
                .as_str()
                .unwrap()
                .contains("not supported"),
            "{what}: {}",
            r.text
        );
    }
    assert_eq!(client_count(&dir).await, count, "nothing stored");
    // Beside `code`, what is not supported is dropped, as the answer shows.
    for sent in [json!(["code"]), json!(["code", "id_token"])] {
        let r = server
            .register(&code_client(json!({"response_types": sent})), None)
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.json["response_types"], json!(["code"]));
    }

    // Machines get no OIDC scope.
    let (id, secret) = create_client(&dir, &["--scope", "mcp openid"]);
    let t = server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "mcp openid"),
            ],
        )
        .await;
    t.assert_error(400, "invalid_scope");
    let t = eventually_token(&server, &id, &secret).await;
    assert_eq!(
        t.json["scope"], "mcp",
        "registered openid is left out: {}",
        t.text
    );
}

async fn eventually_token(server: &Server, id: &str, secret: &str) -> Response {
    let mut last = None;
    for _ in 0..50 {
        let t = server
            .token(Some((id, secret)), &[("grant_type", "client_credentials")])
            .await;
        if t.status == 200 {
            return t;
        }
        last = Some(t.text);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no token: {last:?}")
}

#[tokio::test]
async fn a_zero_configuration_server_lists_the_scopes_sign_in_accepts() {
    let dir = DataDir::new();
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let m = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        m.json["scopes_supported"],
        json!(["openid", "profile"]),
        "{}",
        m.text
    );
    // Without a configured list any well-formed scope registers.
    let r = server
        .register(&code_client(json!({"scope": "mcp openid"})), None)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // RFC 6750 §3.1: no credentials, no error code in the challenge.
    let r = Response::from(
        server
            .http
            .get(server.url("/oauth/userinfo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"gatehouse\"")
    );
    let r = Response::from(
        server
            .http
            .get(server.url("/oauth/userinfo"))
            .bearer_auth("junk")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
}

#[tokio::test]
async fn without_people_there_is_no_openid_connect_and_no_public_clients() {
    let dir = DataDir::new();
    let cfg = write(&dir, "g.toml", "[people]\nenabled = false\n");
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--config", &cfg, "--audience", AUD], &[]);
    for path in ["/.well-known/openid-configuration", "/oauth/userinfo"] {
        let r = server.get_json(path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
    }
    let m = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(m.status, 200);
    let methods = m.json["token_endpoint_auth_methods_supported"].to_string();
    assert!(!methods.contains("\"none\""), "{methods}");
    assert!(m.json.get("scopes_supported").is_none(), "{}", m.text);
    assert!(
        m.json.get("request_uri_parameter_supported").is_none(),
        "{}",
        m.text
    );
    // Revocation: an empty 200 declares no media type.
    let t = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let token = t.json["access_token"].as_str().unwrap();
    let r = Response::from(
        server
            .http
            .post(server.url("/oauth/revoke"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, "");
    assert_eq!(r.header("content-type"), None);
}

// ------------------------------------------------------- private_key_jwt

#[tokio::test]
async fn keygen_and_assertion_are_the_whole_private_key_jwt_recipe() {
    install_crypto();
    let dir = DataDir::new();
    let key = dir.path().join("ci.key");
    let jwks = dir.path().join("ci.jwks.json");
    let (key_s, jwks_s) = (key.display().to_string(), jwks.display().to_string());
    let (ok, made, err) = bare(&["client", "keygen", "--key", &key_s, "--jwks", &jwks_s]);
    assert!(ok, "{err}");
    assert_eq!(made["alg"], "ES256");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is the owner's only");
    }
    let public: Value = serde_json::from_str(&std::fs::read_to_string(&jwks).unwrap()).unwrap();
    assert_eq!(public["keys"][0]["kid"], made["kid"]);
    assert!(
        public["keys"][0].get("d").is_none(),
        "no private part: {public}"
    );
    // Never overwritten, and nothing written on refusal.
    let before = std::fs::read(&key).unwrap();
    let other = dir.path().join("other.json").display().to_string();
    let (ok, _, err) = bare(&["client", "keygen", "--key", &key_s, "--jwks", &other]);
    assert!(!ok && err.contains("exists"), "{err}");
    assert_eq!(std::fs::read(&key).unwrap(), before);
    assert!(!dir.path().join("other.json").exists());

    let (ok, client, err) = cli(
        &dir,
        &[
            "client",
            "create",
            "--name",
            "ci",
            "--grant",
            "client_credentials",
            "--auth-method",
            "private_key_jwt",
            "--jwks",
            &jwks_s,
        ],
    );
    assert!(ok, "{err}");
    let id = client["client_id"].as_str().unwrap().to_string();
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let sign = |audience: &str| {
        let out = Command::new(bin())
            .args(["client", "assertion", "--key", &key_s, "--client-id", &id])
            .args(["--audience", audience])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let assertion = sign(&server.url("/oauth/token"));
    let form = [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
    ];
    let r = server.token(None, &form).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Each assertion once.
    server
        .token(None, &form)
        .await
        .assert_error(401, "invalid_client");
    // The wrong algorithm for the key is refused before anything is signed.
    let out = Command::new(bin())
        .args(["client", "assertion", "--alg", "RS256", "--key", &key_s])
        .args(["--client-id", &id, "--audience", &server.base])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a RS256 private key"));
}

// ----------------------------------------------------------------- upgrade

const RESOURCE_SERVERS_MIGRATION: &str = "20261207000009";

/// What the resource-server migration does to clients made before it: an
/// operator's confidential client with audiences keeps introspecting them,
/// nothing else changes. `env` names the store (none: SQLite in `dir`).
async fn resource_servers_migrate(dir: &DataDir, env: &[(&str, &str)], forget: impl AsyncFnOnce()) {
    let made = |args: &[&str]| {
        let mut full = vec!["client", "create", "--name", "x", "--init"];
        full.extend_from_slice(args);
        let (ok, out, err) = cli_typed(dir, &full, env);
        assert!(ok, "{err}");
        out["client_id"].as_str().unwrap().to_string()
    };
    let rs = made(&["--grant", "client_credentials", "--audience", AUD]);
    let plain = made(&["--grant", "client_credentials"]);
    let public = made(&[
        "--grant",
        "authorization_code",
        "--redirect-uri",
        "http://127.0.0.1:7000/cb",
        "--audience",
        AUD,
    ]);
    let show = |id: &str| cli_typed(dir, &["client", "show", id], env).1;
    assert!(show(&rs).get("resource_servers").is_none(), "made without");
    // As if these were made before the migration: it has not run yet.
    forget().await;
    let (ok, out, err) = cli_typed(dir, &["migrate"], env);
    assert!(ok, "{err}");
    assert_eq!(
        out["applied"],
        json!([RESOURCE_SERVERS_MIGRATION.parse::<i64>().unwrap()])
    );
    assert_eq!(
        show(&rs)["resource_servers"],
        json!([AUD]),
        "keeps introspecting"
    );
    assert_eq!(show(&rs)["audiences"], json!([AUD]));
    assert!(show(&plain).get("resource_servers").is_none());
    assert!(
        show(&public).get("resource_servers").is_none(),
        "public: no introspection"
    );
}

#[tokio::test]
async fn resource_servers_made_with_audience_before_the_upgrade_keep_introspecting_on_sqlite() {
    let dir = DataDir::new();
    let db = dir.path().join("gatehouse.db");
    resource_servers_migrate(&dir, &[], async || {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM _sqlx_migrations WHERE version = {RESOURCE_SERVERS_MIGRATION}"
        )))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    })
    .await;
}

#[tokio::test]
async fn resource_servers_made_with_audience_before_the_upgrade_keep_introspecting_on_postgresql() {
    let schema = pg::PgSchema::create("first_hour_rs_migration").await;
    let dir = DataDir::new();
    let kek = pg::new_kek();
    let env = pg_env(&schema, &kek);
    resource_servers_migrate(&dir, &env, async || {
        schema
            .execute(&format!(
                "DELETE FROM _sqlx_migrations WHERE version = {RESOURCE_SERVERS_MIGRATION}"
            ))
            .await;
    })
    .await;
}
