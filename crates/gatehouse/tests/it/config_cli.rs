//! Configuration (flags > environment > file > defaults), discovery, the JWKS,
//! the data directory and the admin CLI, against the real binary.

use gatehouse_testkit::*;
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use serde_json::{Value, json};
use std::process::{Command, Stdio};

const AUD2: &str = "https://mcp.example.com/tools";
const AUD3: &str = "https://mcp.example.com/files";
const INITIAL_TOKEN: &str = "iat-0123456789abcdef-secret";

/// Writes `toml` to a config file in the data directory; returns its path.
fn config_file(dir: &DataDir, toml: &str) -> String {
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, toml).expect("write config");
    path.to_str().unwrap().to_string()
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

/// Starts the server expecting it to refuse the configuration; returns what
/// it wrote to stderr.
fn refused(dir: &DataDir, args: &[&str], env: &[(&str, &str)]) -> String {
    match Server::try_start(dir, args, env) {
        Ok(server) => {
            let logs = server.logs();
            panic!("the server started with args {args:?} env {env:?}:\n{logs}")
        }
        Err(logs) => {
            assert!(
                logs.contains("error:"),
                "no error message on stderr:\n{logs}"
            );
            logs
        }
    }
}

/// A POST to `url` with Basic credentials and a client_credentials form.
async fn token_at(server: &Server, url: &str, id: &str, secret: &str) -> Response {
    Response::from(
        server
            .http
            .post(url)
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token request"),
    )
    .await
}

async fn get_url(server: &Server, url: &str) -> Response {
    Response::from(server.http.get(url).send().await.expect("GET")).await
}

