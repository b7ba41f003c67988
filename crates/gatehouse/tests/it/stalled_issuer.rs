//! The standalone gateway when its issuer stalls, against the real binary:
//! calls whose keys are cached go on at once; a call needing keys the
//! gateway does not have is answered 503 with `Retry-After` within 5 s, and
//! concurrent calls do not queue behind one fetch; with the instant cut-off,
//! introspection against a hung issuer answers 503 within its deadline.
//! Whatever is refused never reaches the upstream.

use axum::Router;
use axum::routing::post;
use gatehouse_testkit::issuer::TestIssuer;
use gatehouse_testkit::stall::{accepts_and_ignores, never_accepts};
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const POLICIES: &str =
    "permit (principal == Client::\"ci-bot\", action == Action::\"call_tool\", resource);\n";

/// A call needing keys that are not cached is refused within this.
const REFUSAL_WITHIN: Duration = Duration::from_secs(5);

/// A little more than the gateway's one key refetch per 10 s.
const REFETCH_GAP: Duration = Duration::from_millis(10_500);

struct Gateway {
    child: Child,
    resource: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Upstream calls, as the upstream saw them: the client's JSON-RPC id of
/// each.
type Seen = Arc<Mutex<Vec<Value>>>;

/// The client's id inside the one the gateway assigned to the request it
/// forwarded (`g1.<base64url of the id as written>.<tag>`).
fn client_id(assigned: &Value) -> Value {
    use base64::Engine;
    assigned
        .as_str()
        .and_then(|s| s.strip_prefix("g1."))
        .and_then(|s| s.split('.').next())
        .and_then(|b| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b)
                .ok()
        })
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or(Value::Null)
}

