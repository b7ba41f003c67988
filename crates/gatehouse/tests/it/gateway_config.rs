//! The gateway configured in TOML (`[gateway]`, `[[gateway.servers]]`):
//! embedded in `gatehouse serve` next to the authorization server on one
//! port, and standalone (`gatehouse gateway --config`) fronting several MCP
//! servers — the real binary, real HTTP, recording upstreams.

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const POLICIES: &str = r#"
@id("ci-bot-search")
permit (principal == Client::"ci-bot", action == Action::"call_tool", resource == Tool::"search_issues");
"#;

/// What an upstream saw: each request's headers and JSON-RPC method.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A recording MCP upstream that answers every request at once.
async fn upstream(seen: Seen) -> String {
    let app = Router::new().route(
        "/mcp",
        post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let method = msg["method"].as_str().unwrap_or("").to_string();
                seen.lock().unwrap().push((headers, method));
                let result = json!({"content": [{"type": "text", "text": format!("called {}", msg["params"]["name"])}]});
                axum::Json(json!({"jsonrpc": "2.0", "id": msg["id"].clone(), "result": result}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}

fn write(dir: &DataDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// One `[[gateway.servers]]` table; `extra` is appended verbatim.
fn server_table(resource: &str, upstream: &str, policies: &str, extra: &str) -> String {
    format!(
        "[[gateway.servers]]\nresource = \"{resource}\"\nupstream = \"{upstream}\"\npolicies = \"{policies}\"\n{extra}\n"
    )
}

fn call(name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": {}}})
}

async fn rpc(url: &str, token: Option<&str>, body: &Value) -> Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Response::from(req.send().await.unwrap()).await
}

async fn get(url: &str) -> Response {
    Response::from(reqwest::get(url).await.unwrap()).await
}

/// Runs `gatehouse ARGS` expecting it to refuse to start: it must exit
/// non-zero on its own, and nothing may be listening on `port` afterwards.
/// Returns its stderr.
fn refused(args: &[&str], port: u16) -> String {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("gatehouse {args:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "exit status {status}: {stderr}");
    assert!(stderr.contains("error:"), "{stderr}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on {port} after a refused start"
    );
    stderr
}

/// `serve` with this config on a fixed port, expecting a refusal.
fn serve_refused(dir: &DataDir, toml: &str) -> String {
    let port = free_port();
    let cfg = write(
        dir,
        "gatehouse.toml",
        &toml.replace("PORT", &port.to_string()),
    );
    let data = dir.path().display().to_string();
    let listen = format!("127.0.0.1:{port}");
    refused(
        &[
            "serve",
            "--data-dir",
            &data,
            "--config",
            &cfg,
            "--listen",
            &listen,
        ],
        port,
    )
}

/// A `serve` hosting two gateway servers, /a/mcp and /b/mcp, with their
/// recording upstreams; `ci-bot` is pre-registered.
struct Embedded {
    server: Server,
    a: String,
    b: String,
    seen_a: Seen,
    seen_b: Seen,
    id: String,
    secret: String,
    policies: String,
    _dir: DataDir,
}

async fn embedded(extra_toml: &str) -> Embedded {
    install_crypto();
    let dir = DataDir::new();
    let port = free_port();
    let (seen_a, seen_b) = (Seen::default(), Seen::default());
    let (up_a, up_b) = (
        upstream(seen_a.clone()).await,
        upstream(seen_b.clone()).await,
    );
    let policies = write(&dir, "policies.cedar", POLICIES);
    let a = format!("http://127.0.0.1:{port}/a/mcp");
    let b = format!("http://127.0.0.1:{port}/b/mcp");
    let toml = format!(
        "{extra_toml}\n{}{}",
        server_table(&a, &up_a, &policies, "path = \"/a/mcp\""),
        server_table(&b, &up_b, &policies, "")
    );
    let cfg = write(&dir, "gatehouse.toml", &toml);
    let (id, secret) = create_client(&dir, &["--id", "ci-bot"]);
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(&dir, &["--config", &cfg, "--listen", &listen], &[]);
    Embedded {
        server,
        a,
        b,
        seen_a,
        seen_b,
        id,
        secret,
        policies,
        _dir: dir,
    }
}

impl Embedded {
    async fn token(&self, resource: &str) -> Response {
        self.server
            .token(
                Some((&self.id, &self.secret)),
                &[("grant_type", "client_credentials"), ("resource", resource)],
            )
            .await
    }
}

// ------------------------------------------------------------------ embedded

#[tokio::test]
async fn serve_hosts_two_gateway_servers_next_to_the_authorization_server() {
    let e = embedded("").await;
    // The token endpoint answers on the same port as the gateway.
    let t = e.token(&e.a).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let token = t.json["access_token"].as_str().unwrap();

    let r = rpc(&e.a, Some(token), &call("search_issues")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["result"]["content"][0]["text"],
        "called \"search_issues\""
    );
    {
        let seen = e.seen_a.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].1, "tools/call");
        assert!(
            seen[0].0.get("authorization").is_none(),
            "the client's token is never passed upstream"
        );
    }
    let r = rpc(&e.a, Some(token), &call("merge_pr")).await;
    assert_eq!((r.status, &r.json["error"]["code"]), (200, &json!(-32003)));

    // A's token is for A only.
    let r = rpc(&e.b, Some(token), &call("search_issues")).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains(&e.server.url("/.well-known/oauth-protected-resource/b/mcp")),
        "{challenge}"
    );
    assert!(e.seen_b.lock().unwrap().is_empty());

    // The authorization server's own routes are as before.
    let meta = e
        .server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta.status, 200);
    assert_eq!(meta.json["issuer"], e.server.base.as_str());
    assert_eq!(e.server.get_json("/healthz").await.status, 200);
    let logs = e.server.logs();
    assert!(
        !logs.contains("tokens cannot be minted"),
        "the gateway's resources are audiences: {logs}"
    );
}