/// Verifies `token` against `jwks` for `aud` and `iss` with an independent
/// JWT library; returns (header, claims).
fn verify_with(jwks: &Value, token: &str, aud: &str, iss: &str) -> (jsonwebtoken::Header, Value) {
    let set: JwkSet = serde_json::from_value(jwks.clone()).expect("JWKS parses");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.clone().expect("kid");
    let jwk = set.find(&kid).expect("token kid is in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[aud]);
    validation.set_issuer(&[iss]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).expect("token verifies");
    (header, data.claims)
}

/// The `max-age` of a Cache-Control header, if any.
fn max_age(r: &Response) -> Option<u64> {
    r.header("cache-control")?
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The `key=value` fields of the "gatehouse started" log line.
fn start_line_field(logs: &str, key: &str) -> Option<String> {
    let line = logs.lines().find(|l| l.contains("gatehouse started"))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_string())
}

/// Runs a `gatehouse` command with extra environment variables.
fn cli_env(dir: &DataDir, args: &[&str], env: &[(&str, &str)]) -> (bool, Value, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .arg("--init")
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run gatehouse");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Runs a command and returns (success, raw stdout, stderr).
fn cli_raw(dir: &DataDir, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run gatehouse");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

// ---------------------------------------------------------------- discovery

#[tokio::test]
async fn rfc8414_metadata_advertises_issuer_endpoints_the_grant_and_both_secret_methods() {
    let dir = DataDir::new();
    let cfg = config_file(
        &dir,
        &format!(
            "allowed_audiences = [\"{AUD}\"]\nscopes_supported = [\"tools:read\", \"tools:call\"]\n"
        ),
    );
    let server = Server::start(&dir, &["--config", &cfg], &[]);
    let r = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.header("content-type")
    );
    let m = &r.json;
    assert_eq!(m["issuer"], server.base.as_str(), "issuer byte for byte");
    assert_eq!(m["token_endpoint"], format!("{}/oauth/token", server.base));
    assert_eq!(
        m["jwks_uri"],
        format!("{}/.well-known/jwks.json", server.base)
    );
    assert!(
        strings(&m["grant_types_supported"]).contains(&"client_credentials"),
        "{m}"
    );
    let methods = strings(&m["token_endpoint_auth_methods_supported"]);
    assert!(methods.contains(&"client_secret_basic"), "{m}");
    assert!(methods.contains(&"client_secret_post"), "{m}");
    assert!(
        m["response_types_supported"].is_array(),
        "required by RFC 8414: {m}"
    );
    // The OIDC scopes join the configured ones while people can sign in.
    assert_eq!(
        m["scopes_supported"],
        json!(["tools:read", "tools:call", "openid", "profile"])
    );
    assert!(
        max_age(&r).is_some_and(|a| a > 0),
        "Cache-Control with max-age: {:?}",
        r.header("cache-control")
    );
    // Public-client registration is on by default, so it is advertised even
    // though confidential registration is off.
    assert!(m["registration_endpoint"].is_string(), "{m}");

    // Everything advertised exists (no endpoint is listed before it is served).
    for (key, value) in m.as_object().unwrap() {
        if !(key.ends_with("_endpoint") || key == "jwks_uri") {
            continue;
        }
        let url = value.as_str().expect("endpoint URLs are strings");
        assert!(url.starts_with(&server.base), "{key} = {url}");
        let status = if key == "jwks_uri" {
            get_url(&server, url).await.status
        } else {
            Response::from(server.http.post(url).send().await.unwrap())
                .await
                .status
        };
        // Served: the JWKS as a document, each endpoint refusing an empty
        // POST as a client error of its own — not 404, and not a 5xx.
        if key == "jwks_uri" {
            assert_eq!(status, 200, "{key} = {url}");
        } else {
            assert!(
                (400..500).contains(&status) && status != 404,
                "{key} = {url} is advertised but answered {status}"
            );
        }
    }
}

#[tokio::test]
async fn openid_configuration_serves_the_same_metadata() {
    let dir = DataDir::new();
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let rfc = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let oidc = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(oidc.status, 200, "{}", oidc.text);
    assert!(
        max_age(&oidc).is_some_and(|a| a > 0),
        "{:?}",
        oidc.header("cache-control")
    );
    for key in [
        "issuer",
        "token_endpoint",
        "jwks_uri",
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
        "response_types_supported",
        "scopes_supported",
    ] {
        assert_eq!(
            oidc.json[key], rfc.json[key],
            "{key}: {} vs {}",
            oidc.text, rfc.text
        );
    }
    assert_eq!(oidc.json["issuer"], server.base.as_str());
    assert!(oidc.json["response_types_supported"].is_array());
    assert!(strings(&oidc.json["grant_types_supported"]).contains(&"client_credentials"));
}

#[tokio::test]
async fn the_jwks_publishes_public_keys_only_with_kid_alg_and_use_sig() {
    let dir = DataDir::new();
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let r = server.get_json("/.well-known/jwks.json").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        max_age(&r).is_some_and(|a| a > 0),
        "{:?}",
        r.header("cache-control")
    );
    let keys = r.json["keys"].as_array().expect("keys array");
    assert!(!keys.is_empty(), "{}", r.text);
    for k in keys {
        assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
        assert!(
            ["ES256", "RS256", "EdDSA"].contains(&k["alg"].as_str().unwrap_or_default()),
            "{k}"
        );
        assert_eq!(k["use"], "sig", "{k}");
        assert!(k["kty"].is_string(), "{k}");
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(
                k.get(private).is_none(),
                "private member {private} published: {k}"
            );
        }
    }
    let kids: Vec<&str> = keys.iter().filter_map(|k| k["kid"].as_str()).collect();
    let mut unique = kids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(kids.len(), unique.len(), "kids are unique: {kids:?}");
}

#[tokio::test]
async fn the_kid_is_the_rfc_7638_thumbprint_and_matches_the_token_header() {
    install_crypto();
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let jwks = server.get_json("/.well-known/jwks.json").await.json;
    for k in jwks["keys"].as_array().unwrap() {
        let jwk: Jwk = serde_json::from_value(k.clone()).expect("a valid JWK");
        let thumbprint = jwk.thumbprint(ThumbprintHash::SHA256).expect("thumbprint");
        assert_eq!(
            k["kid"],
            thumbprint.as_str(),
            "kid is the RFC 7638 SHA-256 thumbprint: {k}"
        );
    }
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.expect("token header has a kid");
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str()),
        "token kid {kid} not in {jwks}"
    );
    verify_token(&server, token, AUD).await;
    // The start log line names the same key.
    assert_eq!(
        start_line_field(&server.logs(), "kid").as_deref(),
        Some(kid.as_str())
    );
}

