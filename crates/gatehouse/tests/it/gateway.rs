//! The MCP gateway over real HTTP: a test issuer whose key the test holds (so
//! every kind of bad token can be minted), a recording upstream, and the real
//! `gatehouse gateway` process between them; plus one run with tokens from
//! Gatehouse's own authorization server.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{any, get};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const POLICIES: &str = r#"
@id("ci-bot-search")
permit (principal == Client::"ci-bot", action == Action::"call_tool", resource == Tool::"search_issues");
@id("readers")
permit (principal, action == Action::"read_resource", resource)
when { principal.scopes.contains("docs:read") };
@id("no-delete")
forbid (principal, action == Action::"call_tool", resource == Tool::"delete_repo");
"#;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An issuer under the test's control: discovery + JWKS served in-process.
struct TestIssuer {
    base: String,
    kid: String,
    pkcs8: Vec<u8>,
    public_x: String,
    public_y: String,
}

impl TestIssuer {
    async fn start() -> TestIssuer {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = pair.to_pkcs8v1().unwrap().as_ref().to_vec();
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let kid = "test-key-1".to_string();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"}]});
        let meta = json!({"issuer": base, "jwks_uri": format!("{base}/jwks")});
        let app = Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(move || {
                    let m = meta.clone();
                    async move { axum::Json(m) }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    let j = jwks.clone();
                    async move { axum::Json(j) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestIssuer {
            base,
            kid,
            pkcs8,
            public_x: x,
            public_y: y,
        }
    }

    fn claims(&self, sub: &str, aud: &str, scope: &str) -> Value {
        json!({"iss": self.base, "sub": sub, "client_id": sub, "aud": aud, "scope": scope,
               "iat": now(), "exp": now() + 300, "jti": format!("j{}", now())})
    }

    fn sign_with(&self, header: Value, claims: &Value) -> String {
        let key = jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8);
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.typ = header["typ"].as_str().map(String::from);
        h.kid = header["kid"].as_str().map(String::from);
        jsonwebtoken::encode(&h, claims, &key).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with(json!({"typ": "at+jwt", "kid": self.kid}), claims)
    }
}

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    headers: Vec<HeaderMap>,
    methods: Vec<String>,
}

async fn upstream(seen: Arc<Mutex<Seen>>) -> String {
    let app = Router::new().route(
        "/mcp",
        any(move |method: axum::http::Method, headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                {
                    let mut s = seen.lock().unwrap();
                    s.headers.push(headers.clone());
                    match &msg {
                        Value::Array(items) => s.methods.extend(
                            items.iter().map(|m| m["method"].as_str().unwrap_or("").to_string()),
                        ),
                        m => s.methods.push(m["method"].as_str().unwrap_or(method.as_str()).to_string()),
                    }
                }
                if method == axum::http::Method::GET {
                    // The server's SSE stream: one event now, one later.
                    let stream = futures_util::stream::unfold(0, |n| async move {
                        match n {
                            0 => Some((Ok::<_, std::io::Error>("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"first\":true}}\n\n".to_string()), 1)),
                            1 => {
                                tokio::time::sleep(Duration::from_millis(800)).await;
                                Some((Ok("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"second\":true}}\n\n".to_string()), 2))
                            }
                            _ => None,
                        }
                    });
                    return Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Body::from_stream(stream))
                        .unwrap();
                }
                let answer = |msg: &Value| {
                    let result = match msg["method"].as_str() {
                        Some("tools/list") => json!({"tools": [{"name": "search_issues"}, {"name": "delete_repo"}, {"name": "merge_pr"}]}),
                        Some("tools/call") => json!({"content": [{"type": "text", "text": format!("called {}", msg["params"]["name"])}]}),
                        _ => json!({}),
                    };
                    json!({"jsonrpc": "2.0", "id": msg["id"].clone(), "result": result})
                };
                let reply = match &msg {
                    Value::Array(items) => Value::Array(items.iter().map(answer).collect()),
                    one => answer(one),
                };
                if headers.get("mcp-test-sse").is_some() {
                    return Response::builder()
                        .header("content-type", "text/event-stream")
                        .header("mcp-session-id", "s-1")
                        .body(Body::from(format!("event: message\ndata: {reply}\n\n")))
                        .unwrap();
                }
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .header("mcp-session-id", "s-1")
                    .body(Body::from(reply.to_string()))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}

struct Gateway {
    child: Child,
    resource: String,
    base: String,
    http: reqwest::Client,
    logs: Arc<Mutex<String>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(
    dir: &DataDir,
    issuer: &str,
    upstream: &str,
    extra: &[&str],
) -> Result<Gateway, String> {
    let policies = dir.path().join("policies.cedar");
    if !policies.exists() {
        std::fs::write(&policies, POLICIES).unwrap();
    }
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let policies = policies.display().to_string();
    let mut args = vec![
        "gateway",
        "--listen",
        &listen,
        "--upstream",
        upstream,
        "--resource",
        &resource,
        "--issuer",
        issuer,
        "--policies",
        &policies,
    ];
    args.extend_from_slice(extra);
    let (child, addr, logs) = spawn_ready(&args, &[], "gateway started")?;
    Ok(Gateway {
        child,
        base: format!("http://{addr}"),
        resource,
        http: reqwest::Client::new(),
        logs,
    })
}

impl Gateway {
    async fn rpc(&self, token: Option<&str>, body: Value, headers: &[(&str, &str)]) -> Response2 {
        let mut req = self
            .http
            .post(&self.resource)
            .header("accept", "application/json, text/event-stream")
            .header("cookie", "session=secret-cookie")
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Response2::from(req.send().await.unwrap()).await
    }
}

type Response2 = gatehouse_testkit::Response;

fn call(name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": {}}})
}

#[tokio::test]
async fn a_bare_request_gets_401_pointing_at_protected_resource_metadata() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let up = upstream(Arc::default()).await;
    let gw = start_gateway(&dir, &issuer.base, &up, &["--required-scope", "mcp"]).unwrap();
    let r = gw.rpc(None, call("search_issues"), &[]).await;
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap().to_string();
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", gw.base);
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp\""), "{challenge}");
    assert!(
        !challenge.contains("error="),
        "no token, no error code: {challenge}"
    );
    for url in [
        metadata_url,
        format!("{}/.well-known/oauth-protected-resource", gw.base),
    ] {
        let meta: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        assert_eq!(meta["resource"], gw.resource.as_str());
        assert_eq!(meta["authorization_servers"], json!([issuer.base]));
        assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
        assert_eq!(meta["scopes_supported"], json!(["mcp"]));
    }
}

