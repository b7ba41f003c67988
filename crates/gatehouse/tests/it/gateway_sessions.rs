//! Session ids at the gateway are bound to the principal with a MAC under a
//! key the replicas share (docs/gateway.md "The gateway"), so no memory decides who
//! owns a session: not after a restart, not on another replica. Against the
//! real binary — standalone `gatehouse gateway` processes and `gatehouse
//! serve` hosting the gateway — in front of a naive upstream that executes
//! whatever reaches it and records the session id each call came with.

use gatehouse_testkit::gw::{Gw, GwOptions, POLICIES};
use gatehouse_testkit::issuer::TestIssuer;
use gatehouse_testkit::naive::Naive;
use gatehouse_testkit::{DataDir, Server, create_client, free_port};
use std::path::{Path, PathBuf};

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;

fn policies(dir: &DataDir) -> PathBuf {
    let path = dir.path().join("policies.cedar");
    std::fs::write(&path, POLICIES).unwrap();
    path
}

fn key_file(dir: &DataDir, bytes: &[u8], mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir
        .path()
        .join(format!("session-{mode:o}-{}.key", bytes.len()));
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn opts<'a>(
    policies: &'a Path,
    issuer: &'a TestIssuer,
    up: &'a Naive,
    resource: Option<&'a str>,
    port: Option<u16>,
    extra: &'a [&'a str],
) -> GwOptions<'a> {
    GwOptions {
        policies,
        issuer: &issuer.base,
        upstream: &up.url,
        resource,
        port,
        extra,
    }
}

/// The session ids the upstream's calls of `method` came with.
fn sessions_of(up: &Naive, method: &str) -> Vec<Option<String>> {
    up.executed()
        .into_iter()
        .filter(|e| e.method == method)
        .map(|e| e.session)
        .collect()
}

