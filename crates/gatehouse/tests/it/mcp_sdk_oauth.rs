//! The official TypeScript MCP SDK's OAuth client acting for a person,
//! pinned in `interop/package.json`, through
//! `interop/mcp-oauth-client.mjs`: it starts from the embedded gateway's bare
//! 401, discovers Gatehouse (protected-resource metadata → authorization-
//! server metadata), registers itself as a public client, sends the person
//! through the authorization endpoint with PKCE (S256) and `resource` — its
//! provider's redirect step signs in and allows headlessly, through the real
//! forms — exchanges the code, calls a tool on a real SDK server behind the
//! gateway, then refreshes by itself when the gateway refuses a broken access
//! token, and calls the tool again.
//!
//! Needs Node.js and `npm ci --prefix interop`. Without them the test says so
//! loudly on stderr and passes, except under CI (`CI` set), where it fails.

use gatehouse_testkit::interop::*;
use gatehouse_testkit::person::*;
use gatehouse_testkit::*;
use serde_json::Value;
use std::time::Duration;

/// People may call `search_issues`, nothing else; clients acting for
/// themselves, nothing.
const POLICIES: &str = r#"
@id("people-search")
permit (principal is User, action == Action::"call_tool", resource == Tool::"search_issues");
"#;

#[tokio::test]
async fn the_typescript_sdk_signs_a_person_in_with_pkce_and_resource_calls_a_tool_and_refreshes() {
    require_sdk("mcp_sdk_oauth");
    install_crypto();
    let dir = DataDir::new();
    let user = add_user(&dir, "alice", &["eng"]);

    // One port for the authorization server and the embedded gateway: the
    // resource URL must be known before the server starts.
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let upstream = Upstream::start();
    let policies = dir.path().join("policies.cedar");
    std::fs::write(&policies, POLICIES).unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "[[gateway.servers]]\nresource = \"{resource}\"\nupstream = \"{}\"\npolicies = \"{}\"\n",
            upstream.url,
            policies.display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(&dir, &["--config", &config, "--listen", &listen], &[]);

    let (ok, stdout, stderr) = run_script(
        "mcp-oauth-client.mjs",
        &[&resource, "alice", PASSWORD, "search_issues"],
        Duration::from_secs(90),
    );
    let context = || {
        format!(
            "client stdout:\n{stdout}\nclient stderr:\n{stderr}\nupstream:\n{}\nserver logs:\n{}",
            upstream.lines().join("\n"),
            server.logs()
        )
    };
    assert!(ok, "the SDK client failed\n{}", context());
    let out = json_line(&stdout).unwrap_or_else(|| panic!("no JSON line\n{}", context()));
    let s = |key: &str| out[key].as_str().unwrap_or_default().to_string();

    // It registered itself, once, as a public client with its loopback URI.
    let client_id = s("client_id");
    assert!(!client_id.is_empty(), "{out}");
    assert_eq!(out["registrations"], 1, "{out}");

    // The authorization request the SDK built: code + PKCE S256 + resource.
    let authz = &out["authorization"];
    assert_eq!(authz["response_type"], "code", "{out}");
    assert_eq!(authz["client_id"], client_id.as_str(), "{out}");
    assert_eq!(authz["redirect_uri"], out["redirect_uri"], "{out}");
    assert_eq!(authz["code_challenge_method"], "S256", "{out}");
    assert!(
        authz["code_challenge"]
            .as_str()
            .is_some_and(|c| c.len() >= 43),
        "{out}"
    );
    assert_eq!(
        authz["resource"],
        resource.as_str(),
        "the authorization request carries the gateway's resource: {out}"
    );
    assert!(
        s("authorization_url").starts_with(&server.url("/oauth/authorize?")),
        "the SDK found the authorization endpoint in the metadata: {out}"
    );

    // The authorization response: a code, the state back, and the issuer.
    assert_eq!(out["callback"]["code_present"], true, "{out}");
    assert_eq!(out["state_matches"], true, "{out}");
    assert_eq!(out["callback"]["iss"], server.base.as_str(), "{out}");

    // The tool call went through, before and after the refresh.
    assert!(s("first").contains("called search_issues"), "{}", context());
    assert!(
        s("second").contains("called search_issues"),
        "{}",
        context()
    );
    let calls = upstream
        .lines()
        .iter()
        .filter(|l| *l == "tools/call search_issues")
        .count();
    assert_eq!(calls, 2, "{}", context());
    assert!(
        !upstream
            .lines()
            .iter()
            .any(|l| l.contains("authorization=present")),
        "the person's token must not reach the upstream: {}",
        context()
    );

    // The refresh rotated the refresh token and issued a new access token.
    let (rt_before, rt_after) = (s("refresh_token_before"), s("refresh_token_after"));
    assert!(!rt_before.is_empty() && !rt_after.is_empty(), "{out}");
    assert_ne!(rt_before, rt_after, "the refresh token rotates: {out}");
    assert_ne!(s("access_token_before"), s("access_token_after"), "{out}");

    // The whole exchange, in order, as the SDK made it.
    let flow: Vec<String> = out["flow"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let position = |prefix: &str| {
        flow.iter()
            .position(|f| f.starts_with(prefix))
            .unwrap_or_else(|| panic!("no request `{prefix}…` in the flow {flow:?}"))
    };
    assert_eq!(
        flow.first().map(String::as_str),
        Some("POST /mcp -> 401"),
        "the session starts from a bare 401: {flow:?}"
    );
    let prm = position("GET /.well-known/oauth-protected-resource");
    let asm = position("GET /.well-known/oauth-authorization-server");
    let register = position("POST /oauth/register -> 201");
    let authorize = position("GET /oauth/authorize -> 200");
    let signin = position("POST /oauth/signin -> 303");
    let consent = position("POST /oauth/consent -> 303");
    let code = position("POST /oauth/token -> 200 grant_type=authorization_code resource=yes");
    let broken = position("-- access token broken --");
    let refused = flow[broken..]
        .iter()
        .position(|f| f == "POST /mcp -> 401 (Bearer)")
        .map(|i| i + broken)
        .unwrap_or_else(|| panic!("the broken token was not refused with 401: {flow:?}"));
    let refresh = position("POST /oauth/token -> 200 grant_type=refresh_token resource=yes");
    assert!(
        prm < asm
            && asm < register
            && register < authorize
            && authorize < signin
            && signin < consent
            && consent < code
            && code < broken
            && broken < refused
            && refused < refresh,
        "the flow runs in order: {flow:?}"
    );
    assert!(
        flow[refresh + 1..]
            .iter()
            .any(|f| f == "POST /mcp -> 200 (Bearer)"),
        "the retried call succeeds: {flow:?}"
    );

    // The new access token is the person's, for this client and resource.
    let (_, claims) = verify_token(&server, &s("access_token_after"), &resource).await;
    assert_eq!(claims["sub"], user["id"], "{claims}");
    assert_eq!(claims["client_id"], client_id.as_str(), "{claims}");
    assert_eq!(claims["aud"], resource.as_str(), "{claims}");

    // The rotated-out refresh token has exactly one successor: replayed now
    // (inside the server's grace window for lost responses), it yields the
    // same successor the SDK got, never a second one.
    let replay = server
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt_before.as_str()),
                ("client_id", client_id.as_str()),
            ],
        )
        .await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(
        replay.json["refresh_token"],
        rt_after.as_str(),
        "one successor per refresh token: {}",
        replay.text
    );
}