#[tokio::test]
async fn an_allowed_client_calls_its_tool_is_denied_others_and_lists_only_what_it_may_call() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let up = upstream(seen.clone()).await;
    let gw = start_gateway(&dir, &issuer.base, &up, &[]).unwrap();
    let token = issuer.sign(&issuer.claims("ci-bot", &gw.resource, ""));

    let r = gw.rpc(Some(&token), call("search_issues"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["result"]["content"][0]["text"],
        "called \"search_issues\""
    );
    // The session id is bound to the caller (the upstream's id plus a MAC).
    assert!(r.header("mcp-session-id").unwrap().starts_with("s-1."));

    for denied in ["merge_pr", "delete_repo"] {
        let r = gw.rpc(Some(&token), call(denied), &[]).await;
        // A JSON-RPC error answering the request (HTTP 200), which MCP
        // clients surface as the call's error.
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["error"]["code"], -32003);
        assert_eq!(r.json["id"], 7);
        // The decision's id, to look up in the log; nothing of the policies.
        let decision = r.json["error"]["data"]["decision_id"].as_str().unwrap();
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains(decision),
            "{}",
            r.text
        );
        // The log is read from the process as it writes: wait for the line.
        let logged = || async {
            gw.logs.lock().unwrap().lines().any(|l| {
                l.contains(&format!("decision_id={decision}")) && l.contains("decision=\"deny\"")
            })
        };
        assert!(
            eventually(std::time::Duration::from_secs(5), logged).await,
            "the decision id is in the log: {}",
            gw.logs.lock().unwrap()
        );
        assert!(!r.text.contains("ci-bot-search"), "{}", r.text);
        assert!(
            r.header("www-authenticate").is_none(),
            "a denial must not start a step-up loop"
        );
        assert!(!r.text.contains("ci-bot-search"), "no policy details leak");
    }
    {
        let s = seen.lock().unwrap();
        assert_eq!(
            s.methods,
            vec!["tools/call"],
            "denied calls never reach the upstream"
        );
        let h = &s.headers[0];
        assert!(
            h.get("authorization").is_none(),
            "the client's token is never passed upstream"
        );
        assert!(h.get("cookie").is_none());
    }

    let list = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"});
    let r = gw.rpc(Some(&token), list.clone(), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["result"]["tools"],
        json!([{"name": "search_issues"}])
    );
    // The same filtering inside an SSE response.
    let r = gw.rpc(Some(&token), list, &[("mcp-test-sse", "1")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = r
        .text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let msg: Value = serde_json::from_str(data).unwrap();
    assert_eq!(msg["result"]["tools"], json!([{"name": "search_issues"}]));
    // The child's stderr is read by another thread: wait for the line.
    let named = eventually(Duration::from_secs(5), || async {
        gw.logs.lock().unwrap().contains("ci-bot-search")
    })
    .await;
    let logs = gw.logs.lock().unwrap().clone();
    assert!(logs.contains("authorization decision"));
    assert!(named, "decisions name the policy's @id: {logs}");
}

#[tokio::test]
async fn bad_tokens_all_get_401_invalid_token() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let up = upstream(seen.clone()).await;
    let gw = start_gateway(&dir, &issuer.base, &up, &[]).unwrap();
    let good = issuer.claims("ci-bot", &gw.resource, "");
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let valid = issuer.sign(&good);
    let mut tampered = valid.clone();
    let payload = B64.encode(serde_json::to_vec(&with("sub", json!("admin"))).unwrap());
    let parts: Vec<&str> = valid.split('.').collect();
    tampered = tampered.replace(parts[1], &payload);
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"at+jwt","kid":"test-key-1"}"#),
        B64.encode(serde_json::to_vec(&good).unwrap())
    );
    // HS256 keyed with the public key's bytes (the classic confusion attack).
    let hs256 = {
        let secret = format!("{}{}", issuer.public_x, issuer.public_y);
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(issuer.kid.clone());
        jsonwebtoken::encode(
            &h,
            &good,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let cases = vec![
        ("expired", issuer.sign(&with("exp", json!(now() - 120)))),
        (
            "not yet valid",
            issuer.sign(&with("nbf", json!(now() + 600))),
        ),
        (
            "wrong audience",
            issuer.sign(&with("aud", json!("http://127.0.0.1:1/other"))),
        ),
        (
            "wrong issuer",
            issuer.sign(&with("iss", json!("http://127.0.0.1:1"))),
        ),
        ("tampered", tampered),
        ("alg none", none),
        ("hs256 with the public key", hs256),
        (
            "unknown kid",
            issuer.sign_with(json!({"typ": "at+jwt", "kid": "nope"}), &good),
        ),
        (
            "wrong typ",
            issuer.sign_with(json!({"typ": "JWT", "kid": issuer.kid}), &good),
        ),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, token) in cases {
        let r = gw.rpc(Some(&token), call("search_issues"), &[]).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        let c = r.header("www-authenticate").unwrap_or_default();
        assert!(c.contains("error=\"invalid_token\""), "{what}: {c}");
        assert!(c.contains("resource_metadata="), "{what}: {c}");
    }
    assert!(
        seen.lock().unwrap().methods.is_empty(),
        "nothing reached the upstream"
    );
    // The valid token still works (and a token in the query is refused).
    assert_eq!(
        gw.rpc(Some(&valid), call("search_issues"), &[])
            .await
            .status,
        200
    );
    let r = gw
        .http
        .post(format!("{}?access_token={valid}", gw.resource))
        .json(&call("search_issues"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_missing_required_scope_is_403_insufficient_scope() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let up = upstream(Arc::default()).await;
    let gw = start_gateway(&dir, &issuer.base, &up, &["--required-scope", "mcp"]).unwrap();
    let token = issuer.sign(&issuer.claims("ci-bot", &gw.resource, "other"));
    let r = gw.rpc(Some(&token), call("search_issues"), &[]).await;
    assert_eq!(r.status, 403);
    let c = r.header("www-authenticate").unwrap();
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(c.contains("scope=\"mcp\""), "{c}");
    let token = issuer.sign(&issuer.claims("ci-bot", &gw.resource, "mcp"));
    assert_eq!(
        gw.rpc(Some(&token), call("search_issues"), &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn headers_that_disagree_with_the_body_are_refused() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let up = upstream(seen.clone()).await;
    let gw = start_gateway(&dir, &issuer.base, &up, &[]).unwrap();
    let token = issuer.sign(&issuer.claims("ci-bot", &gw.resource, ""));
    let r = gw
        .rpc(
            Some(&token),
            call("search_issues"),
            &[("mcp-method", "tools/call"), ("mcp-name", "merge_pr")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = gw
        .rpc(
            Some(&token),
            call("search_issues"),
            &[("mcp-method", "tools/call"), ("mcp-name", "search_issues")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let s = seen.lock().unwrap();
    assert_eq!(s.methods.len(), 1);
    assert_eq!(
        s.headers[0].get("mcp-name").unwrap(),
        "search_issues",
        "mcp-* headers pass through"
    );
}

#[tokio::test]
async fn the_servers_sse_stream_flows_through_as_it_is_written() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let up = upstream(Arc::default()).await;
    let gw = start_gateway(&dir, &issuer.base, &up, &[]).unwrap();
    let token = issuer.sign(&issuer.claims("ci-bot", &gw.resource, ""));
    let start = Instant::now();
    let mut resp = gw
        .http
        .get(&gw.resource)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("first"));
    assert!(
        start.elapsed() < Duration::from_millis(700),
        "the first event must not wait for the second"
    );
    let mut rest = String::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&c));
    }
    assert!(rest.contains("second"));
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_with_a_json_rpc_error() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let dead = format!("http://127.0.0.1:{}/mcp", free_port());
    let gw = start_gateway(&dir, &issuer.base, &dead, &[]).unwrap();
    let token = issuer.sign(&issuer.claims("ci-bot", &gw.resource, ""));
    let r = gw.rpc(Some(&token), call("search_issues"), &[]).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json["jsonrpc"], "2.0");
}

#[tokio::test]
async fn an_unreachable_issuer_is_503_not_401() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let up = upstream(Arc::default()).await;
    let dead_issuer = format!("http://127.0.0.1:{}", free_port());
    let gw = start_gateway(&dir, &dead_issuer, &up, &[]).unwrap();
    let mut claims = issuer.claims("ci-bot", &gw.resource, "");
    claims["iss"] = json!(dead_issuer);
    let r = gw
        .rpc(Some(&issuer.sign(&claims)), call("search_issues"), &[])
        .await;
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn a_bad_policy_file_stops_the_start_naming_the_file() {
    let dir = DataDir::new();
    std::fs::write(
        dir.path().join("policies.cedar"),
        "permit (principal, action == Action::\"fly\", resource);",
    )
    .unwrap();
    let up = "http://127.0.0.1:1/mcp";
    let err = match start_gateway(&dir, "http://127.0.0.1:1", up, &[]) {
        Ok(_) => panic!("must not start"),
        Err(logs) => logs,
    };
    assert!(
        err.contains("policies.cedar:1:"),
        "names file and line: {err}"
    );
    assert!(
        err.contains("fly"),
        "carries the validator's message: {err}"
    );
}

/// Starts a gateway over `policies` and returns its start-up error.
fn refused_start(dir: &DataDir, policies: &str, extra: &[&str]) -> String {
    std::fs::write(dir.path().join("policies.cedar"), policies).unwrap();
    match start_gateway(dir, "http://127.0.0.1:1", "http://127.0.0.1:1/mcp", extra) {
        Ok(_) => panic!("must not start with {policies}"),
        Err(logs) => logs,
    }
}

#[tokio::test]
async fn policy_errors_name_file_line_and_column() {
    let dir = DataDir::new();
    // A syntax error on line 3.
    let err = refused_start(
        &dir,
        "// one\n// two\npermit (principal, action, resource) when { principal.scopes.contains( };\n",
        &[],
    );
    assert!(err.contains("policies.cedar:3:"), "{err}");
    // A typo on a closed record is still caught, although context.arguments
    // is open: `scope` is not an attribute of Client.
    let err = refused_start(
        &dir,
        "permit (principal is Client, action, resource)\nwhen { principal.scope.contains(\"x\") };\n",
        &[],
    );
    assert!(err.contains("policies.cedar:2:"), "{err}");
    assert!(err.contains("scope"), "{err}");
}

#[tokio::test]
async fn a_schema_that_declares_the_context_itself_is_refused() {
    let dir = DataDir::new();
    let schema = dir.path().join("custom.cedarschema");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/gatehouse.cedarschema"
    ))
    .unwrap();
    std::fs::write(
        &schema,
        shipped.replace(
            "resource: [Tool] };",
            "resource: [Tool], context: { dry_run: Bool } };",
        ),
    )
    .unwrap();
    let schema = schema.display().to_string();
    let err = refused_start(&dir, POLICIES, &["--schema", &schema]);
    assert!(err.contains("custom.cedarschema"), "{err}");
    assert!(err.contains("call_tool declares a context"), "{err}");
}

const ARGUMENT_POLICIES: &str = r#"
@id("search-own-repos")
permit (principal == Client::"ci-bot", action == Action::"call_tool", resource == Tool::"search_issues")
when { context.arguments has repo && context.arguments.repo like "acme/*" };
@id("scale-by-one-and-a-half")
permit (principal == Client::"ci-bot", action == Action::"call_tool", resource == Tool::"scale")
when { context.arguments has factor && context.arguments.factor == "1.5" };
@id("deploy-verbose")
permit (principal == Client::"ci-bot", action == Action::"call_tool", resource == Tool::"deploy")
when { context.arguments has opts && context.arguments.opts has verbose && context.arguments.opts.verbose == true };
@id("deploy-dry-run-only")
forbid (principal, action == Action::"call_tool", resource == Tool::"deploy")
unless { context.arguments.dry_run == true };
"#;

fn call_with(name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

#[tokio::test]
async fn policies_decide_on_the_calls_arguments() {
    let dir = DataDir::new();
    std::fs::write(dir.path().join("policies.cedar"), ARGUMENT_POLICIES).unwrap();
    let issuer = TestIssuer::start().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let up = upstream(seen.clone()).await;
    let gw = start_gateway(&dir, &issuer.base, &up, &[]).unwrap();
    let token = issuer.sign(&issuer.claims("ci-bot", &gw.resource, ""));

    let allowed = [
        call_with("search_issues", json!({"repo": "acme/api", "q": null})),
        // Non-integer numbers reach Cedar as decimal strings.
        call_with("scale", json!({"factor": 1.5})),
        call_with(
            "deploy",
            json!({"dry_run": true, "opts": {"verbose": true}}),
        ),
    ];
    for body in &allowed {
        let r = gw.rpc(Some(&token), body.clone(), &[]).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text);
    }
    let denied = [
        call_with("search_issues", json!({"repo": "evil/api"})),
        // A missing argument: the permit's `has` guard fails.
        call_with("search_issues", json!({})),
        call_with("scale", json!({"factor": 2})),
        // The forbid fails to evaluate without dry_run, and that denies.
        call_with("deploy", json!({"opts": {"verbose": true}})),
        call_with(
            "deploy",
            json!({"dry_run": false, "opts": {"verbose": true}}),
        ),
    ];
    for body in &denied {
        let r = gw.rpc(Some(&token), body.clone(), &[]).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text);
        assert_eq!(r.json["error"]["code"], -32003, "{body}");
    }

    // Arguments nested deeper than 8 levels cannot be put to the policies.
    let mut deep = json!("leaf");
    for _ in 0..9 {
        deep = json!({ "x": deep });
    }
    let r = gw
        .rpc(Some(&token), call_with("search_issues", deep), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32602);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deeper than 8")
    );
    // Arguments that are not an object likewise.
    let r = gw
        .rpc(
            Some(&token),
            call_with("search_issues", json!(["acme/api"])),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32602);

    assert_eq!(
        seen.lock().unwrap().methods.len(),
        allowed.len(),
        "only the allowed calls reached the upstream"
    );

    // A tool that may be called with the right arguments is listed; the
    // upstream's others (no permit at all) are not.
    let list = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"});
    let r = gw.rpc(Some(&token), list, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["result"]["tools"],
        json!([{"name": "search_issues"}])
    );
    // The child's stderr is read by another thread: wait for the line.
    let named = eventually(Duration::from_secs(5), || async {
        gw.logs.lock().unwrap().contains("deploy-dry-run-only")
    })
    .await;
    assert!(named, "{}", gw.logs.lock().unwrap());
}