#[tokio::test]
async fn es256_rs256_and_eddsa_signing_produce_tokens_that_verify_with_the_jwks() {
    install_crypto();
    for alg in ["ES256", "RS256", "EdDSA"] {
        let dir = DataDir::new();
        let cfg = config_file(
            &dir,
            &format!("allowed_audiences = [\"{AUD}\"]\nsigning_alg = \"{alg}\"\n"),
        );
        let (id, secret) = create_client(&dir, &["--config", &cfg]);
        let server = Server::start(&dir, &["--config", &cfg], &[]);
        let r = server
            .token(
                Some((&id, &secret)),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(r.status, 200, "{alg}: {}", r.text);
        let (header, claims) =
            verify_token(&server, r.json["access_token"].as_str().unwrap(), AUD).await;
        assert_eq!(format!("{:?}", header.alg), alg, "{alg}");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(claims["sub"], id.as_str());
        let jwks = server.get_json("/.well-known/jwks.json").await.json;
        let kid = header.kid.unwrap();
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .expect("kid in JWKS")
            .clone();
        assert_eq!(key["alg"], alg, "{key}");
        let jwk: Jwk = serde_json::from_value(key.clone()).unwrap();
        assert_eq!(
            key["kid"],
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap().as_str(),
            "{alg}"
        );
        assert_eq!(
            start_line_field(&server.logs(), "alg").as_deref(),
            Some(alg)
        );
    }
}

#[tokio::test]
async fn an_issuer_with_a_path_serves_everything_under_that_path() {
    install_crypto();
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    // The issuer names the port, so choose one; retry if it was taken meanwhile.
    let (server, issuer, root) = (0..5)
        .find_map(|_| {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let issuer = format!("http://{listen}/tenant");
            Server::try_start(
                &dir,
                &["--listen", &listen, "--issuer", &issuer, "--audience", AUD],
                &[("GATEHOUSE_REGISTRATION__CONFIDENTIAL", "open")],
            )
            .ok()
            .map(|s| (s, issuer, format!("http://{listen}")))
        })
        .expect("server with a path issuer");

    for path in [
        "/.well-known/oauth-authorization-server/tenant",
        "/tenant/.well-known/openid-configuration",
        "/.well-known/openid-configuration/tenant",
    ] {
        let r = get_url(&server, &format!("{root}{path}")).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.json["issuer"], issuer.as_str(), "{path}");
        assert_eq!(
            r.json["token_endpoint"],
            format!("{issuer}/oauth/token"),
            "{path}"
        );
        assert_eq!(
            r.json["jwks_uri"],
            format!("{issuer}/.well-known/jwks.json"),
            "{path}"
        );
        assert_eq!(
            r.json["registration_endpoint"],
            format!("{issuer}/oauth/register"),
            "{path}"
        );
    }
    // No document at the root claims this issuer (RFC 8414 §3.1).
    let r = get_url(
        &server,
        &format!("{root}/.well-known/oauth-authorization-server"),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);

    let jwks = get_url(&server, &format!("{issuer}/.well-known/jwks.json")).await;
    assert_eq!(jwks.status, 200, "{}", jwks.text);
    assert!(!jwks.json["keys"].as_array().unwrap().is_empty());

    let r = token_at(&server, &format!("{issuer}/oauth/token"), &id, &secret).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, claims) = verify_with(
        &jwks.json,
        r.json["access_token"].as_str().unwrap(),
        AUD,
        &issuer,
    );
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["sub"], id.as_str());
    let r = token_at(&server, &format!("{root}/oauth/token"), &id, &secret).await;
    assert_eq!(
        r.status, 404,
        "the token endpoint lives under the issuer's path: {}",
        r.text
    );

    let r = Response::from(
        server
            .http
            .post(format!("{issuer}/oauth/register"))
            .json(&json!({"grant_types": ["client_credentials"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        start_line_field(&server.logs(), "issuer").as_deref(),
        Some(issuer.as_str())
    );
}

#[tokio::test]
async fn a_loopback_listen_without_an_issuer_derives_it_and_a_configured_one_is_echoed_verbatim() {
    let dir = DataDir::new();
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let m = server
        .get_json("/.well-known/oauth-authorization-server")
        .await
        .json;
    assert_eq!(m["issuer"], server.base.as_str());
    server.stop();

    for issuer in [
        "https://auth.example.com",
        "https://auth.example.com/tenant/a",
    ] {
        let dir = DataDir::new();
        let server = Server::start(&dir, &["--audience", AUD, "--issuer", issuer], &[]);
        let path = issuer.strip_prefix("https://auth.example.com").unwrap();
        let m = server
            .get_json(&format!("/.well-known/oauth-authorization-server{path}"))
            .await;
        assert_eq!(m.status, 200, "{}", m.text);
        assert_eq!(m.json["issuer"], issuer);
        assert_eq!(m.json["token_endpoint"], format!("{issuer}/oauth/token"));
    }
}

#[tokio::test]
async fn healthz_answers_ok() {
    let dir = DataDir::new();
    let server = Server::start(&dir, &[], &[]);
    let r = server.get_json("/healthz").await;
    assert_eq!(r.status, 200, "{}", r.text);
}

// ----------------------------------------------------- configuration errors

#[tokio::test]
async fn an_unknown_key_in_the_config_file_stops_the_start_naming_the_key() {
    for (toml, key) in [
        ("frobnicate = 1\n", "frobnicate"),
        (
            "allowed_audience = [\"https://a.example/mcp\"]\n",
            "allowed_audience",
        ),
        ("[registration]\nconfidentail = \"open\"\n", "confidentail"),
        ("[store]\npoll_intervall = \"1s\"\n", "poll_intervall"),
        ("[nonsense]\nx = 1\n", "nonsense"),
    ] {
        let dir = DataDir::new();
        let cfg = config_file(&dir, toml);
        let logs = refused(&dir, &["--config", &cfg], &[]);
        assert!(
            logs.contains(key),
            "{toml:?}: the message does not name {key}:\n{logs}"
        );
    }
}

#[tokio::test]
async fn an_invalid_value_stops_the_start_naming_the_key() {
    for (toml, key) in [
        ("signing_alg = \"HS256\"\n", "signing_alg"),
        ("signing_alg = \"none\"\n", "signing_alg"),
        ("access_token_ttl = \"10s\"\n", "access_token_ttl"),
        ("access_token_ttl = \"25h\"\n", "access_token_ttl"),
        ("access_token_ttl = \"soon\"\n", "access_token_ttl"),
        ("access_token_ttl = 900\n", "access_token_ttl"),
        (
            "allowed_audiences = \"https://a.example/mcp\"\n",
            "allowed_audiences",
        ),
        ("allowed_audiences = [\"not a url\"]\n", "allowed_audiences"),
        (
            "allowed_audiences = [\"https://a.example/mcp#frag\"]\n",
            "allowed_audiences",
        ),
        ("scopes_supported = [\"a b\"]\n", "scopes_supported"),
        (
            "[registration]\nconfidential = \"maybe\"\n",
            "registration.confidential",
        ),
        (
            "[registration]\nconfidential = \"initial-token\"\n",
            "registration.initial_access_tokens",
        ),
        (
            "[registration]\ninitial_access_tokens = [\"short\"]\n",
            "registration.initial_access_tokens",
        ),
        (
            "[registration]\nmax_clients = -1\n",
            "registration.max_clients",
        ),
        (
            "[registration]\nidle_expiry = \"forever\"\n",
            "registration.idle_expiry",
        ),
        (
            "[tokens]\ndefault_scopes = [\"admin\"]\n",
            "tokens.default_scopes",
        ),
        ("[store]\npoll_interval = \"0s\"\n", "store.poll_interval"),
    ] {
        let dir = DataDir::new();
        let cfg = config_file(&dir, toml);
        let logs = refused(&dir, &["--config", &cfg], &[]);
        assert!(
            logs.contains(key),
            "{toml:?}: the message does not name {key}:\n{logs}"
        );
    }
    // From the command line.
    let dir = DataDir::new();
    let logs = refused(&dir, &["--listen", "nowhere"], &[]);
    assert!(logs.contains("listen"), "{logs}");
    // From the environment, the same.
    for (var, value, key) in [
        ("GATEHOUSE_SIGNING_ALG", "HS256", "signing_alg"),
        ("GATEHOUSE_ACCESS_TOKEN_TTL", "10s", "access_token_ttl"),
        (
            "GATEHOUSE_REGISTRATION__CONFIDENTIAL",
            "maybe",
            "registration.confidential",
        ),
        (
            "GATEHOUSE_REGISTRATION__MAX_CLIENTS",
            "lots",
            "GATEHOUSE_REGISTRATION__MAX_CLIENTS",
        ),
    ] {
        let dir = DataDir::new();
        let logs = refused(&dir, &[], &[(var, value)]);
        assert!(
            logs.contains(key),
            "{var}={value}: the message does not name {key}:\n{logs}"
        );
    }
}

#[tokio::test]
async fn a_missing_config_file_stops_the_start_naming_the_file() {
    let dir = DataDir::new();
    let missing = dir.path().join("no-such.toml");
    let logs = refused(&dir, &["--config", missing.to_str().unwrap()], &[]);
    assert!(logs.contains("no-such.toml"), "{logs}");
}

#[tokio::test]
async fn a_non_loopback_issuer_without_https_is_refused() {
    for issuer in [
        "http://auth.example.com",
        "http://auth.example.com/tenant",
        "http://10.1.2.3:8080",
        "ftp://auth.example.com",
    ] {
        let dir = DataDir::new();
        let logs = refused(&dir, &["--issuer", issuer], &[]);
        assert!(logs.contains("issuer"), "{issuer}: {logs}");
    }
}

#[tokio::test]
async fn an_issuer_with_a_trailing_slash_query_or_fragment_is_refused() {
    let port = free_port();
    for issuer in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.0.0.1:{port}/tenant/"),
        "https://auth.example.com/".to_string(),
        "https://auth.example.com?x=1".to_string(),
        "https://auth.example.com#frag".to_string(),
        "https://user:pw@auth.example.com".to_string(),
        "auth.example.com".to_string(),
    ] {
        let dir = DataDir::new();
        let logs = refused(&dir, &["--issuer", &issuer], &[]);
        assert!(logs.contains("issuer"), "{issuer}: {logs}");
    }
}

#[tokio::test]
async fn a_non_loopback_listen_address_without_an_issuer_stops_the_start() {
    let dir = DataDir::new();
    let logs = refused(&dir, &["--listen", "0.0.0.0:0"], &[]);
    assert!(logs.contains("issuer"), "{logs}");
}

// ------------------------------------------------------ layers and precedence

#[tokio::test]
async fn the_environment_enables_registration() {
    let dir = DataDir::new();
    let server = Server::start(
        &dir,
        &["--audience", AUD],
        &[("GATEHOUSE_REGISTRATION__CONFIDENTIAL", "open")],
    );
    let m = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        m.json["registration_endpoint"],
        format!("{}/oauth/register", server.base)
    );
    let r = server
        .register(&json!({"grant_types": ["client_credentials"]}), None)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // initial-token mode with a comma-separated token list from the environment.
    let dir = DataDir::new();
    let other = "iat-another-token-0123456789";
    let list = format!("{INITIAL_TOKEN},{other}");
    let server = Server::start(
        &dir,
        &["--audience", AUD],
        &[
            ("GATEHOUSE_REGISTRATION__CONFIDENTIAL", "initial-token"),
            ("GATEHOUSE_REGISTRATION__INITIAL_ACCESS_TOKENS", &list),
        ],
    );
    let body = json!({"grant_types": ["client_credentials"]});
    server
        .register(&body, None)
        .await
        .assert_error(401, "invalid_token");
    assert_eq!(
        server.register(&body, Some(INITIAL_TOKEN)).await.status,
        201
    );
    assert_eq!(server.register(&body, Some(other)).await.status, 201);
}

#[tokio::test]
async fn the_environment_beats_the_file_and_takes_comma_separated_lists() {
    let dir = DataDir::new();
    let cfg = config_file(
        &dir,
        &format!("allowed_audiences = [\"{AUD}\"]\n[registration]\nconfidential = \"off\"\n"),
    );
    let (id, secret) = create_client(&dir, &["--config", &cfg]);
    let list = format!("{AUD2}, {AUD3}");
    let server = Server::start(
        &dir,
        &["--config", &cfg],
        &[
            ("GATEHOUSE_ALLOWED_AUDIENCES", &list),
            ("GATEHOUSE_REGISTRATION__CONFIDENTIAL", "open"),
        ],
    );
    for aud in [AUD2, AUD3] {
        let r = server
            .token(
                Some((&id, &secret)),
                &[("grant_type", "client_credentials"), ("resource", aud)],
            )
            .await;
        assert_eq!(r.status, 200, "{aud}: {}", r.text);
    }
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("resource", AUD)],
        )
        .await;
    r.assert_error(400, "invalid_target");
    let m = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(
        m.json["registration_endpoint"].is_string(),
        "env beats file: {}",
        m.text
    );
}