#[tokio::test]
async fn a_session_id_is_bound_to_its_principal_and_the_upstream_sees_its_own() {
    let dir = DataDir::new();
    let p = policies(&dir);
    let issuer = TestIssuer::start().await;
    let up = Naive::start().await;
    let gw = Gw::start(&opts(&p, &issuer, &up, None, None, &[])).unwrap();
    let owner = issuer.token("ci-bot", &gw.url);
    let r = gw.post(&owner, INIT, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let session = r.header("mcp-session-id").unwrap().to_string();
    assert!(session.starts_with("sess-1."), "{session}");
    let r = gw.post(&owner, PING, &[("mcp-session-id", &session)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sessions_of(&up, "ping"), vec![Some("sess-1".to_string())]);

    // Another principal presenting it: 404, and the upstream executes nothing.
    let other = issuer.token("other-bot", &gw.url);
    for method in ["POST", "GET", "DELETE"] {
        let body = (method == "POST").then_some(PING);
        let r = gw
            .send(method, &other, body, &[("mcp-session-id", &session)])
            .await;
        assert_eq!(r.status, 404, "{method}: {}", r.text);
        assert_eq!(r.json["error"]["code"], -32001, "{method}");
    }
    // Nor does the upstream's own id, a forged tag or another key's.
    for forged in ["sess-1", "sess-1.AAAAAAAAAAAAAAAAAAAAAA", "sess-1.", ".x"] {
        let r = gw.post(&owner, PING, &[("mcp-session-id", forged)]).await;
        assert_eq!(r.status, 404, "{forged}: {}", r.text);
    }
    assert_eq!(up.requests().len(), 2, "{:?}", up.requests());
    assert_eq!(sessions_of(&up, "ping").len(), 1);

    // initialize may start afresh whatever id it carries; the stale one is
    // not forwarded.
    let r = gw.post(&other, INIT, &[("mcp-session-id", &session)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("mcp-session-id").unwrap().starts_with("sess-2."));
    assert_eq!(sessions_of(&up, "initialize"), vec![None, None]);
}

#[tokio::test]
async fn two_gateways_sharing_a_session_key_file_serve_one_session_across_a_restart() {
    let dir = DataDir::new();
    let p = policies(&dir);
    let key = key_file(&dir, &[0x5a; 48], 0o600);
    let key = key.display().to_string();
    let extra = ["--session-key-file", key.as_str()];
    let issuer = TestIssuer::start().await;
    let up = Naive::start().await;
    // Both behind one address: one resource URL, two listeners.
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let mut a = Gw::start(&opts(&p, &issuer, &up, Some(&resource), None, &extra)).unwrap();
    let b = Gw::start(&opts(&p, &issuer, &up, Some(&resource), None, &extra)).unwrap();
    let token = issuer.token("ci-bot", &resource);
    let r = a.post(&token, INIT, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let session = r.header("mcp-session-id").unwrap().to_string();
    let h = [("mcp-session-id", session.as_str())];
    for gw in [&b, &a, &b] {
        let r = gw.post(&token, PING, &h).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // Restart one in place: the session stays valid on both.
    let port = a.port;
    drop(a);
    a = Gw::start(&opts(&p, &issuer, &up, Some(&resource), Some(port), &extra)).unwrap();
    for gw in [&a, &b] {
        let r = gw.post(&token, PING, &h).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(
        sessions_of(&up, "ping"),
        vec![Some("sess-1".to_string()); 5]
    );
    // Still nobody else's.
    let other = issuer.token("other-bot", &resource);
    for gw in [&a, &b] {
        let r = gw.post(&other, PING, &h).await;
        assert_eq!(r.status, 404, "{}", r.text);
    }
    assert_eq!(
        sessions_of(&up, "ping").len(),
        5,
        "nothing executed for them"
    );
}

#[tokio::test]
async fn without_a_key_file_a_restart_answers_404_and_never_opens() {
    let dir = DataDir::new();
    let p = policies(&dir);
    let issuer = TestIssuer::start().await;
    let up = Naive::start().await;
    let gw = Gw::start(&opts(&p, &issuer, &up, None, None, &[])).unwrap();
    assert!(
        gatehouse_testkit::eventually(std::time::Duration::from_secs(5), || async {
            gw.logs().contains("no gateway.session_key_file")
        })
        .await,
        "the per-process key is announced: {}",
        gw.logs()
    );
    let token = issuer.token("ci-bot", &gw.url);
    let session = gw
        .post(&token, INIT, &[])
        .await
        .header("mcp-session-id")
        .unwrap()
        .to_string();
    let port = gw.port;
    drop(gw);
    let gw = Gw::start(&opts(&p, &issuer, &up, None, Some(port), &[])).unwrap();
    let r = gw.post(&token, PING, &[("mcp-session-id", &session)]).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(sessions_of(&up, "ping").is_empty());
    // The client re-initializes.
    let r = gw.post(&token, INIT, &[("mcp-session-id", &session)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_session_key_file_others_can_read_or_too_short_stops_the_start() {
    let dir = DataDir::new();
    let p = policies(&dir);
    let issuer = TestIssuer::start().await;
    let up = Naive::start().await;
    let cases = [
        (key_file(&dir, &[1; 32], 0o644), "chmod 600"),
        (key_file(&dir, &[1; 16], 0o600), "at least 32 bytes"),
        (dir.path().join("missing.key"), "cannot read"),
    ];
    for (file, why) in cases {
        let file = file.display().to_string();
        let extra = ["--session-key-file", file.as_str()];
        let err = match Gw::start(&opts(&p, &issuer, &up, None, None, &extra)) {
            Ok(_) => panic!("{file} must stop the start"),
            Err(logs) => logs,
        };
        assert!(err.contains("gateway.session_key_file"), "{err}");
        assert!(err.contains(why), "{why}: {err}");
    }
    // Embedded, the key lives in the store: a file is refused.
    let config = dir.path().join("gatehouse.toml");
    let key = key_file(&dir, &[1; 32], 0o600);
    std::fs::write(
        &config,
        format!(
            "[gateway]\nsession_key_file = {:?}\n\n[[gateway.servers]]\nresource = \"http://127.0.0.1:1/mcp\"\nupstream = {:?}\npolicies = {:?}\n",
            key.display().to_string(),
            up.url,
            p.display().to_string()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let err = match Server::try_start(&dir, &["--config", &config], &[]) {
        Ok(_) => panic!("serve must refuse a session key file"),
        Err(logs) => logs,
    };
    assert!(err.contains("gateway.session_key_file"), "{err}");
    assert!(up.requests().is_empty());
}

/// A client_credentials token for `resource` from `server`.
async fn token(server: &Server, resource: &str, id: &str, secret: &str) -> String {
    let t = server
        .token(
            Some((id, secret)),
            &[("grant_type", "client_credentials"), ("resource", resource)],
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    t.json["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn embedded_session_ids_survive_a_restart_with_the_key_sealed_in_the_store() {
    let dir = DataDir::new();
    let p = policies(&dir);
    let up = Naive::start().await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let resource = format!("http://{listen}/mcp");
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "[[gateway.servers]]\nresource = {resource:?}\nupstream = {:?}\npolicies = {:?}\n",
            up.url,
            p.display().to_string()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let args = ["--config", config.as_str(), "--listen", listen.as_str()];
    let (id, secret) = create_client(&dir, &["--id", "ci-bot"]);
    let (other_id, other_secret) = create_client(&dir, &["--id", "other-bot"]);
    let server = Server::start(&dir, &args, &[]);
    let owner = token(&server, &resource, &id, &secret).await;
    // No pooled connections: the server behind the address restarts.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let post = |token: String, body: &'static str, session: Option<String>| {
        let mut req = http
            .post(&resource)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        async move { gatehouse_testkit::Response::from(req.send().await.unwrap()).await }
    };
    let r = post(owner.clone(), INIT, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let session = r.header("mcp-session-id").unwrap().to_string();
    assert!(session.starts_with("sess-1."), "{session}");

    server.stop();
    let server = Server::start(&dir, &args, &[]);
    let r = post(owner.clone(), PING, Some(session.clone())).await;
    assert_eq!(
        r.status, 200,
        "the session outlives the restart: {}",
        r.text
    );
    assert_eq!(sessions_of(&up, "ping"), vec![Some("sess-1".to_string())]);
    let other = token(&server, &resource, &other_id, &other_secret).await;
    let r = post(other, PING, Some(session)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(sessions_of(&up, "ping").len(), 1);

    let pool = gatehouse_testkit::db(&dir).await;
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM keys WHERE kind = 'gateway_session'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kinds.len(), 1, "one sealed session key in the store");
}
