//! Interoperability with the official TypeScript MCP SDK, pinned in
//! `interop/package.json`: a real SDK client using the SDK's own
//! client-credentials support (`ClientCredentialsProvider`) reaches a real SDK
//! server (`McpServer` + `StreamableHTTPServerTransport`) through the real
//! `gatehouse gateway`, with tokens from the real `gatehouse serve`.
//!
//! The client starts with no token, so the run covers the whole discovery:
//! bare 401 → protected-resource metadata → authorization-server metadata →
//! client_credentials token → retry → session. Cedar then lets `ci-bot` call
//! `search_issues` only, and `tools/list` shows only that tool.
//!
//! Needs Node.js and `npm ci --prefix interop`. Without them the test says so
//! loudly on stderr and passes, except under CI (`CI` set), where it fails.

use gatehouse_testkit::interop::*;
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Only `ci-bot` may call only `search_issues`; everything else is denied by
/// default.
const POLICIES: &str = r#"
@id("ci-bot-search")
permit (principal == Client::"ci-bot", action == Action::"call_tool", resource == Tool::"search_issues");
"#;

#[test]
fn the_typescript_sdk_client_goes_from_a_bare_401_to_a_session_and_cedar_decides() {
    require_sdk("mcp_sdk");
    let as_dir = DataDir::new();
    let gw_dir = DataDir::new();

    // The gateway's resource URL must be an allowed audience of the
    // authorization server, so the gateway's port is fixed first.
    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let (id, secret) = create_client(&as_dir, &["--id", "ci-bot"]);
    assert_eq!(id, "ci-bot");
    let auth = Server::start(&as_dir, &["--audience", &resource], &[]);

    let upstream = Upstream::start();

    let policies = gw_dir.path().join("policies.cedar");
    std::fs::write(&policies, POLICIES).unwrap();
    let (_gateway, gw_logs) =
        start_gateway(gw_port, &resource, &upstream.url, &auth.base, &policies);

    let (ok, stdout, stderr) = run_client(
        &[&resource, &id, &secret, &auth.base],
        Duration::from_secs(60),
    );
    let context = || {
        format!(
            "client stdout:\n{stdout}\nclient stderr:\n{stderr}\nupstream:\n{}\ngateway logs:\n{}\nauthorization server logs:\n{}",
            upstream.lines().join("\n"),
            gw_logs.lock().unwrap(),
            auth.logs()
        )
    };
    assert!(ok, "the SDK client failed\n{}", context());
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line from the client\n{}", context()));
    let result: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("client output is not JSON ({e})\n{}", context()));

    // tools/list is filtered by the same policies: only the callable tool.
    assert_eq!(result["tools"], json!(["search_issues"]), "{}", context());
    // The allowed call reaches the real server and its answer comes back.
    let search = result["search"].as_str().unwrap_or_default();
    assert!(search.contains("called search_issues"), "{}", context());
    // The denied call is refused by the gateway with a JSON-RPC error
    // (HTTP 200), which the SDK surfaces as the call's McpError, with the
    // decision id to look up in the gateway's log.
    let merge_error = result["merge_error"].as_str().unwrap_or_default();
    assert!(!merge_error.is_empty(), "{}", context());
    assert_eq!(result["merge_code"], -32003, "{}", context());
    assert!(
        !merge_error.contains("ci-bot-search"),
        "a denial names no policy: {merge_error}"
    );
    assert!(merge_error.contains("(decision d_"), "{merge_error}");

    // The discovery the SDK did by itself, from the bare 401 on.
    let flow: Vec<&str> = result["flow"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let position = |prefix: &str| {
        flow.iter()
            .position(|f| f.starts_with(prefix))
            .unwrap_or_else(|| panic!("no request `{prefix}…` in the flow {flow:?}"))
    };
    assert_eq!(
        flow.first().copied(),
        Some("POST /mcp -> 401"),
        "the session starts from a bare 401 (no Authorization header): {flow:?}"
    );
    let prm = position("GET /.well-known/oauth-protected-resource");
    assert!(flow[prm].contains("-> 200"), "{flow:?}");
    let asm = position("GET /.well-known/oauth-authorization-server");
    assert!(flow[asm].contains("-> 200"), "{flow:?}");
    let token = position("POST /oauth/token -> 200 (Basic)");
    let retry = position("POST /mcp -> 200 (Bearer)");
    assert!(
        prm < asm && asm < token && token < retry,
        "discovery runs in order: {flow:?}"
    );

    // The real server never saw the client's token, and never saw the denied
    // call.
    let seen = upstream.lines();
    assert!(
        seen.iter().any(|l| l.starts_with("request POST")),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("authorization=present")),
        "the client's Authorization header must not reach the upstream: {seen:?}"
    );
    assert!(
        seen.iter().any(|l| l == "tools/call search_issues"),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l == "tools/call merge_pr"),
        "a denied call never reaches the upstream: {seen:?}"
    );
}