#[tokio::test]
async fn an_explicit_flag_beats_the_environment() {
    install_crypto();
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &[]);
    let server = Server::start(
        &dir,
        &["--audience", AUD],
        &[
            ("GATEHOUSE_ALLOWED_AUDIENCES", AUD2),
            // The harness passes --listen 127.0.0.1:0, which must win too.
            ("GATEHOUSE_LISTEN", "127.0.0.1:1"),
        ],
    );
    assert!(!server.addr.ends_with(":1"), "{}", server.addr);
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, claims) = verify_token(&server, r.json["access_token"].as_str().unwrap(), AUD).await;
    assert_eq!(
        claims["aud"], AUD,
        "the flag's audience, not the environment's"
    );
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("resource", AUD2)],
        )
        .await;
    r.assert_error(400, "invalid_target");

    // A flag also beats the file (flags replace lists from the file).
    let dir = DataDir::new();
    let cfg = config_file(&dir, &format!("allowed_audiences = [\"{AUD2}\"]\n"));
    let (id, secret) = create_client(&dir, &["--config", &cfg]);
    let server = Server::start(&dir, &["--config", &cfg, "--audience", AUD], &[]);
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("resource", AUD2)],
        )
        .await;
    r.assert_error(400, "invalid_target");
}

#[tokio::test]
async fn the_file_sets_the_token_lifetime() {
    install_crypto();
    let dir = DataDir::new();
    let cfg = config_file(
        &dir,
        &format!("allowed_audiences = [\"{AUD}\"]\naccess_token_ttl = \"5m\"\n"),
    );
    let (id, secret) = create_client(&dir, &["--config", &cfg]);
    let server = Server::start(&dir, &["--config", &cfg], &[]);
    let r = server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["expires_in"], 300);
    let (_, claims) = verify_token(&server, r.json["access_token"].as_str().unwrap(), AUD).await;
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
}