#[tokio::test]
async fn protected_resource_metadata_is_served_per_path_and_not_at_the_root_for_two_servers() {
    let e = embedded("").await;
    for (path, resource) in [("/a/mcp", &e.a), ("/b/mcp", &e.b)] {
        let r = e
            .server
            .get_json(&format!("/.well-known/oauth-protected-resource{path}"))
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.json["resource"], resource.as_str());
        assert_eq!(
            r.json["authorization_servers"],
            json!([e.server.base.as_str()])
        );
        // RFC 9728 §2: a name for people (no `name` configured: the host
        // and path), and no empty scope list.
        let host = e.server.base.trim_start_matches("http://");
        assert_eq!(
            r.json["resource_name"],
            format!("{host}{path}"),
            "{}",
            r.text
        );
        assert!(r.json.get("scopes_supported").is_none(), "{}", r.text);
    }
    let root = e
        .server
        .get_json("/.well-known/oauth-protected-resource")
        .await;
    assert_eq!(
        root.status, 404,
        "root metadata only when exactly one server is fronted"
    );
}

#[tokio::test]
async fn the_embedded_authorization_server_accepts_each_gateway_resource_as_an_audience() {
    let e = embedded("").await;
    for resource in [&e.a, &e.b] {
        let t = e.token(resource).await;
        assert_eq!(t.status, 200, "{}", t.text);
        let (_, claims) = verify_token(
            &e.server,
            t.json["access_token"].as_str().unwrap(),
            resource,
        )
        .await;
        assert_eq!(claims["aud"], resource.as_str());
    }
    // Only those: anything else is still not an audience.
    let other = e.server.url("/c/mcp");
    e.token(&other).await.assert_error(400, "invalid_target");
}

