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

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Only `ci-bot` may call only `search_issues`; everything else is denied by
/// default.
const POLICIES: &str = r#"
@id("ci-bot-search")
permit (principal == Client::"ci-bot", action == Action::"call_tool", resource == Tool::"search_issues");
"#;

fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

fn interop_dir() -> PathBuf {
    repo_root().join("interop")
}

/// Whether Node and the pinned SDK are installed; if not, skip loudly, or
/// fail under CI so CI never skips silently.
fn sdk_available() -> bool {
    let sdk = interop_dir().join("node_modules/@modelcontextprotocol/sdk");
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let missing = if !node {
        "Node.js (`node`) is not on PATH".to_string()
    } else if !sdk.is_dir() {
        format!("{} does not exist", sdk.display())
    } else {
        return true;
    };
    if std::env::var_os("CI").is_some() {
        panic!(
            "the MCP SDK interop test cannot run under CI: {missing}; \
             .ci/run must run `npm ci --prefix interop` first"
        );
    }
    eprintln!(
        "\n==================================================================\n\
         SKIPPED: mcp_sdk interop test — {missing}.\n\
         Install the pinned TypeScript MCP SDK with: npm ci --prefix interop\n\
         ==================================================================\n"
    );
    false
}

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `node interop/server.mjs PORT`, its stdout collected line by line.
struct Upstream {
    _child: Guard,
    url: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    fn start() -> Upstream {
        let port = free_port();
        let mut child = Command::new("node")
            .arg(interop_dir().join("server.mjs"))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node interop/server.mjs");
        let stdout = child.stdout.take().expect("server stdout");
        let child = Guard(child);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let ready = line.starts_with("listening on ");
                sink.lock().unwrap().push(line);
                if ready {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("node interop/server.mjs did not start listening");
        Upstream {
            _child: child,
            url: format!("http://127.0.0.1:{port}/mcp"),
            lines,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Runs `node interop/client.mjs ARGS` with a timeout; returns (success,
/// stdout, stderr).
fn run_client(args: &[&str], timeout: Duration) -> (bool, String, String) {
    let mut child = Guard(
        Command::new("node")
            .arg(interop_dir().join("client.mjs"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node interop/client.mjs"),
    );
    let mut stdout = child.0.stdout.take().expect("client stdout");
    let mut stderr = child.0.stderr.take().expect("client stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for client") {
            break Some(status);
        }
        if start.elapsed() > timeout {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(child); // kills it if it is still running, which closes its pipes
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Some(status) => (status.success(), out, err),
        None => (false, out, format!("TIMED OUT after {timeout:?}\n{err}")),
    }
}

#[test]
fn the_typescript_sdk_client_goes_from_a_bare_401_to_a_session_and_cedar_decides() {
    if !sdk_available() {
        return;
    }
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
    let policies = policies.display().to_string();
    let schema = repo_root()
        .join("policies/gatehouse.cedarschema")
        .display()
        .to_string();
    let listen = format!("127.0.0.1:{gw_port}");
    let (gw_child, _, gw_logs) = spawn_ready(
        &[
            "gateway",
            "--listen",
            &listen,
            "--resource",
            &resource,
            "--upstream",
            &upstream.url,
            "--issuer",
            &auth.base,
            "--policies",
            &policies,
            "--schema",
            &schema,
        ],
        &[],
        "gateway started",
    )
    .unwrap_or_else(|logs| panic!("gateway did not start:\n{logs}"));
    let _gateway = Guard(gw_child);

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
    // The denied call is refused by the gateway: HTTP 403 with a JSON-RPC
    // error, surfaced by the SDK as an error.
    let merge_error = result["merge_error"].as_str().unwrap_or_default();
    assert!(!merge_error.is_empty(), "{}", context());
    assert_eq!(result["merge_code"], 403, "{}", context());
    assert!(
        !merge_error.contains("ci-bot-search"),
        "a denial names no policy: {merge_error}"
    );

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