#[tokio::test]
async fn a_machine_client_with_a_gatehouse_token_calls_its_tool_end_to_end() {
    install_crypto();
    let as_dir = DataDir::new();
    let gw_dir = DataDir::new();
    let up = upstream(Arc::default()).await;
    // The gateway's resource must be an allowed audience of the authorization
    // server, so fix the gateway's port first.
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let (id, secret) = create_client(&as_dir, &["--id", "ci-bot"]);
    let auth = Server::start(&as_dir, &["--audience", &resource], &[]);
    std::fs::write(gw_dir.path().join("policies.cedar"), POLICIES).unwrap();
    let policies = gw_dir.path().join("policies.cedar").display().to_string();
    let listen = format!("127.0.0.1:{port}");
    let (child, _, _) = spawn_ready(
        &[
            "gateway",
            "--listen",
            &listen,
            "--upstream",
            &up,
            "--resource",
            &resource,
            "--issuer",
            &auth.base,
            "--policies",
            &policies,
        ],
        &[],
        "gateway started",
    )
    .unwrap();
    let gw = Gateway {
        child,
        resource: resource.clone(),
        base: format!("http://{listen}"),
        http: reqwest::Client::new(),
        logs: Arc::default(),
    };
    let t = auth
        .token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let token = t.json["access_token"].as_str().unwrap();
    let r = gw.rpc(Some(token), call("search_issues"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = gw.rpc(Some(token), call("merge_pr"), &[]).await;
    assert_eq!((r.status, &r.json["error"]["code"]), (200, &json!(-32003)));
}

#[tokio::test]
async fn a_session_belongs_to_the_principal_that_created_it() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let up = upstream(seen.clone()).await;
    let gw = start_gateway(&dir, &issuer.base, &up, &[]).unwrap();
    let owner = issuer.sign(&issuer.claims("ci-bot", &gw.resource, ""));
    let other = issuer.sign(&issuer.claims("other-bot", &gw.resource, ""));
    let r = gw.rpc(Some(&owner), call("search_issues"), &[]).await;
    let session = r.header("mcp-session-id").unwrap().to_string();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let r = gw
        .rpc(Some(&other), ping.clone(), &[("mcp-session-id", &session)])
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    // The upstream's own id is no session id at the gateway.
    let r = gw
        .rpc(Some(&owner), ping.clone(), &[("mcp-session-id", "s-1")])
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = gw
        .rpc(Some(&owner), ping, &[("mcp-session-id", &session)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let s = seen.lock().unwrap();
    assert_eq!(
        s.methods,
        vec!["tools/call", "ping"],
        "refused uses never reach it"
    );
    assert_eq!(
        s.headers[1].get("mcp-session-id").unwrap(),
        "s-1",
        "the upstream sees its own session id"
    );
}

#[tokio::test]
async fn policies_reload_on_sighup_and_a_bad_reload_keeps_the_old_set() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let up = upstream(Arc::default()).await;
    let gw = start_gateway(&dir, &issuer.base, &up, &[]).unwrap();
    let token = issuer.sign(&issuer.claims("ci-bot", &gw.resource, ""));
    let r = gw.rpc(Some(&token), call("merge_pr"), &[]).await;
    assert_eq!((r.status, &r.json["error"]["code"]), (200, &json!(-32003)));

    let file = dir.path().join("policies.cedar");
    std::fs::write(
        &file,
        format!("{POLICIES}\npermit (principal == Client::\"ci-bot\", action == Action::\"call_tool\", resource == Tool::\"merge_pr\");\n"),
    )
    .unwrap();
    let hup = || {
        std::process::Command::new("kill")
            .args(["-HUP", &gw.child.id().to_string()])
            .status()
            .unwrap()
    };
    assert!(hup().success());
    let allowed = eventually(Duration::from_secs(5), || async {
        gw.rpc(Some(&token), call("merge_pr"), &[]).await.status == 200
    })
    .await;
    assert!(allowed, "the new policies apply after SIGHUP");

    std::fs::write(
        &file,
        "permit (principal, action == Action::\"fly\", resource);",
    )
    .unwrap();
    assert!(hup().success());
    let logged = eventually(Duration::from_secs(5), || async {
        gw.logs.lock().unwrap().contains("policy reload failed")
    })
    .await;
    assert!(logged, "a bad reload says why");
    assert_eq!(
        gw.rpc(Some(&token), call("merge_pr"), &[]).await.status,
        200,
        "old set kept"
    );
}

#[tokio::test]
async fn a_batch_is_decided_element_by_element() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let up = upstream(seen.clone()).await;
    let gw = start_gateway(&dir, &issuer.base, &up, &[]).unwrap();
    let token = issuer.sign(&issuer.claims("ci-bot", &gw.resource, ""));
    let mut allowed = call("search_issues");
    allowed["id"] = json!(1);
    let mut denied = call("merge_pr");
    denied["id"] = json!(2);
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let r = gw
        .rpc(Some(&token), json!([allowed, denied, list]), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let answers = r.json.as_array().expect("a batch answer is an array");
    let by_id = |id: i64| answers.iter().find(|a| a["id"] == id).cloned().unwrap();
    assert_eq!(
        by_id(1)["result"]["content"][0]["text"],
        "called \"search_issues\""
    );
    assert_eq!(by_id(2)["error"]["code"], -32003);
    assert_eq!(
        by_id(3)["result"]["tools"],
        json!([{"name": "search_issues"}])
    );
    assert_eq!(
        seen.lock().unwrap().methods,
        vec!["tools/call", "tools/list"],
        "the denied element never reaches the upstream"
    );
    // A batch whose every element is denied is answered element by element.
    let r = gw.rpc(Some(&token), json!([call("merge_pr")]), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json[0]["error"]["code"], -32003, "{}", r.text);
}

#[tokio::test]
async fn origins_outside_the_allowed_list_are_refused_and_preflight_allows_mcp_headers() {
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let up = upstream(Arc::default()).await;
    let gw = start_gateway(
        &dir,
        &issuer.base,
        &up,
        &["--allowed-origin", "https://app.example"],
    )
    .unwrap();
    let token = issuer.sign(&issuer.claims("ci-bot", &gw.resource, ""));
    let r = gw
        .rpc(
            Some(&token),
            call("search_issues"),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = gw
        .rpc(
            Some(&token),
            call("search_issues"),
            &[("origin", "https://app.example")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let pre = gw
        .http
        .request(reqwest::Method::OPTIONS, &gw.resource)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, mcp-session-id, mcp-protocol-version, last-event-id",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    let allowed = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
        "authorization",
    ] {
        assert!(allowed.contains(h), "{allowed}");
    }
    // Default: any origin (bearer tokens are not ambient credentials).
    let open = start_gateway(&DataDir::new(), &issuer.base, &up, &[]).unwrap();
    let token = issuer.sign(&issuer.claims("ci-bot", &open.resource, ""));
    let r = open
        .rpc(
            Some(&token),
            call("search_issues"),
            &[("origin", "https://anyone.example")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}