#[tokio::test]
async fn policies_reload_on_sighup_in_embedded_mode() {
    let e = embedded("").await;
    let t = e.token(&e.a).await;
    let token = t.json["access_token"].as_str().unwrap().to_string();
    let r = rpc(&e.a, Some(&token), &call("merge_pr")).await;
    assert_eq!((r.status, &r.json["error"]["code"]), (200, &json!(-32003)));
    std::fs::write(
        &e.policies,
        format!("{POLICIES}\npermit (principal == Client::\"ci-bot\", action == Action::\"call_tool\", resource == Tool::\"merge_pr\");\n"),
    )
    .unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &e.server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let allowed = eventually(Duration::from_secs(5), || async {
        rpc(&e.a, Some(&token), &call("merge_pr")).await.status == 200
    })
    .await;
    assert!(
        allowed,
        "new policies apply after SIGHUP: {}",
        e.server.logs()
    );
    // The server survived the signal and still issues tokens.
    assert_eq!(e.token(&e.b).await.status, 200);
}

#[tokio::test]
async fn the_gateways_origin_policy_applies_to_its_routes_only() {
    let e = embedded("[gateway]\nallowed_origins = [\"https://app.example\"]").await;
    let http = reqwest::Client::new();
    let from = |url: &str, origin: &str| {
        http.post(url)
            .header("origin", origin)
            .header("content-type", "application/json")
            .body(call("search_issues").to_string())
    };
    let r = from(&e.a, "https://evil.example").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = from(&e.a, "https://app.example").send().await.unwrap();
    assert_eq!(r.status(), 401, "an allowed origin reaches token checks");
    // The authorization server keeps its own CORS: any origin, no refusal.
    let r = http
        .post(e.server.url("/oauth/token"))
        .header("origin", "https://evil.example")
        .basic_auth(&e.id, Some(&e.secret))
        .form(&[("grant_type", "client_credentials"), ("resource", &e.a)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
}

// ------------------------------------------------------- refused starts (serve)

#[tokio::test]
async fn gateway_issuer_or_listen_in_serve_mode_stops_the_start_naming_the_key() {
    let dir = DataDir::new();
    let policies = write(&dir, "policies.cedar", POLICIES);
    let table = server_table(
        "http://127.0.0.1:PORT/mcp",
        "http://127.0.0.1:1/mcp",
        &policies,
        "",
    );
    for key in [
        "issuer = \"http://127.0.0.1:8080\"",
        "listen = \"127.0.0.1:0\"",
    ] {
        let err = serve_refused(&dir, &format!("[gateway]\n{key}\n{table}"));
        let name = key.split(' ').next().unwrap();
        assert!(err.contains(&format!("gateway.{name}")), "{err}");
    }
}

#[tokio::test]
async fn a_server_path_in_the_authorization_servers_namespace_is_refused() {
    let dir = DataDir::new();
    let policies = write(&dir, "policies.cedar", POLICIES);
    for (issuer, path) in [
        ("", "/oauth/x"),
        ("", "/.well-known/x"),
        ("", "/oauth/token"),
        ("", "/healthz"),
        ("issuer = \"http://127.0.0.1:PORT/t\"", "/t/oauth/x"),
        (
            "issuer = \"http://127.0.0.1:PORT/t\"",
            "/t/.well-known/jwks.json",
        ),
    ] {
        let table = server_table(
            &format!("http://127.0.0.1:PORT{path}"),
            "http://127.0.0.1:1/mcp",
            &policies,
            "",
        );
        let err = serve_refused(&dir, &format!("{issuer}\n{table}"));
        assert!(err.contains("gateway.servers[0].resource"), "{path}: {err}");
        assert!(err.contains("collides"), "{path}: {err}");
    }
}

#[tokio::test]
async fn two_servers_on_one_path_are_refused() {
    let dir = DataDir::new();
    let policies = write(&dir, "policies.cedar", POLICIES);
    let one = server_table(
        "http://127.0.0.1:PORT/mcp",
        "http://127.0.0.1:1/mcp",
        &policies,
        "",
    );
    let two = server_table(
        "http://127.0.0.1:PORT/mcp",
        "http://127.0.0.1:2/mcp",
        &policies,
        "",
    );
    let err = serve_refused(&dir, &format!("{one}{two}"));
    assert!(err.contains("gateway.servers[1].resource"), "{err}");
    assert!(err.contains("gateway.servers[0]"), "{err}");
}

#[tokio::test]
async fn resources_the_router_cannot_serve_exactly_are_refused() {
    let dir = DataDir::new();
    let policies = write(&dir, "policies.cedar", POLICIES);
    for (resource, why) in [
        ("http://127.0.0.1:PORT/mcp/", "must not end with '/'"),
        ("http://127.0.0.1:PORT/:mcp", "may not start with ':'"),
        (
            "http://127.0.0.1:PORT/a/*mcp",
            "may not start with ':' or '*'",
        ),
        ("http://127.0.0.1:PORT/mcp?x=1", "must not have a query"),
    ] {
        let table = server_table(resource, "http://127.0.0.1:1/mcp", &policies, "");
        let err = serve_refused(&dir, &table);
        assert!(
            err.contains("gateway.servers[0].resource"),
            "{resource}: {err}"
        );
        assert!(err.contains(why), "{resource}: {err}");
    }
}

#[tokio::test]
async fn a_path_that_disagrees_with_the_resource_is_refused() {
    let dir = DataDir::new();
    let policies = write(&dir, "policies.cedar", POLICIES);
    let table = server_table(
        "http://127.0.0.1:PORT/mcp",
        "http://127.0.0.1:1/mcp",
        &policies,
        "path = \"/other\"",
    );
    let err = serve_refused(&dir, &table);
    assert!(err.contains("gateway.servers[0].path"), "{err}");
}

#[tokio::test]
async fn a_bad_policy_file_stops_the_start_naming_the_file() {
    let dir = DataDir::new();
    let bad = write(
        &dir,
        "broken.cedar",
        "permit (principal, action == Action::\"fly\", resource);",
    );
    let table = server_table(
        "http://127.0.0.1:PORT/mcp",
        "http://127.0.0.1:1/mcp",
        &bad,
        "",
    );
    let err = serve_refused(&dir, &table);
    assert!(
        err.contains("broken.cedar:1:"),
        "names file and line: {err}"
    );
}

#[tokio::test]
async fn the_embedded_gateway_reads_the_servers_own_keys_not_its_jwks_over_http() {
    install_crypto();
    let dir = DataDir::new();
    let port = free_port();
    let seen = Seen::default();
    let up = upstream(seen.clone()).await;
    let policies = write(&dir, "policies.cedar", POLICIES);
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let cfg = write(
        &dir,
        "gatehouse.toml",
        &server_table(&resource, &up, &policies, ""),
    );
    let (id, secret) = create_client(&dir, &["--id", "ci-bot"]);
    let listen = format!("127.0.0.1:{port}");
    // An issuer whose discovery and JWKS nobody serves: fetching keys over
    // HTTP would fail (503), so a 200 shows the key set was read in-process.
    let server = Server::start(
        &dir,
        &[
            "--config",
            &cfg,
            "--listen",
            &listen,
            "--issuer",
            "http://127.0.0.1:1",
        ],
        &[],
    );
    let t = server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("resource", &resource),
            ],
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    let token = t.json["access_token"].as_str().unwrap();
    let r = rpc(&resource, Some(token), &call("search_issues")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_gateway_values_stop_the_start_naming_the_key() {
    let dir = DataDir::new();
    let policies = write(&dir, "policies.cedar", POLICIES);
    let table = server_table(
        "http://127.0.0.1:PORT/mcp",
        "http://127.0.0.1:1/mcp",
        &policies,
        "",
    );
    for (section, key) in [
        ("algorithms = [\"HS256\"]", "gateway.algorithms"),
        ("algorithms = [\"none\"]", "gateway.algorithms"),
        ("algorithms = [\"PS512\"]", "gateway.algorithms"),
        ("leeway = \"90s\"", "gateway.leeway"),
        (
            "allowed_origins = [\"https://a.example/path\"]",
            "gateway.allowed_origins",
        ),
        ("nope = 1", "nope"),
        // The server signs with ES256 by default: the gateway must accept it.
        ("algorithms = [\"RS256\"]", "gateway.algorithms"),
    ] {
        let err = serve_refused(&dir, &format!("[gateway]\n{section}\n{table}"));
        assert!(err.contains(key), "{section}: {err}");
    }
    let missing =
        "[[gateway.servers]]\nresource = \"http://127.0.0.1:PORT/mcp\"\npolicies = \"p.cedar\"\n";
    let err = serve_refused(&dir, missing);
    assert!(
        err.contains("gateway.servers[0]") && err.contains("upstream"),
        "{err}"
    );
    let relative = server_table("mcp", "http://127.0.0.1:1/mcp", &policies, "");
    let err = serve_refused(&dir, &relative);
    assert!(err.contains("gateway.servers[0].resource"), "{err}");
}

// ---------------------------------------------------------------- standalone

#[tokio::test]
async fn standalone_gateway_with_a_config_file_fronts_two_servers_for_a_gatehouse_issuer() {
    install_crypto();
    let as_dir = DataDir::new();
    let gw_dir = DataDir::new();
    let (seen_a, seen_b) = (Seen::default(), Seen::default());
    let (up_a, up_b) = (
        upstream(seen_a.clone()).await,
        upstream(seen_b.clone()).await,
    );
    let port = free_port();
    let a = format!("http://127.0.0.1:{port}/a/mcp");
    let b = format!("http://127.0.0.1:{port}/b/mcp");
    let (id, secret) = create_client(&as_dir, &["--id", "ci-bot"]);
    let auth = Server::start(&as_dir, &["--audience", &a, "--audience", &b], &[]);
    let policies = write(&gw_dir, "policies.cedar", POLICIES);
    let toml = format!(
        "[gateway]\nissuer = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n{}{}",
        auth.base,
        server_table(&a, &up_a, &policies, ""),
        server_table(&b, &up_b, &policies, "")
    );
    let cfg = write(&gw_dir, "gateway.toml", &toml);
    let (mut child, addr, _logs) =
        spawn_ready(&["gateway", "--config", &cfg], &[], "gateway started").unwrap();
    assert_eq!(addr, format!("127.0.0.1:{port}"));

    let t = auth
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("resource", &a)],
        )
        .await;
    let token = t.json["access_token"].as_str().unwrap();
    let r = rpc(&a, Some(token), &call("search_issues")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(seen_a.lock().unwrap()[0].0.get("authorization").is_none());
    let r = rpc(&b, Some(token), &call("search_issues")).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(seen_b.lock().unwrap().is_empty());

    let base = format!("http://127.0.0.1:{port}");
    let meta = get(&format!(
        "{base}/.well-known/oauth-protected-resource/b/mcp"
    ))
    .await;
    assert_eq!(meta.json["resource"], b.as_str());
    assert_eq!(
        meta.json["authorization_servers"],
        json!([auth.base.as_str()])
    );
    assert_eq!(
        get(&format!("{base}/.well-known/oauth-protected-resource"))
            .await
            .status,
        404
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn flags_describe_one_server_that_replaces_the_files_list() {
    let dir = DataDir::new();
    let policies = write(&dir, "policies.cedar", POLICIES);
    let port = free_port();
    let toml = format!(
        "[gateway]\nissuer = \"http://127.0.0.1:1\"\nlisten = \"127.0.0.1:1\"\n{}{}",
        server_table(
            "http://127.0.0.1:1/a/mcp",
            "http://127.0.0.1:1/mcp",
            &policies,
            ""
        ),
        server_table(
            "http://127.0.0.1:1/b/mcp",
            "http://127.0.0.1:1/mcp",
            &policies,
            ""
        )
    );
    let cfg = write(&dir, "gateway.toml", &toml);
    let listen = format!("127.0.0.1:{port}");
    let c = format!("http://{listen}/c/mcp");
    let (mut child, _, _) = spawn_ready(
        &[
            "gateway",
            "--config",
            &cfg,
            "--listen",
            &listen,
            "--resource",
            &c,
            "--upstream",
            "http://127.0.0.1:1/mcp",
            "--policies",
            &policies,
        ],
        &[],
        "gateway started",
    )
    .unwrap();
    let base = format!("http://{listen}");
    let meta = get(&format!(
        "{base}/.well-known/oauth-protected-resource/c/mcp"
    ))
    .await;
    assert_eq!(meta.json["resource"], c.as_str());
    // No --issuer: the file's issuer stays.
    assert_eq!(
        meta.json["authorization_servers"],
        json!(["http://127.0.0.1:1"])
    );
    // One server fronted: the root form is served; the file's servers are gone.
    assert_eq!(
        get(&format!("{base}/.well-known/oauth-protected-resource"))
            .await
            .json["resource"],
        c.as_str()
    );
    assert_eq!(
        get(&format!(
            "{base}/.well-known/oauth-protected-resource/a/mcp"
        ))
        .await
        .status,
        404
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn standalone_servers_on_each_others_metadata_path_are_refused() {
    let dir = DataDir::new();
    let policies = write(&dir, "policies.cedar", POLICIES);
    let port = free_port();
    let toml = format!(
        "[gateway]\nissuer = \"http://127.0.0.1:1\"\nlisten = \"127.0.0.1:{port}\"\n{}{}",
        server_table(
            &format!("http://127.0.0.1:{port}/mcp"),
            "http://127.0.0.1:1/mcp",
            &policies,
            ""
        ),
        server_table(
            &format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"),
            "http://127.0.0.1:1/mcp",
            &policies,
            ""
        )
    );
    let cfg = write(&dir, "gateway.toml", &toml);
    let err = refused(&["gateway", "--config", &cfg], port);
    assert!(err.contains("gateway.servers[1].resource"), "{err}");
}

#[tokio::test]
async fn config_show_shows_the_gateway_section_and_the_environment_sets_its_lists() {
    let dir = DataDir::new();
    let policies = write(&dir, "policies.cedar", POLICIES);
    let cfg = write(
        &dir,
        "gatehouse.toml",
        &server_table(
            "https://mcp.example.com/tools",
            "http://127.0.0.1:1/mcp",
            &policies,
            "",
        ),
    );
    let out = Command::new(bin())
        .args(["config", "show", "--config", &cfg])
        .env(
            "GATEHOUSE_GATEWAY__ALLOWED_ORIGINS",
            "https://a.example, https://b.example",
        )
        .env("GATEHOUSE_GATEWAY__SERVERS", "ignored")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gw = &shown["gateway"];
    assert_eq!(
        gw["allowed_origins"],
        json!(["https://a.example", "https://b.example"])
    );
    assert_eq!(gw["algorithms"], json!(["ES256", "RS256", "EdDSA"]));
    assert_eq!(gw["leeway"], "30s");
    assert_eq!(
        gw["servers"][0]["resource"],
        "https://mcp.example.com/tools"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GATEHOUSE_GATEWAY__SERVERS"), "{stderr}");
}

#[tokio::test]
async fn allowed_methods_pass_through_and_other_unknown_methods_are_denied() {
    install_crypto();
    let dir = DataDir::new();
    let port = free_port();
    let seen = Seen::default();
    let up = upstream(seen.clone()).await;
    let policies = write(&dir, "policies.cedar", POLICIES);
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let cfg = write(
        &dir,
        "gatehouse.toml",
        &server_table(
            &resource,
            &up,
            &policies,
            "allowed_methods = [\"custom/echo\"]",
        ),
    );
    let (id, secret) = create_client(&dir, &["--id", "ci-bot"]);
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(&dir, &["--config", &cfg, "--listen", &listen], &[]);
    let t = server
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("resource", &resource),
            ],
        )
        .await;
    let token = t.json["access_token"].as_str().unwrap().to_string();
    let msg = |method: &str| json!({"jsonrpc": "2.0", "id": 3, "method": method});

    let r = rpc(&resource, Some(&token), &msg("custom/echo")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = rpc(&resource, Some(&token), &msg("custom/other")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32003);
    let methods: Vec<String> = seen.lock().unwrap().iter().map(|s| s.1.clone()).collect();
    assert_eq!(
        methods,
        vec!["custom/echo"],
        "the denied method never went upstream"
    );
}

#[tokio::test]
async fn allowed_methods_may_not_bypass_the_policies() {
    let dir = DataDir::new();
    let policies = write(&dir, "policies.cedar", POLICIES);
    let err = serve_refused(
        &dir,
        &server_table(
            "http://127.0.0.1:PORT/mcp",
            "http://127.0.0.1:1/mcp",
            &policies,
            "allowed_methods = [\"tools/call\"]",
        ),
    );
    assert!(
        err.contains("allowed_methods may not name tools/call"),
        "{err}"
    );
}

// ------------------------------------------------------ instant cut-off

/// `POST /oauth/revoke` of `token` by its own client.
async fn revoke(base_url: &str, id: &str, secret: &str, token: &str) {
    let r = reqwest::Client::new()
        .post(format!("{base_url}/oauth/revoke"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    // RFC 7009 answers 200 whether or not anything was revoked: ask the
    // issuer whether it was (a client always sees its own tokens).
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = reqwest::Client::new()
        .post(format!("{base_url}/oauth/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["active"], false, "the token was not revoked: {seen}");
}

/// Whether `token` is refused at `resource` with 401 invalid_token within a few seconds.
async fn refused_soon(resource: &str, token: &str) -> bool {
    eventually(Duration::from_secs(10), || async {
        let r = rpc(resource, Some(token), &call("search_issues")).await;
        r.status == 401
            && r.header("www-authenticate")
                .is_some_and(|c| c.contains("error=\"invalid_token\""))
    })
    .await
}

#[tokio::test]
async fn embedded_with_check_revocation_a_revoked_token_is_refused_at_once() {
    let e = embedded("[gateway]\ncheck_revocation = true\nrevocation_cache = \"1s\"").await;
    let t = e.token(&e.a).await;
    let token = t.json["access_token"].as_str().unwrap();
    assert_eq!(
        rpc(&e.a, Some(token), &call("search_issues")).await.status,
        200
    );
    revoke(&e.server.base, &e.id, &e.secret, token).await;
    assert!(
        refused_soon(&e.a, token).await,
        "the revoked token kept working"
    );
    let reached = e.seen_a.lock().unwrap().len();
    let r = rpc(&e.a, Some(token), &call("search_issues")).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        e.seen_a.lock().unwrap().len(),
        reached,
        "refused calls never reach the upstream"
    );
}

#[tokio::test]
async fn by_default_a_revoked_token_works_until_it_expires() {
    // The documented trade-off: no per-call check, short token lifetimes.
    let e = embedded("").await;
    let t = e.token(&e.a).await;
    let token = t.json["access_token"].as_str().unwrap();
    revoke(&e.server.base, &e.id, &e.secret, token).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rpc(&e.a, Some(token), &call("search_issues")).await.status,
        200
    );
}

#[tokio::test]
async fn standalone_with_check_revocation_asks_the_issuer_by_introspection() {
    install_crypto();
    let as_dir = DataDir::new();
    let gw_dir = DataDir::new();
    let seen = Seen::default();
    let up = upstream(seen.clone()).await;
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let (id, secret) = create_client(&as_dir, &["--id", "ci-bot"]);
    // The gateway's own client: registered for the resource it serves, so
    // introspection shows it the tokens meant for that resource.
    let (rs_id, rs_secret) = create_client(&as_dir, &["--resource-server", &resource]);
    let auth = Server::start(&as_dir, &["--audience", &resource], &[]);
    let policies = write(&gw_dir, "policies.cedar", POLICIES);
    let gateway_toml = |secret: &str| {
        format!(
            "[gateway]\nissuer = \"{}\"\nlisten = \"127.0.0.1:{port}\"\ncheck_revocation = true\nrevocation_cache = \"1s\"\nintrospection_client_id = \"{rs_id}\"\nintrospection_client_secret = \"{secret}\"\n{}",
            auth.base,
            server_table(&resource, &up, &policies, "")
        )
    };
    let t = auth
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("resource", &resource),
            ],
        )
        .await;
    let token = t.json["access_token"].as_str().unwrap();

    // Wrong introspection credentials: the gateway cannot tell, so 503.
    let cfg = write(&gw_dir, "wrong.toml", &gateway_toml("not-the-secret"));
    let (mut child, _, _) =
        spawn_ready(&["gateway", "--config", &cfg], &[], "gateway started").unwrap();
    let r = rpc(&resource, Some(token), &call("search_issues")).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.header("retry-after").is_some());
    assert!(seen.lock().unwrap().is_empty());
    let _ = child.kill();
    let _ = child.wait();

    let cfg = write(&gw_dir, "gateway.toml", &gateway_toml(&rs_secret));
    let (mut child, _, logs) =
        spawn_ready(&["gateway", "--config", &cfg], &[], "gateway started").unwrap();
    assert_eq!(
        rpc(&resource, Some(token), &call("search_issues"))
            .await
            .status,
        200
    );
    revoke(&auth.base, &id, &secret, token).await;
    assert!(
        refused_soon(&resource, token).await,
        "the revoked token kept working"
    );
    let reached = seen.lock().unwrap().len();
    let r = rpc(&resource, Some(token), &call("search_issues")).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        seen.lock().unwrap().len(),
        reached,
        "refused calls never reach the upstream"
    );
    assert!(
        !logs.lock().unwrap().contains(&rs_secret),
        "the introspection secret is never logged"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn check_revocation_settings_are_validated_naming_the_key() {
    let dir = DataDir::new();
    let policies = write(&dir, "policies.cedar", POLICIES);
    let table = server_table(
        "http://127.0.0.1:PORT/mcp",
        "http://127.0.0.1:1/mcp",
        &policies,
        "",
    );
    // Embedded, the check runs in-process: no credentials to configure.
    let err = serve_refused(
        &dir,
        &format!("[gateway]\ncheck_revocation = true\nintrospection_client_id = \"x\"\n{table}"),
    );
    assert!(err.contains("gateway.introspection_client_id"), "{err}");
    let err = serve_refused(
        &dir,
        &format!("[gateway]\nrevocation_cache = \"1h\"\n{table}"),
    );
    assert!(err.contains("gateway.revocation_cache"), "{err}");
    // Standalone, the credentials are required.
    let port = free_port();
    let toml = format!(
        "[gateway]\nissuer = \"http://127.0.0.1:1\"\nlisten = \"127.0.0.1:{port}\"\ncheck_revocation = true\n{}",
        table.replace("PORT", &port.to_string())
    );
    let cfg = write(&dir, "gateway.toml", &toml);
    let err = refused(&["gateway", "--config", &cfg], port);
    assert!(err.contains("gateway.introspection_client_id"), "{err}");
}