#[tokio::test]
async fn an_unknown_gatehouse_environment_variable_only_warns() {
    let dir = DataDir::new();
    let server = Server::start(
        &dir,
        &["--audience", AUD],
        &[
            ("GATEHOUSE_FOO", "foo-value-7f3a9c"),
            ("GATEHOUSE_REGISTRATION__NOPE", "1"),
        ],
    );
    let logs = server.logs();
    for var in ["GATEHOUSE_FOO", "GATEHOUSE_REGISTRATION__NOPE"] {
        let line = logs
            .lines()
            .find(|l| l.contains(var))
            .unwrap_or_else(|| panic!("no warning about {var}:\n{logs}"));
        assert!(line.contains("WARN"), "{line}");
    }
    assert!(
        !logs.contains("foo-value-7f3a9c"),
        "the value is not logged: {logs}"
    );
    let r = server.get_json("/healthz").await;
    assert_eq!(r.status, 200);
}

// ------------------------------------------------------------ data directory

#[tokio::test]
async fn the_data_dir_holds_the_kek_with_mode_0600_and_the_database() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DataDir::new();
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let kek = dir.path().join("kek");
    let meta = std::fs::metadata(&kek).expect("kek exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "kek mode");
    assert!(dir.path().join("gatehouse.db").is_file(), "database exists");
    let dir_mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode & 0o077, 0, "data dir is private: {dir_mode:o}");
    let kek_text = std::fs::read_to_string(&kek).unwrap();
    let kek_text = kek_text.trim();
    assert!(!kek_text.is_empty());
    server.stop();

    // The KEK never lives inside the database.
    for name in ["gatehouse.db", "gatehouse.db-wal"] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap_or_default();
        assert!(
            !bytes
                .windows(kek_text.len())
                .any(|w| w == kek_text.as_bytes()),
            "the KEK is in {name}"
        );
    }
    // Reused, not regenerated, on the next start.
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    assert_eq!(std::fs::read_to_string(&kek).unwrap().trim(), kek_text);
    server.stop();
}