async fn upstream(seen: Seen) -> String {
    let app = Router::new().route(
        "/mcp",
        post(move |body: String| {
            let seen = seen.clone();
            async move {
                let msg: Value = serde_json::from_str(&body).unwrap_or_default();
                seen.lock().unwrap().push(client_id(&msg["id"]));
                axum::Json(json!({"jsonrpc": "2.0", "id": msg["id"].clone(),
                    "result": {"content": [{"type": "text", "text": "done"}]}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}

/// `gatehouse gateway` with `[gateway]` settings `extra`, trusting `issuer`.
fn start_gateway(dir: &DataDir, issuer: &str, upstream: &str, extra: &str) -> Gateway {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let policies = dir.path().join("policies.cedar");
    std::fs::write(&policies, POLICIES).unwrap();
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\nissuer = \"{issuer}\"\nlisten = \"127.0.0.1:{port}\"\n{extra}\n\
             [[gateway.servers]]\nresource = \"{resource}\"\nupstream = \"{upstream}\"\npolicies = \"{}\"\n",
            policies.display()
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let (child, _, _) = spawn_ready(&["gateway", "--config", &cfg], &[], "gateway started")
        .unwrap_or_else(|logs| panic!("gateway did not start:\n{logs}"));
    Gateway { child, resource }
}

/// One `tools/call` with `token` and JSON-RPC id `id`: (status, Retry-After
/// present, how long it took).
async fn call(resource: String, token: String, id: u64) -> (u16, bool, Duration) {
    let start = Instant::now();
    let r = reqwest::Client::new()
        .post(&resource)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "search", "arguments": {}}}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("an answer");
    let status = r.status().as_u16();
    let retry = r.headers().contains_key("retry-after");
    let _ = r.bytes().await;
    (status, retry, start.elapsed())
}

/// Runs `calls` (token, id) at once; their answers in order, and the wall time.
async fn concurrently(
    resource: &str,
    calls: Vec<(String, u64)>,
) -> (Vec<(u16, bool, Duration)>, Duration) {
    let start = Instant::now();
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|(token, id)| tokio::spawn(call(resource.to_string(), token, id)))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    (out, start.elapsed())
}

#[tokio::test]
async fn with_the_issuer_hung_cached_keys_still_verify_and_an_unknown_kid_gets_503_within_5s() {
    install_crypto();
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let seen = Seen::default();
    let up = upstream(seen.clone()).await;
    let gw = start_gateway(&dir, &issuer.base, &up, "");
    let first = call(gw.resource.clone(), issuer.token("ci-bot", &gw.resource), 1).await;
    assert_eq!(first.0, 200, "keys fetched from the working issuer");
    // Past the refetch gap, so an unknown kid does make the gateway ask.
    tokio::time::sleep(REFETCH_GAP).await;
    issuer.hang();
    let asked = issuer.requests.load(std::sync::atomic::Ordering::SeqCst);

    // Six calls naming keys the gateway has never seen and six with the
    // cached key (each a new token, so none is in the verified-token cache).
    let mut calls = Vec::new();
    for i in 0..6u64 {
        let kid = format!("rotated-{i}");
        calls.push((issuer.token_with_kid("ci-bot", &gw.resource, &kid), 100 + i));
        calls.push((issuer.token("ci-bot", &gw.resource), 200 + i));
    }
    let (answers, wall) = concurrently(&gw.resource, calls).await;
    for (i, (status, retry, took)) in answers.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!((*status, *retry), (503, true), "unknown kid, call {i}");
            assert!(
                *took < REFUSAL_WITHIN,
                "unknown kid answered after {took:?}"
            );
        } else {
            assert_eq!(*status, 200, "cached key, call {i}");
            assert!(
                *took < Duration::from_secs(1),
                "a call with a cached key waited {took:?} behind the hung issuer"
            );
        }
    }
    // Queued one behind another, six waits would take far longer.
    assert!(wall < REFUSAL_WITHIN, "the calls took {wall:?} together");
    assert!(
        issuer.requests.load(std::sync::atomic::Ordering::SeqCst) - asked <= 1,
        "one fetch for all the unknown kids"
    );
    let mut ids: Vec<u64> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![1, 200, 201, 202, 203, 204, 205],
        "only the verified calls reached the upstream"
    );
}

#[tokio::test]
async fn a_gateway_whose_issuer_never_answers_refuses_with_503_and_retry_after_within_5s() {
    install_crypto();
    let ignoring = accepts_and_ignores().await;
    let full = never_accepts().await;
    for (what, base) in [
        ("accepts and never answers", ignoring.as_str()),
        ("never accepts", full.base.as_str()),
    ] {
        let dir = DataDir::new();
        let seen = Seen::default();
        let up = upstream(seen.clone()).await;
        let gw = start_gateway(&dir, base, &up, "");
        // Tokens "from" that issuer; the gateway cannot get its keys.
        let signer = TestIssuer::start().await;
        let calls = (0..4u64)
            .map(|i| (signer.token("ci-bot", &gw.resource), i))
            .collect();
        let (answers, wall) = concurrently(&gw.resource, calls).await;
        for (status, retry, took) in &answers {
            assert_eq!((*status, *retry), (503, true), "{what}");
            assert!(*took < REFUSAL_WITHIN, "{what}: answered after {took:?}");
        }
        assert!(wall < REFUSAL_WITHIN, "{what}: {wall:?} together");
        // Within the refetch gap, the next call is refused at once.
        let (status, retry, took) =
            call(gw.resource.clone(), signer.token("ci-bot", &gw.resource), 9).await;
        assert_eq!((status, retry), (503, true), "{what}");
        assert!(took < Duration::from_secs(1), "{what}: {took:?}");
        assert!(
            seen.lock().unwrap().is_empty(),
            "{what}: nothing reached the upstream"
        );
    }
}

#[tokio::test]
async fn with_instant_cut_off_a_hung_issuer_gets_503_within_the_introspection_deadline() {
    install_crypto();
    let dir = DataDir::new();
    let issuer = TestIssuer::start().await;
    let seen = Seen::default();
    let up = upstream(seen.clone()).await;
    let gw = start_gateway(
        &dir,
        &issuer.base,
        &up,
        "check_revocation = true\nrevocation_cache = \"1s\"\n\
         introspection_client_id = \"gw\"\nintrospection_client_secret = \"gw-secret\"",
    );
    let first = call(gw.resource.clone(), issuer.token("ci-bot", &gw.resource), 1).await;
    assert_eq!(first.0, 200, "active at the working issuer");
    issuer.hang();
    // Keys are cached; only the introspection hangs. Each call a new token
    // (a new jti), so no cached answer applies.
    let calls = (0..4u64)
        .map(|i| (issuer.token("ci-bot", &gw.resource), 10 + i))
        .collect();
    let (answers, wall) = concurrently(&gw.resource, calls).await;
    // The introspection deadline is 5 s; a second of slack for the rest.
    let deadline = Duration::from_secs(6);
    for (status, retry, took) in &answers {
        assert_eq!((*status, *retry), (503, true));
        assert!(
            *took >= Duration::from_millis(4500) && *took < deadline,
            "answered after {took:?}"
        );
    }
    assert!(wall < deadline, "the calls took {wall:?} together");
    let ids: Vec<Value> = seen.lock().unwrap().clone();
    assert_eq!(
        ids,
        vec![json!(1)],
        "unchecked calls never reach the upstream"
    );
}