#[tokio::test]
async fn a_different_kek_stops_the_start_instead_of_replacing_the_keys() {
    let dir = DataDir::new();
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let jwks = server.get_json("/.well-known/jwks.json").await.json;
    server.stop();
    // 32 other bytes, base64.
    std::fs::write(
        dir.path().join("kek"),
        "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
    )
    .unwrap();
    let logs = refused(&dir, &["--audience", AUD], &[]);
    assert!(logs.contains("key-encryption key"), "{logs}");
    let pool = db(&dir).await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM keys WHERE kind = 'signing'")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(
        n as usize,
        jwks["keys"].as_array().unwrap().len(),
        "no key was replaced"
    );
}

// ------------------------------------------------------------------ the CLI

#[tokio::test]
async fn client_list_and_client_show_never_print_the_secret_or_its_hash() {
    let dir = DataDir::new();
    let (id, secret) = create_client(&dir, &["--auth-method", "client_secret_post"]);
    let (id2, secret2) = create_client(&dir, &[]);
    let pool = db(&dir).await;
    let mut hashes = Vec::new();
    for client in [&id, &id2] {
        let secrets: String = sqlx::query_scalar("SELECT secrets FROM clients WHERE id = ?")
            .bind(client)
            .fetch_one(&pool)
            .await
            .unwrap();
        let secrets: Value = serde_json::from_str(&secrets).unwrap();
        hashes.push(
            secrets[0]["hash"]
                .as_str()
                .expect("a stored hash")
                .to_string(),
        );
    }
    pool.close().await;

    let runs = [
        cli_raw(&dir, &["client", "list"]),
        cli_raw(&dir, &["client", "list", "--format", "text"]),
        cli_raw(&dir, &["client", "show", &id]),
        cli_raw(&dir, &["client", "show", &id, "--format", "text"]),
        cli_raw(&dir, &["client", "show", &id2]),
    ];
    for (ok, stdout, stderr) in &runs {
        assert!(ok, "{stderr}");
        for needle in [&secret, &secret2, &hashes[0], &hashes[1]] {
            assert!(
                !stdout.contains(needle.as_str()),
                "secret material printed:\n{stdout}"
            );
            assert!(
                !stderr.contains(needle.as_str()),
                "secret material on stderr:\n{stderr}"
            );
        }
    }
    let list: Value = serde_json::from_str(&runs[0].1).expect("list prints JSON");
    let ids: Vec<&str> = list
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|c| c["client_id"].as_str())
        .collect();
    assert!(
        ids.contains(&id.as_str()) && ids.contains(&id2.as_str()),
        "{list}"
    );
    let shown: Value = serde_json::from_str(&runs[2].1).expect("show prints JSON");
    assert_eq!(shown["client_id"], id.as_str());
    assert_eq!(shown["token_endpoint_auth_method"], "client_secret_post");
    assert_eq!(shown["grant_types"], json!(["client_credentials"]));
    assert!(shown.get("client_secret").is_none(), "{shown}");
}

#[tokio::test]
async fn client_show_of_an_unknown_id_exits_non_zero_with_an_error_on_stderr() {
    let dir = DataDir::new();
    create_client(&dir, &[]);
    for args in [
        ["client", "show", "c_doesnotexist"],
        ["client", "delete", "c_doesnotexist"],
    ] {
        let (ok, stdout, stderr) = cli_raw(&dir, &args);
        assert!(!ok, "{args:?} succeeded");
        assert!(
            stderr.contains("error"),
            "{args:?}: no error on stderr: {stderr}"
        );
        assert!(
            stderr.contains("c_doesnotexist"),
            "{args:?}: the error names the id: {stderr}"
        );
        assert!(
            stdout.trim().is_empty(),
            "{args:?}: errors go to stderr, not stdout: {stdout}"
        );
    }
    assert_eq!(client_count(&dir).await, 1);
}

#[tokio::test]
async fn config_show_masks_initial_access_tokens() {
    let dir = DataDir::new();
    let cfg = config_file(
        &dir,
        &format!(
            "allowed_audiences = [\"{AUD}\"]\nsigning_alg = \"RS256\"\n[registration]\nconfidential = \"initial-token\"\ninitial_access_tokens = [\"{INITIAL_TOKEN}\"]\n"
        ),
    );
    let (ok, out, err) = cli(&dir, &["config", "show", "--config", &cfg]);
    assert!(ok, "{err}");
    let text = out.to_string();
    assert!(
        !text.contains(INITIAL_TOKEN),
        "initial access token printed: {text}"
    );
    assert!(
        !err.contains(INITIAL_TOKEN),
        "initial access token on stderr: {err}"
    );
    let tokens = out["registration"]["initial_access_tokens"]
        .as_array()
        .expect("listed, masked");
    assert_eq!(tokens.len(), 1);
    assert_ne!(tokens[0], INITIAL_TOKEN);
    assert_eq!(out["registration"]["confidential"], "initial-token");
    assert_eq!(out["allowed_audiences"], json!([AUD]));
    assert_eq!(out["signing_alg"], "RS256");

    // Tokens from the environment are masked too, and the environment wins.
    let env_token = "iat-from-the-environment-0123";
    let (ok, out, err) = cli_env(
        &dir,
        &["config", "show", "--config", &cfg],
        &[
            ("GATEHOUSE_REGISTRATION__INITIAL_ACCESS_TOKENS", env_token),
            ("GATEHOUSE_SIGNING_ALG", "EdDSA"),
        ],
    );
    assert!(ok, "{err}");
    assert!(!out.to_string().contains(env_token), "{out}");
    assert_eq!(out["signing_alg"], "EdDSA");
}

#[tokio::test]
async fn the_start_log_line_names_issuer_listen_store_and_key_id() {
    let dir = DataDir::new();
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let logs = server.logs();
    assert_eq!(logs.matches("gatehouse started").count(), 1, "{logs}");
    assert_eq!(
        start_line_field(&logs, "issuer").as_deref(),
        Some(server.base.as_str())
    );
    assert_eq!(
        start_line_field(&logs, "listen").as_deref(),
        Some(server.addr.as_str())
    );
    let store = start_line_field(&logs, "store").expect("store in the start line");
    assert!(store.contains("gatehouse.db"), "{store}");
    let kid = start_line_field(&logs, "kid").expect("kid in the start line");
    let jwks = server.get_json("/.well-known/jwks.json").await.json;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str())
    );
}

#[tokio::test]
async fn no_configured_audience_logs_a_warning() {
    let dir = DataDir::new();
    let server = Server::start(&dir, &[], &[]);
    let logs = server.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("audience")),
        "no warning about missing audiences:\n{logs}"
    );
    server.stop();

    let dir = DataDir::new();
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let logs = server.logs();
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("WARN") && l.contains("audience")),
        "{logs}"
    );
}

#[tokio::test]
async fn a_key_encryption_key_readable_by_others_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DataDir::new();
    let first = Server::start(&dir, &[], &[]);
    first.stop();
    let kek = dir.path().join("kek");
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o644)).unwrap();
    let logs = match Server::try_start(&dir, &[], &[]) {
        Ok(_) => panic!("a world-readable kek must stop the start"),
        Err(logs) => logs,
    };
    assert!(logs.contains("chmod 600"), "{logs}");
}

#[tokio::test]
async fn max_stale_shorter_than_two_polls_stops_the_start() {
    let dir = DataDir::new();
    let logs = match Server::try_start(
        &dir,
        &[],
        &[
            ("GATEHOUSE_STORE__POLL_INTERVAL", "5s"),
            ("GATEHOUSE_STORE__MAX_STALE", "6s"),
        ],
    ) {
        Ok(_) => panic!("must not start"),
        Err(logs) => logs,
    };
    assert!(logs.contains("store.max_stale"), "{logs}");
}
